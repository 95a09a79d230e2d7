"""Alert burden: Vigil's care rules against alerting on every snapshot, over simulated wards."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from vigil.care import CareEngine
from vigil.devices import WardSimulator, mixed_ward
from vigil.domain import AlertDraft, AlertRule, Device
from vigil.ingest.validation import validate_batch
from vigil.signal import SignalProcessor
from vigil.timeutil import utc_now

VITAL_SIGN_RULES = (AlertRule.NEWS2_URGENT, AlertRule.NEWS2_SINGLE_RED, AlertRule.HEART_RATE_RISE)


def _care_engines() -> dict[str, CareEngine]:
    """Vigil's engine and the baseline that alerts on every snapshot, active or not."""
    return {
        "vigil": CareEngine(),
        "baseline_instant": CareEngine(confirmation=timedelta(0), activity_aware=False),
    }


def _first_alert_minutes(alerts: list[AlertDraft], patient: str, rule: AlertRule, onset: datetime) -> float | None:
    times = [a.time for a in alerts if a.patient_id == patient and a.rule == rule]
    return round((min(times) - onset).total_seconds() / 60, 1) if times else None


def alert_burden_for_seed(seed: int, patients: int, hours: float, tick: Callable[[], None]) -> dict:
    """Replay one simulated ward through signal and both care engines; count who was alerted for what."""
    profiles = mixed_ward(patients, seed)
    start = utc_now() - timedelta(hours=hours)
    simulator, signal = WardSimulator(profiles, start, seed), SignalProcessor()
    engines = _care_engines()
    raised: dict[str, list[AlertDraft]] = {name: [] for name in engines}
    for step in range(int(hours * 12)):
        batches = simulator.advance(start + timedelta(minutes=5 * (step + 1)))
        readings = [
            r
            for b in batches
            for r in validate_batch(b.readings, Device(str(b.key), b.key.patient, b.key.kind), utc_now())[0]
        ]
        for snapshot in signal.process(readings):
            for name, engine in engines.items():
                raised[name] += engine.evaluate(snapshot).alerts
        tick()
    unwell = {p.key: simulator.start + p.deterioration.onset for p in profiles if p.deterioration}
    return {name: _summarise_alerts(alerts, profiles, unwell, hours) for name, alerts in raised.items()}


def _summarise_alerts(alerts: list[AlertDraft], profiles, unwell: dict[str, datetime], hours: float) -> dict:
    well = [p.key for p in profiles if p.key not in unwell]
    false_alarms = [a for a in alerts if a.patient_id in well and a.rule in VITAL_SIGN_RULES]
    return {
        "vital_sign_alerts_on_well_patients": len(false_alarms),
        "per_well_patient_day": round(len(false_alarms) / max(len(well), 1) / (hours / 24), 3),
        "by_rule": {rule.value: sum(a.rule == rule for a in false_alarms) for rule in VITAL_SIGN_RULES},
        "glucose_alerts": sum(a.rule.startswith("glucose") for a in alerts),
        "deteriorating_first_news2_alert_minutes_after_onset": {
            key: _first_alert_minutes(alerts, key, AlertRule.NEWS2_URGENT, onset) for key, onset in unwell.items()
        },
    }


def bench_alerts(
    seeds: list[int], patients: int = 12, hours: float = 24, tick: Callable[[], None] = lambda: None
) -> dict:
    """Alert burden of Vigil's care rules against the instant baseline, over simulated wards."""
    runs = {str(seed): alert_burden_for_seed(seed, patients, hours, tick) for seed in seeds}
    totals = {
        name: sum(run[name]["vital_sign_alerts_on_well_patients"] for run in runs.values()) for name in _care_engines()
    }
    return {
        "patients": patients,
        "hours": hours,
        "seeds": runs,
        "false_alarms_total": totals,
        "false_alarm_ratio_vigil_vs_baseline": round(totals["vigil"] / totals["baseline_instant"], 3)
        if totals["baseline_instant"]
        else None,
    }
