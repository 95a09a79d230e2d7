"""Per-patient streaming state: bounded, time-sorted buffers that turn reading batches into snapshots."""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import numpy as np

from vigil.domain import Quality, Reading, VitalsSnapshot
from vigil.metrics import METRICS, MetricName
from vigil.signal.cleaning import FloatArray, plausible_mask
from vigil.signal.features import BASELINE_WINDOW_SECONDS, heart_rate_baseline
from vigil.signal.profiles import METRIC_PROFILES, MetricProfile
from vigil.signal.summary import LatestValue, MetricSummary, context_start, summarise_metric

DEFAULT_RETENTION = timedelta(seconds=BASELINE_WINDOW_SECONDS)
"""The longest any metric's samples are kept: the heart-rate baseline's 24 h."""
LATE_BATCH_SECONDS = 6 * 3600.0
"""A device's batch up to this late still finds, in every metric, all the samples its snapshot looks back over."""
ACTIVITY_WINDOW_SECONDS = 15 * 60
ACTIVE_STEPS = 150
"""Steps in the last 15 minutes from which the patient counts as active (a stroll is ~60-100 a minute):
vital signs measured then are exercise responses, not observations at rest."""


def epoch_seconds(time: datetime) -> float:
    """Seconds since the Unix epoch of a timezone-aware time."""
    if time.tzinfo is None:
        raise ValueError(f"time {time.isoformat()} has no timezone; readings carry UTC times")
    return time.timestamp()


def metric_retention(metric: str, profile: MetricProfile, longest: float) -> float:
    """Seconds of a metric's samples to keep before the latest reading: what its summary looks back over (the
    heart rate's 24-h baseline for heart rate) plus LATE_BATCH_SECONDS, at most ``longest``."""
    lookback = -context_start(profile, 0.0)
    if metric == MetricName.HEART_RATE:
        lookback = max(lookback, BASELINE_WINDOW_SECONDS)
    return min(longest, lookback + LATE_BATCH_SECONDS)


def utc_datetime(seconds: float) -> datetime:
    """The UTC time ``seconds`` after the Unix epoch."""
    return datetime.fromtimestamp(seconds, tz=UTC)


class MetricBuffer:
    """One metric's plausible samples, sorted by time, at most one sample per time; held as packed doubles (16 bytes
    a sample, against 64 as lists of Python floats): a day of a wearable's vitals for 10,000 patients is gigabytes."""

    def __init__(self) -> None:
        self._times = array("d")
        self._values = array("d")

    def __len__(self) -> int:
        return len(self._times)

    def add(self, time: float, value: float) -> bool:
        """Insert a sample in time order; False (and nothing stored) if that time is already held."""
        index = bisect_left(self._times, time)
        if index < len(self._times) and self._times[index] == time:
            return False
        self._times.insert(index, time)
        self._values.insert(index, value)
        return True

    def drop_before(self, cutoff: float) -> None:
        """Forget every sample older than ``cutoff``."""
        index = bisect_left(self._times, cutoff)
        del self._times[:index]
        del self._values[:index]

    def between(self, start: float, end: float) -> tuple[FloatArray, FloatArray]:
        """Times and values of the samples with ``start <= time <= end``."""
        first, last = bisect_left(self._times, start), bisect_right(self._times, end)
        return np.array(self._times[first:last], dtype=float), np.array(self._values[first:last], dtype=float)


