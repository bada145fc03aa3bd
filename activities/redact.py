"""Redaction of keys, tokens and secrets, before text reaches a log, an error message or history.

Credentials never enter logs on purpose; this is the net under that rule. It catches secrets that
arrive by accident: a provider echoing a key in an error message, a webhook URL with its token in
the path, a header dump, an exception's text. Two entry points: `redact(text)` for strings (error
messages, provider bodies) and `redact_secrets`, a structlog processor for the one logging pipeline.

What is redacted, and only that (the value goes, the name stays):

- values the credential store handed out (`remember_secrets`): wherever they appear;
- the value of a secret-named field: the name's last word is `token`, `secret`, `password`,
  `authorization`, `cookie`, `signature`, `key` alone, or it ends in `api key`, `account key`,
  `private key`, `access key`, `session id`, … (`access_token`, `X-API-KEY`, `clientSecret`,
  `webhook_token`), as a structured key, `name=value`, `"name": "value"` or a header line.
  `token_count`, `access_token_field`, `idempotency_key` or a bare `key` (payload metadata,
  dictionary dumps) are not secret names, and prose such as `token: expired` keeps its word;
- URL query parameters that carry credentials (`?access_token=`, `?code=`, `?sig=`, `?key=`),
  user info (`https://user:pass@host`) and the token part of webhook URLs of known shapes (Slack
  `/services/T…/B…/…`, Discord, Microsoft Teams, Zapier, Telegram bots, IFTTT, `/hooks/<id>`);
- the credential after `Bearer` / `Basic`, JWTs, and long random-looking runs (24+ letters,
  digits, `.` and `_`, mixing letters and digits) such as API keys. Identifiers made of words
  (`refresh_token_expires_in_2`, `tiktok_publish_video_v2.py`), pure numbers (TikTok ids),
  hyphenated ids (workflow ids, UUIDs) and plain words are kept. TikTok `secUid`s look like
  tokens and are masked too: a cost accepted for safety.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from structlog.typing import EventDict, WrappedLogger

__all__ = [
    "REDACTED",
    "is_secret_name",
    "redact",
    "redact_secrets",
    "redact_value",
    "remember_secrets",
]

REDACTED = "[REDACTED]"

# A name is split into words (`X-API-KEY` → x api key, `clientSecret` → client secret); these
# decide by its last word, or its last two.
_SECRET_LAST_WORDS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "authorization",
        "auth",
        "cookie",
        "signature",
        "apikey",
        "sessionid",
        "credential",
        "credentials",
    }
)
_SECRET_LAST_PAIRS = frozenset(
    {
        ("api", "key"),
        ("account", "key"),
        ("private", "key"),
        ("access", "key"),
        ("secret", "key"),
        ("session", "id"),
        ("session", "key"),
        ("auth", "code"),
        ("webhook", "url"),
        ("hook", "url"),
    }
)
#: Names that are secret alone (a name of one word), not as the end of a longer one.
_SECRET_ALONE = frozenset({"webhook"})
#: Query parameters that carry credentials although their name alone says little.
_SECRET_QUERY = frozenset({"code", "sig", "key", "x-amz-signature", "x-amz-credential", "x-goog-signature"})

_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(name)]


def is_secret_name(name: str) -> bool:
    """Whether a field, header or parameter named `name` holds a secret (its value is redacted).

    Args:
        name: A key, header or parameter name in any case style (`access_token`, `X-API-KEY`).
    """
    words = _words(name)
    if not words:
        return False
    if len(words) == 1 and words[0] in _SECRET_ALONE:
        return True
    return words[-1] in _SECRET_LAST_WORDS or tuple(words[-2:]) in _SECRET_LAST_PAIRS


# --- values the credential store knows -------------------------------------------------------

_MIN_KNOWN_LENGTH = 8  # shorter values would mask ordinary words
_MAX_KNOWN = 1024  # rotated tokens keep arriving; the oldest are dropped past this
_known: dict[str, None] = {}
_known_lock = threading.Lock()
_known_pattern: re.Pattern[str] | None = None


def remember_secrets(values: Iterable[str]) -> None:
    """Redact these values (credential fields the store handed out) wherever they appear from now on.

    Args:
        values: Secret values; those shorter than 8 characters are ignored.
    """
    global _known_pattern
    fresh = [v for v in values if isinstance(v, str) and len(v) >= _MIN_KNOWN_LENGTH and v not in _known]
    if not fresh:
        return
    with _known_lock:
        for value in fresh:
            _known[value] = None
        while len(_known) > _MAX_KNOWN:
            del _known[next(iter(_known))]
        # Longest first, so a value containing another is masked whole.
        ordered = sorted(_known, key=len, reverse=True)
        _known_pattern = re.compile("|".join(map(re.escape, ordered)))


# --- text patterns -------------------------------------------------------------------------

_QUOTED = r"""(?P<q>["'])(?P<qvalue>(?:\\.|(?!(?P=q))[^\\\n])*)(?P=q)"""
_BARE = r"""(?P<value>(?:(?:Bearer|Basic|Token)\s+)?[^\s"',;&}\]]+)"""
# `name: value`, `name=value`, `"name": "value"`, `name='value'`: the name is kept, the value goes.
_NAMED_VALUE = re.compile(
    rf"""(?<![\w-])(?P<kq>["']?)(?P<name>[A-Za-z][\w-]*)(?P=kq)(?P<sep>\s*[:=]\s*)(?:{_QUOTED}|{_BARE})"""
)
_PLAIN_WORD = re.compile(r"[a-z]{1,12}[.!?]?")
_NOT_A_VALUE = re.compile(r"(?:(?:null|none|true|false)\Z|\{\{|\{%|\[REDACTED|\*\*\*)", re.IGNORECASE)
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+(?P<value>[A-Za-z0-9._~+/=-]+)", re.IGNORECASE)
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[\w.-]+)=(?P<value>[^&#\s\"'<>]+)")
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^\s/@:]+:[^\s/@]+@", re.IGNORECASE)
#: Webhook URLs whose path is the credential: the prefix stays, the token part goes.
_SECRET_PATHS = [
    re.compile(p)
    for p in (
        r"(?P<keep>/services/)T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+",  # Slack incoming webhook
        r"(?P<keep>/(?:triggers|workflows)/)T[A-Z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+",  # Slack workflow
        r"(?P<keep>/api/webhooks/)[0-9]+/[\w-]+",  # Discord
        r"(?P<keep>/webhookb2/)[^\s\"'<>?#]+",  # Microsoft Teams
        r"(?P<keep>/hooks/catch/)[0-9]+/[A-Za-z0-9]+",  # Zapier
        r"(?P<keep>/bot)[0-9]+:[\w-]+",  # Telegram bot API
        r"(?P<keep>/with/key/)[\w-]+",  # IFTTT
        r"(?P<keep>/hooks/)[A-Za-z0-9]{20,}",  # Mattermost, Rocket.Chat, generic `/hooks/<token>`
    )
]
# Dots are allowed inside (OAuth tokens look like `act.…`), not at the end (a sentence's full
# stop); `-` is not, so hyphenated identifiers (workflow ids such as
# `recipe-hashtag-reply-3f9a8c7d2e`, UUIDs) stay readable in logs.
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9._])[A-Za-z0-9_][A-Za-z0-9._]{22,}[A-Za-z0-9_](?![A-Za-z0-9_])")
# JWTs are base64url (with `-`) in three dot-separated parts; the header always starts `eyJ`.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_HAS_LETTER = re.compile(r"[A-Za-z]")
_HAS_DIGIT = re.compile(r"[0-9]")
# A part of a snake_case or dotted identifier: a word, perhaps with a short number (`v2`, `page2`).
_IDENTIFIER_PART = re.compile(r"[A-Za-z]{1,24}[0-9]{0,3}|[0-9]+")


