"""The dashboard in headless Chromium: login, the ward list sorted by NEWS2, live updates, charts, acknowledging."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest

from tests.conftest import free_port, require_service, wait_for_port
from vigil.api.security import hash_password
from vigil.store import SqlStore
from vigil.timeutil import format_time, utc_now

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORD = "browser test password"


def _vitals(minutes: int, unwell: bool) -> list[dict]:
    now = utc_now()
    readings = []
    for m in range(minutes):
        time = format_time(now - timedelta(minutes=minutes - m))
        vitals = {"heart_rate": 125 if unwell else 70, "resp_rate": 26 if unwell else 15, "spo2": 91 if unwell else 97,
                  "body_temp": 38.9 if unwell else 36.8}
        readings += [{"metric": k, "value": v, "time": time, "seq": m * 10 + i} for i, (k, v) in enumerate(vitals.items())]
    return readings


@pytest.fixture
def server(tmp_path):
    require_service(os.path.exists(CHROMIUM), "Debian chromium at " + CHROMIUM)
    db_url = f"sqlite:///{tmp_path / 'web.db'}"
    store = SqlStore(db_url)
    store.add_user("nurse", "clinician", hash_password(PASSWORD))
    tokens = {}
    for name, unwell in (("Well Walter", False), ("Unwell Una", True), ("Hidden Hugo", True)):
        patient = store.add_patient(name)
        if name != "Hidden Hugo":
            store.assign(patient.patient_id, "nurse")
        tokens[name] = store.add_device(patient.patient_id, "wearable")[1]
    store.close()
    port = free_port()
    env = {**os.environ, "VIGIL_HOME": str(tmp_path / "home")}
    process = subprocess.Popen([sys.executable, "-m", "vigil", "serve", "--db", db_url, "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=(tmp_path / "serve.log").open("wb"))
    base = f"http://127.0.0.1:{port}"

    def ingest(name: str, readings: list[dict]) -> None:
        response = httpx.post(f"{base}/api/v1/ingest", json={"readings": readings},
                              headers={"Authorization": f"Bearer {tokens[name]}"})
        assert response.status_code == 202, response.text

    try:
        wait_for_port(port, timeout=30)
        ingest("Well Walter", _vitals(30, unwell=False))
        ingest("Hidden Hugo", _vitals(30, unwell=True))
        yield base, ingest
    finally:
        process.terminate()
        process.wait(15)


def test_clinician_sees_live_ward_and_acknowledges_an_alert(server):
    from playwright.sync_api import expect, sync_playwright

    base, ingest = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(base + "/")
        page.fill("input[name=username]", "nurse")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        rows = page.locator("tr.patient-row")
        expect(rows).to_have_count(2)
        expect(page.locator("text=Hidden Hugo")).to_have_count(0)
        expect(rows.first).to_contain_text("Well Walter")

        ingest("Unwell Una", _vitals(30, unwell=True))  # arrives while the page is open
        expect(rows.first).to_contain_text("Unwell Una", timeout=15_000)
        expect(rows.first.locator(".news2")).to_have_class("news2 band-high")
        alert = page.locator("li.alert[data-rule=news2_urgent]")
        expect(alert).to_be_visible()
        alert.locator("button.ack-button").click()
        expect(alert).to_contain_text("acknowledged by nurse", timeout=10_000)

        rows.first.locator("a").click()
        expect(page.locator("h1")).to_contain_text("Unwell Una")
        expect(page.locator(".chart[data-metrics=heart_rate] canvas")).to_have_count(1, timeout=10_000)
        expect(page.locator("li.recommendation")).to_contain_text("Why:")
        browser.close()