class PatientSignalState:
    """One patient's recent readings per metric; ``update`` folds in a batch and returns a snapshot.

    Readings may arrive in any order; a second reading of a metric at an already held time is
    ignored, and implausible readings never enter the buffers. Each metric's buffer keeps what its summaries look
    back over plus six hours for late batches (``metric_retention``, at most ``retention``) before the latest reading
    time. "Now" is the latest reading time seen unless given.
    """

    def __init__(
        self,
        patient_id: str,
        profiles: Mapping[str, MetricProfile] = METRIC_PROFILES,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self.patient_id = patient_id
        self._profiles = profiles
        self._retention_seconds = {
            metric: metric_retention(metric, profile, retention.total_seconds()) for metric, profile in profiles.items()
        }
        self._buffers: dict[str, MetricBuffer] = {}
        self._latest_time: float | None = None
        self._implausible_low_glucose: tuple[float, float] | None = None  # (time, value) of the latest one

    def update(self, readings: Iterable[Reading], now: datetime | None = None) -> VitalsSnapshot:
        """Add a batch of this patient's readings and return the snapshot as of ``now``."""
        by_metric: dict[str, list[Reading]] = {}
        for reading in readings:
            by_metric.setdefault(reading.metric, []).append(reading)
        for metric, batch in by_metric.items():
            self._add(metric, batch)
        return self.snapshot(now)

    def snapshot(self, now: datetime | None = None) -> VitalsSnapshot:
        """Latest fresh cleaned values, window features and gap flags as of ``now``."""
        now_seconds = self._resolve_now(now)
        self._drop_expired(now_seconds)
        summaries = {metric: self._summarise(metric, buffer, now_seconds) for metric, buffer in self._buffers.items()}
        fresh = {metric: s.latest for metric, s in summaries.items() if s.latest is not None}
        features = {metric: dict(s.features) for metric, s in summaries.items() if s.features}
        heart_rate_context = self._heart_rate_context(fresh, now_seconds)
        if heart_rate_context:
            features.setdefault(MetricName.HEART_RATE, {}).update(heart_rate_context)
        activity = self._activity(now_seconds)
        if activity:
            features["activity"] = activity
        implausible_low = self._unexplained_implausible_low_glucose(fresh, now_seconds)
        if implausible_low:
            features.setdefault(MetricName.GLUCOSE, {}).update(implausible_low)
        return VitalsSnapshot(
            patient_id=self.patient_id,
            time=utc_datetime(now_seconds),
            values={metric: latest.value for metric, latest in fresh.items()},
            measured_at={metric: utc_datetime(latest.time) for metric, latest in fresh.items()},
            features=features,
            gaps={metric: s.in_gap for metric, s in summaries.items() if s.in_gap is not None},
        )

    def _summarise(self, metric: str, buffer: MetricBuffer, now: float) -> MetricSummary:
        profile = self._profiles[metric]
        times, values = buffer.between(context_start(profile, now), now)
        return summarise_metric(metric, times, values, now, profile)

    def _heart_rate_context(self, fresh: dict[str, LatestValue], now: float) -> dict[str, float]:
        """The 24-h heart-rate baseline (when there is enough data) and the latest fresh HRV."""
        context = {}
        baseline = self._heart_rate_baseline(now)
        if baseline is not None:
            context["baseline"] = baseline
        if MetricName.HRV_RMSSD in fresh:
            context["hrv_rmssd"] = fresh[MetricName.HRV_RMSSD].value
        return context

    def _unexplained_implausible_low_glucose(self, fresh: dict[str, LatestValue], now: float) -> dict[str, float]:
        """A glucose reading below what a sensor measures, newer than every plausible one and still fresh: a severe
        low or a unit mistake, never dropped unseen (the care stage alerts on it)."""
        if self._implausible_low_glucose is None:
            return {}
        time, value = self._implausible_low_glucose
        latest = fresh.get(MetricName.GLUCOSE)
        if now - time > self._profiles[MetricName.GLUCOSE].freshness_seconds or (latest and latest.time >= time):
            return {}
        return {"implausible_low": value, "implausible_low_at": time}

    def _activity(self, now: float) -> dict[str, float]:
        """Steps over the last 15 minutes and whether that makes the patient active; empty without steps data."""
        buffer = self._buffers.get(MetricName.STEPS)
        if buffer is None:
            return {}
        # A step count reported at t covers the minutes before t, so the window is (now - 15 min, now].
        _, steps = buffer.between(now - ACTIVITY_WINDOW_SECONDS + 1e-3, now)
        recent = float(steps.sum())
        return {"steps_15min": recent, "active": float(recent >= ACTIVE_STEPS)}

    def _heart_rate_baseline(self, now: float) -> float | None:
        buffer = self._buffers.get(MetricName.HEART_RATE)
        max_spacing = self._profiles[MetricName.HEART_RATE].max_imputable_gap_seconds
        if buffer is None or max_spacing is None:
            return None
        times, values = buffer.between(now - BASELINE_WINDOW_SECONDS, now)
        return heart_rate_baseline(times, values, now, max_spacing)

    def _add(self, metric: str, readings: list[Reading]) -> None:
        if metric not in self._profiles:
            raise ValueError(f"no signal profile for metric {metric!r}")
        if any(reading.patient_id != self.patient_id for reading in readings):
            raise ValueError(f"a reading for another patient was sent to {self.patient_id!r}")
        times = [epoch_seconds(reading.time) for reading in readings]
        values = [float(reading.value) for reading in readings]
        keep = plausible_mask(metric, values, [reading.quality == Quality.IMPLAUSIBLE for reading in readings])
        buffer = self._buffers.setdefault(metric, MetricBuffer())
        for time, value, plausible in zip(times, values, keep, strict=True):
            if plausible:
                buffer.add(time, value)
            elif metric == MetricName.GLUCOSE:
                self._note_implausible_glucose(time, value)
        batch_latest = max(times)
        self._latest_time = batch_latest if self._latest_time is None else max(self._latest_time, batch_latest)

    def _note_implausible_glucose(self, time: float, value: float) -> None:
        low, _ = METRICS[MetricName.GLUCOSE].plausible_limits
        newest = self._implausible_low_glucose
        if np.isfinite(value) and value < low and (newest is None or time > newest[0]):
            self._implausible_low_glucose = (time, value)

    @property
    def has_readings(self) -> bool:
        return self._latest_time is not None

    def _resolve_now(self, now: datetime | None) -> float:
        if now is not None:
            return epoch_seconds(now)
        if self._latest_time is None:
            raise ValueError(f"patient {self.patient_id!r} has no readings yet; pass `now`")
        return self._latest_time

    def _drop_expired(self, now: float) -> None:
        latest = max(now, self._latest_time or now)
        for metric, buffer in self._buffers.items():
            buffer.drop_before(latest - self._retention_seconds[metric])
        self._buffers = {metric: buffer for metric, buffer in self._buffers.items() if len(buffer)}


class SignalProcessor:
    """The signal stage for many patients: one ``PatientSignalState`` each, created on first reading."""

    def __init__(
        self, profiles: Mapping[str, MetricProfile] = METRIC_PROFILES, retention: timedelta = DEFAULT_RETENTION
    ) -> None:
        self._profiles = profiles
        self._retention = retention
        self._states: dict[str, PatientSignalState] = {}
        self._lock = threading.Lock()

    def process(self, readings: Iterable[Reading], as_of_batch: bool = False) -> list[VitalsSnapshot]:
        """Fold a batch into each patient's state; one snapshot per patient in the batch, in first-seen order.

        With ``as_of_batch`` each snapshot is taken at the batch's latest reading time rather than the latest
        time ever seen, so a device's late batch is judged as of its own time, not as stale data.
        """
        by_patient: dict[str, list[Reading]] = {}
        for reading in readings:
            by_patient.setdefault(reading.patient_id, []).append(reading)
        with self._lock:
            return [
                self.state_for(patient_id).update(batch, max(r.time for r in batch) if as_of_batch else None)
                for patient_id, batch in by_patient.items()
            ]

    def latest_snapshot(self, patient_id: str) -> VitalsSnapshot | None:
        """The patient's snapshot as of their latest reading, or None before any reading."""
        with self._lock:
            state = self._states.get(patient_id)
            return state.snapshot() if state is not None and state.has_readings else None

    def state_for(self, patient_id: str) -> PatientSignalState:
        """The patient's state, created empty on first use."""
        if patient_id not in self._states:
            self._states[patient_id] = PatientSignalState(patient_id, self._profiles, self._retention)
        return self._states[patient_id]
