"""`kill -9` under load, as an operator would see it: `vigil serve` (ingest only) and a `vigil process` are killed
mid-stream and replaced, on the embedded stream and on NATS JetStream; nothing acknowledged is lost or stored twice,
and the alerts are those of an undisturbed run, each raised once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pytest

from tests.conftest import free_port, wait_for_port
from vigil.api.context import AppContext
from vigil.config import load_settings
from vigil.timeutil import format_time, utc_now

NORMAL = {"resp_rate": 16.0, "spo2": 97.0, "systolic_bp": 124.0, "heart_rate": 72.0, "body_temp": 36.8}
HIGH = {"resp_rate": 24.0, "spo2": 93.0, "systolic_bp": 120.0, "heart_rate": 115.0, "body_temp": 38.5}
MINUTES = 60


def minute_batch(values: dict[str, float], minute: int) -> list[dict]:
    time_ = utc_now().replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - minute)
    return [
        {"metric": metric, "value": value, "time": format_time(time_), "seq": minute * 10 + i}
        for i, (metric, value) in enumerate(values.items())
    ]


def ward_batches() -> list[tuple[str, list[dict]]]:
    """An hour of three wearables, minute by minute: one patient deteriorates after 15 minutes."""
    return [
        (name, minute_batch(HIGH if name == "sick" and minute >= 15 else NORMAL, minute))
        for minute in range(MINUTES)
        for name in ("sick", "well", "steady")
    ]


def registered(settings) -> tuple[AppContext, dict[str, str], dict[str, str]]:
    ctx = AppContext.build(settings)
    tokens, patients = {}, {}
    for name in ("sick", "well", "steady"):
        patient = ctx.store.add_patient(name)
        _, tokens[name] = ctx.store.add_device(patient.patient_id, "wearable")
        patients[patient.patient_id] = name
    return ctx, tokens, patients


def alerts_by_name(ctx: AppContext, patients: dict[str, str]) -> list[tuple[str, str]]:
    return sorted((patients[a.patient_id], str(a.rule)) for a in ctx.store.list_alerts(limit=10_000))


def undisturbed(tmp_path, batches) -> list[tuple[str, str]]:
    ctx, tokens, patients = registered(load_settings(db=f"sqlite:///{tmp_path / 'calm.db'}", home=str(tmp_path / "c")))
    for name, batch in batches:
        ctx.ingest.ingest(ctx.ingest.authenticate(tokens[name]), {"readings": batch})
        ctx.processor.drain()
    return alerts_by_name(ctx, patients)


def _vigil(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vigil", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _post_until_acknowledged(port: int, token: str, batch: list[dict], deadline: float) -> None:
    """What a device does: send the batch again until it is acknowledged (the server may be down)."""
    while time.monotonic() < deadline:
        try:
            response = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/ingest",
                json={"readings": batch},
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )
            if response.status_code == 202:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("a batch was never acknowledged")


@pytest.fixture(params=["embedded", "nats"])
def stream_url(request) -> str:
    return "" if request.param == "embedded" else request.getfixturevalue("nats_stream_url")


def test_kill_9_of_serve_and_of_a_processor_loses_and_repeats_nothing(tmp_path, stream_url):
    batches = ward_batches()
    expected = undisturbed(tmp_path, batches)
    assert ("sick", "news2_urgent") in expected
    home, db = tmp_path / "home", f"sqlite:///{tmp_path / 'crash.db'}"
    ctx, tokens, patients = registered(load_settings(db=db, home=str(home)))  # the embedded stream: only counting
    env = {**os.environ, "VIGIL_HOME": str(home), "VIGIL_DB": db, "VIGIL_STREAM": stream_url}
    port = free_port()
    serve_args = ("serve", "--port", str(port), "--no-process")
    server, processor = _vigil(env, *serve_args), _vigil(env, "process")
    try:
        wait_for_port(port, timeout=30)
        deadline = time.monotonic() + 240
        for n, (name, batch) in enumerate(batches):
            if n == 2 * len(batches) // 3:
                server.send_signal(signal.SIGKILL)  # mid-stream; the devices keep their batches and resend
                server.wait(10)
                server = _vigil(env, *serve_args)
            if n == 3 * 22:  # minute 22: the sick patient's condition is confirming, its alert not yet raised
                processor.send_signal(signal.SIGKILL)  # its leases expire; a new processor takes over
                processor.wait(10)
                processor = _vigil(env, "process")
            _post_until_acknowledged(port, tokens[name], batch, deadline)
        while ctx.store.pending_count() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ctx.store.pending_count() == 0, "the new processor did not take over the stream"
    finally:
        for process in (server, processor):
            if process.poll() is None:
                process.terminate()
                process.wait(15)
    assert ctx.store.count_readings() == sum(len(batch) for _, batch in batches), "lost or stored twice"
    assert alerts_by_name(ctx, patients) == expected
