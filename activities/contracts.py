"""What crosses the workflow/activity boundary: plain, secret-free pydantic models.

Workflow code imports this module (through `imports_passed_through`), so it must stay free of I/O
and of httpx: it holds only the shapes that end up in Temporal history.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ActionRequest", "RunScope", "idempotency_key", "provider_of", "run_scope", "task_queue_for"]

#: Task queue of the workflows and of the built-in actions; providers get `tikflow.<provider>`.
DEFAULT_TASK_QUEUE = "tikflow"
BUILTIN_PROVIDERS = frozenset({"http", "log", "notify", "tikflow"})


class ActionRequest(BaseModel):
    """One call of a registered action, as the workflow schedules it.

    Everything here is stored in history, so it names a credential (`account`) and never holds one.
    """

    model_config = ConfigDict(extra="forbid")

    action: str = Field(description="Registered action name, e.g. `tikapi.reply`.")
    params: dict[str, Any] = Field(default_factory=dict, description="The step's rendered `with:` mapping.")
    account: str = Field(default="main", description="Credential name to act as.")
    idempotency_key: str = Field(
        description="Stable across retries and replays: workflow id, run, poll, step path and item key."
    )
    recipe: str = Field(default="", description="Recipe name, for logs.")


#: Which run a side effect belongs to: (workflow id, the first run id of its run chain).
RunScope = tuple[str, str]


def idempotency_key(workflow_id: str, first_run_id: str, poll: int, path: str) -> str:
    """The key a call's side effect is recorded and de-duplicated under.

    The same for every retry and replay of one call, and different for a new run of the same
    recipe: the workflow id repeats (it is derived from the inputs), the run does not. The run is
    the *first* run id of the run chain, which Temporal keeps across continue-as-new (the poll
    number keeps counting there, so keys stay unique) and across a workflow reset (an operator's
    reset replays the same run, so what it already did is not done again).
    """
    return f"{workflow_id}@{first_run_id}:{poll}:{path}"


def run_scope(key: str, workflow_id: str) -> RunScope | None:
    """The run an `idempotency_key` of `workflow_id` belongs to; None for keys of older runs."""
    prefix = f"{workflow_id}@"
    if not key.startswith(prefix):
        return None
    first_run_id, sep, _ = key[len(prefix) :].partition(":")
    return (workflow_id, first_run_id) if sep and first_run_id else None


def provider_of(action: str) -> str:
    """The provider key an action belongs to (the part before the first dot)."""
    return action.split(".", 1)[0]


def task_queue_for(action: str, base: str = DEFAULT_TASK_QUEUE) -> str:
    """The task queue an action's activity runs on: one per provider, so quotas can be enforced."""
    provider = provider_of(action)
    if provider in BUILTIN_PROVIDERS:
        return base
    return f"{base}.{provider}"
