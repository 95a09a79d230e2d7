"""The FastAPI application: device ingestion, the people-facing API, and the dashboard."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

import vigil
from vigil.api import ingest_routes, people_routes
from vigil.api.context import AppContext
from vigil.web import routes as web_routes

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
}


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(title="Vigil", version=vigil.__version__, description="Remote patient monitoring API.")
    app.state.ctx = ctx
    app.include_router(ingest_routes.router)
    app.include_router(people_routes.router)
    app.include_router(web_routes.router)
    app.mount("/static", StaticFiles(directory=str(web_routes.WEB_DIR / "static")), name="static")
    app.add_exception_handler(web_routes.LoginRequired, _login_required)

    @app.middleware("http")
    async def security_headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict:
        return {"status": "ok"}

    return app


async def _login_required(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith(("/fragments", "/events")):
        return JSONResponse({"detail": "login required"}, status_code=401)
    return web_routes.RedirectResponse("/login", status_code=303)
