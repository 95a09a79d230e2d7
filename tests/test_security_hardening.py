"""Hardening: no stack traces to clients, body size limits on every body, rate limits with Retry-After,
security headers (HSTS only under TLS)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from vigil.api.context import AppContext
from vigil.domain import RecommendationDraft
from vigil.security.identity import hash_password, issue_token
from vigil.security.ratelimit import Rate, RateLimiter, RateLimits
from vigil.timeutil import utc_now
from vigil.web.app import create_app


def test_an_unhandled_error_is_a_generic_500_with_a_request_id(ward, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals: /etc/vigil password=hunter2")

    ward.ctx.store.list_status = broken
    with TestClient(ward.client.app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        response = client.get("/api/v1/patients", headers=ward.login("root"))
    assert response.status_code == 500 and response.json() == {"detail": "internal error"}
    assert "hunter2" not in response.text and "Traceback" not in response.text
    request_id = response.headers["x-request-id"]
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)


def test_validation_errors_name_the_field_without_echoing_what_was_sent(ward):
    secret = "my very secret password"
    login = ward.client.post("/api/v1/auth/token", data={"password": secret})
    new_user = ward.client.post(
        "/api/v1/users", json={"role": "clinician", "password": secret}, headers=ward.login("root")
    )
    for answer in (login, new_user):
        assert answer.status_code == 422 and secret not in answer.text
        assert (
            answer.json()["detail"][0]["loc"][-1] == "username"
            and answer.json()["detail"][0]["msg"] == "Field required"
        )


def test_nul_characters_are_answered_without_a_500_on_postgresql(settings, postgres_url):
    """PostgreSQL refuses NUL in text; a path, id, name or note carrying one must still get a plain 4xx."""
    ctx = AppContext.build(replace(settings, db_url=postgres_url))
    patient = ctx.store.add_patient("Ada Lovelace")
    ctx.store.add_user("dr_who", "clinician", hash_password("correct horse battery"))
    rec = ctx.store.add_recommendation(
        RecommendationDraft(patient.patient_id, "escalation", utc_now(), "review", "because")
    )
    ctx.store.assign(patient.patient_id, "dr_who")
    headers = {"Authorization": f"Bearer {issue_token(ctx.store, 'dr_who', ctx.session_secret)}"}
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        answers = [
            client.get("/api/v1/patients/p%00", headers=headers).status_code,
            client.get("/api/v1/alerts?patient_id=p%00", headers=headers).status_code,
            client.post("/api/v1/users/u%00/lock", headers=headers).status_code,
            client.post(
                f"/api/v1/recommendations/{rec.recommendation_id}/decision",
                json={"decision": "accept", "version": 1, "note": "a\u0000b"},
                headers=headers,
            ).status_code,
            client.post("/api/v1/auth/token", data={"username": "dr_who\x00", "password": "x"}).status_code,
        ]
    assert answers == [404, 404, 403, 422, 401]
    assert "\ufffd" in ctx.store.audit_entries()[0].resource  # the refused read is recorded, its NUL replaced


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/v1/auth/token", "application/x-www-form-urlencoded"),
        ("/login", "application/x-www-form-urlencoded"),
        ("/api/v1/recommendations/1/decision", "application/json"),
    ],
)
def test_every_body_has_a_limit(ward, path, content_type):
    headers = {"content-type": content_type, **ward.login("dr_who")}
    assert ward.client.post(path, content=b"x" * (65 * 1024), headers=headers).status_code == 413

    def chunks():
        for _ in range(70):
            yield b"y" * 1024

    assert ward.client.post(path, content=chunks(), headers=headers).status_code == 413


def test_security_headers_and_no_hsts_over_plain_http(ward):
    response = ward.client.get("/login")
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff" and response.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in response.headers


def test_hsts_under_tls(settings):
    ctx = AppContext.build(settings, tls=True)
    with TestClient(create_app(ctx)) as client:
        response = client.get("/login")
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert "Secure" in response.headers["set-cookie"]


def test_token_bucket_refills_at_its_rate():
    now = [0.0]
    limiter = RateLimiter(Rate(3, 60), clock=lambda: now[0])
    assert [limiter.wait("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait("a") == pytest.approx(20.0)
    assert limiter.wait("b") == 0.0  # buckets are per key
    now[0] = 20.0
    assert limiter.wait("a") == 0.0 and limiter.wait("a") > 0


def test_rate_parsing_and_environment_overrides(monkeypatch):
    assert Rate.parse("30/60") == Rate(30, 60.0)
    for bad in ("30", "a/b", "0/60", "5/0"):
        with pytest.raises(ValueError, match="rate"):
            Rate.parse(bad)
    monkeypatch.setenv("VIGIL_RATE_LOGIN_PER_ADDRESS", "2/60")
    assert RateLimits.from_env().login_per_address == Rate(2, 60.0)


def _app_with(settings, monkeypatch, **rates: str) -> TestClient:
    for name, rate in rates.items():
        monkeypatch.setenv(f"VIGIL_RATE_{name.upper()}", rate)
    return TestClient(create_app(AppContext.build(settings)))


def test_login_attempts_per_address_are_limited(settings, monkeypatch):
    with _app_with(settings, monkeypatch, login_per_address="3/60") as client:
        answers = [
            client.post("/api/v1/auth/token", data={"username": f"u{i}", "password": "x"}).status_code for i in range(4)
        ]
        assert answers == [401, 401, 401, 429]
        assert 1 <= int(client.post("/login", data={}).headers["retry-after"]) <= 20


def test_api_and_ingest_are_limited_per_token(ward, settings, monkeypatch):
    with _app_with(settings, monkeypatch, api_per_token="2/60", ingest_per_token="1/60") as client:
        headers = {"Authorization": "Bearer not-a-valid-token"}
        assert [client.get("/api/v1/patients", headers=headers).status_code for _ in range(3)] == [401, 401, 429]
        other = {"Authorization": "Bearer another-token"}
        assert client.get("/api/v1/patients", headers=other).status_code == 401  # a separate bucket
        device = {"Authorization": f"Bearer {ward.token}"}
        assert [client.post("/api/v1/ingest", json={"readings": []}, headers=device).status_code for _ in range(2)] == [
            202,
            429,
        ]
