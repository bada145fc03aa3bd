"""Dry runs: every side-effecting call is recorded instead of sent, reads run for real.

A worker made with `ProviderActivities(services, dry_run=DryRun())` never calls the handler of
an action that changes the outside world (the registry's `side_effect` flag, and `http.request`
with a method other than GET or HEAD): it validates the call's input, writes a `PlannedEffect`
into the `DryRun` and answers with a stand-in result, so the recipe walks on as it would. Read
actions run for real. A read of something only a dry run made up (the status of a post that was
never created) is answered with that thing's settled state instead of being sent: the provider
does not know the made-up id.

Enforced here, where actions run, and not in the workflow: whatever a recipe says, a dry-run
worker has no path to a side effect.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from activities.contracts import ActionRequest
from activities.registry import Action, ActionInput

__all__ = [
    "SIMULATED_PREFIX",
    "DryRun",
    "PlannedEffect",
    "call_path",
    "describe_effect",
    "is_side_effect",
]

#: Ids a dry run makes up for what it did not create start with this.
SIMULATED_PREFIX = "dryrun-"

#: `http.request` methods that only read.
_READ_METHODS = frozenset({"GET", "HEAD"})

#: What an effect would have said, in plain words (`{field}` is the call's input).
_DESCRIPTIONS: dict[str, str] = {
    "tikapi.reply": "reply to comment {reply_comment_id} under video {media_id}: {text!r}",
    "tikapi.comment": "comment on video {media_id}: {text!r}",
    "tikapi.like_comment": "like comment {comment_id} under video {media_id}",
    "tikapi.like_video": "like video {media_id}",
    "tikapi.unlike_comment": "unlike comment {comment_id} under video {media_id}",
    "tikapi.unlike_video": "unlike video {media_id}",
    "tikapi.delete_comment": "delete comment {comment_id}",
    "tikapi.send_message": "send a message in conversation {conversation_id}: {text!r}",
    "tikapi.accept_request": "accept the message request of conversation {conversation_id}",
    "notify.send": "notify {webhook}: {message!r}",
    "tiktok.publish_video": "publish {file_path}{video_url} on TikTok as {privacy_level}: {title!r}",
    "tiktok.upload_draft": "upload {file_path}{video_url} to the TikTok inbox as a draft",
    "highlevel.create_post": "post through HighLevel to accounts {account_ids}: {summary!r}",
    "socialapi.create_post": "post through SocialAPI to accounts {account_ids}: {text!r}",
    "http.request": "{method} {url}",
}

#: The fields of a stand-in result that name what the effect would have created.
_CREATED: dict[str, tuple[str, ...]] = {
    "tikapi.reply": ("cid", "comment_id"),
    "tikapi.comment": ("cid", "comment_id"),
    "tiktok.publish_video": ("publish_id",),
    "tiktok.upload_draft": ("publish_id",),
    "highlevel.create_post": ("post_id",),
    "socialapi.create_post": ("post_id",),
}

#: Reads of something a dry run made up, answered with its settled state.
_SETTLED: dict[str, dict[str, Any]] = {
    "tiktok.publish_status": {"status": "PUBLISH_COMPLETE", "fail_reason": None, "post_ids": []},
    "highlevel.get_post": {"status": "published"},
    "socialapi.get_post": {"status": "published"},
}


def is_side_effect(act: Action[Any], params: ActionInput) -> bool:
    """Whether calling `act` with `params` would change the outside world."""
    if act.side_effect:
        return True
    method = getattr(params, "method", None)
    return act.name == "http.request" and method not in _READ_METHODS


@dataclass(frozen=True)
class PlannedEffect:
    """One side effect a dry run held back.

    Attributes:
        action: The action (`tikapi.reply`).
        path: The step path it was called at (`steps.replies[7300…].0`).
        account: The credential name it would have acted as.
        params: Its validated input (JSON-able).
        description: What it would have done, in plain words.
    """

    action: str
    path: str
    account: str
    params: dict[str, Any]
    description: str


@dataclass
class DryRun:
    """What one dry run held back and what it read (shared by the dry-run worker's activities)."""

    effects: list[PlannedEffect] = field(default_factory=list)
    reads: Counter[str] = field(default_factory=Counter)
    #: Reads sent after an effect was held back: they saw the world without it.
    reads_after_effects: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def record(self, act: Action[Any], request: ActionRequest, params: ActionInput) -> dict[str, Any]:
        """Hold back the effect of `request`; the stand-in result the recipe goes on with."""
        values = params.model_dump(mode="json", by_alias=True)
        self.effects.append(
            PlannedEffect(
                action=act.name,
                path=call_path(request.idempotency_key),
                account=request.account,
                params=values,
                description=describe_effect(act.name, values),
            )
        )
        made_up = f"{SIMULATED_PREFIX}{next(self._ids)}"
        return {"dry_run": True, **dict.fromkeys(_CREATED.get(act.name, ()), made_up)}

    def settled(self, act: Action[Any], request: ActionRequest) -> dict[str, Any] | None:
        """The answer to a read of something this dry run made up; None for a read to send."""
        made_up = [
            v for v in request.params.values() if isinstance(v, str) and v.startswith(SIMULATED_PREFIX)
        ]
        if not made_up:
            return None
        self.reads[act.name] += 1
        return {"dry_run": True, **_SETTLED.get(act.name, {}), **request.params}

    def read(self, act: Action[Any]) -> None:
        """Count a read sent for real."""
        self.reads[act.name] += 1
        if self.effects:
            self.reads_after_effects += 1

    def counts(self) -> Counter[str]:
        """Held-back effects per action."""
        return Counter(effect.action for effect in self.effects)


def step_path(idempotency_key: str) -> str:
    """The step path inside an idempotency key (`wf@run:poll:path`, or the older `wf:poll:path`)."""
    rest = idempotency_key.partition("@")[2] or idempotency_key
    parts = rest.split(":", 2)
    return parts[2] if len(parts) == 3 else idempotency_key


def call_path(idempotency_key: str) -> str:
    """A call's step path, after the `run:` step paths of the sub-recipes it is made in, if any.

    A sub-recipe's workflow id is its parent's id and the `run:` step's path
    (`recipe-hashtag-reply-1a2b/steps.replies[7300].answer`), so its reply is
    `steps.replies[7300].answer/steps.reply.try.posted`.
    """
    workflow_id = idempotency_key.partition("@")[0]
    at = workflow_id.find("/steps.")
    path = step_path(idempotency_key)
    return f"{workflow_id[at + 1 :]}/{path}" if at >= 0 else path


class _Fields(dict[str, str]):
    """`format_map` fields: a field the call did not give is empty."""

    def __missing__(self, key: str) -> str:
        return ""


def describe_effect(action: str, params: Mapping[str, Any]) -> str:
    """`action` with `params`, in plain words: `reply to comment 7300… under video 7301…: 'Thanks!'`."""
    template = _DESCRIPTIONS.get(action)
    if template is None:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in params.items() if v not in (None, "", [], {}))
        return f"{action}({shown})"
    fields = _Fields({key: _short(value) for key, value in params.items()})
    if action == "notify.send" and not params.get("webhook"):
        fields["webhook"] = "the log"
    return template.format_map(fields)


def _short(value: Any, limit: int = 120) -> str:
    if isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict) and "credential" in value:
        text = f"credential {value['credential']}"
    else:
        text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
