"""The admin API: accounts, assignments and devices, with clear errors naming the field, every change audited,
and device changes reaching a real Mosquitto through the files Vigil writes. (Who may call what: the matrix.)"""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import mosquitto_from
from tests.mqtt_clients import connect_as
from vigil import admin
from vigil.ingest.mosquitto import write_broker_files
from vigil.security.policy import operator
from vigil.store import SqlStore
from vigil.timeutil import utc_now

PASSWORD = "long enough password"


def _detail(response) -> str:
    return json.dumps(response.json()["detail"])


def test_bad_new_users_are_refused_naming_the_field(ward):
    admin = ward.login("root")
    cases = [
        ({"username": "bad name!", "role": "clinician", "password": PASSWORD}, 422, "username"),
        ({"role": "clinician", "password": PASSWORD}, 422, "username"),
        ({"username": "nurse", "role": "wizard", "password": PASSWORD}, 422, "role"),
        ({"username": "nurse", "role": "clinician", "password": "short"}, 422, "password"),
        ({"username": "nurse", "role": "patient", "password": PASSWORD}, 422, "patient_id"),
        ({"username": "nurse", "role": "patient", "password": PASSWORD, "patient_id": "pnothere"}, 422, "patient_id"),
        (
            {"username": "nurse", "role": "clinician", "password": PASSWORD, "patient_id": ward.patient_id},
            422,
            "patient_id",
        ),
        ({"username": "dr_who", "role": "clinician", "password": PASSWORD}, 409, "username"),
    ]
    answers = [(ward.client.post("/api/v1/users", json=body, headers=admin), field) for body, _, field in cases]
    assert [(a.status_code, field in _detail(a)) for a, field in answers] == [(status, True) for _, status, _ in cases]
    assert ward.ctx.store.get_user("nurse") is None
    assert not [e for e in ward.ctx.store.audit_entries() if e.action == "permission.user_add"]  # nothing changed


def test_a_patient_login_created_by_an_admin_sees_only_that_patient(ward):
    body = {"username": "alan", "role": "patient", "password": PASSWORD, "patient_id": ward.other_patient_id}
    created = ward.client.post("/api/v1/users", json=body, headers=ward.login("root"))
    assert created.status_code == 201
    assert created.json() == {
        "username": "alan",
        "role": "patient",
        "patient_id": ward.other_patient_id,
        "totp_enabled": False,
        "locked": False,
    }
    patients = ward.client.get("/api/v1/patients", headers=ward.login("alan", PASSWORD)).json()
    assert [p["patient_id"] for p in patients] == [ward.other_patient_id]
    added = next(e for e in ward.ctx.store.audit_entries() if e.action == "permission.user_add")
    assert (added.actor, added.patient_id, json.loads(added.details)["username"]) == (
        "user:root",
        ward.other_patient_id,
        "alan",
    )
    assert not [e for e in ward.ctx.store.audit_entries() if PASSWORD in e.details]


def test_the_user_list_never_shows_password_hashes_and_is_audited(ward):
    answer = ward.client.get("/api/v1/users", headers=ward.login("root"))
    assert [u["username"] for u in answer.json()] == ["ada", "dr_no", "dr_who", "root"]
    assert "argon2" not in answer.text
    listing = ward.ctx.store.audit_entries()[-1]
    assert (listing.action, json.loads(listing.details)["patients"]) == ("users.list", [ward.patient_id])


def test_unknown_users_are_404_naming_the_field(ward):
    admin = ward.login("root")
    for method, path, body in (
        ("POST", "/api/v1/users/nobody/lock", None),
        ("POST", "/api/v1/users/nobody/unlock", None),
        ("DELETE", "/api/v1/users/nobody/sessions", None),
        ("PUT", "/api/v1/users/nobody/password", {"password": PASSWORD}),
    ):
        answer = ward.client.request(method, path, json=body, headers=admin)
        assert (answer.status_code, answer.json()["detail"]) == (404, "username: no user 'nobody'")
    short = ward.client.put("/api/v1/users/dr_who/password", json={"password": "short"}, headers=admin)
    assert short.status_code == 422 and short.json()["detail"].startswith("password:")


