"""The body behind the devices: a patient's true vital signs through the day, in sleep, activity and sepsis."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from vigil.devices.profiles import PatientProfile

VITALS = ("heart_rate", "spo2", "resp_rate", "body_temp", "systolic_bp", "diastolic_bp")

# Each patient's resting, daytime-average values are drawn uniformly from their condition's ranges.
BASELINE_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "healthy": {
        "heart_rate": (60, 72),
        "spo2": (97, 99),
        "resp_rate": (12, 16),
        "body_temp": (36.4, 36.8),
        "systolic_bp": (110, 126),
        "diastolic_bp": (70, 80),
        "hrv_rmssd": (35, 60),
    },
    "hypertensive": {
        "heart_rate": (68, 80),
        "spo2": (95, 98),
        "resp_rate": (13, 17),
        "body_temp": (36.4, 36.8),
        "systolic_bp": (144, 158),
        "diastolic_bp": (90, 100),
        "hrv_rmssd": (20, 35),
    },
    "diabetic": {
        "heart_rate": (66, 78),
        "spo2": (96, 98),
        "resp_rate": (12, 16),
        "body_temp": (36.4, 36.8),
        "systolic_bp": (116, 130),
        "diastolic_bp": (74, 84),
        "hrv_rmssd": (25, 45),
    },
    "post_operative": {
        "heart_rate": (70, 80),
        "spo2": (95, 97),
        "resp_rate": (14, 18),
        "body_temp": (36.6, 36.9),
        "systolic_bp": (115, 130),
        "diastolic_bp": (72, 82),
        "hrv_rmssd": (20, 35),
    },
    "deteriorating": {
        "heart_rate": (78, 86),
        "spo2": (95, 97),
        "resp_rate": (15, 18),
        "body_temp": (36.7, 37.0),
        "systolic_bp": (115, 125),
        "diastolic_bp": (74, 82),
        "hrv_rmssd": (20, 35),
    },
}
# Fully developed sepsis, drawn per patient: tachycardia, fever, hypotension, desaturation, tachypnoea.
SEPSIS_SHIFT_RANGES = {
    "heart_rate": (36, 45),
    "body_temp": (1.6, 2.0),
    "systolic_bp": (-45, -37),
    "diastolic_bp": (-25, -18),
    "spo2": (-8, -6),
    "resp_rate": (9, 12),
}
CIRCADIAN_AMPLITUDES = {"heart_rate": 4.0, "body_temp": 0.3, "systolic_bp": 6.0, "diastolic_bp": 4.0, "resp_rate": 0.5}
SLEEP_SHIFTS = {
    "heart_rate": -7.0,
    "resp_rate": -2.0,
    "spo2": -1.0,
    "systolic_bp": -10.0,
    "diastolic_bp": -6.0,
    "body_temp": -0.1,
}
EXERTION_SHIFTS = {  # at full exertion
    "heart_rate": 55.0,
    "resp_rate": 10.0,
    "spo2": -0.5,
    "systolic_bp": 20.0,
    "diastolic_bp": 5.0,
    "body_temp": 0.2,
}
POST_OPERATIVE_SHIFTS = {"heart_rate": 10.0, "body_temp": 0.4, "resp_rate": 2.0}
POST_OPERATIVE_RECOVERY = timedelta(hours=24)
HRV_HEART_RATE_EXPONENT = 2.0  # RMSSD falls with the square of the heart-rate rise
UNWELL_SEVERITY = 0.2  # from here on a septic patient neither sleeps nor exercises


def circadian(time: datetime) -> float:
    """The body clock: -1 at 04:00 (the nadir), +1 at 16:00, in the patient's (UTC) day."""
    hours = time.hour + time.minute / 60
    return -math.cos(2 * math.pi * (hours - 4) / 24)


def _draw(ranges: dict[str, tuple[float, float]], rng: np.random.Generator) -> dict[str, float]:
    return {name: float(rng.uniform(low, high)) for name, (low, high) in ranges.items()}


class Physiology:
    """One patient's true vital signs as a function of time, sleep and exertion; sensors add their own noise."""

    def __init__(self, profile: PatientProfile, start: datetime, rng: np.random.Generator):
        self.profile = profile
        self.start = start
        self.baseline = _draw(BASELINE_RANGES[profile.condition], rng)
        self.sepsis_shifts = _draw(SEPSIS_SHIFT_RANGES, rng)

    def severity(self, time: datetime) -> float:
        """How far the deterioration has progressed, 0 (none) to 1 (fully developed)."""
        course = self.profile.deterioration
        return course.severity(time - self.start) if course else 0.0

    def is_unwell(self, time: datetime) -> bool:
        return self.severity(time) >= UNWELL_SEVERITY

    def surgical_stress(self, time: datetime) -> float:
        """1 right after surgery (the simulator start), fading to 0 over the first day; 0 for other patients."""
        if self.profile.condition != "post_operative":
            return 0.0
        return max(0.0, 1.0 - (time - self.start) / POST_OPERATIVE_RECOVERY)

    def vitals(self, time: datetime, asleep: bool = False, exertion: float = 0.0) -> dict[str, float]:
        """The true heart rate, SpO2, respiration, temperature and blood pressure at a moment."""
        contributions = (
            (circadian(time), CIRCADIAN_AMPLITUDES),
            (float(asleep), SLEEP_SHIFTS),
            (exertion, EXERTION_SHIFTS),
            (self.surgical_stress(time), POST_OPERATIVE_SHIFTS),
            (self.severity(time), self.sepsis_shifts),
        )
        return {
            name: self.baseline[name] + sum(weight * shifts.get(name, 0.0) for weight, shifts in contributions)
            for name in VITALS
        }

    def hrv_rmssd(self, heart_rate: float) -> float:
        """True RMSSD, inversely related to the heart rate around the patient's resting pair."""
        return self.baseline["hrv_rmssd"] * (self.baseline["heart_rate"] / heart_rate) ** HRV_HEART_RATE_EXPONENT
