"""The FastAPI application: device ingestion, the people-facing API, the admin API, and the dashboard."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

import vigil
from vigil.api import admin_routes, ingest_routes, news2_routes, people_routes
from vigil.api.context import AppContext
from vigil.api.hardening import RequestGuard, error_response, internal_error, validation_error, vigil_error
from vigil.errors import VigilError
from vigil.web import routes as web_routes


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(title="Vigil", version=vigil.__version__, description="Remote patient monitoring API.")
    app.state.ctx = ctx
    app.include_router(ingest_routes.router)
    app.include_router(people_routes.router)
    app.include_router(news2_routes.router)
    app.include_router(admin_routes.router)
    app.include_router(web_routes.router)
    app.mount("/static", StaticFiles(directory=str(web_routes.WEB_DIR / "static")), name="static")
    app.add_exception_handler(web_routes.LoginRequired, _login_required)
    app.add_exception_handler(VigilError, vigil_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_middleware(RequestGuard, limits=ctx.rate_limits, tls=ctx.tls)

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict:
        return {"status": "ok"}

    return app


async def _login_required(request: Request, exc: web_routes.LoginRequired) -> Response:
    if request.url.path.startswith(("/fragments", "/events")):
        return error_response(exc)
    return web_routes.RedirectResponse("/login", status_code=303)
