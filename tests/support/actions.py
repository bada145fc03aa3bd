"""Actions run as the worker runs them, against a fake provider transport.

One way to run an action everywhere: `run_action(ctx, name, params)` with the action's input model
(or its fields as keywords). Services come from `fake_services`, contexts from `action_context`,
and `contexts` builds one context per fake, closing their clients at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import httpx

from activities.credentials import CredentialStore
from activities.ledger import EffectLedger
from activities.ratelimit import RateLimiter
from activities.registry import ACTIONS, ActionContext, ActionInput, Services
from activities.settings import Settings

#: A fake provider: answers each request (a `FakeProvider`, or any function `MockTransport` takes).
Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


async def no_sleep(_seconds: float) -> None:
    """A rate limiter's sleep that returns at once (the tests never wait on the clock)."""
    return None


def fake_services(
    handler: Handler,
    credentials: CredentialStore,
    *,
    limiter: RateLimiter | None = None,
    ledger: Path | None = None,
) -> Services:
    """Services whose HTTP goes to `handler`, with `credentials` and (given a path) an effect ledger."""
    services = Services(
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        credentials=credentials,
        settings=Settings(),
        limiter=limiter or RateLimiter(),
    )
    if ledger is not None:
        services.ledger = EffectLedger(ledger)
    return services


def action_context(services: Services, *, key: str, action: str, account: str = "main") -> ActionContext:
    """One invocation on `services` as `account` under idempotency key `key`."""
    return ActionContext(services=services, account=account, idempotency_key=key, action=action)


async def run_action(
    ctx: ActionContext, action: str, params: ActionInput | None = None, /, **fields: Any
) -> dict[str, Any]:
    """Run `action`'s handler in `ctx`: with `params`, or its input model built from `fields`."""
    act = ACTIONS[action]
    return await act.handler(ctx, params if params is not None else act.input_model(**fields))


class ContextFactory(Protocol):
    """Builds a context whose HTTP goes to `handler` (see `contexts`)."""

    def __call__(
        self,
        handler: Handler,
        key: str = ...,
        limiter: RateLimiter | None = None,
    ) -> ActionContext: ...


@contextlib.asynccontextmanager
async def contexts(
    credentials: CredentialStore, *, ledger: Path, action: str, key: str
) -> AsyncIterator[ContextFactory]:
    """A factory of contexts, each on services of its own around the handler it is given.

    Every context shares `credentials` and the effect ledger at `ledger`; `key` is the default
    idempotency key. The HTTP clients are closed when the block ends.
    """
    clients: list[httpx.AsyncClient] = []

    def build(
        handler: Handler,
        key: str = key,
        limiter: RateLimiter | None = None,
    ) -> ActionContext:
        services = fake_services(handler, credentials, limiter=limiter, ledger=ledger)
        clients.append(services.http)
        return action_context(services, key=key, action=action)

    try:
        yield build
    finally:
        for http in clients:
            await http.aclose()
