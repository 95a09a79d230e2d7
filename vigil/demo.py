"""A simulated ward, or replayed ICU stays, wired to a store: patients and devices registered once, reused on every
run, by `vigil demo` (in process) and `vigil simulate` (over HTTP or MQTT)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from vigil.admin import refresh_broker_files
from vigil.api.context import AppContext
from vigil.api.schemas import IngestResponse
from vigil.config import Settings, write_private_json
from vigil.datasets.physionet import STAY_ID
from vigil.devices import (
    DeliveryFailed,
    DeliveryRejected,
    DeviceClient,
    DeviceKey,
    InProcessTransport,
    PatientProfile,
    WardSimulator,
    build_clients,
    mixed_ward,
)
from vigil.devices.replay import REPLAY_DEVICE, StayReplay, replay_hours
from vigil.glucose.live import simglucose_therapy
from vigil.ingest.service import BatchShapeError
from vigil.processor import Processor
from vigil.security.identity import hash_password
from vigil.store import SqlStore
from vigil.timeutil import utc_now

DEMO_CLINICIAN = "clinician"
DEFAULT_BACKFILL = timedelta(hours=6)
DEMO_ONSET = timedelta(minutes=10)  # the deteriorating patient declines ten simulated minutes into a run
CONDITION_LABELS = {
    "healthy": [],
    "hypertensive": ["hypertension"],
    "diabetic": ["type 1 diabetes"],
    "post_operative": ["post-operative"],
    "deteriorating": ["post-operative", "infection risk"],
}

Credentials = dict[DeviceKey, tuple[str, str]]


def _read_manifest(manifest: Path) -> dict:
    return json.loads(manifest.read_text()) if manifest.exists() else {"started_at": None, "patients": {}}


def register_ward(store: SqlStore, profiles: list[PatientProfile], manifest: Path, start: datetime) -> Credentials:
    """Patients and devices for these profiles, created on the first run and reused after.

    The manifest (mode 0600) keeps each simulated device's id and token, as a real device keeps its own,
    and when the ward first started.
    """
    known = _read_manifest(manifest)
    known["started_at"] = known["started_at"] or start.isoformat()
    credentials: Credentials = {}
    for profile in profiles:
        entry = known["patients"].get(profile.key)
        if entry is None or store.get_patient(entry["patient_id"]) is None:
            patient = store.add_patient(
                profile.name,
                profile.birth_date.isoformat() if profile.birth_date else None,
                profile.sex,
                CONDITION_LABELS[profile.condition],
            )
            entry = known["patients"][profile.key] = {"patient_id": patient.patient_id, "devices": {}}
        for kind in profile.devices:
            if kind not in entry["devices"]:
                device, token = store.add_device(entry["patient_id"], kind)
                entry["devices"][kind] = [device.device_id, token]
            credentials[DeviceKey(profile.key, kind)] = tuple(entry["devices"][kind])
    write_private_json(manifest, known)
    return credentials


def register_replay(store: SqlStore, stays: pd.DataFrame, manifest: Path) -> Credentials:
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


def prescribe_virtual_patients(processor: Processor, profiles: list[PatientProfile], manifest: Path) -> None:
    """Give the glucose advice each simulated CGM user's own prescription (total daily insulin, pump basal)."""
    known = _read_manifest(manifest)["patients"]
    for profile in profiles:
        if profile.virtual_patient and profile.key in known:
            processor.prescribe(known[profile.key]["patient_id"], simglucose_therapy(profile.virtual_patient))


def patient_ids(manifest: Path) -> list[str]:
    return [entry["patient_id"] for entry in _read_manifest(manifest)["patients"].values()]


def ward_started_at(manifest: Path, default: datetime) -> datetime:
    """When this ward's simulation first started, so a resumed run continues each patient's course."""
    started = _read_manifest(manifest)["started_at"]
    return datetime.fromisoformat(started) if started else default


@dataclass(frozen=True)
class Login:
    username: str
    password: str


