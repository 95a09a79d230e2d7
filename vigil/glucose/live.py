"""Live glucose advice: each patient's diabetes data from the stream, the advisor's output as recommendations and
forecast warnings (which the care stage turns into alerts), and the forecast with its band for the dashboard.
Decision support only: nothing is dosed."""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vigil.domain import AlertRule, Quality, Reading, RecommendationDraft, RecommendationKind
from vigil.glucose.advisor import RENEW_BEFORE_END_MIN, Advice, GlucoseAdvisor, Undelivered
from vigil.glucose.band_error import fallback_rmse
from vigil.glucose.effects import EffectsForecaster
from vigil.glucose.history import GlucoseHistory
from vigil.glucose.personalise import LOOKBACK_MIN, Personaliser
from vigil.glucose.therapy import TherapyProfile, population_profile, safety_limits
from vigil.metrics import MetricName
from vigil.timeutil import format_time

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""The live clock: minutes since this instant."""
GLUCOSE_METRICS = (MetricName.GLUCOSE, MetricName.CARBS, MetricName.INSULIN_BOLUS, MetricName.INSULIN_BASAL)
DAY_MIN = 24 * 60.0
WARM_UP_WINDOW = timedelta(minutes=LOOKBACK_MIN)
"""Stored diabetes data read at start-up: what the daily personalisation looks back over."""

DEFAULT_TOTAL_DAILY_INSULIN = 40.0
"""U/day assumed for a patient with no prescription and under a day of insulin data (a typical adult)."""
DEFAULT_SOURCE = "default: no prescription and under a day of insulin data"
BASAL_SHARE = 0.5
"""Programmed basal assumed as this share of the total daily insulin when no basal rate has been reported."""

BAND_HORIZONS = np.arange(5.0, 125.0, 5.0)
"""The dashboard's forecast: every 5 minutes up to 2 hours."""
RESIDUAL_MEMORY = 288
"""Forecast errors kept per horizon: a day of forecasts at one per CGM reading."""
MIN_RESIDUALS = 12
BAND_Z = 1.2816
"""The band is the forecast plus or minus this many root-mean-square errors: 80 % of normal errors fall inside."""
MIN_BAND_RMSE = 10.0
"""mg/dL: the band is never narrower than this RMSE, about a CGM's own error in range, however well the last forecasts
did (a steady day would otherwise shrink it to nothing)."""

MATERIAL_BASAL_SHARE = 0.25
MIN_BASAL_CHANGE_U_PER_H = 0.1
"""A temporary basal is recommended when it differs from the basal running (the last one recommended until its duration
ends, then the programmed basal) by a quarter of the programmed basal and at least 0.1 U/h, or when it renews the one
running as it is about to end and still differs that much from the programmed basal."""
BOLUS_PENDING_MIN = 60.0
"""A bolus recommended is counted as still to be given for this long (its 30 minutes of validity and the time an
accepted one takes to reach the data), unless a bolus recorded since shows it given. Decisions are not seen here, so a
rejected one counts too until then: less insulin advised, never more."""
SERIES_WINDOW_MIN = 6 * 60.0

ALERT_RULES = {"alert_low": AlertRule.GLUCOSE_FORECAST_LOW, "alert_high": AlertRule.GLUCOSE_FORECAST_HIGH}
"""The advisor's predictive alerts and the rules they are raised under."""
RECOMMENDATION_KINDS = (
    RecommendationKind.MEAL_BOLUS,
    RecommendationKind.CORRECTION_BOLUS,
    RecommendationKind.TEMP_BASAL,
    RecommendationKind.RESCUE_CARBS,
)
"""The recommendations the glucose advice makes."""
VALIDITY_MIN = {
    RecommendationKind.MEAL_BOLUS: 30.0,
    RecommendationKind.CORRECTION_BOLUS: 30.0,
    RecommendationKind.RESCUE_CARBS: 15.0,
}
"""Minutes a recommendation holds: a meal bolus from its meal, a correction bolus from when it was given, rescue carbs
15 minutes (the 15-minute recheck of hypoglycaemia treatment: by then the advice has been renewed on fresh CGM).
A temporary basal holds for its own duration."""


def to_minutes(time: datetime) -> float:
    return (time - EPOCH).total_seconds() / 60.0


def to_time(minutes: float) -> datetime:
    return EPOCH + timedelta(minutes=float(minutes))


@dataclass(frozen=True)
class TherapySource:
    """A patient's starting point: total daily insulin (U), programmed basal (U/h), and where they come from."""

    total_daily_insulin: float
    basal_u_per_h: float
    source: str


