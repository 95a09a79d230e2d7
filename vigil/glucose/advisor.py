"""Insulin and carbohydrate advice from the forecast: meal boluses, temporary basal rates, rescue carbs, and
predictive low and high alerts. Every piece of advice carries its reason and the numbers behind it, and is held to
the safety limits: never insulin below 80 mg/dL or with a low forecast, never above the maximum bolus or basal. One
insulin budget per decision: the bolus and the temporary basal are drawn from the same forecast, net of insulin on board
and of insulin recommended and not yet given, and together held under the two-hour cap."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vigil.glucose.effects import HORIZONS, TREND_SAMPLES_MIN, EffectsForecaster
from vigil.glucose.history import GlucoseHistory
from vigil.glucose.therapy import SafetyLimits, TherapyProfile

LOW = 70.0
HIGH_ALERT = 250.0
LOW_WINDOW_MIN = 30.0
HIGH_WINDOW_MIN = 60.0
SUSPEND_GUARD = 80.0
"""Basal is suspended while any forecast in the next two hours is below this."""
GUARD_WINDOW_MIN = 120.0
TEMP_BASAL_MIN = 30.0
RENEW_BEFORE_END_MIN = 5.0
"""A temporary basal still wanted is advised again this many minutes before it ends (one CGM interval)."""
RESCUE_SPACING_MIN = 20.0
RESCUE_WINDOW_MIN = 20.0
"""Fast carbohydrate is advised only when a forecast this near is under 70 mg/dL; a low further ahead is left to the
suspension (and the low alert still warns 30 minutes ahead)."""
RESCUE_AIM = 80.0
"""A rescue is sized to lift the lowest forecast of the next 20 minutes to this, at the patient's ISF / carb ratio."""
RESCUE_STEP_G = 5.0
"""Rescues are advised in steps of 5 g, at least 5 g and at most the usual rescue (``SafetyLimits.rescue_carbs_g``)."""
CORRECTION_ABOVE = 40.0
"""A correction bolus is advised when the eventual forecast is this far above target and glucose is above 150."""
CORRECTION_SHARE = 0.5
"""Only this share of the correction the forecast asks for is advised; the loop re-checks within the hour."""
CORRECTION_SPACING_MIN = 60.0
FALLING_BELOW = -0.05
"""mg/dL per minute (3 mg/dL an hour): a CGM trend below this is falling, and no extra insulin is advised."""
AFTER_RESCUE_MIN = 60.0
"""No extra insulin for this long after advised rescue carbohydrate: the rescue is not to be covered by insulin."""


@dataclass(frozen=True)
class Advice:
    """One recommendation or alert for the patient and the care team."""

    kind: str  # bolus | temp_basal | carbs | alert_low | alert_high
    amount: float
    unit: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)
    duration_min: float | None = None


@dataclass(frozen=True)
class Undelivered:
    """Insulin recommended and not yet in the data: bolus units (pending or accepted, not yet seen given) and the
    temporary basal recommended last (U/h, running until minute ``basal_until``)."""

    bolus_u: float = 0.0
    basal_u_per_h: float | None = None
    basal_until: float = -np.inf

    def extra_basal_u(self, now: float, programmed_u_per_h: float) -> float:
        """Units above the programmed basal that the temporary basal still gives after ``now``."""
        if self.basal_u_per_h is None:
            return 0.0
        return max(0.0, self.basal_u_per_h - programmed_u_per_h) * max(0.0, self.basal_until - now) / 60.0

    def runs(self, rate: float, now: float) -> bool:
        """Whether this temporary basal is ``rate`` and not about to end at ``now``."""
        same = self.basal_u_per_h is not None and abs(rate - self.basal_u_per_h) < 0.05
        return same and now < self.basal_until - RENEW_BEFORE_END_MIN


