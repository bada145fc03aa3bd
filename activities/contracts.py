"""What crosses the workflow/activity boundary: plain, secret-free pydantic models.

Workflow code imports this module (through `imports_passed_through`), so it must stay free of I/O
and of httpx: it holds only the shapes that end up in Temporal history.
"""

from __future__ import annotations

import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["REAUTH_FIELDS", "ActionRequest", "provider_of", "reauth_command", "task_queue_for"]

#: Task queue of the workflows and of the built-in actions; providers get `tikflow.<provider>`.
DEFAULT_TASK_QUEUE = "tikflow"
BUILTIN_PROVIDERS = frozenset({"http", "log", "notify", "tikflow"})

#: The credential fields a re-authorization renews, per provider whose session can expire
#: (`SessionExpired`): TikAPI issues a new account key, TikTok a new token pair. SocialAPI's
#: account is reconnected on SocialAPI's side; its key stays.
REAUTH_FIELDS: dict[str, tuple[str, ...]] = {
    "tikapi": ("account_key",),
    "tiktok": ("access_token", "refresh_token"),
    "socialapi": (),
}


class ActionRequest(BaseModel):
    """One call of a registered action, as the workflow schedules it.

    Everything here is stored in history, so it names a credential (`account`) and never holds one.
    """

    model_config = ConfigDict(extra="forbid")

    action: str = Field(description="Registered action name, e.g. `tikapi.reply`.")
    params: dict[str, Any] = Field(default_factory=dict, description="The step's rendered `with:` mapping.")
    account: str = Field(default="main", description="Credential name to act as.")
    idempotency_key: str = Field(
        description="Stable across retries and replays: workflow id, step path and item key."
    )
    recipe: str = Field(default="", description="Recipe name, for logs.")


def provider_of(action: str) -> str:
    """The provider key an action belongs to (the part before the first dot)."""
    return action.split(".", 1)[0]


def task_queue_for(action: str, base: str = DEFAULT_TASK_QUEUE) -> str:
    """The task queue an action's activity runs on: one per provider, so quotas can be enforced."""
    provider = provider_of(action)
    if provider in BUILTIN_PROVIDERS:
        return base
    return f"{base}.{provider}"


def reauth_command(workflow_id: str, account: str, provider: str) -> str:
    """The `tikflow reauth` command that resumes a run, with placeholders for the new fields.

    Complete but secret-free: the values are `…`, and the account and id are shell-quoted, so
    what a notification suggests can be pasted once the values are filled in.
    """
    words = ["tikflow", "reauth", workflow_id, "--account", account]
    if provider in REAUTH_FIELDS:
        words += ["--provider", provider]
    command = " ".join(shlex.quote(word) for word in words)
    pairs = " ".join(f"{name}=…" for name in REAUTH_FIELDS.get(provider, ()))
    return f"{command} {pairs}".rstrip()
