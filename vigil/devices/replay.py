"""Real ICU stays (PhysioNet 2019 PSV) replayed as device streams, hour by hour, through the live pipeline."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd

from vigil.config import write_private_json
from vigil.devices.readings import DeviceBatch, DeviceKey
from vigil.models.physionet import STAY_ID, stay_readings
from vigil.store import SqlStore
from vigil.timeutil import parse_time

REPLAY_DEVICE = "icu_monitor"


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
                self._pending[key] = readings[len(due):]
                batches.append(DeviceBatch(key, due))
        self.time = max(self.time, until)
        return batches


def register_replay(store: SqlStore, stays: pd.DataFrame, manifest: Path) -> dict[DeviceKey, tuple[str, str]]:
    """A patient and a monitor per replayed stay, created once and reused (ids and tokens in the manifest)."""
    known = json.loads(manifest.read_text()) if manifest.exists() else {}
    credentials = {}
    for stay_id, rows in stays.groupby(STAY_ID, sort=True):
        entry = known.get(stay_id)
        if entry is None or store.get_patient(entry["patient_id"]) is None:
            first = rows.iloc[0]
            sex = {1.0: "male", 0.0: "female"}.get(first.get("Gender"))
            patient = store.add_patient(f"ICU stay {stay_id}", None, sex, ["PhysioNet 2019 replay"])
            device, token = store.add_device(patient.patient_id, REPLAY_DEVICE)
            entry = known[stay_id] = {"patient_id": patient.patient_id, "device": [device.device_id, token]}
        credentials[DeviceKey(stay_id, REPLAY_DEVICE)] = tuple(entry["device"])
    write_private_json(manifest, known)
    return credentials


def replay_hours(stays: pd.DataFrame) -> int:
    """Hours needed to replay the longest stay."""
    return int(stays.groupby(STAY_ID).size().max())


__all__ = ["REPLAY_DEVICE", "StayReplay", "register_replay", "replay_hours"]
