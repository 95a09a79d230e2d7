"""An upper-arm blood-pressure cuff: seated readings a few times a day, hourly for a patient being watched."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from vigil.devices.artefacts import Artefacts
from vigil.devices.device import SimulatedDevice
from vigil.devices.physiology import Physiology
from vigil.devices.profiles import PatientProfile
from vigil.devices.readings import make_reading

TWICE_DAILY = (7.5, 19.5)
FOUR_HOURLY = (3.5, 7.5, 11.5, 15.5, 19.5, 23.5)
HOURLY = tuple(hour + 0.5 for hour in range(24))
SCHEDULE_JITTER_MINUTES = 20
READING_VARIATION = {"systolic_bp": 6.0, "diastolic_bp": 4.0}  # reading to reading, biological and cuff
MIN_PULSE_PRESSURE = 20.0
IMPLAUSIBLE_PROBABILITY = 0.003


def measurement_hours(profile: PatientProfile) -> tuple[float, ...]:
    """Hours of the day (UTC) at which the patient takes a reading."""
    if profile.deterioration is not None:
        return HOURLY
    if profile.condition == "post_operative":
        return FOUR_HOURLY
    return TWICE_DAILY


class BpCuffDevice(SimulatedDevice):
    """Systolic and diastolic pressure at the scheduled times, each day's times a little different."""

    kind = "bp_cuff"

    def __init__(self, physiology: Physiology, start: datetime, seed_parts: tuple[int | str, ...]):
        super().__init__(physiology, start, seed_parts)
        self.hours = measurement_hours(self.profile)
        self.artefacts = Artefacts(self.rng, motion_probability=0.0, implausible_probability=IMPLAUSIBLE_PROBABILITY)
        self.schedule = lru_cache(maxsize=2)(self._schedule)

    def measure(self, time: datetime) -> list[dict[str, Any]]:
        if time not in self.schedule(time.date()):
            return []
        true_values = self.physiology.vitals(time)
        systolic, diastolic = (
            true_values[metric] + float(self.rng.normal(0, READING_VARIATION[metric]))
            for metric in ("systolic_bp", "diastolic_bp")
        )
        systolic = self.artefacts.corrupt("systolic_bp", systolic)
        diastolic = min(diastolic, systolic - MIN_PULSE_PRESSURE)
        return [make_reading("systolic_bp", systolic, time), make_reading("diastolic_bp", diastolic, time)]

    def _schedule(self, day: date) -> frozenset[datetime]:
        rng = self.daily_rng(day)
        midnight = datetime.combine(day, time(), tzinfo=UTC)
        jitter = rng.uniform(-SCHEDULE_JITTER_MINUTES, SCHEDULE_JITTER_MINUTES, size=len(self.hours))
        minutes = (round(hour * 60 + offset) for hour, offset in zip(self.hours, jitter, strict=True))
        return frozenset(midnight + timedelta(minutes=minute) for minute in minutes)
