"""Closed-loop evaluation on the UVA/Padova simulator: virtual patients follow every piece of Vigil's advice, beside
simglucose's basal-bolus controller given the same meal announcements. The simulator is the body; Vigil sees only
CGM readings, the meals the patient announces (estimates off by up to 30 %, some never announced) and the insulin
and carbs it advised."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from vigil.glucose.advisor import Advice, GlucoseAdvisor
from vigil.glucose.body import START, age_group, make_environment, prescription
from vigil.glucose.history import GlucoseHistory
from vigil.glucose.personalise import Personaliser
from vigil.glucose.therapy import population_profile, safety_limits

CONTROLLERS = ("vigil", "bb")
MEAL_ESTIMATE_ERROR = 0.30
UNANNOUNCED_SHARE = 0.10
DAY_MIN = 24 * 60


@dataclass
class AnnouncedMeals:
    """The patient's meal announcements: the true grams times a uniform error within +-30 %, rounded to 5 g, and a
    share of meals never announced. Seeded apart from the body, so both controllers hear the same announcements."""

    seed: int
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def announce(self, true_grams: float) -> float:
        error, forgotten = self.rng.uniform(-MEAL_ESTIMATE_ERROR, MEAL_ESTIMATE_ERROR), self.rng.random()
        if forgotten < UNANNOUNCED_SHARE:
            return 0.0
        return float(max(5.0, 5.0 * round(true_grams * (1 + error) / 5.0)))


class MealsAndRescues:
    """simglucose's random meals plus the rescue carbs the patient takes on advice; remembers which meals came."""

    def __init__(self, seed: int) -> None:
        from simglucose.simulation.scenario_gen import RandomScenario

        self.meals = RandomScenario(start_time=START, seed=seed)
        self.start_time = START
        self.rescues: dict[Any, float] = {}
        self.meal_grams = 0.0

    def get_action(self, time: Any) -> Any:
        action = self.meals.get_action(time)
        self.meal_grams += action.meal
        return action._replace(meal=action.meal + self.rescues.pop(time, 0.0))

    def take_rescue(self, time: Any, grams: float) -> None:
        self.rescues[time] = self.rescues.get(time, 0.0) + grams

    def eaten_meal(self) -> float:
        """Grams of scheduled meal eaten since the last call."""
        grams, self.meal_grams = self.meal_grams, 0.0
        return grams

    def reset(self) -> None:
        self.meals.reset()
        self.rescues.clear()
        self.meal_grams = 0.0


