"""Per-reading validation: known metric, accepted unit, physiological limits, sane time and seq."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vigil.domain import Device, Quality, Reading
from vigil.errors import InvalidInput
from vigil.ingest.mistakes import implausible_warning, likely_mistake
from vigil.metrics import METRICS, MetricName
from vigil.timeutil import parse_time

MAX_FUTURE = timedelta(minutes=5)
EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)


class ReadingError(InvalidInput):
    """A reading that cannot be accepted; the message names the field and the reason."""

    code = "invalid_reading"


@dataclass(frozen=True)
class Rejection:
    index: int
    error: str


@dataclass(frozen=True)
class ReadingWarning:
    """A reading stored but flagged implausible, with the likely mistake."""

    index: int
    warning: str


def _require(raw: dict[str, Any], field: str) -> Any:
    if field not in raw or raw[field] is None:
        raise ReadingError(f"{field}: required")
    return raw[field]


def _metric(raw: dict[str, Any]) -> MetricName:
    metric = _require(raw, "metric")
    if not isinstance(metric, str):
        raise ReadingError("metric: must be a string")
    if metric not in METRICS:
        raise ReadingError(f"metric: unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return MetricName(metric)


def _number(raw: dict[str, Any]) -> float:
    value = _require(raw, "value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReadingError("value: must be a number")
    if not math.isfinite(value):
        raise ReadingError("value: must be finite")
    return float(value)


def _canonical_value(metric_name: MetricName, value: float, raw: dict[str, Any]) -> float:
    metric = METRICS[metric_name]
    unit = raw.get("unit")
    if unit is None:
        if metric.unit_required:
            raise ReadingError(f"unit: required for {metric_name} (use {metric.unit!r})")
        return value
    if not isinstance(unit, str):
        raise ReadingError("unit: must be a string")
    converters = metric.accepted_units()
    if unit not in converters:
        raise ReadingError(f"unit: {unit!r} is not accepted for {metric_name}; use one of {sorted(converters)}")
    return converters[unit](value)


def _check_limits(metric_name: MetricName, value: float) -> Quality:
    metric = METRICS[metric_name]
    low, high = metric.hard_limits
    if not low <= value <= high:
        mistake = likely_mistake(metric_name, value)
        raise ReadingError(
            f"value: {value:g} {metric.unit} is outside the physiological limits of {metric_name} ({low:g}-{high:g})"
            + (f"; {mistake}" if mistake else "")
        )
    plausible_low, plausible_high = metric.plausible_limits
    return Quality.OK if plausible_low <= value <= plausible_high else Quality.IMPLAUSIBLE


def _time(raw: dict[str, Any], now: datetime) -> datetime:
    text = _require(raw, "time")
    if not isinstance(text, str):
        raise ReadingError("time: must be an ISO 8601 string such as 2026-11-27T10:00:00Z")
    try:
        time = parse_time(text)
    except ValueError:
        raise ReadingError(f"time: cannot parse {text[:40]!r} as an ISO 8601 time in range") from None
    if time < EARLIEST_TIME:
        raise ReadingError(f"time: {text[:40]} is before 1900")
    if time > now + MAX_FUTURE:
        raise ReadingError(f"time: {text} is more than {MAX_FUTURE.seconds // 60} minutes in the future")
    return time


def _seq(raw: dict[str, Any]) -> int | None:
    seq = raw.get("seq")
    if seq is None:
        return None
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63:
        raise ReadingError("seq: must be a non-negative integer")
    return seq


def validate_reading(raw: Any, device: Device, now: datetime) -> Reading:
    """Turn one raw reading into a canonical Reading for this device's patient, or raise ReadingError."""
    if not isinstance(raw, dict):
        raise ReadingError("reading: must be a JSON object")
    metric = _metric(raw)
    value = _canonical_value(metric, _number(raw), raw)
    quality = _check_limits(metric, value)
    return Reading(
        patient_id=device.patient_id,
        device_id=device.device_id,
        metric=metric,
        time=_time(raw, now),
        value=value,
        unit=METRICS[metric].unit,
        seq=_seq(raw),
        quality=quality,
    )


def validate_batch(
    raws: list[Any], device: Device, now: datetime
) -> tuple[list[Reading], list[Rejection], list[ReadingWarning]]:
    """Validate every reading of a batch independently: good ones pass (implausible ones with a warning naming the
    likely mistake), bad ones get their reason."""
    readings, rejected, warnings = [], [], []
    for index, raw in enumerate(raws):
        try:
            reading = validate_reading(raw, device, now)
        except ReadingError as error:
            rejected.append(Rejection(index, str(error)))
            continue
        readings.append(reading)
        if reading.quality == Quality.IMPLAUSIBLE:
            warnings.append(ReadingWarning(index, implausible_warning(reading.metric, reading.value)))
    return readings, rejected, warnings
