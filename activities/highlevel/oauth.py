"""HighLevel's OAuth 2 (marketplace apps) beside its static Private Integration Tokens.

A HighLevel credential holds its bearer token in `token` either way. A Private Integration Token
is just that (no `refresh_token`): it is sent as it is, and a 401 fails fast as before. A
marketplace app's credential, stored by `tikflow connect highlevel` (`exchange_code`), also holds
`refresh_token`, `expires_at` and the app's `client_id`/`client_secret`: its access token is kept
fresh by `activities.tokens` exactly like TikTok's (refreshed before it expires, once per account
across workers, a 401 refreshed once and redone), and every refresh's rotated refresh token is
written back atomically.

Token endpoint (HighLevel's OAuth 2.0 docs, checked against its official API client): `POST
{base}/oauth/token`, form-encoded `client_id, client_secret, grant_type (authorization_code |
refresh_token), code | refresh_token, user_type (Location | Company), redirect_uri`; the answer
`access_token, token_type, expires_in, refresh_token, scope, userType, locationId, companyId,
userId`. Refresh tokens rotate (the docs win over `../reference/` where they differ: read
`expires_in`, never assume a lifetime).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    SessionExpired,
    TokenExpired,
)
from activities.highlevel.client import PROVIDER
from activities.highlevel.errors import NAME, classify
from activities.http import Reply
from activities.provider import obj
from activities.ratelimit import parse_retry_after
from activities.registry import ActionContext, Services
from activities.tokens import expires_at, with_access_token

__all__ = ["APP_FIELDS", "TOKEN_PATH", "exchange_code", "refresh_access_token", "request"]

TOKEN_PATH = "/oauth/token"
#: The marketplace app's own fields, copied into every account it connects (refreshes need them).
APP_FIELDS = ("client_id", "client_secret")


def _is_oauth(credential: Mapping[str, str]) -> bool:
    return bool(credential.get("refresh_token"))


def classify_oauth(reply: Reply, account: str) -> ProviderError | None:
    """Map a token endpoint answer (flat `{"error", "error_description"}`, or HighLevel's own) to an error."""
    body = obj(reply.body)
    if reply.status < 400:
        if body.get("access_token"):
            return None
        return PROVIDER.malformed(None, "the token endpoint answered without an access_token")
    code = str(body.get("error") or "")
    if reply.status == 429 or reply.status >= 500:
        return classify(reply, account)
    message = str(body.get("error_description") or body.get("message") or code or f"HTTP {reply.status}")
    where: dict[str, Any] = {"provider": NAME, "status": reply.status, "code": code or reply.status}
    if code == "invalid_client":
        return CredentialsRejected(f"{message}; check the app's client_id and client_secret", **where)
    if code == "rate_limit_exceeded":
        from activities.errors import RateLimited

        return RateLimited(message, retry_after=parse_retry_after(reply.headers), **where)
    # invalid_grant (expired, revoked or already used code or refresh token), invalid_request, …
    return ProviderRejected(message, **where)


def _classify_api(reply: Reply, account: str) -> ProviderError | None:
    """The API's classifier, where a 401 means the OAuth access token expired early (refresh, redo)."""
    error = classify(reply, account)
    if reply.status == 401 and error is not None:
        return TokenExpired(error.message, provider=NAME, status=401, code=401)
    return error


def _token_fields(body: Mapping[str, Any]) -> dict[str, str]:
    """The credential fields a token answer sets (`token` is the access token, as for a PIT)."""
    fields = {"token": str(body["access_token"]), "expires_at": expires_at(body, PROVIDER)}
    # The refresh token rotates: always keep the one HighLevel just issued.
    if body.get("refresh_token"):
        fields["refresh_token"] = str(body["refresh_token"])
    for answer, name in (("locationId", "location_id"), ("userId", "user_id"), ("userType", "user_type")):
        if body.get(answer):
            fields[name] = str(body[answer])
    return fields


async def _token_request(ctx: ActionContext, form: dict[str, str]) -> dict[str, Any]:
    return await PROVIDER.request(
        ctx, "POST", TOKEN_PATH, signed=False, classify=classify_oauth, form=form, unwrap=False
    )


async def refresh_access_token(ctx: ActionContext, credential: dict[str, str]) -> dict[str, str]:
    """Trade the stored refresh token for a new pair (the `Refresher` for HighLevel OAuth).

    Raises:
        CredentialsRejected: The credential lacks the app's `client_id`/`client_secret`.
        SessionExpired: No refresh token is stored.
        ProviderRejected: HighLevel refused the refresh token (`invalid_grant`).
    """
    missing = [name for name in APP_FIELDS if not credential.get(name)]
    if missing:
        raise CredentialsRejected(
            f"the highlevel credential {ctx.account!r} lacks {', '.join(missing)}, needed to refresh its "
            f"access token; connect it again with `tikflow connect highlevel --account {ctx.account}`",
            provider=NAME,
            account=ctx.account,
        )
    if not credential.get("refresh_token"):
        raise SessionExpired(
            f"the highlevel credential {ctx.account!r} has no refresh token; connect it again",
            provider=NAME,
            account=ctx.account,
        )
    body = await _token_request(
        ctx,
        {
            "client_id": credential["client_id"],
            "client_secret": credential["client_secret"],
            "grant_type": "refresh_token",
            "refresh_token": credential["refresh_token"],
            "user_type": credential.get("user_type") or "Location",
        },
    )
    return _token_fields(body)


async def exchange_code(
    services: Services, account: str, *, code: str, redirect_uri: str, app: Mapping[str, str]
) -> dict[str, str]:
    """Trade an authorization code for the account's first token pair and store it with the app's fields.

    Not an action: the code is a one-time secret that must not pass through workflow history.
    Nothing is stored when HighLevel refuses.

    Returns:
        The non-secret facts: `location_id`, `expires_at`.
    """
    ctx = ActionContext(services=services, account=account, idempotency_key="", action="highlevel.oauth")
    body = await _token_request(
        ctx,
        {
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "grant_type": "authorization_code",
            "code": code,
            "user_type": "Location",
            "redirect_uri": redirect_uri,
        },
    )
    fields = {**{name: app[name] for name in APP_FIELDS}, **_token_fields(body)}
    services.credentials.update(NAME, account, fields)
    return {"location_id": fields.get("location_id", ""), "expires_at": fields["expires_at"]}


async def request(
    ctx: ActionContext, method: str, path: str, *, credential: dict[str, str], **kwargs: Any
) -> dict[str, Any]:
    """`PROVIDER.request` with the credential's token, kept fresh when it is an OAuth token."""
    if not _is_oauth(credential):
        return await PROVIDER.request(ctx, method, path, credential=credential, **kwargs)

    async def call(token: str) -> dict[str, Any]:
        return await PROVIDER.request(
            ctx, method, path, credential={**credential, "token": token}, classify=_classify_api, **kwargs
        )

    return await with_access_token(ctx, NAME, refresh_access_token, call, field="token")
