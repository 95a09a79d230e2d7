"""`vigil bench`: benchmarks of ingestion, alerting and risk scoring, each against a baseline run beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from vigil.bench import bench_alerts, bench_ingest, bench_score
from vigil.bench.live import MEMORY_SAMPLE_SECONDS, bench_live
from vigil.bench.memory import bench_memory
from vigil.cli.common import DbOption, JsonFlag, emit, err, fail

app = typer.Typer(help="Benchmarks; ratios are against a baseline measured in the same run.", no_args_is_help=True)
BEHIND_SCHEDULE_WARNING_S = 10.0
INGEST_PHASES = ("raw_bulk_load", "store_only", "pipeline_only", "http_end_to_end", "mqtt_end_to_end")


@app.command("ingest")
def ingest(
    readings: Annotated[int, typer.Option("--readings", min=100)] = 20_000,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=5000, help="20 = five minutes of a wearable")
    ] = 20,
    db: DbOption = None,
    clients: Annotated[
        int, typer.Option("--clients", min=1, max=64, help="HTTP client processes sending at once, a device each")
    ] = 1,
    as_json: JsonFlag = False,
) -> None:
    """Readings per second: raw bulk load (the limit), storing, the pipeline, HTTP ingestion (answered on storage)
    and the stream processor working off the backlog."""
    with Progress(console=err) as progress:
        task = progress.add_task("benchmarking ingestion", total=len(INGEST_PHASES) * -(-readings // batch_size) + 3)
        result = bench_ingest(readings, batch_size, lambda: progress.advance(task), db, clients)
    lines = [_phase_line(phase, result[phase]) for phase in INGEST_PHASES]
    lines.append(f"{'processor':16s} {result['processor']['readings_per_second']:>10,.0f} readings/s   (one processor)")
    emit(
        result,
        as_json,
        "\n".join(lines)
        + f"\nHTTP / store-only throughput: {result['http_vs_store_only']:.2f}"
        + f"\nHTTP / raw bulk load: {result['http_vs_raw_bulk_load']:.3f}",
    )


def _phase_line(phase: str, figures: dict) -> str:
    if "skipped" in figures:
        return f"{phase:16s} skipped: {figures['skipped']}"
    latency = (
        f"batch p50 {figures['batch_p50_ms']:.1f} ms  p99 {figures['batch_p99_ms']:.1f} ms"
        if "batch_p50_ms" in figures
        else f"first publish to last stored, {figures['messages']} messages"
    )
    return f"{phase:16s} {figures['readings_per_second']:>10,.0f} readings/s   {latency}"


@app.command("live")
def live(
    patients: Annotated[int, typer.Option("--patients", min=10, max=100_000)] = 10_000,
    minutes: Annotated[float, typer.Option("--minutes", min=0.25, help="soak length, in real time")] = 10.0,
    lows: Annotated[int, typer.Option("--lows", min=1, help="patients whose CGM reads one urgent low")] = 200,
    clients: Annotated[int, typer.Option("--clients", min=1, max=16, help="client processes sending")] = 2,
    db: DbOption = None,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    as_json: JsonFlag = False,
) -> None:
    """Ingest-to-alert latency and memory over a soak: `vigil serve` and `vigil process` with PATIENTS sending at
    their devices' normal rates (vitals each minute, glucose every 5 min) in real time."""
    if lows > patients:
        fail(f"--lows: {lows} is more than --patients {patients}")
    with Progress(console=err) as progress:
        task = progress.add_task("soaking the live path", total=int(60 * minutes / MEMORY_SAMPLE_SECONDS) + 3)
        result = bench_live(patients, minutes, lows, clients, db, seed, lambda: progress.advance(task))
    alert, memory = result["ingest_to_alert"], result["memory"]
    lines = [
        f"{result['patients']:,} patients, {result['readings_per_second']:,.0f} readings/s in "
        f"{result['requests_per_second']:,.0f} requests/s for {minutes:g} min (request p99 {result['request_p99_ms']} ms)",
        f"ingest to alert: {alert['alerted']} of {alert['lows']} lows alerted, p50 {alert.get('p50_ms')} ms, "
        f"p99 {alert.get('p99_ms')} ms",
    ] + [
        f"{name} memory: {m['first_minute_mb']} MB after warm-up, {m['last_minute_mb']} MB at the end "
        f"({m['slope_mb_per_minute']:+} MB/min)"
        for name, m in memory.items()
    ]
    if result["max_behind_schedule_s"] > BEHIND_SCHEDULE_WARNING_S:
        err.print(
            f"warning: the clients fell {result['max_behind_schedule_s']:.0f} s behind their schedule, so the load was "
            "lower than the patients' rates; rerun with more --clients"
        )
    emit(result, as_json, "\n".join(lines))


