"""A lost database connection (server restart, terminated backend) is a 503 with Retry-After, then reconnects."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.conftest import POSTGRES_URL
from vigil.api.context import AppContext
from vigil.config import load_settings
from vigil.timeutil import format_time, utc_now
from vigil.web.app import create_app


def _terminate(application_name: str) -> int:
    """End every server backend of this application, as a database restart would; how many were ended."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
    return len(rows)


@pytest.fixture
def outage_ward(postgres_url, tmp_path):
    name = "vigil-outage-" + uuid.uuid4().hex[:8]
    settings = load_settings(db=f"{postgres_url}&application_name={name}", home=str(tmp_path / "home"))
    ctx = AppContext.build(settings)
    patient = ctx.store.add_patient("Outage")
    _, token = ctx.store.add_device(patient.patient_id, "wearable")
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        yield ctx, client, token, name


def _batch(first_seq: int) -> dict:
    start = utc_now() - timedelta(minutes=30)
    return {
        "readings": [
            {"metric": "heart_rate", "value": 70, "time": format_time(start + timedelta(minutes=i)), "seq": i}
            for i in range(first_seq, first_seq + 5)
        ]
    }


def test_lost_connection_answers_503_then_the_store_reconnects(outage_ward):
    ctx, client, token, name = outage_ward
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/ingest", json=_batch(0), headers=headers).status_code == 202
    assert _terminate(name) >= 1

    answers = [client.post("/api/v1/ingest", json=_batch(5), headers=headers) for _ in range(3)]
    refused = [a for a in answers if a.status_code != 202]
    assert refused, "the first request on a lost connection must fail"
    for answer in refused:
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
        assert "store is unavailable" in answer.json()["detail"]
    assert answers[-1].status_code == 202  # reconnected: the device's resend is stored
    assert answers[-1].json()["accepted"] + answers[-1].json()["duplicates"] == 5

    assert _terminate(name) >= 1
    with pytest.raises(psycopg.OperationalError):
        ctx.store.count_readings()
    assert ctx.store.count_readings() == 10  # this thread reconnected; nothing accepted was lost or doubled
