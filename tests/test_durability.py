"""A reading answered with 202 survives the server being killed (SIGKILL) right after."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import httpx

from vigil.ports import free_port
from vigil.store import SqlStore
from vigil.timeutil import format_time, utc_now


def _wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited early"
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise TimeoutError("server did not start")


def test_accepted_readings_survive_sigkill(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'vigil.db'}"
    store = SqlStore(db_url)
    patient = store.add_patient("Grace Hopper")
    _, token = store.add_device(patient.patient_id, "wearable")
    store.close()
    port = free_port()
    env = {**os.environ, "VIGIL_HOME": str(tmp_path / "home")}
    server = subprocess.Popen(
        [sys.executable, "-m", "vigil", "serve", "--db", db_url, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "server.log").open("wb"),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, server)
        acknowledged = _post_until_killed(url, token, server.pid)
    finally:
        if server.poll() is None:
            server.kill()
    assert len(acknowledged) >= 100, "the server was killed before it acknowledged anything"
    stored = {r.seq for r in SqlStore(db_url).query_readings(patient.patient_id)}
    assert acknowledged <= stored


def _post_until_killed(url: str, token: str, pid: int) -> set[int]:
    """Post batches until the server dies (SIGKILL after 2 s); the seqs it answered 202 for."""
    killer = threading.Timer(2.0, os.kill, (pid, signal.SIGKILL))
    killer.start()
    start = utc_now() - timedelta(hours=12)  # a reading a second: room for 43,200 before the times reach now
    acknowledged: set[int] = set()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=5) as client:
        for batch in itertools.count():
            seqs = range(batch * 50, batch * 50 + 50)
            readings = [
                {
                    "metric": "heart_rate",
                    "value": 60 + s % 30,
                    "time": format_time(start + timedelta(seconds=s)),
                    "seq": s,
                }
                for s in seqs
            ]
            try:
                response = client.post("/api/v1/ingest", json={"readings": readings})
            except httpx.TransportError:
                break
            assert response.status_code == 202 and response.json()["accepted"] == len(seqs), response.text
            acknowledged.update(seqs)
    killer.join()
    return acknowledged
