"""Typed boundaries: one error tree whose errors know their HTTP status, answered by one handler; an OpenAPI schema
that documents every /api/v1 answer; enums that are exactly what the stages produce and the store receives."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from vigil import admin
from vigil.api.context import AppContext
from vigil.datasets.physionet import PsvFormatError
from vigil.domain import AlertRule, Quality, RecommendationKind, ScoreKind, Severity
from vigil.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidInput,
    MalformedBody,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorised,
    VigilError,
)
from vigil.ingest.service import BatchShapeError
from vigil.ingest.validation import ReadingError
from vigil.metrics import METRICS, VITAL_SIGNS, MetricName
from vigil.security.crypto import CryptoError, DecryptionError, KeyConfigError, UnknownKeyError
from vigil.timeutil import format_time, utc_now
from vigil.web.app import create_app
from vigil.web.routes import LoginRequired

STATUSES = {
    InvalidInput: 422,
    MalformedBody: 400,
    Unauthorised: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    AlreadyExists: 409,
    TooLarge: 413,
    RateLimited: 429,
    CryptoError: 500,
    VigilError: 500,
}


def tree(cls: type[VigilError] = VigilError) -> list[type[VigilError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in tree(sub))]


# -- the tree ------------------------------------------------------------------------------------
@pytest.mark.parametrize("error", tree(), ids=lambda cls: cls.__name__)
def test_every_error_knows_its_http_status_and_code(error):
    assert isinstance(error.http_status, int) and 400 <= error.http_status < 600
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", error.code)
    assert error.__doc__


def test_the_branches_have_the_statuses_of_the_contract():
    assert {cls: cls.http_status for cls in STATUSES} == STATUSES
    rebased = {
        ReadingError: InvalidInput,
        BatchShapeError: InvalidInput,
        PsvFormatError: InvalidInput,
        LoginRequired: Unauthorised,
        DecryptionError: CryptoError,
        UnknownKeyError: CryptoError,
        KeyConfigError: CryptoError,
    }
    assert all(issubclass(cls, branch) for cls, branch in rebased.items())
    assert (admin.InvalidInput, admin.AlreadyExists, admin.NotFound) == (InvalidInput, AlreadyExists, NotFound)
    assert issubclass(InvalidInput, ValueError) and issubclass(NotFound, LookupError)  # for callers of old


def test_a_field_prefixes_the_message():
    error = InvalidInput("must be at least 8 characters", field="password")
    assert (str(error), error.field, error.reason) == (
        "password: must be at least 8 characters",
        "password",
        "must be at least 8 characters",
    )
    assert str(NotFound("patient not found")) == "patient not found"


# -- the one handler -----------------------------------------------------------------------------
REFUSALS = [
    InvalidInput("must be before end", field="start"),
    ReadingError("value: must be a number"),
    BatchShapeError("readings: must be a list"),
    PsvFormatError("p000001.psv line 3, column HR: 'x' is not a number"),
    MalformedBody("not valid JSON (unexpected character)", field="body"),
    Unauthorised("login required"),
    Forbidden("only admins may do this"),
    NotFound("patient not found"),
    Conflict("recommendation already accepted"),
    AlreadyExists("'nurse' already exists", field="username"),
    TooLarge("body: larger than 64 KB; send less at a time"),
    RateLimited("too many requests; slow down", retry_after=2.5),
]
HEADERS = {Unauthorised: {"www-authenticate": "Bearer"}, RateLimited: {"retry-after": "3"}}


def _answer(settings, error: Exception):
    app = create_app(AppContext.build(settings))

    def fail() -> None:
        raise error

    app.add_api_route("/fail", fail)
    with TestClient(app) as client:
        return client.get("/fail")


@pytest.mark.parametrize("error", REFUSALS, ids=lambda error: type(error).__name__)
def test_the_handler_answers_a_refusal_with_its_status_and_message(settings, error):
    response = _answer(settings, error)
    assert (response.status_code, response.json()) == (error.http_status, {"detail": str(error)})
    for name, value in HEADERS.get(type(error), {}).items():
        assert response.headers[name] == value


def test_a_failure_inside_is_answered_like_any_internal_error(settings):
    response = _answer(settings, KeyConfigError("key file: a key id does not match its key"))
    assert (response.status_code, response.json()) == (500, {"detail": "internal error"})
    assert response.headers["x-request-id"]


# -- the schema ----------------------------------------------------------------------------------
def test_openapi_documents_every_api_answer(settings):
    spec = create_app(AppContext.build(settings)).openapi()
    components = spec["components"]["schemas"]
    operations = [
        (method, path, op)
        for path, ops in spec["paths"].items()
        if path.startswith("/api/v1/")
        for method, op in ops.items()
    ]
    assert len(operations) >= 24
    for method, path, operation in operations:
        [(status, answer)] = [(s, a) for s, a in operation["responses"].items() if s.startswith("2")]
        if status == "204":
            assert "content" not in answer
            continue
        schema = answer["content"]["application/json"]["schema"]
        body = schema.get("items", schema)
        assert "$ref" in body, f"{method.upper()} {path} answers an undocumented {schema}"
        assert components[body["$ref"].rsplit("/", 1)[1]]["properties"]
    assert components["Severity"]["enum"] == ["info", "warning", "urgent", "emergency"]
    assert components["MetricName"]["enum"] == list(METRICS)


# -- the enums -----------------------------------------------------------------------------------
def test_metric_names_are_the_catalogue():
    assert list(MetricName) == list(METRICS) and all(METRICS[name].name is name for name in MetricName)
    assert set(VITAL_SIGNS) < set(MetricName)


def _minutes(metric: str, values: list[float], step: int = 1) -> list[dict]:
    """Readings of one metric every ``step`` minutes, the last a minute ago."""
    now = utc_now()
    times = [now - timedelta(minutes=1 + step * (len(values) - 1 - i)) for i in range(len(values))]
    return [{"metric": metric, "value": value, "time": format_time(time)} for value, time in zip(values, times)]


RUN = {
    "heart rate rising above its baseline; hourly risk": _minutes("heart_rate", [70.0] * 180 + [115.0] * 30),
    "NEWS2 high, a parameter scoring 3": [
        reading
        for metric, value in (
            ("heart_rate", 135.0),
            ("resp_rate", 26.0),
            ("spo2", 90.0),
            ("body_temp", 39.0),
            ("systolic_bp", 88.0),
        )
        for reading in _minutes(metric, [value] * 30)
    ],
    "glucose falling to a low": _minutes("glucose", [130.0] * 12 + [130.0 - 12.5 * (i + 1) for i in range(6)], 5),
    "glucose rising, then a meal": _minutes("glucose", [200.0 + 8 * i for i in range(14)], 5)
    + [{"metric": "carbs", "value": 60.0, "unit": "g", "time": format_time(utc_now() - timedelta(minutes=1))}],
}


def _spy(monkeypatch, store, name: str) -> list:
    """Everything the store's method `name` is given from now on (one value or a list of them)."""
    given: list = []
    method = getattr(store, name)

    def recording(values, *rest):
        given.extend(values if isinstance(values, list) else [values])
        return method(values, *rest)

    monkeypatch.setattr(store, name, recording)
    return given


