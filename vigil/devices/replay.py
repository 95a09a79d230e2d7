"""Real ICU stays (PhysioNet 2019 PSV) replayed as device streams, hour by hour, through the live pipeline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from vigil.datasets.physionet import HOUR, STAY_ID, VITAL_METRICS
from vigil.devices.readings import DeviceBatch, DeviceKey, device_time, sequence_number
from vigil.metrics import METRICS, MetricName
from vigil.timeutil import parse_time

REPLAY_DEVICE = "icu_monitor"


def stay_readings(stay: pd.DataFrame, start_time: datetime) -> list[dict[str, Any]]:
    """One stay's measured vitals and glucose as ingest readings, hour h stamped ``start_time + h`` hours.

    Values are sent as recorded (no rounding or clamping), so the ingest stage judges them as it would a
    device's; seq numbers are the simulated devices' (metric slot per minute), so a resent replay is a duplicate.
    """
    if start_time.tzinfo is None:
        raise ValueError("start_time must be timezone-aware")
    if STAY_ID in stay.columns and stay[STAY_ID].nunique() > 1:
        raise ValueError("stay_readings takes the rows of one stay")
    present = [column for column in VITAL_METRICS if column in stay.columns]
    measured = stay.melt(id_vars=[HOUR], value_vars=present, var_name="column").dropna(subset=["value"])
    measured = measured.sort_values(HOUR, kind="stable")
    return [
        _reading(VITAL_METRICS[column], float(value), start_time + timedelta(hours=int(hour)))
        for hour, column, value in measured.itertuples(index=False)
    ]


def _reading(metric: MetricName, value: float, time: datetime) -> dict[str, Any]:
    return {
        "metric": metric,
        "value": value,
        "unit": METRICS[metric].unit,
        "time": device_time(time),
        "seq": sequence_number(metric, time),
    }


class StayReplay:
    """Each stay's charted vitals as one monitor's readings, hour h of the stay at ``start + h`` hours.

    Has the simulator's interface (``start``, ``time``, ``device_keys``, ``advance``) so ``run_simulation``
    drives it like the simulated ward.
    """

    def __init__(self, stays: pd.DataFrame, start: datetime):
        self.start = start.replace(minute=0, second=0, microsecond=0)
        self.time = self.start
        self._pending = {
            DeviceKey(str(stay_id), REPLAY_DEVICE): sorted(stay_readings(rows, self.start), key=lambda r: r["time"])
            for stay_id, rows in stays.groupby(STAY_ID, sort=True)
        }

    @property
    def device_keys(self) -> list[DeviceKey]:
        return list(self._pending)

    def advance(self, until: datetime) -> list[DeviceBatch]:
        """Every stay's readings stamped up to ``until`` that have not been handed out yet."""
        batches = []
        for key, readings in self._pending.items():
            due = [r for r in readings if parse_time(r["time"]) <= until]
            if due:
                self._pending[key] = readings[len(due) :]
                batches.append(DeviceBatch(key, due))
        self.time = max(self.time, until)
        return batches


def replay_hours(stays: pd.DataFrame) -> int:
    """Hours needed to replay the longest stay."""
    return int(stays.groupby(STAY_ID).size().max())


__all__ = ["REPLAY_DEVICE", "StayReplay", "replay_hours", "stay_readings"]