def ensure_demo_login(store: SqlStore, settings: Settings) -> Login:
    """The demo clinician, with a password generated once and kept in VIGIL_HOME/keys."""
    password = settings.secret("demo-clinician-password", nbytes=9)
    user = store.get_user(DEMO_CLINICIAN)
    if user is None:
        store.add_user(DEMO_CLINICIAN, "clinician", hash_password(password))
    return Login(DEMO_CLINICIAN, password)


def simulation_start(store: SqlStore, backfill: timedelta = DEFAULT_BACKFILL) -> datetime:
    """Resume where the stored data ends, but replay at most `backfill` of history."""
    last = store.last_reading_time()
    earliest = utc_now() - backfill
    return max(last, earliest) if last else earliest


def in_process_delivery(ctx: AppContext):
    """Deliver simulated batches straight into the ingest path, with the device's own token."""

    def deliver(device_id: str, token: str, payload: dict) -> dict:
        device = ctx.ingest.authenticate(token)
        if device is None or device.device_id != device_id:
            raise DeliveryRejected(f"device {device_id}: token refused")
        try:
            return IngestResponse.model_validate(ctx.ingest.ingest(device, payload)).model_dump()
        except BatchShapeError as error:
            raise DeliveryRejected(str(error)) from error
        except Exception as error:  # store unavailable: the client keeps the batch and retries
            raise DeliveryFailed(str(error)) from error

    return deliver


@dataclass(frozen=True)
class DemoWard:
    """The demo's ward, ready to run: its clinician's login, the simulator, and its devices' clients."""

    login: Login
    simulator: WardSimulator
    clients: dict[DeviceKey, DeviceClient]


def demo_ward(ctx: AppContext, patients: int, seed: int) -> DemoWard:
    """`vigil demo`'s ward on this context's store, resuming the same course on every run: every patient assigned
    to the demo clinician, each CGM user's prescription given to the glucose advice, devices delivering in process."""
    login = ensure_demo_login(ctx.store, ctx.settings)
    manifest = ctx.settings.home / "simulator" / f"demo-seed{seed}.json"
    start = simulation_start(ctx.store)
    onset = ward_started_at(manifest, start) + DEMO_ONSET - start  # negative once a resumed course is under way
    profiles = mixed_ward(patients, seed, onset=onset)
    credentials = register_ward(ctx.store, profiles, manifest, start)
    for patient_id in patient_ids(manifest):
        ctx.store.assign(patient_id, login.username)
    prescribe_virtual_patients(ctx.processor, profiles, manifest)
    clients = build_clients(credentials, InProcessTransport(in_process_delivery(ctx)), seed)
    return DemoWard(login, WardSimulator(profiles, start, seed), clients)


@dataclass(frozen=True)
class RegisteredWard:
    """A ward whose patients and devices are in the store (and Mosquitto's files), for `vigil simulate`."""

    simulator: WardSimulator | StayReplay
    credentials: Credentials
    hours: float | None  # how much to simulate; None: until stopped


def simulated_ward(
    settings: Settings, store: SqlStore, patients: int, seed: int, hours: float | None
) -> RegisteredWard:
    """A mixed ward of `patients`, from `hours` ago (default: where the stored data ends, at most six hours back)."""
    start = utc_now() - timedelta(hours=hours) if hours else simulation_start(store)
    profiles = mixed_ward(patients, seed)
    credentials = register_ward(store, profiles, settings.home / "simulator" / f"ward-seed{seed}.json", start)
    refresh_broker_files(settings, store)
    return RegisteredWard(WardSimulator(profiles, start, seed), credentials, hours)


def replayed_ward(
    settings: Settings, store: SqlStore, stays: pd.DataFrame, name: str, hours: float | None
) -> RegisteredWard:
    """Real ICU stays (PhysioNet 2019) replayed over the last `hours` (default: as long as the longest stay)."""
    hours = hours or replay_hours(stays)
    credentials = register_replay(store, stays, settings.home / "simulator" / f"replay-{name}.json")
    refresh_broker_files(settings, store)
    return RegisteredWard(StayReplay(stays, utc_now() - timedelta(hours=hours)), credentials, hours)