def _mask_named(match: re.Match[str]) -> str:
    name, sep = match.group("name"), match.group("sep")
    quoted = match.group("q") is not None
    value = match.group("qvalue") if quoted else match.group("value")
    if not is_secret_name(name) or not value or _NOT_A_VALUE.match(value):
        return match.group(0)
    if ":" in sep and not quoted and not match.group("kq") and _PLAIN_WORD.fullmatch(value):
        # Prose ("the token: expired"), not a header or a field: no credential is one short word.
        return match.group(0)
    masked = _mask_url(value) if "://" in value else REDACTED
    head = f"{match.group('kq')}{name}{match.group('kq')}{sep}"
    return f"{head}{match.group('q')}{masked}{match.group('q')}" if quoted else f"{head}{masked}"


def _mask_url(url: str) -> str:
    """A secret URL as its origin only: `https://hooks.example.com/[REDACTED]`."""
    scheme, _, rest = url.partition("://")
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    return f"{scheme}://{host}/{REDACTED}"


def _mask_query(match: re.Match[str]) -> str:
    name = match.group("name")
    if name.lower() in _SECRET_QUERY or is_secret_name(name):
        return f"{match.group('lead')}{name}={REDACTED}"
    return match.group(0)


def _mask_long_token(match: re.Match[str]) -> str:
    token = match.group(0)
    if not (_HAS_LETTER.search(token) and _HAS_DIGIT.search(token)):
        return token
    parts = [p for p in re.split(r"[._]", token) if p]
    if len(parts) > 1 and all(_IDENTIFIER_PART.fullmatch(p) for p in parts):
        return token  # an identifier made of words: `refresh_token_expires_in_2`, `python3.11.7`
    return REDACTED


def redact(text: str) -> str:
    """Return `text` with every secret value replaced by `[REDACTED]`.

    Args:
        text: Any text bound for a log, an error message or workflow history.

    Returns:
        The same text, minus keys, tokens, and the secret parts of URLs.
    """
    pattern = _known_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    for path in _SECRET_PATHS:
        text = path.sub(lambda m: f"{m.group('keep')}{REDACTED}", text)
    text = _QUERY_PARAM.sub(_mask_query, text)
    text = _NAMED_VALUE.sub(_mask_named, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    return _LONG_TOKEN.sub(_mask_long_token, text)


def redact_value(value: Any, key: str | None = None) -> Any:
    """Redact a log value of any shape: strings, and strings nested in mappings, lists and tuples.

    Args:
        value: The value to clean.
        key: The name it is stored under; a secret name hides the whole value (a URL keeps its host).
    """
    if key is not None and value not in (None, "") and is_secret_name(key):
        if isinstance(value, str) and "://" in value:
            return _mask_url(value)
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
