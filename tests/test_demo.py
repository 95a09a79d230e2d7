"""`vigil demo` from an empty directory: a live ward with a NEWS2 alert, a clean Ctrl-C, and a resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx

from vigil.ports import free_port
from vigil.store import SqlStore


def _start_demo(cwd, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("VIGIL_HOME", "VIGIL_DB", "VIGIL_MQTT")}
    return subprocess.Popen(
        [sys.executable, "-m", "vigil", "demo", "--port", str(port), "--speed", "600"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(cwd / "demo.log").open("ab"),
        text=True,
    )


def _login(process: subprocess.Popen) -> tuple[str, str]:
    banner = "".join(process.stdout.readline() for _ in range(5))
    match = re.search(r"login\s+(\S+) / (\S+)", banner)
    assert match, banner
    return match.group(1), match.group(2)


def _ward_until(base: str, username: str, password: str, ready, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            token = httpx.post(f"{base}/api/v1/auth/token", data={"username": username, "password": password}).json()[
                "access_token"
            ]
            headers = {"Authorization": f"Bearer {token}"}
            ward = httpx.get(f"{base}/api/v1/patients", headers=headers).json()
            alerts = httpx.get(f"{base}/api/v1/alerts", headers=headers).json()
            if ready(ward, alerts):
                return ward
        except (httpx.TransportError, KeyError):
            pass
        assert time.monotonic() < deadline, "the demo did not reach the expected state in time"
        time.sleep(1)


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(30)


def test_demo_shows_a_live_ward_with_an_alert_stops_cleanly_and_resumes(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = _start_demo(tmp_path, port)
    try:
        username, password = _login(process)

        def deteriorating_alerted(ward, alerts):
            live = [row for row in ward if row["status"] and "heart_rate" in row["status"]["values"]]
            return len(live) == 12 and any(a["rule"] == "news2_urgent" for a in alerts)

        ward = _ward_until(base, username, password, deteriorating_alerted)
        assert _stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
    manifest = json.loads((tmp_path / "vigil-data" / "simulator" / "demo-seed1.json").read_text())
    deteriorating = manifest["patients"]["p04"]["patient_id"]
    store = SqlStore(f"sqlite:///{tmp_path / 'vigil-data' / 'vigil.db'}")
    assert {a.patient_id for a in store.list_alerts() if a.rule == "news2_urgent"} == {deteriorating}

    again = _start_demo(tmp_path, port)
    try:
        assert _login(again) == (username, password)
        resumed = _ward_until(base, username, password, lambda ward, alerts: len(ward) == 12)
        assert {row["patient_id"] for row in resumed} == {row["patient_id"] for row in ward}
        assert _stop(again) == 0
    finally:
        if again.poll() is None:
            again.kill()
