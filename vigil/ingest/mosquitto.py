"""Mosquitto broker files from the device registry: password hashes, ACL, and a config to run it."""

from __future__ import annotations

import getpass
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vigil.ingest.service import MAX_BODY_BYTES
from vigil.ports import free_port, wait_for_port
from vigil.security.mosquitto import mosquitto_password_hash

SERVICE_USER = "vigil-ingest"
"""The ingest service's broker login used by `vigil serve --mqtt`; workers log in as WORKER_USER.format(n)."""
WORKER_USER = SERVICE_USER + "-{}"
DEFAULT_WORKERS = 8
SERVICE_PASSWORD_SECRET = "mqtt-service.key"  # the ingest service user's password, a secret in VIGIL_HOME/keys
CONFIG_FILE = "mosquitto.conf"
PID_FILE = "mosquitto.pid"
"""Written by a Mosquitto started from Vigil's config, beside the password file, so Vigil can make it reload."""


def service_users(workers: int = DEFAULT_WORKERS) -> list[str]:
    """The ingest service's logins: one for `vigil serve`, one per worker. Every client's id is its login (the broker
    has use_username_as_clientid), so each needs its own, and no device can take one's session over."""
    return [SERVICE_USER] + [WORKER_USER.format(n) for n in range(1, workers + 1)]


def acl_text(users: list[str]) -> str:
    """Each device may publish only to its own readings topic and read nothing; the service users may read them all.

    Mosquitto 2.0's ACL file does not refuse a SUBSCRIBE, but with no read rule nothing is ever delivered to a
    device; the service's shared group is named from its secret, so a device cannot join it (see shared_group).
    """
    service = "".join(f"user {user}\ntopic read vigil/v1/devices/+/readings\n\n" for user in users)
    return (
        "# Written by Vigil from its device registry; regenerated on every device change.\n"
        "# Devices: write their own readings topic only; no read rule, so no message is ever delivered to one.\n"
        "pattern write vigil/v1/devices/%u/readings\n\n" + service
    )


@dataclass(frozen=True)
class BrokerFiles:
    password_file: Path
    acl_file: Path


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _workers_in(password_file: Path) -> int:
    """How many worker logins an existing password file holds (DEFAULT_WORKERS if there is none)."""
    if not password_file.exists():
        return DEFAULT_WORKERS
    names = {line.split(":", 1)[0] for line in password_file.read_text().splitlines()}
    return sum(WORKER_USER.format(n) in names for n in range(1, len(names) + 1))


def write_broker_files(
    directory: Path, device_hashes: list[tuple[str, str]], service_password: str, workers: int | None = None
) -> BrokerFiles:
    """Write Mosquitto's password file and ACL file for these devices plus the ingest service's users (`workers`
    worker logins; by default as many as the files already have, else DEFAULT_WORKERS)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = BrokerFiles(directory / "passwd", directory / "acl")
    users = service_users(_workers_in(files.password_file) if workers is None else workers)
    lines = [f"{user}:{mosquitto_password_hash(service_password)}" for user in users]
    lines += [f"{device_id}:{password_hash}" for device_id, password_hash in device_hashes]
    _write_private(files.password_file, "\n".join(lines) + "\n")
    _write_private(files.acl_file, acl_text(users))
    return files


@dataclass(frozen=True)
class BrokerTls:
    """The broker's certificate and key (PEM), and the CA certificate that issued it."""

    certfile: Path
    keyfile: Path
    cafile: Path


def broker_config(
    files: BrokerFiles,
    port: int,
    host: str = "127.0.0.1",
    persistence_dir: Path | None = None,
    run_as: str | None = None,
    tls: BrokerTls | None = None,
    pid_file: Path | None = None,
) -> str:
    """A mosquitto.conf that requires a login and applies Vigil's ACL; with `tls`, the listener speaks only TLS.

    With ``pid_file`` (``vigil mqtt config`` sets PID_FILE) the broker records its process id, and
    ``reload_broker`` makes it reread the files after every device change.

    Started as root, Mosquitto switches to its own user, which must be able to read the files;
    ``run_as`` names that user (tests running as root keep root).
    """
    lines = [f"user {run_as}"] if run_as else []
    lines += [f"pid_file {pid_file}"] if pid_file else []
    lines += [
        "per_listener_settings false",
        f"listener {port} {host}",
    ]
    if tls is not None:
        lines += [f"certfile {tls.certfile}", f"keyfile {tls.keyfile}", f"cafile {tls.cafile}", "tls_version tlsv1.2"]
    lines += [
        "allow_anonymous false",
        "use_username_as_clientid true",  # a client's id is its login: no one can take over another's session
        f"password_file {files.password_file}",
        f"acl_file {files.acl_file}",
        f"max_packet_size {MAX_BODY_BYTES + 64 * 1024}",
    ]
    if persistence_dir is not None:
        lines += ["persistence true", f"persistence_location {persistence_dir}/"]
    return "\n".join(lines) + "\n"


def write_broker_config(
    directory: Path,
    device_hashes: list[tuple[str, str]],
    service_password: str,
    port: int | None = None,
    tls: BrokerTls | None = None,
    workers: int | None = None,
) -> tuple[BrokerFiles, Path]:
    """The password and ACL files, and a mosquitto.conf running the broker on them (port 1883, or 8883 with `tls`)
    that keeps its pid beside them so that `reload_broker` reaches it."""
    files = write_broker_files(directory, device_hashes, service_password, workers)
    config = directory / CONFIG_FILE
    config.write_text(
        broker_config(files, port or (8883 if tls else 1883), tls=tls, pid_file=directory.resolve() / PID_FILE)
    )
    return files, config


def reload_broker(directory: Path) -> bool:
    """SIGHUP the Mosquitto whose pid file is in ``directory`` (it rereads password and ACL files); False if none."""
    try:
        os.kill(int((directory / PID_FILE).read_text().strip()), signal.SIGHUP)
    except FileNotFoundError:
        return False
    except (ValueError, ProcessLookupError, PermissionError) as error:
        logging.getLogger(__name__).warning(
            "could not make Mosquitto reload its files (%s); send it a SIGHUP so device changes take effect", error
        )
        return False
    return True


@contextmanager
def private_broker(files: BrokerFiles, directory: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """A Mosquitto of its own on a free loopback port, reading these password and ACL files, its pid file beside them
    (as `vigil mqtt config` writes it, so Vigil's own device changes make it reload them); stopped on exit."""
    port = free_port()
    config = directory / CONFIG_FILE
    pid_file = files.password_file.parent / PID_FILE
    config.write_text(broker_config(files, port, run_as=getpass.getuser(), pid_file=pid_file))
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port, process
    finally:
        process.terminate()
        process.wait(10)