def default_therapy() -> TherapySource:
    return TherapySource(DEFAULT_TOTAL_DAILY_INSULIN, BASAL_SHARE * DEFAULT_TOTAL_DAILY_INSULIN / 24, DEFAULT_SOURCE)


def simglucose_therapy(virtual_patient: str) -> TherapySource:
    """The simulated patient's own prescription (what its simulated pump is programmed with)."""
    from vigil.glucose.body import prescription

    chart = prescription(virtual_patient)
    return TherapySource(chart.total_daily_insulin, chart.basal_u_per_h, f"prescription of {virtual_patient}")


def therapy_from_history(history: GlucoseHistory, now: float) -> TherapySource | None:
    """Mean daily insulin (boluses plus basal delivered) once insulin has been recorded for a day, with the median
    reported basal rate; None before that."""
    firsts = [minutes[0] for minutes in (history.bolus_minutes, history.basal_minutes) if len(minutes)]
    if not firsts or now - min(firsts) < DAY_MIN:
        return None
    since, days = min(firsts), (now - min(firsts)) / DAY_MIN
    _, basal_units = history.basal_doses(now, 0.0, since)
    daily = (history.bolus_units[history.bolus_minutes <= now].sum() + basal_units.sum()) / days
    if daily <= 0:
        return None
    basal = float(np.median(history.basal_rates)) if len(history.basal_rates) else BASAL_SHARE * daily / 24
    return TherapySource(round(float(daily), 1), round(basal, 3), f"mean daily insulin over {days:.1f} days of data")


def profile_json(profile: TherapyProfile, therapy: TherapySource, personalised_at: float | None) -> dict[str, Any]:
    """The settings in use with their standard deviations, and what they started from."""
    return {
        "isf_mg_dl_per_u": round(profile.isf, 2),
        "isf_sd": round(profile.isf_sd, 2),
        "carb_ratio_g_per_u": round(profile.carb_ratio, 2),
        "carb_ratio_sd": round(profile.carb_ratio_sd, 2),
        "basal_u_per_h": round(profile.basal_u_per_h, 3),
        "basal_sd": round(profile.basal_sd, 3),
        "target_mg_dl": profile.target,
        "total_daily_insulin_u": therapy.total_daily_insulin,
        "programmed_basal_u_per_h": round(therapy.basal_u_per_h, 3),
        "source": therapy.source,
        "personalised_at": None if personalised_at is None else format_time(to_time(personalised_at)),
    }


ADVISOR_MEMORY = ("last_rescue", "temp_basal", "temp_basal_set", "last_bolus")
"""What a GlucoseAdvisor remembers between decisions (minutes, or U/h for the temporary basal it set)."""


def _finite(value: float | None) -> float | None:
    """A minute or amount for JSON: None for never (-inf) or none."""
    return None if value is None or not np.isfinite(value) else float(value)


def _or_never(value: float | None) -> float:
    return -np.inf if value is None else float(value)


