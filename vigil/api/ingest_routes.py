"""POST /api/v1/ingest: device readings over HTTP, answered 202 only after they are stored."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from vigil.api.context import AppContext, context
from vigil.ingest.service import MAX_BODY_BYTES, BatchShapeError

router = APIRouter()


def _error(status: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it exceeds the limit (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/api/v1/ingest",
    status_code=202,
    tags=["devices"],
    summary="Submit a batch of device readings",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {
                "type": "object", "required": ["readings"],
                "properties": {"readings": {"type": "array", "items": {
                    "type": "object", "required": ["metric", "value", "time"],
                    "properties": {
                        "metric": {"type": "string"}, "value": {"type": "number"}, "unit": {"type": "string"},
                        "time": {"type": "string", "format": "date-time"}, "seq": {"type": "integer", "minimum": 0},
                    }}}},
            }}},
        }
    },
)
async def ingest(request: Request, ctx: AppContext = Depends(context)) -> JSONResponse:
    """Readings are validated one by one; the answer lists accepted, duplicate and rejected ones."""
    token = _bearer(request)
    device = await run_in_threadpool(ctx.ingest.authenticate, token) if token else None
    if device is None:
        return _error(401, "invalid or revoked device token", **{"WWW-Authenticate": "Bearer"})
    raw = await _read_limited(request, MAX_BODY_BYTES)
    if raw is None:
        return _error(413, f"body: larger than {MAX_BODY_BYTES // (1024 * 1024)} MB; send smaller batches")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return _error(400, f"body: not valid JSON ({error})")
    try:
        result = await run_in_threadpool(ctx.ingest.ingest, device, body)
    except BatchShapeError as error:
        return _error(422, str(error))
    return JSONResponse(result.as_json(), status_code=202)
