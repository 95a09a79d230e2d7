"""Every role against every endpoint: the app's routes are enumerated, so a new endpoint without an entry
here fails. Roles: nobody, a device, the patient, their clinician, another clinician, an admin; each
patient-scoped endpoint (and each device, through its patient) is tried on the patient's own record and
on someone else's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from starlette.routing import Mount

from vigil.domain import AlertDraft, AlertRule, RecommendationDraft, RecommendationKind
from vigil.security.identity import SESSION_LIFETIME, issue_token
from vigil.timeutil import utc_now

ROLES = ("anonymous", "device", "patient", "clinician", "other_clinician", "admin")
USERS = {"patient": "ada", "clinician": "dr_who", "other_clinician": "dr_no", "admin": "root"}
# Who sees which of the ward's two patients (the first is Ada, the patient user, in dr_who's care).
SEES = {"patient": {"own"}, "clinician": {"own"}, "other_clinician": set(), "admin": {"own", "other"}}
PUBLIC = {
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/healthz"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("POST", "/api/v1/auth/token"),
}


def app_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route, including those of included routers; HEAD and static files left out."""
    found = set()
    for route in app.routes:
        contexts = route.effective_route_contexts() if hasattr(route, "effective_route_contexts") else [route]
        for context in contexts:
            original = getattr(context, "original_route", context)
            if isinstance(original, Mount):
                continue
            found |= {(method, context.path) for method in original.methods - {"HEAD"}}
    return found


@dataclass(frozen=True)
class Caller:
    role: str
    headers: dict[str, str]
    cookies: dict[str, str]


def _caller(ward, role: str, web: bool) -> Caller:
    if role == "anonymous":
        return Caller(role, {}, {})
    if role == "device":
        return Caller(role, {"Authorization": f"Bearer {ward.token}"}, {})
    username = USERS[role]
    if web:
        session = issue_token(ward.ctx.store, username, ward.ctx.session_secret, "web", SESSION_LIFETIME)
        return Caller(role, {"X-CSRF-Token": "t"}, {"vigil_session": session, "vigil_csrf": "t"})
    return Caller(
        role, {"Authorization": f"Bearer {issue_token(ward.ctx.store, username, ward.ctx.session_secret)}"}, {}
    )


def _patient(ward, target: str) -> str:
    return ward.patient_id if target == "own" else ward.other_patient_id


def _expected_for_patient_data(role: str, target: str, anonymous: int = 401) -> int:
    if role == "anonymous":
        return anonymous
    if role == "device":
        return 401 if anonymous == 401 else anonymous  # a device token is no login for people
    return 200 if target in SEES[role] else 404


def _expected_for_clinical_action(role: str, target: str) -> int:
    expected = _expected_for_patient_data(role, target)
    return 403 if expected == 200 and role == "patient" else expected


def _expected_for_admin(role: str, target: str, ok: int = 200) -> int:
    """Managing accounts: admins only (403 for other people)."""
    return 401 if role in ("anonymous", "device") else ok if role == "admin" else 403


def _expected_for_admin_of_patient(role: str, target: str, ok: int = 200) -> int:
    """Managing a patient's assignments and devices: 404 where the patient is not visible, else admins only."""
    expected = _expected_for_patient_data(role, target)
    return expected if expected != 200 else ok if role == "admin" else 403


def _created_by_admin(expected: Callable[..., int]) -> Callable[[str, str], int]:
    return lambda role, target: expected(role, target, ok=201)


def _device_path(action: str) -> Callable[[object, str], str]:
    def path(ward, target: str) -> str:
        device, _ = ward.ctx.store.add_device(_patient(ward, target), "cgm")
        return f"/api/v1/devices/{device.device_id}/{action}"

    return path


def _assignment_path(ward, target: str) -> str:
    """An assignment of a locum clinician (no one else's visibility changes) to the target patient."""
    if ward.ctx.store.get_user("locum") is None:
        ward.ctx.store.add_user("locum", "clinician", "not a hash")
    ward.ctx.store.assign(_patient(ward, target), "locum")
    return f"/api/v1/patients/{_patient(ward, target)}/assignments/locum"


def _alert(ward, target: str) -> str:
    """A new open alert: the store keeps one open alert per patient and rule, so the open ones are acknowledged first."""
    store, patient_id = ward.ctx.store, _patient(ward, target)
    for alert in store.list_alerts([patient_id], open_only=True):
        store.acknowledge_alert(alert.alert_id, "dr_who")
    return str(store.raise_alert(AlertDraft(patient_id, AlertRule.GLUCOSE_LOW, "urgent", utc_now(), "x")).alert_id)


def _recommendation(ward, target: str) -> str:
    """A pending recommendation (the one still pending, until someone decides it)."""
    draft = RecommendationDraft(_patient(ward, target), RecommendationKind.ESCALATION, utc_now(), "review", "because")
    return str(ward.ctx.store.add_recommendation(draft).recommendation_id)


