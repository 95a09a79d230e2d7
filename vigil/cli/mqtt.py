"""`vigil mqtt`: the Mosquitto broker's password, ACL and config files, from the device registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigil import admin
from vigil.admin import broker_directory
from vigil.cli.common import (
    DbOption,
    JsonFlag,
    TlsCertOption,
    TlsKeyOption,
    admin_context,
    emit,
    err,
    fail,
    store_for,
    tls_pair,
)
from vigil.config import load_settings
from vigil.ingest.mosquitto import (
    DEFAULT_WORKERS,
    SERVICE_PASSWORD_SECRET,
    SERVICE_USER,
    WORKER_USER,
    BrokerTls,
    write_broker_config,
)
from vigil.security.policy import operator
from vigil.timeutil import format_time

app = typer.Typer(help="The Mosquitto broker's password and ACL files.", no_args_is_help=True)


@app.command("config")
def config(
    out: Annotated[Path | None, typer.Option("--out", help="directory (default VIGIL_HOME/mosquitto)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="default 1883, or 8883 with TLS")] = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    tls_ca: Annotated[Path | None, typer.Option("--tls-ca", help="CA certificate that issued --tls-cert (PEM)")] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=1000, help="worker logins vigil-ingest-1..N, one per `vigil worker`")
    ] = DEFAULT_WORKERS,
    db: DbOption = None,
) -> None:
    """Write Mosquitto's password file, ACL file and a mosquitto.conf from the device registry (TLS-only with --tls-*)."""
    tls = _broker_tls(tls_cert, tls_key, tls_ca)
    settings = load_settings(db)
    files, conf = write_broker_config(
        out or broker_directory(settings),
        store_for(settings).mqtt_credentials(),
        settings.secret(SERVICE_PASSWORD_SECRET),
        port,
        tls,
        workers,
    )
    err.print(f"wrote {files.password_file}, {files.acl_file} and {conf}")
    err.print(
        f"ingest service users: {SERVICE_USER} (vigil serve) and {WORKER_USER.format(1)}..{WORKER_USER.format(workers)}"
        f" (vigil worker --client-id), password in {settings.keys_dir / SERVICE_PASSWORD_SECRET}"
    )


@app.command("dead-letters")
def dead_letters(
    limit: Annotated[int, typer.Option("--limit", min=1, help="newest N")] = 1000,
    db: DbOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Broker messages acknowledged without being ingested, newest first, with the reason (never their bodies)."""
    rows = [
        {**vars(letter), "received_at": format_time(letter.received_at)}
        for letter in admin.list_dead_letters(admin_context(db), operator(), limit)
    ]
    lines = [f"{r['received_at']}  {r['device_id'] or '-'}  {r['payload_bytes']} B  {r['reason']}" for r in rows]
    emit(rows, as_json, "\n".join(lines) or "no dead letters")


def _broker_tls(cert: Path | None, key: Path | None, ca: Path | None) -> BrokerTls | None:
    pair = tls_pair(cert, key)
    if pair and (ca is None or not ca.is_file()):
        fail("--tls-ca: the CA certificate file is required with --tls-cert")
    return BrokerTls(pair[0], pair[1], ca.resolve()) if pair else None
