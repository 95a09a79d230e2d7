"""Benchmarks, each against a baseline measured in the same run: ingestion, the live path, alerts, risk scoring."""

from vigil.bench.alerts import bench_alerts
from vigil.bench.ingest import bench_ingest, synthetic_batches
from vigil.bench.score import bench_score

__all__ = ["bench_alerts", "bench_ingest", "bench_score", "synthetic_batches"]
