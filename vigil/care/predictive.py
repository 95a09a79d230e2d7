"""Alerts from predictions: the sepsis model's hourly risk and the glucose advisor's forecast warnings.

The models and the advisor predict; here, as for the vital signs, the care stage decides when a prediction becomes
an alert: once it is confirmed, and once per episode.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from vigil.care.engine import EpisodeTracker
from vigil.care.rules import HYPOGLYCAEMIA_LEVEL_2, RuleVerdict
from vigil.domain import AlertDraft, AlertRule, Score, Severity
from vigil.glucose.live import ForecastCheck, ForecastWarning

CONFIRMING_HOURS = 2
"""Consecutive closed hours above the threshold before the risk alerts: one hour of an ICU-trained model on
ward data is noisy (see the model card)."""
FORECAST_EPISODE_CLEAR = timedelta(minutes=30)
"""A predictive glucose alert's episode ends once its forecast condition has been absent this long (no alert every
5 min)."""


class SepsisRiskAlerts:
    """A `sepsis_risk` alert, carrying the explanation, once a patient's hourly risk has been above the model's
    threshold for ``CONFIRMING_HOURS`` consecutive hours; again only after it has dropped below."""

    def __init__(self) -> None:
        self._episodes = EpisodeTracker()
        self._streaks: dict[str, int] = {}

    def update(self, scores: Iterable[Score]) -> list[AlertDraft]:
        """The alerts these scores (each patient's in hour order) raise."""
        return [alert for score in scores if (alert := self._alert(score)) is not None]

    def _alert(self, score: Score) -> AlertDraft | None:
        streak = self._streaks.get(score.patient_id, 0) + 1 if score.details["alarm"] else 0
        self._streaks[score.patient_id] = streak
        verdict = RuleVerdict(AlertRule.SEPSIS_RISK, int(streak >= CONFIRMING_HOURS))
        if not self._episodes.should_raise(score.patient_id, verdict):
            return None
        message = (
            f"Sepsis risk {score.value:.1%} in the hour to {score.time:%H:%M} has been above the alarm threshold "
            f"{score.details['threshold']:.1%} for {CONFIRMING_HOURS} hours; driven by {_raising(score)}."
        )
        return AlertDraft(
            score.patient_id, AlertRule.SEPSIS_RISK, Severity.WARNING, score.time, message, dict(score.details)
        )


def _raising(score: Score, top: int = 3) -> str:
    """The explanation's inputs that raise the risk most, in clinical words ("respiration 30/min, up from 18 ...")."""
    texts = [reason["text"] for reason in score.details["explanation"] if reason["contribution"] > 0][:top]
    return "; ".join(texts) or "no single vital sign"


class GlucoseForecastAlerts:
    """`glucose_forecast_low` (urgent under 54 mg/dL) and `glucose_forecast_high` alerts from the advisor's warnings,
    once per episode: a worse level raises again, and an episode ends ``FORECAST_EPISODE_CLEAR`` after its last
    warning."""

    def __init__(self) -> None:
        self._episodes = EpisodeTracker()
        self._last_warned: dict[tuple[str, AlertRule], datetime] = {}

    def update(self, checks: Iterable[ForecastCheck]) -> list[AlertDraft]:
        """The alerts these checks (each patient's in time order) raise."""
        drafts = []
        for check in checks:
            warnings = {warning.rule: warning for warning in check.warnings}
            for rule in (AlertRule.GLUCOSE_FORECAST_LOW, AlertRule.GLUCOSE_FORECAST_HIGH):
                verdict = self._verdict(check, rule, warnings.get(rule))
                if verdict is not None and self._episodes.should_raise(check.patient_id, verdict):
                    drafts.append(
                        AlertDraft(
                            check.patient_id,
                            rule,
                            verdict.severity,
                            check.time,
                            verdict.message,
                            verdict.data,
                            verdict.level,
                        )
                    )
        return drafts

    def _verdict(self, check: ForecastCheck, rule: AlertRule, warning: ForecastWarning | None) -> RuleVerdict | None:
        """The forecast condition now; cleared only after ``FORECAST_EPISODE_CLEAR`` without it, None until then."""
        key = (check.patient_id, rule)
        if warning is None:
            last = self._last_warned.get(key)
            return RuleVerdict(rule, 0) if last is None or check.time - last >= FORECAST_EPISODE_CLEAR else None
        self._last_warned[key] = check.time
        urgent = rule == AlertRule.GLUCOSE_FORECAST_LOW and warning.glucose < HYPOGLYCAEMIA_LEVEL_2
        severity = Severity.URGENT if urgent else Severity.WARNING
        return RuleVerdict(rule, 2 if urgent else 1, severity, warning.reason, warning.data | {"predictive": True})
