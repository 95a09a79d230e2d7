"""Sessions the server can end: logout, a locked account, a new password and an admin's "log out everywhere"
make a session cookie or bearer token useless at once, even a copy taken before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta

import jwt
import pytest

from vigil.timeutil import utc_now

PASSWORD = "correct horse battery"


def _bearer(ward, username: str) -> dict[str, str]:
    return ward.login(username)


def _session_cookie(ward, username: str) -> str:
    ward.client.cookies.clear()
    assert ward.web_login(username).status_code == 303
    return ward.client.cookies["vigil_session"]


def _status_with_cookie(ward, cookie: str) -> int:
    ward.client.cookies.clear()
    ward.client.cookies.update({"vigil_session": cookie})
    status = ward.client.get("/api/v1/patients").status_code
    ward.client.cookies.clear()
    return status


def _status_with_bearer(ward, headers: dict[str, str]) -> int:
    return ward.client.get("/api/v1/patients", headers=headers).status_code


def test_a_session_cookie_copied_before_logout_is_refused_after_it(ward):
    copy = _session_cookie(ward, "dr_who")
    csrf = ward.client.cookies["vigil_csrf"]
    assert _status_with_cookie(ward, copy) == 200
    ward.client.cookies.update({"vigil_session": copy, "vigil_csrf": csrf})
    assert ward.client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    ward.client.cookies.update({"vigil_session": copy})  # the copy, presented again
    assert ward.client.get("/fragments/ward").status_code == 401
    assert ward.client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert _status_with_cookie(ward, copy) == 401
    assert ("user:dr_who", "logout") in [(e.actor, e.action) for e in ward.ctx.store.audit_entries()]


def test_a_bearer_token_copied_before_logout_is_refused_after_it(ward):
    headers = _bearer(ward, "dr_who")
    other = _bearer(ward, "dr_who")  # a second token of the same user stays valid
    assert ward.client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert _status_with_bearer(ward, headers) == 401
    assert ward.client.post("/api/v1/auth/logout", headers=headers).status_code == 401
    assert _status_with_bearer(ward, other) == 200


def test_logout_through_the_api_with_a_cookie_needs_the_csrf_token(ward):
    cookie = _session_cookie(ward, "dr_who")
    ward.client.cookies.update({"vigil_session": cookie, "vigil_csrf": "t"})
    assert ward.client.post("/api/v1/auth/logout").status_code == 403
    assert ward.client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": "t"}).status_code == 204
    assert _status_with_cookie(ward, cookie) == 401


def test_a_token_signed_with_the_real_secret_but_never_issued_is_refused(ward):
    now, secret = utc_now(), ward.ctx.session_secret
    claims = {"sub": "root", "aud": "api", "iat": now, "exp": now + timedelta(minutes=5)}
    made_up = jwt.encode({**claims, "jti": "made-up"}, secret, algorithm="HS256")
    without_id = jwt.encode(claims, secret, algorithm="HS256")
    for token in (made_up, without_id):
        assert _status_with_bearer(ward, {"Authorization": f"Bearer {token}"}) == 401


@pytest.mark.parametrize(
    ("method", "path", "body", "action"),
    [
        ("POST", "/api/v1/users/dr_who/lock", None, "permission.lock"),
        ("PUT", "/api/v1/users/dr_who/password", {"password": "a brand new password"}, "permission.password"),
        ("DELETE", "/api/v1/users/dr_who/sessions", None, "permission.end_sessions"),
    ],
    ids=["lock", "password", "log out everywhere"],
)
def test_an_admin_ends_every_session_and_token_of_a_user(ward, method, path, body, action):
    cookie, headers, bystander = _session_cookie(ward, "dr_who"), _bearer(ward, "dr_who"), _bearer(ward, "dr_no")
    answer = ward.client.request(method, path, json=body, headers=_bearer(ward, "root"))
    assert answer.status_code == 200 and answer.json()["sessions_ended"] == 2
    assert _status_with_cookie(ward, cookie) == 401 and _status_with_bearer(ward, headers) == 401
    assert _status_with_bearer(ward, bystander) == 200
    change = next(e for e in reversed(ward.ctx.store.audit_entries()) if e.action == action)
    assert change.actor == "user:root" and json.loads(change.details)["sessions_ended"] == 2


def test_a_locked_account_cannot_log_in_until_unlocked(ward):
    admin = _bearer(ward, "root")
    wrong = ward.client.post("/api/v1/auth/token", data={"username": "dr_who", "password": "wrong"})
    ward.client.post("/api/v1/users/dr_who/lock", headers=admin)
    locked = ward.client.post("/api/v1/auth/token", data={"username": "dr_who", "password": PASSWORD})
    assert locked.status_code == 401 and locked.json() == wrong.json()  # looks like a wrong password
    assert ward.web_login("dr_who").headers["location"].startswith("/login?error")
    users = {u["username"]: u for u in ward.client.get("/api/v1/users", headers=admin).json()}
    assert users["dr_who"] == {
        "username": "dr_who",
        "role": "clinician",
        "patient_id": None,
        "totp_enabled": False,
        "locked": True,
    }
    assert ward.client.post("/api/v1/users/dr_who/unlock", headers=admin).json() == {
        "username": "dr_who",
        "locked": False,
    }
    assert _status_with_bearer(ward, _bearer(ward, "dr_who")) == 200


def test_unlock_also_lifts_a_lockout_after_failed_logins(ward):
    for _ in range(5):
        ward.client.post("/api/v1/auth/token", data={"username": "dr_who", "password": "wrong"})
    assert ward.client.post("/api/v1/auth/token", data={"username": "dr_who", "password": PASSWORD}).status_code == 401
    ward.client.post("/api/v1/users/dr_who/unlock", headers=_bearer(ward, "root"))
    assert ward.client.post("/api/v1/auth/token", data={"username": "dr_who", "password": PASSWORD}).status_code == 200


def test_a_new_password_replaces_the_old_one(ward):
    ward.client.put(
        "/api/v1/users/dr_who/password", json={"password": "a brand new password"}, headers=_bearer(ward, "root")
    )
    assert ward.client.post("/api/v1/auth/token", data={"username": "dr_who", "password": PASSWORD}).status_code == 401
    assert ward.login("dr_who", "a brand new password")


def test_the_command_line_locks_a_user_out_of_a_running_server(ward, settings):
    headers = _bearer(ward, "dr_who")
    env = {**os.environ, "VIGIL_HOME": str(settings.home), "VIGIL_DB": settings.db_url}
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "users", "lock", "--username", "dr_who", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"sessions_ended":1' in result.stdout and _status_with_bearer(ward, headers) == 401
    lock = ward.ctx.store.audit_entries()[-1]
    assert lock.action == "permission.lock" and lock.actor.startswith("cli:")


def test_the_live_ward_stream_ends_with_its_session(ward):
    _session_cookie(ward, "dr_who")
    lines: list[str] = []

    def listen() -> None:
        with ward.client.stream("GET", "/events/ward") as response:
            lines.extend(response.iter_lines())

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    listener.join(1.0)
    assert listener.is_alive()  # streaming while the session lasts
    ward.ctx.store.end_sessions("dr_who")
    listener.join(10)
    assert not listener.is_alive() and any(line.startswith("event: ward") for line in lines)


def test_sessions_in_the_store(any_store_url):
    from vigil.store import SqlStore

    store = SqlStore(any_store_url)
    later, earlier = utc_now() + timedelta(hours=1), utc_now() - timedelta(seconds=1)
    for jti, username, expires in (
        ("a", "ann", later),
        ("b", "ann", later),
        ("c", "bob", later),
        ("old", "ann", earlier),
    ):
        store.add_session(jti, username, "web", expires)
    assert store.session_active("a", "ann", "web")
    assert not store.session_active("a", "ann", "api") and not store.session_active("a", "bob", "web")
    assert not store.session_active("old", "ann", "web")
    assert store.end_session("a") and not store.end_session("a") and not store.session_active("a", "ann", "web")
    assert store.end_sessions("ann") == 1  # b; a had ended, old had expired
    assert store.session_active("c", "bob", "web")
