"""A wrist wearable: heart rate, SpO2, temperature, respiration, steps and HRV through sleep and activity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from vigil.devices.artefacts import Artefacts, Dropout
from vigil.devices.device import SimulatedDevice
from vigil.devices.physiology import Physiology
from vigil.devices.readings import make_reading

SAMPLE_EVERY_MINUTES = {"heart_rate": 1, "spo2": 2, "resp_rate": 2, "steps": 5, "hrv_rmssd": 5, "body_temp": 10}
SENSOR_NOISE = {"heart_rate": 2.0, "spo2": 0.7, "resp_rate": 1.0, "body_temp": 0.08}
HRV_NOISE_SIGMA = 0.15  # log-normal
HEART_RATE_WANDER = (0.9, 1.2)  # AR(1) coefficient and innovation (/min): slow drift around the model
RESTING_STEPS_PER_MINUTE = 1.5
WALKING_CADENCE = (60.0, 70.0, 8.0)  # steps/min at rest-to-walk threshold, extra at full exertion, noise
BEDTIME = timedelta(hours=22, minutes=30)
WAKE_TIME = timedelta(hours=30, minutes=15)  # 06:15 the next morning
SLEEP_JITTER_MINUTES = 75
OFF_WRIST_EPISODES_PER_DAY = 1.5
OFF_WRIST_MINUTES = (20, 60)
MOTION_PROBABILITY = 0.004
IMPLAUSIBLE_PROBABILITY = 0.0004


@dataclass(frozen=True)
class ActivityPattern:
    """How often a patient starts an activity bout while awake, how hard (0-1) and for how long on average."""

    bouts_per_hour: float
    exertion: tuple[float, float]
    bout_minutes: float


ACTIVITY_PATTERNS = {
    "healthy": ActivityPattern(0.6, (0.3, 1.0), 20),
    "hypertensive": ActivityPattern(0.4, (0.2, 0.7), 20),
    "diabetic": ActivityPattern(0.5, (0.3, 0.9), 20),
    "post_operative": ActivityPattern(0.15, (0.1, 0.3), 10),
    "deteriorating": ActivityPattern(0.25, (0.1, 0.4), 10),
}


class WearableDevice(SimulatedDevice):
    """Samples every minute of the patient's day; each metric is sent on its own cadence."""

    kind = "wearable"

    def __init__(self, physiology: Physiology, start: datetime, seed_parts: tuple[int | str, ...]):
        super().__init__(physiology, start, seed_parts)
        self.activity = ACTIVITY_PATTERNS[self.profile.condition]
        self.off_wrist = Dropout(self.rng, OFF_WRIST_EPISODES_PER_DAY, OFF_WRIST_MINUTES)
        self.artefacts = Artefacts(self.rng, MOTION_PROBABILITY, IMPLAUSIBLE_PROBABILITY)
        self.sleep_window = lru_cache(maxsize=2)(self._sleep_window)
        self._exertion = 0.0
        self._heart_rate_wander = 0.0
        self._steps = 0

    def measure(self, time: datetime) -> list[dict[str, Any]]:
        unwell = self.physiology.is_unwell(time)
        asleep = not unwell and self.asleep(time)
        self._update_exertion(resting=asleep or unwell)
        self._update_heart_rate_wander()
        self._steps += self._steps_this_minute(asleep)
        if self.off_wrist.active():
            self._steps = 0
            return []
        true_values = self.physiology.vitals(time, asleep, self._exertion)
        true_values["heart_rate"] += self._heart_rate_wander
        true_values["hrv_rmssd"] = self.physiology.hrv_rmssd(true_values["heart_rate"])
        minute = int(time.timestamp()) // 60
        return [
            make_reading(metric, self._sample(metric, true_values), time)
            for metric, every in SAMPLE_EVERY_MINUTES.items()
            if minute % every == 0
        ]

    def asleep(self, time: datetime) -> bool:
        """Whether the patient sleeps at this moment (the night's window starts on the evening before noon)."""
        bedtime, wake_time = self.sleep_window((time - timedelta(hours=12)).date())
        return bedtime <= time < wake_time

    def _sleep_window(self, night: date) -> tuple[datetime, datetime]:
        rng = self.daily_rng(night)
        evening = datetime.combine(night, time(), tzinfo=UTC)
        jitter = rng.uniform(0, SLEEP_JITTER_MINUTES, size=2)
        return (
            evening + BEDTIME + timedelta(minutes=float(jitter[0])),
            evening + WAKE_TIME + timedelta(minutes=float(jitter[1])),
        )

    def _update_exertion(self, resting: bool) -> None:
        """A two-state activity chain: bouts start at random while awake and end after ~bout_minutes."""
        if resting:
            self._exertion = 0.0
        elif self._exertion > 0:
            if self.rng.random() < 1 / self.activity.bout_minutes:
                self._exertion = 0.0
        elif self.rng.random() < self.activity.bouts_per_hour / 60:
            self._exertion = float(self.rng.uniform(*self.activity.exertion))

    def _update_heart_rate_wander(self) -> None:
        persistence, innovation = HEART_RATE_WANDER
        self._heart_rate_wander = persistence * self._heart_rate_wander + float(self.rng.normal(0, innovation))

    def _steps_this_minute(self, asleep: bool) -> int:
        if asleep:
            return 0
        if self._exertion > 0:
            threshold, extra, noise = WALKING_CADENCE
            return max(0, round(self.rng.normal(threshold + extra * self._exertion, noise)))
        return int(self.rng.poisson(RESTING_STEPS_PER_MINUTE))

    def _sample(self, metric: str, true_values: dict[str, float]) -> float:
        """What the sensor reports for one metric: noisy, sometimes corrupted; steps since the last report."""
        if metric == "steps":
            steps, self._steps = self._steps, 0
            return steps
        if metric == "hrv_rmssd":
            return true_values[metric] * float(self.rng.lognormal(0, HRV_NOISE_SIGMA))
        measured = true_values[metric] + float(self.rng.normal(0, SENSOR_NOISE[metric]))
        return self.artefacts.corrupt(metric, measured, moving=self._exertion > 0)
