"""How TikTok says no: the API's error object, the token endpoint's flat error, a refused chunk.

The API answers `{"data": …, "error": {"code", "message", "log_id"}}` (code `ok` on success), the
token endpoint a flat `{"error", "error_description", "log_id"}`, both sometimes with HTTP 200;
the upload URL answers a chunk `PUT` with 206 while incomplete and 201 at the end.
"""

from __future__ import annotations

from typing import Any

from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    TokenExpired,
)
from activities.http import Reply
from activities.provider import obj
from activities.ratelimit import parse_retry_after

__all__ = ["NAME", "api_message", "classify", "classify_oauth", "classify_upload"]

NAME = "tiktok"

#: How long a 429 without a reset header waits: one of TikTok's one-minute sliding windows
#: (TikTok's error-handling and rate-limit docs name no reset header).
WINDOW_S = 61.0

#: What to do about the refusals of an app TikTok has not audited yet (Direct Post API
#: developer guidelines), by error code.
UNAUDITED = {
    "unaudited_client_can_only_post_to_private_accounts": (
        "the TikTok app is not audited yet, so it may only post SELF_ONLY, from accounts set to "
        "private at the time of posting: set the account to private and post with privacy_level "
        "SELF_ONLY, or have the app audited by TikTok to post publicly"
    ),
    "reached_active_user_cap": (
        "the TikTok app is not audited yet, so at most 5 creators may post through it in 24 h: "
        "wait a day, or have the app audited by TikTok"
    ),
}


def api_message(error: dict[str, Any], status: int) -> str:
    """The API error's message with its `log_id` (what TikTok support asks for)."""
    message = str(error.get("message") or f"HTTP {status}")
    log_id = error.get("log_id")
    return f"{message} (log_id {log_id})" if log_id else message


def classify(reply: Reply, account: str) -> ProviderError | None:
    """Map a TikTok API answer (`{"data", "error": {"code", "message", "log_id"}}`) to an error."""
    body = obj(reply.body)
    error = obj(body.get("error"))
    code = str(error.get("code") or "")
    if reply.status < 400 and code in ("", "ok"):
        return None
    message = api_message(error, reply.status)
    where: dict[str, Any] = {"provider": NAME, "status": reply.status, "code": code or None}
    if code == "access_token_invalid":
        return TokenExpired(message, **where)
    if code in ("scope_not_authorized", "scope_permission_missed"):
        return CredentialsRejected(
            f"{message}; the account was authorized without the scope this call needs: "
            "re-authorize it with that scope",
            **where,
        )
    if code == "rate_limit_exceeded" or reply.status == 429:
        return RateLimited(message, retry_after=_retry_after(reply), **where)
    if code in UNAUDITED:
        return ProviderRejected(f"{message}; {UNAUDITED[code]}", **where)
    if code == "internal_error" or reply.status >= 500:
        return ProviderUnavailable(message, **where)
    if reply.status == 401:
        return CredentialsRejected(message, **where)
    # invalid_params, privacy_level_option_mismatch, spam_risk_*, invalid_publish_id,
    # url_ownership_unverified, reached_active_user_cap, …: the request itself was refused.
    return ProviderRejected(message, **where)


def _retry_after(reply: Reply) -> float:
    """A reset header if some proxy sent one, else a whole documented window."""
    seconds = parse_retry_after(reply.headers)
    return WINDOW_S if seconds is None else seconds


def classify_oauth(reply: Reply, account: str) -> ProviderError | None:
    """Map a token endpoint answer (flat `{"error", "error_description", "log_id"}`) to an error."""
    body = obj(reply.body)
    if isinstance(body.get("error"), dict):
        return classify(reply, account)
    code = str(body.get("error") or "")
    if reply.status < 400 and not code:
        if body.get("access_token"):
            return None
        return ProviderUnavailable(
            "the token endpoint answered without an access_token", provider=NAME, status=reply.status
        )
    message = str(body.get("error_description") or code or f"HTTP {reply.status}")
    if body.get("log_id"):
        message += f" (log_id {body['log_id']})"
    where: dict[str, Any] = {"provider": NAME, "status": reply.status, "code": code or None}
    if reply.status >= 500:
        return ProviderUnavailable(message, **where)
    if reply.status == 429 or code == "rate_limit_exceeded":
        return RateLimited(message, retry_after=parse_retry_after(reply.headers), **where)
    if code == "invalid_client":
        return CredentialsRejected(
            f"{message}; check the app's client_key and client_secret in the credential", **where
        )
    # invalid_grant (expired, revoked or already used code/refresh token), invalid_request, …
    return ProviderRejected(message, **where)


def classify_upload(reply: Reply, account: str) -> ProviderError | None:
    """Map the answer to one chunk `PUT` (206 while incomplete, 201 at the end) to an error."""
    if reply.status < 400:
        return None
    body = obj(reply.body)
    error = obj(body.get("error"))
    message = f"chunk upload refused: {api_message(error, reply.status)}"
    where: dict[str, Any] = {"provider": NAME, "status": reply.status, "code": error.get("code")}
    if reply.status == 429:
        return RateLimited(message, retry_after=_retry_after(reply), **where)
    if reply.status >= 500:
        return ProviderUnavailable(message, **where)
    return ProviderRejected(message, **where)
