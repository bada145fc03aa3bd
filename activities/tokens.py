"""OAuth access tokens kept fresh for every call, refreshed once per account however many ask.

TikTok's (and HighLevel's marketplace apps') access tokens live hours, their refresh tokens
months, and every refresh *rotates* the refresh token: the old one stops working the moment the
new pair is issued. So a refresh must
happen once per (provider, account), store the new pair before anyone else uses it, and every other
activity that found the token stale must pick up that new pair instead of refreshing again (which
would spend the refresh token a second time and fail with `invalid_grant`).

The flow around every call (`with_access_token`):

1. read the credential; if `expires_at` is past (or within `REFRESH_MARGIN_S`), refresh first;
2. make the call with the access token;
3. if the provider still says `TokenExpired` (revoked early, clock skew), refresh once and redo it.

A refresh takes an `asyncio.Lock` per (provider, account) kept in `Services.refresh_locks` and the
credential store's file lock (other worker processes sharing the file), re-reads the credential
under them, and refreshes only if the token it holds is still the stale one. A refresh the
provider refuses ends in `SessionExpired`: only a human re-authorizing the account can cure it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    SessionExpired,
    TokenExpired,
)
from activities.registry import ActionContext, Services

if TYPE_CHECKING:
    from activities.provider import Provider

__all__ = [
    "REFRESH_MARGIN_S",
    "Refresher",
    "expires_at",
    "fresh_credential",
    "refreshed_credential",
    "with_access_token",
]

#: Refresh this long before `expires_at`, so a token does not expire between check and use.
REFRESH_MARGIN_S = 120.0

#: Trades the stored credential for new token fields (`access_token`, `refresh_token`,
#: `expires_at`, …); raises a `ProviderError` when the provider refuses.
Refresher = Callable[[ActionContext, dict[str, str]], Awaitable[dict[str, str]]]

ResultT = TypeVar("ResultT")


def expires_at(body: Mapping[str, Any], provider: Provider) -> str:
    """When a token answer's access token expires (epoch seconds): `expires_in` is read, never assumed.

    Raises:
        ProviderUnavailable: `expires_in` is not a number of seconds.
    """
    expires_in = body.get("expires_in") or 0
    seconds = math.nan
    if isinstance(expires_in, int | float | str) and not isinstance(expires_in, bool):
        with contextlib.suppress(ValueError):
            seconds = float(expires_in)
    if not math.isfinite(seconds):
        raise provider.malformed(
            None, f"the token endpoint's expires_in {expires_in!r} is not a number of seconds"
        )
    return str(int(time.time() + seconds))


def _is_stale(
    credential: dict[str, str], margin_s: float = REFRESH_MARGIN_S, field: str = "access_token"
) -> bool:
    """True when the access token (in `field`) is missing or expires within `margin_s`."""
    if not credential.get(field):
        return True
    expires_at = credential.get("expires_at")
    if not expires_at:
        # Unknown lifetime: use it and let a 401 tell us otherwise.
        return False
    try:
        return float(expires_at) - margin_s <= time.time()
    except ValueError:
        return True


def _refresh_lock(services: Services, provider: str, account: str) -> asyncio.Lock:
    return services.refresh_locks.setdefault((provider, account), asyncio.Lock())


async def fresh_credential(
    ctx: ActionContext, provider: str, refresh: Refresher, *, field: str = "access_token"
) -> dict[str, str]:
    """The account's credential with an access token (in `field`) that is not about to expire.

    Raises:
        CredentialsRejected: No credential is stored for the account.
        SessionExpired: The token was stale and the provider refused to refresh it.
    """
    credential = ctx.services.credentials.get(provider, ctx.account)
    if not _is_stale(credential, field=field):
        return credential
    return await refreshed_credential(
        ctx, provider, refresh, stale_token=credential.get(field, ""), field=field
    )


async def refreshed_credential(
    ctx: ActionContext, provider: str, refresh: Refresher, *, stale_token: str, field: str = "access_token"
) -> dict[str, str]:
    """Replace `stale_token` with a new one, once per account however many callers ask at once.

    Args:
        ctx: The action invocation (its account is the one refreshed).
        provider: Provider key in the credential store.
        refresh: Performs the provider's refresh request.
        stale_token: The access token the caller found stale or saw rejected; if the stored
            token differs and is fresh, another task already refreshed and that token is returned.
        field: The credential field holding the access token (HighLevel keeps it in `token`).

    Raises:
        SessionExpired: The provider refused the refresh (revoked or expired refresh token).
        CredentialsRejected: The app's own client credentials were refused or are missing.
        ProviderUnavailable, RateLimited: The refresh could not be tried now; worth retrying.
    """
    store = ctx.services.credentials
    # One refresh per account in this process (the asyncio lock), then across processes sharing
    # the credentials file (the store's file lock): whoever comes second re-reads the new pair.
    async with _refresh_lock(ctx.services, provider, ctx.account), store.exclusive():
        credential = store.get(provider, ctx.account)
        if credential.get(field) != stale_token and not _is_stale(credential, field=field):
            return credential
        used_refresh_token = credential.get("refresh_token", "")
        try:
            fields = await refresh(ctx, credential)
        except (ProviderUnavailable, RateLimited, CredentialsRejected):
            raise
        except ProviderError as err:
            # Another worker process may have rotated the refresh token under us; its new pair
            # is in the shared file, and using it beats asking a human to re-authorize.
            latest = store.get(provider, ctx.account)
            if latest.get("refresh_token") != used_refresh_token and not _is_stale(latest, field=field):
                return latest
            raise SessionExpired(
                f"{provider} refused to refresh the access token of account {ctx.account!r} "
                f"({err.code or err.message}); re-authorize the account (run the {provider} OAuth "
                "authorization again and store the new tokens with `tikflow credentials set`), "
                "then resume the run",
                provider=provider,
                status=err.status,
                code=err.code,
                account=ctx.account,
            ) from None
        store.update(provider, ctx.account, fields)
        return {**credential, **fields}


async def with_access_token(
    ctx: ActionContext,
    provider: str,
    refresh: Refresher,
    call: Callable[[str], Awaitable[ResultT]],
    *,
    field: str = "access_token",
) -> ResultT:
    """Run `call(access_token)` with a fresh token, refreshing and redoing it once on `TokenExpired`.

    `field` names the credential field holding the access token (default `access_token`).

    Raises:
        SessionExpired: The refresh was refused, or the provider rejected a just-refreshed token
            (the authorization was revoked).
    """
    credential = await fresh_credential(ctx, provider, refresh, field=field)
    token = credential.get(field, "")
    try:
        return await call(token)
    except TokenExpired:
        credential = await refreshed_credential(ctx, provider, refresh, stale_token=token, field=field)
    try:
        return await call(credential[field])
    except TokenExpired as err:
        raise SessionExpired(
            f"{provider} rejected the just-refreshed access token of account {ctx.account!r}; "
            "the authorization was probably revoked: re-authorize the account, then resume the run",
            provider=provider,
            status=err.status,
            code=err.code,
            account=ctx.account,
        ) from None
