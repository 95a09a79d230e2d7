"""Rate limits: in-process token buckets, one per client address or credential, refilled continuously."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """At most `requests` in a burst, refilled at `requests` per `seconds`."""

    requests: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """'N/S': N requests per S seconds, e.g. '30/60'."""
        count, _, seconds = text.partition("/")
        try:
            rate = cls(int(count), float(seconds))
        except ValueError:
            raise ValueError(f"rate {text!r}: use N/S, e.g. 30/60 for 30 requests a minute") from None
        if rate.requests < 1 or rate.seconds <= 0:
            raise ValueError(f"rate {text!r}: N and S must be positive")
        return rate


@dataclass(frozen=True)
class RateLimits:
    """Per client address on login; per address and per credential on ingest and on everything else."""

    login_per_address: Rate = Rate(30, 60)
    ingest_per_token: Rate = Rate(6000, 60)
    ingest_per_address: Rate = Rate(30000, 60)
    api_per_token: Rate = Rate(1200, 60)
    api_per_address: Rate = Rate(2400, 60)

    @classmethod
    def from_env(cls) -> RateLimits:
        """Defaults, each overridable as VIGIL_RATE_<NAME>=N/S (e.g. VIGIL_RATE_LOGIN_PER_ADDRESS=10/60)."""
        overrides = {
            name: Rate.parse(os.environ[f"VIGIL_RATE_{name.upper()}"])
            for name in cls.__dataclass_fields__
            if f"VIGIL_RATE_{name.upper()}" in os.environ
        }
        return cls(**overrides)


class RateLimiter:
    """Token buckets by key; `wait(key)` takes a token and returns 0, or the seconds until one is free."""

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self.rate = rate
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._lock = threading.Lock()

    def wait(self, key: str) -> float:
        per_second = self.rate.requests / self.rate.seconds
        with self._lock:
            now = self._clock()
            tokens, then = self._buckets.get(key, (float(self.rate.requests), now))
            tokens = min(float(self.rate.requests), tokens + (now - then) * per_second)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return (1 - tokens) / per_second
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > self._max_keys:
                self._forget_full_buckets(now, per_second)
            return 0.0

    def _forget_full_buckets(self, now: float, per_second: float) -> None:
        """A bucket that has refilled is the same as none: drop those to bound memory."""
        full = [
            k for k, (tokens, then) in self._buckets.items() if tokens + (now - then) * per_second >= self.rate.requests
        ]
        for key in full:
            del self._buckets[key]
