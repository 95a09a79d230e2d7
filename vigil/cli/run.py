"""`vigil serve`, `worker`, `process`, `simulate` and `demo`: the long-running commands, each until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from vigil.api.context import AppContext
from vigil.cli.common import (
    DbOption,
    TlsCertOption,
    TlsKeyOption,
    err,
    fail,
    refusing,
    setup_logging,
    stays_with_progress,
    store_for,
    tls_pair,
)
from vigil.config import Settings, load_settings
from vigil.demo import RegisteredWard, demo_ward, replayed_ward, simulated_ward
from vigil.devices import (
    DeviceClient,
    DeviceKey,
    RunProgress,
    SimClock,
    build_clients,
    run_simulation,
    transport_for_url,
)
from vigil.ingest.mosquitto import SERVICE_PASSWORD_SECRET, SERVICE_USER, WORKER_USER
from vigil.ingest.mqtt import MqttIngestor
from vigil.mqtt import MqttEndpoint, parse_mqtt_url
from vigil.pipeline import Renotifier
from vigil.web.app import create_app

app = typer.Typer()  # added to the root without a name: these are top-level commands
MqttOption = Annotated[str | None, typer.Option("--mqtt", help="mqtt://host:1883 or mqtts://... (VIGIL_MQTT)")]
CaFileOption = Annotated[
    str | None,
    typer.Option(
        "--ca-file", help="CA certificate for mqtts:// and https:// servers (VIGIL_CA_FILE; default: the system's CAs)"
    ),
]
StreamOption = Annotated[
    str | None,
    typer.Option("--stream", help="the stream between ingest and processing (VIGIL_STREAM; default: embedded)"),
]
WORKER_STATS_SECONDS = 30
FINITE_RUN_FLUSH_SECONDS = 900.0
"""A run of --hours H delivers everything it generated (retrying for up to 15 min), however fast it was generated."""


@app.command()
def serve(
    db: DbOption = None,
    mqtt: MqttOption = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    secure_cookies: Annotated[
        bool, typer.Option("--secure-cookies", help="Secure cookies without --tls-* (behind a TLS-terminating proxy)")
    ] = False,
    ca_file: CaFileOption = None,
    stream: StreamOption = None,
    process: Annotated[
        bool,
        typer.Option(
            "--process/--no-process", help="also process the stream here (--no-process: leave it to `vigil process`)"
        ),
    ] = True,
) -> None:
    """Serve the API and dashboard (HTTPS with --tls-cert/--tls-key); with --mqtt also ingest from the broker; by
    default also a stream processor (one owner among any others on the same stream)."""
    setup_logging()
    tls = tls_pair(tls_cert, tls_key)
    settings = _with_ca(load_settings(db, mqtt, stream=stream), ca_file)
    ctx = AppContext.build(settings, store_for(settings), tls=tls is not None, secure_cookies=secure_cookies)
    ingestor = _start_mqtt(ctx, settings, SERVICE_USER) if settings.mqtt_url else None
    processing = _Processing(ctx) if process else None
    try:
        _serve_until_stopped(create_app(ctx), host, port, "info", tls)
    finally:
        if ingestor:
            ingestor.stop()
        if processing:
            processing.stop()


@app.command()
def worker(
    db: DbOption = None,
    mqtt: MqttOption = None,
    client_id: Annotated[
        str,
        typer.Option(
            "--client-id",
            help="the worker's broker login and client id, unique per worker: vigil-ingest-1..N (`mqtt config --workers`)",
        ),
    ] = WORKER_USER.format(1),
    ca_file: CaFileOption = None,
    stream: StreamOption = None,
) -> None:
    """Stateless MQTT ingest (mqtts:// for TLS): validate, store, append to the stream, PUBACK. Several may run;
    `vigil process` (or `vigil serve`) processes what they store."""
    setup_logging()
    settings = _with_ca(load_settings(db, mqtt, stream=stream), ca_file)
    if not settings.mqtt_url:
        fail("--mqtt: required (or set VIGIL_MQTT)")
    ctx = AppContext.build(settings, store_for(settings))
    ingestor = _start_mqtt(ctx, settings, client_id)
    stop = _stop_on_signals(signal.SIGINT, signal.SIGTERM)
    while not stop.wait(WORKER_STATS_SECONDS):
        err.print(f"worker stats: {dict(ingestor.stats)}")
    ingestor.stop()


@app.command()
def process(db: DbOption = None, stream: StreamOption = None) -> None:
    """Stream processor: clean, score, advise and alert on the readings of the partitions it owns. Any number may
    run on one stream; a stopped or dead one's partitions are taken over within 10 seconds."""
    setup_logging()
    settings = load_settings(db, stream=stream)
    ctx = AppContext.build(settings, store_for(settings))
    processing = _Processing(ctx)
    stop = _stop_on_signals(signal.SIGINT, signal.SIGTERM)
    while not stop.wait(WORKER_STATS_SECONDS):
        err.print(f"processor stats: partitions {sorted(ctx.processor.owned)}, {dict(ctx.processor.stats)}")
    processing.stop()


@app.command()
def simulate(
    patients: Annotated[int, typer.Option("--patients", min=1, max=500, help="number of simulated patients")],
    url: Annotated[str | None, typer.Option("--url", help="Vigil's HTTP base URL, e.g. http://127.0.0.1:8000")] = None,
    mqtt: Annotated[str | None, typer.Option("--mqtt", help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883")] = None,
    speed: Annotated[float, typer.Option("--speed", min=0.01, help="simulated seconds per wall-clock second")] = 1.0,
    hours: Annotated[
        float | None, typer.Option("--hours", min=0.01, help="simulate the last H hours, then stop")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    replay: Annotated[
        Path | None,
        typer.Option(
            "--replay",
            help="replay real ICU stays from PhysioNet 2019 PSV files (a directory or .tar.gz) instead of simulating",
        ),
    ] = None,
    db: DbOption = None,
    ca_file: CaFileOption = None,
) -> None:
    """Run N simulated patients' devices (or N replayed ICU stays) as real clients over HTTP or MQTT.

    Patients and devices are registered in the store (--db / VIGIL_DB) on the first run and reused after.
    """
    if (url is None) == (mqtt is None):
        fail("give exactly one of --url or --mqtt")
    settings = load_settings(db)
    store = store_for(settings)
    if replay is not None:
        ward = replayed_ward(settings, store, stays_with_progress(replay, limit=patients), replay.stem, hours)
    else:
        ward = simulated_ward(settings, store, patients, seed, hours)
    with refusing(ValueError):
        transport = transport_for_url(url or mqtt, ca_file=ca_file or settings.ca_file)
    clients = build_clients(ward.credentials, transport, seed)
    stop = _stop_on_signals(signal.SIGINT)
    err.print(
        f"{'replaying' if replay else 'simulating'} {patients} patients from {ward.simulator.start:%Y-%m-%d %H:%M} UTC "
        f"at {speed:g}x to {url or mqtt}"
    )
    final = _run_with_progress(ward, clients, SimClock(ward.simulator.start, speed), stop)
    transport.close()
    totals = final.totals
    err.print(
        f"sent {totals.readings_sent} readings in {totals.batches_sent} batches "
        f"({totals.batches_resent} resent, {totals.duplicates} duplicates, {final.pending} undelivered)"
    )


@app.command()
def demo(
    patients: Annotated[int, typer.Option("--patients", min=1, max=200)] = 12,
    speed: Annotated[float, typer.Option("--speed", min=1, help="simulated seconds per second until live")] = 60.0,
    port: Annotated[int, typer.Option("--port")] = 8000,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    seed: Annotated[int, typer.Option("--seed")] = 1,
) -> None:
    """A simulated ward streaming into the dashboard: SQLite under ./vigil-data, login printed."""
    setup_logging()
    logging.getLogger("vigil.devices").setLevel(logging.WARNING)
    settings = load_settings()
    ctx = AppContext.build(settings, store_for(settings))
    ward = demo_ward(ctx, patients, seed)
    start = ward.simulator.start
    stop = threading.Event()
    runner = threading.Thread(
        target=run_simulation,
        args=(ward.simulator, ward.clients, SimClock(start, speed), stop),
        kwargs={"flush_seconds": 5},
        name="simulator",
        daemon=True,
    )
    Console().print(
        f"[bold]Vigil demo[/bold]: {patients} simulated patients from {start:%H:%M} UTC at {speed:g}x "
        f"(store {settings.db_url})\n"
        f"  dashboard  http://{host}:{port}/\n  login      {ward.login.username} / {ward.login.password}\n"
        "  Ctrl-C stops; running again resumes."
    )
    runner.start()
    processing = _Processing(ctx)
    try:
        _serve_until_stopped(create_app(ctx), host, port, "warning")
    finally:
        processing.stop()
        stop.set()
        runner.join(15)
        err.print("demo stopped; data kept in " + str(settings.home))


class _Processing:
    """A started processor and its re-notifier, stopped together."""

    def __init__(self, ctx: AppContext) -> None:
        self.processor = ctx.processor.start()
        self.renotifier = Renotifier(ctx.processor).start()

    def stop(self) -> None:
        self.renotifier.stop()
        self.processor.stop()


def _with_ca(settings: Settings, ca_file: str | None) -> Settings:
    return replace(settings, ca_file=ca_file) if ca_file else settings


def _stop_on_signals(*signals: signal.Signals) -> threading.Event:
    """An event set when the process receives any of these signals."""
    stop = threading.Event()
    for signum in signals:
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _start_mqtt(ctx: AppContext, settings: Settings, login: str) -> MqttIngestor:
    """Ingest from the broker of VIGIL_MQTT, logging in as this service user unless the URL names a user; the broker
    makes the login the client id (use_username_as_clientid), so each process needs its own."""
    endpoint = parse_mqtt_url(settings.mqtt_url)
    if endpoint.username is None:
        endpoint = MqttEndpoint(
            endpoint.host, endpoint.port, endpoint.tls, login, settings.secret(SERVICE_PASSWORD_SECRET)
        )
    ingestor = MqttIngestor(ctx.ingest, endpoint, client_id=endpoint.username or login, ca_file=settings.ca_file)
    ingestor.start()
    err.print(f"ingesting MQTT from {endpoint.host}:{endpoint.port}")
    return ingestor


def _serve_until_stopped(asgi_app, host: str, port: int, log_level: str, tls: tuple[Path, Path] | None = None) -> None:
    """Run uvicorn (HTTPS with `tls` = (certificate, key)) in a thread until Ctrl-C or SIGTERM, then shut it
    down gracefully (exit status 0)."""
    cert, key = tls or (None, None)
    server = uvicorn.Server(
        uvicorn.Config(asgi_app, host=host, port=port, log_level=log_level, ssl_certfile=cert, ssl_keyfile=key)
    )
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    stop = _stop_on_signals(signal.SIGINT, signal.SIGTERM)
    thread.start()
    while thread.is_alive() and not stop.wait(0.5):
        pass
    server.should_exit = True
    thread.join(30)
    if not server.started:
        fail(f"could not serve on {host}:{port} (see the log above)")


def _run_with_progress(
    ward: RegisteredWard, clients: dict[DeviceKey, DeviceClient], clock: SimClock, stop: threading.Event
) -> RunProgress:
    """Run the simulation with a progress line on stderr: simulated time, readings sent, duplicates, pending."""
    start, hours = ward.simulator.start, ward.hours
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task("starting", total=hours)

        def report(state: RunProgress) -> None:
            done = (state.sim_time - start).total_seconds() / 3600
            progress.update(
                task,
                completed=done if hours else 0,
                description=f"sim {state.sim_time:%Y-%m-%d %H:%M} UTC · {state.totals.readings_sent} sent · "
                f"{state.totals.duplicates} dup · {state.pending} pending",
            )

        return run_simulation(
            ward.simulator,
            clients,
            clock,
            stop,
            hours,
            report,
            flush_seconds=FINITE_RUN_FLUSH_SECONDS if hours else 30.0,
        )
