"""The dashboard in headless Chromium: login, the ward list sorted by NEWS2, live updates, charts, acknowledging."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest

from tests.conftest import require_service
from vigil.domain import RecommendationDraft, RecommendationKind
from vigil.ports import free_port, wait_for_port
from vigil.security.identity import hash_password
from vigil.store import SqlStore
from vigil.timeutil import format_time, utc_now

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "browser test password"


def _vitals(minutes: int, unwell: bool) -> list[dict]:
    now = utc_now()
    readings = []
    for m in range(minutes):
        time = format_time(now - timedelta(minutes=minutes - m))
        vitals = {
            "heart_rate": 125 if unwell else 70,
            "resp_rate": 26 if unwell else 15,
            "spo2": 91 if unwell else 97,
            "body_temp": 38.9 if unwell else 36.8,
        }
        readings += [
            {"metric": k, "value": v, "time": time, "seq": m * 10 + i} for i, (k, v) in enumerate(vitals.items())
        ]
    return readings


def _glucose_before_a_meal(minutes: int, grams: float, ago: int = 0, seq: int = 0) -> list[dict]:
    """CGM every 5 minutes at 140 mg/dL on a 0.8 U/h basal, then a meal announced with the last reading (``ago``
    minutes before the last 5); sequence numbers from ``seq``."""
    now = utc_now() - timedelta(minutes=ago)
    times = [format_time(now - timedelta(minutes=minutes - m)) for m in range(0, minutes, 5)]
    readings = [
        {"metric": "glucose", "value": 140, "unit": "mg/dL", "time": t, "seq": seq + i} for i, t in enumerate(times)
    ]
    return readings + [
        {"metric": "insulin_basal", "value": 0.8, "unit": "U/h", "time": times[0], "seq": seq + 1000},
        {"metric": "carbs", "value": grams, "unit": "g", "time": times[-1], "seq": seq + 1001},
    ]


@pytest.fixture
def server(tmp_path):
    require_service(os.path.exists(CHROMIUM), "Debian chromium at " + CHROMIUM)
    db_url = f"sqlite:///{tmp_path / 'web.db'}"
    store = SqlStore(db_url)
    store.add_user("nurse", "clinician", hash_password(PASSWORD))
    tokens = {}
    for name, _unwell in (
        ("Well Walter", False),
        ("Unwell Una", True),
        ("Hidden Hugo", True),
        ("Diabetic Dora", False),
    ):
        patient = store.add_patient(name)
        if name != "Hidden Hugo":
            store.assign(patient.patient_id, "nurse")
        tokens[name] = store.add_device(patient.patient_id, "cgm" if name == "Diabetic Dora" else "wearable")[1]
    store.close()
    port = free_port()
    env = {**os.environ, "VIGIL_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        [sys.executable, "-m", "vigil", "serve", "--db", db_url, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"

    def ingest(name: str, readings: list[dict]) -> None:
        response = httpx.post(
            f"{base}/api/v1/ingest", json={"readings": readings}, headers={"Authorization": f"Bearer {tokens[name]}"}
        )
        assert response.status_code == 202, response.text

    try:
        wait_for_port(port, timeout=30)
        ingest("Well Walter", _vitals(30, unwell=False))
        ingest("Hidden Hugo", _vitals(30, unwell=True))
        yield base, ingest
    finally:
        process.terminate()
        process.wait(15)


def _log_in(page, base: str) -> None:
    page.goto(base + "/")
    page.fill("input[name=username]", "nurse")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_clinician_sees_live_ward_and_acknowledges_an_alert(server):
    from playwright.sync_api import expect, sync_playwright

    base, ingest = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        _log_in(page, base)
        rows = page.locator("tr.patient-row")
        expect(rows).to_have_count(3)
        expect(page.locator("text=Hidden Hugo")).to_have_count(0)
        expect(rows.first).to_contain_text("Well Walter")

        ingest("Unwell Una", _vitals(30, unwell=True))  # arrives while the page is open
        expect(rows.first).to_contain_text("Unwell Una", timeout=15_000)
        expect(rows.first.locator(".news2")).to_have_class(re.compile(r"\bband-high\b"))
        alert = page.locator("li.alert[data-rule=news2_urgent]")
        expect(alert).to_be_visible()
        alert.locator("button.ack-button").click()
        expect(alert).to_contain_text("acknowledged by nurse", timeout=10_000)

        rows.first.locator("a").click()
        expect(page.locator("h1")).to_contain_text("Unwell Una")
        expect(page.locator(".chart[data-metrics=heart_rate] canvas")).to_have_count(1, timeout=10_000)
        expect(page.locator("li.recommendation")).to_contain_text("Why:")
        browser.close()


def test_patient_page_shows_glucose_forecast_band_and_recommendations_with_decisions(server):
    from playwright.sync_api import expect, sync_playwright

    base, ingest = server
    ingest("Diabetic Dora", _glucose_before_a_meal(120, grams=60))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("dialog", lambda dialog: dialog.accept("covers lunch"))
        _log_in(page, base)
        page.locator("tr.patient-row", has_text="Diabetic Dora").locator("a").click()
        panel = page.locator("#glucose-panel")
        expect(panel).to_be_visible(timeout=10_000)
        expect(panel.locator(".chart[data-glucose] canvas")).to_have_count(1)
        expect(panel.locator(".u-legend")).to_contain_text("forecast band high")
        expect(panel.locator("[data-glucose-field=forecast_summary]")).to_contain_text("Forecast in 2 h")
        expect(panel.locator("[data-glucose-field=iob_u]")).not_to_be_empty()
        expect(panel.locator(".therapy-profile")).to_contain_text("insulin sensitivity")
        bolus = panel.locator(".glucose-recommendations li", has_text="Meal bolus")
        expect(bolus).to_contain_text("pending")
        page.locator("#recommendations li", has_text="Meal bolus").locator("button[data-decision=accept]").click()
        expect(bolus).to_contain_text("accepted by nurse", timeout=10_000)
        browser.close()


def test_a_partial_news2_is_never_a_green_low_and_a_clinician_records_oxygen_on_the_patient_page(server):
    """Finding 6 of issue 12 (3 of 5 parameters showed a large green "NEWS2 0 · low") and finding 5 (no way to
    record oxygen): Well Walter's wearable sends 4 of the 5 NEWS2 vital signs (no blood pressure)."""
    from playwright.sync_api import expect, sync_playwright

    base, _ = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        _log_in(page, base)
        badge = page.locator("tr.patient-row", has_text="Well Walter").locator(".news2")
        expect(badge).to_contain_text("4 of 5")
        expect(badge).to_have_class(re.compile(r"\bpartial\b"))
        expect(badge).not_to_have_class(re.compile(r"band-low\b"))
        page.locator("tr.patient-row", has_text="Well Walter").locator("a").click()
        header = page.locator("h1 .news2")
        expect(header).to_contain_text("4 of 5 measured, partial")
        expect(page.locator(".current-inputs")).to_contain_text("Nothing recorded")
        form = page.locator("#news2-inputs-form")
        form.locator("input[name=supplemental_oxygen]").check()
        form.locator("input[name=oxygen_flow]").fill("2")
        form.locator("button[type=submit]").click()
        expect(page.locator(".current-inputs")).to_contain_text("recorded by nurse", timeout=10_000)
        expect(page.locator(".current-inputs")).to_contain_text("oxygen on, 2 L/min")
        expect(page.locator("h1 .news2")).to_contain_text("\u22652 \u00b7 4 of 5")
        browser.close()


