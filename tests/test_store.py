"""The store on both engines: the same behaviour from SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vigil.domain import AlertDraft, Reading, Score
from vigil.errors import NotFound
from vigil.store import SqlStore, hash_token
from vigil.timeutil import utc_now


def test_patients_devices_users_round_trip(any_store_url):
    store = SqlStore(any_store_url)
    patient = store.add_patient("Mary Seacole", "1805-11-23", "female", ["hypertension", "diabetes"])
    assert store.get_patient(patient.patient_id).conditions == ("hypertension", "diabetes")
    device, token = store.add_device(patient.patient_id, "bp_cuff")
    assert store.device_for_token(token) == device
    assert store.device_for_token("wrong") is None
    with pytest.raises(NotFound):
        store.add_device("pnothere", "wearable")
    store.add_user("nurse", "clinician", "hash")
    store.assign(patient.patient_id, "nurse")
    store.assign(patient.patient_id, "nurse")
    assert store.assigned_patient_ids("nurse") == {patient.patient_id}


def test_token_is_stored_only_as_hashes(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'v.db'}")
    patient = store.add_patient("X")
    _, token = store.add_device(patient.patient_id, "wearable")
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("v.db"))
    assert token.encode() not in raw
    assert hash_token(token).encode() in raw


def test_readings_insert_query_and_deduplicate(any_store_url):
    store = SqlStore(any_store_url)
    patient = store.add_patient("Florence")
    device, _ = store.add_device(patient.patient_id, "wearable")
    t0 = utc_now() - timedelta(hours=2)
    readings = [
        Reading(patient.patient_id, device.device_id, "heart_rate", t0 + timedelta(minutes=i), 60.0 + i, "/min", i)
        for i in range(10)
    ]
    assert store.insert_readings(list(reversed(readings))) == [True] * 10
    assert store.insert_readings(readings[:3]) == [False] * 3
    assert [r.value for r in store.query_readings(patient.patient_id, "heart_rate")] == [60.0 + i for i in range(10)]
    window = store.query_readings(patient.patient_id, start=t0 + timedelta(minutes=2), end=t0 + timedelta(minutes=5))
    assert [r.seq for r in window] == [2, 3, 4]
    assert store.query_readings(patient.patient_id, "spo2") == []


def test_bulk_insert_flags_each_reading_new_or_duplicate(any_store_url):
    """The staged bulk insert says, reading by reading, which were stored: repeats within the batch, repeats of stored
    rows (by seq, or by metric and time without one), and new rows mixed in any order; the staging table is empty for
    the next batch."""
    store = SqlStore(any_store_url)
    patient = store.add_patient("Mary")
    device, _ = store.add_device(patient.patient_id, "wearable")
    t0 = utc_now() - timedelta(hours=1)

    def reading(minute: int, seq: int | None, value: float = 70.0) -> Reading:
        return Reading(
            patient.patient_id, device.device_id, "heart_rate", t0 + timedelta(minutes=minute), value, "/min", seq
        )

    assert store.insert_readings([reading(0, 0), reading(1, None), reading(2, 2)]) == [True, True, True]
    second = [reading(3, 3), reading(0, 0, 99.0), reading(1, None), reading(3, 3), reading(4, None), reading(4, None)]
    assert store.insert_readings(second) == [True, False, False, False, True, False]
    assert store.insert_readings([reading(5, 5)]) == [True]
    stored = store.query_readings(patient.patient_id)
    assert [(r.seq, r.value) for r in stored] == [
        (0, 70.0),
        (None, 70.0),
        (2, 70.0),
        (3, 70.0),
        (None, 70.0),
        (5, 70.0),
    ]
    other, _ = store.add_device(store.add_patient("Other").patient_id, "wearable")
    store.insert_readings([Reading(other.patient_id, other.device_id, "spo2", t0, 97.0, "%", 0)])
    assert store.count_readings([device.device_id]) == 6 and store.count_readings([]) == 0
    assert store.count_readings([device.device_id, other.device_id]) == 7 <= store.count_readings()


def test_scores_status_and_alerts(any_store_url):
    store = SqlStore(any_store_url)
    patient = store.add_patient("Edith")
    now = utc_now()
    store.add_scores(
        [Score(patient.patient_id, "news2", now - timedelta(minutes=m), float(m), {"band": "low"}) for m in (3, 2, 1)]
    )
    scores = store.query_scores(patient.patient_id, "news2")
    assert [s.value for s in scores] == [3.0, 2.0, 1.0]
    assert [s.value for s in store.query_scores(patient.patient_id, "news2", limit=2)] == [2.0, 1.0]
    store.save_statuses({patient.patient_id: {"values": {"heart_rate": 70}}})
    store.save_statuses({patient.patient_id: {"values": {"heart_rate": 75}}})
    assert store.list_status()[patient.patient_id]["values"]["heart_rate"] == 75
    first = store.raise_alert(AlertDraft(patient.patient_id, "hr_rise", "warning", now, "HR up"))
    assert store.raise_alert(AlertDraft(patient.patient_id, "hr_rise", "warning", now, "HR up")) is None
    assert store.acknowledge_alert(first.alert_id, "nurse").acknowledged_by == "nurse"
    assert store.raise_alert(AlertDraft(patient.patient_id, "hr_rise", "warning", now, "HR up")) is not None
    assert len(store.list_alerts([patient.patient_id])) == 2
    assert len(store.list_alerts([patient.patient_id], open_only=True)) == 1


def test_unsupported_url_is_refused():
    with pytest.raises(ValueError, match="unsupported store URL"):
        SqlStore("mysql://localhost/x")
