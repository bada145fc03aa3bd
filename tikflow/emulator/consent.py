"""The providers' consent pages, played by the sandbox, so every OAuth flow runs offline.

Each page sits at the real page's path under its provider's prefix (the engine finds it there when
the provider's base URL is the sandbox's): TikAPI `GET /tikapi/account/authorize` (implicit flow:
the redirect carries `access_token`, the new Account Key, and `scope`), TikTok `GET
/tiktok/v2/auth/authorize/` (a `code`, exchanged at the TikTok stand-in's token endpoint) and
HighLevel `GET /highlevel/oauth/chooselocation` (a `code`, exchanged at `POST
/highlevel/oauth/token`, served here: refresh tokens rotate, the old one is refused once used).

Two modes (`GET`/`POST /_consent/mode {"mode": "auto" | "page"}`): `auto` (the default, for tests)
approves at once with a 302 back, like a person who already consented; `page` shows a page with
Approve and Deny buttons (ids `approve`, `deny`) for people and browser tests. Deny redirects back
with `error=access_denied`, as the real providers do. The state comes back untouched.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tikflow.emulator import tikapi
from tikflow.emulator.state import HIGHLEVEL_LOCATION, TIKTOK_OPEN_ID, World

__all__ = ["Consent"]

_PAGES = {
    "tikapi": "/tikapi/account/authorize",
    "tiktok": "/tiktok/v2/auth/authorize/",
    "highlevel": "/highlevel/oauth/chooselocation",
}
_CLIENT_PARAM = {"tikapi": "client_id", "tiktok": "client_key", "highlevel": "client_id"}
#: HighLevel's user the stand-in's tokens act as.
HIGHLEVEL_USER = "sandboxUser0001"
HIGHLEVEL_TOKEN_TTL_S = 86_399


class Consent:
    """The consent pages and HighLevel's token endpoint over the emulator's world.

    Args:
        world: Gives the current world (it is replaced on reset).
    """

    def __init__(self, world: Any) -> None:
        self._world = world
        self.mode = "auto"
        # HighLevel's codes and refresh tokens: value → client_id (spent on use).
        self._codes: dict[str, str] = {}
        self._refresh: dict[str, str] = {}

    def routes(self) -> list[Route]:
        """The routes to mount before the providers' catch-all."""
        pages = [Route(path, self._page_for(provider), methods=["GET"]) for provider, path in _PAGES.items()]
        return [
            *pages,
            Route("/_consent/mode", self._mode, methods=["GET", "POST"]),
            Route("/_consent/{provider}", self._decide, methods=["POST"]),
            Route("/highlevel/oauth/token", self._highlevel_token, methods=["POST"]),
        ]

    async def _mode(self, request: Request) -> Response:
        if request.method == "POST":
            mode = (await request.json()).get("mode")
            if mode not in ("auto", "page"):
                return JSONResponse({"error": "mode must be auto or page"}, status_code=400)
            self.mode = mode
        return JSONResponse({"mode": self.mode})

    def _page_for(self, provider: str) -> Any:
        async def page(request: Request) -> Response:
            query = dict(request.query_params)
            if not query.get(_CLIENT_PARAM[provider]) or not query.get("redirect_uri"):
                return JSONResponse(
                    {"error": "invalid_request", "error_description": "client and redirect_uri are required"},
                    status_code=400,
                )
            if provider != "tikapi" and query.get("response_type") != "code":
                return JSONResponse(
                    {"error": "invalid_request", "error_description": "response_type must be code"},
                    status_code=400,
                )
            if provider == "tiktok" and query[_CLIENT_PARAM[provider]] not in self._world().tiktok_clients:
                return JSONResponse(
                    {"error": "invalid_client", "error_description": "unknown client_key"}, status_code=400
                )
            if self.mode == "auto":
                return self._redirect(provider, query, approve=True)
            return _consent_page(provider, query)

        return page

    async def _decide(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        if provider not in _PAGES:
            return JSONResponse({"error": "no such provider"}, status_code=404)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        decision = form.pop("decision", "")
        return self._redirect(provider, form, approve=decision == "approve")

    def _redirect(self, provider: str, query: dict[str, str], *, approve: bool) -> Response:
        world: World = self._world()
        back: dict[str, str] = {}
        if not approve:
            back = {"error": "access_denied", "error_description": "The user denied the request."}
        elif provider == "tikapi":
            back = {"access_token": tikapi.mint_account_key(world, None), "scope": query.get("scope", "")}
        elif provider == "tiktok":
            code = world.token("", 64)
            world.tiktok_codes[code] = (query["client_key"], TIKTOK_OPEN_ID)
            back = {"code": code, "scopes": query.get("scope", "")}
        else:
            code = world.token("", 40)
            self._codes[code] = query["client_id"]
            back = {"code": code}
        if query.get("state"):
            back["state"] = query["state"]
        redirect = query["redirect_uri"]
        return RedirectResponse(
            f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(back)}", status_code=302
        )

    async def _highlevel_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        client = form.get("client_id", "")
        if not client or not form.get("client_secret"):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "client_id and client_secret are required"},
                status_code=401,
            )
        grant = form.get("grant_type")
        if grant == "authorization_code":
            owner = self._codes.pop(form.get("code", ""), None)
        elif grant == "refresh_token":
            owner = self._refresh.pop(form.get("refresh_token", ""), None)
        else:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if owner != client:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "the code or refresh token is invalid"},
                status_code=400,
            )
        world: World = self._world()
        access, refresh = world.token("", 40), world.token("", 40)
        world.bearer_keys["highlevel"].add(access)
        self._refresh[refresh] = client
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": HIGHLEVEL_TOKEN_TTL_S,
                "refresh_token": refresh,
                "scope": "socialplanner/post.write",
                "userType": "Location",
                "locationId": HIGHLEVEL_LOCATION,
                "userId": HIGHLEVEL_USER,
                "issued_at": int(time.time()),
            }
        )


def _consent_page(provider: str, query: dict[str, str]) -> HTMLResponse:
    hidden = "".join(f'<input type=hidden name="{escape(k)}" value="{escape(v)}">' for k, v in query.items())
    scope = escape(query.get("scope", ""))
    html = (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>Authorize with {provider} (sandbox)</title></head><body>"
        f"<h1>{escape(provider)} (sandbox) asks you to authorize an app</h1>"
        f"<p>Scopes: <code>{scope}</code></p>"
        f'<form method=post action="/_consent/{provider}">{hidden}'
        "<button id=approve name=decision value=approve>Approve</button> "
        "<button id=deny name=decision value=deny>Deny</button></form></body></html>"
    )
    return HTMLResponse(html)
