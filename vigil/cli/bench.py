"""`vigil bench`: benchmarks of ingestion, alerting and risk scoring, each against a baseline run beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from vigil.bench import bench_alerts, bench_ingest, bench_score
from vigil.cli.common import DbOption, JsonFlag, emit, err, fail

app = typer.Typer(help="Benchmarks; ratios are against a baseline measured in the same run.", no_args_is_help=True)
INGEST_PHASES = ("raw_bulk_load", "store_only", "pipeline_only", "http_end_to_end")


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
        task = progress.add_task("benchmarking ingestion", total=len(INGEST_PHASES) * -(-readings // batch_size) + 2)
        result = bench_ingest(readings, batch_size, lambda: progress.advance(task), db, clients)
    lines = [
        f"{phase:16s} {result[phase]['readings_per_second']:>10,.0f} readings/s   batch p50 "
        f"{result[phase]['batch_p50_ms']:.1f} ms  p99 {result[phase]['batch_p99_ms']:.1f} ms"
        for phase in INGEST_PHASES
    ]
    lines.append(f"{'processor':16s} {result['processor']['readings_per_second']:>10,.0f} readings/s   (one processor)")
    emit(
        result,
        as_json,
        "\n".join(lines)
        + f"\nHTTP / store-only throughput: {result['http_vs_store_only']:.2f}"
        + f"\nHTTP / raw bulk load: {result['http_vs_raw_bulk_load']:.3f}",
    )


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
