"""The processor's memory per patient: the size of each stage's state after hours of a wearable's vitals (and a
CGM for some), to show it levels off once the longest retention is full."""

from __future__ import annotations

import gc
import random
import sys
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import FunctionType, ModuleType

from vigil.api.context import AppContext
from vigil.bench.ingest import VITALS
from vigil.config import load_settings
from vigil.domain import Reading
from vigil.pipeline import Pipeline
from vigil.timeutil import utc_now

BATCH_MINUTES = 5  # a wearable sends its minute readings in five-minute batches


def deep_size(root: object) -> int:
    """Bytes of an object and of everything it references, each object counted once (classes, modules and
    functions excluded)."""
    seen: set[int] = set()
    stack, size = [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | ModuleType | FunctionType):
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return size


def stage_states(pipeline: Pipeline) -> dict[str, object]:
    """Each stage's per-patient state in a pipeline, by stage name."""
    return {
        "signal": pipeline.signal._states,
        "risk": pipeline.risk._patients,
        "care": pipeline.care,
        "glucose": pipeline.glucose,
        "risk and forecast alerts": (pipeline.risk_alerts, pipeline.forecast_alerts),
    }


def _sizes(pipeline: Pipeline) -> dict[str, int]:
    return {stage: deep_size(state) for stage, state in stage_states(pipeline).items()}


def _batch(patient_id: str, device_id: str, start, cgm: bool, rng: random.Random) -> list[Reading]:
    readings = []
    for minute in range(BATCH_MINUTES):
        time = start + timedelta(minutes=minute)
        for metric, value in VITALS.items():
            readings.append(Reading(patient_id, device_id, metric, time, value + rng.gauss(0, 0.5), ""))
        if cgm and minute == 0:
            readings.append(Reading(patient_id, device_id, "glucose", time, 120 + rng.gauss(0, 10), "mg/dL"))
    return readings


def bench_memory(
    patients: int = 200,
    hours: float = 26.0,
    cgm_share: float = 0.2,
    seed: int = 1,
    tick: Callable[[], None] = lambda: None,
) -> dict:
    """Feed ``hours`` of readings for ``patients`` through the pipeline's stages (derive only: state advanced,
    nothing written) and size each stage's state every hour, less its size before any reading; bytes a patient."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as home:
        ctx = AppContext.build(load_settings(db=f"sqlite:///{Path(home) / 'memory.db'}", home=home))
        ids = [(ctx.store.add_patient(f"m{n}").patient_id, f"device-{n}") for n in range(patients)]
        start = utc_now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours + 1)
        with_cgm = {patient_id for patient_id, _ in ids[: round(cgm_share * patients)]}
        baseline = _sizes(ctx.pipeline)
        per_hour = []
        steps_per_hour = 60 // BATCH_MINUTES
        for step in range(int(hours * steps_per_hour)):
            at = start + timedelta(minutes=BATCH_MINUTES * step)
            ctx.pipeline.derive([r for p, d in ids for r in _batch(p, d, at, p in with_cgm, rng)])
            if (step + 1) % steps_per_hour == 0:
                grown = {stage: size - baseline[stage] for stage, size in _sizes(ctx.pipeline).items()}
                per_hour.append(
                    {
                        "hour": (step + 1) // steps_per_hour,
                        "bytes_per_patient": round(sum(grown.values()) / patients),
                        "by_stage": {stage: round(size / patients) for stage, size in grown.items()},
                    }
                )
                tick()
    return {"patients": patients, "hours": hours, "cgm_share": cgm_share, "per_hour": per_hour}
