"""Peer controllers for the closed-loop simulation: OpenAPS oref0 (its own Node libraries) and Loop (PyLoopKit)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import warnings
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from vigil.glucose.advisor import Advice
from vigil.glucose.body import START, Prescription, prescription
from vigil.glucose.simulation import PatientRun, pump_action

INSTALL = "bash scripts/install-peers.sh"
HISTORY_HOURS = 8  # longer than either peer's insulin action (5 h oref0, 6 h Loop) and its carb absorption
TARGET_MG_DL = 120.0  # Vigil's target; neither peer's documentation prescribes another
MAX_BASAL_TIMES_SCHEDULED = 4.0  # OpenAPS and Loop docs: max basal 3-4x the highest scheduled basal
TYPICAL_MEAL_G = 60.0  # max_iob = a typical meal bolus + 3x max daily basal (OpenAPS docs)
LARGEST_MEAL_G = 120.0  # Loop's max bolus covers the largest simulated meal at the chart carb ratio
OREF0_DIA_H = 5.0  # oref0's minimum (and default) DIA for its exponential curves
LOOP_ADULT_MODEL = [360.0, 75.0]  # Loop's rapid-acting adult exponential model: 6 h action, 75 min peak
LOOP_CORRECTION_RANGE = (110.0, 130.0)  # Loop doses to the range's midpoint: Vigil's 120 mg/dL
LOOP_SUSPEND_THRESHOLD = 70.0
LOOP_CARB_ABSORPTION_MIN = 180.0  # Loop's default (medium) absorption time for a carb entry


class PeerUnavailable(RuntimeError):
    """A peer controller cannot run here: what is missing and the command that installs it."""


@dataclass
class TempBasal:
    """A temporary basal on the pump: rate (U/h) from minute ``start`` until minute ``until``."""

    rate: float
    start: float
    until: float

    def running(self, now: float) -> bool:
        return self.start <= now < self.until


def wall_clock(now: float) -> datetime:
    """The simulated time as an aware UTC datetime."""
    return (START + timedelta(minutes=now)).replace(tzinfo=UTC)


def max_basal(chart: Prescription) -> float:
    return round(MAX_BASAL_TIMES_SCHEDULED * chart.basal_u_per_h, 2)


# --- OpenAPS oref0 ---------------------------------------------------------------------------------------------


def oref0_dir() -> Path:
    """peers/oref0 in this repository, or ``$VIGIL_OREF0_DIR``."""
    default = Path(__file__).resolve().parents[2] / "peers" / "oref0"
    return Path(os.environ.get("VIGIL_OREF0_DIR", default))


def oref0_max_iob(chart: Prescription) -> float:
    return round(TYPICAL_MEAL_G / chart.chart_carb_ratio + 3 * chart.basal_u_per_h, 1)


def oref0_profile_inputs(chart: Prescription) -> dict[str, Any]:
    """oref0-get-profile's inputs from the chart: flat basal, ISF, carb ratio and target, DIA 5 h, rapid-acting."""
    return {
        "settings": {"insulin_action_curve": OREF0_DIA_H, "maxBasal": max_basal(chart)},
        "basals": [{"i": 0, "start": "00:00:00", "minutes": 0, "rate": round(chart.basal_u_per_h, 3)}],
        "targets": {
            "units": "mg/dL",
            "user_preferred_units": "mg/dL",
            "targets": [{"i": 0, "offset": 0, "start": "00:00:00", "low": TARGET_MG_DL, "high": TARGET_MG_DL}],
        },
        "isf": {
            "units": "mg/dL",
            "sensitivities": [
                {"i": 0, "x": 0, "offset": 0, "start": "00:00:00", "sensitivity": chart.chart_correction_factor}
            ],
        },
        "carbratio": {
            "units": "grams",
            "schedule": [{"i": 0, "x": 0, "offset": 0, "start": "00:00:00", "ratio": chart.chart_carb_ratio}],
        },
        "temptargets": [],
        "model": {},
        "max_iob": oref0_max_iob(chart),
        "curve": "rapid-acting",
        "enableSMB_always": False,
        "enableSMB_with_COB": False,
        "enableUAM": True,
    }


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        if process.stdin is not None:
            process.stdin.close()  # the driver ends when its input does
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