@dataclass(frozen=True)
class Case:
    """How to call one endpoint for a target, and what each role must get."""

    web: bool
    path: Callable[[object, str], str]
    expected: Callable[[str, str], int]
    body: dict | None = None
    targets: tuple[str, ...] = ("own", "other")


def _patient_path(template: str) -> Callable[[object, str], str]:
    return lambda ward, target: template.format(patient_id=_patient(ward, target))


PATIENT_DATA = _expected_for_patient_data
MATRIX: dict[tuple[str, str], Case] = {
    ("GET", "/api/v1/patients/{patient_id}"): Case(False, _patient_path("/api/v1/patients/{patient_id}"), PATIENT_DATA),
    ("GET", "/api/v1/patients/{patient_id}/readings"): Case(
        False, _patient_path("/api/v1/patients/{patient_id}/readings"), PATIENT_DATA
    ),
    ("GET", "/api/v1/patients/{patient_id}/risk"): Case(
        False, _patient_path("/api/v1/patients/{patient_id}/risk"), PATIENT_DATA
    ),
    ("GET", "/api/v1/patients/{patient_id}/recommendations"): Case(
        False, _patient_path("/api/v1/patients/{patient_id}/recommendations"), PATIENT_DATA
    ),
    ("GET", "/api/v1/patients/{patient_id}/glucose"): Case(
        False, _patient_path("/api/v1/patients/{patient_id}/glucose"), PATIENT_DATA
    ),
    ("GET", "/api/v1/patients/{patient_id}/news2-inputs"): Case(
        False, _patient_path("/api/v1/patients/{patient_id}/news2-inputs"), PATIENT_DATA
    ),
    ("POST", "/api/v1/patients/{patient_id}/news2-inputs"): Case(
        False,
        _patient_path("/api/v1/patients/{patient_id}/news2-inputs"),
        lambda role, target: 201 if (expected := _expected_for_clinical_action(role, target)) == 200 else expected,
        {"consciousness": "alert"},
    ),
    ("GET", "/api/v1/alerts"): Case(False, _patient_path("/api/v1/alerts?patient_id={patient_id}"), PATIENT_DATA),
    ("GET", "/api/v1/patients"): Case(
        False,
        lambda ward, target: "/api/v1/patients",
        lambda role, target: 401 if role in ("anonymous", "device") else 200,
        targets=("all",),
    ),
    ("POST", "/api/v1/alerts/{alert_id}/ack"): Case(
        False, lambda ward, target: f"/api/v1/alerts/{_alert(ward, target)}/ack", _expected_for_clinical_action
    ),
    ("POST", "/api/v1/recommendations/{recommendation_id}/decision"): Case(
        False,
        lambda ward, target: f"/api/v1/recommendations/{_recommendation(ward, target)}/decision",
        _expected_for_clinical_action,
        {"decision": "accept", "version": 1},
    ),
    ("POST", "/api/v1/ingest"): Case(
        False,
        lambda ward, target: "/api/v1/ingest",
        lambda role, target: 202 if role == "device" else 401,
        {"readings": []},
        ("own",),
    ),
    ("GET", "/"): Case(
        True,
        lambda ward, target: "/",
        lambda role, target: 303 if role in ("anonymous", "device") else 200,
        targets=("all",),
    ),
    ("GET", "/fragments/ward"): Case(
        True,
        lambda ward, target: "/fragments/ward",
        lambda role, target: 401 if role in ("anonymous", "device") else 200,
        targets=("all",),
    ),
    ("GET", "/fragments/alerts"): Case(True, _patient_path("/fragments/alerts?patient_id={patient_id}"), PATIENT_DATA),
    ("GET", "/patients/{patient_id}"): Case(
        True,
        _patient_path("/patients/{patient_id}"),
        lambda role, target: _expected_for_patient_data(role, target, anonymous=303),
    ),
    ("GET", "/fragments/patients/{patient_id}/recommendations"): Case(
        True, _patient_path("/fragments/patients/{patient_id}/recommendations"), PATIENT_DATA
    ),
    ("POST", "/api/v1/auth/logout"): Case(
        False,
        lambda ward, target: "/api/v1/auth/logout",
        lambda role, target: 401 if role in ("anonymous", "device") else 204,
        targets=("all",),
    ),
    ("GET", "/api/v1/users"): Case(False, lambda ward, target: "/api/v1/users", _expected_for_admin, targets=("all",)),
    ("POST", "/api/v1/users"): Case(
        False,
        lambda ward, target: "/api/v1/users",
        _created_by_admin(_expected_for_admin),
        {"username": "newbie", "role": "clinician", "password": "long enough password"},
        ("all",),
    ),
    ("PUT", "/api/v1/users/{username}/password"): Case(
        False,
        lambda ward, target: "/api/v1/users/dr_no/password",
        _expected_for_admin,
        {"password": "another long password"},
        ("all",),
    ),
    ("POST", "/api/v1/users/{username}/lock"): Case(
        False, lambda ward, target: "/api/v1/users/dr_no/lock", _expected_for_admin, targets=("all",)
    ),
    ("POST", "/api/v1/users/{username}/unlock"): Case(
        False, lambda ward, target: "/api/v1/users/dr_no/unlock", _expected_for_admin, targets=("all",)
    ),
    ("DELETE", "/api/v1/users/{username}/sessions"): Case(
        False, lambda ward, target: "/api/v1/users/dr_no/sessions", _expected_for_admin, targets=("all",)
    ),
    ("POST", "/api/v1/patients/{patient_id}/assignments"): Case(
        False,
        _patient_path("/api/v1/patients/{patient_id}/assignments"),
        _created_by_admin(_expected_for_admin_of_patient),
        {"clinician": "dr_no"},
    ),
    ("DELETE", "/api/v1/patients/{patient_id}/assignments/{clinician}"): Case(
        False, _assignment_path, _expected_for_admin_of_patient
    ),
    ("GET", "/api/v1/patients/{patient_id}/devices"): Case(
        False, _patient_path("/api/v1/patients/{patient_id}/devices"), _expected_for_admin_of_patient
    ),
    ("POST", "/api/v1/patients/{patient_id}/devices"): Case(
        False,
        _patient_path("/api/v1/patients/{patient_id}/devices"),
        _created_by_admin(_expected_for_admin_of_patient),
        {"kind": "wearable"},
    ),
    ("POST", "/api/v1/devices/{device_id}/revoke"): Case(False, _device_path("revoke"), _expected_for_admin_of_patient),
    ("POST", "/api/v1/devices/{device_id}/rotate"): Case(False, _device_path("rotate"), _expected_for_admin_of_patient),
    ("GET", "/api/v1/mqtt/dead-letters"): Case(
        False, lambda ward, target: "/api/v1/mqtt/dead-letters", _expected_for_admin, targets=("all",)
    ),
    # Server-sent events carry only a digest (no patient data) and never end: checked for anonymous callers below.
    ("GET", "/events/ward"): Case(
        True, lambda ward, target: "/events/ward", lambda role, target: 401, targets=("all",)
    ),
}


