"""Identities: lockout, one-time codes, token lifetimes and audiences, CSRF on the dashboard's writes."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import jwt
import pytest

from vigil.domain import AlertDraft
from vigil.security.identity import authenticate, issue_token
from vigil.security.totp import STEP_SECONDS, code_at, matching_step, new_secret, provisioning_uri
from vigil.store import SqlStore
from vigil.timeutil import utc_now

PASSWORD = "correct horse battery"


def _token(ward, username: str, password: str = PASSWORD, **form):
    return ward.client.post("/api/v1/auth/token", data={"username": username, "password": password, **form})


def test_five_failures_lock_the_account_and_locked_looks_like_wrong(ward):
    for _ in range(5):
        assert _token(ward, "dr_who", "wrong").status_code == 401
    locked = _token(ward, "dr_who")  # the right password, but locked
    wrong = _token(ward, "dr_who", "wrong")
    assert locked.status_code == wrong.status_code == 401 and locked.json() == wrong.json()
    assert _token(ward, "dr_no").status_code == 200  # other accounts are unaffected
    outcomes = [(e.actor, e.outcome) for e in ward.ctx.store.audit_entries() if e.action == "login"]
    assert outcomes[:7] == [("user:dr_who", "failed")] * 4 + [("user:dr_who", "locked")] * 3
    assert ward.web_login("dr_who").headers["location"].startswith("/login?error")  # the dashboard too


def test_lock_expires_and_success_resets_the_count(ward):
    store = ward.ctx.store
    for _ in range(4):
        _token(ward, "dr_who", "wrong")
    assert _token(ward, "dr_who").status_code == 200  # the fourth failure did not lock; success clears the count
    for _ in range(4):
        _token(ward, "dr_who", "wrong")
    assert store.locked_until("dr_who") is None
    store.record_login_failure("dr_who", 5, utc_now() - timedelta(seconds=1))  # fifth failure, lock already over
    assert store.locked_until("dr_who") < utc_now()
    assert _token(ward, "dr_who").status_code == 200


def test_the_lockout_cannot_be_raced_by_parallel_wrong_passwords(ward):
    with ThreadPoolExecutor(max_workers=19) as pool:
        answers = list(pool.map(lambda _: _token(ward, "dr_who", "wrong").status_code, range(19)))
    assert answers == [401] * 19
    assert _token(ward, "dr_who").status_code == 401  # the right password, but locked
    assert ward.ctx.store.locked_until("dr_who") > utc_now() + timedelta(minutes=14)


def test_the_failure_count_is_atomic_in_the_store(any_store_url):
    store = SqlStore(any_store_url)
    lock_until = utc_now() + timedelta(minutes=15)
    with ThreadPoolExecutor(max_workers=8) as pool:
        locked = list(pool.map(lambda _: store.record_login_failure("dr_who", 5, lock_until), range(19)))
    assert locked.count(True) == 3  # the 5th, 10th and 15th failures; none of the others unlocks
    assert store.locked_until("dr_who") is not None and store.locked_until("dr_who") > utc_now()


def test_unknown_user_is_answered_like_a_wrong_password(ward):
    assert _token(ward, "nobody", "x").json() == _token(ward, "dr_who", "x").json()


def test_a_name_no_account_can_have_is_refused_without_a_lookup(postgres_url):
    """PostgreSQL refuses NUL in text: such a name must be a plain failed login (audited), not a database error."""
    store = SqlStore(postgres_url)
    assert authenticate(store, "root\x00", PASSWORD) is None and authenticate(store, "x" * 65, PASSWORD) is None
    assert [(e.actor, e.outcome, json.loads(e.details)["username"]) for e in store.audit_entries()] == [
        ("user:?", "failed", "root\x00"),
        ("user:?", "failed", "x" * 65),
    ]


def test_totp_codes_rfc6238_reference_vector():
    """RFC 6238 appendix B: SHA-1 secret '12345678901234567890' at T=59 s gives 94287082 (8 digits) -> 287082."""
    import base64

    secret = base64.b32encode(b"12345678901234567890").decode()
    assert code_at(secret, 59 // STEP_SECONDS) == "287082"
    assert provisioning_uri(secret, "dr_who").startswith("otpauth://totp/Vigil:dr_who?secret=")


def test_totp_accepts_one_step_of_drift_only():
    secret, now = new_secret(), utc_now()
    step = int(now.timestamp()) // STEP_SECONDS
    assert matching_step(secret, code_at(secret, step - 1), now) == step - 1
    assert matching_step(secret, code_at(secret, step + 2), now) is None
    assert matching_step(secret, None, now) is None and matching_step(secret, "abcdef", now) is None


def test_login_needs_the_code_once_enabled_and_a_code_works_once(ward):
    secret = new_secret()
    ward.ctx.store.set_totp_secret("dr_who", secret)
    code = code_at(secret, int(utc_now().timestamp()) // STEP_SECONDS)
    without = _token(ward, "dr_who")
    assert without.status_code == 401 and without.json() == _token(ward, "dr_who", "wrong", totp=code).json()
    assert _token(ward, "dr_who", totp="000000" if code != "000000" else "111111").status_code == 401
    assert _token(ward, "dr_who", totp=code).status_code == 200
    assert _token(ward, "dr_who", totp=code).status_code == 401  # replayed
    ward.ctx.store.set_totp_secret("dr_who", None)
    assert _token(ward, "dr_who").status_code == 200


def test_users_totp_command_prints_the_uri_once_and_login_then_needs_a_code(settings, ward):
    import os
    import subprocess
    import sys

    env = {**os.environ, "VIGIL_HOME": str(settings.home), "VIGIL_DB": settings.db_url}
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "users", "totp", "--username", "dr_no", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    uri = json.loads(result.stdout)["provisioning_uri"]
    secret = uri.split("secret=")[1].split("&")[0]
    assert ward.ctx.store.get_user("dr_no").totp_enabled and ward.ctx.store.totp_secret("dr_no") == secret
    assert _token(ward, "dr_no").status_code == 401
    assert _token(ward, "dr_no", totp=code_at(secret, int(utc_now().timestamp()) // STEP_SECONDS)).status_code == 200


def test_bearer_tokens_last_15_minutes_and_sessions_are_not_bearer_tokens(ward):
    token = _token(ward, "dr_who").json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 15 * 60 and claims["aud"] == "api"
    store, secret = ward.ctx.store, ward.ctx.session_secret
    expired = issue_token(store, "dr_who", secret, "api", timedelta(seconds=-1))
    session = issue_token(store, "dr_who", secret, "web", timedelta(hours=1))
    forged = jwt.encode(
        {"sub": "root", "aud": "api", "exp": utc_now() + timedelta(minutes=5)},
        "a guessed secret of a decent length!",
        algorithm="HS256",
    )
    url = f"/api/v1/patients/{ward.patient_id}"
    assert ward.client.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    for bad in (expired, session, forged):
        assert ward.client.get(url, headers={"Authorization": f"Bearer {bad}"}).status_code == 401


def test_session_cookie_flags_over_plain_http(ward):
    response = ward.web_login("dr_who")
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("vigil_session="))
    csrf = next(c for c in cookies if c.startswith("vigil_csrf="))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Secure" not in session
    assert "HttpOnly" not in csrf and "SameSite=strict" in csrf


def test_dashboard_writes_need_the_csrf_token(ward):
    alert = ward.ctx.store.raise_alert(AlertDraft(ward.patient_id, "glucose_low", "urgent", utc_now(), "glucose 52"))
    ward.web_login("dr_who")
    url = f"/api/v1/alerts/{alert.alert_id}/ack"
    assert ward.client.post(url).status_code == 403
    assert ward.client.post(url, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert ward.ctx.store.get_alert(alert.alert_id).acknowledged_by is None
    token = ward.client.cookies["vigil_csrf"]
    assert ward.client.post(url, headers={"X-CSRF-Token": token}).json()["acknowledged_by"] == "dr_who"
    assert ward.client.get(f"/api/v1/patients/{ward.patient_id}").status_code == 200  # reads need no token


@pytest.mark.parametrize("path", ["/login", "/logout"])
def test_forms_without_the_csrf_token_are_refused(ward, path):
    ward.client.get("/login")
    response = ward.client.post(
        path, data={"username": "dr_who", "password": PASSWORD, "csrf_token": "forged"}, follow_redirects=False
    )
    assert response.status_code == 403
    ward.client.cookies.clear()
    assert (
        ward.client.post(path, data={"username": "dr_who", "password": PASSWORD}, follow_redirects=False).status_code
        == 403
    )


def test_logout_with_the_token_ends_the_session(ward):
    ward.web_login("dr_who")
    response = ward.client.post(
        "/logout", data={"csrf_token": ward.client.cookies["vigil_csrf"]}, follow_redirects=False
    )
    assert response.status_code == 303 and "vigil_session" not in ward.client.cookies
    assert ward.client.get("/fragments/ward").status_code == 401
