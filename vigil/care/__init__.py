"""The care stage: NEWS2 scoring, alert rules without alert storms, and escalation recommendations."""

from vigil.care.engine import (
    MIN_NEWS2_PARAMETERS,
    CareEngine,
    CareOutcome,
    EpisodeTracker,
    News2Context,
    escalation_recommendation,
    snapshot_news2,
)
from vigil.care.news2 import ClinicalResponse, News2Score, RiskBand, explain, news2_score, round_half_up
from vigil.care.rules import RuleVerdict

__all__ = [
    "MIN_NEWS2_PARAMETERS",
    "CareEngine",
    "CareOutcome",
    "ClinicalResponse",
    "EpisodeTracker",
    "News2Context",
    "News2Score",
    "RiskBand",
    "RuleVerdict",
    "escalation_recommendation",
    "explain",
    "news2_score",
    "round_half_up",
    "snapshot_news2",
]
