"""The action registry: every `call:` a recipe can make, with its input model and its handler.

A provider module declares its operations with `@action(...)`; the recipe loader checks `call:`
names and `with:` mappings against this registry at load time, and the worker turns every entry
into one Temporal activity named after the action (so the Temporal UI shows `tikapi.reply`).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from activities.contracts import RunScope, provider_of

if TYPE_CHECKING:
    import httpx

    from activities.ratelimit import RateLimiter
    from tikflow.credentials import CredentialStore
    from tikflow.settings import Settings

__all__ = [
    "ACTIONS",
    "PROVIDER_MODULES",
    "Action",
    "ActionContext",
    "ActionInput",
    "PagedInput",
    "Services",
    "action",
    "load_actions",
]


class ActionInput(BaseModel):
    """Base of every action's `with:` model: unknown keys are errors, as in recipes."""

    model_config = ConfigDict(extra="forbid")


class PagedInput(ActionInput):
    """An action over a paginated listing: `pages` says how many pages to fetch at most."""

    pages: int = Field(default=1, ge=1, le=50, description="Fetch up to this many pages.")


@dataclass
class Services:
    """What every action shares inside one worker process: one pooled HTTP client and the stores.

    Attributes:
        http: The worker's single pooled `httpx.AsyncClient`.
        credentials: Where named credentials are resolved and refreshed tokens written back.
        settings: Provider base URLs and tunables.
        limiter: The per-(provider, credential) rate-limit tracker.
        state: Per-worker coordination (e.g. token-refresh locks), keyed by its owner.
    """

    http: httpx.AsyncClient
    credentials: CredentialStore
    settings: Settings
    limiter: RateLimiter
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionContext:
    """One action invocation: the shared services plus who acts and under which idempotency key.

    Attributes:
        services: The worker's shared services.
        account: Credential name (never the secret).
        idempotency_key: Stable across retries, new for every run: from workflow id, run, poll
            and step path (`activities.contracts.idempotency_key`).
        action: The action name being run.
        run: The run the call belongs to, for the ledger to forget older runs' entries (None for
            calls of runs started before keys named the run).
    """

    services: Services
    account: str
    idempotency_key: str
    action: str
    run: RunScope | None = None


InputT = TypeVar("InputT", bound=ActionInput)
Handler = Callable[[ActionContext, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Action(Generic[InputT]):
    """A registered action.

    Attributes:
        name: Dotted name used in recipes (`tikapi.reply`).
        input_model: The pydantic model of its `with:` mapping.
        handler: Coroutine doing the work; returns a JSON-able dict (normalized; lists in `items`).
        description: One line for `tikflow actions` and the docs.
        endpoint: The provider endpoint it calls (`POST /user/comment`), for the docs table.
        side_effect: True when it changes the outside world (must be idempotent).
        sandbox: True when `tikflow sandbox` serves its endpoint.
    """

    name: str
    input_model: type[InputT]
    handler: Handler
    description: str
    endpoint: str
    side_effect: bool = False
    sandbox: bool = True

    @property
    def provider(self) -> str:
        """The provider key (first part of the name)."""
        return provider_of(self.name)


ACTIONS: dict[str, Action[Any]] = {}

#: Modules whose import registers actions; `load_actions` imports them all.
PROVIDER_MODULES = (
    "activities.builtin",
    "activities.tikapi",
    "activities.tiktok",
    "activities.highlevel",
    "activities.dumpling",
    "activities.socialapi",
)


def action(
    name: str,
    input_model: type[InputT],
    *,
    endpoint: str,
    side_effect: bool = False,
    sandbox: bool = True,
) -> Callable[[Callable[[ActionContext, InputT], Awaitable[dict[str, Any]]]], Handler]:
    """Register the decorated coroutine as the action `name`; its docstring is the description."""

    def register(fn: Callable[[ActionContext, InputT], Awaitable[dict[str, Any]]]) -> Handler:
        if name in ACTIONS:
            raise ValueError(f"action {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        ACTIONS[name] = Action(
            name=name,
            input_model=input_model,
            handler=fn,
            description=doc[0] if doc else "",
            endpoint=endpoint,
            side_effect=side_effect,
            sandbox=sandbox,
        )
        return fn

    return register


def load_actions() -> dict[str, Action[Any]]:
    """Import every provider module (registering its actions) and return the registry."""
    for module in PROVIDER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # A provider module that is not written yet simply contributes no actions.
            if exc.name != module:
                raise
    return ACTIONS