@dataclass(frozen=True)
class InsulinBudget:
    """What a decision may still recommend: ``wanted_u`` brings the eventual forecast to target, ``room_u`` is left
    under the two-hour cap; both net of the insulin on board and of what is recommended and not yet given."""

    wanted_u: float
    room_u: float

    def spend(self, units: float) -> InsulinBudget:
        return InsulinBudget(self.wanted_u - units, self.room_u - units)

    def allowed(self, units: float) -> float:
        """``units`` held within the room left under the cap (never below zero)."""
        return min(units, max(0.0, self.room_u))

    def as_data(self) -> dict[str, float]:
        return {"budget_wanted_u": round(self.wanted_u, 2), "budget_room_u": round(self.room_u, 2)}


@dataclass(frozen=True)
class Situation:
    """What the advisor sees at ``now``: glucose, on-board amounts and the forecast summary."""

    now: float
    glucose: float
    iob: float
    cob: float
    forecast_30: float
    lowest_30: float
    lowest_rescue: float
    lowest_guard: float
    highest_60: float
    eventual: float
    trend: float
    """mg/dL per minute: the slope of the line through the last 15 minutes of CGM."""

    def as_data(self) -> dict[str, float]:
        return {name: round(float(value), 2) for name, value in self.__dict__.items()}


def situation(forecaster: EffectsForecaster, history: GlucoseHistory, now: float) -> Situation | None:
    """Summarise the forecast at ``now``; None without a CGM value in the last 10 minutes."""
    glucose = forecaster.current_glucose(history, now)
    if glucose is None:
        return None
    path = forecaster.trajectory(history, now)
    p = forecaster.profile
    return Situation(
        now,
        glucose,
        history.insulin_on_board(now, p.basal_u_per_h, forecaster.insulin),
        history.carbs_on_board(now, forecaster.carbs),
        float(path[HORIZONS == 30.0][0]),
        float(path[HORIZONS <= LOW_WINDOW_MIN].min()),
        float(path[HORIZONS <= RESCUE_WINDOW_MIN].min()),
        float(path[HORIZONS <= GUARD_WINDOW_MIN].min()),
        float(path[HORIZONS <= HIGH_WINDOW_MIN].max()),
        float(path[-1]),
        cgm_trend(history, now),
    )


def cgm_trend(history: GlucoseHistory, now: float) -> float:
    """Slope (mg/dL per minute) of the line through the last 15 minutes of CGM; 0 with fewer than three values."""
    window = (history.cgm_minutes > now - TREND_SAMPLES_MIN - 1e-9) & (history.cgm_minutes <= now)
    if window.sum() < 3:
        return 0.0
    return float(np.polyfit(history.cgm_minutes[window] - now, history.cgm_values[window], 1)[0])


