"""Providers as declarations, and the one request path every provider action takes.

A provider is a package `activities/<name>/` whose `__init__` exposes `PROVIDER = Provider(...)`:
its name, default base URL, credential fields, how a credential becomes auth headers, how error
answers map into the error tree and how it says when a spent quota resets. Everything else that
knows the list of providers is derived from these declarations, found by `providers()`:
`activities.settings.PROVIDERS` / `DEFAULT_BASE_URLS` (and the `TIKFLOW_<P>_URL` variables),
`activities.credentials.PROVIDER_FIELDS` / `REQUIRED_FIELDS`, `activities.registry.PROVIDER_MODULES`
and so the worker's task queues (`tikflow.<name>`).

Every action calls its provider through `Provider.request` (or `Provider.send` for a raw `Reply`):
resolve the credential → build the auth headers → base URL + path → `activities.http.send` → the
answer must be an object (unwrapped from `envelope` when the provider wraps payloads) → read lists
from it with `Provider.items` and nested objects with `obj`.

How to add a provider (`acme`):

1. create `activities/acme/__init__.py` with a classifier and the declaration::

       PROVIDER = Provider(
           name="acme",
           base_url="https://api.acme.example",
           fields=("api_key",),
           required=("api_key",),
           classify=classify,            # (Reply, account) -> ProviderError | None
           auth=bearer("api_key"),       # credential -> headers
       )

2. register its actions there (or in modules the package imports) with
   `@action("acme.thing", ThingInput, endpoint="GET /thing")`, each calling
   `await PROVIDER.request(ctx, "GET", "/thing", params=...)`.

Nothing else changes: `TIKFLOW_ACME_URL`, `TIKFLOW_ACME_API_KEY`, `tikflow credentials set acme …`
and the task queue `tikflow.acme` follow from the declaration. A sandbox stand-in for it lives in
`tikflow/emulator/` (optional).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from activities.http import Classifier, Reply, listed, malformed, send
from activities.ratelimit import Quota, parse_retry_after
from activities.shapes import obj

if TYPE_CHECKING:
    from activities.errors import ProviderUnavailable
    from activities.registry import ActionContext

__all__ = ["Auth", "Provider", "bearer", "declared", "obj", "provider_named", "providers"]

#: Builds one request's auth headers from the action invocation, the path and the credential.
Auth = Callable[["ActionContext", str, Mapping[str, str]], dict[str, str]]


def bearer(field: str) -> Auth:
    """Auth that sends the credential's `field` as `Authorization: Bearer …`."""

    def headers(ctx: ActionContext, path: str, credential: Mapping[str, str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential[field]}"}

    return headers


def declared(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that are set: a JSON body without its None values (only declared ones sent)."""
    return {key: value for key, value in params.items() if value is not None}


@dataclass(frozen=True)
class Provider:
    """One provider, declared once: what the settings, credentials and registry derive from.

    Attributes:
        name: Provider key (`tikapi`): action prefix, credential kind, task queue suffix.
        base_url: The real service's base URL (no trailing slash); `TIKFLOW_<NAME>_URL` overrides it.
        fields: The documented credential fields (`credentials set` refuses others, as typos).
        required: What a credential needs before it is any use (a strict write refuses less).
        classify: Maps a decoded answer to the provider's error (None for a success).
        auth: Builds the auth headers of one request from the credential.
        needs: The credential fields a request to a path needs (default: `required`).
        reauth: The fields a re-authorization renews, for providers whose session can expire
            (`SessionExpired`); None when a re-authorization is not a thing for this provider.
        envelope: The key every answer wraps its payload in (`data`), unwrapped by `request`.
        retry_after: Reads when a spent quota resets from an answer's headers (seconds).
        order: Where it is listed among the providers (settings, help texts, task queues);
            ties, and new providers keeping the default, go by name.
        windows: Documented sliding-window limits by request path, per credential: each call
            to such a path is paced through `RateLimiter.window` before it is sent (for
            providers whose 429 says nothing about when to come back).
    """

    name: str
    base_url: str
    fields: tuple[str, ...]
    required: tuple[str, ...]
    classify: Classifier
    auth: Auth
    needs: Callable[[str], tuple[str, ...]] | None = None
    reauth: tuple[str, ...] | None = None
    envelope: str | None = None
    retry_after: Callable[[Mapping[str, str]], float | None] = parse_retry_after
    order: int = 100
    windows: Mapping[str, Quota] = field(default_factory=dict)

    @property
    def url_env(self) -> str:
        """The environment variable that points this provider elsewhere (the sandbox)."""
        return f"TIKFLOW_{self.name.upper()}_URL"

    def credential(self, ctx: ActionContext, path: str = "", need: Iterable[str] = ()) -> dict[str, str]:
        """The account's credential, with the fields a request to `path` needs (and `need`)."""
        wanted = self.needs(path) if self.needs is not None else self.required
        required = tuple(dict.fromkeys([*wanted, *need]))
        return ctx.services.credentials.get(self.name, ctx.account, required=required)

    async def send(
        self,
        ctx: ActionContext,
        method: str,
        path: str,
        *,
        credential: Mapping[str, str] | None = None,
        need: Iterable[str] = (),
        signed: bool = True,
        url: str | None = None,
        classify: Classifier | None = None,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect_json: bool = True,
    ) -> Reply:
        """One request to this provider, answered by a `Reply` or raised as a `ProviderError`.

        Args:
            ctx: The action invocation (its account picks the credential).
            method: HTTP method.
            path: Path below the base URL (also what `needs` and `auth` see).
            credential: The credential to sign with (default: resolved from the store).
            need: More credential fields this request needs.
            signed: False for a request that carries no auth headers (a token endpoint).
            url: An absolute URL to call instead of base URL + path (an upload URL).
            classify: Another classifier than the provider's (a token or upload endpoint).
            params: Query parameters (None values dropped).
            json_body: JSON body.
            form: Form-encoded body.
            content: Raw body.
            headers: More headers (after the auth headers).
            expect_json: Whether a success must carry a JSON object.
        """
        quota = self.windows.get(path)
        if quota is not None:
            await ctx.services.limiter.window(self.name, ctx.account, path, quota)
        auth: dict[str, str] = {}
        if signed:
            resolved = credential if credential is not None else self.credential(ctx, path, need)
            auth = self.auth(ctx, path, resolved)
        return await send(
            ctx,
            self.name,
            method,
            url if url is not None else ctx.services.settings.base_url(self.name) + path,
            classify=classify or self.classify,
            params=params,
            json_body=json_body,
            form=form,
            content=content,
            headers={**auth, **(headers or {})},
            expect_json=expect_json,
        )

    async def request(
        self,
        ctx: ActionContext,
        method: str,
        path: str,
        *,
        credential: Mapping[str, str] | None = None,
        need: Iterable[str] = (),
        signed: bool = True,
        classify: Classifier | None = None,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        unwrap: bool = True,
    ) -> dict[str, Any]:
        """One request (as `send`) whose answer is an object: the payload under `envelope` if declared.

        Raises:
            ProviderUnavailable: The answer is not an object, or has no `envelope` object
                (`malformed answer`).
        """
        reply = await self.send(
            ctx,
            method,
            path,
            credential=credential,
            need=need,
            signed=signed,
            classify=classify,
            params=params,
            json_body=json_body,
            form=form,
            headers=headers,
        )
        body = reply.body
        if not isinstance(body, dict):
            raise self.malformed(ctx, f"{method} {path} answered {type(body).__name__}, not an object")
        if self.envelope is None or not unwrap:
            return body
        payload = body.get(self.envelope)
        if not isinstance(payload, dict):
            raise self.malformed(ctx, f"{method} {path} has no `{self.envelope}` object")
        return payload

    def malformed(self, ctx: ActionContext | None, detail: str) -> ProviderUnavailable:
        """The error for an answer of the wrong shape (retryable, like any garbage)."""
        return malformed(self.name, detail, account=ctx.account if ctx is not None else None)

    def items(
        self,
        ctx: ActionContext | None,
        body: Mapping[str, Any],
        key: str,
        *,
        what: str | None = None,
        strict: bool = True,
    ) -> list[dict[str, Any]]:
        """The objects listed under `body[key]` (absent = none).

        Args:
            ctx: The action invocation, for the error's account (None: no account).
            body: The answer (or a part of it).
            key: The list's key.
            what: The list's name in messages (default `key`; `results.posts`).
            strict: Every entry must be an object (else a malformed answer); False skips others.

        Raises:
            ProviderUnavailable: The value is not a list (or, strict, holds a non-object).
        """
        value = body.get(key)
        name = what or key
        if not strict:
            account = ctx.account if ctx is not None else None
            return [item for item in listed(value, name, self.name, account) if isinstance(item, dict)]
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.malformed(ctx, f"`{name}` is not a list of objects")
        return value


@functools.cache
def providers() -> tuple[Provider, ...]:
    """Every provider declared in the `activities` package, in listing order.

    A provider is a subpackage `activities.<name>` exposing `PROVIDER`, a `Provider` named `<name>`.

    Raises:
        ValueError: A package's `PROVIDER` names another provider.
    """
    import activities

    found: list[Provider] = []
    for info in pkgutil.iter_modules(activities.__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"activities.{info.name}")
        declared = getattr(module, "PROVIDER", None)
        if not isinstance(declared, Provider):
            continue
        if declared.name != info.name:
            raise ValueError(f"activities.{info.name} declares the provider {declared.name!r}")
        found.append(declared)
    return tuple(sorted(found, key=lambda p: (p.order, p.name)))


def provider_named(name: str) -> Provider:
    """The declaration of provider `name`.

    Raises:
        KeyError: No such provider.
    """
    for declared in providers():
        if declared.name == name:
            return declared
    raise KeyError(name)