@dataclass
class PatientRun:
    """The outcome of one virtual patient under one controller."""

    patient: str
    controller: str
    glucose: list[float]
    advice: list[tuple[float, Advice]] = field(default_factory=list)
    profiles: list[dict[str, float]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        return glycaemic_metrics(np.asarray(self.glucose))


def glycaemic_metrics(glucose: np.ndarray) -> dict[str, float]:
    """Time in range 70-180, below 70, below 54, above 180 (shares of samples) and the mean, in mg/dL."""
    return {
        "tir": round(float(np.mean((glucose >= 70) & (glucose <= 180))), 4),
        "tbr": round(float(np.mean(glucose < 70)), 4),
        "tbr54": round(float(np.mean(glucose < 54)), 4),
        "tar": round(float(np.mean(glucose > 180)), 4),
        "mean_bg": round(float(np.mean(glucose)), 1),
    }


def simulate_patient(name: str, days: int, seed: int, controller: str = "vigil") -> PatientRun:
    """One virtual patient for ``days`` days under ``controller`` (``vigil`` or ``bb``)."""
    if controller not in CONTROLLERS:
        raise ValueError(f"controller: {controller!r} is not one of {', '.join(CONTROLLERS)}")
    scenario = MealsAndRescues(seed)
    environment = make_environment(name, scenario, seed)
    loop = VigilLoop(name) if controller == "vigil" else BasalBolusLoop(name)
    run = PatientRun(name, controller, [])
    announcer = AnnouncedMeals(seed + 10_000)
    step = environment.reset()
    action = loop.first_action()
    steps = int(days * DAY_MIN / environment.sample_time)
    for _ in range(steps):
        step = environment.step(action)
        now = (environment.time - START) / timedelta(minutes=1)
        run.glucose.append(float(step.info["bg"]))
        eaten = scenario.eaten_meal()
        announced = announcer.announce(eaten) if eaten > 0 else 0.0
        action = loop.act(now, float(step.observation.CGM), announced, environment, scenario, run)
    return run


class BasalBolusLoop:
    """simglucose's BBController (chart carb ratio and correction factor, constant basal), told the announced meals."""

    def __init__(self, name: str) -> None:
        from simglucose.controller.basal_bolus_ctrller import BBController

        self.name, self.controller = name, BBController()

    def first_action(self) -> Any:
        return self.controller.policy(_Observation(140.0), 0, False, patient_name=self.name, meal=0, sample_time=5)

    def act(self, now: float, cgm: float, announced: float, environment: Any, scenario: Any, run: PatientRun) -> Any:
        sample = environment.sample_time
        return self.controller.policy(
            _Observation(cgm), 0, False, patient_name=self.name, meal=announced / sample, sample_time=sample
        )


class VigilLoop:
    """Vigil's advisor with the patient's profile personalised every midnight; the patient follows all advice."""

    def __init__(self, name: str) -> None:
        chart = prescription(name)
        self.scheduled = chart.basal_u_per_h
        profile = population_profile(chart.total_daily_insulin, chart.basal_u_per_h)
        self.personaliser = Personaliser(profile)
        self.advisor = GlucoseAdvisor(profile, safety_limits(chart.total_daily_insulin, chart.basal_u_per_h))
        self.history = GlucoseHistory()
        self.basal_rate, self.basal_until = self.scheduled, 0.0
        self.next_review = DAY_MIN

    def first_action(self) -> Any:
        return _action(self.basal_rate, 0.0, 5.0)

    def act(self, now: float, cgm: float, announced: float, environment: Any, scenario: Any, run: PatientRun) -> Any:
        self.history.add_cgm(now, cgm)
        if announced > 0:
            self.history.add_carbs(now, announced)
        if now >= self.next_review:
            self._review(now, run)
        if now >= self.basal_until:
            self.basal_rate = self.advisor.profile.basal_u_per_h
        bolus = 0.0
        for advice in self.advisor.advise(self.history, now, announced):
            run.advice.append((now, advice))
            bolus += self._follow(advice, now, environment, scenario)
        self.history.set_basal(now, self.basal_rate)
        return _action(self.basal_rate, bolus, environment.sample_time)

    def _follow(self, advice: Advice, now: float, environment: Any, scenario: Any) -> float:
        """Do what the advice says; return the bolus units to deliver."""
        if advice.kind == "carbs":
            scenario.take_rescue(environment.time, advice.amount)
            self.history.add_carbs(now, advice.amount)
        elif advice.kind == "bolus":
            self.history.add_bolus(now, advice.amount)
            return advice.amount
        elif advice.kind == "temp_basal":
            self.basal_rate, self.basal_until = advice.amount, now + (advice.duration_min or 0.0)
        return 0.0

    def _review(self, now: float, run: PatientRun) -> None:
        """Midnight: re-estimate the therapy profile from the data so far (bounded daily step)."""
        profile = self.personaliser.update(self.history, now)
        self.advisor.profile = profile
        run.profiles.append(
            {
                "minute": now,
                "isf": profile.isf,
                "carb_ratio": profile.carb_ratio,
                "basal_u_per_h": profile.basal_u_per_h,
            }
        )
        self.next_review += DAY_MIN


class _Observation:
    def __init__(self, cgm: float) -> None:
        self.CGM = cgm


def _action(basal_u_per_h: float, bolus_u: float, sample_minutes: float) -> Any:
    from simglucose.controller.base import Action

    return Action(basal=basal_u_per_h / 60.0, bolus=bolus_u / sample_minutes)


def simulate_cohort(
    names: list[str],
    days: int,
    seed: int,
    controllers: tuple[str, ...] = CONTROLLERS,
    workers: int = 2,
    on_done: Callable[[PatientRun], None] = lambda run: None,
) -> list[PatientRun]:
    """Every (patient, controller) pair, in parallel processes; results in input order."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    tasks = [(name, days, patient_seed(seed, name), controller) for controller in controllers for name in names]
    if workers <= 1:
        return [_done(simulate_patient(*task), on_done) for task in tasks]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(simulate_patient, *task): index for index, task in enumerate(tasks)}
        runs: list[PatientRun | None] = [None] * len(tasks)
        for future in as_completed(futures):
            runs[futures[future]] = _done(future.result(), on_done)
    return [run for run in runs if run is not None]


def _done(run: PatientRun, on_done: Callable[[PatientRun], None]) -> PatientRun:
    on_done(run)
    return run


def patient_seed(seed: int, name: str) -> int:
    """A seed per (run seed, patient), the same for both controllers."""
    return seed * 1000 + sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 997


def summarise(runs: list[PatientRun], controller: str) -> dict[str, Any]:
    """The DESIGN.md output: per patient, overall (mean over patients) and per age group."""
    chosen = [run for run in runs if run.controller == controller]
    patients = {run.patient: run.metrics() for run in chosen}
    groups = sorted({age_group(name) for name in patients})
    return {
        "patients": patients,
        "overall": _mean_metrics(list(patients.values())),
        "groups": {g: _mean_metrics([m for n, m in patients.items() if age_group(n) == g]) for g in groups},
    }


def closed_loop_result(runs: list[PatientRun], controllers: tuple[str, ...], days: int, seed: int) -> dict[str, Any]:
    """Vigil's summary in the DESIGN.md shape, with the run's settings and each baseline's summary beside it."""
    result = summarise(runs, controllers[0]) | {"days": days, "seed": seed, "controller": controllers[0]}
    result["baselines"] = {controller: summarise(runs, controller) for controller in controllers[1:]}
    result["daily_rescue_carbs_g"] = _rescue_carbs_per_day(runs, controllers[0], days)
    return result


def _rescue_carbs_per_day(runs: list[PatientRun], controller: str, days: int) -> dict[str, float]:
    return {
        run.patient: round(sum(a.amount for _, a in run.advice if a.kind == "carbs") / days, 1)
        for run in runs
        if run.controller == controller
    }


def _mean_metrics(metrics: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(float(np.mean([m[key] for m in metrics])), 4) for key in metrics[0]}
