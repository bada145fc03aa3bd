"""The sandbox ASGI app: five provider stand-ins under their own prefixes, plus `/_admin`.

Prefixes (a provider's base URL is the sandbox URL plus its prefix): `/tikapi`, `/tiktok`,
`/highlevel`, `/dumpling`, `/socialapi/v1`. Every provider request is counted under its
documented path template, may meet a scripted fault, and is otherwise answered by the provider
module from the shared `World`.

Admin API (JSON in, JSON out; `{"error"}` with one line on a bad request: 422 when a payload has
the wrong shape, type or size (`tikflow.emulator.payloads`; nothing of it is stored), 400 otherwise):

- `GET /_admin/state`: the whole world (users, videos, comments, conversations, messages,
  publishes, posts, tokens), `requests` (`"PROVIDER METHOD TEMPLATE"` → count), `statuses`
  (`"PROVIDER STATUS"` → count) and `rate_limited` (all 429s).
- `GET /_admin/faults`: the rules with how often each matched (`seen`) and fired (`fired`);
  `POST /_admin/faults {"rules": [...]}` appends rules (fields in `tikflow.emulator.faults`);
  `DELETE /_admin/faults` drops them all.
- `POST /_admin/tick {"comments": N, "video_id"?, "hashtag"?, "text"?, "messages": N,
  "message_requests": N, "followers": {handle: delta}}`: new activity now; answers what it made.
- `POST /_admin/reset`: back to the seeded world and the configuration the app started with.
- `GET /_admin/config`, `POST /_admin/config {field: value, ...}`: read or change `EmulatorConfig`
  (all but `clock`).
- `POST /_admin/reauthorize {"provider": "tikapi", "account_key": OLD}` → `{"account_key": NEW}`
  (the old key stays invalid); `{"provider": "socialapi"}` reconnects the SocialAPI account.
- `POST /_admin/keys`: `{"provider": "tiktok"}` → a fresh token pair (the token endpoint's
  answer); `{"provider": "tikapi", "api_key": K}` or `{"provider": "tikapi", "account_key": K,
  "username"?: U}` adds a TikAPI key; `{"provider": P, "key": K}` adds a key of any provider.
- Consent pages for TikAPI, TikTok and HighLevel, and HighLevel's token endpoint:
  `tikflow.emulator.consent` (`POST /_consent/mode {"mode": "page"}` shows them to people).
- `POST /_admin/expire_token {"provider": "tiktok"}` expires every TikTok access token now;
  `{"provider": "tikapi", "account_key": K}` expires that account's session (428 from now on);
  `{"provider": "socialapi"}` lapses the connected account (401 `auth.invalid_token`).
- `GET /_admin/webhooks`: the callback URL and every webhook delivery with its attempts;
  `POST /_admin/deauthorize {"open_id"?, "reason"?}` revokes the user's TikTok tokens and sends
  `authorization.removed`; `POST /_admin/take_down {"publish_id"}` makes a public post private
  and sends `post.publish.no_longer_publicaly_available` (`tikflow.emulator.webhooks`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tikflow.emulator import dumpling, highlevel, socialapi, tikapi, tiktok, webhooks
from tikflow.emulator.consent import Consent
from tikflow.emulator.faults import Faults, faulty_answer
from tikflow.emulator.payloads import (
    ConfigUpdate,
    ExpireInput,
    FaultsInput,
    KeysInput,
    PayloadError,
    ReauthorizeInput,
    TickInput,
    json_body,
    problems,
)
from tikflow.emulator.ratelimit import Quotas
from tikflow.emulator.routing import Provider
from tikflow.emulator.state import EmulatorConfig, World

__all__ = ["PROVIDERS", "Emulator", "create_app"]

#: The provider stand-ins, by name.
PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (tikapi.PROVIDER, tiktok.PROVIDER, highlevel.PROVIDER, dumpling.PROVIDER, socialapi.PROVIDER)
}
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
P = TypeVar("P", bound=BaseModel)


class AdminError(ValueError):
    """A bad admin request (answered 400)."""


class InvalidPayload(ValueError):
    """An admin payload of the wrong shape, type or size (answered 422)."""


def _one_line(exc: Exception) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def _payload(model: type[P], body: dict[str, Any], what: str) -> P:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidPayload(problems(exc, what)) from None


class Emulator:
    """The emulator's mutable parts: the world, its faults and quotas (replaced on reset)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._initial = dataclasses.replace(config, tiktok_per_minute=dict(config.tiktok_per_minute))
        self.webhooks = webhooks.WebhookSender(config)
        self.reset()

    def reset(self) -> None:
        """Back to the seeded world and the initial configuration, with no faults."""
        # The config object itself stays (callers hold it); its values go back, dicts copied.
        for f in dataclasses.fields(EmulatorConfig):
            value = getattr(self._initial, f.name)
            setattr(self.config, f.name, dict(value) if isinstance(value, dict) else value)
        self.world = World(self.config)
        self.webhooks.clear()
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
        try:
            parsed = json_body(await request.body())
            if parsed is not None:
                if not isinstance(parsed, dict):
                    raise AdminError("the body must be a JSON object")
                body = parsed
            return JSONResponse(self._admin(request.path_params["action"], request.method, body))
        except InvalidPayload as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        except PayloadError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except (AdminError, ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": _one_line(exc)}, status_code=400)

    def _admin(self, action: str, method: str, body: dict[str, Any]) -> Any:
        handlers: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "state"): lambda: self.world.snapshot(),
            ("GET", "faults"): lambda: {"rules": [dataclasses.asdict(r) for r in self.faults.rules]},
            ("POST", "faults"): lambda: self._add_faults(body),
            ("DELETE", "faults"): self._clear_faults,
            ("POST", "tick"): lambda: self._tick(body),
            ("POST", "reset"): self._reset,
            ("GET", "config"): lambda: {"config": self.config.public()},
            ("POST", "config"): lambda: self._configure(body),
            ("POST", "reauthorize"): lambda: self._reauthorize(body),
            ("POST", "keys"): lambda: self._add_key(body),
            ("POST", "expire_token"): lambda: self._expire(body),
            ("GET", "webhooks"): self.webhooks.snapshot,
            ("POST", "deauthorize"): lambda: webhooks.deauthorize(self.world, self.webhooks, body),
            ("POST", "take_down"): lambda: webhooks.take_down(self.world, self.webhooks, body),
        }
        handler = handlers.get((method, action))
        if handler is None:
            raise AdminError(f"no admin action {method} /_admin/{action}")
        return handler()

    def _add_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        rules = _payload(FaultsInput, body, "faults").rules
        for index, rule in enumerate(rules):
            if rule.provider not in PROVIDERS:
                raise InvalidPayload(f"faults.rules.{index}.provider: must be one of {', '.join(PROVIDERS)}")
        try:
            self.faults.add(rules)
        except PayloadError as exc:
            raise InvalidPayload(str(exc)) from None
        return {"rules": len(self.faults.rules)}

    def _tick(self, body: dict[str, Any]) -> dict[str, Any]:
        tick = _payload(TickInput, body, "tick")
        # Checked before anything changes: the world's tick would move followers, then refuse.
        unknown = sorted(set(tick.followers) - set(self.world.users))
        if unknown:
            raise AdminError(f"no TikTok user {unknown[0]}")
        if tick.video_id is not None and tick.video_id not in self.world.videos:
            raise AdminError(f"no video {tick.video_id}")
        return self.world.tick(**tick.model_dump())

    def _clear_faults(self) -> dict[str, Any]:
        self.faults.clear()
        return {"rules": 0}

    def _reset(self) -> dict[str, Any]:
        self.reset()
        return {"reset": True}

    def _configure(self, body: dict[str, Any]) -> dict[str, Any]:
        # Validated whole before anything changes: one bad field leaves the configuration as it was.
        for key, value in _payload(ConfigUpdate, body, "config").changes().items():
            setattr(self.config, key, value)
            if key == "dumpling_credits":
                # The balance is state; setting it is a top-up (or a drain) from now on.
                self.world.dumpling_credits = value
        return {"config": self.config.public()}

    def _reauthorize(self, body: dict[str, Any]) -> dict[str, Any]:
        request = _payload(ReauthorizeInput, body, "reauthorize")
        provider = request.provider
        if provider == "socialapi":
            self.world.socialapi_expired = False
            return {"reconnected": True}
        if provider != "tikapi":
            raise AdminError("reauthorize is for tikapi (account keys) or socialapi (the connected account)")
        old = request.account_key
        known = {**self.world.removed_account_keys, **self.world.tikapi_account_keys}
        if old is None or old not in known:
            raise AdminError("account_key is not a known TikAPI account key")
        return {"account_key": tikapi.mint_account_key(self.world, None, replacing=old)}

    def _add_key(self, body: dict[str, Any]) -> dict[str, Any]:
        body = _payload(KeysInput, body, "keys").model_dump(exclude_none=True)
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
        body = _payload(ExpireInput, body, "expire_token").model_dump(exclude_none=True)
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


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """The emulator as an ASGI app; its state is `app.state.emulator` (an `Emulator`)."""
    emulator = Emulator(config or EmulatorConfig())
    consent = Consent(lambda: emulator.world)
    app = Starlette(
        routes=[
            *consent.routes(),
            Route("/_admin/{action}", emulator.admin, methods=_METHODS),
            Route("/{path:path}", emulator.provider, methods=_METHODS),
        ]
    )
    app.state.emulator = emulator
    app.state.webhooks = emulator.webhooks
    return app
