"""A patient's therapy settings (insulin sensitivity, carb ratio, basal) with their uncertainty, and the safety limits
every piece of advice is held to."""

from __future__ import annotations

from dataclasses import dataclass, replace

CARB_RULE = 500.0
"""The 500 rule: grams of carbohydrate covered by one unit is about 500 / total daily insulin."""
CORRECTION_RULE = 1800.0
"""The 1800 rule: mg/dL dropped by one unit is about 1800 / total daily insulin (rapid-acting analogues)."""
DEFAULT_TARGET = 120.0
PRIOR_RELATIVE_SD = 0.35
"""How far a population default may be from the patient's truth (one standard deviation, as a share)."""
MAX_BOLUS_SHARE = 0.25
"""The largest single bolus, as a share of the total daily insulin (a large meal's dose)."""
MAX_TEMP_BASAL_FACTOR = 4.0
"""The highest temporary basal, as a multiple of the programmed basal (OpenAPS's current-basal safety multiplier)."""
MAX_INSULIN_2H_SHARE = 0.3
"""The insulin budget of one decision, as a share of the total daily insulin: insulin on board, plus what was
recommended and is not yet given, plus this decision's bolus and extra basal (all given within the next two hours).
It is the largest bolus plus a margin of 5 % of the day's insulin, the role OpenAPS gives its maximum insulin on board:
however the decisions follow one another, they never build more than this."""


@dataclass(frozen=True)
class TherapyProfile:
    """Settings in clinical units, each with a standard deviation: ISF mg/dL per U, carb ratio g per U, basal U/h."""

    isf: float
    carb_ratio: float
    basal_u_per_h: float
    target: float = DEFAULT_TARGET
    isf_sd: float = 0.0
    carb_ratio_sd: float = 0.0
    basal_sd: float = 0.0

    def with_values(self, **changes: float) -> TherapyProfile:
        return replace(self, **changes)


@dataclass(frozen=True)
class SafetyLimits:
    """Bounds on every recommendation; insulin is never advised below ``no_insulin_below`` mg/dL, and on board plus
    recommended it never exceeds ``max_insulin_2h_u``."""

    max_bolus_u: float
    max_temp_basal_u_per_h: float
    max_insulin_2h_u: float
    no_insulin_below: float = 80.0
    rescue_carbs_g: float = 15.0


def population_profile(
    total_daily_insulin: float, basal_u_per_h: float, target: float = DEFAULT_TARGET
) -> TherapyProfile:
    """Starting settings from the patient's usual total daily insulin (500 and 1800 rules) and programmed basal."""
    isf = CORRECTION_RULE / total_daily_insulin
    carb_ratio = CARB_RULE / total_daily_insulin
    return TherapyProfile(
        isf,
        carb_ratio,
        basal_u_per_h,
        target,
        isf * PRIOR_RELATIVE_SD,
        carb_ratio * PRIOR_RELATIVE_SD,
        basal_u_per_h * PRIOR_RELATIVE_SD,
    )


def safety_limits(total_daily_insulin: float, basal_u_per_h: float) -> SafetyLimits:
    """A bolus of at most a quarter of the daily insulin, a temporary basal of at most four times the programmed one,
    and at most 30 % of the daily insulin on board and recommended at once."""
    return SafetyLimits(
        max_bolus_u=MAX_BOLUS_SHARE * total_daily_insulin,
        max_temp_basal_u_per_h=MAX_TEMP_BASAL_FACTOR * basal_u_per_h,
        max_insulin_2h_u=MAX_INSULIN_2H_SHARE * total_daily_insulin,
    )
