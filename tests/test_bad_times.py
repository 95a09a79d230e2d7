"""Times a device may send that cannot be stored honestly: refused at validation for HTTP (MQTT: test_mqtt_abuse),
written fixed-width so they sort, and an old bad row already in a store skipped with a warning, not a crash."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from vigil.api.context import AppContext
from vigil.security.deid import export_deidentified
from vigil.security.policy import operator
from vigil.timeutil import format_time, parse_time, utc_now


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        ("0999-06-01T00:00:00Z", "time: 0999-06-01T00:00:00Z is before 1900"),
        ("1899-12-31T23:59:59Z", "time: 1899-12-31T23:59:59Z is before 1900"),
        ("0001-01-01T00:00:00+05:00", "time: cannot parse '0001-01-01T00:00:00+05:00' as an ISO 8601 time in range"),
        ("9999-12-31T23:59:59-23:59", "time: cannot parse '9999-12-31T23:59:59-23:59' as an ISO 8601 time in range"),
        ("2026-01-01T00:00:00+99:00", "time: cannot parse '2026-01-01T00:00:00+99:00' as an ISO 8601 time in range"),
        ("NaN", "time: cannot parse 'NaN' as an ISO 8601 time in range"),
        (1764000000, "time: must be an ISO 8601 string such as 2026-11-27T10:00:00Z"),
        ([2026, 1, 1], "time: must be an ISO 8601 string such as 2026-11-27T10:00:00Z"),
    ],
)
def test_a_time_before_1900_or_out_of_range_is_a_rejected_reading_naming_the_field(ward, sent, error):
    good = {"metric": "heart_rate", "value": 70, "time": format_time(utc_now() - timedelta(minutes=1)), "seq": 2}
    answer = ward.ingest([{"metric": "heart_rate", "value": 70, "time": sent, "seq": 1}, good])
    assert answer.status_code == 202
    assert answer.json()["accepted"] == 1 and answer.json()["rejected"] == [{"index": 0, "error": error}]
    assert [r.seq for r in ward.ctx.store.query_readings()] == [2]


def test_times_are_written_fixed_width_so_text_order_is_time_order():
    times = [datetime(1900, 1, 1, tzinfo=UTC), datetime(999, 6, 1, tzinfo=UTC), datetime(2026, 11, 27, 10, tzinfo=UTC)]
    texts = [format_time(t) for t in times]
    assert texts[1] == "0999-06-01T00:00:00.000000Z"
    assert {len(text) for text in texts} == {27} and sorted(texts) == [format_time(t) for t in sorted(times)]
    assert [parse_time(text) for text in texts] == times


def test_an_old_row_with_a_bad_time_is_skipped_with_a_warning_naming_it(settings, caplog, tmp_path):
    ctx = AppContext.build(settings)
    patient = ctx.store.add_patient("Ada Lovelace")
    device, _ = ctx.store.add_device(patient.patient_id, "wearable")
    now = format_time(utc_now() - timedelta(minutes=1))
    for seq, time_text in ((1, "999-06-01T00:00:00.000000Z"), (2, now)):  # as stored before times were checked
        ctx.store._write(
            "INSERT INTO readings (patient_id, device_id, metric, time, value, unit, seq, quality, received_at)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (patient.patient_id, device.device_id, "heart_rate", time_text, 70.0, "/min", seq, "ok", now),
        )
    bad_id = ctx.store._one("SELECT id FROM readings WHERE seq = 1")[0]
    with caplog.at_level(logging.WARNING, logger="vigil.store.sql"):
        assert ctx.pipeline.warm_up() == 1  # what `vigil serve` and `vigil worker` do on start
        data, _ = export_deidentified(ctx.store, operator(), tmp_path / "export")
    assert len(data.readings) == 1 and ctx.store.last_reading_time() == parse_time(now)
    assert f"readings row id={bad_id} skipped" in caplog.text and "999-06-01" in caplog.text
