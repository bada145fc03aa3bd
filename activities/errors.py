"""The one error tree every provider failure is translated into, at the HTTP boundary.

```
ProviderError                  provider, status, code, message, account (a credential *name*)
├── ProviderUnavailable        5xx, timeout, connection reset, malformed body   → retried with backoff
├── RateLimited                429, limit headers at zero, 503 "upstream rate limit"
│                              carries retry_after (seconds)                     → waited out
├── SessionExpired             TikAPI 428 (statusCode 8), SocialAPI invalid_token → awaiting_reauth
├── TokenExpired               TikTok 401 access_token_invalid                   → refresh, redo
├── CredentialsRejected        401 bad API key, 403 credits exhausted, missing credential → fail fast
└── ProviderRejected           400/422, 403 with a TikTok code, 404               → not retried
```

Activities never let a raw `httpx` exception escape: clients raise these, and
`to_application_error` turns them into Temporal `ApplicationError`s in exactly one place, so the
workflow and the retry policies match on the class name (`ApplicationError.type`). No error ever
carries a secret: `account` is the credential's name, and messages come from provider bodies, which
are redacted before they are stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # `tikflow validate` loads the error tree; it should not pay for importing temporalio
    from temporalio.exceptions import ApplicationError

__all__ = [
    "CredentialsRejected",
    "ProviderError",
    "ProviderRejected",
    "ProviderUnavailable",
    "RateLimited",
    "SessionExpired",
    "TokenExpired",
    "error_details",
    "to_application_error",
]

# Short waits are left to Temporal's activity retry (`next_retry_delay`); longer ones become a
# durable workflow timer so a daily quota costs one timer, not hundreds of retry attempts.
SHORT_RATE_LIMIT_WAIT_S = 60.0


class ProviderError(Exception):
    """Base of every failure a provider call can end in.

    Attributes:
        provider: Provider key (`tikapi`, `tiktok`, `highlevel`, `dumpling`, `socialapi`, `http`).
        status: HTTP status code, or None when no response arrived.
        code: The provider's own error code (TikTok `statusCode`, OAuth `error`, …), if any.
        message: A one-line human message, safe to log.
        account: The credential name involved, never the secret.
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        code: str | int | None = None,
        account: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.code = code
        self.message = message
        self.account = account

    def __str__(self) -> str:
        where = f"{self.provider}"
        if self.status is not None:
            where += f" HTTP {self.status}"
        if self.code not in (None, ""):
            where += f" code {self.code}"
        return f"{where}: {self.message}"


class ProviderUnavailable(ProviderError):
    """The provider could not answer usefully right now (5xx, timeout, garbage); worth retrying.

    Attributes:
        outcome_unknown: The request may have reached the provider and been acted on, but no
            readable answer came back (a read timeout, a dropped connection, garbage with a
            success status): a non-idempotent request must not simply be sent again.
    """

    retryable = True

    def __init__(self, message: str, *, outcome_unknown: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.outcome_unknown = outcome_unknown


class RateLimited(ProviderError):
    """The provider refused because a quota is spent; `retry_after` says when it resets.

    Attributes:
        retry_after: Seconds until the limit resets, or None when the provider did not say.
    """

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class SessionExpired(ProviderError):
    """The account's session is gone (TikAPI 428); a human must re-authorize the account."""


class TokenExpired(ProviderError):
    """An OAuth access token is no longer valid; refreshing it may cure this."""

    retryable = True


class CredentialsRejected(ProviderError):
    """The key is wrong, missing or out of credits: retrying cannot help."""


class ProviderRejected(ProviderError):
    """The provider refused the request itself (bad input, missing object): not retried."""


def error_details(err: ProviderError) -> dict[str, Any]:
    """The structured, secret-free facts of an error, as stored in Temporal failure details."""
    details: dict[str, Any] = {
        "provider": err.provider,
        "status": err.status,
        "code": err.code,
        "account": err.account,
        "message": err.message,
    }
    if isinstance(err, RateLimited):
        details["retry_after"] = err.retry_after
    return details


def to_application_error(err: ProviderError) -> ApplicationError:
    """Map a provider error to the Temporal failure the workflow and retry policies act on.

    The `type` is the class name; the first detail is `error_details(err)`. Rate limits with a
    short known reset carry `next_retry_delay` so Temporal waits exactly that long.
    """
    from datetime import timedelta

    from temporalio.exceptions import ApplicationError

    next_delay: timedelta | None = None
    if (
        isinstance(err, RateLimited)
        and err.retry_after is not None
        and err.retry_after <= SHORT_RATE_LIMIT_WAIT_S
    ):
        next_delay = timedelta(seconds=max(err.retry_after, 0.1))
    non_retryable = not err.retryable
    if isinstance(err, RateLimited) and (err.retry_after or 0) > SHORT_RATE_LIMIT_WAIT_S:
        # A long wait is the workflow's job (one durable timer), not the activity retry loop's.
        non_retryable = True
    return ApplicationError(
        str(err),
        error_details(err),
        type=type(err).__name__,
        non_retryable=non_retryable,
        next_retry_delay=next_delay,
    )