def test_an_expired_recommendation_offers_no_decision_and_a_stale_decision_is_refused_with_its_reason(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, ingest = server
    ingest("Diabetic Dora", _glucose_before_a_meal(120, grams=60, ago=60))  # its meal bolus held until 30 min ago
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        messages: list[str] = []
        page.on("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
        _log_in(page, base)
        page.locator("tr.patient-row", has_text="Diabetic Dora").locator("a").click()
        expired = page.locator("#recommendations li", has_text="Meal bolus")
        expect(expired).to_contain_text("expired")
        expect(expired.locator("button")).to_have_count(0)
        expect(page.locator("#glucose-panel .glucose-recommendations li", has_text="Meal bolus")).to_contain_text(
            "expired"
        )

        ingest("Diabetic Dora", _glucose_before_a_meal(10, grams=40, seq=2000))  # a fresh meal: a pending bolus
        page.reload()
        fresh = page.locator("#recommendations li.status-pending", has_text="Meal bolus")
        expect(fresh).to_contain_text("expires ")
        login = {"username": "nurse", "password": PASSWORD}
        token = httpx.post(f"{base}/api/v1/auth/token", data=login).json()["access_token"]
        decision = {"decision": "reject", "version": int(fresh.get_attribute("data-version"))}
        url = f"{base}/api/v1/recommendations/{fresh.get_attribute('data-recommendation-id')}/decision"
        assert httpx.post(url, json=decision, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        fresh.locator("button[data-decision=accept]").click()  # decided elsewhere since this page showed it
        expect(page.locator("#recommendations li.status-rejected", has_text="Meal bolus")).to_contain_text(
            "rejected by nurse", timeout=10_000
        )
        assert any("409" in m and "already rejected" in m for m in messages), messages

        patients = httpx.get(f"{base}/api/v1/patients", headers={"Authorization": f"Bearer {token}"}).json()
        dora = next(p["patient_id"] for p in patients if p["name"] == "Diabetic Dora")
        soon = utc_now() + timedelta(seconds=8)
        store = SqlStore(f"sqlite:///{tmp_path / 'web.db'}")
        draft = RecommendationDraft(
            dora, RecommendationKind.CORRECTION_BOLUS, utc_now(), "Correction bolus 1.00 U", "a test", valid_until=soon
        )
        store.add_recommendation(draft)
        store.close()
        page.reload()
        lapsing = page.locator("#recommendations li", has_text="Correction bolus 1.00 U")
        expect(lapsing.locator("button[data-decision=accept]")).to_have_count(1)
        expect(lapsing.locator("button")).to_have_count(0, timeout=20_000)  # gone once valid_until passes
        expect(lapsing).to_contain_text("expired")
        browser.close()