def test_the_stages_raise_every_rule_and_the_store_receives_only_members(settings, monkeypatch):
    """A short run through ingestion and the real pipeline (its risk model alarming every hour), one patient per
    condition: what reaches the store is members of the enums, and every alert rule is raised by some stage."""
    ctx = AppContext.build(settings)
    store, risk = ctx.store, ctx.pipeline.risk
    risk.model = replace(risk.model, threshold=0.0)
    spied = ("insert_readings", "add_scores", "raise_alert", "add_recommendation")
    readings, scores, alerts, advice = (_spy(monkeypatch, store, name) for name in spied)
    for condition, batch in RUN.items():
        device, _ = store.add_device(store.add_patient(condition).patient_id, "monitor")
        result = ctx.ingest.ingest(device, {"readings": [{**r, "seq": i} for i, r in enumerate(batch)]})
        assert result.accepted == len(batch), result.rejected
        ctx.processor.drain()
    assert {(type(r.metric), type(r.quality)) for r in readings} == {(MetricName, Quality)}
    assert {type(s.kind) for s in scores} == {ScoreKind} and {s.kind for s in scores} == set(ScoreKind)
    assert {(type(a.rule), type(a.severity)) for a in alerts} == {(AlertRule, Severity)}
    assert {a.rule for a in alerts} == set(AlertRule)
    assert {type(r.kind) for r in advice} == {RecommendationKind}
    assert {r.kind for r in advice} == set(RecommendationKind)
    assert {a.rule for a in store.list_alerts()} == set(AlertRule)  # as stored, and read back
