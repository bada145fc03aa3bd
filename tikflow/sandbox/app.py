"""The sandbox ASGI app: five provider stand-ins under their own prefixes, plus `/_admin`.

Prefixes (a provider's base URL is the sandbox URL plus its prefix): `/tikapi`, `/tiktok`,
`/highlevel`, `/dumpling`, `/socialapi/v1`. Every provider request is counted under its
documented path template, may meet a scripted fault, and is otherwise answered by the provider
module from the shared `World`.

Admin API (JSON in, JSON out; 400 `{"error"}` on a bad request):

- `GET /_admin/state`: the whole world (users, videos, comments, conversations, messages,
  publishes, posts, tokens), `requests` (`"PROVIDER METHOD TEMPLATE"` → count), `statuses`
  (`"PROVIDER STATUS"` → count) and `rate_limited` (all 429s).
- `GET /_admin/faults`: the rules with how often each matched (`seen`) and fired (`fired`);
  `POST /_admin/faults {"rules": [...]}` appends rules (fields in `tikflow.sandbox.faults`);
  `DELETE /_admin/faults` drops them all.
- `POST /_admin/tick {"comments": N, "video_id"?, "hashtag"?, "text"?, "messages": N,
  "message_requests": N, "followers": {handle: delta}}`: new activity now; answers what it made.
- `POST /_admin/reset`: back to the seeded world and the configuration the app started with.
- `GET /_admin/config`, `POST /_admin/config {field: value, ...}`: read or change `SandboxConfig`
  (all but `clock`).
- `POST /_admin/reauthorize {"provider": "tikapi", "account_key": OLD}` → `{"account_key": NEW}`
  (the old key stays invalid); `{"provider": "socialapi"}` reconnects the SocialAPI account.
- `POST /_admin/keys`: `{"provider": "tiktok"}` → a fresh token pair (the token endpoint's
  answer); `{"provider": "tikapi", "api_key": K}` or `{"provider": "tikapi", "account_key": K,
  "username"?: U}` adds a TikAPI key; `{"provider": P, "key": K}` adds a key of any provider.
- `POST /_admin/expire_token {"provider": "tiktok"}` expires every TikTok access token now;
  `{"provider": "tikapi", "account_key": K}` expires that account's session (428 from now on);
  `{"provider": "socialapi"}` lapses the connected account (401 `auth.invalid_token`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tikflow.sandbox import dumpling, highlevel, socialapi, tikapi, tiktok
from tikflow.sandbox.faults import Faults, faulty_answer
from tikflow.sandbox.ratelimit import Quotas
from tikflow.sandbox.routing import Provider
from tikflow.sandbox.state import SandboxConfig, World

__all__ = ["PROVIDERS", "Sandbox", "create_app"]

#: The provider stand-ins, by name.
PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (tikapi.PROVIDER, tiktok.PROVIDER, highlevel.PROVIDER, dumpling.PROVIDER, socialapi.PROVIDER)
}
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


class AdminError(ValueError):
    """A bad admin request (answered 400)."""


class Sandbox:
    """The sandbox's mutable parts: the world, its faults and quotas (replaced on reset)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._initial = dataclasses.replace(config, tiktok_per_minute=dict(config.tiktok_per_minute))
        self.reset()

    def reset(self) -> None:
        """Back to the seeded world and the initial configuration, with no faults."""
        # The config object itself stays (callers hold it); its values go back, dicts copied.
        for f in dataclasses.fields(SandboxConfig):
            value = getattr(self._initial, f.name)
            setattr(self.config, f.name, dict(value) if isinstance(value, dict) else value)
        self.world = World(self.config)
        self.faults = Faults(self.config.seed)
        self.quotas = Quotas(self.config.clock)

    async def provider(self, request: Request) -> Response:
        """Count, maybe fault, then answer a provider request."""
        path = request.url.path
        for provider in PROVIDERS.values():
            if path == provider.prefix or path.startswith(provider.prefix + "/"):
                return await self._serve(provider, request, path[len(provider.prefix) :] or "/")
        return JSONResponse({"error": f"no provider at {path}"}, status_code=404)

    async def _serve(self, provider: Provider, request: Request, sub: str) -> Response:
        world = self.world
        world.requests[f"{provider.name} {request.method} {provider.template(request.method, sub)}"] += 1
        rule = self.faults.fire(provider.name, request.method, sub)
        response = await faulty_answer(rule, provider, world, request) if rule else None
        if response is None:
            response = await provider.answer(world, self.quotas, request, sub)
        for header in provider.echoed_headers:
            if header in request.headers and header not in response.headers:
                response.headers[header] = request.headers[header]
        world.statuses[f"{provider.name} {response.status_code}"] += 1
        return response

    async def admin(self, request: Request) -> Response:
        """Answer `/_admin/{action}`."""
        body: dict[str, Any] = {}
        raw = await request.body()
        try:
            if raw:
                parsed = await request.json()
                if not isinstance(parsed, dict):
                    raise AdminError("the body must be a JSON object")
                body = parsed
            return JSONResponse(self._admin(request.path_params["action"], request.method, body))
        except (AdminError, ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    def _admin(self, action: str, method: str, body: dict[str, Any]) -> Any:
        handlers: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "state"): lambda: self.world.snapshot(),
            ("GET", "faults"): lambda: {"rules": [dataclasses.asdict(r) for r in self.faults.rules]},
            ("POST", "faults"): lambda: self._add_faults(body),
            ("DELETE", "faults"): self._clear_faults,
            ("POST", "tick"): lambda: self.world.tick(**body),
            ("POST", "reset"): self._reset,
            ("GET", "config"): lambda: {"config": self.config.public()},
            ("POST", "config"): lambda: self._configure(body),
            ("POST", "reauthorize"): lambda: self._reauthorize(body),
            ("POST", "keys"): lambda: self._add_key(body),
            ("POST", "expire_token"): lambda: self._expire(body),
        }
        handler = handlers.get((method, action))
        if handler is None:
            raise AdminError(f"no admin action {method} /_admin/{action}")
        return handler()

    def _add_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        rules = body.get("rules")
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise AdminError('expected {"rules": [{...}, ...]}')
        for rule in rules:
            if rule.get("provider") not in PROVIDERS:
                raise AdminError(f"provider must be one of {', '.join(PROVIDERS)}")
            self.faults.add(rule)
        return {"rules": len(self.faults.rules)}

    def _clear_faults(self) -> dict[str, Any]:
        self.faults.clear()
        return {"rules": 0}

    def _reset(self) -> dict[str, Any]:
        self.reset()
        return {"reset": True}

    def _configure(self, body: dict[str, Any]) -> dict[str, Any]:
        fields = {f.name for f in dataclasses.fields(SandboxConfig)} - {"clock"}
        for key, value in body.items():
            if key not in fields:
                raise AdminError(f"unknown config field {key!r}")
            current = getattr(self.config, key)
            if isinstance(current, bool) != isinstance(value, bool) or (
                isinstance(current, int | float) and not isinstance(value, int | float)
            ):
                raise AdminError(f"{key} must be a {type(current).__name__}")
            setattr(self.config, key, value)
            if key == "dumpling_credits":
                # The balance is state; setting it is a top-up (or a drain) from now on.
                self.world.dumpling_credits = value
        return {"config": self.config.public()}

    def _reauthorize(self, body: dict[str, Any]) -> dict[str, Any]:
        provider = body.get("provider", "tikapi")
        if provider == "socialapi":
            self.world.socialapi_expired = False
            return {"reconnected": True}
        if provider != "tikapi":
            raise AdminError("reauthorize is for tikapi (account keys) or socialapi (the connected account)")
        old = body.get("account_key")
        if old not in self.world.tikapi_account_keys:
            raise AdminError("account_key is not a known TikAPI account key")
        return {"account_key": tikapi.mint_account_key(self.world, None, replacing=old)}

    def _add_key(self, body: dict[str, Any]) -> dict[str, Any]:
        world, provider = self.world, body.get("provider")
        if provider == "tiktok":
            return tiktok.issue_tokens(world)
        if provider == "tikapi":
            if "account_key" in body:
                username = body.get("username", "tikflow_demo")
                if username not in world.users:
                    raise AdminError(f"no TikTok user {username}")
                world.tikapi_account_keys[str(body["account_key"])] = username
            api_key = body.get("api_key", body.get("key"))
            if api_key:
                world.tikapi_api_keys.add(str(api_key))
            return {"added": provider}
        if provider in world.bearer_keys and body.get("key"):
            world.bearer_keys[provider].add(str(body["key"]))
            return {"added": provider}
        raise AdminError(f"expected a provider ({', '.join(PROVIDERS)}) and its key")

    def _expire(self, body: dict[str, Any]) -> dict[str, Any]:
        world, provider = self.world, body.get("provider")
        if provider == "tiktok":
            expired = world.now() - 1
            world.tiktok_access = {t: (owner, expired) for t, (owner, _) in world.tiktok_access.items()}
            return {"expired": len(world.tiktok_access)}
        if provider == "tikapi":
            key = str(body.get("account_key") or "")
            if key not in world.tikapi_account_keys:
                raise AdminError("account_key is not a known TikAPI account key")
            world.expired_account_keys.add(key)
            return {"expired": 1}
        if provider == "socialapi":
            world.socialapi_expired = True
            return {"expired": 1}
        raise AdminError("provider must be tiktok, tikapi or socialapi")


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """The sandbox as an ASGI app; its state is `app.state.sandbox` (a `Sandbox`)."""
    sandbox = Sandbox(config or SandboxConfig())
    app = Starlette(
        routes=[
            Route("/_admin/{action}", sandbox.admin, methods=_METHODS),
            Route("/{path:path}", sandbox.provider, methods=_METHODS),
        ]
    )
    app.state.sandbox = sandbox
    return app