@dataclass
class PatientGlucose:
    """One patient's live diabetes state: the data, the personalised advisor, and how good its forecasts have been."""

    therapy: TherapySource
    history: GlucoseHistory = field(default_factory=GlucoseHistory)
    personalised_at: float | None = None
    advised_through: float = -np.inf
    forecasts: dict[float, NDArray[np.float64]] = field(default_factory=dict)
    residuals: list[array] = field(default_factory=lambda: [array("d") for _ in BAND_HORIZONS])
    """The last ``RESIDUAL_MEMORY`` forecast errors at each horizon, packed (a day's are 55 KB a patient)."""
    recommended_boluses: list[tuple[float, float]] = field(default_factory=list)
    """(minute, units) of the boluses recommended in the last ``BOLUS_PENDING_MIN`` minutes."""

    def __post_init__(self) -> None:
        self.start_from(self.therapy)

    def start_from(self, therapy: TherapySource) -> None:
        """Population settings and safety limits from this total daily insulin and programmed basal."""
        self.therapy = therapy
        self.personaliser = Personaliser(population_profile(therapy.total_daily_insulin, therapy.basal_u_per_h))
        self.advisor = GlucoseAdvisor(
            self.personaliser.current, safety_limits(therapy.total_daily_insulin, therapy.basal_u_per_h)
        )
        self.recommended_basal, self.recommended_basal_until = therapy.basal_u_per_h, -np.inf

    def add(self, reading: Reading) -> bool:
        """Append a reading to its stream; False for one older than that stream's latest (kept append-only)."""
        minute, h = to_minutes(reading.time), self.history
        times, append = {
            MetricName.GLUCOSE: (h.cgm_minutes, h.add_cgm),
            MetricName.CARBS: (h.carb_minutes, h.add_carbs),
            MetricName.INSULIN_BOLUS: (h.bolus_minutes, h.add_bolus),
            MetricName.INSULIN_BASAL: (h.basal_minutes, h.set_basal),
        }[MetricName(reading.metric)]
        if reading.quality != Quality.OK or (len(times) and minute < times[-1]):
            return False
        append(minute, reading.value)
        return True

    def observe(self, minute: float) -> None:
        """At a CGM reading: score the earlier forecasts it checks, then forecast from it."""
        value = float(self.history.cgm_values[self.history.cgm_minutes == minute][-1])
        for made, path in list(self.forecasts.items()):
            index = round((minute - made) / 5.0) - 1
            if 0 <= index < len(BAND_HORIZONS) and abs(minute - made - BAND_HORIZONS[index]) <= 2.5:
                errors = self.residuals[index]
                errors.append(float(value - path[index]))
                if len(errors) > RESIDUAL_MEMORY:
                    del errors[0]
            if minute - made > BAND_HORIZONS[-1]:
                del self.forecasts[made]
        path = EffectsForecaster(self.advisor.profile).trajectory(self.history, minute, BAND_HORIZONS)
        if np.isfinite(path).all():
            self.forecasts[minute] = path

    def band(self) -> tuple[NDArray, list[str]]:
        """Half-width of the band at each horizon (``BAND_Z`` times the RMS of the patient's recent forecast errors
        there, at least ``MIN_BAND_RMSE``, or the effects model's measured RMSE), and whose errors it comes from."""
        half_width = BAND_Z * np.interp(BAND_HORIZONS, *fallback_rmse())
        sources = ["fallback"] * len(BAND_HORIZONS)
        for i, errors in enumerate(self.residuals):
            if len(errors) >= MIN_RESIDUALS:
                half_width[i] = BAND_Z * max(float(np.sqrt(np.mean(np.square(np.asarray(errors))))), MIN_BAND_RMSE)
                sources[i] = "patient"
        return half_width, sources

    def personalise_if_due(self, now: float) -> None:
        """Once a day: adopt the mean daily insulin once known (if only defaulted), re-estimate the settings
        within the daily step, and forget data older than the personalisation looks back."""
        if self.personalised_at is not None and now - self.personalised_at < DAY_MIN:
            return
        measured = therapy_from_history(self.history, now) if self.therapy.source == DEFAULT_SOURCE else None
        if measured is not None:
            self.start_from(measured)
        self.advisor.profile = self.personaliser.update(self.history, now)
        self.history = self.history.recent(now - LOOKBACK_MIN)
        self.personalised_at = now

    def material_basal(self, advice: Advice, minute: float) -> bool:
        """Whether a temporary basal advised at ``minute`` is to be recommended (see ``MATERIAL_BASAL_SHARE``);
        remembers it and its end if so."""
        programmed = self.therapy.basal_u_per_h
        threshold = max(MATERIAL_BASAL_SHARE * programmed, MIN_BASAL_CHANGE_U_PER_H)
        running = self.recommended_basal if minute < self.recommended_basal_until else programmed
        ending = minute >= self.recommended_basal_until - RENEW_BEFORE_END_MIN
        renews = ending and abs(advice.amount - programmed) >= threshold
        if abs(advice.amount - running) < threshold and not renews:
            return False
        self.recommended_basal, self.recommended_basal_until = advice.amount, minute + (advice.duration_min or 0.0)
        return True

    def recommends(self, advice: Advice, minute: float) -> bool:
        """Whether advice given at ``minute`` becomes a recommendation; remembers the insulin recommended."""
        if advice.kind in ALERT_RULES or (advice.kind == "temp_basal" and not self.material_basal(advice, minute)):
            return False
        if advice.kind == "bolus":
            self.recommended_boluses.append((minute, advice.amount))
        return True

    def checkpoint(self) -> dict[str, Any]:
        """What the advice remembers beyond the data (JSON-able): the therapy it started from, the personalised
        settings and when, and the insulin it recommended that may not be given yet."""
        advisor = self.advisor
        return {
            "therapy": asdict(self.therapy),
            "personalised_at": self.personalised_at,
            "profile": asdict(advisor.profile),
            "recommended_boluses": self.recommended_boluses,
            "recommended_basal": self.recommended_basal,
            "recommended_basal_until": _finite(self.recommended_basal_until),
            "advisor": {name: _finite(getattr(advisor, name)) for name in ADVISOR_MEMORY},
        }

    def resume(self, checkpoint: dict[str, Any]) -> None:
        """Continue from ``checkpoint`` (over state rebuilt from the data), as the run that wrote it would have."""
        therapy = TherapySource(**checkpoint["therapy"])
        if therapy != self.therapy:
            self.start_from(therapy)
        self.advisor.profile = self.personaliser.current = TherapyProfile(**checkpoint["profile"])
        self.personalised_at = checkpoint["personalised_at"]
        self.recommended_boluses = [(float(m), float(u)) for m, u in checkpoint["recommended_boluses"]]
        self.recommended_basal = float(checkpoint["recommended_basal"])
        self.recommended_basal_until = _or_never(checkpoint["recommended_basal_until"])
        for name, value in checkpoint["advisor"].items():
            setattr(self.advisor, name, None if name == "temp_basal" and value is None else _or_never(value))

    def undelivered(self, now: float) -> Undelivered:
        """Insulin recommended and not yet seen in the data: the boluses of the last hour less the boluses recorded
        since the first of them, and the last temporary basal recommended (its remaining duration)."""
        self.recommended_boluses = [(m, u) for m, u in self.recommended_boluses if now - m < BOLUS_PENDING_MIN]
        bolus = 0.0
        if self.recommended_boluses:
            h, since = self.history, self.recommended_boluses[0][0]
            given = h.bolus_units[(h.bolus_minutes >= since) & (h.bolus_minutes <= now)].sum()
            bolus = max(0.0, sum(u for _, u in self.recommended_boluses) - float(given))
        return Undelivered(bolus, self.recommended_basal, self.recommended_basal_until)


