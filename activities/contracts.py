"""What crosses the workflow/activity boundary: plain, secret-free pydantic models.

Workflow code imports this module (through `imports_passed_through`), so it must stay free of I/O
and of httpx: it holds only the shapes that end up in Temporal history.
"""

from __future__ import annotations

import re
import shlex
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ACCOUNT_NAME_PATTERN",
    "REAUTH_FIELDS",
    "ActionRequest",
    "RunScope",
    "account_name_problem",
    "http_url_problem",
    "idempotency_key",
    "provider_of",
    "reauth_command",
    "run_scope",
    "task_queue_for",
]

#: What a credential (account) name may be: it becomes a key of the credential store and a part
#: of an environment variable (`TIKFLOW_TIKAPI__BRAND2__ACCOUNT_KEY`), so letters, digits, `_`
#: and `-` (written `_` there), starting with a letter or digit, at most 64 characters. No dot,
#: space or `!`: a shell cannot set a variable whose name holds one.
ACCOUNT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_ACCOUNT_NAME = re.compile(ACCOUNT_NAME_PATTERN)

#: Task queue of the workflows and of the built-in actions; providers get `tikflow.<provider>`.
DEFAULT_TASK_QUEUE = "tikflow"
#: Task queue of the account pacers (`workflows.pacing`): one for the namespace, served by every
#: worker whatever its base queue, because a pacer serves every recipe of its account.
DEFAULT_PACER_QUEUE = "tikflow-pacers"
BUILTIN_PROVIDERS = frozenset({"http", "log", "notify", "tikflow"})

#: The credential fields a re-authorization renews, per provider whose session can expire
#: (`SessionExpired`): TikAPI issues a new account key, TikTok and HighLevel (OAuth apps) a new
#: token pair. SocialAPI's
#: account is reconnected on SocialAPI's side; its key stays.
REAUTH_FIELDS: dict[str, tuple[str, ...]] = {
    "tikapi": ("account_key",),
    "tiktok": ("access_token", "refresh_token"),
    "highlevel": ("token", "refresh_token"),
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
        description="Stable across retries and replays: workflow id, run, poll, step path and item key."
    )
    recipe: str = Field(default="", description="Recipe name, for logs.")


def account_name_problem(name: str) -> str | None:
    """Why `name` cannot name a credential, or None when it can.

    The one rule for every place a name comes in: recipes (checked by the loader) and the
    `tikflow credentials` / `tikflow reauth` commands.
    """
    if _ACCOUNT_NAME.fullmatch(name):
        return None
    return (
        f"account name {name!r} is not valid: letters, digits, `_` and `-`, "
        "starting with a letter or digit, at most 64 characters"
    )


def http_url_problem(url: str) -> str | None:
    """Why `url` cannot receive a webhook POST, or None when it can: an http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        scheme = f"`{parts.scheme}:`" if parts.scheme else "no scheme"
        return f"webhook URL must start with http:// or https:// (found {scheme})"
    if not host:
        return "webhook URL has no host"
    if any(char.isspace() for char in url):
        return "webhook URL contains whitespace"
    return None


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
