"""What every request handler needs: the store, the ingest path and the session secret."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from vigil.config import Settings
from vigil.ingest.service import IngestService
from vigil.pipeline import Pipeline
from vigil.store import SqlStore


@dataclass
class AppContext:
    settings: Settings
    store: SqlStore
    pipeline: Pipeline
    ingest: IngestService
    session_secret: str
    secure_cookies: bool = False

    @classmethod
    def build(cls, settings: Settings, store: SqlStore | None = None) -> "AppContext":
        store = store or SqlStore(settings.db_url)
        pipeline = Pipeline(store)
        return cls(
            settings=settings,
            store=store,
            pipeline=pipeline,
            ingest=IngestService(store, pipeline.process),
            session_secret=settings.secret("session.key"),
        )


def context(request: Request) -> AppContext:
    return request.app.state.ctx
