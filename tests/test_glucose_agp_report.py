"""The AGP report: from stored CGM (window, time zone, implausible readings left out), its figure, its command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.cli.common import store_for
from vigil.domain import Quality, Reading
from vigil.glucose.agp import AgpError, ambulatory_glucose_profile
from vigil.glucose.agp_report import agp_figure, agp_summary, stored_agp

LAST = datetime(2026, 11, 30, 23, 55, tzinfo=UTC)
PNG = b"\x89PNG"


@pytest.fixture
def store(settings):
    opened = store_for(settings)
    yield opened
    opened.close()


def cgm(store, days: int = 20, value=lambda t: 120.0) -> str:
    """A patient with a CGM reading every 15 minutes for ``days`` days up to LAST, and one implausible reading."""
    patient = store.add_patient("Ada CGM", conditions=["diabetes"])
    device, _ = store.add_device(patient.patient_id, "cgm")
    times = [LAST - timedelta(minutes=15 * i) for i in range(days * 96)]
    readings = [
        Reading(patient.patient_id, device.device_id, "glucose", t, value(t), "mg/dL", i) for i, t in enumerate(times)
    ]
    readings.append(
        Reading(patient.patient_id, device.device_id, "glucose", LAST, 6.1, "mg/dL", None, Quality.IMPLAUSIBLE)
    )
    store.insert_readings(readings)
    return patient.patient_id


def test_stored_agp_takes_the_last_days_in_the_clinic_time_zone(store) -> None:
    morning_high = cgm(store, value=lambda t: 250.0 if t.astimezone(ZoneInfo("Asia/Tokyo")).hour == 8 else 100.0)
    report = stored_agp(store, morning_high, 14, ZoneInfo("Asia/Tokyo"))
    assert report.readings == 14 * 96 and report.wear == pytest.approx(1.0)
    assert report.end == datetime(2026, 12, 1, 8, 55) and report.days == pytest.approx(14)  # Tokyo wall clock
    assert report.ranges.very_low == 0  # the implausible 6.1 is not counted
    assert report.profile is not None and np.nanargmax(report.profile.bands[50]) in range(32, 36)  # 08:00 in Tokyo


def test_a_patient_without_cgm_is_refused_plainly(store) -> None:
    patient = store.add_patient("No CGM")
    with pytest.raises(AgpError, match="no stored CGM"):
        stored_agp(store, patient.patient_id, 14, UTC)


def test_the_figure_and_summary_with_and_without_a_profile(tmp_path) -> None:
    times = [datetime(2026, 1, 1) + timedelta(minutes=5 * i) for i in range(10 * 288)]
    values = 140 + 60 * np.sin(np.arange(len(times)) / 50)
    for name, report in {
        "full.png": ambulatory_glucose_profile(times, values),
        "one-day.pdf": ambulatory_glucose_profile(times[:288], values[:288]),
    }.items():
        agp_figure(report, tmp_path / name, "test")
        assert (tmp_path / name).stat().st_size > 10_000
        summary = orjson.loads(orjson.dumps(agp_summary(report)))
        assert sum(summary["ranges"].values()) == pytest.approx(1.0, abs=1e-3)
        assert set(summary["targets"]) >= {"in range > 70 %", "CV <= 36 %"} and summary["gri_zone"] in "ABCDE"
    assert (tmp_path / "full.png").read_bytes().startswith(PNG)


def test_report_agp_command_writes_the_figure_prints_the_metrics_and_audits_the_read(store, settings, tmp_path):
    patient = cgm(store)
    out = tmp_path / "agp" / "patient.png"
    result = CliRunner().invoke(
        app, ["report", "agp", patient, "--out", str(out), "--db", settings.db_url, "--tz", "UTC", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert summary["readings"] == 14 * 96 and summary["mean_glucose"] == 120.0 and summary["gri"] == 0.0
    assert summary["ranges"]["in_range"] == summary["tir"] == 1.0 and summary["tbr"] == summary["tbr54"] == 0.0
    assert summary["notes"] == []
    assert out.read_bytes().startswith(PNG)
    assert "report.agp" in [entry.action for entry in store.audit_entries_for_patient(patient)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pnobody"], "no patient 'pnobody'"),
        (["{patient}", "--tz", "Nowhere/Atlantis"], "--tz"),
        (["{empty}"], "no stored CGM"),
    ],
)
def test_report_agp_refusals(store, settings, tmp_path, args, message):
    names = {"patient": cgm(store, days=1), "empty": store.add_patient("No CGM").patient_id}
    argv = [arg.format(**names) for arg in args]
    result = CliRunner().invoke(
        app, ["report", "agp", *argv, "--out", str(tmp_path / "x.png"), "--db", settings.db_url]
    )
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "x.png").exists()


def test_report_figures_draws_a_simulated_patients_agp_alone(tmp_path):
    result = CliRunner().invoke(
        app, ["report", "figures", "--out", str(tmp_path), "--agp-simulated", "adult#001", "--agp-days", "1"]
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["glucose-agp.png"]


@pytest.mark.parametrize(("name", "message"), [("adult", "one virtual patient"), ("adult#099", "unknown virtual")])
def test_report_figures_refuses_anything_but_one_virtual_patient(tmp_path, name, message):
    result = CliRunner().invoke(app, ["report", "figures", "--out", str(tmp_path), "--agp-simulated", name])
    assert result.exit_code == 2 and message in " ".join(result.output.split())


def test_report_agp_reads_the_time_zone_from_vigil_tz(store, settings, tmp_path, monkeypatch):
    patient = cgm(store)
    monkeypatch.setenv("VIGIL_TZ", "Asia/Tokyo")
    argv = ["report", "agp", patient, "--out", str(tmp_path / "a.svg"), "--db", settings.db_url, "--json"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["end"] == "2026-12-01T08:55:00"
    assert (tmp_path / "a.svg").read_bytes().lstrip().startswith(b"<?xml")
