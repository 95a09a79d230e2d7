"""Closed-loop evaluation on the UVA/Padova simulator: virtual patients follow every piece of Vigil's advice, beside
peer controllers (simglucose's basal-bolus, OpenAPS oref0, Loop) given the same meal announcements and the same
habit for lows. The simulator is the body; each controller sees only CGM readings, the meals the patient announces
(estimates off by up to 30 %, some never announced) and the insulin and carbs it advised."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from vigil.glucose.advisor import Advice, GlucoseAdvisor
from vigil.glucose.agp import glycaemia_risk_index, range_shares
from vigil.glucose.body import START, age_group, make_environment, prescription
from vigil.glucose.history import GlucoseHistory
from vigil.glucose.personalise import Personaliser
from vigil.glucose.therapy import population_profile, safety_limits

CONTROLLERS = ("vigil", "bb", "oref0", "loop")
BASELINES = CONTROLLERS[1:]
MEAL_ESTIMATE_ERROR = 0.30
UNANNOUNCED_SHARE = 0.10
DAY_MIN = 24 * 60
LOW_HABIT_BELOW_MG_DL = 70.0
LOW_HABIT_GRAMS = 15.0
LOW_HABIT_EVERY_MIN = 15.0


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
class Rescue:
    """Carbohydrate eaten to treat or prevent a low: on the controller's advice, or by the patient's own habit."""

    minute: float
    grams: float
    source: str  # "advice" or "habit"


@dataclass
class PatientRun:
    """The outcome of one virtual patient under one controller."""

    patient: str
    controller: str
    glucose: list[float]
    advice: list[tuple[float, Advice]] = field(default_factory=list)
    profiles: list[dict[str, float]] = field(default_factory=list)
    rescues: list[Rescue] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        days = len(self.glucose) * 5.0 / DAY_MIN
        return glycaemic_metrics(np.asarray(self.glucose)) | {
            "rescue_g_per_day": round(sum(r.grams for r in self.rescues) / days, 1),
            "rescues_per_day": round(len(self.rescues) / days, 2),
        }

    def ate_rescue_within(self, now: float, minutes: float) -> bool:
        return bool(self.rescues) and now - self.rescues[-1].minute < minutes


def glycaemic_metrics(glucose: np.ndarray) -> dict[str, float]:
    """Time in range 70-180, below 70, below 54, above 180 (shares of samples), the mean in mg/dL and the GRI."""
    return {
        "tir": round(float(np.mean((glucose >= 70) & (glucose <= 180))), 4),
        "tbr": round(float(np.mean(glucose < 70)), 4),
        "tbr54": round(float(np.mean(glucose < 54)), 4),
        "tar": round(float(np.mean(glucose > 180)), 4),
        "mean_bg": round(float(np.mean(glucose)), 1),
        "gri": round(glycaemia_risk_index(range_shares(glucose)), 1),
    }


class LowHabit:
    """The patient's own treatment of lows, the same under every controller: 15 g of fast carbohydrate when the CGM
    reads under 70 mg/dL, unless carbohydrate was taken for a low in the last 15 minutes. Not announced to the
    controller (patients rarely log treatment carbs)."""

    def treat(self, now: float, cgm: float, environment: Any, scenario: MealsAndRescues, run: PatientRun) -> None:
        if cgm < LOW_HABIT_BELOW_MG_DL and not run.ate_rescue_within(now, LOW_HABIT_EVERY_MIN):
            scenario.take_rescue(environment.time, LOW_HABIT_GRAMS)
            run.rescues.append(Rescue(now, LOW_HABIT_GRAMS, "habit"))


def make_controller(controller: str, name: str) -> Any:
    """The controller for one virtual patient: ``vigil``, ``bb`` (BBController), ``oref0`` (OpenAPS) or ``loop``."""
    if controller not in CONTROLLERS:
        raise ValueError(f"controller: {controller!r} is not one of {', '.join(CONTROLLERS)}")
    if controller == "vigil":
        return VigilLoop(name)
    if controller == "bb":
        return BasalBolusLoop(name)
    from vigil.glucose import peers  # Node.js (oref0) and PyLoopKit: loaded only when a peer runs

    return peers.Oref0Loop(name) if controller == "oref0" else peers.LoopKitLoop(name)


def simulate_patient(name: str, days: int, seed: int, controller: str = "vigil") -> PatientRun:
    """One virtual patient for ``days`` days under ``controller`` (one of ``CONTROLLERS``)."""
    loop = make_controller(controller, name)
    scenario = MealsAndRescues(seed)
    environment = make_environment(name, scenario, seed)
    run = PatientRun(name, controller, [])
    announcer = AnnouncedMeals(seed + 10_000)
    habit = LowHabit()
    step = environment.reset()
    action = loop.first_action()
    steps = int(days * DAY_MIN / environment.sample_time)
    for _ in range(steps):
        step = environment.step(action)
        now = (environment.time - START) / timedelta(minutes=1)
        run.glucose.append(float(step.info["bg"]))
        eaten = scenario.eaten_meal()
        announced = announcer.announce(eaten) if eaten > 0 else 0.0
        cgm = float(step.observation.CGM)
        action = loop.act(now, cgm, announced, environment, scenario, run)
        habit.treat(now, cgm, environment, scenario, run)
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
        return pump_action(self.basal_rate, 0.0, 5.0)

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
            bolus += self._follow(advice, now, environment, scenario, run)
        self.history.set_basal(now, self.basal_rate)
        return pump_action(self.basal_rate, bolus, environment.sample_time)

    def _follow(self, advice: Advice, now: float, environment: Any, scenario: Any, run: PatientRun) -> float:
        """Do what the advice says; return the bolus units to deliver."""
        if advice.kind == "carbs":
            scenario.take_rescue(environment.time, advice.amount)
            run.rescues.append(Rescue(now, advice.amount, "advice"))
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


def pump_action(basal_u_per_h: float, bolus_u: float, sample_minutes: float) -> Any:
    """simglucose's pump command: basal in U/h, a bolus in U given over one sample (both as U/min)."""
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
        "daily_rescue_carbs_g": {name: metrics["rescue_g_per_day"] for name, metrics in patients.items()},
    }


def closed_loop_result(runs: list[PatientRun], controllers: tuple[str, ...], days: int, seed: int) -> dict[str, Any]:
    """Vigil's summary in the DESIGN.md shape, with the run's settings and each baseline's summary beside it."""
    result = summarise(runs, controllers[0]) | {"days": days, "seed": seed, "controller": controllers[0]}
    result["baselines"] = {controller: summarise(runs, controller) for controller in controllers[1:]}
    return result


def _mean_metrics(metrics: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(float(np.mean([m[key] for m in metrics])), 4) for key in metrics[0]}


CLOSED_LOOP_HEADER = (
    f"{'controller':<10} {'group':<11} {'TIR':>6} {'<70':>6} {'<54':>6} {'>180':>6} {'mean':>6} {'GRI':>5} "
    f"{'rescue g/d':>10} {'rescues/d':>9}"
)


def closed_loop_line(controller: str, group: str, m: dict[str, float]) -> str:
    """One row of the closed-loop table: time in ranges, mean, GRI and the rescue carbohydrate a day."""
    return (
        f"{controller:<10} {group:<11} {m['tir']:>6.1%} {m['tbr']:>6.2%} {m['tbr54']:>6.2%} {m['tar']:>6.1%} "
        f"{m['mean_bg']:>6.1f} {m['gri']:>5.1f} {m['rescue_g_per_day']:>10.1f} {m['rescues_per_day']:>9.2f}"
    )
