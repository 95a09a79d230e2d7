"""In transit: `vigil serve --tls-cert --tls-key` over HTTPS, and MQTT over TLS through the Mosquitto
configuration `vigil mqtt config` writes, each checked against a self-signed CA made here."""

from __future__ import annotations

import getpass
import ipaddress
import os
import shutil
import ssl
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import require_service
from vigil.devices.transports import DeliveryFailed, HttpTransport, MqttTransport
from vigil.ports import free_port, wait_for_port
from vigil.security.identity import hash_password
from vigil.store import SqlStore
from vigil.timeutil import format_time, utc_now

PASSWORD = "transport layer security"


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def make_pki(directory: Path, label: str) -> Pki:
    """A self-signed CA and a server certificate it issued for 127.0.0.1 and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{label} test CA"))
        .issuer_name(_name(f"{label} test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, pki.key)
    return pki


@pytest.fixture
def pki(tmp_path) -> Pki:
    return make_pki(tmp_path / "pki", "vigil")


@pytest.fixture
def stranger_ca(tmp_path) -> Path:
    return make_pki(tmp_path / "other-pki", "stranger").ca


def _env(settings) -> dict:
    return {**os.environ, "VIGIL_HOME": str(settings.home), "VIGIL_DB": settings.db_url}


def _client(ca: Path) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=10)


@pytest.fixture
def registry(settings):
    """A patient with a device and a clinician caring for them, in the store `vigil` commands will open."""
    store = SqlStore(settings.db_url)
    patient = store.add_patient("Tilly Transit")
    device, token = store.add_device(patient.patient_id, "wearable")
    store.add_user("nurse", "clinician", hash_password(PASSWORD))
    store.assign(patient.patient_id, "nurse")
    return store, patient.patient_id, device.device_id, token


def _readings(n: int) -> dict:
    start = utc_now() - timedelta(minutes=n)
    return {
        "readings": [
            {"metric": "heart_rate", "value": 70 + i, "time": format_time(start + timedelta(minutes=i)), "seq": i}
            for i in range(n)
        ]
    }


@contextmanager
def _running(args: list[str], env: dict, log: Path):
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        yield process
    finally:
        process.terminate()
        process.wait(15)


def test_serve_over_https_only_with_the_right_ca(settings, registry, pki, stranger_ca, tmp_path):
    _store, _patient_id, device_id, token = registry
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "vigil",
        "serve",
        "--port",
        str(port),
        "--tls-cert",
        str(pki.cert),
        "--tls-key",
        str(pki.key),
    ]
    with _running(args, _env(settings), tmp_path / "serve.log"):
        wait_for_port(port, timeout=30)
        base = f"https://127.0.0.1:{port}"
        with _client(pki.ca) as client:
            login = client.post(f"{base}/api/v1/auth/token", data={"username": "nurse", "password": PASSWORD})
            assert login.status_code == 200, login.text
            patients = client.get(
                f"{base}/api/v1/patients", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
            )
            assert [p["name"] for p in patients.json()] == ["Tilly Transit"]
            page = client.get(f"{base}/login")
            assert page.headers["strict-transport-security"].startswith("max-age=")
            assert "Secure" in page.headers["set-cookie"]
        device = HttpTransport(base, ca_file=str(pki.ca))
        assert device.send(device_id, token, _readings(3))["accepted"] == 3  # a device over HTTPS
        device.close()
        with _client(stranger_ca) as stranger, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            stranger.get(f"{base}/healthz")
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_serve_refuses_half_a_tls_configuration(settings, pki):
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "serve", "--tls-cert", str(pki.cert)],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--tls-cert and --tls-key go together" in result.stderr


def test_mqtt_over_tls_from_the_generated_config(settings, registry, pki, stranger_ca, tmp_path):
    require_service(shutil.which("mosquitto") is not None, "the mosquitto binary")
    store, _patient_id, device_id, token = registry
    port = free_port()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "vigil",
            "mqtt",
            "config",
            "--port",
            str(port),
            "--tls-cert",
            str(pki.cert),
            "--tls-key",
            str(pki.key),
            "--tls-ca",
            str(pki.ca),
        ],
        env=_env(settings),
        check=True,
        capture_output=True,
    )
    config = settings.home / "mosquitto" / "mosquitto.conf"
    assert f"certfile {pki.cert}" in config.read_text() and f"listener {port} 127.0.0.1" in config.read_text()
    config.write_text(f"user {getpass.getuser()}\n" + config.read_text())
    url = f"mqtts://127.0.0.1:{port}"
    with _running(["mosquitto", "-c", str(config)], _env(settings), tmp_path / "mosquitto.log"):
        wait_for_port(port)
        worker = [sys.executable, "-m", "vigil", "worker", "--mqtt", url, "--ca-file", str(pki.ca)]
        with _running(worker, _env(settings), tmp_path / "worker.log"):
            device = MqttTransport(url, timeout=5, ca_file=str(pki.ca))
            _until(lambda: _published_and_stored(device, device_id, token, store), "readings stored by the worker")
            device.close()
        for refused in (
            MqttTransport(url, timeout=3, ca_file=str(stranger_ca)),
            MqttTransport(f"mqtt://127.0.0.1:{port}", timeout=3),
        ):
            with pytest.raises(DeliveryFailed):
                refused.send(device_id, token, _readings(1))
            refused.close()
    assert {r.device_id for r in store.query_readings()} == {device_id}


def _published_and_stored(device: MqttTransport, device_id: str, token: str, store: SqlStore) -> bool:
    """Publish a batch (QoS 1) until the worker, once subscribed, has stored it; resent seqs are only duplicates."""
    device.send(device_id, token, _readings(3))
    time.sleep(0.3)
    return store.count_readings() == 3


def _until(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except DeliveryFailed:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
