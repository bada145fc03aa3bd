"""How HighLevel says no: `{statusCode, message, error}` bodies (`message` a list on 422)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from activities.http import Reply
from activities.provider import obj
from activities.ratelimit import parse_retry_after

__all__ = ["NAME", "classify", "retry_after"]

NAME = "highlevel"
DAY_S = 86_400.0


def classify(reply: Reply, account: str) -> ProviderError | None:
    """Map a HighLevel answer to an error (None for a 2xx)."""
    if reply.status < 400:
        return None
    body = obj(reply.body)
    raw_message = body.get("message") or body.get("error") or f"HTTP {reply.status}"
    # 422 answers carry a list of validation messages.
    message = "; ".join(map(str, raw_message)) if isinstance(raw_message, list) else str(raw_message)
    where: dict[str, Any] = {"provider": NAME, "status": reply.status, "code": reply.status}
    if reply.status == 401:
        return CredentialsRejected(
            f"{message}; the location token was refused: set a valid one with "
            f"`tikflow credentials set highlevel {account} token=…`",
            **where,
        )
    if reply.status == 403:
        return CredentialsRejected(f"{message}; the token has no access to this location or scope", **where)
    if reply.status == 429:
        return RateLimited(message, retry_after=retry_after(reply.headers), **where)
    if reply.status >= 500:
        return ProviderUnavailable(message, **where)
    # 400, 404, 422: the request itself was refused.
    return ProviderRejected(message, **where)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` if sent; the rest of the UTC day when the daily quota is spent; else the burst window.

    HighLevel sends no reset header: a spent daily quota (`X-RateLimit-Daily-Remaining: 0`) is
    waited out until the day turns (a long wait, so a durable workflow timer, not retries every
    10 s); a spent burst quota for one `X-RateLimit-Interval-Milliseconds`.
    """
    seconds = parse_retry_after(headers)
    if seconds is not None:
        return seconds
    if headers.get("x-ratelimit-daily-remaining", "").strip() == "0":
        now = time.time()
        return DAY_S - now % DAY_S
    interval_ms = headers.get("x-ratelimit-interval-milliseconds")
    try:
        return float(interval_ms) / 1000 if interval_ms is not None else None
    except ValueError:
        return None
