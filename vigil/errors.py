"""The one error tree: what crosses a stage boundary when something is refused, each error knowing its HTTP status."""

from __future__ import annotations

import math


class VigilError(Exception):
    """Something Vigil refuses or cannot do. `http_status` is how the API answers it (the one handler in
    vigil.api reads it), `code` a short machine-readable name; `field`, when given, names the input at fault
    and prefixes the message (`field: reason`)."""

    http_status = 500
    code = "internal_error"

    def __init__(self, reason: str, field: str | None = None):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers that go with the answer."""
        return {}


class InvalidInput(VigilError, ValueError):
    """A value that is not acceptable: wrong form, out of range, or naming something that does not exist."""

    http_status = 422
    code = "invalid_input"


class MalformedBody(InvalidInput):
    """A request body that cannot be read at all (not JSON)."""

    http_status = 400
    code = "malformed_body"


class Unauthorised(VigilError):
    """No valid credential: no login, or a wrong, expired, ended or revoked token."""

    http_status = 401
    code = "unauthorised"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(VigilError):
    """A known caller who may not do this (a patient may not be seen at all: that is NotFound)."""

    http_status = 403
    code = "forbidden"


class NotFound(VigilError, LookupError):
    """Nothing by that name, or nothing the caller may see: the two are answered alike."""

    http_status = 404
    code = "not_found"


class Conflict(VigilError):
    """The change does not fit the current state (e.g. a decision on a recommendation already decided)."""

    http_status = 409
    code = "conflict"


class AlreadyExists(Conflict):
    """The thing to create exists already."""

    code = "already_exists"


class TooLarge(VigilError):
    """A request body over its size limit."""

    http_status = 413
    code = "too_large"


class RetryLater(VigilError):
    """Refused for now; `retry_after` seconds until a retry may succeed (the Retry-After header)."""

    def __init__(self, reason: str, retry_after: float):
        super().__init__(reason)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(math.ceil(self.retry_after))}


class RateLimited(RetryLater):
    """Too many requests from one credential or address."""

    http_status = 429
    code = "rate_limited"


class Unavailable(RetryLater):
    """The store cannot be used just now (connection lost, locked, disk); nothing of the request was kept."""

    http_status = 503
    code = "unavailable"
