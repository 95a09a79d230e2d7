"""Benchmarks: ingestion throughput against a store-only baseline; alert burden against an instant-alert baseline."""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import uvicorn

from vigil.api.context import AppContext
from vigil.care import CareEngine
from vigil.config import load_settings
from vigil.devices import WardSimulator, mixed_ward
from vigil.domain import AlertDraft, AlertRule, Device, Reading
from vigil.ingest.validation import validate_batch
from vigil.signal import SignalProcessor
from vigil.timeutil import format_time, utc_now
from vigil.web.app import create_app

VITALS = {"heart_rate": 72.0, "spo2": 97.0, "resp_rate": 15.0, "body_temp": 36.8}


def synthetic_batches(count: int, batch_size: int) -> list[list[dict]]:
    """count readings of a resting wearable wearer (each vital once a minute, as the simulator sends), in batches."""
    metrics = list(VITALS.items())
    start = utc_now() - timedelta(minutes=count // len(metrics) + 1)
    readings = [
        {
            "metric": metrics[i % len(metrics)][0],
            "value": metrics[i % len(metrics)][1] + (i % 7) * 0.5,
            "time": format_time(start + timedelta(minutes=i // len(metrics))),
            "seq": i,
        }
        for i in range(count)
    ]
    return [readings[i : i + batch_size] for i in range(0, count, batch_size)]


def _timed_drain(ctx: AppContext, tick: Callable[[], None]) -> dict:
    """One stream processor working off the whole backlog: readings per second through signal, NEWS2, the alert
    rules, risk and glucose, each batch committed with its removal from the stream."""
    pending = ctx.store.pending_count()
    started = time.perf_counter()
    done = ctx.processor.drain(timeout=3600)
    elapsed = time.perf_counter() - started
    tick()
    return {
        "readings": done,
        "seconds": round(elapsed, 3),
        "readings_per_second": round(done / elapsed, 1),
        "all_processed": done == pending and ctx.store.pending_count() == 0,
    }


def _summed(drains: list[dict]) -> dict:
    readings, seconds = sum(d["readings"] for d in drains), sum(d["seconds"] for d in drains)
    return {
        "readings": readings,
        "seconds": round(seconds, 3),
        "readings_per_second": round(readings / seconds, 1),
        "all_processed": all(d["all_processed"] for d in drains),
    }


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


@contextmanager
def _own_schema(db_url: str | None):
    """On PostgreSQL, a fresh schema for this run (its search_path in the URL), dropped afterwards: runs on one
    database never see each other's readings."""
    if db_url is None or not db_url.startswith(("postgresql://", "postgres://")):
        yield db_url
        return
    import psycopg

    schema = f"vigil_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{db_url}{'&' if '?' in db_url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _device(ctx: AppContext, name: str) -> tuple[Device, str]:
    patient = ctx.store.add_patient(name)
    return ctx.store.add_device(patient.patient_id, "wearable")


def _post_batches(url: str, token: str, batches: list[list[dict]]) -> tuple[float, float, list[float]]:
    """One device's client (in its own process): POST each batch in turn; (wall-clock start, end, latencies)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        started, latencies = time.time(), []
        for batch in batches:
            t0 = time.perf_counter()
            response = client.post("/api/v1/ingest", json={"readings": batch})
            if response.status_code != 202 or response.json()["accepted"] != len(batch):
                raise RuntimeError(f"ingest failed: {response.status_code} {response.text[:200]}")
            latencies.append(time.perf_counter() - t0)
        return started, time.time(), latencies


def _http_from_clients(url: str, tokens: list[str], batches: list[list[dict]], tick: Callable[[], None]) -> dict:
    """Every client process sends its share of the batches at once, each as its own device; acknowledged readings
    per second from the first request to the last answer (process start-up not counted)."""
    shares = [batches[n :: len(tokens)] for n in range(len(tokens))]
    with ProcessPoolExecutor(len(tokens), mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = list(pool.map(_post_batches, [url] * len(tokens), tokens, shares))
    for _ in batches:
        tick()
    elapsed = max(end for _, end, _ in runs) - min(start for start, _, _ in runs)
    latencies = sorted(latency for *_, run in runs for latency in run)
    count = sum(len(b) for b in batches)
    return {
        "readings": count,
        "clients": len(tokens),
        "seconds": round(elapsed, 3),
        "readings_per_second": round(count / elapsed, 1),
        "batch_p50_ms": round(1000 * statistics.median(latencies), 2),
        "batch_p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 2),
    }


def bench_ingest(
    readings: int = 20_000,
    batch_size: int = 20,
    tick: Callable[[], None] = lambda: None,
    db_url: str | None = None,
    clients: int = 1,
) -> dict:
    """Five phases over the same synthetic stream: the raw bulk load (the limit), storing (and appending to the
    stream), the pipeline alone, HTTP ingest end to end (answered on storage; from `clients` processes at once, each
    its own device), and the stream processor working off what storing and HTTP appended; each phase on its own
    devices so none sees duplicates."""
    with tempfile.TemporaryDirectory() as home, _own_schema(db_url) as own_url:
        settings = load_settings(db=own_url or f"sqlite:///{Path(home) / 'bench.db'}", home=home)
        ctx = AppContext.build(settings)
        batches = synthetic_batches(readings, batch_size)
        store_device, _ = _device(ctx, "store baseline")
        pipeline_device, _ = _device(ctx, "pipeline")
        http_devices = [_device(ctx, f"http {n}") for n in range(clients)]

        def validated(device: Device, batch: list[dict]) -> list[Reading]:
            return validate_batch(batch, device, utc_now())[0]

        raw_bulk_load = _timed(batches, lambda b: ctx.store.bulk_load_only(validated(store_device, b)), tick)
        store_only = _timed(batches, lambda b: ctx.store.insert_readings(validated(store_device, b)), tick)
        drained = [_timed_drain(ctx, tick)]  # so the backlog stays under its bound during the HTTP phase
        pipeline_only = _timed([validated(pipeline_device, b) for b in batches], ctx.pipeline.process, tick)
        with _served(ctx) as url:
            http = _http_from_clients(url, [token for _, token in http_devices], batches, tick)
        stored = ctx.store.count_readings([store_device.device_id] + [device.device_id for device, _ in http_devices])
        drained.append(_timed_drain(ctx, tick))
        processor = _summed(drained)
    return {
        "db": "sqlite" if db_url is None else db_url.split(":", 1)[0],
        "batch_size": batch_size,
        "raw_bulk_load": raw_bulk_load,
        "store_only": store_only,
        "pipeline_only": pipeline_only,
        "http_end_to_end": http,
        "processor": processor,
        "http_vs_store_only": round(http["readings_per_second"] / store_only["readings_per_second"], 3),
        "http_vs_raw_bulk_load": round(http["readings_per_second"] / raw_bulk_load["readings_per_second"], 3),
        "all_stored": stored == 2 * readings,
    }


# -- alert burden ------------------------------------------------------------------------------
VITAL_SIGN_RULES = (AlertRule.NEWS2_URGENT, AlertRule.NEWS2_SINGLE_RED, AlertRule.HEART_RATE_RISE)


def _care_engines() -> dict[str, CareEngine]:
    """Vigil's engine and the baseline that alerts on every snapshot, active or not."""
    return {
        "vigil": CareEngine(),
        "baseline_instant": CareEngine(confirmation=timedelta(0), activity_aware=False),
    }


def _first_alert_minutes(alerts: list[AlertDraft], patient: str, rule: AlertRule, onset: datetime) -> float | None:
    times = [a.time for a in alerts if a.patient_id == patient and a.rule == rule]
    return round((min(times) - onset).total_seconds() / 60, 1) if times else None


def alert_burden_for_seed(seed: int, patients: int, hours: float, tick: Callable[[], None]) -> dict:
    """Replay one simulated ward through signal and both care engines; count who was alerted for what."""
    profiles = mixed_ward(patients, seed)
    start = utc_now() - timedelta(hours=hours)
    simulator, signal = WardSimulator(profiles, start, seed), SignalProcessor()
    engines = _care_engines()
    raised: dict[str, list[AlertDraft]] = {name: [] for name in engines}
    for step in range(int(hours * 12)):
        batches = simulator.advance(start + timedelta(minutes=5 * (step + 1)))
        readings = [
            r
            for b in batches
            for r in validate_batch(b.readings, Device(str(b.key), b.key.patient, b.key.kind), utc_now())[0]
        ]
        for snapshot in signal.process(readings):
            for name, engine in engines.items():
                raised[name] += engine.evaluate(snapshot).alerts
        tick()
    unwell = {p.key: simulator.start + p.deterioration.onset for p in profiles if p.deterioration}
    return {name: _summarise_alerts(alerts, profiles, unwell, hours) for name, alerts in raised.items()}


def _summarise_alerts(alerts: list[AlertDraft], profiles, unwell: dict[str, datetime], hours: float) -> dict:
    well = [p.key for p in profiles if p.key not in unwell]
    false_alarms = [a for a in alerts if a.patient_id in well and a.rule in VITAL_SIGN_RULES]
    return {
        "vital_sign_alerts_on_well_patients": len(false_alarms),
        "per_well_patient_day": round(len(false_alarms) / max(len(well), 1) / (hours / 24), 3),
        "by_rule": {rule.value: sum(a.rule == rule for a in false_alarms) for rule in VITAL_SIGN_RULES},
        "glucose_alerts": sum(a.rule.startswith("glucose") for a in alerts),
        "deteriorating_first_news2_alert_minutes_after_onset": {
            key: _first_alert_minutes(alerts, key, AlertRule.NEWS2_URGENT, onset) for key, onset in unwell.items()
        },
    }


def bench_alerts(
    seeds: list[int], patients: int = 12, hours: float = 24, tick: Callable[[], None] = lambda: None
) -> dict:
    """Alert burden of Vigil's care rules against the instant baseline, over simulated wards."""
    runs = {str(seed): alert_burden_for_seed(seed, patients, hours, tick) for seed in seeds}
    totals = {
        name: sum(run[name]["vital_sign_alerts_on_well_patients"] for run in runs.values()) for name in _care_engines()
    }
    return {
        "patients": patients,
        "hours": hours,
        "seeds": runs,
        "false_alarms_total": totals,
        "false_alarm_ratio_vigil_vs_baseline": round(totals["vigil"] / totals["baseline_instant"], 3)
        if totals["baseline_instant"]
        else None,
    }


# -- risk scoring ------------------------------------------------------------------------------
def bench_score(data: Path, stays: int, tick: Callable[[], None] = lambda: None) -> dict:
    """`vigil risk score` on ``stays`` Challenge files, against a baseline that only reads and writes them."""
    from vigil.datasets.physionet import read_files
    from vigil.models.risk import default_model
    from vigil.models.scoring import score_directory

    with tempfile.TemporaryDirectory() as scratch:
        in_dir, copy_dir, out_dir = (Path(scratch) / name for name in ("in", "copy", "out"))
        in_dir.mkdir()
        copy_dir.mkdir()
        for psv in read_files(data, limit=stays):
            (in_dir / Path(psv.name).name).write_bytes(psv.data)
        hours = sum(len(p.read_bytes().splitlines()) - 1 for p in in_dir.iterdir())
        tick()
        started = time.perf_counter()
        for psv in read_files(in_dir):
            (copy_dir / Path(psv.name).name).write_bytes(psv.data)
        io_seconds = time.perf_counter() - started
        tick()
        model = default_model()
        started = time.perf_counter()
        scored = score_directory(in_dir, out_dir, model)
        score_seconds = time.perf_counter() - started
        tick()
    return {
        "stays": scored,
        "hours": hours,
        "score_seconds": round(score_seconds, 2),
        "hours_per_second": round(hours / score_seconds),
        "read_write_only_seconds": round(io_seconds, 2),
        "score_vs_read_write_only": round(score_seconds / io_seconds, 1),
    }
