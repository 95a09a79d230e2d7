"""Forecast evaluation: every virtual patient lives days in simglucose under basal-bolus therapy; each forecaster is
fitted on the first days and scored at 30 and 60 minutes on the held-out days that follow.

A patient's meals come from simglucose's ``RandomScenario`` and its insulin from ``BBController`` (the fixed
basal and a meal bolus with correction, from the patient's chart); CGM is the GuardianRT sensor with its noise.
Seeds derive from ``seed`` and the patient's name, so a patient's days do not depend on which others are run.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib.util import find_spec
from multiprocessing import get_context
from typing import Any

import numpy as np

from vigil.glucose.body import START, age_group, make_environment, patient_names, prescription
from vigil.glucose.forecast import (
    HORIZONS,
    DaysWindow,
    GlucoseForecaster,
    LinearTrend,
    PatientSeries,
    Persistence,
    RidgeARX,
    forecast_metrics,
)
from vigil.glucose.history import GlucoseHistory

MINUTES_PER_DAY = 1440
MAX_WORKERS = 2
Progress = Callable[[str], None]


def _seeds(name: str, seed: int) -> tuple[int, int]:
    """Scenario and sensor seeds of one patient."""
    scenario, sensor = np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(2)
    return int(scenario), int(sensor)


def live_days(name: str, days: int, seed: int) -> GlucoseHistory:
    """``days`` of virtual patient ``name`` from midnight: CGM every sample, announced carbs, delivered insulin."""
    from simglucose.controller.basal_bolus_ctrller import BBController
    from simglucose.simulation.scenario_gen import RandomScenario

    scenario_seed, sensor_seed = _seeds(name, seed)
    environment = make_environment(name, RandomScenario(start_time=START, seed=scenario_seed), sensor_seed)
    controller, step, history, minute = BBController(), environment.reset(), GlucoseHistory(), 0.0
    history.add_cgm(minute, step.observation.CGM)
    sample = environment.sample_time
    while minute < days * MINUTES_PER_DAY:
        action = controller.policy(step.observation, step.reward, step.done, **step.info)
        history.set_basal(minute, environment.pump.basal(action.basal) * 60)
        bolus = environment.pump.bolus(action.bolus) * sample
        if bolus > 0:
            history.add_bolus(minute, bolus)
        step = environment.step(action)
        if step.info["meal"] > 0:
            history.add_carbs(minute, step.info["meal"] * sample)
        minute += sample
        history.add_cgm(minute, step.observation.CGM)
    return history


def patient_series(name: str, days: int, seed: int) -> PatientSeries:
    return PatientSeries.from_history(name, live_days(name, days, seed), prescription(name))


def record_cohort(
    names: Sequence[str], days: int, seed: int, progress: Progress = lambda _: None, workers: int = MAX_WORKERS
) -> list[PatientSeries]:
    """Every patient's days under standard basal-bolus therapy, recorded as forecasting data, simulated in up to
    ``workers`` processes (at most ``MAX_WORKERS``), in ``names`` order (closed-loop outcomes: simulation.py)."""
    if days < 1:
        raise ValueError(f"days: need at least 1, got {days}")
    processes = max(1, min(workers, MAX_WORKERS, len(names)))
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(patient_series, name, days, seed) for name in names]
        cohort = []
        for name, future in zip(names, futures):
            cohort.append(future.result())
            progress(f"simulated {name}")
    return cohort


@dataclass(frozen=True)
class ModelSpec:
    """A row of the evaluation: how to build the forecaster, and whether it is adapted to each patient's own days."""

    build: Callable[[], GlucoseForecaster]
    personalise: bool


class ChartEffects:
    """``EffectsForecaster`` (insulin and carb effects plus retrospective correction) with the patient's chart: the
    correction factor, carb ratio and basal that the basal-bolus therapy uses (nothing is learnt from the data)."""

    def fit(self, windows: Sequence[DaysWindow]) -> ChartEffects:
        return self

    def personalised(self, window: DaysWindow) -> ChartEffects:
        return self

    def predict(self, series: PatientSeries, now_minutes: np.ndarray, horizon_minutes: int) -> np.ndarray:
        from vigil.glucose.effects import EffectsForecaster
        from vigil.glucose.therapy import TherapyProfile

        chart = series.prescription
        profile = TherapyProfile(
            isf=chart.chart_correction_factor, carb_ratio=chart.chart_carb_ratio, basal_u_per_h=chart.basal_u_per_h
        )
        forecaster = EffectsForecaster(profile)
        return np.array([forecaster.predict(series.history, now, horizon_minutes) for now in now_minutes])


