"""Who sent this? The three ways a sender proves itself, each checked in constant time.

- `tiktok`: `TikTok-Signature: t=<unix seconds>,s=<hex>`, the hex HMAC-SHA256 of `"<t>.<raw body>"`
  keyed with the app's client secret (developers.tiktok.com/doc/webhooks-verification);
- `standard`: the Standard Webhooks headers `webhook-id`, `webhook-timestamp` and
  `webhook-signature: v1,<base64>` (signed as the `standardwebhooks` package signs them);
- `token`: `Authorization: Bearer <shared token>`.

Every failure is a `Rejected` with an HTTP status and a short reason that is safe to log and to answer:
it never quotes a header value, a signature, a token or a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

__all__ = ["Rejected", "check_window", "verify_standard", "verify_tiktok", "verify_token"]

_TIKTOK_T = re.compile(r"[0-9]{1,12}")
_TIKTOK_S = re.compile(r"[0-9a-fA-F]{64}")
_WEBHOOK_ID = re.compile(r"[\x21-\x7e]{1,256}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class Rejected(Exception):
    """A request the ingress refuses: `status` is answered, `reason` is logged and answered.

    Attributes:
        status: HTTP status code.
        reason: A short snake_case reason (`bad_signature`), also the metrics label.
        detail: One safe sentence for the sender (no values from the request).
    """

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.detail = detail or reason.replace("_", " ")


def check_window(timestamp: int, now: float, window_s: float) -> None:
    """Refuse a delivery signed more than `window_s` seconds before or after `now` (replays)."""
    if timestamp < now - window_s:
        raise Rejected(401, "stale_timestamp", "the signature's timestamp is too old")
    if timestamp > now + window_s:
        raise Rejected(401, "future_timestamp", "the signature's timestamp is in the future")


def verify_tiktok(
    header: str | None, body: bytes, client_secret: str, *, now: float, window_s: float
) -> None:
    """Check a `TikTok-Signature` header against the raw body.

    Raises:
        Rejected: missing (401) or malformed (400) header, wrong signature, stale or future timestamp (401).
    """
    if header is None:
        raise Rejected(401, "missing_signature", "TikTok-Signature header missing")
    parts: dict[str, str] = {}
    for element in header.split(","):
        prefix, sep, value = element.strip().partition("=")
        if not sep or prefix in parts:
            raise Rejected(400, "malformed_signature", "TikTok-Signature is not t=<unix>,s=<hex>")
        parts[prefix] = value
    t, s = parts.get("t", ""), parts.get("s", "")
    if set(parts) != {"t", "s"} or not _TIKTOK_T.fullmatch(t) or not _TIKTOK_S.fullmatch(s):
        raise Rejected(400, "malformed_signature", "TikTok-Signature is not t=<unix>,s=<hex>")
    expected = hmac.new(client_secret.encode("utf-8"), t.encode("ascii") + b"." + body, hashlib.sha256)
    # TikTok's documented order: compare the signature first, then judge the timestamp.
    if not hmac.compare_digest(expected.hexdigest().encode("ascii"), s.lower().encode("ascii")):
        raise Rejected(401, "bad_signature", "signature does not match")
    check_window(int(t), now, window_s)


def verify_standard(
    webhook_id: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    secret: str,
    *,
    now: float,
    window_s: float,
) -> None:
    """Check Standard Webhooks headers against the raw body.

    The timestamp window is ours (configurable); the signing scheme and secret format (`whsec_…`)
    are the `standardwebhooks` package's.

    Raises:
        Rejected: missing or malformed headers, no matching `v1` signature, stale or future timestamp.
    """
    if not (webhook_id and timestamp and signature):
        raise Rejected(
            401, "missing_signature", "webhook-id, webhook-timestamp and webhook-signature required"
        )
    if not _WEBHOOK_ID.fullmatch(webhook_id) or not _TIKTOK_T.fullmatch(timestamp):
        raise Rejected(400, "malformed_signature", "webhook-id or webhook-timestamp is malformed")
    offered: list[bytes] = []
    for entry in signature.split(" "):
        version, sep, value = entry.partition(",")
        if not sep or not _BASE64.fullmatch(value):
            raise Rejected(400, "malformed_signature", "webhook-signature is not v1,<base64> …")
        if version == "v1":
            try:
                offered.append(base64.b64decode(value, validate=True))
            except binascii.Error:
                raise Rejected(400, "malformed_signature", "webhook-signature is not v1,<base64> …") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "invalid_json", "body is not UTF-8 JSON") from None
    signed_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
    expected = base64.b64decode(Webhook(secret).sign(webhook_id, signed_at, text).partition(",")[2])
    # Every offered signature is compared (no early exit), so timing tells nothing about which matched.
    matched = False
    for candidate in offered:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise Rejected(401, "bad_signature", "signature does not match")
    check_window(int(timestamp), now, window_s)


def verify_token(authorization: str | None, token: str) -> None:
    """Check `Authorization: Bearer <token>` against the route's shared token.

    Raises:
        Rejected: missing (401), not a bearer token (401) or the wrong token (401).
    """
    if authorization is None:
        raise Rejected(401, "missing_token", "Authorization: Bearer <token> required")
    scheme, _, offered = authorization.partition(" ")
    if scheme.lower() != "bearer" or not offered.strip():
        raise Rejected(401, "malformed_token", "Authorization must be Bearer <token>")
    if not hmac.compare_digest(offered.strip().encode("utf-8"), token.encode("utf-8")):
        raise Rejected(401, "bad_token", "token does not match")
