"""The simulated ward: every patient's devices, advanced together along simulated time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from vigil.devices.bp_cuff import BpCuffDevice
from vigil.devices.cgm import CgmDevice
from vigil.devices.device import SimulatedDevice
from vigil.devices.physiology import Physiology
from vigil.devices.profiles import PatientProfile
from vigil.devices.readings import DeviceBatch, DeviceKey
from vigil.devices.seeding import rng_for
from vigil.devices.wearable import WearableDevice

DEVICE_TYPES: dict[str, type[SimulatedDevice]] = {
    device_type.kind: device_type for device_type in (WearableDevice, BpCuffDevice, CgmDevice)
}


def _utc(time: datetime) -> datetime:
    if time.tzinfo is None:
        raise ValueError(f"{time.isoformat()}: simulated time must be timezone-aware")
    return time.astimezone(UTC)


class WardSimulator:
    """Generates every device's readings from `start` on; the same profiles, start and seed give the same
    readings however the time is cut into calls to `advance`."""

    def __init__(self, profiles: Iterable[PatientProfile], start: datetime, seed: int = 0):
        self.profiles = tuple(profiles)
        keys = [profile.key for profile in self.profiles]
        if len(set(keys)) != len(keys):
            raise ValueError("profiles: patient keys must be unique")
        self.start = _utc(start).replace(second=0, microsecond=0)
        self.time = self.start
        self.devices: dict[DeviceKey, SimulatedDevice] = {}
        for profile in self.profiles:
            physiology = Physiology(profile, self.start, rng_for(seed, profile.seed, "physiology"))
            for kind in profile.devices:
                self.devices[DeviceKey(profile.key, kind)] = DEVICE_TYPES[kind](
                    physiology, self.start, (seed, profile.seed, kind)
                )

    @property
    def device_keys(self) -> list[DeviceKey]:
        return list(self.devices)

    def advance(self, until: datetime) -> list[DeviceBatch]:
        """Each device's new readings up to and including `until`, one batch per device that has any."""
        until = _utc(until)
        batches = []
        for key, device in self.devices.items():
            readings = device.advance(until)
            if readings:
                batches.append(DeviceBatch(key, readings))
        self.time = max(self.time, until)
        return batches
