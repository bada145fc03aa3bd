"""TikTok's OAuth v2: the token endpoint, and the API calls that carry the account's access token.

The token endpoint trades an authorization code for the first token pair, and a refresh token
for the next. Refresh tokens rotate: every refresh issues a new one and retires the old, so the answer's
`refresh_token` always replaces the stored one (`activities.tokens` makes sure a refresh happens
once per account however many calls find the token stale).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activities.errors import CredentialsRejected, SessionExpired
from activities.registry import ActionContext, Services
from activities.tiktok.client import PROVIDER
from activities.tiktok.errors import NAME, classify_oauth
from activities.tokens import expires_at, with_access_token

__all__ = ["TOKEN_PATH", "api", "exchange_code", "refresh_access_token"]

TOKEN_PATH = "/v2/oauth/token/"


def _token_fields(body: dict[str, Any]) -> dict[str, str]:
    """The credential fields a token answer sets; `expires_in` is read, never assumed.

    Raises:
        ProviderUnavailable: `expires_in` is not a number of seconds.
    """
    fields = {"access_token": str(body["access_token"]), "expires_at": expires_at(body, PROVIDER)}
    # The refresh token rotates: always keep the one TikTok just issued.
    if body.get("refresh_token"):
        fields["refresh_token"] = str(body["refresh_token"])
    if body.get("open_id"):
        fields["open_id"] = str(body["open_id"])
    return fields


async def _token_request(ctx: ActionContext, form: dict[str, str]) -> dict[str, Any]:
    return await PROVIDER.request(
        ctx,
        "POST",
        TOKEN_PATH,
        signed=False,
        classify=classify_oauth,
        form=form,
        headers={"Cache-Control": "no-cache"},
        unwrap=False,
    )


async def refresh_access_token(ctx: ActionContext, credential: dict[str, str]) -> dict[str, str]:
    """Trade the stored refresh token for a new token pair (the `Refresher` for TikTok).

    Raises:
        CredentialsRejected: The credential lacks `client_key`/`client_secret`, or TikTok refused them.
        SessionExpired: No refresh token is stored (the account was never authorized here).
        ProviderRejected: TikTok refused the refresh token (`invalid_grant`).
    """
    missing = [name for name in ("client_key", "client_secret") if not credential.get(name)]
    if missing:
        raise CredentialsRejected(
            f"the tiktok credential {ctx.account!r} lacks {', '.join(missing)}, needed to refresh "
            f"its access token; set it with `tikflow credentials set tiktok {ctx.account} "
            f"{' '.join(name + '=…' for name in missing)}`",
            provider=NAME,
            account=ctx.account,
        )
    if not credential.get("refresh_token"):
        raise SessionExpired(
            f"the tiktok credential {ctx.account!r} has no usable access token and no refresh token; "
            "authorize the account and store its tokens",
            provider=NAME,
            account=ctx.account,
        )
    body = await _token_request(
        ctx,
        {
            "client_key": credential["client_key"],
            "client_secret": credential["client_secret"],
            "grant_type": "refresh_token",
            "refresh_token": credential["refresh_token"],
        },
    )
    return _token_fields(body)


async def exchange_code(
    services: Services,
    account: str,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str | None = None,
    app: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Trade an authorization code for the account's first token pair and store it.

    Not an action: the code is a one-time secret and must not pass through workflow history; the
    authorization flow (`tikflow connect`, the ingress's callback) calls this directly. The app's
    `client_key` and `client_secret` come from `app` (then stored with the tokens, so a new
    account can refresh) or else from the account's credential. Nothing is stored when TikTok
    refuses.

    Args:
        services: The shared services (HTTP client, credential store, settings, limiter).
        account: Credential name to store the tokens under.
        code: The `code` TikTok redirected back with.
        redirect_uri: The redirect URI used in the authorization request.
        code_verifier: The PKCE verifier, for desktop and mobile authorization flows.
        app: The app's `client_key` and `client_secret`, when the account does not hold them yet.

    Returns:
        The non-secret facts: `open_id`, `scope` and `expires_at`.
    """
    ctx = ActionContext(services=services, account=account, idempotency_key="", action="tiktok.oauth")
    credential = dict(app) if app is not None else PROVIDER.credential(ctx)
    form = {
        "client_key": credential["client_key"],
        "client_secret": credential["client_secret"],
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": redirect_uri,
    }
    if code_verifier:
        form["code_verifier"] = code_verifier
    body = await _token_request(ctx, form)
    fields = _token_fields(body)
    if app is not None:
        fields = {"client_key": app["client_key"], "client_secret": app["client_secret"], **fields}
    services.credentials.update(NAME, account, fields)
    return {
        "open_id": fields.get("open_id", ""),
        "scope": str(body.get("scope", "")),
        "expires_at": fields["expires_at"],
    }


async def api(
    ctx: ActionContext,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    json_body: Any = None,
) -> dict[str, Any]:
    """One API call with the account's fresh access token; returns the answer's `data` object."""

    async def call(token: str) -> dict[str, Any]:
        return await PROVIDER.request(
            ctx, method, path, credential={"access_token": token}, params=params, json_body=json_body
        )

    return await with_access_token(ctx, NAME, refresh_access_token, call)