class Oref0Driver:
    """One long-lived ``node peers/oref0/driver.js`` per patient, asked one JSON line per decision."""

    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or oref0_dir()
        node = _find_oref0(directory)
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [node, str(directory / "driver.js")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=directory,
            env={**os.environ, "TZ": "UTC"},
        )
        weakref.finalize(self, _stop, self.process)

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"oref0 driver exited ({self.process.poll()}): {self.log.read()[-2000:]}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"oref0 driver: {reply['error']}")
        return reply


def _find_oref0(directory: Path) -> str:
    """The node executable, once node, the driver and the oref0 package are all there."""
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable(f"the oref0 peer needs Node.js (18 or later): `node` is not on PATH; then run {INSTALL}")
    if not (directory / "driver.js").is_file():
        raise PeerUnavailable(
            f"the oref0 driver {directory / 'driver.js'} is missing: run from the repository or set VIGIL_OREF0_DIR"
        )
    if not (directory / "node_modules" / "oref0" / "package.json").is_file():
        raise PeerUnavailable(f"oref0 is not installed in {directory / 'node_modules'}: run {INSTALL} node")
    return node


def glucose_entry(now: float, cgm: float) -> dict[str, Any]:
    """A CGM reading as oref0 reads it (Nightscout ``entries``: ms date, ISO dateString, whole mg/dL)."""
    clock = wall_clock(now)
    value = round(cgm)
    return {"date": int(clock.timestamp() * 1000), "dateString": clock.isoformat(), "sgv": value, "glucose": value}


class Oref0Loop:
    """OpenAPS oref0 (no SMB) closing the loop with temp basals; meals bolused with the pump's bolus wizard."""

    def __init__(self, name: str, directory: Path | None = None) -> None:
        chart = prescription(name)
        self.scheduled = chart.basal_u_per_h
        self.driver = Oref0Driver(directory)
        self.profile = self.driver.ask({"profile_inputs": oref0_profile_inputs(chart)})["profile"]
        self.glucose: list[dict[str, Any]] = []  # newest first, like every oref0 input
        self.pump_history: list[dict[str, Any]] = []
        self.carbs: list[dict[str, Any]] = []
        self.temp: TempBasal | None = None

    def first_action(self) -> Any:
        return pump_action(self.scheduled, 0.0, 5.0)

    def act(self, now: float, cgm: float, announced: float, environment: Any, scenario: Any, run: PatientRun) -> Any:
        self._remember(now, cgm, announced)
        reply = self.driver.ask(self.request(now, announced))
        bolus = float(reply["bolus"])
        if bolus > 0:
            self.pump_history.insert(0, reply["bolus_history"])
            run.advice.append((now, Advice("bolus", bolus, "U", "oref0 peer: pump bolus wizard")))
        if reply.get("rate") is not None and reply.get("duration") is not None:
            self._set_temp(now, float(reply["rate"]), float(reply["duration"]), str(reply.get("reason", "")), run)
        return pump_action(self.basal_rate(now), bolus, environment.sample_time)

    def request(self, now: float, announced: float) -> dict[str, Any]:
        """One decision's inputs: the last hours of CGM, pump history and carbs, the running temp, the clock."""
        return {
            "clock": wall_clock(now).isoformat(),
            "glucose": self.glucose,
            "history": self.pump_history,
            "carbs": self.carbs,
            "currenttemp": self.current_temp(now),
            "announced_carbs": announced,
        }

    def current_temp(self, now: float) -> dict[str, Any]:
        """What the pump reports (read_temp_basal): the running temp and its minutes left, or none."""
        if self.temp is None or not self.temp.running(now):
            return {"duration": 0, "rate": 0, "temp": "absolute"}
        return {"duration": round(self.temp.until - now), "rate": self.temp.rate, "temp": "absolute"}

    def basal_rate(self, now: float) -> float:
        return self.temp.rate if self.temp is not None and self.temp.running(now) else self.scheduled

    def _remember(self, now: float, cgm: float, announced: float) -> None:
        self.glucose.insert(0, glucose_entry(now, cgm))
        if announced > 0:
            self.carbs.insert(0, {"created_at": wall_clock(now).isoformat(), "carbs": announced})
        oldest = (wall_clock(now) - timedelta(hours=HISTORY_HOURS)).timestamp() * 1000
        self.glucose = [g for g in self.glucose if g["date"] >= oldest]
        self.pump_history = [e for e in self.pump_history if _ms(e["timestamp"]) >= oldest]
        self.carbs = [c for c in self.carbs if _ms(c["created_at"]) >= oldest]

    def _set_temp(self, now: float, rate: float, duration: float, reason: str, run: PatientRun) -> None:
        """Program the temp (duration 0 cancels it) and log it in the pump history as a Medtronic pump does."""
        timestamp = wall_clock(now).isoformat()
        self.pump_history.insert(0, {"_type": "TempBasal", "timestamp": timestamp, "rate": rate, "temp": "absolute"})
        self.pump_history.insert(0, {"_type": "TempBasalDuration", "timestamp": timestamp, "duration (min)": duration})
        self.temp = TempBasal(rate, now, now + duration)
        run.advice.append((now, Advice("temp_basal", rate, "U/h", f"oref0 peer: {reason}", duration_min=duration)))


