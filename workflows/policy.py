"""The call policy: how one `call` becomes activity attempts, and what the run does when they fail.

Every `call` is one activity named after the action, on its provider's task queue, retried by
Temporal under the step's (or the recipe's) `retry:` policy, except for the error types that
retrying cannot cure. A monitor's read-only calls run as local activities instead (same name,
policy and error handling; `_runs_locally` says when), so an idle poll is one workflow task. On
top of Temporal's retries, the error table's engine side:

- `SessionExpired`: the run parks in `awaiting_reauth` (one notice per account, however many
  calls saw the expiry) until the `reauthorized` signal, then redoes the call;
- `RateLimited` (a reset longer than the activity's own retry delay): one durable timer, then the
  call again;
- anything else fails the step (`StepFailed`), with the provider's one-line message.

`CallPolicy` is the base of `RecipeWorkflow`: the interpreter calls `_call`; the workflow holds
the state (declared here) and the phase machine this module moves (`_set_phase`,
`_resume_phase`, `_unpaused`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities.contracts import (
        DEFAULT_PACER_QUEUE,
        ActionRequest,
        idempotency_key,
        reauth_command,
        task_queue_for,
    )
    from activities.errors import ProviderError
    from workflows.events import subscribe_mailbox
    from workflows.expressions import is_template
    from workflows.models import (
        ERROR_TYPES,
        CallStep,
        NotifyStep,
        Pace,
        RetryPolicy,
        UntilStep,
        WebhookCredential,
        pace_every,
        parse_duration,
    )
    from workflows.pacing import PaceRelease, PaceRequest, release_slot, request_slot
    from workflows.patches import (
        ACTIVITY_SUMMARY_PATCH,
        AUTH_WATCH_PATCH,
        CANCELLED_RUN_PATCH,
        LOCAL_READS_PATCH,
        PACE_PER_ATTEMPT_PATCH,
        PACER_QUEUE_PATCH,
        RUN_SCOPED_KEYS_PATCH,
        STOP_PATCH,
    )
    from workflows.state import CallStatus, MonitorState, Phase, RecipeRun

if TYPE_CHECKING:
    from workflows.interpreter import Scope

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "NON_RETRYABLE_ERRORS",
    "CallInFlight",
    "CallPolicy",
    "RunStopped",
    "StepFailed",
    "failure_message",
    "non_retryable_errors",
    "retry_delay",
    "retry_policy",
    "step_failure",
]


def non_retryable_errors() -> list[str]:
    """The failure types Temporal must not retry, derived from the error tree's `retryable` flags.

    The provider error classes that are not `retryable` (the tree's base excepted: it is never
    raised itself), last defined first, then `InvalidActionInput`: the activity runner's refusal
    of an input that fails the action's model, which no retry can cure either. The order is the
    one committed histories' retry policies hold (`tests/test_call_policy.py` checks both).
    """
    names: list[str] = []
    pending: list[type[ProviderError]] = list(ProviderError.__subclasses__())
    while pending:
        cls = pending.pop()
        if not cls.retryable:
            names.append(cls.__name__)
        pending += cls.__subclasses__()
    return [*names, "InvalidActionInput"]


#: Calls whose provider error is permanent: Temporal must not retry them.
NON_RETRYABLE_ERRORS = non_retryable_errors()
DEFAULT_CALL_TIMEOUT = timedelta(minutes=2)


class StepFailed(Exception):
    """A step failed; the message names the step and says why (one line).

    Attributes:
        type: The error's type from the error tree (`workflows.models.ERROR_TYPES`): the provider error a call
            ended in after its retries, or `StepFailed` for the recipe's own failures.
        provider: The provider whose call failed, if any.
        code: The provider's own error code, if any.
        reason: The one-line reason without the step path.
        step: The path of the step that failed (filled in by the innermost step that sees it).
    """

    def __init__(
        self,
        message: str,
        *,
        type: str = "StepFailed",
        provider: str | None = None,
        code: str | int | None = None,
        reason: str | None = None,
        step: str | None = None,
    ) -> None:
        super().__init__(message)
        self.type = type
        self.provider = provider
        self.code = code
        self.reason = reason
        self.step = step

    def fields(self) -> dict[str, Any]:
        """The error as a recipe sees it: `error`/`failed` (as ever) and its typed fields."""
        text = str(self)
        message = self.reason
        if message is None:
            prefix = f"{self.step}: "
            message = text[len(prefix) :] if self.step and text.startswith(prefix) else text
        return {
            "error": text,
            "failed": True,
            "type": self.type,
            "code": self.code,
            "provider": self.provider,
            "message": message,
            "step": self.step,
        }


class RunStopped(Exception):
    """`stop` ended the run in the middle of a poll (not a failure: the run ends `stopped`)."""


@dataclass
class CallInFlight:
    """A call the workflow waits for, and what `stop` needs to cancel it.

    A local call (`local`) has no handle between its attempts; its attempts are counted here
    (a regular activity's are on the server, read by `tikflow.runs.with_attempts`).
    """

    path: str
    action: str
    started_at: datetime
    handle: workflow.ActivityHandle[Any] | None
    cancelled: bool = False
    local: bool = False
    attempt: int = 1
    max_attempts: int | None = None
    last_failure: str | None = None
    next_attempt_at: datetime | None = None

    def shown(self) -> CallStatus:
        """The call as `status` shows it (a regular one's attempts are filled in from the server)."""
        if not self.local:
            return CallStatus(path=self.path, action=self.action, started_at=self.started_at)
        return CallStatus(
            path=self.path,
            action=self.action,
            started_at=self.started_at,
            attempt=self.attempt,
            max_attempts=self.max_attempts,
            last_failure=self.last_failure,
            next_attempt_at=self.next_attempt_at,
        )


class CallPolicy:
    """Calls with retries, re-authorization and rate-limit waits (a base of `RecipeWorkflow`).

    The state below is set (and explained) by `RecipeWorkflow.__init__`; `status` reads it.
    """

    _run: RecipeRun | None
    _state: MonitorState
    _recipe_name: str
    _phase: Phase
    _stop: bool
    _reauthorized: dict[str, int]
    _awaiting_reauth: set[str]
    _reauth_providers: dict[str, str]
    _waiting_for: str | None
    _backoff_until: datetime | None
    _backing_off: int
    _backoff_reason: str | None
    _calls: dict[int, CallInFlight]
    _call_count: int
    # TikTok accounts this run watches for `authorization.removed`, and those removed right now.
    _watched: set[str]
    _revoked: set[str]
    _paused: bool
    # Paced calls (`workflows.pacing`): slots the account pacers sent, by request id (only those
    # a call waits for are kept), requests made, calls waiting for their slot, and what they wait for.
    _pace_slots: dict[str, datetime | None]
    _pace_requests: int
    _pacing: int
    _pacing_reason: str | None
    # `for_each` items a closed earlier run had started (`MonitorState.unfinished`): item path →
    # the `<first run id>:<poll>` their calls' idempotency keys name.
    _effect_bases: dict[str, str]

    if TYPE_CHECKING:
        # The phase machine (`RecipeWorkflow`) and the interpreter (`Interpreter`) above.
        def _set_phase(self, phase: Phase) -> None: ...
        def _resume_phase(self) -> None: ...
        async def _unpaused(self) -> None: ...
        def _recovered(self, error: str | None = None) -> None: ...
        def _notification_failed(
            self, reason: str, *, path: str | None = None, account: str | None = None
        ) -> None: ...
        def _new_scope(self) -> Scope: ...
        def _eval(self, value: Any, scope: Scope, path: str) -> Any: ...
        def _webhook(self, target: str | WebhookCredential, scope: Scope, path: str) -> Any: ...

    async def _call(
        self,
        action: str,
        params: dict[str, Any],
        account_expr: str | None,
        step: CallStep | UntilStep | NotifyStep,
        scope: Scope,
        path: str,
        *,
        rendered: bool = False,
        paced: bool = False,
    ) -> Any:
        assert self._run is not None
        recipe = self._run.recipe
        values = params if rendered else self._eval(params, scope, path)
        account = str(self._eval(account_expr, scope, path)) if account_expr else recipe.account
        request = ActionRequest(
            action=action,
            params=values,
            account=account,
            idempotency_key=self._effect_key(path),
            recipe=self._recipe_name,
        )
        timeout = parse_duration(step.timeout or recipe.timeout or "2m")
        policy = step.retry or recipe.retry
        # Rate limits are waited out up to this moment (`retry.rate_limit_deadline`); None: always.
        limit_after = policy.rate_limit_deadline if policy else None
        limit_deadline = workflow.now() + parse_duration(limit_after) if limit_after else None
        # The error this call put in the status (an expiry it waits out): cleared once it succeeds.
        own_error: str | None = None
        if (
            action.startswith("tiktok.")
            and account not in self._watched
            and workflow.patched(AUTH_WATCH_PATCH)
        ):
            self._watched.add(account)
            await subscribe_mailbox("tiktok", f"account:{account}")
        # Each attempt of a paced call takes the account's slot (`PACE_PER_ATTEMPT_PATCH`), so
        # retries, rate-limit and re-authorization waits hold no other recipe of the account.
        pace = step.pace if isinstance(step, CallStep) and not paced else None
        if pace is not None and pace.every is not None and is_template(pace.every):
            said = str(self._eval(pace.every, scope, path))
            try:
                pace_every(said)
            except ValueError as exc:
                raise StepFailed(f"{path}: pace every: {exc}") from None
            pace = pace.model_copy(update={"every": said})
        if pace is not None and not workflow.patched(PACE_PER_ATTEMPT_PATCH):

            def unpaced() -> Awaitable[Any]:
                return self._call(
                    action, params, account_expr, step, scope, path, rendered=rendered, paced=True
                )

            return await self._paced(pace, action, account, path, unpaced)
        while True:
            await self._unpaused()
            if account in self._revoked:
                # TikTok said the user removed our access: wait with the run for the re-authorization.
                await workflow.wait_condition(lambda: account not in self._revoked or self._stop)
            if self._stop and workflow.patched(STOP_PATCH):
                raise RunStopped
            # A re-authorization that lands while this call is in flight cures its 428 too.
            reauths_before = self._reauthorized.get(account, 0)
            schedule_to_close = (
                parse_duration(policy.max_duration) if policy and policy.max_duration else None
            )
            self._call_count += 1
            key = self._call_count
            outcome: Awaitable[Any]
            if self._runs_locally(action):

                def attempt() -> workflow.ActivityHandle[Any]:
                    return workflow.start_local_activity(
                        action,
                        request,
                        summary=activity_summary(path, action, values),
                        start_to_close_timeout=timeout,
                        # Retried here, by `_local_attempts`: visible in `status`, waits durable.
                        retry_policy=TemporalRetryPolicy(maximum_attempts=1),
                        result_type=dict,
                        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    )

                retries = retry_policy(policy)
                call = CallInFlight(
                    path, action, workflow.now(), None, local=True, max_attempts=retries.maximum_attempts
                )
                outcome = self._local_attempts(call, attempt, retries, schedule_to_close)
            elif pace is not None:

                def paced_attempt() -> workflow.ActivityHandle[Any]:
                    return workflow.start_activity(
                        action,
                        request,
                        summary=activity_summary(path, action, values),
                        task_queue=task_queue_for(action, workflow.info().task_queue),
                        start_to_close_timeout=timeout,
                        # Retried here, by `_paced_attempts`: the slot is given back between attempts.
                        retry_policy=TemporalRetryPolicy(maximum_attempts=1),
                        result_type=dict,
                        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    )

                retries = retry_policy(policy)
                # Attempts counted here, as a local call's (`CallInFlight.local`).
                call = CallInFlight(
                    path, action, workflow.now(), None, local=True, max_attempts=retries.maximum_attempts
                )
                outcome = self._paced_attempts(call, paced_attempt, retries, schedule_to_close, pace, account)
            else:
                handle = workflow.start_activity(
                    action,
                    request,
                    summary=activity_summary(path, action, values)
                    if workflow.patched(ACTIVITY_SUMMARY_PATCH)
                    else None,
                    task_queue=task_queue_for(action, workflow.info().task_queue),
                    start_to_close_timeout=timeout,
                    schedule_to_close_timeout=schedule_to_close,
                    retry_policy=retry_policy(policy),
                    result_type=dict,
                    # Only `stop` cancels a call: retries end at once, a running attempt may finish.
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                )
                call = CallInFlight(path, action, workflow.now(), handle)
                outcome = handle
            self._calls[key] = call
            try:
                result = await outcome
            except FailureError as exc:
                if call.cancelled:
                    raise RunStopped from None
                if (
                    workflow.cancellation_reason() is not None
                    and is_cancelled_exception(exc)
                    and workflow.patched(CANCELLED_RUN_PATCH)
                ):
                    raise  # the run was cancelled: it ends cancelled (and gives its pacing slot back)
                # A local activity's failure is its own error, not wrapped in an ActivityError.
                cause = exc.cause if isinstance(exc, ActivityError) else exc
                if isinstance(cause, ApplicationError) and cause.type == "SessionExpired":
                    del self._calls[key]  # waiting for a person, not for this call
                    own_error = await self._await_reauth(account, cause, path, reauths_before) or own_error
                    continue
                if isinstance(cause, ApplicationError) and cause.type == "RateLimited":
                    del self._calls[key]
                    if limit_deadline is not None and workflow.now() + _retry_after(cause) > limit_deadline:
                        past = f"rate-limited past its deadline ({limit_after}): "
                        raise step_failure(exc, path, action, prefix=past) from None
                    await self._back_off(cause, path)
                    continue
                raise step_failure(exc, path, action) from None
            finally:
                self._calls.pop(key, None)
            if own_error is not None:
                self._recovered(own_error)
            self._state.counters.calls += 1
            if action in self._run.side_effects and not (
                isinstance(result, dict) and result.get("already_done")
            ):
                self._state.counters.effects += 1
            if self._phase in ("backing_off", "awaiting_reauth"):
                self._resume_phase()
            return result

    async def _paced(
        self, pace: Pace, action: str, account: str, path: str, call: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Run `call` in the account's pacing slot (`workflows.pacing`), and give the slot back after.

        The run waits (phase `pacing`) for its slot in a durable timer, so a worker restart resumes
        the wait and `stop` ends it. A pause that lands while waiting gives the slot back unused
        (holding it through a pause would stall every recipe of the account) and asks again on
        resume. Only recipes with `pace:` take this path: others record no new command.
        """
        provider = action.split(".", 1)[0]
        while True:
            await self._unpaused()
            if self._stop:
                raise RunStopped
            self._pace_requests += 1
            request_id = f"{workflow.info().run_id}:{self._pace_requests}"
            done_at: datetime | None = None
            granted = False
            closing = False
            try:
                granted = await self._await_slot(pace, provider, account, path, request_id)
                if not granted:
                    continue  # paused in the wait: asked again once resumed
                try:
                    return await call()
                finally:
                    # After the provider saw the request (none of this when the worker drops the run).
                    if workflow.in_workflow():
                        done_at = workflow.now()
            except GeneratorExit:
                # The coroutine is being closed (an evicted run's tasks collected): awaiting now
                # would be "coroutine ignored GeneratorExit"; the run goes on elsewhere, from history.
                closing = True
                raise
            finally:
                # Also when stopped or cancelled: the next call of the account need not wait for us.
                # Not when the worker drops the run from its cache (it goes on elsewhere, from history).
                if not closing and workflow.in_workflow():
                    await release_slot(provider, account, PaceRelease(request_id=request_id, done_at=done_at))

    async def _paced_attempts(
        self,
        call: CallInFlight,
        attempt: Callable[[], workflow.ActivityHandle[Any]],
        policy: TemporalRetryPolicy,
        max_duration: timedelta | None,
        pace: Pace,
        account: str,
    ) -> Any:
        """Run a paced call's attempts under `policy`, each in its own pacing slot of the account.

        As `_local_attempts`, with the slot taken before each attempt and given back when it ends:
        the backoff after a failed attempt is a workflow timer outside the slot, and so are the
        rate-limit and re-authorization waits of `_call` (the failure is raised out of the slot),
        so an account's other recipes post while this call waits out an outage.
        """

        async def one() -> Any:
            call.handle = attempt()
            return await call.handle

        return await self._retried(
            call, lambda: self._paced(pace, call.action, account, call.path, one), policy, max_duration
        )

    def _pacer_queue(self) -> str | None:
        """The queue a pacer this run starts runs on; None: the run's own (runs before the patch)."""
        assert self._run is not None
        if not workflow.patched(PACER_QUEUE_PATCH):
            return None
        return self._run.pacer_queue or DEFAULT_PACER_QUEUE

    async def _await_slot(self, pace: Pace, provider: str, account: str, path: str, request_id: str) -> bool:
        """Wait (phase `pacing`) until this call's slot; False: paused meanwhile (slot unused)."""
        self._pace_slots[request_id] = None  # awaited: the signal handler keeps only these
        what = f"{provider} account {account!r}"
        self._pacing += 1
        self._pacing_reason = f"a pacing slot of {what} (other calls of the account go first)"
        self._resume_phase()
        workflow.set_current_details(f"pacing: waiting for a slot of {what}")
        try:
            asked = await request_slot(
                provider,
                account,
                PaceRequest(
                    workflow_id=workflow.info().workflow_id,
                    request_id=request_id,
                    every_s=parse_duration(pace.every).total_seconds() if pace.every else None,
                    per_day=pace.per_day,
                ),
                self._pacer_queue(),
            )
            if not asked:
                raise StepFailed(f"{path}: the pacer of {what} did not answer")
            await workflow.wait_condition(lambda: self._pace_slots[request_id] is not None or self._stop)
            slot = self._pace_slots[request_id]
            if self._stop or slot is None:
                raise RunStopped
            delay = slot - workflow.now()
            if delay > timedelta(0):
                self._state.counters.pacing_s += delay.total_seconds()
                self._pacing_reason = f"the pacing slot of {what} at {slot:%Y-%m-%d %H:%M:%S} UTC"
                self._resume_phase()
                workflow.set_current_details(f"pacing: {path} waits for {what} until {slot:%H:%M:%S} UTC")
                workflow.logger.info("pacing", extra={"path": path, "seconds": delay.total_seconds()})
                with contextlib.suppress(asyncio.TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._stop or self._paused,
                        timeout=delay,
                        timeout_summary=f"pacing {path}: {what}",
                    )
                if self._stop:
                    raise RunStopped
            return not self._paused
        finally:
            self._pace_slots.pop(request_id, None)
            self._pacing -= 1
            if not self._pacing:
                self._pacing_reason = None
            if workflow.in_workflow():  # not when the worker drops the run from its cache
                if not self._pacing:
                    workflow.set_current_details("")
                self._resume_phase()

    def _runs_locally(self, action: str) -> bool:
        """Whether this call runs as a local activity (`LOCAL_READS_PATCH`).

        Only a provider's read-only actions may: a side effect stays a regular activity (its
        attempts and result recorded by the server, on the provider's rate-limited queue), and
        so do the built-ins (`log`, `notify.send`, `http.request`), which run eagerly on the
        workflow's own queue already. A read runs locally in a monitor whose `poll` says
        `reads: local` (the default), where the same reads repeat every poll (bench/monitors.py:
        an idle poll is one workflow task and a timer instead of three workflow tasks and two
        activity tasks); a one-shot run's calls stay regular activities, each visible as pending
        while it runs.
        """
        assert self._run is not None
        trigger = self._run.recipe.trigger
        if trigger is None or trigger.poll is None or trigger.poll.reads != "local":
            return False
        queue = workflow.info().task_queue
        if action in self._run.side_effects or task_queue_for(action, queue) == queue:
            return False
        return workflow.patched(LOCAL_READS_PATCH)

    async def _local_attempts(
        self,
        call: CallInFlight,
        attempt: Callable[[], workflow.ActivityHandle[Any]],
        policy: TemporalRetryPolicy,
        max_duration: timedelta | None,
    ) -> Any:
        """Run a local activity's attempts under `policy`, as Temporal retries a regular one.

        The backoff between attempts is a workflow timer (a local activity never sleeps in the
        worker; `stop` ends the wait), and the attempt, the last failure and the next attempt's
        time are on `call`, so `status` shows a retrying read as it shows a pending activity.
        Raises the last failure when `policy` (or `max_duration`) allows no further attempt.
        """

        async def once() -> Any:
            call.handle = attempt()
            return await call.handle

        return await self._retried(call, once, policy, max_duration)

    async def _retried(
        self,
        call: CallInFlight,
        once: Callable[[], Awaitable[Any]],
        policy: TemporalRetryPolicy,
        max_duration: timedelta | None,
    ) -> Any:
        """Run `once` until it succeeds or `policy` (or `max_duration`) allows no further attempt.

        The workflow's side of Temporal's retries, for the calls whose attempts it runs itself
        (local reads, paced calls): the backoff is a cancellable workflow timer (`stop` ends
        it), and `call` shows the attempt, the last failure and the next attempt's time.
        """
        deadline = call.started_at + max_duration if max_duration else None
        while True:
            try:
                return await once()
            except FailureError as exc:
                delay = None if call.cancelled else retry_delay(exc, policy, call.attempt)
                if delay is None or (deadline is not None and workflow.now() + delay > deadline):
                    raise
                call.handle = None
                call.last_failure = failure_message(exc)
                call.next_attempt_at = workflow.now() + delay
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(lambda: call.cancelled, timeout=delay)
            if call.cancelled:
                raise RunStopped
            call.attempt += 1

    def _effect_base(self) -> str:
        """`<first run id>:<poll>`: the run and poll this poll's idempotency keys name."""
        return f"{workflow.info().first_execution_run_id}:{self._state.iteration}"

    def _effect_key(self, path: str) -> str:
        """The idempotency key of the call at `path` in this poll of this run.

        A call inside a `for_each` item that a closed earlier run of this id had started and not
        finished gets that run's key (`MonitorState.unfinished`): what it did is in the ledger.
        """
        info = workflow.info()
        if workflow.patched(RUN_SCOPED_KEYS_PATCH):
            run, poll = info.first_execution_run_id, self._state.iteration
            for item_path, base in self._effect_bases.items():
                if path.startswith(f"{item_path}."):
                    run, _, number = base.rpartition(":")
                    poll = int(number)
                    break
            return idempotency_key(info.workflow_id, run, poll, path)
        return f"{info.workflow_id}:{self._state.iteration}:{path}"

    async def _authorization_removed(self, account: str) -> None:
        """TikTok's `authorization.removed` for `account`: park the run's calls with it until re-authorized.

        Runs as its own task (started by the event's signal), so the run shows `awaiting_reauth` and
        the notification goes out at once, whatever the run is doing; calls with the account wait.
        """
        self._revoked.add(account)
        cause = ApplicationError(
            f"the TikTok user removed tikflow's access to account {account!r} (authorization.removed)",
            {"provider": "tiktok", "account": account},
            type="SessionExpired",
        )
        try:
            await self._await_reauth(account, cause, "authorization", self._reauthorized.get(account, 0))
        except (StepFailed, RunStopped):
            pass  # no re-authorization in time, or stopped: calls with it fail or end as they will
        finally:
            self._revoked.discard(account)

    async def _await_reauth(
        self, account: str, cause: ApplicationError, path: str, reauths_before: int
    ) -> str | None:
        """Wait until `account` is re-authorized; the error this put in the status, if any."""
        assert self._run is not None

        def renewed() -> bool:
            return self._reauthorized.get(account, 0) > reauths_before

        if renewed():
            return None  # re-authorized while this call was in flight: redo it with the new key
        # The first call to see the expiry reports it; calls failing alongside wait for the same signal.
        first = account not in self._awaiting_reauth
        reported: str | None = None
        if first:
            self._awaiting_reauth.add(account)
            reported = await self._report_expiry(account, cause, path)
        # The wait may last days: `stop` must end it (runs before STOP_PATCH waited on).
        stoppable = workflow.patched(STOP_PATCH)
        try:
            await workflow.wait_condition(
                lambda: renewed() or (stoppable and self._stop),
                timeout=parse_duration(self._run.recipe.reauth_deadline),
            )
        except TimeoutError:
            self._set_phase("failed")
            deadline = self._run.recipe.reauth_deadline
            raise StepFailed(
                f"{path}: account {account!r} was not re-authorized within {deadline}",
                type="SessionExpired",
                provider=self._reauth_providers.get(account),
                step=path,
            ) from None
        finally:
            if first:
                self._awaiting_reauth.discard(account)
        if not renewed():
            raise RunStopped  # stopped while waiting
        self._resume_phase()
        return reported

    async def _report_expiry(self, account: str, cause: ApplicationError, path: str) -> str:
        """Show the expiry in the status and send the notification; the error it recorded."""
        assert self._run is not None
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        provider = details.get("provider", "provider")
        self._state.counters.reauths += 1
        error = self._state.last_error = f"{path}: {cause.message}"
        self._waiting_for = f"re-authorization of {provider} account {account!r}"
        self._reauth_providers[account] = provider
        self._set_phase("awaiting_reauth")
        workflow_id = workflow.info().workflow_id
        # Only activity input changes with this text; replay compares commands, not inputs.
        message = (
            f"tikflow: the {provider} session of account {account!r} expired ({self._recipe_name}). "
            f"Re-authorize it, then run: {reauth_command(workflow_id, account, provider)}"
        )
        workflow.logger.warning("awaiting re-authorization", extra={"account": account, "provider": provider})
        webhook = self._run.recipe.notify.webhook if self._run.recipe.notify else None
        try:
            await workflow.execute_activity(
                "notify.send",
                ActionRequest(
                    action="notify.send",
                    params={
                        "message": message,
                        "webhook": self._webhook(webhook, self._new_scope(), path) if webhook else None,
                        "data": {"event": "awaiting_reauth", "account": account, "provider": provider},
                        "recipe": self._recipe_name,
                        "workflow_id": workflow_id,
                    },
                    idempotency_key=self._effect_key(f"{path}:reauth{self._state.counters.reauths}"),
                    recipe=self._recipe_name,
                ),
                task_queue=workflow.info().task_queue,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=TemporalRetryPolicy(maximum_attempts=5),
                result_type=dict,
            )
        except (ActivityError, StepFailed) as exc:
            # The run waits all the same: the operator may learn of the expiry from `status`.
            reason = failure_message(exc) if isinstance(exc, ActivityError) else str(exc)
            self._notification_failed(reason, account=account)
            self._waiting_for = f"{self._waiting_for} (the notification failed: {reason})"
        return error

    async def _back_off(self, cause: ApplicationError, path: str) -> None:
        """Wait out a rate limit with one durable timer (`stop` ends the wait)."""
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        retry_after = _retry_after(cause).total_seconds()
        self._state.counters.rate_limited += 1
        self._state.counters.backoff_s += retry_after
        until = workflow.now() + timedelta(seconds=retry_after)
        self._backoff_until = max(self._backoff_until or until, until)
        self._backoff_reason = f"rate limit of {details.get('provider', 'provider')} to reset"
        self._backing_off += 1
        self._resume_phase()
        workflow.logger.info("backing off", extra={"path": path, "seconds": retry_after})
        try:
            if workflow.patched(STOP_PATCH):
                # A daily quota is hours: `stop` ends the wait (the call loop then ends the run).
                with contextlib.suppress(asyncio.TimeoutError):
                    await workflow.wait_condition(lambda: self._stop, timeout=timedelta(seconds=retry_after))
            else:
                await workflow.sleep(timedelta(seconds=retry_after))
        finally:
            self._backing_off -= 1
        if not self._backing_off:
            self._backoff_until = None
        self._resume_phase()


#: Inputs that name what a call acts on, most telling first.
_SUBJECT_KEYS = (
    "reply_comment_id",
    "comment_id",
    "media_id",
    "conversation_id",
    "publish_id",
    "post_id",
    "username",
    "handle",
    "name",
    "query",
    "url",
)


def activity_summary(path: str, action: str, params: Any) -> str:
    """What the Temporal UI shows for a call: `replies[7300…].0 tikapi.reply → 7301…`."""
    step = path.removeprefix("steps.")
    subject = None
    if isinstance(params, dict):
        subject = next((params[k] for k in _SUBJECT_KEYS if isinstance(params.get(k), str | int)), None)
    text = f"{_shortened(step, 60)} {action}"
    return f"{text} → {_shortened(str(subject), 24)}" if subject not in (None, "") else text


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_policy(policy: RetryPolicy | None) -> TemporalRetryPolicy:
    """Temporal's retry policy for a call under a recipe's `retry:` (its defaults where it is silent)."""
    return TemporalRetryPolicy(
        initial_interval=parse_duration(policy.initial)
        if policy and policy.initial
        else timedelta(seconds=1),
        backoff_coefficient=policy.backoff if policy and policy.backoff else 2.0,
        maximum_interval=parse_duration(policy.max_interval)
        if policy and policy.max_interval
        else timedelta(minutes=5),
        maximum_attempts=policy.max_attempts if policy and policy.max_attempts else 20,
        non_retryable_error_types=NON_RETRYABLE_ERRORS,
    )


def retry_delay(exc: FailureError, policy: TemporalRetryPolicy, attempt: int) -> timedelta | None:
    """How long Temporal would wait after failed `attempt` under `policy`; None: no retry.

    As the server decides it for a regular activity: a non-retryable failure (by its flag or its
    type) or the last allowed attempt ends the call; a failure's own `next_retry_delay` (a rate
    limit's reset) wins over the exponential backoff, which is capped at `maximum_interval`.
    """
    cause: BaseException | None = exc
    if isinstance(exc, ActivityError):
        cause = exc.cause
    if isinstance(cause, CancelledError) or (policy.maximum_attempts and attempt >= policy.maximum_attempts):
        return None
    if isinstance(cause, ApplicationError):
        if cause.non_retryable or cause.type in (policy.non_retryable_error_types or ()):
            return None
        if cause.next_retry_delay is not None:
            return cause.next_retry_delay
    delay = policy.initial_interval * policy.backoff_coefficient ** (attempt - 1)
    return min(delay, policy.maximum_interval) if policy.maximum_interval else delay


def _retry_after(cause: ApplicationError) -> timedelta:
    """How long a rate limit says to wait (its `retry_after`; a minute when it does not say)."""
    details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
    return timedelta(seconds=float(details.get("retry_after") or 60))


def step_failure(exc: FailureError, path: str, action: str, *, prefix: str = "") -> StepFailed:
    """The typed `StepFailed` a call's final failure becomes (its type, provider and code kept).

    An application error's `type` is the provider error's class name and its first detail
    `error_details`; an attempt that timed out is an outage (`ProviderUnavailable`), as the
    error tree classifies a timeout. `prefix` goes before the reason (why the call gave up).
    """
    cause: BaseException | None = exc.cause if isinstance(exc, ActivityError) else exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    message = failure_message(exc)
    kind, provider, code = "StepFailed", action.split(".", 1)[0], None
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        if cause.type in ERROR_TYPES:
            kind = cause.type or kind
            provider = str(details.get("provider") or provider)
            code = details.get("code")
            message = str(details.get("message") or message)
    elif isinstance(cause, TimeoutError):
        kind = "ProviderUnavailable"
    return StepFailed(
        f"{path} ({action}): {prefix}{failure_message(exc)}",
        type=kind,
        provider=provider,
        code=code,
        reason=prefix + message,
        step=path,
    )


def failure_message(exc: FailureError) -> str:
    """The one-line reason an activity failed: its innermost application error's message.

    `exc` is the `ActivityError` of a regular activity, or the failure itself (an
    `ApplicationError`, a `TimeoutError`) of a local one.
    """
    cause: BaseException | None = exc.cause if isinstance(exc, ActivityError) else exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or exc)
