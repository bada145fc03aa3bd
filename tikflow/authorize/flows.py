"""Each provider's consent page: where a person is sent, with what, and what comes back.

Checked against the providers' current documentation (where it differs from `../reference/`,
the docs win):

- TikAPI "Authenticating users": an implicit flow. `https://tikapi.io/account/authorize` with
  `client_id` (the app's `c_…` id), `redirect_uri` (registered in TikAPI's Developer Dashboard),
  optional `scope`, `state`, `country`, `email`; TikAPI redirects back with `access_token` (the
  Account Key) and `scope` in the query.
- TikTok Login Kit for Web: `https://www.tiktok.com/v2/auth/authorize/` with `client_key`,
  `scope` (comma-separated), `response_type=code`, `redirect_uri` (absolute, https, static: no
  query, no fragment, registered) and `state`; back come `code`, `scopes`, `state` (or `error`,
  `error_description`). The code is exchanged at `/v2/oauth/token/`.
- HighLevel marketplace apps: `https://marketplace.gohighlevel.com/oauth/chooselocation` with
  `response_type=code`, `client_id`, `redirect_uri`, `scope` (space-separated), `state`; back
  comes `code`, exchanged at `/oauth/token`.

A sandbox stands in for a provider's API at a base URL other than the real one; it then serves the
consent page too, at the real page's path under that base URL (`tikflow.emulator.consent`). So the
authorization URL follows the API's base URL setting, with no setting of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from activities.credentials import CredentialStore
from activities.errors import CredentialsRejected
from activities.settings import DEFAULT_BASE_URLS, Settings

__all__ = ["FLOWS", "ConnectError", "Flow", "app_credential", "authorization_url", "redirect_uri"]


class ConnectError(Exception):
    """A connection that cannot start (no app credential, an unknown provider); one line."""


@dataclass(frozen=True)
class Flow:
    """One provider's authorization request.

    Attributes:
        provider: Provider key.
        page: The real consent page.
        page_path: The page's path (a stand-in serves it there under the API's base URL).
        client_param: The query parameter naming the app (`client_id`, `client_key`).
        app_fields: The app's fields the flow needs (the first is the one sent as `client_param`);
            copied into each account it connects.
        scope: The default scopes, joined as the provider wants them.
        answer: `token` (the redirect carries the credential) or `code` (it is exchanged).
    """

    provider: str
    page: str
    page_path: str
    client_param: str
    app_fields: tuple[str, ...]
    scope: str
    answer: Literal["token", "code"]


#: The providers `tikflow connect` can authorize.
FLOWS: dict[str, Flow] = {
    "tikapi": Flow(
        "tikapi",
        "https://tikapi.io/account/authorize",
        "/account/authorize",
        "client_id",
        ("client_id",),
        "view_profile explore media_actions",
        "token",
    ),
    "tiktok": Flow(
        "tiktok",
        "https://www.tiktok.com/v2/auth/authorize/",
        "/v2/auth/authorize/",
        "client_key",
        ("client_key", "client_secret"),
        "user.info.basic,video.list,video.publish,video.upload",
        "code",
    ),
    "highlevel": Flow(
        "highlevel",
        "https://marketplace.gohighlevel.com/oauth/chooselocation",
        "/oauth/chooselocation",
        "client_id",
        ("client_id", "client_secret"),
        "socialplanner/account.readonly socialplanner/post.readonly socialplanner/post.write",
        "code",
    ),
}


def flow_for(provider: str) -> Flow:
    """The flow of `provider`.

    Raises:
        ConnectError: tikflow cannot authorize that provider by OAuth.
    """
    try:
        return FLOWS[provider]
    except KeyError:
        raise ConnectError(
            f"tikflow connects {', '.join(FLOWS)} accounts by OAuth, not {provider!r}"
        ) from None


def app_credential(store: CredentialStore, provider: str, account: str, app: str = "main") -> dict[str, str]:
    """The app's fields for connecting `account`: the account's own, else those of credential `app`.

    TikAPI's app also lends its `api_key` (every TikAPI call needs one) when it has it.

    Raises:
        ConnectError: Neither credential holds the app's fields; the message says how to set them.
    """
    flow = flow_for(provider)
    wanted = flow.app_fields + (("api_key",) if provider == "tikapi" else ())
    for name in dict.fromkeys([account, app]):
        try:
            fields = store.get(provider, name)
        except CredentialsRejected:
            continue
        if all(fields.get(f) for f in flow.app_fields):
            return {f: fields[f] for f in wanted if fields.get(f)}
    example = " ".join(f"{f}=…" for f in flow.app_fields)
    raise ConnectError(
        f"no {provider} app to connect with: neither credential {account!r} nor {app!r} holds "
        f"{', '.join(flow.app_fields)}; set them (`tikflow credentials set {provider} {app} {example}`, "
        f"or TIKFLOW_{provider.upper()}_{flow.app_fields[0].upper()}=… in the environment)"
    )


def redirect_uri(public_url: str, provider: str) -> str:
    """The redirect URI to register at `provider` for the ingress at `public_url`."""
    return f"{public_url.rstrip('/')}/oauth/{provider}/callback"


def authorization_url(
    settings: Settings,
    provider: str,
    app: Mapping[str, str],
    *,
    redirect: str,
    state: str,
    scope: str | None = None,
) -> str:
    """The consent page address a person opens (the real page, or a sandbox's stand-in)."""
    flow = flow_for(provider)
    base = settings.base_urls.get(provider, DEFAULT_BASE_URLS[provider])
    page = flow.page if base == DEFAULT_BASE_URLS[provider] else base + flow.page_path
    query = {flow.client_param: app[flow.app_fields[0]], "redirect_uri": redirect, "state": state}
    if flow.answer == "code":
        query["response_type"] = "code"
    query["scope"] = scope or flow.scope
    return f"{page}?{urlencode(query)}"
