"""The production MQTT path from the command line: mqtt config -> mosquitto -> vigil worker <- vigil simulate --mqtt,
with `vigil process` raising the alerts from what the stateless worker stored."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
import time

from tests.conftest import require_service
from vigil.ports import free_port, wait_for_port
from vigil.store import SqlStore


def _vigil(env: dict, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vigil", *args], env=env, **kwargs)


def test_worker_ingests_simulated_devices_and_a_processor_alerts_on_them(tmp_path):
    require_service(shutil.which("mosquitto") is not None, "the mosquitto binary")
    home, db = tmp_path / "home", f"sqlite:///{tmp_path / 'worker.db'}"
    env = {**os.environ, "VIGIL_HOME": str(home), "VIGIL_DB": db}
    port = free_port()
    subprocess.run(
        [sys.executable, "-m", "vigil", "mqtt", "config", "--port", str(port)], env=env, check=True, capture_output=True
    )
    config = home / "mosquitto" / "mosquitto.conf"
    config.write_text(f"user {getpass.getuser()}\n" + config.read_text())
    broker = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = (tmp_path / "worker.log").open("wb")
    worker = simulator = processor = None
    try:
        wait_for_port(port)
        worker = _vigil(env, "worker", "--mqtt", f"mqtt://127.0.0.1:{port}", stdout=subprocess.DEVNULL, stderr=logs)
        processor = _vigil(env, "process", stdout=subprocess.DEVNULL, stderr=logs)
        simulator = _vigil(
            env,
            "simulate",
            "--patients",
            "4",
            "--mqtt",
            f"mqtt://127.0.0.1:{port}",
            "--hours",
            "6",
            "--speed",
            "20000",
            "--seed",
            "4",
            stdout=subprocess.DEVNULL,
            stderr=logs,
        )
        manifest = home / "simulator" / "ward-seed4.json"
        _until(
            lambda: _registered(manifest, home / "mosquitto" / "passwd"), "the simulator's devices in the password file"
        )
        assert simulator.wait(180) == 0
        store = SqlStore(db)
        deteriorating = json.loads(manifest.read_text())["patients"]["p04"]["patient_id"]
        _until(lambda: any(a.rule == "news2_urgent" for a in store.list_alerts()), "a NEWS2 alert", timeout=60)
        assert {a.patient_id for a in store.list_alerts() if a.rule == "news2_urgent"} == {deteriorating}
        assert store.count_readings() > 1000
        _until(lambda: store.pending_count() == 0, "the processor to finish the stream", timeout=60)
    finally:
        for process in (simulator, worker, processor, broker):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(15)
    assert worker.returncode == 0, "the worker stops cleanly on SIGTERM"
    assert processor.returncode == 0, "the processor stops cleanly on SIGTERM"


def _registered(manifest, passwd) -> bool:
    """Whether every device of the simulator's manifest is in the broker's password file yet."""
    if not manifest.exists():
        return False
    devices = [
        d[0] for entry in json.loads(manifest.read_text())["patients"].values() for d in entry["devices"].values()
    ]
    return all(f"{device}:" in passwd.read_text() for device in devices)


def _until(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
