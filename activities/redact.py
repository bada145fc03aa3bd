"""Redaction of anything that looks like a key, token or secret, before text reaches a log or history.

Credentials never enter logs on purpose; this is the net under that rule. It catches secrets that
arrive by accident: a provider echoing a key in an error message, a URL with a token in its query,
a header dump. Two entry points: `redact(text)` for strings (error messages, provider bodies) and
`redact_secrets`, a structlog processor for the one logging pipeline.

What counts as secret-looking:

- the value after a secret-named key (`X-API-KEY: …`, `api_key=…`, `"access_token": "…"`,
  `client_secret`, `password`, `authorization`, …);
- the credential after `Bearer` / `Basic`;
- JWTs, and any long run (24+ characters) of letters, digits, `.` and `_` that mixes letters and
  digits: API keys, OAuth tokens. Pure numbers (TikTok ids, timestamps), plain words and
  hyphenated ids (workflow ids, UUIDs) are kept.
  TikTok `secUid`s look like tokens and are masked too: a cost accepted for safety.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from structlog.typing import EventDict, WrappedLogger

__all__ = ["REDACTED", "redact", "redact_secrets", "redact_value"]

REDACTED = "[REDACTED]"

_SECRET_NAME = (
    r"(?:x[-_]?api[-_]?key|x[-_]?account[-_]?key|api[-_]?key|account[-_]?key|access[-_]?token|"
    r"refresh[-_]?token|id[-_]?token|client[-_]?secret|secret|password|passwd|authorization|"
    r"token|apikey|session[-_]?id|cookie)"
)

# `name: value`, `name=value`, `"name": "value"`: the name is kept, the value goes.
_NAMED_VALUE = re.compile(
    rf"""(?P<name>["']?\b{_SECRET_NAME}\b["']?\s*[:=]\s*)(?P<quote>["']?)(?P<value>(?:Bearer\s+|Basic\s+)?[^\s"',;&}}]+)""",
    re.IGNORECASE,
)
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+(?P<value>[A-Za-z0-9._~+/=-]+)", re.IGNORECASE)
# Dots are allowed inside (OAuth tokens look like `act.…`); `-` is not, so hyphenated identifiers
# (workflow ids such as `recipe-hashtag-reply-3f9a8c7d2e`, UUIDs) stay readable in logs.
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9._])[A-Za-z0-9_][A-Za-z0-9._]{23,}(?![A-Za-z0-9_])")
# JWTs are base64url (with `-`) in three dot-separated parts; the header always starts `eyJ`.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_HAS_LETTER = re.compile(r"[A-Za-z]")
_HAS_DIGIT = re.compile(r"[0-9]")
_SECRET_KEY = re.compile(rf"^{_SECRET_NAME}$", re.IGNORECASE)


def _mask_long_token(match: re.Match[str]) -> str:
    token = match.group(0)
    if _HAS_LETTER.search(token) and _HAS_DIGIT.search(token):
        return REDACTED
    return token


def redact(text: str) -> str:
    """Return `text` with every secret-looking value replaced by `[REDACTED]`.

    Args:
        text: Any text bound for a log, an error message or workflow history.

    Returns:
        The same text, minus anything that looks like a key or token.
    """
    text = _NAMED_VALUE.sub(lambda m: f"{m.group('name')}{m.group('quote')}{REDACTED}", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    return _LONG_TOKEN.sub(_mask_long_token, text)


def redact_value(value: Any, key: str | None = None) -> Any:
    """Redact a log value of any shape: strings, and strings nested in mappings, lists and tuples.

    Args:
        value: The value to clean.
        key: The name it is stored under; a secret-looking name hides the whole value.
    """
    if key is not None and _SECRET_KEY.match(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Structlog processor: redact every value of the event (put it just before the renderer)."""
    return {key: redact_value(value, key) for key, value in event_dict.items()}
