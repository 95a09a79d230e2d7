"""Readings in the ingest format: canonical units, device-style rounding and per-device sequence numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from vigil.metrics import METRICS

SEQ_SLOTS_PER_MINUTE = 16  # one slot per metric (there are 12), so a device never reuses a seq
_METRIC_SLOTS = {name: slot for slot, name in enumerate(METRICS)}

DECIMALS = {
    "heart_rate": 0,
    "spo2": 0,
    "systolic_bp": 0,
    "diastolic_bp": 0,
    "resp_rate": 0,
    "body_temp": 2,
    "glucose": 0,
    "steps": 0,
    "hrv_rmssd": 1,
    "carbs": 0,
    "insulin_bolus": 2,
    "insulin_basal": 2,
}


class DeviceKey(NamedTuple):
    """Names a simulated device by its patient profile and kind; the caller maps it to a device id."""

    patient: str
    kind: str

    def __str__(self) -> str:
        return f"{self.patient}/{self.kind}"


@dataclass(frozen=True)
class DeviceBatch:
    """The new readings of one device, ready to be sent as {"readings": [...]}."""

    key: DeviceKey
    readings: list[dict[str, Any]]


def sequence_number(metric: str, time: datetime) -> int:
    """The reading's seq: its minute since the epoch and its metric's slot, so it grows with time and
    stays the same when a device is restarted or a batch is resent."""
    return int(time.timestamp()) // 60 * SEQ_SLOTS_PER_MINUTE + _METRIC_SLOTS[metric]


def device_time(time: datetime) -> str:
    """A timestamp as devices send it: '2026-11-27T10:00:00Z'."""
    return time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_reading(metric: str, value: float, time: datetime) -> dict[str, Any]:
    """One ingest-format reading, rounded like a device would and kept inside the metric's hard limits."""
    spec = METRICS[metric]
    low, high = spec.hard_limits
    rounded = round(min(max(float(value), low), high), DECIMALS[metric])
    return {
        "metric": metric,
        "value": rounded,
        "unit": spec.unit,
        "time": device_time(time),
        "seq": sequence_number(metric, time),
    }
