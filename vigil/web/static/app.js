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
  if (!response.ok) alert(`Not recorded (${response.status}): ` + (await failureReason(response)));
  document.body.dispatchEvent(new CustomEvent("ward-changed"));
  drawCharts();
}

function news2InputsBody(form) {
  const data = new FormData(form);
  const flow = data.get("oxygen_flow");
  const body = {
    supplemental_oxygen: data.get("supplemental_oxygen") === "on",
    consciousness: data.get("consciousness"),
    spo2_scale: Number(data.get("spo2_scale")),
  };
  if (body.supplemental_oxygen && flow !== "") body.oxygen_flow = Number(flow);
  if (body.spo2_scale === 2) body.spo2_scale_reason = data.get("spo2_scale_reason");
  return body;
}

async function recordNews2Inputs(event) {
  const form = event.target.closest("[data-news2-inputs]");
  if (!form) return;
  event.preventDefault();
  await postJson(`/api/v1/patients/${form.dataset.news2Inputs}/news2-inputs`, news2InputsBody(form));
  window.location.reload();
}

async function failureReason(response) {
  const text = await response.text();
  try {
    const detail = JSON.parse(text).detail;
    return typeof detail === "string" ? detail : JSON.stringify(detail);
  } catch {
    return text;
  }
}

function handleActions(event) {
  const ack = event.target.closest("[data-ack]");
  if (ack) return postJson(`/api/v1/alerts/${ack.dataset.ack}/ack`);
  const decide = event.target.closest("[data-decide]");
  if (decide) {
    const note = prompt(`Note for ${decide.dataset.decision} (optional):`) || null;
    const body = {decision: decide.dataset.decision, version: Number(decide.dataset.version), note};
    return postJson(`/api/v1/recommendations/${decide.dataset.decide}/decision`, body);
  }
}

function retireLapsedRecommendations() {
  // A pending recommendation shown on an open page loses its buttons when its valid_until passes.
  for (const item of document.querySelectorAll("li.recommendation.status-pending[data-valid-until]")) {
    if (Date.parse(item.dataset.validUntil) > Date.now()) continue;
    item.querySelectorAll("[data-decide]").forEach(button => button.remove());
    item.classList.replace("status-pending", "status-expired");
    const validity = item.querySelector(".validity");
    if (validity) validity.textContent = "expired";
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

const GLUCOSE_SERIES = [
  {label: "glucose", stroke: "#117a65", points: {size: 3}},
  {label: "forecast", stroke: "#2471a3", dash: [6, 4], points: {show: false}},
  {label: "forecast band low", stroke: "rgba(36, 113, 163, 0.35)", points: {show: false}},
  {label: "forecast band high", stroke: "rgba(36, 113, 163, 0.35)", points: {show: false}},
];

function padded(points, key, before, after, start = null) {
  return [...Array(Math.max(before - 1, 0)).fill(null), ...(before ? [start] : []), ...points.map(p => p[key]),
          ...Array(after).fill(null)];
}

async function glucoseData(patientId) {
  const glucose = await (await fetch(`/api/v1/patients/${patientId}/glucose`)).json();
  showGlucosePanel(glucose);
  const past = glucose.cgm, ahead = glucose.forecast;
  const now = ahead.length && past.length ? past[past.length - 1].value : null;  // the forecast starts at the last reading
  return {
    series: GLUCOSE_SERIES,
    bands: [{series: [4, 3], fill: "rgba(36, 113, 163, 0.15)"}],
    data: [[...past, ...ahead].map(p => Date.parse(p.time) / 1000), padded(past, "value", 0, ahead.length),
           ...["value", "low", "high"].map(key => padded(ahead, key, past.length, 0, now))],
  };
}

function newElement(tag, className, text) {
  const made = document.createElement(tag);
  made.className = className;
  made.textContent = text;
  return made;
}

const shortTime = time => time.slice(0, 16).replace("T", " ");

function recommendationState(rec) {
  if (rec.status === "pending") return `pending: awaiting a clinician's decision, expires ${rec.valid_until.slice(11, 16)}`;
  if (rec.status === "superseded") return `superseded by #${rec.superseded_by}`;
  if (rec.status === "expired") return `expired ${shortTime(rec.valid_until)}, undecided`;
  return `${rec.status} by ${rec.decided_by}`;
}

function glucoseRecommendationItem(rec) {
  const item = newElement("li", `recommendation status-${rec.status}`, "");
  item.dataset.recommendationId = rec.recommendation_id;
  const decision = recommendationState(rec);
  item.append(newElement("span", "when", shortTime(rec.time)), newElement("strong", "", rec.action), " ",
              newElement("span", "decision", decision), newElement("div", "why", "Why: " + rec.reason));
  return item;
}

function describeProfile(p) {
  const personalised = p.personalised_at ? `, personalised ${shortTime(p.personalised_at)} UTC` : "";
  return `Settings in use: insulin sensitivity ${p.isf_mg_dl_per_u} ± ${p.isf_sd} mg/dL per U, carb ratio ` +
    `${p.carb_ratio_g_per_u} ± ${p.carb_ratio_sd} g per U, basal ${p.basal_u_per_h} ± ${p.basal_sd} U/h, target ` +
    `${p.target_mg_dl} mg/dL; started from ${p.source} (${p.total_daily_insulin_u} U a day)${personalised}.`;
}

function describeForecast(forecast) {
  const last = forecast[forecast.length - 1];
  if (!last) return "No forecast: no CGM reading in the 10 minutes before the latest.";
  const width = last.band === "patient" ? "from this patient's own forecast errors" : "fallback width";
  return `Forecast in 2 h: ${last.value.toFixed(0)} mg/dL (band ${last.low.toFixed(0)} to ${last.high.toFixed(0)}, ${width}).`;
}

function showGlucosePanel(glucose) {
  const panel = document.getElementById("glucose-panel");
  panel.hidden = !glucose.streaming;
  if (!glucose.streaming) return;
  const field = name => panel.querySelector(`[data-glucose-field=${name}]`);
  field("as_of").textContent = shortTime(glucose.as_of);
  field("iob_u").textContent = glucose.iob_u.toFixed(2);
  field("cob_g").textContent = glucose.cob_g.toFixed(0);
  field("forecast_summary").textContent = describeForecast(glucose.forecast);
  field("profile").textContent = describeProfile(glucose.profile);
  const items = glucose.recommendations.map(glucoseRecommendationItem);
  panel.querySelector(".glucose-recommendations")
    .replaceChildren(...(items.length ? items : [newElement("li", "none", "No glucose recommendations yet.")]));
}

async function chartData(element, patientId, start) {
  if (element.dataset.glucose) return glucoseData(patientId);
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
    const {labels, data, series, bands} = await chartData(element, page.dataset.patientId, start);
    element.classList.toggle("empty", data[0].length === 0);
    if (charts.has(element)) { charts.get(element).setData(data); continue; }
    const options = {
      width: Math.max(element.clientWidth, 320), height: 180,
      series: [{}, ...(series || labels.map((label, i) => ({label, stroke: SERIES_COLOURS[i], spanGaps: false, points: {size: 3}})))],
      bands: bands || [],
      axes: [{}, {size: 50}],
    };
    charts.set(element, new uPlot(options, data, element));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.body.addEventListener("click", handleActions);
  document.body.addEventListener("submit", recordNews2Inputs);
  document.body.addEventListener("htmx:configRequest", event => { event.detail.headers["X-CSRF-Token"] = csrfToken(); });
  startLiveUpdates();
  drawCharts();
  setInterval(retireLapsedRecommendations, 2000);
});
