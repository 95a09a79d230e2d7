"""Risk scoring speed: `vigil risk score` against only reading and writing the same files."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path


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
