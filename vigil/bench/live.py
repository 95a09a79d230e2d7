"""The live path under a ward's normal load: ingest-to-alert latency and the memory of `vigil serve` and `vigil process`
over a soak, with thousands of patients sending at their devices' usual rates in real time."""

from __future__ import annotations

import heapq
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from vigil.api.context import AppContext
from vigil.bench.ingest import VITALS, own_schema
from vigil.config import load_settings
from vigil.domain import AlertRule
from vigil.ports import free_port, wait_for_port
from vigil.timeutil import format_time, utc_now

WEARABLE_SECONDS = 60  # a wearable sends its four vitals once a minute
CGM_SECONDS = 300  # a CGM sends a glucose reading every five minutes
NORMAL_GLUCOSE, URGENT_LOW_GLUCOSE = 110.0, 45.0  # below 54 mg/dL is an emergency on the first reading
POLL_SECONDS = 0.025
MEMORY_SAMPLE_SECONDS = 5.0


@dataclass(frozen=True)
class LivePatient:
    """One simulated patient's devices: a wearable, and for some a CGM that reads an urgent low once."""

    wearable: str  # device token
    cgm: str | None = None
    low_after: float | None = None  # seconds into the run at which the CGM sends the low


def _post(client: httpx.Client, token: str, readings: list[dict]) -> None:
    response = client.post("/api/v1/ingest", json={"readings": readings}, headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 202:
        raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:200]}")