def _ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000


# --- Loop (PyLoopKit) ------------------------------------------------------------------------------------------


def _loopkit() -> Any:
    try:
        from pyloopkit import loop_data_manager
    except ImportError as error:
        raise PeerUnavailable(f"the Loop peer needs PyLoopKit ({error}): run {INSTALL} python") from error
    return loop_data_manager


def loop_settings(chart: Prescription) -> dict[str, Any]:
    """Loop's settings from the chart (and Loop's defaults for the algorithm's own intervals and delays)."""
    return {
        "model": LOOP_ADULT_MODEL,
        "momentum_data_interval": 15,
        "suspend_threshold": LOOP_SUSPEND_THRESHOLD,
        "dynamic_carb_absorption_enabled": True,
        "retrospective_correction_integration_interval": 30,
        "recency_interval": 15,
        "retrospective_correction_grouping_interval": 30,
        "rate_rounder": 0.05,
        "insulin_delay": 10,
        "carb_delay": 10,
        "default_absorption_times": [120.0, 180.0, 240.0],
        "max_basal_rate": max_basal(chart),
        "max_bolus": loop_max_bolus(chart),
        "retrospective_correction_enabled": True,
    }


def loop_max_bolus(chart: Prescription) -> float:
    return float(math.ceil(LARGEST_MEAL_G / chart.chart_carb_ratio))


def loop_schedules(chart: Prescription) -> dict[str, Any]:
    """Flat all-day schedules: ISF, carb ratio, basal and correction range."""
    midnight = time(0, 0)
    low, high = LOOP_CORRECTION_RANGE
    return {
        "sensitivity_ratio_start_times": [midnight],
        "sensitivity_ratio_end_times": [midnight],
        "sensitivity_ratio_values": [chart.chart_correction_factor],
        "carb_ratio_start_times": [midnight],
        "carb_ratio_values": [chart.chart_carb_ratio],
        "basal_rate_start_times": [midnight],
        "basal_rate_minutes": [1440.0],
        "basal_rate_values": [chart.basal_u_per_h],
        "target_range_start_times": [midnight],
        "target_range_end_times": [midnight],
        "target_range_minimum_values": [low],
        "target_range_maximum_values": [high],
    }


@dataclass
class Dose:
    """A dose in Loop's terms: a bolus (units, start = end) or a temp basal (U/h from start to end)."""

    kind: str  # "bolus", "tempbasal" or "basal" (the scheduled rate)
    start: datetime
    end: datetime
    value: float


