"""TikAPI's HTTP boundary: how its answers map into the error tree, and its provider declaration.

Request shapes follow the official client (PyPI `tikapi` 3.2.2, see
`shared/reference/tikapi-endpoints.md`): `X-API-KEY` on every request, `X-ACCOUNT-KEY` on
`/user/*` and `/creator/*`, GET parameters in the query string, POST parameters as a JSON body,
only declared parameters sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    SessionExpired,
)
from activities.http import Reply
from activities.provider import Provider
from activities.ratelimit import parse_retry_after
from activities.redact import redact
from activities.registry import ActionContext

__all__ = ["CHECK_PAGES", "PAGE_SIZE", "PROVIDER", "classify"]

NAME = "tikapi"

#: TikTok codes that say "TikTok hiccuped", not "your request is wrong": worth a retry even though
#: TikAPI sends them as 403 (10000 captcha, 10101 TikTok server error, 10111 TikTok network error).
TRANSIENT_TIKTOK_CODES = frozenset({10000, 10101, 10111})
#: TikAPI's HTTP 428 body carries TikTok code 8: the account's session is gone.
SESSION_EXPIRED_CODE = 8

_CREDITS = re.compile(r"credit|subscription|plan\b|upgrade|payment|balance", re.IGNORECASE)
_RATE_LIMIT = re.compile(r"rate.?limit", re.IGNORECASE)
_API_KEY = re.compile(r"api.?key", re.IGNORECASE)
GONE = re.compile(r"not exist|doesn't exist|does not exist|not found|deleted", re.IGNORECASE)
#: TikTok code for "entity doesn't exist" (seed 004): a comment that is already gone.
ENTITY_GONE_CODE = 10224

#: How many pages of replies/comments/messages a side effect reads to find its own earlier work.
CHECK_PAGES = 5
PAGE_SIZE = 30


def classify(reply: Reply, account: str) -> ProviderError | None:
    """Map a TikAPI answer to the error tree (None for a success).

    The mapping follows the design's error table and TikAPI's REST reference: 428 or TikTok code 8
    → `SessionExpired`; 401 → `CredentialsRejected`; 403 about credits or the subscription →
    `CredentialsRejected`; 403 with a TikTok `statusCode` → `ProviderRejected(code)`, except the
    transient TikTok codes (captcha, TikTok server/network error) → `ProviderUnavailable`; 429 →
    `RateLimited` (with `Retry-After`/`X-RateLimit-Reset` when sent); other 4xx →
    `ProviderRejected`; 5xx → `ProviderUnavailable`. A 2xx whose body says `status: "error"` is
    classified by its code and message the same way.
    """
    body = reply.body if isinstance(reply.body, dict) else {}
    status = reply.status
    if status < 400 and body.get("status") != "error":
        return None
    message = _error_message(body, status)
    code = _tiktok_code(body)
    facts: dict[str, Any] = {"provider": NAME, "status": status, "code": code, "account": account}
    if status == 428 or code == SESSION_EXPIRED_CODE:
        return SessionExpired(message, **facts)
    # Rate limit before the key check: TikAPI's limit message names the key ("API Key Rate-Limit").
    if status == 429 or (status < 400 and _RATE_LIMIT.search(message)):
        return RateLimited(message, retry_after=parse_retry_after(reply.headers), **facts)
    if status == 401 or (status < 400 and _API_KEY.search(message)):
        return CredentialsRejected(message, **facts)
    if status >= 500 or code in TRANSIENT_TIKTOK_CODES:
        return ProviderUnavailable(message, **facts)
    if status == 403 and code is None and _CREDITS.search(message):
        return CredentialsRejected(message, **facts)
    return ProviderRejected(message, **facts)


def _error_message(body: Mapping[str, Any], status: int) -> str:
    message = body.get("message")
    text = message if isinstance(message, str) and message else f"HTTP {status}"
    fields = body.get("fields")
    if isinstance(fields, dict) and fields:
        text += " (" + "; ".join(f"{k}: {v}" for k, v in fields.items()) + ")"
    # Provider text ends up in logs and workflow history: strip anything key-like, bound its size.
    return redact(text)[:500]


def _tiktok_code(body: Mapping[str, Any]) -> int | None:
    code = body.get("statusCode")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code or None
    if isinstance(code, str) and code.isdigit():
        return int(code) or None
    return None


def _needs_account_key(path: str) -> bool:
    return path.startswith(("/user/", "/creator/"))


def _auth(ctx: ActionContext, path: str, credential: Mapping[str, str]) -> dict[str, str]:
    headers = {"X-API-KEY": credential["api_key"]}
    if _needs_account_key(path):
        headers["X-ACCOUNT-KEY"] = credential["account_key"]
    return headers


def _needs(path: str) -> tuple[str, ...]:
    return ("api_key", "account_key") if _needs_account_key(path) else ("api_key",)


#: TikAPI as a provider: `X-API-KEY` always, `X-ACCOUNT-KEY` on `/user/*` and `/creator/*`.
PROVIDER = Provider(
    name=NAME,
    base_url="https://api.tikapi.io",
    fields=("api_key", "account_key", "client_id"),
    required=("api_key",),
    classify=classify,
    auth=_auth,
    needs=_needs,
    reauth=("account_key",),
    order=10,
)
