"""Device faults: off-body dropouts, one-sample motion artefacts and rare implausible values, all seeded."""

from __future__ import annotations

import numpy as np

# One-sample offsets when the wearer moves: the optical pulse locks onto cadence, SpO2 loses the signal.
MOTION_OFFSETS = {"heart_rate": (30.0, 70.0), "spo2": (-15.0, -6.0)}
# Physiologically implausible but not impossible: outside METRICS' plausible limits, inside the hard ones.
IMPLAUSIBLE_RANGES = {
    "heart_rate": (255.0, 300.0),
    "spo2": (30.0, 48.0),
    "resp_rate": (62.0, 80.0),
    "body_temp": (29.0, 32.5),
    "systolic_bp": (262.0, 300.0),
}
MOVING_MOTION_FACTOR = 4.0


class Dropout:
    """On/off episodes during which a device measures nothing (wearable off the wrist, CGM signal loss)."""

    def __init__(self, rng: np.random.Generator, episodes_per_day: float, minutes: tuple[int, int]):
        self.rng = rng
        self.episodes_per_day = episodes_per_day
        self.minutes = minutes
        self._remaining_minutes = 0

    def active(self, step_minutes: int = 1) -> bool:
        """Whether the device is out for the next `step_minutes`; call once per measuring step."""
        if self._remaining_minutes <= 0 and self.rng.random() < self.episodes_per_day * step_minutes / 1440:
            self._remaining_minutes = int(self.rng.integers(self.minutes[0], self.minutes[1] + 1))
        out = self._remaining_minutes > 0
        self._remaining_minutes = max(0, self._remaining_minutes - step_minutes)
        return out


class Artefacts:
    """Corrupts a measured value now and then: a motion artefact, or rarely an implausible value."""

    def __init__(self, rng: np.random.Generator, motion_probability: float, implausible_probability: float):
        self.rng = rng
        self.motion_probability = motion_probability
        self.implausible_probability = implausible_probability

    def corrupt(self, metric: str, value: float, moving: bool = False) -> float:
        if metric in IMPLAUSIBLE_RANGES and self.rng.random() < self.implausible_probability:
            return float(self.rng.uniform(*IMPLAUSIBLE_RANGES[metric]))
        motion_probability = self.motion_probability * (MOVING_MOTION_FACTOR if moving else 1.0)
        if metric in MOTION_OFFSETS and self.rng.random() < motion_probability:
            return value + float(self.rng.uniform(*MOTION_OFFSETS[metric]))
        return value
