"""What every request handler needs: the store, the ingest path, the stream processor and the session secret."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from vigil.config import Settings
from vigil.ingest.service import IngestService
from vigil.models.risk import default_vitals_model
from vigil.pipeline import Pipeline
from vigil.processor import Processor
from vigil.security.crypto import load_store_keys
from vigil.security.ratelimit import RateLimits
from vigil.store import SqlStore
from vigil.stream import stream_for_url


@dataclass
class AppContext:
    settings: Settings
    store: SqlStore
    processor: Processor
    ingest: IngestService
    session_secret: str
    tls: bool = False
    secure_cookies: bool = False  # set when served over TLS (or behind a TLS proxy); off for http://127.0.0.1 dev
    rate_limits: RateLimits = field(default_factory=RateLimits)

    @property
    def pipeline(self) -> Pipeline:
        """The processor's current per-patient state (replaced when its partitions change)."""
        return self.processor.pipeline

    @classmethod
    def build(
        cls, settings: Settings, store: SqlStore | None = None, tls: bool = False, secure_cookies: bool = False
    ) -> AppContext:
        """Wire the stages: ingest stores and appends to the stream; the processor (started by the commands that
        process) consumes it. Nothing is started here."""
        store = store or SqlStore(settings.db_url, load_store_keys(settings))
        stream = stream_for_url(settings.stream_url, store)
        risk_model = default_vitals_model()
        processor = Processor(store, stream, lambda: Pipeline(store, renotify=settings.renotify, risk_model=risk_model))
        return cls(
            settings=settings,
            store=store,
            processor=processor,
            ingest=IngestService(store, on_stored=stream.notify, admit=stream.admit),
            session_secret=settings.secret("session.key"),
            tls=tls,
            secure_cookies=secure_cookies or tls,
            rate_limits=RateLimits.from_env(),
        )


def context(request: Request) -> AppContext:
    return request.app.state.ctx