def _events(patients: list[LivePatient], seconds: float, seed: int) -> list[tuple[float, int, str]]:
    """(offset, patient index, what) of every send in the run: each device at its own rate from a random phase."""
    rng = random.Random(seed)
    events = []
    for n, patient in enumerate(patients):
        phase = rng.uniform(0, min(WEARABLE_SECONDS, seconds))  # every device sends at least once
        events += [(phase + k * WEARABLE_SECONDS, n, "vitals") for k in range(int((seconds - phase) // 60) + 1)]
        if patient.cgm:
            events += [(phase + k * CGM_SECONDS, n, "glucose") for k in range(int((seconds - phase) // 300) + 1)]
        if patient.low_after is not None:
            events.append((patient.low_after, n, "low"))
    heapq.heapify(events)
    return events


def _readings(what: str, seq: int) -> list[dict]:
    now = format_time(utc_now())
    if what == "vitals":
        return [{"metric": m, "value": v, "time": now, "seq": seq + i} for i, (m, v) in enumerate(VITALS.items())]
    glucose = URGENT_LOW_GLUCOSE if what == "low" else NORMAL_GLUCOSE
    return [{"metric": "glucose", "value": glucose, "time": now, "seq": seq}]


def run_live_client(url: str, patients: list[LivePatient], start_at: float, seconds: float, seed: int) -> dict:
    """One client process sending for its patients on schedule until ``seconds`` after ``start_at`` (wall clock);
    the wall-clock time each low was acknowledged, request latencies and how far behind schedule it fell."""
    events = _events(patients, seconds, seed)
    acknowledged_lows: dict[int, float] = {}
    latencies, lag, seq, sent = [], 0.0, 0, 0
    with httpx.Client(base_url=url, timeout=30) as client:
        while events:
            offset, n, what = heapq.heappop(events)
            wait = start_at + offset - time.time()
            if wait > 0:
                time.sleep(wait)
            lag = max(lag, -wait)
            patient = patients[n]
            t0 = time.perf_counter()
            readings = _readings(what, seq)
            _post(client, patient.wearable if what == "vitals" else patient.cgm, readings)
            latencies.append(time.perf_counter() - t0)
            sent += len(readings)
            seq += 4
            if what == "low":
                acknowledged_lows[n] = time.time()
    return {
        "lows_acknowledged": acknowledged_lows,
        "latencies": latencies,
        "readings": sent,
        "max_behind_schedule_s": lag,
    }


def _register(ctx: AppContext, patients: int, lows: int, seconds: float, seed: int) -> tuple[list[LivePatient], list]:
    """Patients with a wearable each; the first ``lows`` also have a CGM that reads an urgent low once, at times
    spread over the run after its first minute (its first quarter, if shorter). Returns them and the low patients' ids, in order."""
    rng = random.Random(seed)
    registered, low_ids = [], []
    for n in range(patients):
        patient = ctx.store.add_patient(f"live {n}")
        _, wearable = ctx.store.add_device(patient.patient_id, "wearable")
        if n < lows:
            _, cgm = ctx.store.add_device(patient.patient_id, "cgm")
            registered.append(
                LivePatient(wearable, cgm, rng.uniform(min(60, seconds / 4), seconds - min(30, seconds / 4)))
            )
            low_ids.append(patient.patient_id)
        else:
            registered.append(LivePatient(wearable))
    return registered, low_ids


def _rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _memory_summary(samples: list[tuple[float, float]]) -> dict:
    """First and last minute's average resident memory after warm-up (the first minute), the peak, and the slope."""
    warm = [(t, mb) for t, mb in samples if t >= 60] or samples
    first = [mb for t, mb in warm if t < warm[0][0] + 60]
    last = [mb for t, mb in warm if t > warm[-1][0] - 60]
    slope = statistics.linear_regression([t for t, _ in warm], [mb for _, mb in warm]).slope if len(warm) > 2 else 0.0
    return {
        "first_minute_mb": round(statistics.mean(first), 1),
        "last_minute_mb": round(statistics.mean(last), 1),
        "peak_mb": round(max(mb for _, mb in samples), 1),
        "slope_mb_per_minute": round(60 * slope, 2),
        "samples": [(round(t, 1), round(mb, 1)) for t, mb in samples],
    }


class _Watcher:
    """Polls the store for the low patients' alerts and samples the servers' memory while the clients run."""

    def __init__(self, ctx: AppContext, low_ids: list[str], pids: dict[str, int]):
        self.ctx, self.low_ids, self.pids = ctx, low_ids, pids
        self.seen: dict[str, float] = {}
        self.memory: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}

    def watch(self, sending: Callable[[], bool], started: float, tick: Callable[[], None], grace: float = 10.0) -> None:
        """Until the clients are done sending (they may fall behind their schedule) and ``grace`` seconds more."""
        next_sample, until = 0.0, float("inf")
        while time.time() < until:
            now = time.time()
            if until == float("inf") and not sending():
                until = now + grace
            if now >= next_sample:
                for name, pid in self.pids.items():
                    self.memory[name].append((now - started, _rss_mb(pid)))
                next_sample = now + MEMORY_SAMPLE_SECONDS
                tick()
            self._look()
            time.sleep(POLL_SECONDS)

    def _look(self) -> None:
        unseen = [p for p in self.low_ids if p not in self.seen]
        if unseen:
            for alert in self.ctx.store.list_alerts(unseen, history=False, limit=len(unseen) * 8):
                if alert.rule == AlertRule.GLUCOSE_LOW:
                    self.seen.setdefault(alert.patient_id, time.time())


def _vigil(env: dict, log, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vigil", *args], env=env, stdout=subprocess.DEVNULL, stderr=log)


def _stopped(server: subprocess.Popen, grace: float = 60.0) -> bool:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds; whether it stopped on its own."""
    server.terminate()
    try:
        server.wait(grace)
        return True
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        return False


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _latency_summary(acknowledged: dict[str, float], seen: dict[str, float]) -> dict:
    latencies = [seen[p] - acknowledged[p] for p in acknowledged if p in seen]
    missed = sorted(set(acknowledged) - set(seen))
    summary = {"lows": len(acknowledged), "alerted": len(latencies), "missed": len(missed)}
    if latencies:
        summary |= {
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * _percentile(latencies, 0.99), 1),
            "max_ms": round(1000 * max(latencies), 1),
        }
    return summary


def bench_live(
    patients: int = 10_000,
    minutes: float = 10.0,
    lows: int = 200,
    clients: int = 2,
    db_url: str | None = None,
    seed: int = 1,
    tick: Callable[[], None] = lambda: None,
) -> dict:
    """`vigil serve --no-process` and one `vigil process` as subprocesses; `clients` processes send for
    ``patients`` patients at their devices' normal rates for ``minutes`` in real time. Ingest-to-alert latency: from
    the 202 of a CGM's urgent low to its alert being in the store (polled every 25 ms). Memory: both servers'
    resident size every 5 s."""
    seconds = 60 * minutes
    with tempfile.TemporaryDirectory() as home, own_schema(db_url) as own_url:
        db = own_url or f"sqlite:///{Path(home) / 'live.db'}"
        ctx = AppContext.build(load_settings(db=db, home=home))
        registered, low_ids = _register(ctx, patients, lows, seconds, seed)
        env = {**os.environ, "VIGIL_HOME": home, "VIGIL_DB": db}
        port = free_port()
        with (Path(home) / "servers.log").open("wb") as log:
            servers = {
                "serve": _vigil(env, log, "serve", "--no-process", "--port", str(port)),
                "process": _vigil(env, log, "process"),
            }
            try:
                wait_for_port(port, timeout=60)
                result = _run_clients(
                    ctx, registered, low_ids, servers, f"http://127.0.0.1:{port}", clients, seconds, seed, tick
                )
                result["backlog_at_end"] = ctx.store.pending_count()
            finally:
                stops = {name: _stopped(server) for name, server in servers.items()}
            result["stopped_cleanly"] = stops
    return {
        "db": "sqlite" if db_url is None else db_url.split(":", 1)[0],
        "patients": patients,
        "minutes": minutes,
        "clients": clients,
        **result,
    }


def _run_clients(ctx, registered, low_ids, servers, url, clients, seconds, seed, tick) -> dict:
    start_at = time.time() + 5  # every client process is up before the first send
    end_at = start_at + seconds
    shares = [list(range(n, len(registered), clients)) for n in range(clients)]
    watcher = _Watcher(ctx, low_ids, {name: s.pid for name, s in servers.items()})
    with ProcessPoolExecutor(clients, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(run_live_client, url, [registered[i] for i in share], start_at, seconds, seed + n)
            for n, share in enumerate(shares)
        ]
        watcher.watch(lambda: not all(f.done() for f in futures), start_at, tick)  # and 10 s for the last lows
        runs = [future.result() for future in futures]
    acknowledged = {
        low_ids[share[n]]: at
        for share, run in zip(shares, runs, strict=True)
        for n, at in run["lows_acknowledged"].items()
    }
    requests = [latency for run in runs for latency in run["latencies"]]
    return {
        "requests": len(requests),
        "readings": sum(run["readings"] for run in runs),
        "readings_per_second": round(sum(run["readings"] for run in runs) / seconds, 1),
        "requests_per_second": round(len(requests) / seconds, 1),
        "request_p50_ms": round(1000 * statistics.median(requests), 1),
        "request_p99_ms": round(1000 * _percentile(requests, 0.99), 1),
        "max_behind_schedule_s": round(max(run["max_behind_schedule_s"] for run in runs), 2),
        "hour_boundary_crossed": int(start_at // 3600) != int(end_at // 3600),  # the hourly sepsis scoring ran
        "ingest_to_alert": _latency_summary(acknowledged, watcher.seen),
        "memory": {name: _memory_summary(samples) for name, samples in watcher.memory.items()},
    }
