"""The activity seam of a recipe test: canned results instead of providers, every call recorded.

`CannedActivities` registers one activity per action under the action's name, as the worker
does, so the workflow records the same commands as in a real run. Each call is validated
against the action's input model and recorded (action, step, arguments, whether it is a side
effect), then answered, in this order: the canned result of its named step, the canned result
of its action; then, for a side effect, the dry run's stand-in (`activities.dryrun`: nothing is
sent, made-up ids for what it would have created), and for a read of something a dry run made
up, its settled state. Anything else goes to the in-process sandbox if the test has one, or
fails the run with a non-retryable `NoCannedResult` naming the step.

An `approval:` step's notification (`notify.send` with `event: awaiting_approval`) is a call like
the others; when the case gives that step a decision (`approvals:`), the notification delivers it
to the run (`deliver`: the `approval` signal, as the page would) before it returns, so the run
finds it decided the moment it starts to wait.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.contracts import ActionRequest
from activities.dryrun import DryRun, call_path, is_side_effect
from activities.registry import Action, Services
from activities.runner import ProviderActivities
from tikflow.recipetest.spec import CannedError

__all__ = ["CannedActivities", "RecordedCall", "step_name"]

#: Actions that reach nothing outside the worker: without a canned result they run for real.
_LOCAL = frozenset({"log"})

_ITEM_KEY = re.compile(r"\[[^\]]*\]")
_UNNAMED = re.compile(r"^(\d+|then|else|parallel\d+|try|catch\d+|finally)$")


def step_name(path: str) -> str:
    """The innermost named step of a call's path: `steps.replies[7300].0` → `replies`.

    A sub-recipe's call has the `run:` step's path before its own (`activities.dryrun.call_path`):
    `steps.replies[7300].answer/steps.reply.try.posted` → `posted`.
    """
    for segment in reversed(_ITEM_KEY.sub("", path).split("/")):
        parts = [part.partition("#")[0] for part in segment.split(".")]
        # A step's own call keys add a suffix after `:` (`steps.ask:approval`, its notification).
        parts = [part.partition(":")[0] for part in parts]
        for part in reversed(parts[1:] if parts and parts[0] == "steps" else parts):
            if part and not _UNNAMED.match(part):
                return part
    return path


@dataclass(frozen=True)
class RecordedCall:
    """One call a recipe test's run made.

    Attributes:
        action: The action (`tikapi.reply`).
        path: Its step path (`steps.replies[7300].0`).
        step: The innermost named step (`replies`).
        params: Its validated arguments (JSON-able).
        effect: Whether it is a side effect.
        answered_by: `canned`, `stand-in`, `sandbox`, `local` (run for real: `log`) or `none`.
    """

    action: str
    path: str
    step: str
    params: dict[str, Any]
    effect: bool
    answered_by: str


@dataclass
class CannedActivities(ProviderActivities):
    """Every action answered from `canned` (by step id or action name), every call recorded.

    A canned value is a result (every call), or a list: entries with `with:` answer the calls
    whose arguments hold those values (`{with: {media_id: "7301"}, result: {...}}`), the other
    entries answer the remaining calls in turn, the last one repeating.
    """

    services: Services
    canned: dict[str, dict[str, Any] | list[dict[str, Any]]]
    sandbox: bool = False
    approvals: dict[str, dict[str, str]] = field(default_factory=dict)
    deliver: Callable[[str, dict[str, str]], Awaitable[None]] | None = None
    calls: list[RecordedCall] = field(default_factory=list)
    plan: DryRun = field(default_factory=DryRun)
    _used: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.services)

    def _canned(self, key: str, params: dict[str, Any]) -> dict[str, Any] | CannedError | None:
        results = self.canned.get(key)
        if results is None or isinstance(results, dict):
            return results
        for entry in results:
            if "with" in entry and _holds(params, entry["with"]):
                if "error" in entry:
                    return CannedError.model_validate(entry["error"])
                return dict(entry.get("result") or {})
        in_turn = [entry for entry in results if "with" not in entry]
        if not in_turn:
            return None
        turn = self._used.get(key, 0)
        self._used[key] = turn + 1
        return in_turn[min(turn, len(in_turn) - 1)]

    async def execute(self, act: Action[Any], request: ActionRequest) -> dict[str, Any]:
        """Answer one call as the module docstring says; record it first."""
        params = self.validate(act, request)
        path = call_path(request.idempotency_key)
        step = step_name(path)
        effect = is_side_effect(act, params)
        values = params.model_dump(mode="json", by_alias=True)
        answer = self._canned(step if step in self.canned else act.name, values)
        by = "canned"
        if answer is None and (self.sandbox or act.name in _LOCAL):
            by = "sandbox" if self.sandbox else "local"
        elif answer is None and effect:
            answer, by = self.plan.record(act, request, params), "stand-in"
        elif answer is None:
            answer, by = self.plan.settled(act, request), "stand-in"
        self.calls.append(
            RecordedCall(
                act.name,
                path,
                step,
                values,
                effect,
                "none" if answer is None and by in ("canned", "stand-in") else by,
            )
        )
        await self._decide(act, values)
        if by in ("sandbox", "local"):
            return await super().execute(act, request)
        if isinstance(answer, CannedError):
            # As `activities.errors.to_application_error` fails a call the provider refused.
            provider = act.name.split(".", 1)[0]
            details = {"provider": provider, "code": answer.code, "message": answer.message}
            raise ApplicationError(
                f"{provider} refused {act.name}: {answer.message}",
                details,
                type=answer.type,
                non_retryable=True,
            )
        if answer is not None:
            return dict(answer)
        raise ApplicationError(
            f"no canned result for {act.name} at step {step} ({path}): give `canned: {{{step}: …}}` "
            f"or `canned: {{{act.name}: …}}`, or `sandbox:`",
            type="NoCannedResult",
            non_retryable=True,
        )

    async def _decide(self, act: Action[Any], values: dict[str, Any]) -> None:
        """Deliver the case's decision on the approval this call asks for, if it is one and has one."""
        data = values.get("data")
        if act.name != "notify.send" or not isinstance(data, dict):
            return
        approval_id = data.get("approval_id")
        if data.get("event") != "awaiting_approval" or not isinstance(approval_id, str):
            return
        decision = self.approvals.get(step_name(approval_id.partition("@")[0]))
        if decision is not None and self.deliver is not None:
            await self.deliver(str(values.get("workflow_id", "")), {"id": approval_id, **decision})


def _holds(params: dict[str, Any], wanted: Any) -> bool:
    """Whether a call's arguments hold every key of `wanted` with its value."""
    return isinstance(wanted, dict) and all(
        key in params and params[key] == value for key, value in wanted.items()
    )