class LoopKitLoop:
    """Loop (Tidepool's PyLoopKit): a temp basal every 5 minutes; the patient accepts Loop's bolus at each meal."""

    def __init__(self, name: str) -> None:
        self.loop = _loopkit()
        from pyloopkit.dose import DoseType

        self.dose_type = {"bolus": DoseType.bolus, "tempbasal": DoseType.tempbasal, "basal": DoseType.basal}
        chart = prescription(name)
        self.scheduled = chart.basal_u_per_h
        self.settings = loop_settings(chart)
        self.schedules = loop_schedules(chart)
        self.glucose: list[tuple[datetime, float]] = []
        self.doses: list[Dose] = []
        self.carbs: list[tuple[datetime, float]] = []
        self.temp: TempBasal | None = None

    def first_action(self) -> Any:
        return pump_action(self.scheduled, 0.0, 5.0)

    def act(self, now: float, cgm: float, announced: float, environment: Any, scenario: Any, run: PatientRun) -> Any:
        at = START + timedelta(minutes=now)
        self._remember(at, cgm, announced)
        bolus = self._meal_bolus(now, at, run) if announced > 0 else 0.0
        self._follow_temp(now, at, self.recommend(now, at)["recommended_temp_basal"], run)
        return pump_action(self.basal_rate(now), bolus, environment.sample_time)

    def recommend(self, now: float, at: datetime) -> dict[str, Any]:
        with warnings.catch_warnings():  # PyLoopKit warns on every call about chart values outside Loop's UI limits
            warnings.simplefilter("ignore", UserWarning)
            recommendation: Any = self.loop.update(self.input_dict(now, at))
        if not recommendation:
            raise RuntimeError(f"PyLoopKit rejected its input at {at}")
        return dict(recommendation)

    def input_dict(self, now: float, at: datetime) -> dict[str, Any]:
        """PyLoopKit's ``update`` input: the recent CGM, doses (the running temp up to now) and carbs, the settings."""
        delivered = [self._delivered_by(dose, at) for dose in self.doses]
        doses = sorted(delivered + self._scheduled_basal(delivered, at), key=lambda d: d.start)
        return {
            "glucose_dates": [t for t, _ in self.glucose],
            "glucose_values": [v for _, v in self.glucose],
            "dose_types": [self.dose_type[d.kind] for d in doses],
            "dose_start_times": [d.start for d in doses],
            "dose_end_times": [d.end for d in doses],
            "dose_values": [d.value for d in doses],
            "carb_dates": [t for t, _ in self.carbs],
            "carb_values": [g for _, g in self.carbs],
            "carb_absorption_times": [LOOP_CARB_ABSORPTION_MIN for _ in self.carbs],
            "settings_dictionary": self.settings,
            "last_temporary_basal": self._last_temp(now),
            "time_to_calculate_at": at,
            # effects from the first CGM reading kept, not 24 h back: there is no glucose before it to compare with
            "previous_counteraction_effect_dates": [self.glucose[0][0] - timedelta(minutes=5)],
            **self.schedules,
        }

    def basal_rate(self, now: float) -> float:
        return self.temp.rate if self.temp is not None and self.temp.running(now) else self.scheduled

    def _remember(self, at: datetime, cgm: float, announced: float) -> None:
        self.glucose.append((at, float(round(cgm))))
        if announced > 0:
            self.carbs.append((at, announced))
        oldest = at - timedelta(hours=HISTORY_HOURS)
        self.glucose = [g for g in self.glucose if g[0] >= oldest]
        self.doses = [d for d in self.doses if d.end >= oldest]
        self.carbs = [c for c in self.carbs if c[0] >= oldest]

    def _meal_bolus(self, now: float, at: datetime, run: PatientRun) -> float:
        """Loop's bolus recommendation at carb entry, accepted as recommended."""
        recommended = self.recommend(now, at)["recommended_bolus"]
        units = float(recommended[0]) if recommended else 0.0
        if units > 0:
            self.doses.append(Dose("bolus", at, at, units))
            run.advice.append((now, Advice("bolus", units, "U", "Loop peer: recommended bolus at carb entry")))
        return units

    def _follow_temp(self, now: float, at: datetime, recommended: Any, run: PatientRun) -> None:
        """Set Loop's temp ([rate, minutes]; [0, 0] cancels); None keeps what runs."""
        if recommended is None:
            return
        rate, minutes = float(recommended[0]), float(recommended[1])
        self._end_running_temp(now, at)
        self.temp = TempBasal(rate, now, now + minutes)
        if minutes > 0:
            self.doses.append(Dose("tempbasal", at, at + timedelta(minutes=minutes), rate))
        run.advice.append((now, Advice("temp_basal", rate, "U/h", "Loop peer", duration_min=minutes)))

    def _end_running_temp(self, now: float, at: datetime) -> None:
        if self.temp is not None and self.temp.running(now) and self.doses:
            temps = [d for d in self.doses if d.kind == "tempbasal" and d.end > at]
            for dose in temps:
                dose.end = max(dose.start, at)

    def _last_temp(self, now: float) -> list[Any]:
        if self.temp is None or self.temp.until <= self.temp.start:
            return []
        start, until = START + timedelta(minutes=self.temp.start), START + timedelta(minutes=self.temp.until)
        return [self.dose_type["tempbasal"], start, until, self.temp.rate]

    def _scheduled_basal(self, delivered: list[Dose], at: datetime) -> list[Dose]:
        """The scheduled basal is net zero in Loop's insulin math; PyLoopKit still needs one dose to compute any
        effect, so with no temp or bolus in the history the last five minutes of scheduled basal stand in."""
        return [] if delivered else [Dose("basal", at - timedelta(minutes=5), at, self.scheduled)]

    @staticmethod
    def _delivered_by(dose: Dose, at: datetime) -> Dose:
        return Dose(dose.kind, dose.start, min(dose.end, at), dose.value)