@app.command("memory")
def memory(
    patients: Annotated[int, typer.Option("--patients", min=1, max=10_000)] = 200,
    hours: Annotated[float, typer.Option("--hours", min=1, max=24 * 8, help="simulated hours fed")] = 26.0,
    cgm_share: Annotated[float, typer.Option("--cgm-share", min=0, max=1, help="share of patients with a CGM")] = 0.2,
    as_json: JsonFlag = False,
) -> None:
    """The processor's state per patient, hour by hour and by stage, fed a wearable's vitals every minute (and a CGM
    every 5 min for some): it must level off once the longest retention (24 h) is full."""
    with Progress(console=err) as progress:
        task = progress.add_task("feeding the stages", total=int(hours))
        result = bench_memory(patients, hours, cgm_share, tick=lambda: progress.advance(task))
    lines = [
        f"hour {row['hour']:>3}: {row['bytes_per_patient'] / 1024:8.1f} KiB a patient  "
        + "  ".join(f"{stage} {size / 1024:.1f}" for stage, size in row["by_stage"].items())
        for row in result["per_hour"]
    ]
    emit(result, as_json, "\n".join(lines))


@app.command("alerts")
def alerts(
    seeds: Annotated[str, typer.Option("--seeds", help="comma-separated ward seeds")] = "1,2,3",
    patients: Annotated[int, typer.Option("--patients", min=4, max=100)] = 12,
    hours: Annotated[float, typer.Option("--hours", min=1, max=24 * 14)] = 24.0,
    as_json: JsonFlag = False,
) -> None:
    """Alerts on well patients and time to alert for the deteriorating one: Vigil vs alerting on every snapshot."""
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        fail(f"--seeds: {seeds!r} is not a comma-separated list of integers")
    with Progress(console=err) as progress:
        task = progress.add_task("simulating wards", total=len(seed_list) * int(hours * 12))
        result = bench_alerts(seed_list, patients, hours, lambda: progress.advance(task))
    lines = [
        f"seed {seed}: "
        + "; ".join(
            f"{name} {run[name]['vital_sign_alerts_on_well_patients']} false alarms, first NEWS2 alert "
            f"{run[name]['deteriorating_first_news2_alert_minutes_after_onset']} min after onset"
            for name in run
        )
        for seed, run in result["seeds"].items()
    ]
    lines.append(f"false alarms, Vigil / baseline: {result['false_alarm_ratio_vigil_vs_baseline']}")
    emit(result, as_json, "\n".join(lines))


@app.command("score")
def score(
    data: Annotated[Path, typer.Argument(help="PhysioNet 2019 files: a directory or the .tar.gz")],
    stays: Annotated[int, typer.Option("--stays", min=1)] = 3000,
    as_json: JsonFlag = False,
) -> None:
    """Time `vigil risk score` (shipped model) on N stays, against only reading and writing the same files."""
    with Progress(console=err) as progress:
        task = progress.add_task("benchmarking risk scoring", total=3)
        result = bench_score(data, stays, lambda: progress.advance(task))
    emit(
        result,
        as_json,
        f"{result['stays']} stays, {result['hours']} hours scored in {result['score_seconds']} s "
        f"({result['hours_per_second']} hours/s); reading and writing alone: "
        f"{result['read_write_only_seconds']} s",
    )