def test_every_route_is_in_the_matrix_or_public(ward):
    assert app_routes(ward.client.app) == set(MATRIX) | PUBLIC


@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_role_matrix(ward, route):
    method, template = route
    case = MATRIX[route]
    roles = ("anonymous", "device") if template == "/events/ward" else ROLES
    answers = {}
    for role in roles:
        caller = _caller(ward, role, case.web)
        for target in case.targets:
            ward.client.cookies.clear()
            ward.client.cookies.update(caller.cookies)
            response = ward.client.request(
                method, case.path(ward, target), headers=caller.headers, json=case.body, follow_redirects=False
            )
            answers[(role, target)] = response.status_code
    expected = {(role, target): case.expected(role, target) for role in roles for target in case.targets}
    assert answers == expected


@pytest.mark.parametrize("role", ["patient", "clinician", "other_clinician", "admin"])
def test_lists_show_exactly_the_visible_patients(ward, role):
    for target in ("own", "other"):
        ward.ctx.store.raise_alert(AlertDraft(_patient(ward, target), "glucose_low", "urgent", utc_now(), "x"))
    expected = {_patient(ward, t) for t in SEES[role]}
    api = _caller(ward, role, web=False)
    patients = ward.client.get("/api/v1/patients", headers=api.headers).json()
    alerts = ward.client.get("/api/v1/alerts", headers=api.headers).json()
    assert {p["patient_id"] for p in patients} == expected
    assert {a["patient_id"] for a in alerts} == expected
    web = _caller(ward, role, web=True)
    ward.client.cookies.update(web.cookies)
    names = {ward.patient_id: "Ada Lovelace", ward.other_patient_id: "Alan Turing"}
    for fragment in ("/fragments/ward", "/fragments/alerts"):
        html = ward.client.get(fragment).text
        assert {pid for pid, name in names.items() if name in html} == expected


def test_a_device_ingests_only_for_its_own_patient(ward):
    reading = {"metric": "heart_rate", "value": 70, "time": utc_now().isoformat()}
    ward.ingest([{**reading, "seq": 1}])
    ward.ingest([{**reading, "seq": 2, "patient_id": ward.other_patient_id}])  # a field that names someone else
    assert ward.ctx.store.query_readings(ward.other_patient_id) == []
    assert [r.seq for r in ward.ctx.store.query_readings(ward.patient_id)] == [1, 2]
