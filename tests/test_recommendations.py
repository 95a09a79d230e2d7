"""Recommendations a clinician can act on safely: immutable records, superseded and expired ones never actionable,
and a decision only on the version the clinician saw, recorded once (the store on SQLite and PostgreSQL, and HTTP)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import orjson
import pytest

from vigil.care import CareEngine
from vigil.domain import RecommendationDraft, RecommendationKind, VitalsSnapshot
from vigil.errors import Conflict
from vigil.pipeline import Pipeline
from vigil.store import SqlStore
from vigil.store.dialects import dialect_for
from vigil.timeutil import format_time, utc_now

MEDIUM = {"resp_rate": 23.0, "spo2": 93.0, "systolic_bp": 120.0, "heart_rate": 95.0, "body_temp": 37.0}  # NEWS2 5
NORMAL = {"resp_rate": 16.0, "spo2": 97.0, "systolic_bp": 120.0, "heart_rate": 70.0, "body_temp": 37.0}
HIGH = {**MEDIUM, "resp_rate": 24.0, "heart_rate": 115.0, "body_temp": 38.5}  # NEWS2 7


def draft(
    patient_id: str,
    kind: RecommendationKind,
    action: str,
    minutes_ago: float = 0,
    valid_min: float = 30,
    subject: str = "",
) -> RecommendationDraft:
    time = utc_now() - timedelta(minutes=minutes_ago)
    return RecommendationDraft(
        patient_id,
        kind,
        time,
        action,
        "because",
        {"amount": 1.0},
        valid_until=time + timedelta(minutes=valid_min),
        subject=subject,
    )


def meal_bolus(patient_id: str, units: float, meal: datetime) -> RecommendationDraft:
    return RecommendationDraft(
        patient_id,
        RecommendationKind.MEAL_BOLUS,
        meal,
        f"Meal bolus {units:.2f} U",
        "a meal",
        {"amount": units},
        valid_until=meal + timedelta(minutes=30),
        subject=format_time(meal),
    )


# -- the store, on both engines -----------------------------------------------------------------------
def test_a_bolus_for_another_meal_never_overwrites_the_pending_one(any_store_url):
    """Finding 2: a 6 U lunch bolus took the id of the pending 2 U breakfast bolus; accepting that id accepted 6 U."""
    store = SqlStore(any_store_url)
    breakfast = store.add_recommendation(meal_bolus("p1", 2.0, utc_now() - timedelta(minutes=10)))
    lunch = store.add_recommendation(meal_bolus("p1", 6.0, utc_now() - timedelta(minutes=1)))
    assert breakfast.recommendation_id != lunch.recommendation_id
    listed = {r.recommendation_id: r for r in store.list_recommendations("p1")}
    assert listed[breakfast.recommendation_id].action == "Meal bolus 2.00 U"
    assert {r.status for r in listed.values()} == {"pending"} and {r.version for r in listed.values()} == {1}
    accepted = store.decide_recommendation(breakfast.recommendation_id, "dr_who", True, version=1)
    assert (accepted.action, accepted.status, accepted.version) == ("Meal bolus 2.00 U", "accepted", 2)
    assert store.get_recommendation(lunch.recommendation_id).status == "pending"


def test_a_newer_recommendation_of_the_same_kind_supersedes_the_pending_one(any_store_url):
    store = SqlStore(any_store_url)
    old = store.add_recommendation(draft("p1", RecommendationKind.CORRECTION_BOLUS, "Correction bolus 1.00 U"))
    new = store.add_recommendation(draft("p1", RecommendationKind.CORRECTION_BOLUS, "Correction bolus 2.00 U"))
    other = store.add_recommendation(draft("p2", RecommendationKind.CORRECTION_BOLUS, "Correction bolus 3.00 U"))
    kept = store.get_recommendation(old.recommendation_id)
    assert (kept.status, kept.superseded_by, kept.version) == ("superseded", new.recommendation_id, 2)
    assert kept.action == "Correction bolus 1.00 U"  # the record's text never changes
    assert store.get_recommendation(new.recommendation_id).status == "pending"
    assert store.get_recommendation(other.recommendation_id).status == "pending"
    with pytest.raises(Conflict, match=f"superseded by recommendation {new.recommendation_id}"):
        store.decide_recommendation(old.recommendation_id, "dr_who", True, version=1)
    stale = store.add_recommendation(draft("p1", RecommendationKind.TEMP_BASAL, "Basal 0", minutes_ago=42))
    store.add_recommendation(draft("p1", RecommendationKind.TEMP_BASAL, "Basal 1"))
    assert store.get_recommendation(stale.recommendation_id).status == "expired"  # not superseded: it lapsed first


def test_stale_advice_reads_as_expired_before_any_sweep(any_store_url):
    """Finding 3: at 19:07 a 30-minute temporary basal from 18:25 and a correction from 17:10 were still pending."""
    store = SqlStore(any_store_url)
    basal = store.add_recommendation(
        draft("p1", RecommendationKind.TEMP_BASAL, "Temporary basal 0.00 U/h for 30 minutes", minutes_ago=42)
    )
    assert store.get_recommendation(basal.recommendation_id).status == "expired"  # the first read after it lapsed
    correction = store.add_recommendation(
        draft("p1", RecommendationKind.CORRECTION_BOLUS, "Correction bolus 1.00 U", minutes_ago=117)
    )
    fresh = store.add_recommendation(draft("p1", RecommendationKind.RESCUE_CARBS, "Take 15 g", valid_min=15))
    statuses = {r.recommendation_id: (r.status, r.version) for r in store.list_recommendations("p1")}
    assert statuses[basal.recommendation_id] == statuses[correction.recommendation_id] == ("expired", 2)
    assert statuses[fresh.recommendation_id] == ("pending", 1)
    assert store.get_recommendation(basal.recommendation_id).status == "expired"
    with pytest.raises(Conflict, match="expired at " + format_time(basal.valid_until)):
        store.decide_recommendation(basal.recommendation_id, "dr_who", True, version=1)


def test_the_decision_itself_refuses_an_expired_one_that_no_sweep_has_closed(any_store_url, monkeypatch):
    store = SqlStore(any_store_url)
    monkeypatch.setattr(store, "expire_recommendations", lambda now=None: None)
    stale = store.add_recommendation(draft("p1", RecommendationKind.TEMP_BASAL, "Basal 0", minutes_ago=42))
    with pytest.raises(Conflict, match="expired at"):
        store.decide_recommendation(stale.recommendation_id, "dr_who", True, version=1)


def test_the_pipeline_expires_stale_advice_with_no_one_reading(any_store_url):
    store = SqlStore(any_store_url)
    stale = store.add_recommendation(draft("p1", RecommendationKind.TEMP_BASAL, "Basal 0", minutes_ago=42))
    Pipeline(store).process([])
    row = store._one("SELECT status, version FROM recommendations WHERE id = ?", (stale.recommendation_id,))
    assert tuple(row) == ("expired", 2)


def test_a_decision_needs_the_current_version_and_is_made_once(any_store_url):
    store = SqlStore(any_store_url)
    rec = store.add_recommendation(draft("p1", RecommendationKind.ESCALATION, "Urgent review"))
    with pytest.raises(Conflict, match="version 2 is not the current version 1"):
        store.decide_recommendation(rec.recommendation_id, "dr_who", True, version=2)
    rejected = store.decide_recommendation(rec.recommendation_id, "dr_who", False, "seen", version=1)
    assert (rejected.status, rejected.version, rejected.decision_note) == ("rejected", 2, "seen")
    with pytest.raises(Conflict, match="already rejected"):
        store.decide_recommendation(rec.recommendation_id, "dr_no", True, version=2)


def test_two_racing_decisions_exactly_one_wins(any_store_url):
    store = SqlStore(any_store_url)
    recs = [store.add_recommendation(draft(f"p{i}", RecommendationKind.ESCALATION, "review")) for i in range(15)]
    for rec in recs:
        barrier, outcomes = threading.Barrier(2), []

        def decide(username: str, accept: bool, rec_id: int = rec.recommendation_id, gate=barrier, out=outcomes):
            gate.wait()
            try:
                out.append(store.decide_recommendation(rec_id, username, accept, version=1).decided_by)
            except Conflict as error:
                out.append(error)

        threads = [threading.Thread(target=decide, args=args) for args in (("dr_who", True), ("dr_no", False))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [o for o in outcomes if isinstance(o, str)]
        assert len(winners) == 1 and len(outcomes) == 2, outcomes
        final = store.get_recommendation(rec.recommendation_id)
        assert final.decided_by == winners[0] and final.version == 2


def test_a_store_with_the_old_one_pending_index_migrates(any_store_url):
    """Stores created before: the unique (patient, kind) pending index is dropped; legacy pending rows expire."""
    dialect = dialect_for(any_store_url)
    conn = dialect.connect()
    with dialect.transaction(conn):
        conn.execute(
            f"CREATE TABLE recommendations (id {dialect.id_column}, patient_id TEXT NOT NULL, kind TEXT NOT NULL,"
            " time TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL, data TEXT NOT NULL,"
            " status TEXT NOT NULL DEFAULT 'pending', decided_by TEXT, decided_at TEXT, decision_note TEXT)"
        )
        conn.execute(
            "CREATE UNIQUE INDEX recommendations_one_pending ON recommendations (patient_id, kind)"
            " WHERE status = 'pending'"
        )
        conn.execute(
            "INSERT INTO recommendations (patient_id, kind, time, action, reason, data)"
            f" VALUES ('p1', 'meal_bolus', '{format_time(utc_now())}', 'Meal bolus 2.00 U', 'old', '{{}}')"
        )
    conn.close()
    store = SqlStore(any_store_url)
    [legacy] = store.list_recommendations("p1")
    assert (legacy.status, legacy.version, legacy.superseded_by) == ("expired", 2, None)
    for minutes in (5, 1):
        store.add_recommendation(meal_bolus("p1", 3.0, utc_now() - timedelta(minutes=minutes)))
    assert sorted(r.status for r in store.list_recommendations("p1")) == ["expired", "pending", "pending"]


def test_a_worse_news2_band_supersedes_the_pending_escalation(any_store_url):
    store, engine = SqlStore(any_store_url), CareEngine(confirmation=timedelta(0))
    start = utc_now() - timedelta(minutes=2)
    drafts = []
    for minute, values in enumerate((MEDIUM, HIGH)):
        time = start + timedelta(minutes=minute)
        drafts += engine.evaluate(VitalsSnapshot("p1", time, values, dict.fromkeys(values, time))).recommendations
    medium, high = (store.add_recommendation(d) for d in drafts)
    assert all(d.valid_until == d.time + timedelta(hours=1) for d in drafts)
    assert store.get_recommendation(medium.recommendation_id).superseded_by == high.recommendation_id
    assert store.get_recommendation(high.recommendation_id).status == "pending"


def test_the_escalation_ends_when_news2_falls_below_5(any_store_url):
    store, engine = SqlStore(any_store_url), CareEngine(confirmation=timedelta(0))
    start, outcomes = utc_now() - timedelta(minutes=3), []
    for minute, values in enumerate((MEDIUM, NORMAL, NORMAL)):
        time = start + timedelta(minutes=minute)
        outcomes.append(engine.evaluate(VitalsSnapshot("p1", time, values, dict.fromkeys(values, time))))
    assert [o.ended for o in outcomes] == [[], [RecommendationKind.ESCALATION], []]
    [escalation] = outcomes[0].recommendations
    rec = store.add_recommendation(escalation)
    store.end_recommendations("p1", RecommendationKind.ESCALATION, start + timedelta(minutes=1))
    ended = store.get_recommendation(rec.recommendation_id)
    assert (ended.status, ended.version, ended.valid_until) == ("expired", 2, start + timedelta(minutes=1))
    with pytest.raises(Conflict, match="expired at " + format_time(start + timedelta(minutes=1))):
        store.decide_recommendation(rec.recommendation_id, "dr_who", True, version=1)


def test_the_pipeline_ends_the_escalation_when_news2_falls(ward):
    now = utc_now()

    def vitals(values: dict, minutes_ago: range, seq: int) -> list[dict]:
        return [
            {"metric": k, "value": v, "time": format_time(now - timedelta(minutes=m)), "seq": seq + 10 * i + j}
            for i, m in enumerate(minutes_ago)
            for j, (k, v) in enumerate(values.items())
        ]

    unwell = {"heart_rate": 125, "resp_rate": 26, "spo2": 91, "body_temp": 38.9}
    assert ward.ingest(vitals(unwell, range(40, 20, -1), 0)).status_code == 202
    [pending] = ward.ctx.store.list_recommendations(ward.patient_id)
    assert (pending.kind, pending.status) == ("escalation", "pending")
    well = {"heart_rate": 70, "resp_rate": 15, "spo2": 97, "body_temp": 36.8}
    assert ward.ingest(vitals(well, range(19, 0, -1), 1000)).status_code == 202
    assert ward.ctx.store.get_recommendation(pending.recommendation_id).status == "expired"


# -- through HTTP --------------------------------------------------------------------------------------
def _cgm_and_meals(now: datetime, first_meal: int = 70) -> list[dict]:
    """CGM every 5 minutes from 80 to 2 minutes ago at 140 mg/dL on a 0.8 U/h basal; meals of 60 g ``first_meal``
    minutes ago and of 40 g 2 minutes ago."""
    minutes = list(range(80, 1, -5)) + [2]
    readings = [
        {"metric": "glucose", "value": 140, "unit": "mg/dL", "time": format_time(now - timedelta(minutes=m)), "seq": i}
        for i, m in enumerate(minutes)
    ]
    announced = [("insulin_basal", 0.8, "U/h", 80), ("carbs", 60, "g", first_meal), ("carbs", 40, "g", 2)]
    return readings + [
        {
            "metric": metric,
            "value": value,
            "unit": unit,
            "time": format_time(now - timedelta(minutes=m)),
            "seq": 100 + i,
        }
        for i, (metric, value, unit, m) in enumerate(announced)
    ]


def test_two_meals_give_two_boluses_and_only_the_fresh_one_is_decided_on_its_version(ward):
    assert ward.ingest(_cgm_and_meals(utc_now()), ward.other_token).status_code == 202
    headers = ward.login("root")
    listed = ward.client.get(f"/api/v1/patients/{ward.other_patient_id}/recommendations", headers=headers).json()
    old, fresh = sorted((r for r in listed if r["kind"] == "meal_bolus"), key=lambda r: r["time"])
    assert old["recommendation_id"] != fresh["recommendation_id"]
    assert (old["status"], old["version"], old["superseded_by"]) == ("expired", 2, None)
    assert (fresh["status"], fresh["version"]) == ("pending", 1)
    assert fresh["valid_until"] > format_time(utc_now()) > old["valid_until"]

    def decide(rec: dict, **body):
        url = f"/api/v1/recommendations/{rec['recommendation_id']}/decision"
        return ward.client.post(url, json={"decision": "accept", **body}, headers=headers)

    stale = decide(old, version=old["version"])
    assert stale.status_code == 409 and "expired at" in stale.json()["detail"]
    missing = decide(fresh)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"][-1] == "version"
    wrong = decide(fresh, version=2)
    assert wrong.status_code == 409 and "version 2 is not the current version 1" in wrong.json()["detail"]
    accepted = decide(fresh, version=1, note="covers lunch")
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["version"]) == ("accepted", 2)
    again = decide(fresh, version=2)
    assert again.status_code == 409 and "already accepted" in again.json()["detail"]

    entries = [e for e in ward.ctx.store.audit_entries() if e.action == "recommendation.decide"]
    decided = [orjson.loads(e.details) for e in entries if e.outcome == "ok"]
    [accepting] = [d for d in decided if d["recommendation_id"] == fresh["recommendation_id"] and d["version"] == 1]
    assert accepting["recommendation_action"] == fresh["action"] and accepting["decision"] == "accept"
    refused = [orjson.loads(e.details)["reason"] for e in entries if e.outcome == "conflict"]
    assert refused[-1] == "already accepted" and len(refused) == 3


def test_two_meals_still_valid_give_two_pending_boluses(ward):
    assert ward.ingest(_cgm_and_meals(utc_now(), first_meal=22), ward.other_token).status_code == 202
    listed = ward.client.get(
        f"/api/v1/patients/{ward.other_patient_id}/recommendations", headers=ward.login("root")
    ).json()
    boluses = [r for r in listed if r["kind"] == "meal_bolus"]
    assert len({r["recommendation_id"] for r in boluses}) == 2
    assert [r["status"] for r in boluses] == ["pending", "pending"]
    assert {r["data"]["meal_g"] for r in boluses} == {60.0, 40.0}


def test_breakfast_and_lunch_boluses_keep_their_ids_and_their_doses_through_http(ward):
    store = ward.ctx.store
    breakfast = store.add_recommendation(meal_bolus(ward.patient_id, 2.0, utc_now() - timedelta(minutes=20)))
    lunch = store.add_recommendation(meal_bolus(ward.patient_id, 6.0, utc_now() - timedelta(minutes=1)))
    headers = ward.login("dr_who")
    url = f"/api/v1/recommendations/{breakfast.recommendation_id}/decision"
    accepted = ward.client.post(url, json={"decision": "accept", "version": 1}, headers=headers).json()
    assert (accepted["action"], accepted["recommendation_id"]) == ("Meal bolus 2.00 U", breakfast.recommendation_id)
    listed = ward.client.get(f"/api/v1/patients/{ward.patient_id}/recommendations", headers=headers).json()
    assert {r["recommendation_id"]: r["action"] for r in listed} == {
        breakfast.recommendation_id: "Meal bolus 2.00 U",
        lunch.recommendation_id: "Meal bolus 6.00 U",
    }


def test_stale_temp_basal_and_correction_are_not_actionable_through_http(ward):
    store = ward.ctx.store
    stale = [
        store.add_recommendation(draft(ward.patient_id, RecommendationKind.TEMP_BASAL, "Basal 0", minutes_ago=42)),
        store.add_recommendation(draft(ward.patient_id, RecommendationKind.CORRECTION_BOLUS, "1 U", minutes_ago=117)),
    ]
    headers = ward.login("dr_who")
    listed = ward.client.get(f"/api/v1/patients/{ward.patient_id}/recommendations", headers=headers).json()
    assert [r["status"] for r in listed] == ["expired", "expired"]
    for rec in stale:
        url = f"/api/v1/recommendations/{rec.recommendation_id}/decision"
        answer = ward.client.post(url, json={"decision": "accept", "version": 1}, headers=headers)
        assert answer.status_code == 409 and "expired at" in answer.json()["detail"]


def test_the_dashboard_offers_a_decision_only_on_a_pending_valid_recommendation(ward):
    store = ward.ctx.store
    expired = store.add_recommendation(draft(ward.patient_id, RecommendationKind.TEMP_BASAL, "Old", minutes_ago=42))
    old = store.add_recommendation(draft(ward.patient_id, RecommendationKind.CORRECTION_BOLUS, "Superseded"))
    new = store.add_recommendation(draft(ward.patient_id, RecommendationKind.CORRECTION_BOLUS, "Current"))
    ward.web_login("dr_who")
    html = ward.client.get(f"/fragments/patients/{ward.patient_id}/recommendations").text
    assert html.count("data-decide=") == 2  # accept and reject, on the current one only
    assert f'data-decide="{new.recommendation_id}"' in html and 'data-version="1"' in html
    assert (
        f'data-decide="{old.recommendation_id}"' not in html
        and f'data-decide="{expired.recommendation_id}"' not in html
    )
    assert f"superseded by #{new.recommendation_id}" in html and "expired" in html
    assert "expires " + format_time(new.valid_until)[11:16] in html