@dataclass(frozen=True)
class ForecastWarning:
    """The advisor's warning that glucose is forecast out of range: ``rule`` (AlertRule.GLUCOSE_FORECAST_LOW or
    GLUCOSE_FORECAST_HIGH), the forecast glucose (mg/dL) it warns of, the advisor's reason and the numbers behind it."""

    rule: AlertRule
    glucose: float
    reason: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ForecastCheck:
    """One patient's forecast at one advice point and its warnings (none: the forecast stays in range)."""

    patient_id: str
    time: datetime
    warnings: tuple[ForecastWarning, ...] = ()


@dataclass(frozen=True)
class GlucoseOutcome:
    recommendations: list[RecommendationDraft] = field(default_factory=list)
    checks: list[ForecastCheck] = field(default_factory=list)


def advice_points(cgm_minutes: Sequence[float], meals: Sequence[tuple[float, float]]) -> dict[float, float]:
    """When to advise, with the grams announced for it: at each new CGM reading, and at a meal announced after the
    last of them; each meal goes with the first point at or after it."""
    last_cgm = max(cgm_minutes, default=-np.inf)
    points = dict.fromkeys(sorted(set(cgm_minutes) | {minute for minute, _ in meals if minute > last_cgm}), 0.0)
    for minute, grams in meals:
        points[next(point for point in points if point >= minute)] += grams
    return points


def advice_data(advice: Advice, minute: float) -> dict[str, Any]:
    """The numbers behind a piece of advice given at ``minute``, timed by a timestamp rather than the live clock."""
    data = {key: value for key, value in advice.data.items() if key != "now"}
    return {"as_of": format_time(to_time(minute)), **data, "amount": advice.amount, "unit": advice.unit}


def forecast_check(patient_id: str, minute: float, advice: list[Advice]) -> ForecastCheck:
    """The advisor's predictive alerts at ``minute`` as forecast warnings, for the care stage to judge."""
    warnings = tuple(
        ForecastWarning(ALERT_RULES[item.kind], item.amount, item.reason, advice_data(item, minute))
        for item in advice
        if item.kind in ALERT_RULES
    )
    return ForecastCheck(patient_id, to_time(minute), warnings)


def recommendation_kind(advice: Advice) -> RecommendationKind:
    if advice.kind == "bolus":
        return RecommendationKind.MEAL_BOLUS if "meal_g" in advice.data else RecommendationKind.CORRECTION_BOLUS
    return {"temp_basal": RecommendationKind.TEMP_BASAL, "carbs": RecommendationKind.RESCUE_CARBS}[advice.kind]


