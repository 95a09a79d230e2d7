"""Runs the simulated ward against Vigil: advance the clock, generate readings, deliver them, until told to stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from vigil.devices.client import ClientStats, DeviceClient
from vigil.devices.clock import SimClock
from vigil.devices.readings import DeviceKey
from vigil.devices.ward import WardSimulator


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands: simulated time reached, readings generated, not yet delivered, and client totals."""

    sim_time: datetime
    generated: int
    pending: int
    totals: ClientStats


def run_simulation(
    simulator: WardSimulator,
    clients: Mapping[DeviceKey, DeviceClient],
    clock: SimClock,
    stop_event: threading.Event,
    hours: float | None = None,
    progress: Callable[[RunProgress], None] | None = None,
    tick_seconds: float = 1.0,
    flush_seconds: float = 30.0,
) -> RunProgress:
    """Every tick: read the clock, generate the new readings, hand them to their device clients, let the
    clients send. Stops after `hours` of simulated time or when `stop_event` is set, then flushes
    (retrying for up to `flush_seconds`) and returns the final progress."""
    missing = [str(key) for key in simulator.device_keys if key not in clients]
    if missing:
        raise ValueError(f"clients: no client for device(s) {', '.join(missing)}")
    end = simulator.start + timedelta(hours=hours) if hours is not None else None
    generated = 0
    while True:
        sim_time = clock.now() if end is None else min(clock.now(), end)
        for batch in simulator.advance(sim_time):
            clients[batch.key].submit(batch.readings)
            generated += len(batch.readings)
        for client in clients.values():
            client.pump(sim_time)
        if progress:
            progress(_progress(sim_time, generated, clients))
        if (end is not None and sim_time >= end) or stop_event.wait(tick_seconds):
            break
    deadline = time.monotonic() + flush_seconds
    for client in clients.values():
        client.flush(deadline)
    final = _progress(simulator.time, generated, clients)
    if progress:
        progress(final)
    return final


def _progress(sim_time: datetime, generated: int, clients: Mapping[DeviceKey, DeviceClient]) -> RunProgress:
    return RunProgress(
        sim_time=sim_time,
        generated=generated,
        pending=sum(client.pending for client in clients.values()),
        totals=ClientStats.total(client.stats for client in clients.values()),
    )
