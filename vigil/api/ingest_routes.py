"""POST /api/v1/ingest: device readings over HTTP, answered 202 only after they are stored (503 if they cannot be)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from vigil.api.context import AppContext, context
from vigil.api.gates import bearer_token
from vigil.api.schemas import IngestResponse
from vigil.errors import MalformedBody, Unauthorised, Unavailable

router = APIRouter()
STORE_RETRY_SECONDS = 5


@router.post(
    "/api/v1/ingest",
    status_code=202,
    tags=["devices"],
    summary="Submit a batch of device readings",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["readings"],
                        "properties": {
                            "readings": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["metric", "value", "time"],
                                    "properties": {
                                        "metric": {"type": "string"},
                                        "value": {"type": "number"},
                                        "unit": {"type": "string"},
                                        "time": {"type": "string", "format": "date-time"},
                                        "seq": {"type": "integer", "minimum": 0},
                                    },
                                },
                            }
                        },
                    }
                }
            },
        }
    },
)
async def ingest(request: Request, ctx: AppContext = Depends(context)) -> IngestResponse:
    """Readings are validated one by one; the answer lists accepted, duplicate and rejected ones. A body that is not
    JSON is a 400, one that is not {"readings": [...]} a 422 naming the field (BatchShapeError)."""
    token = bearer_token(request.headers.get("authorization", ""))
    device = await _unless_store_unavailable(ctx, ctx.ingest.authenticate, token) if token else None
    if device is None:
        raise Unauthorised("invalid or revoked device token")
    try:
        body = orjson.loads(await request.body())  # at most 5 MB: RequestGuard answers 413 past that
    except orjson.JSONDecodeError as error:
        raise MalformedBody(f"not valid JSON ({error})", field="body") from None
    return IngestResponse.model_validate(await _unless_store_unavailable(ctx, ctx.ingest.ingest, device, body))


async def _unless_store_unavailable(ctx: AppContext, call, *args):
    """Run a store call in the thread pool; a store that cannot be used just now is a 503 with Retry-After (the
    device keeps its batch and sends it again), not a 500."""
    try:
        return await run_in_threadpool(call, *args)
    except Exception as error:
        if ctx.store.is_unavailable(error):
            raise Unavailable(
                "the store is unavailable just now; nothing was stored, send the batch again", STORE_RETRY_SECONDS
            ) from error
        raise
