// Vigil dashboard: live refresh over server-sent events, charts with uPlot, alert and recommendation actions.
"use strict";

function startLiveUpdates() {
  const page = document.querySelector("[data-live]");
  if (!page || !window.EventSource) return;
  const indicator = document.getElementById("live-indicator");
  const source = new EventSource(page.dataset.live);
  source.addEventListener("ward", () => {
    document.body.dispatchEvent(new CustomEvent("ward-changed"));
    if (document.getElementById("patient-page")) drawCharts();
  });
  source.onopen = () => indicator && indicator.classList.remove("offline");
  source.onerror = () => indicator && indicator.classList.add("offline");
}

function csrfToken() {
  const cookie = document.cookie.split("; ").find(c => c.startsWith("vigil_csrf="));
  return cookie ? decodeURIComponent(cookie.slice("vigil_csrf=".length)) : "";
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrfToken()},
    body: body ? JSON.stringify(body) : null,
  });
  if (!response.ok) alert("Failed: " + (await response.text()));
  document.body.dispatchEvent(new CustomEvent("ward-changed"));
}

function handleActions(event) {
  const ack = event.target.closest("[data-ack]");
  if (ack) return postJson(`/api/v1/alerts/${ack.dataset.ack}/ack`);
  const decide = event.target.closest("[data-decide]");
  if (decide) {
    const note = prompt(`Note for ${decide.dataset.decision} (optional):`) || null;
    return postJson(`/api/v1/recommendations/${decide.dataset.decide}/decision`, {decision: decide.dataset.decision, note});
  }
}

const SERIES_COLOURS = ["#c0392b", "#2471a3", "#7d3c98", "#117a65"];
const charts = new Map();

function toSeries(readings, metrics) {
  const times = [...new Set(readings.map(r => r.time))].sort();
  const index = new Map(times.map((t, i) => [t, i]));
  const columns = metrics.map(() => new Array(times.length).fill(null));
  for (const r of readings) {
    const m = metrics.indexOf(r.metric);
    if (m >= 0 && r.quality === "ok") columns[m][index.get(r.time)] = r.value;
  }
  return [times.map(t => Date.parse(t) / 1000), ...columns];
}

async function chartData(element, patientId, start) {
  if (element.dataset.risk) {
    const risk = await (await fetch(`/api/v1/patients/${patientId}/risk?hours=24`)).json();
    if (element.dataset.risk === "sepsis") {
      const history = risk.sepsis.history;
      return {labels: ["sepsis risk %"], data: [history.map(h => Date.parse(h.time) / 1000), history.map(h => 100 * h.value)]};
    }
    return {labels: ["NEWS2"], data: [risk.history.map(h => Date.parse(h.time) / 1000), risk.history.map(h => h.value)]};
  }
  const metrics = element.dataset.metrics.split(",");
  const readings = [];
  for (const metric of metrics) {
    const url = `/api/v1/patients/${patientId}/readings?metric=${metric}&start=${encodeURIComponent(start)}`;
    readings.push(...(await (await fetch(url)).json()));
  }
  return {labels: metrics, data: toSeries(readings, metrics)};
}

async function drawCharts() {
  const page = document.getElementById("patient-page");
  if (!page || !window.uPlot) return;
  const start = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  for (const element of page.querySelectorAll(".chart")) {
    const {labels, data} = await chartData(element, page.dataset.patientId, start);
    element.classList.toggle("empty", data[0].length === 0);
    if (charts.has(element)) { charts.get(element).setData(data); continue; }
    const options = {
      width: Math.max(element.clientWidth, 320), height: 180,
      series: [{}, ...labels.map((label, i) => ({label, stroke: SERIES_COLOURS[i], spanGaps: false, points: {size: 3}}))],
      axes: [{}, {size: 50}],
    };
    charts.set(element, new uPlot(options, data, element));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.body.addEventListener("click", handleActions);
  document.body.addEventListener("htmx:configRequest", event => { event.detail.headers["X-CSRF-Token"] = csrfToken(); });
  startLiveUpdates();
  drawCharts();
});