def test_assignments_give_and_take_a_clinicians_access(ward):
    admin, dr_no = ward.login("root"), ward.login("dr_no")
    record = f"/api/v1/patients/{ward.other_patient_id}"
    assert ward.client.get(record, headers=dr_no).status_code == 404
    given = ward.client.post(f"{record}/assignments", json={"clinician": "dr_no"}, headers=admin)
    assert given.status_code == 201 and given.json() == {"patient_id": ward.other_patient_id, "clinician": "dr_no"}
    assert ward.client.get(record, headers=dr_no).status_code == 200
    for not_a_clinician in ("nobody", "ada", "root"):
        refused = ward.client.post(f"{record}/assignments", json={"clinician": not_a_clinician}, headers=admin)
        assert refused.status_code == 422 and refused.json()["detail"].startswith("clinician:")
    assert (
        ward.client.post(
            "/api/v1/patients/pnothere/assignments", json={"clinician": "dr_no"}, headers=admin
        ).status_code
        == 404
    )
    assert ward.client.delete(f"{record}/assignments/dr_no", headers=admin).status_code == 200
    assert ward.client.get(record, headers=dr_no).status_code == 404
    again = ward.client.delete(f"{record}/assignments/dr_no", headers=admin)
    assert again.status_code == 404 and again.json()["detail"].startswith("clinician:")
    changes = [
        (e.actor, e.action, e.patient_id, e.outcome)
        for e in ward.ctx.store.audit_entries()
        if e.action.startswith("permission")
    ]
    assert changes == [
        ("user:root", "permission.assign", ward.other_patient_id, "ok"),
        ("user:root", "permission.assign", "pnothere", "denied"),
        ("user:root", "permission.unassign", ward.other_patient_id, "ok"),
    ]


def test_patients_added_and_listed_through_vigil_admin_are_checked_and_audited(ward):
    for birth_date, name, field in (("1906-13-09", "Grace Hopper", "birth_date"), (None, "  ", "name")):
        with pytest.raises(admin.InvalidInput) as refused:
            admin.add_patient(ward.ctx, operator(), name, birth_date)
        assert refused.value.field == field
    patient = admin.add_patient(ward.ctx, operator(), " Grace Hopper ", "1906-12-09", conditions=["hypertension"])
    assert (ward.ctx.store.get_patient(patient.patient_id).name, patient.conditions) == (
        "Grace Hopper",
        ("hypertension",),
    )
    assert [p.patient_id for p in admin.list_patients(ward.ctx, ward.ctx.store.get_user("dr_who"))] == [ward.patient_id]
    added, listed = ward.ctx.store.audit_entries()[-2:]
    assert (added.action, added.patient_id) == ("patient.add", patient.patient_id)
    assert (listed.action, json.loads(listed.details)["patients"]) == ("patients.list", [ward.patient_id])


def test_one_time_codes_are_turned_on_and_off_for_existing_users_only(ward):
    with pytest.raises(admin.NotFound):
        admin.set_totp(ward.ctx, operator(), "nobody", enabled=True)
    assert admin.set_totp(ward.ctx, operator(), "dr_no", enabled=True).startswith("otpauth://totp/")
    assert ward.ctx.store.get_user("dr_no").totp_enabled
    assert admin.set_totp(ward.ctx, operator(), "dr_no", enabled=False) is None
    assert not ward.ctx.store.get_user("dr_no").totp_enabled
    changes = [json.loads(e.details) for e in ward.ctx.store.audit_entries() if e.action == "permission.totp"]
    assert [(c["username"], c["enabled"]) for c in changes] == [("dr_no", True), ("dr_no", False)]


def test_a_patients_audit_trail_is_an_audited_read_of_a_visible_patient(ward):
    with pytest.raises(admin.NotFound) as refused:
        admin.patient_audit_trail(ward.ctx, ward.ctx.store.get_user("dr_who"), ward.other_patient_id)
    assert refused.value.field == "patient_id"
    trail = admin.patient_audit_trail(ward.ctx, operator(), ward.other_patient_id)
    assert [(e.action, e.outcome) for e in trail] == [("audit.show", "denied"), ("audit.show", "ok")]