def model_specs() -> dict[str, ModelSpec]:
    """Every model that can run here (the GRU rows need PyTorch)."""
    specs = {
        "persistence": ModelSpec(Persistence, False),
        "linear trend": ModelSpec(LinearTrend, False),
        "ARX (population)": ModelSpec(RidgeARX, False),
        "ARX (per patient)": ModelSpec(RidgeARX, True),
    }
    if find_spec("vigil.glucose.effects") is not None:
        specs["effects (chart settings)"] = ModelSpec(ChartEffects, False)
    if find_spec("torch") is not None:
        from vigil.glucose.recurrent import GruForecaster

        specs["GRU (population)"] = ModelSpec(GruForecaster, False)
        specs["GRU (fine-tuned per patient)"] = ModelSpec(GruForecaster, True)
    return specs


def _scores(
    truth: dict[str, dict[int, np.ndarray]], predicted: dict[str, dict[int, np.ndarray]], names: Sequence[str]
) -> dict[str, dict[str, float]]:
    return {
        str(h): forecast_metrics(
            np.concatenate([truth[n][h] for n in names]), np.concatenate([predicted[n][h] for n in names])
        )
        for h in HORIZONS
    }


def _forecasts(
    spec: ModelSpec,
    population: GlucoseForecaster,
    training: list[DaysWindow],
    held_out: list[DaysWindow],
    progress: Progress,
) -> dict[str, dict[int, np.ndarray]]:
    forecasts = {}
    for train, test in zip(training, held_out):
        model = population.personalised(train) if spec.personalise else population
        forecasts[test.series.name] = {h: model.predict(test.series, test.origins(h), h) for h in HORIZONS}
        progress(f"forecast {test.series.name}")
    return forecasts


def _report(truth: dict[str, dict[int, np.ndarray]], predicted: dict[str, dict[int, np.ndarray]]) -> dict[str, Any]:
    names = list(truth)
    groups = sorted({age_group(n) for n in names})
    return {
        "overall": _scores(truth, predicted, names),
        "groups": {g: _scores(truth, predicted, [n for n in names if age_group(n) == g]) for g in groups},
        "patients": {n: _scores(truth, predicted, [n]) for n in names},
    }


def _add_ratios(scores: dict[str, Any], baseline: dict[str, Any]) -> None:
    """Each RMSE divided by persistence's RMSE on the same patients and horizon (None where persistence is exact,
    as for a patient whose CGM stays at the sensor's floor)."""
    for key, metrics in scores.items():
        if "rmse" in metrics:
            reference = baseline[key]["rmse"]
            metrics["rmse_ratio_to_persistence"] = metrics["rmse"] / reference if reference > 0 else None
        else:
            _add_ratios(metrics, baseline[key])


def evaluate_forecasts(
    cohort: Sequence[PatientSeries], train_days: int, specs: dict[str, ModelSpec], progress: Progress = lambda _: None
) -> dict[str, Any]:
    """Fit every model on the first ``train_days`` of each patient, score it on the rest; metrics per patient, per
    age group and over all forecasts pooled, with each RMSE's ratio to persistence's."""
    split = cohort[0].minutes[0] + train_days * MINUTES_PER_DAY
    if not all(series.minutes[-1] > split for series in cohort):
        raise ValueError(f"train_days: {train_days} leaves no held-out days")
    training = [DaysWindow(series, series.minutes[0], split) for series in cohort]
    held_out = [DaysWindow(series, split, series.minutes[-1] + 1) for series in cohort]
    truth = {w.series.name: {h: w.targets(h) for h in HORIZONS} for w in held_out}
    fitted: dict[Callable, GlucoseForecaster] = {}
    results = {}
    for name, spec in specs.items():
        if spec.build not in fitted:
            fitted[spec.build] = spec.build().fit(training)
        results[name] = _report(truth, _forecasts(spec, fitted[spec.build], training, held_out, progress))
    baseline = results["persistence"]
    for report in results.values():
        _add_ratios(report, baseline)
    return results


def forecast_evaluation(
    selection: str = "all", train_days: int = 4, test_days: int = 2, seed: int = 1, progress: Progress = lambda _: None
) -> dict[str, Any]:
    """The whole run behind ``vigil glucose forecast-eval``: simulate, fit, score."""
    if train_days < 1 or test_days < 1:
        raise ValueError("train_days and test_days: each needs at least 1 day")
    names = patient_names(selection)
    cohort = record_cohort(names, train_days + test_days, seed, progress)
    models = evaluate_forecasts(cohort, train_days, model_specs(), progress)
    return {
        "patients": names,
        "train_days": train_days,
        "test_days": test_days,
        "seed": seed,
        "horizons": list(HORIZONS),
        "reference": "CGM",
        "models": models,
    }
