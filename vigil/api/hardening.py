"""What every request passes through first: a request id, rate limits, a body size limit, security headers,
and a generic answer (never a stack trace) when something fails inside; the one answer to an error of the tree
(vigil.errors); validation errors that do not echo what was sent."""

from __future__ import annotations

import hashlib
import logging
import secrets

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from vigil.api.gates import SESSION_COOKIE, bearer_token
from vigil.errors import RateLimited, TooLarge, Unavailable, VigilError
from vigil.ingest.service import MAX_BODY_BYTES
from vigil.security.audit import RequestOrigin, current_origin
from vigil.security.ratelimit import RateLimiter, RateLimits

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"
LOGIN_PATHS = ("/api/v1/auth/token", "/login")
UNLIMITED_PREFIXES = ("/static/", "/healthz")
INGEST_BODY_LIMIT = MAX_BODY_BYTES
BODY_LIMIT = 64 * 1024
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}
HSTS = "max-age=31536000; includeSubDomains"


def body_limit(path: str) -> int:
    return INGEST_BODY_LIMIT if path == INGEST_PATH else BODY_LIMIT


def _too_large(limit: int) -> str:
    return f"body: larger than {limit // 1024} KB; send less at a time"


class RequestGuard:
    """Pure ASGI middleware (cheap on the ingest hot path) guarding every HTTP request."""

    def __init__(self, app, limits: RateLimits, tls: bool):
        self.app = app
        self.tls = tls
        self.buckets = {name: RateLimiter(getattr(limits, name)) for name in limits.__dataclass_fields__}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        headers = dict(_decoded(scope["headers"]))
        address = scope["client"][0] if scope.get("client") else None
        send = self._with_headers(send, request_id)
        retry_after = self._rate_limited(scope, headers, address)
        if retry_after:
            return await error_response(RateLimited("too many requests; slow down", retry_after))(scope, receive, send)
        limit = body_limit(scope["path"])
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await error_response(TooLarge(_too_large(limit)))(scope, receive, send)
        token = current_origin.set(RequestOrigin(request_id, scope["method"], scope["path"], address))
        try:
            await self.app(scope, _limited(receive, limit), send)
        finally:
            current_origin.reset(token)

    def _rate_limited(self, scope: Scope, headers: dict[str, str], address: str | None) -> float:
        """Seconds to wait if any bucket this request draws on is empty, else 0."""
        path = scope["path"]
        if path.startswith(UNLIMITED_PREFIXES):
            return 0.0
        if path in LOGIN_PATHS and scope["method"] == "POST":
            return self.buckets["login_per_address"].wait(address or "")
        kind = "ingest" if path == INGEST_PATH else "api"
        waits = [self.buckets[f"{kind}_per_address"].wait(address or "")]
        credential = _credential(headers)
        if credential:
            waits.append(self.buckets[f"{kind}_per_token"].wait(credential))
        return max(waits)

    def _with_headers(self, send: Send, request_id: str) -> Send:
        extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        extra.append((b"x-request-id", request_id.encode()))
        if self.tls:
            extra.append((b"strict-transport-security", HSTS.encode()))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in extra if h[0] not in present]
            await send(message)

        return sending


def _decoded(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in raw]


def _credential(headers: dict[str, str]) -> str | None:
    """A short hash of the bearer token or session cookie, so buckets never hold a credential itself."""
    secret = bearer_token(headers.get("authorization", "")) or next(
        (c for c in headers.get("cookie", "").split("; ") if c.startswith(SESSION_COOKIE + "=")), None
    )
    return hashlib.sha256(secret.encode()).hexdigest()[:24] if secret else None


def _limited(receive: Receive, limit: int) -> Receive:
    """The body as it streams in, until it passes the limit: then a 413 for whoever is reading it (an
    HTTPException, which FastAPI lets through its body parsing where it would turn any other error into a 400)."""
    received = 0

    async def receiving() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                error = TooLarge(_too_large(limit))
                raise HTTPException(error.http_status, str(error))
        return message

    return receiving


def error_response(error: VigilError) -> JSONResponse:
    """How the API answers an error of the tree: its HTTP status, `{"detail": message}` and its headers."""
    return JSONResponse({"detail": str(error)}, status_code=error.http_status, headers=error.headers or None)


async def vigil_error(request: Request, error: VigilError) -> JSONResponse:
    """The exception handler for the whole tree: a refusal (4xx) is answered with its message; a failure
    inside (5xx: keys, configuration) like any internal error, since its message is for the log only; a 503 to retry
    later (the store unavailable) is answered with its message and Retry-After."""
    if isinstance(error, Unavailable):
        log.warning("%s %s answered 503: %s (%s)", request.method, request.url.path, error, error.__cause__)
        return error_response(error)
    if error.http_status >= 500:
        return await internal_error(request, error)
    return error_response(error)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """Any unhandled error: the client gets a generic answer and the request id; the log gets the traceback."""
    request_id = getattr(request.state, "request_id", "-")
    log.error("request %s %s %s failed", request_id, request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal error"}, status_code=500, headers={"X-Request-ID": request_id})


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each field at fault and why, without echoing the values sent (a password may be one of them)."""
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)