def test_devices_registered_rotated_and_revoked_through_the_api(ward):
    admin = ward.login("root")
    devices = f"/api/v1/patients/{ward.patient_id}/devices"
    added = ward.client.post(devices, json={"kind": "bp_cuff"}, headers=admin)
    assert (
        added.status_code == 201 and added.json()["patient_id"] == ward.patient_id and added.json()["kind"] == "bp_cuff"
    )
    device_id, first = added.json()["device_id"], added.json()["token"]
    listed = ward.client.get(devices, headers=admin)
    assert (
        device_id in [d["device_id"] for d in listed.json()] and first not in listed.text and "token" not in listed.text
    )
    reading = {"metric": "heart_rate", "value": 70, "time": utc_now().isoformat()}
    assert ward.ingest([{**reading, "seq": 1}], token=first).status_code == 202
    second = ward.client.post(f"/api/v1/devices/{device_id}/rotate", headers=admin).json()["token"]
    assert ward.ingest([{**reading, "seq": 2}], token=first).status_code == 401
    assert ward.ingest([{**reading, "seq": 3}], token=second).status_code == 202
    revoked = ward.client.post(f"/api/v1/devices/{device_id}/revoke", headers=admin)
    assert revoked.json() == {"device_id": device_id, "patient_id": ward.patient_id, "kind": "bp_cuff", "revoked": True}
    assert ward.ingest([{**reading, "seq": 4}], token=second).status_code == 401
    changes = [
        (e.actor, e.action, e.patient_id) for e in ward.ctx.store.audit_entries() if e.action.startswith("device")
    ]
    assert changes == [
        ("user:root", action, ward.patient_id)
        for action in ("device.add", "devices.list", "device.rotate", "device.revoke")
    ]


def test_bad_device_requests_name_the_field(ward):
    admin = ward.login("root")
    devices = f"/api/v1/patients/{ward.patient_id}/devices"
    blank = ward.client.post(devices, json={"kind": "  "}, headers=admin)
    missing = ward.client.post(devices, json={}, headers=admin)
    assert blank.status_code == 422 and blank.json()["detail"].startswith("kind: 1-64 letters")
    assert missing.status_code == 422 and "kind" in _detail(missing)
    for action in ("revoke", "rotate"):
        assert ward.client.post(f"/api/v1/devices/dnothere/{action}", headers=admin).json() == {
            "detail": "device not found"
        }
    assert ward.ctx.store.list_devices(ward.patient_id)[0].revoked is False


def _broker_accepts(port: int, device_id: str, token: str) -> bool:
    return not connect_as(port, device_id, token).is_failure


def _eventually(check) -> bool:
    """Wait until `check` holds: Vigil itself makes the broker reread its files after a device change."""
    deadline = time.monotonic() + 5
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)
    return check()


def test_device_changes_through_the_api_reach_mosquitto(ward, settings):
    files = write_broker_files(
        settings.home / "mosquitto", ward.ctx.store.mqtt_credentials(), settings.secret("mqtt-service.key")
    )  # as `vigil mqtt config` leaves them
    admin = ward.login("root")
    with mosquitto_from(files, settings.home) as (port, _):
        added = ward.client.post(
            f"/api/v1/patients/{ward.patient_id}/devices", json={"kind": "cgm"}, headers=admin
        ).json()
        device_id, first = added["device_id"], added["token"]
        assert _eventually(lambda: _broker_accepts(port, device_id, first))
        second = ward.client.post(f"/api/v1/devices/{device_id}/rotate", headers=admin).json()["token"]
        assert _eventually(lambda: not _broker_accepts(port, device_id, first))
        assert _broker_accepts(port, device_id, second)
        ward.client.post(f"/api/v1/devices/{device_id}/revoke", headers=admin)
        assert _eventually(lambda: not _broker_accepts(port, device_id, second))
        assert _broker_accepts(port, ward.device_id, ward.token)  # the others are still there


def test_names_and_ids_that_cannot_exist_are_refused_before_any_lookup(postgres_url, settings):
    """PostgreSQL refuses NUL in text: such input must be answered 404 or 422, never reach the database (a 500)."""
    ctx, actor = admin.CommandContext(SqlStore(postgres_url), settings), operator()
    for change, args, error in (
        (admin.lock_user, ("dr\x00",), admin.NotFound),
        (admin.assign, ("p\x00", "dr\x00"), admin.InvalidInput),
        (admin.unassign, ("p\x00", "dr\x00"), admin.NotFound),
        (admin.add_user, ("nurse", "patient", PASSWORD, "p\x00"), admin.InvalidInput),
        (admin.add_device, ("p\x00", "cgm"), admin.NotFound),
        (admin.add_device, ("p1", "c\x00"), admin.InvalidInput),
        (admin.rotate_device, ("d\x00",), admin.NotFound),
    ):
        with pytest.raises(error):
            change(ctx, actor, *args)
