"""The sandbox ASGI app: five provider stand-ins under their own prefixes, plus `/_admin`.

Prefixes (the base URLs clients are pointed at): `/tikapi`, `/tiktok`, `/highlevel`,
`/dumpling`, `/socialapi/v1`. Every provider request is counted, then may meet a scripted fault
(`POST /_admin/faults`), then is answered by the provider module from the shared `World`.

Admin API (JSON):
- `GET /_admin/state`: the whole world, request and status counts (`rate_limited` = 429s).
- `POST /_admin/faults {"rules": [...]}` appends fault rules, `DELETE /_admin/faults` clears.
  A rule: `provider`, `kind` (status|slow|timeout|malformed|html|session_expired|rate_limit),
  optional `path` (substring), `method`, `status`, `count` (null = unlimited), `probability`,
  `delay_s`, `retry_after` (null = no reset header), `skip` (let N matching requests through).
- `POST /_admin/tick {"comments": N, "video_id"?, "hashtag"?, "text"?, "messages": N,
  "followers": {handle: delta}}`: new activity now.
- `POST /_admin/reset`, `POST /_admin/config {...SandboxConfig fields}`.
- `POST /_admin/reauthorize {"provider": "tikapi", "account_key": OLD}` → `{"account_key": NEW}`.
- `POST /_admin/keys {"provider": "tiktok"}` → a fresh token pair; `{"provider": P, "key": K}` adds a key;
  `{"provider": "tikapi", "account_key": K}` adds an account key for our demo user.
- `POST /_admin/expire_token {"provider": "tiktok"}`: every TikTok access token expires now.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tikflow.sandbox import planners, tikapi, tiktok
from tikflow.sandbox.faults import Faults, Quotas
from tikflow.sandbox.state import SandboxConfig, World

__all__ = ["PREFIXES", "Sandbox", "create_app"]

Handler = Callable[[World, Quotas, Request, str], Awaitable[Response]]

#: Provider → URL prefix (the provider's base URL on the sandbox) and its module's handler.
PREFIXES: dict[str, tuple[str, Handler]] = {
    "tikapi": ("/tikapi", tikapi.handle),
    "tiktok": ("/tiktok", tiktok.handle),
    "highlevel": ("/highlevel", planners.highlevel),
    "dumpling": ("/dumpling", planners.dumpling),
    "socialapi": ("/socialapi/v1", planners.socialapi),
}
_NUMBERS = re.compile(r"/[0-9a-zA-Z_~.-]*\d[0-9a-zA-Z_~.-]*(?=/|$)")


class Sandbox:
    """The sandbox's mutable parts: the world, its faults and quotas (replaced on reset)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Back to the seeded world, with no faults and fresh quotas."""
        self.world = World(self.config)
        self.faults = Faults()
        self.quotas = Quotas(self.world)

    async def provider(self, request: Request) -> Response:
        """Count, maybe fault, then answer a provider request."""
        path = request.url.path
        for name, (prefix, handler) in PREFIXES.items():
            if path == prefix or path.startswith(prefix + "/"):
                sub = path[len(prefix) :] or "/"
                template = _NUMBERS.sub("/{id}", sub)
                self.world.requests[f"{name} {request.method} {template}"] += 1
                faulty = await self.faults.apply(self.world, name, request)
                response = faulty or await handler(self.world, self.quotas, request, sub)
                self.world.statuses[f"{name} {response.status_code}"] += 1
                return response
        return JSONResponse({"error": "unknown provider prefix"}, status_code=404)

    async def admin(self, request: Request) -> Response:
        """Answer `/_admin/{action}`."""
        action = request.path_params["action"]
        body: dict[str, Any] = {}
        if request.method in ("POST", "PUT"):
            raw = await request.body()
            if raw:
                try:
                    body = (await request.json()) or {}
                except ValueError:
                    return JSONResponse({"error": "body is not JSON"}, status_code=400)
        try:
            return JSONResponse(self._admin(action, request.method, body))
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    def _admin(self, action: str, method: str, body: dict[str, Any]) -> Any:
        world = self.world
        if action == "state":
            return world.snapshot()
        if action == "faults" and method == "DELETE":
            self.faults.rules.clear()
            return {"rules": 0}
        if action == "faults":
            for rule in body.get("rules", [body] if "kind" in body else []):
                self.faults.add(rule)
            return {"rules": len(self.faults.rules)}
        if action == "tick":
            return world.tick(**body)
        if action == "reset":
            self.reset()
            return {"reset": True}
        if action == "config":
            for key, value in body.items():
                if key not in {f.name for f in dataclasses.fields(SandboxConfig)} or key == "clock":
                    raise ValueError(f"unknown config field {key!r}")
                setattr(self.config, key, value)
            return {
                "config": {
                    f.name: getattr(self.config, f.name)
                    for f in dataclasses.fields(SandboxConfig)
                    if f.name != "clock"
                }
            }
        if action == "reauthorize":
            if body.get("provider", "tikapi") == "socialapi":
                world.socialapi_expired = False
                return {"reconnected": True}
            old = body["account_key"]
            username = world.tikapi_account_keys.get(old, "tikflow_demo")
            new = world.token("AccountKey", 30)
            world.tikapi_account_keys[new] = username
            return {"account_key": new}
        if action == "keys":
            provider = body["provider"]
            if provider == "tiktok":
                return tiktok.issue_tokens(world)
            if provider == "tikapi" and "account_key" in body:
                world.tikapi_account_keys[body["account_key"]] = body.get("username", "tikflow_demo")
                return {"added": provider}
            key = body["key"]
            if provider == "tikapi":
                world.tikapi_api_keys.add(key)
            else:
                world.bearer_keys[provider].add(key)
            return {"added": provider}
        if action == "expire_token":
            world.tiktok_access = {t: (o, world.now() - 1) for t, (o, _) in world.tiktok_access.items()}
            return {"expired": len(world.tiktok_access)}
        raise ValueError(f"unknown admin action {action!r}")


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """The sandbox as an ASGI app (state lives in the app; `app.state.sandbox` for tests)."""
    sandbox = Sandbox(config or SandboxConfig())
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    app = Starlette(
        routes=[
            Route("/_admin/{action}", sandbox.admin, methods=methods),
            Route("/{path:path}", sandbox.provider, methods=methods),
        ]
    )
    app.state.sandbox = sandbox
    return app
