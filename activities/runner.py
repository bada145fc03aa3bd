"""Turns every registered action into a Temporal activity, with one error mapping for all.

`ProviderActivities(services)` holds the worker's shared dependencies (the pooled HTTP client,
the credential store, the rate limiter); `activities()` returns one activity per action, named
after the action, grouped by the task queue it runs on. Made with `dry_run=DryRun()`, the
activities hold back every side effect (`activities.dryrun`): the one place that decides it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import ActionRequest, run_scope, task_queue_for
from activities.dryrun import DryRun, is_side_effect
from activities.errors import ProviderError, to_application_error
from activities.registry import Action, ActionContext, ActionInput, Services, load_actions

__all__ = ["ProviderActivities"]

log = structlog.get_logger("tikflow.activities")


class ProviderActivities:
    """The activities of one worker: every registered action, sharing `services`.

    With `dry_run`, side-effecting calls are recorded there and never reach their handler.
    """

    def __init__(self, services: Services, *, dry_run: DryRun | None = None) -> None:
        self.services = services
        self.dry_run = dry_run

    @staticmethod
    def validate(act: Action[Any], request: ActionRequest) -> ActionInput:
        """The call's `with:` as `act`'s input model; a non-retryable `InvalidActionInput` otherwise."""
        try:
            params: ActionInput = act.input_model.model_validate(request.params)
            return params
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'with'}: {e['msg']}" for e in exc.errors(include_url=False)
            )
            raise ApplicationError(
                f"{act.name}: invalid input: {problems}", type="InvalidActionInput", non_retryable=True
            ) from None

    async def execute(self, act: Action[Any], request: ActionRequest) -> dict[str, Any]:
        """Run one action: validate its input, call its handler, map provider errors once."""
        info = activity.info()
        with structlog.contextvars.bound_contextvars(
            workflow_id=info.workflow_id, activity=act.name, attempt=info.attempt, account=request.account
        ):
            params = self.validate(act, request)
            if self.dry_run is not None:
                if is_side_effect(act, params):
                    log.info("dry run: side effect held back")
                    return self.dry_run.record(act, request, params)
                settled = self.dry_run.settled(act, request)
                if settled is not None:
                    return settled
                self.dry_run.read(act)
            ctx = ActionContext(
                services=self.services,
                account=request.account,
                idempotency_key=request.idempotency_key,
                action=act.name,
                run=run_scope(request.idempotency_key, info.workflow_id or ""),
                local=info.is_local,
            )
            try:
                result = await act.handler(ctx, params)
            except ProviderError as exc:
                log.warning("action failed", error_type=type(exc).__name__, error=str(exc))
                raise to_application_error(exc) from None
            log.debug("action done")
            return result

    def _activity(self, act: Action[Any]) -> Callable[[ActionRequest], Awaitable[dict[str, Any]]]:
        async def run_action(request: ActionRequest) -> dict[str, Any]:
            return await self.execute(act, request)

        run_action.__doc__ = act.description
        return activity.defn(name=act.name)(run_action)

    def activities(self, base_queue: str) -> dict[str, list[Callable[..., Any]]]:
        """Task queue → the activities that run on it (one queue per provider, built-ins on base)."""
        grouped: dict[str, list[Callable[..., Any]]] = defaultdict(list)
        for act in load_actions().values():
            grouped[task_queue_for(act.name, base_queue)].append(self._activity(act))
        grouped.setdefault(base_queue, [])
        return dict(grouped)