@dataclass
class GlucoseAdvisor:
    """Turns the patient's data into advice with their own (personalised) therapy profile."""

    profile: TherapyProfile
    limits: SafetyLimits
    last_rescue: float = -np.inf
    temp_basal: float | None = None
    temp_basal_set: float = -np.inf
    last_bolus: float = -np.inf

    def advise(
        self, history: GlucoseHistory, now: float, meal_grams: float = 0.0, undelivered: Undelivered | None = None
    ) -> list[Advice]:
        """Advice at ``now``; ``meal_grams`` is a meal the patient announces now (already in ``history``);
        ``undelivered`` the insulin recommended and not yet in ``history`` (None: every piece of advice was followed
        as given, so only this advisor's last temporary basal is still to run)."""
        seen = situation(EffectsForecaster(self.profile), history, now)
        if seen is None:
            return []
        pending = undelivered if undelivered is not None else self._own_basal()
        budget = self.budget(seen, pending.bolus_u)
        advice = self._alerts(seen) + self._rescue(seen)
        for_bolus = budget.spend(pending.extra_basal_u(now, self.profile.basal_u_per_h))  # unless it is replaced
        bolus = self._meal_bolus(seen, meal_grams, for_bolus) if meal_grams > 0 else self._correction(seen, for_bolus)
        if bolus is not None:
            self.last_bolus = now
            advice.append(bolus)
            budget = budget.spend(bolus.amount)
        basal = self._temp_basal(seen, budget, pending)
        return advice + ([basal] if basal is not None else [])

    def budget(self, seen: Situation, pending_bolus_u: float) -> InsulinBudget:
        """The decision's insulin: the forecast's need and the cap, less insulin on board and boluses not yet given."""
        p = self.profile
        wanted = (seen.eventual - p.target) / p.isf - pending_bolus_u
        room = self.limits.max_insulin_2h_u - max(seen.iob, 0.0) - pending_bolus_u
        return InsulinBudget(wanted, room)

    def _own_basal(self) -> Undelivered:
        return Undelivered(0.0, self.temp_basal, self.temp_basal_set + TEMP_BASAL_MIN)

    def insulin_allowed(self, seen: Situation) -> bool:
        return seen.glucose >= self.limits.no_insulin_below and seen.lowest_30 >= LOW

    def extra_insulin_allowed(self, seen: Situation) -> bool:
        """Insulin beyond the meal bolus and the programmed basal (a correction, a temporary basal above the
        programmed one) only while glucose is not falling (on the way down from a peak it would land on the trough)
        and not within an hour of advised rescue carbohydrate."""
        return seen.trend >= FALLING_BELOW and seen.now - self.last_rescue >= AFTER_RESCUE_MIN

    def _alerts(self, seen: Situation) -> list[Advice]:
        alerts = []
        if seen.lowest_30 < LOW:
            alerts.append(
                Advice(
                    "alert_low",
                    round(seen.lowest_30),
                    "mg/dL",
                    f"Glucose {seen.glucose:.0f} mg/dL is forecast to reach {seen.lowest_30:.0f} mg/dL "
                    f"within {LOW_WINDOW_MIN:.0f} minutes.",
                    seen.as_data(),
                )
            )
        if seen.highest_60 > HIGH_ALERT:
            alerts.append(
                Advice(
                    "alert_high",
                    round(seen.highest_60),
                    "mg/dL",
                    f"Glucose {seen.glucose:.0f} mg/dL is forecast to reach {seen.highest_60:.0f} mg/dL "
                    f"within {HIGH_WINDOW_MIN:.0f} minutes.",
                    seen.as_data(),
                )
            )
        return alerts

    def _rescue(self, seen: Situation) -> list[Advice]:
        """Fast carbohydrate when a low is forecast within 20 minutes (once every 20 minutes at most), as much as lifts
        that forecast to 80 mg/dL."""
        if seen.lowest_rescue >= LOW or seen.now - self.last_rescue < RESCUE_SPACING_MIN:
            return []
        self.last_rescue = seen.now
        grams = self.rescue_grams(seen)
        return [
            Advice(
                "carbs",
                grams,
                "g",
                f"Take {grams:.0f} g of fast carbohydrate: glucose {seen.glucose:.0f} mg/dL is forecast to "
                f"fall to {seen.lowest_rescue:.0f} mg/dL within {RESCUE_WINDOW_MIN:.0f} minutes.",
                seen.as_data(),
            )
        ]

    def rescue_grams(self, seen: Situation) -> float:
        """The grams that lift the lowest forecast of the next 20 minutes to 80 mg/dL (ISF / CR mg/dL per gram), in
        steps of 5 g, at least 5 g and at most the usual rescue."""
        p = self.profile
        grams = max(0.0, RESCUE_AIM - seen.lowest_rescue) * p.carb_ratio / p.isf
        stepped = RESCUE_STEP_G * np.ceil(grams / RESCUE_STEP_G)
        return float(np.clip(stepped, RESCUE_STEP_G, self.limits.rescue_carbs_g))

    def _meal_bolus(self, seen: Situation, meal_grams: float, budget: InsulinBudget) -> Advice | None:
        """Cover the forecast (meal already on board) down to target, net of insulin on board and not yet given, at
        most the plain carb dose plus a correction for the glucose now, within the budget's cap."""
        p = self.profile
        if not self.insulin_allowed(seen):
            return None
        plain = meal_grams / p.carb_ratio + max(0.0, seen.glucose - p.target) / p.isf
        units = round(budget.allowed(float(np.clip(min(budget.wanted_u, plain), 0.0, self.limits.max_bolus_u))), 2)
        if units <= 0:
            return None
        data = seen.as_data() | budget.as_data()
        data |= {"meal_g": meal_grams, "carb_ratio": round(p.carb_ratio, 2), "isf": round(p.isf, 2)}
        return Advice(
            "bolus",
            units,
            "U",
            f"Meal of {meal_grams:.0f} g at glucose {seen.glucose:.0f} mg/dL: forecast without more insulin "
            f"ends at {seen.eventual:.0f} mg/dL; {budget.wanted_u:.2f} U more would bring it to the {p.target:.0f} "
            f"mg/dL target; {units:.2f} U advised ({seen.iob:.2f} U already on board, {budget.room_u:.2f} U left "
            "under the 2-hour cap).",
            data,
        )

    def _correction(self, seen: Situation, budget: InsulinBudget) -> Advice | None:
        """Half the insulin that brings a high eventual forecast to target (net of insulin not yet given), at most once
        an hour, not while glucose is falling, within the budget's cap."""
        p = self.profile
        high = seen.eventual > p.target + CORRECTION_ABOVE and seen.glucose > 150
        if not high or not self.extra_insulin_allowed(seen):
            return None
        if not self.insulin_allowed(seen) or seen.now - self.last_bolus < CORRECTION_SPACING_MIN:
            return None
        units = round(budget.allowed(min(CORRECTION_SHARE * budget.wanted_u, self.limits.max_bolus_u)), 2)
        if units < 0.05:
            return None
        return Advice(
            "bolus",
            units,
            "U",
            f"Correction: glucose {seen.glucose:.0f} mg/dL, forecast to stay high (eventually "
            f"{seen.eventual:.0f} mg/dL with {seen.iob:.2f} U on board); {units:.2f} U is half of what brings "
            f"it to {p.target:.0f} mg/dL.",
            seen.as_data() | budget.as_data() | {"isf": round(p.isf, 2)},
        )

    def _temp_basal(self, seen: Situation, budget: InsulinBudget, running: Undelivered) -> Advice | None:
        """Half an hour at the rate that gives what the budget still wants (replacing the temporary basal running), never
        above the programmed basal while glucose falls; suspended when a low is near; None while the same rate runs
        and is not about to end."""
        p, limits = self.profile, self.limits
        if seen.lowest_guard < SUSPEND_GUARD or not self.insulin_allowed(seen):
            rate, why = 0.0, f"lowest forecast in 2 h is {seen.lowest_guard:.0f} mg/dL"
        else:
            wanted = budget.wanted_u if self.extra_insulin_allowed(seen) else min(budget.wanted_u, 0.0)
            extra = budget.allowed(wanted) / (TEMP_BASAL_MIN / 60)
            rate = float(np.clip(p.basal_u_per_h + extra, 0.0, limits.max_temp_basal_u_per_h))
            why = (
                f"eventual forecast {seen.eventual:.0f} mg/dL against the {p.target:.0f} mg/dL target, "
                f"{budget.wanted_u:.2f} U still wanted after boluses, {budget.room_u:.2f} U left under the 2-hour cap"
            )
        rate = round(rate, 2)
        if running.runs(rate, seen.now):
            return None
        self.temp_basal, self.temp_basal_set = rate, seen.now
        return Advice(
            "temp_basal",
            rate,
            "U/h",
            f"Basal {rate:.2f} U/h for {TEMP_BASAL_MIN:.0f} minutes (programmed {p.basal_u_per_h:.2f} U/h): {why}.",
            seen.as_data() | budget.as_data(),
            TEMP_BASAL_MIN,
        )
