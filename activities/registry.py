"""The action registry: every `call:` a recipe can make, with its input model and its handler.

A provider module declares its operations with `@action(...)`; the recipe loader checks `call:`
names and `with:` mappings against this registry at load time, and the worker turns every entry
into one Temporal activity named after the action (so the Temporal UI shows `tikapi.reply`).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from activities.contracts import RunScope, provider_of

if TYPE_CHECKING:
    import httpx

    from activities.credentials import CredentialStore
    from activities.ledger import EffectLedger
    from activities.ratelimit import RateLimiter
    from activities.settings import Settings

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
    """Base of every action's `with:` model: unknown keys are errors, as in recipes.

    Where an action takes text (a `str` field, or the items of a `list[str]`), a whole number is
    taken as its digits: YAML reads `media_id: 123` as a number, and an id from a provider's
    answer may arrive as one through `{{ video.id }}`, but the user meant the id. Booleans and
    fractional numbers stay refused: `true` or `1e21` as text is a mistake, not an id.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers_as_text(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        text, text_lists = _text_fields(cls)
        converted = dict(data)
        for key, value in data.items():
            if key in text and _is_whole_number(value):
                converted[key] = str(value)
            elif key in text_lists and isinstance(value, list):
                converted[key] = [str(item) if _is_whole_number(item) else item for item in value]
        return converted


def _is_whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@functools.cache
def _text_fields(model: type[BaseModel]) -> tuple[frozenset[str], frozenset[str]]:
    """The keys (names and aliases) of `model`'s text fields and of its lists of text."""
    text: set[str] = set()
    text_lists: set[str] = set()
    for name, info in model.model_fields.items():
        kinds = [a for a in _union_members(info.annotation) if a is not type(None)]
        keys = {key for key in (name, info.alias) if key is not None}
        if kinds == [str]:
            text |= keys
        elif len(kinds) == 1 and typing.get_origin(kinds[0]) is list and typing.get_args(kinds[0]) == (str,):
            text_lists |= keys
    return frozenset(text), frozenset(text_lists)


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


class PagedInput(ActionInput):
    """An action over a paginated listing: `pages` says how many pages to fetch at most."""

    pages: int = Field(default=1, ge=1, le=50, description="Fetch up to this many pages.")


LocalT = TypeVar("LocalT")


@dataclass
class Services:
    """What every action shares inside one worker process: one pooled HTTP client and the stores.

    Attributes:
        http: The worker's single pooled `httpx.AsyncClient`.
        credentials: Where named credentials are resolved and refreshed tokens written back.
        settings: Provider base URLs and tunables.
        limiter: The per-(provider, credential) rate-limit tracker.
        ledger: The effect ledger; None until first use, when `activities.ledger.ledger_for`
            opens it beside the credentials file (tests and the worker may set it up front).
        refresh_locks: One `asyncio.Lock` per (provider, account), so concurrent activities
            refresh an OAuth token once (`activities.tokens`).
    """

    http: httpx.AsyncClient
    credentials: CredentialStore
    settings: Settings
    limiter: RateLimiter
    ledger: EffectLedger | None = None
    refresh_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    _locals: dict[type[Any], Any] = field(default_factory=dict, repr=False)

    def local(self, kind: type[LocalT]) -> LocalT:
        """This worker's one `kind` instance, made with `kind()` on first use.

        A provider package keeps what it remembers per worker (TikAPI: who each account is, the
        results it already returned) in a class of its own, so `Services` needs no field per
        provider and no string keys.
        """
        found = self._locals.get(kind)
        if found is None:
            found = self._locals[kind] = kind()
        return cast("LocalT", found)


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
        local: Whether it runs as a local activity (inside a workflow task: it must not wait
            long, and Temporal's task-queue rate limit does not see it).
    """

    services: Services
    account: str
    idempotency_key: str
    action: str
    run: RunScope | None = None
    local: bool = False


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

if TYPE_CHECKING:
    #: Modules whose import registers actions: the built-ins, then each provider's package.
    PROVIDER_MODULES: tuple[str, ...]


def _provider_modules() -> tuple[str, ...]:
    from activities.provider import providers

    return ("activities.builtin", *(f"activities.{p.name}" for p in providers()))


def __getattr__(name: str) -> Any:
    """`PROVIDER_MODULES`, derived from the provider declarations on first use.

    Lazy because the provider packages import this module to register their actions.
    """
    if name == "PROVIDER_MODULES":
        return _provider_modules()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    for module in _provider_modules():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # A provider module that is not written yet simply contributes no actions.
            if exc.name != module:
                raise
    return ACTIONS
