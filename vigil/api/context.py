"""What every request handler needs: the store, the ingest path and the session secret."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from vigil.config import Settings
from vigil.ingest.service import IngestService
from vigil.pipeline import Pipeline
from vigil.security.crypto import load_store_keys
from vigil.security.ratelimit import RateLimits
from vigil.store import SqlStore


@dataclass
class AppContext:
    settings: Settings
    store: SqlStore
    pipeline: Pipeline
    ingest: IngestService
    session_secret: str
    tls: bool = False
    secure_cookies: bool = False  # set when served over TLS (or behind a TLS proxy); off for http://127.0.0.1 dev
    rate_limits: RateLimits = field(default_factory=RateLimits)

    @classmethod
    def build(
        cls, settings: Settings, store: SqlStore | None = None, tls: bool = False, secure_cookies: bool = False
    ) -> AppContext:
        store = store or SqlStore(settings.db_url, load_store_keys(settings))
        pipeline = Pipeline(store, renotify=settings.renotify)
        return cls(
            settings=settings,
            store=store,
            pipeline=pipeline,
            ingest=IngestService(store, pipeline.process),
            session_secret=settings.secret("session.key"),
            tls=tls,
            secure_cookies=secure_cookies or tls,
            rate_limits=RateLimits.from_env(),
        )


def context(request: Request) -> AppContext:
    return request.app.state.ctx
