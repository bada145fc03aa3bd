"""A run's state as Temporal keeps it: the workflow's input and output, its status, search attributes.

Everything here travels in history (the `RecipeRun` input, the `RunResult` output, the `status`
query's `RunStatus`, the `MonitorState` carried by continue-as-new) or names what the namespace
indexes (`TikflowRecipe`, `TikflowPhase`, `TikflowLabels`), so field names and types are part of the recorded
contract: changing one changes what running workflows decode.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError

from workflows.events import Event
from workflows.models import Recipe

__all__ = [
    "LABELS_KEY",
    "MAX_VARS_BYTES",
    "PHASE_KEY",
    "RECIPE_KEY",
    "SEARCH_ATTRIBUTES",
    "CallStatus",
    "Counters",
    "MonitorState",
    "Phase",
    "RecipeRun",
    "RunResult",
    "RunStatus",
    "SeenIds",
    "bounded_vars",
]

RECIPE_KEY = SearchAttributeKey.for_keyword("TikflowRecipe")
PHASE_KEY = SearchAttributeKey.for_keyword("TikflowPhase")
#: A run's labels, each as `key=value` (the recipe's `labels:` and `tikflow run --label`).
LABELS_KEY = SearchAttributeKey.for_keyword_list("TikflowLabels")

#: Search attributes the namespace needs, name → type (as `temporal operator` spells it).
SEARCH_ATTRIBUTES = {"TikflowRecipe": "Keyword", "TikflowPhase": "Keyword", "TikflowLabels": "KeywordList"}

Phase = Literal[
    "starting",
    "running",
    "sleeping",
    "backing_off",
    "awaiting_reauth",
    "pacing",
    "awaiting_approval",
    "paused",
    "stopping",
    "completed",
    "stopped",
    "failed",
]


class Counters(BaseModel):
    """What a run has done so far (carried across continue-as-new)."""

    polls: int = Field(default=0, description="Polls completed.")
    calls: int = Field(default=0, description="Action calls that succeeded.")
    items_seen: int = Field(default=0, description="Items a `new_only` call returned or `for_each` walked.")
    new_items: int = Field(default=0, description="Of those, items not seen before (up to a `limit`).")
    effects: int = Field(default=0, description="Successful calls of side-effecting actions.")
    errors: int = Field(default=0, description="Steps that failed (continued or not).")
    rate_limited: int = Field(default=0, description="Calls that hit a rate limit the run waited out.")
    backoff_s: float = Field(default=0, description="Total seconds spent waiting out rate limits.")
    pacing_s: float = Field(default=0, description="Total seconds paced calls waited for their slot.")
    reauths: int = Field(default=0, description="Times the run waited for a re-authorization.")
    notifications_failed: int = Field(
        default=0, description="Notifications (`notify` steps, re-authorization notices) not delivered."
    )


class MonitorState(BaseModel):
    """State a monitor carries into its next run on continue-as-new."""

    iteration: int = Field(default=0, description="Polls started since the monitor began.")
    seen: dict[str, list[str]] = Field(default_factory=dict, description="new_only: ids seen, per step.")
    counters: Counters = Field(default_factory=Counters, description="Counters so far.")
    started_at: datetime | None = Field(default=None, description="When the monitor first started.")
    last_error: str | None = Field(default=None, description="The latest error, until the run recovers.")
    recovered_from: str | None = Field(
        default=None, description="The last error the run has since recovered from."
    )
    next_poll_at: datetime | None = Field(default=None, description="When the next poll is due.")
    vars: dict[str, Any] = Field(default_factory=dict, description="`set` values, kept from poll to poll.")
    in_flight: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        exclude=True,
        description=(
            "new_only for_each: the item keys chosen whose steps have not finished, per step, each with"
            " the run and poll (`<first run id>:<poll>`) its idempotency keys name (left out of"
            " `remembered`, given by `unfinished`; never serialized, so no recorded payload carries it)."
        ),
    )
    unfinished: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description=(
            "new_only for_each items a closed earlier run of this id had started and not finished, per"
            " step, each with that run's `<first run id>:<poll>`: this run acts on them again under"
            " that run's idempotency keys, so an effect the provider already accepted is found in the"
            " effect ledger instead of done twice. Used by the first poll, then dropped."
        ),
    )


class RecipeRun(BaseModel):
    """The workflow's input: a validated recipe, its resolved inputs and carried-over state."""

    # The inputs come first, so the Temporal UI's input pane shows them above the recipe body.
    inputs: dict[str, Any] = Field(default_factory=dict, description="Resolved inputs (never secrets).")
    recipe: Recipe = Field(description="The validated recipe.")
    source: str = Field(default="", description="The recipe file it came from.")
    side_effects: list[str] = Field(
        default_factory=list, description="Action names that change the outside world (counted as effects)."
    )
    state: MonitorState | None = Field(default=None, description="Carried over by continue-as-new.")
    event: Event | None = Field(
        default=None, description="The event that started the run (a `trigger: webhook` recipe's)."
    )
    pacer_queue: str | None = Field(
        default=None,
        description=(
            "The task queue its account pacers start on (`TIKFLOW_PACER_QUEUE`); None: "
            "`activities.contracts.DEFAULT_PACER_QUEUE`."
        ),
    )


