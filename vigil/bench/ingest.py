"""Ingestion throughput: raw bulk load (the limit), storing, the pipeline, HTTP and MQTT, the processor."""

from __future__ import annotations

import multiprocessing
import secrets
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import uvicorn

from vigil.api.context import AppContext
from vigil.config import load_settings
from vigil.domain import Device, Reading
from vigil.ingest.mosquitto import SERVICE_USER, private_broker, write_broker_files
from vigil.ingest.mqtt import MqttIngestor
from vigil.ingest.validation import validate_batch
from vigil.mqtt import READINGS_TOPIC, MqttEndpoint, mqtt_client
from vigil.timeutil import format_time, utc_now
from vigil.web.app import create_app

MQTT_IN_FLIGHT = 64  # QoS 1 messages a device has awaiting PUBACK at once
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
def own_schema(db_url: str | None):
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


def _publish_batches(port: int, device_id: str, token: str, batches: list[list[dict]]) -> tuple[float, float]:
    """One device's client (in its own process): publish each batch with QoS 1, then wait for every PUBACK; the
    wall-clock start and the time the last PUBACK arrived."""
    client = mqtt_client(MqttEndpoint("127.0.0.1", port, False, device_id, token), client_id=device_id)
    client.max_inflight_messages_set(MQTT_IN_FLIGHT)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        topic = READINGS_TOPIC.format(device_id=device_id)
        started = time.time()
        sent = [client.publish(topic, orjson.dumps({"readings": batch}), qos=1) for batch in batches]
        for message in sent:
            message.wait_for_publish(120)
            if not message.is_published():
                raise RuntimeError(f"device {device_id}: message {message.mid} got no PUBACK")
        return started, time.time()
    finally:
        client.disconnect()
        client.loop_stop()


def _until_stored(ctx: AppContext, device_ids: list[str], count: int, timeout: float) -> float:
    """Wall-clock time at which the store first held ``count`` readings of these devices (polled every 20 ms)."""
    deadline = time.monotonic() + timeout
    while ctx.store.count_readings(device_ids) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {ctx.store.count_readings(device_ids)} of {count} MQTT readings stored")
        time.sleep(0.02)
    return time.time()


def _mqtt_from_clients(ctx: AppContext, home: Path, batches: list[list[dict]], clients: int, tick) -> dict:
    """Devices publish their share of the batches with QoS 1 to a private Mosquitto run on Vigil's own broker files;
    one MQTT ingestor (as `vigil worker` runs it) validates, stores and appends to the stream, then acknowledges.
    End to end: readings per second from the first publish to the last reading stored."""
    if shutil.which("mosquitto") is None:
        return {"skipped": "no mosquitto binary on this machine"}
    devices = [_device(ctx, f"mqtt {n}") for n in range(clients)]
    service_password = secrets.token_urlsafe(24)
    files = write_broker_files(home / "mosquitto", ctx.store.mqtt_credentials(), service_password)
    with private_broker(files, home / "mosquitto") as (port, _):
        ingestor = MqttIngestor(ctx.ingest, MqttEndpoint("127.0.0.1", port, False, SERVICE_USER, service_password))
        ingestor.start()
        try:
            shares = [batches[n::clients] for n in range(clients)]
            with ProcessPoolExecutor(clients, mp_context=multiprocessing.get_context("spawn")) as pool:
                ids, tokens = [d.device_id for d, _ in devices], [token for _, token in devices]
                runs = list(pool.map(_publish_batches, [port] * clients, ids, tokens, shares))
            count = sum(len(b) for b in batches)
            stored_at = _until_stored(ctx, ids, count, timeout=600)
        finally:
            ingestor.stop()
    for _ in batches:
        tick()
    started = min(start for start, _ in runs)
    return {
        "readings": count,
        "clients": clients,
        "messages": len(batches),
        "seconds": round(stored_at - started, 3),
        "readings_per_second": round(count / (stored_at - started), 1),
        "all_acknowledged_seconds": round(max(end for _, end in runs) - started, 3),
        "ingestor": dict(ingestor.stats),
    }


def bench_ingest(
    readings: int = 20_000,
    batch_size: int = 20,
    tick: Callable[[], None] = lambda: None,
    db_url: str | None = None,
    clients: int = 1,
) -> dict:
    """Six phases over the same synthetic stream: the raw bulk load (the limit), storing (and appending to the
    stream), the pipeline alone, HTTP ingest end to end (answered on storage; from `clients` processes at once, each
    its own device), MQTT QoS 1 end to end (as many devices publishing at once), and the stream processor working
    off what storing, HTTP and MQTT appended; each phase on its own devices so none sees duplicates."""
    with tempfile.TemporaryDirectory() as home, own_schema(db_url) as own_url:
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
        drained = [_timed_drain(ctx, tick)]  # the backlog stays under its bound during HTTP and MQTT
        pipeline_only = _timed([validated(pipeline_device, b) for b in batches], ctx.pipeline.process, tick)
        with _served(ctx) as url:
            http = _http_from_clients(url, [token for _, token in http_devices], batches, tick)
        drained.append(_timed_drain(ctx, tick))
        mqtt = _mqtt_from_clients(ctx, Path(home), batches, clients, tick)
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
        "mqtt_end_to_end": mqtt,
        "processor": processor,
        "http_vs_store_only": round(http["readings_per_second"] / store_only["readings_per_second"], 3),
        "http_vs_raw_bulk_load": round(http["readings_per_second"] / raw_bulk_load["readings_per_second"], 3),
        "mqtt_vs_raw_bulk_load": round(mqtt["readings_per_second"] / raw_bulk_load["readings_per_second"], 3)
        if "readings_per_second" in mqtt
        else None,
        "all_stored": stored == 2 * readings,
    }
