"""Ingestion benchmark: store-only baseline, signal+care pipeline, and HTTP end to end, in one run."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn

from vigil.api.app import create_app
from vigil.api.context import AppContext
from vigil.config import load_settings
from vigil.domain import Device, Reading
from vigil.ingest.validation import validate_batch
from vigil.timeutil import format_time, utc_now

VITALS = {"heart_rate": 72.0, "spo2": 97.0, "resp_rate": 15.0, "body_temp": 36.8}


def synthetic_batches(count: int, batch_size: int) -> list[list[dict]]:
    """count readings of a resting wearable wearer (each vital once a minute, as the simulator sends), in batches."""
    metrics = list(VITALS.items())
    start = utc_now() - timedelta(minutes=count // len(metrics) + 1)
    readings = [
        {"metric": metrics[i % len(metrics)][0], "value": metrics[i % len(metrics)][1] + (i % 7) * 0.5,
         "time": format_time(start + timedelta(minutes=i // len(metrics))), "seq": i}
        for i in range(count)
    ]
    return [readings[i:i + batch_size] for i in range(0, count, batch_size)]


def _timed(batches: list, step: Callable[[object], None], tick: Callable[[], None]) -> dict:
    latencies = []
    started = time.perf_counter()
    for batch in batches:
        t0 = time.perf_counter()
        step(batch)
        latencies.append(time.perf_counter() - t0)
        tick()
    elapsed = time.perf_counter() - started
    readings = sum(len(b) for b in batches)
    ordered = sorted(latencies)
    return {
        "readings": readings,
        "seconds": round(elapsed, 3),
        "readings_per_second": round(readings / elapsed, 1),
        "batch_p50_ms": round(1000 * statistics.median(ordered), 2),
        "batch_p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
    }


@contextmanager
def _served(ctx: AppContext):
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _device(ctx: AppContext, name: str) -> tuple[Device, str]:
    patient = ctx.store.add_patient(name)
    return ctx.store.add_device(patient.patient_id, "wearable")


def bench_ingest(readings: int = 20_000, batch_size: int = 20, tick: Callable[[], None] = lambda: None,
                 db_url: str | None = None) -> dict:
    """Three phases over the same synthetic stream; each on its own device so none sees duplicates."""
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(db=db_url or f"sqlite:///{Path(home) / 'bench.db'}", home=home)
        ctx = AppContext.build(settings)
        batches = synthetic_batches(readings, batch_size)
        store_device, _ = _device(ctx, "store baseline")
        pipeline_device, _ = _device(ctx, "pipeline")
        http_device, token = _device(ctx, "http")

        def validated(device: Device, batch: list[dict]) -> list[Reading]:
            return validate_batch(batch, device, utc_now())[0]

        store_only = _timed(batches, lambda b: ctx.store.insert_readings(validated(store_device, b)), tick)
        pipeline_only = _timed([validated(pipeline_device, b) for b in batches], ctx.pipeline.process, tick)
        with _served(ctx) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            def post(batch: list[dict]) -> None:
                response = client.post("/api/v1/ingest", json={"readings": batch})
                if response.status_code != 202 or response.json()["accepted"] != len(batch):
                    raise RuntimeError(f"ingest failed: {response.status_code} {response.text[:200]}")

            http = _timed(batches, post, tick)
        stored = ctx.store.count_readings()
    return {
        "db": "sqlite" if db_url is None else db_url.split(":", 1)[0],
        "batch_size": batch_size,
        "store_only": store_only,
        "pipeline_only": pipeline_only,
        "http_end_to_end": http,
        "http_vs_store_only": round(http["readings_per_second"] / store_only["readings_per_second"], 3),
        "all_stored": stored == 2 * readings,
    }