class CallStatus(BaseModel):
    """A call in flight, as `status` shows it.

    The workflow knows the step and the action; how many attempts Temporal has made and why the
    last one failed live on the server (the pending activity), so `tikflow.runs.get_status`
    fills those in from `describe()`.
    """

    path: str = Field(description="The step path (`steps.videos`, `steps.1[v7].comments`).")
    action: str = Field(description="The action called (`tikapi.hashtag_posts`).")
    started_at: datetime = Field(description="When the workflow scheduled it.")
    attempt: int | None = Field(default=None, description="The attempt Temporal is on (1 = first).")
    max_attempts: int | None = Field(
        default=None, description="Attempts the retry policy allows (0 = no limit)."
    )
    last_failure: str | None = Field(default=None, description="Why the previous attempt failed.")
    next_attempt_at: datetime | None = Field(default=None, description="When the next attempt is due.")


class RunStatus(BaseModel):
    """What `tikflow status` shows: the answer of the `status` query."""

    recipe: str
    phase: Phase
    iteration: int
    paused: bool
    stop_requested: bool
    last_poll_at: datetime | None = None
    next_poll_at: datetime | None = None
    backoff_until: datetime | None = None
    waiting_for: str | None = None
    last_error: str | None = None
    recovered_from: str | None = None
    calls: list[CallStatus] = Field(default_factory=list)
    counters: Counters
    awaiting_reauth: dict[str, str] = Field(
        default_factory=dict,
        description="Accounts the run waits to see re-authorized, each with its provider.",
    )
    approvals: list[str] = Field(
        default_factory=list,
        description="Ids of the approvals waiting for a decision (`tikflow approve RUN_ID --approval ID`).",
    )


class RunResult(BaseModel):
    """What a finished run returns."""

    recipe: str
    outcome: Literal["completed", "stopped"]
    polls: int
    counters: Counters
    outputs: dict[str, Any] = Field(default_factory=dict, description="Top-level step results (last poll).")
    memory: dict[str, list[str]] = Field(
        default_factory=dict,
        description="new_only: the keys seen per step, for the next start of this id (`workflows.memory`).",
    )


@dataclass
class SeenIds:
    """Bounded insertion-ordered sets of ids per `new_only` step."""

    limit: int
    ids: dict[str, dict[str, None]] = field(default_factory=dict)

    def has(self, key: str, value: str) -> bool:
        """Whether `value` was seen under `key`."""
        return value in self.ids.get(key, {})

    def add(self, key: str, values: Sequence[str]) -> None:
        """Remember `values` under `key`, forgetting the oldest past the limit."""
        seen = self.ids.setdefault(key, {})
        for value in values:
            seen[value] = None
        while len(seen) > self.limit:
            del seen[next(iter(seen))]

    def filter_new(self, key: str, values: Sequence[str]) -> list[bool]:
        """Which of `values` are new under `key` (each then remembered, the oldest forgotten)."""
        seen = self.ids.setdefault(key, {})
        fresh: list[bool] = []
        for value in values:
            is_new = value not in seen
            fresh.append(is_new)
            seen[value] = None
        while len(seen) > self.limit:
            del seen[next(iter(seen))]
        return fresh


#: `vars` a monitor carries between polls are kept in history: keep them small.
MAX_VARS_BYTES = 64 * 1024


def bounded_vars(values: dict[str, Any]) -> dict[str, Any]:
    """`values`, if a monitor may carry them into its next poll.

    Raises:
        ApplicationError: `StepFailed`, non-retryable: they are over `MAX_VARS_BYTES` as JSON.
    """
    size = len(json.dumps(values, default=str))
    if size > MAX_VARS_BYTES:
        raise ApplicationError(
            f"`vars` grew to {size} bytes; a monitor may keep at most {MAX_VARS_BYTES} between polls",
            type="StepFailed",
            non_retryable=True,
        )
    return values
