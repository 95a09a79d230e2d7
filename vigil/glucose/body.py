"""The simulated body: a simglucose (UVA/Padova) environment per virtual patient, and the patient's prescription.

simglucose reads each model parameter from a pandas Series at every ODE evaluation, which takes 80 % of its
time; ``fast_parameters`` hands the patient the same numbers as plain attributes (results are identical).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

import pandas as pd

AGE_GROUPS = ("child", "adolescent", "adult")
SENSOR = "GuardianRT"  # samples every 5 minutes
PUMP = "Insulet"
START = datetime(2026, 1, 1)
"""simglucose's clock is naive; every run starts at this midnight, so that meal times are comparable."""


def patient_names(selection: str = "all") -> list[str]:
    """``all``, an age group, or a comma-separated list of names such as ``adult#001,child#004``."""
    every = [f"{group}#{number:03d}" for group in AGE_GROUPS for number in range(1, 11)]
    if selection in ("all", ""):
        return every
    if selection in AGE_GROUPS:
        return [name for name in every if name.startswith(selection)]
    chosen = [name.strip() for name in selection.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in every]
    if unknown:
        raise ValueError(
            f"patients: unknown virtual patient(s) {', '.join(unknown)}; use all, child, adolescent, "
            "adult or names like adult#001"
        )
    return chosen


def age_group(name: str) -> str:
    return name.split("#")[0]


def _simglucose() -> SimpleNamespace:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # simglucose still imports pkg_resources
        from simglucose.actuator.pump import InsulinPump
        from simglucose.patient.t1dpatient import T1DPatient
        from simglucose.sensor.cgm import CGMSensor
        from simglucose.simulation.env import T1DSimEnv
    logging.getLogger("simglucose").setLevel(logging.WARNING)
    return SimpleNamespace(InsulinPump=InsulinPump, T1DPatient=T1DPatient, CGMSensor=CGMSensor, T1DSimEnv=T1DSimEnv)


def fast_parameters(patient: Any) -> None:
    """Replace the patient's parameter Series by attributes holding the same values (``iloc`` kept for reset)."""
    series = patient._params
    fast = SimpleNamespace(**series.to_dict())
    fast.iloc = series.iloc
    patient._params = fast


def make_environment(name: str, scenario: Any, seed: int, sensor: str = SENSOR) -> Any:
    """A simglucose environment for virtual patient ``name`` living through ``scenario`` (meals)."""
    sim = _simglucose()
    patient = sim.T1DPatient.withName(name)
    fast_parameters(patient)
    return sim.T1DSimEnv(patient, sim.CGMSensor.withName(sensor, seed=seed), sim.InsulinPump.withName(PUMP), scenario)


@dataclass(frozen=True)
class Prescription:
    """What the clinic knows about a patient: weight, usual total daily insulin, the programmed pump basal, and the
    carb ratio and correction factor on their chart (the values simglucose's BBController uses)."""

    name: str
    body_weight_kg: float
    total_daily_insulin: float
    basal_u_per_h: float
    chart_carb_ratio: float
    chart_correction_factor: float


@cache
def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    from importlib.resources import files

    params = files("simglucose") / "params"
    return pd.read_csv(params / "Quest.csv"), pd.read_csv(params / "vpatient_params.csv")


def prescription(name: str) -> Prescription:
    quest, params = _tables()
    q = quest.loc[quest.Name == name].iloc[0]
    p = params.loc[params.Name == name].iloc[0]
    return Prescription(name, float(p.BW), float(q.TDI), float(p.u2ss * p.BW / 6000 * 60), float(q.CR), float(q.CF))