def recommendation_action(kind: RecommendationKind, advice: Advice) -> str:
    return {
        RecommendationKind.MEAL_BOLUS: f"Meal bolus {advice.amount:.2f} U",
        RecommendationKind.CORRECTION_BOLUS: f"Correction bolus {advice.amount:.2f} U",
        RecommendationKind.TEMP_BASAL: f"Temporary basal {advice.amount:.2f} U/h for {advice.duration_min or 0:.0f} minutes",
        RecommendationKind.RESCUE_CARBS: f"Take {advice.amount:.0f} g of fast-acting carbohydrate now",
    }[kind]


def valid_until(kind: RecommendationKind, advice: Advice, minute: float, meal_minute: float) -> datetime:
    """When advice given at ``minute`` (for a meal at ``meal_minute``) stops holding."""
    if kind == RecommendationKind.TEMP_BASAL:
        return to_time(minute + (advice.duration_min or 0.0))
    start = meal_minute if kind == RecommendationKind.MEAL_BOLUS else minute
    return to_time(start + VALIDITY_MIN[kind])


def meal_minutes(points: Iterable[float], meals: Sequence[tuple[float, float]]) -> dict[float, float]:
    """The (latest) meal each advice point advises on, as ``advice_points`` pairs them."""
    ordered = sorted(points)
    return {next(point for point in ordered if point >= minute): minute for minute, _ in sorted(meals)}


