"""Cross-site request forgery protection for the cookie-authenticated dashboard: double-submit tokens.

A random token lives in a SameSite=Strict cookie that page scripts can read; every state-changing
request authenticated by the session cookie must repeat it in a form field or a header. Another
site can make the browser send the cookie (SameSite aside) but cannot read it to repeat it.
"""

from __future__ import annotations

import hmac
import secrets

CSRF_COOKIE = "vigil_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(cookie: str | None, submitted: str | None) -> bool:
    if not (cookie and submitted):
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())