class LiveGlucose:
    """Per-patient glucose advice on the stream: at most one run of the advisor per new CGM reading (and one per
    meal announced after it); its advice becomes recommendations awaiting a clinician and forecast warnings."""

    def __init__(self) -> None:
        fallback_rmse()  # the band's error before a patient has their own: read now, so a bad file stops start-up
        self._patients: dict[str, PatientGlucose] = {}
        self._prescribed: dict[str, TherapySource] = {}
        self._lock = threading.Lock()

    def prescribe(self, patient_id: str, therapy: TherapySource) -> None:
        """The patient's known total daily insulin and programmed basal, used when their state starts."""
        with self._lock:
            self._prescribed[patient_id] = therapy

    def warm_up(self, readings: Iterable[Reading]) -> None:
        """Rebuild each patient's state from stored readings: forecasts scored for the band, no advice raised."""
        with self._lock:
            for patient_id, batch in _streaming_glucose(readings).items():
                state = self._state(patient_id)
                for reading in batch:
                    state.add(reading)
                minutes = state.history.cgm_minutes
                if len(minutes) == 0:  # only readings flagged implausible
                    continue
                for minute in minutes[minutes >= minutes[-1] - (RESIDUAL_MEMORY * 5 + BAND_HORIZONS[-1])]:
                    state.observe(float(minute))
                state.advised_through = float(minutes[-1])
                state.personalise_if_due(float(minutes[-1]))

    def checkpoints(self, patient_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``PatientGlucose.checkpoint`` of each of these patients who streams glucose."""
        with self._lock:
            return {pid: self._patients[pid].checkpoint() for pid in patient_ids if pid in self._patients}

    def resume(self, checkpoints: dict[str, dict[str, Any]]) -> None:
        """Continue each patient warmed up from the data from their checkpoint."""
        with self._lock:
            for patient_id, checkpoint in checkpoints.items():
                if patient_id in self._patients:
                    self._patients[patient_id].resume(checkpoint)

    def update(self, readings: Iterable[Reading]) -> GlucoseOutcome:
        """Advise on newly stored readings; returns the recommendations to record and the forecasts checked."""
        outcome = GlucoseOutcome()
        with self._lock:
            for patient_id, batch in _streaming_glucose(readings, self._patients).items():
                self._advise_patient(patient_id, self._state(patient_id), batch, outcome)
        return outcome

    def _state(self, patient_id: str) -> PatientGlucose:
        if patient_id not in self._patients:
            self._patients[patient_id] = PatientGlucose(self._prescribed.get(patient_id) or default_therapy())
        return self._patients[patient_id]

    def _advise_patient(
        self, patient_id: str, state: PatientGlucose, batch: list[Reading], outcome: GlucoseOutcome
    ) -> None:
        added = [reading for reading in batch if state.add(reading)]
        new_cgm = [
            minute
            for minute in (to_minutes(r.time) for r in added if r.metric == MetricName.GLUCOSE)
            if minute > state.advised_through
        ]
        meals = [(to_minutes(r.time), r.value) for r in added if r.metric == MetricName.CARBS]
        points = advice_points(new_cgm, meals)
        meal_at = meal_minutes(points, meals)
        for minute, grams in points.items():
            state.personalise_if_due(minute)
            if minute in new_cgm:
                state.observe(minute)
            advice = state.advisor.advise(state.history, minute, grams, state.undelivered(minute))
            recommendations = self._recommendations(patient_id, state, minute, meal_at.get(minute, minute), advice)
            outcome.recommendations.extend(recommendations)
            outcome.checks.append(forecast_check(patient_id, minute, advice))
        state.advised_through = max([state.advised_through, *new_cgm])

    @staticmethod
    def _recommendations(
        patient_id: str, state: PatientGlucose, minute: float, meal_minute: float, advice: list[Advice]
    ) -> list[RecommendationDraft]:
        """Drafts of the advice at ``minute``; a meal bolus is about its meal (another meal's does not replace it)."""
        drafts = []
        for item in advice:
            if not state.recommends(item, minute):
                continue
            kind = recommendation_kind(item)
            profile = profile_json(state.advisor.profile, state.therapy, state.personalised_at)
            data = advice_data(item, minute) | {"duration_min": item.duration_min, "profile": profile}
            meal = format_time(to_time(meal_minute)) if kind == RecommendationKind.MEAL_BOLUS else ""
            drafts.append(
                RecommendationDraft(
                    patient_id,
                    kind,
                    to_time(minute),
                    recommendation_action(kind, item),
                    item.reason,
                    data | ({"meal_time": meal} if meal else {}),
                    valid_until=valid_until(kind, item, minute, meal_minute),
                    subject=meal,
                )
            )
        return drafts

    def view(self, patient_id: str) -> dict[str, Any] | None:
        """The last 6 h of CGM, the 2 h forecast from the latest reading with its band, IOB, COB and the settings;
        None for a patient who has not streamed glucose."""
        with self._lock:
            state = self._patients.get(patient_id)
            if state is None or len(state.history.cgm_minutes) == 0:
                return None
            return _view(state)


def _view(state: PatientGlucose) -> dict[str, Any]:
    history, profile = state.history, state.advisor.profile
    now = float(history.cgm_minutes[-1])
    recent = history.cgm_minutes >= now - SERIES_WINDOW_MIN
    path = EffectsForecaster(profile).trajectory(history, now, BAND_HORIZONS)
    half_width, sources = state.band()
    forecast = (
        [
            {
                "time": format_time(to_time(now + h)),
                "minutes_ahead": int(h),
                "value": round(float(v), 1),
                "low": round(float(v - w), 1),
                "high": round(float(v + w), 1),
                "band": source,
            }
            for h, v, w, source in zip(BAND_HORIZONS, path, half_width, sources)
        ]
        if np.isfinite(path).all()
        else []
    )
    return {
        "as_of": format_time(to_time(now)),
        "cgm": [
            {"time": format_time(to_time(m)), "value": round(float(v), 1)}
            for m, v in zip(history.cgm_minutes[recent], history.cgm_values[recent])
        ],
        "forecast": forecast,
        "band": f"forecast +/- {BAND_Z} x the RMS of the patient's last {RESIDUAL_MEMORY} forecast errors at each "
        f"horizon (once {MIN_RESIDUALS} are known; at least {MIN_BAND_RMSE:.0f} mg/dL; 'fallback' points use "
        "the effects model's RMSE on simulated patients)",
        "iob_u": round(history.insulin_on_board(now, profile.basal_u_per_h), 2),
        "cob_g": round(history.carbs_on_board(now), 1),
        "profile": profile_json(profile, state.therapy, state.personalised_at),
    }


def _streaming_glucose(readings: Iterable[Reading], known: dict | None = None) -> dict[str, list[Reading]]:
    """Diabetes readings by patient, in time order, for patients with glucose in them (or already ``known``)."""
    grouped: dict[str, list[Reading]] = {}
    for reading in sorted(readings, key=lambda r: r.time):
        if reading.metric in GLUCOSE_METRICS:
            grouped.setdefault(reading.patient_id, []).append(reading)
    return {
        pid: batch
        for pid, batch in grouped.items()
        if pid in (known or {}) or any(r.metric == MetricName.GLUCOSE for r in batch)
    }


__all__ = [
    "GLUCOSE_METRICS",
    "RECOMMENDATION_KINDS",
    "ForecastCheck",
    "ForecastWarning",
    "LiveGlucose",
    "TherapySource",
    "simglucose_therapy",
]
