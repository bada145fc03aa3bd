"""`RecipeWorkflow`: runs a validated recipe durably, once or as a monitor.

The recipe arrives as the workflow's input (so every run keeps its own snapshot in history).
This module holds the workflow itself: its signals and queries, the run (once, or a monitor's
poll loop that continues-as-new when Temporal suggests it, carrying its dedupe state and
counters) and the phase machine `status` and `TikflowPhase` show. The rooms below it:

- `workflows.state`: the run's input, output, status and carried state, the search attributes;
- `workflows.policy`: how a call is retried, re-authorized and backed off (`SessionExpired`
  parks the run in `awaiting_reauth` until the `reauthorized` signal; a long `RateLimited` is
  one durable timer; the rest is retried by Temporal or fails the step);
- `workflows.interpreter`: the walk over the steps;
- `workflows.patches`: the `workflow.patched` ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workflows.runner import LeanSandboxedWorkflowRunner

with workflow.unsafe.imports_passed_through():
    from workflows.events import EVENT_SIGNAL, Event
    from workflows.expressions import ExpressionError, evaluate_value
    from workflows.interpreter import Interpreter
    from workflows.links import APPROVAL_QUERY, APPROVAL_SIGNAL
    from workflows.memory import StepMemory, carried, summary
    from workflows.memory import forget as forget_step
    from workflows.models import NotifyStep, Recipe, RetryPolicy, Step, input_value_problem, parse_duration
    from workflows.pacing import PACE_SLOT_SIGNAL, PaceSlot
    from workflows.patches import (
        ALERT_RETRY_PATCH,
        FAILURE_MEMORY_PATCH,
        ITEM_KEY_PATCH,
        NOTIFY_PATCH,
        ON_FAILURE_PATCH,
        QUIET_PHASE_PATCH,
        RUN_SCOPED_KEYS_PATCH,
        SCHEDULE_MEMORY_PATCH,
        SLIDING_WINDOW_PATCH,
        STOP_PATCH,
    )
    from workflows.policy import (
        DEFAULT_CALL_TIMEOUT,
        NON_RETRYABLE_ERRORS,
        CallInFlight,
        RunStopped,
        StepFailed,
    )
    from workflows.state import (
        MAX_VARS_BYTES,
        PHASE_KEY,
        RECIPE_KEY,
        SEARCH_ATTRIBUTES,
        CallStatus,
        Counters,
        MonitorState,
        Phase,
        RecipeRun,
        RunResult,
        RunStatus,
        SeenIds,
        bounded_vars,
    )

__all__ = [
    "ALERT_PATH",
    "ALERT_RETRY",
    "ALERT_TIMEOUT",
    "DEFAULT_CALL_TIMEOUT",
    "ITEM_KEY_PATCH",
    "MAX_CONSECUTIVE_FAILED_POLLS",
    "MAX_VARS_BYTES",
    "NON_RETRYABLE_ERRORS",
    "NOTIFY_PATCH",
    "ON_FAILURE_PATCH",
    "PHASE_KEY",
    "POLLS_PER_RUN",
    "QUIET_PHASE_PATCH",
    "RECIPE_KEY",
    "RUN_SCOPED_KEYS_PATCH",
    "SEARCH_ATTRIBUTES",
    "SLIDING_WINDOW_PATCH",
    "STOP_PATCH",
    "CallStatus",
    "Counters",
    "MonitorState",
    "Phase",
    "RecipeRun",
    "RecipeWorkflow",
    "RunResult",
    "RunStatus",
    "StepFailed",
    "restart_command",
    "workflow_runner",
]

#: Events a run keeps for its `wait_for` steps (the newest).
MAX_INBOX = 200
#: so every run's history stays small (and replays fast) whatever the poll interval.
POLLS_PER_RUN = 50
#: A monitor gives up after this many polls in a row fail (a misconfigured recipe, not a blip).
MAX_CONSECUTIVE_FAILED_POLLS = 5
#: The path a failure alert's `notify.send` is made at (in its idempotency key): no step has it.
ALERT_PATH = "on_failure"
#: A failure alert's retries (`ALERT_RETRY_PATCH`): four attempts within about a minute, at most
#: 90 s in all; then the run fails all the same, with one log line that the alert was not sent.
ALERT_RETRY = RetryPolicy(
    max_attempts=4,
    initial="5s",
    backoff=2.0,
    max_interval="20s",
    max_duration="90s",
    rate_limit_deadline="1m",
)
#: The longest one attempt of a failure alert may take.
ALERT_TIMEOUT = "15s"
#: Phases `TikflowPhase` shows as another (runs with QUIET_PHASE_PATCH).
_SEARCHABLE_PHASE: dict[str, str] = {"sleeping": "running"}
#: Phases a pause hides: a paused run shows `paused` until it is resumed (or ends).
_PAUSABLE_PHASES = frozenset(
    {"starting", "running", "sleeping", "backing_off", "awaiting_reauth", "awaiting_approval", "pacing"}
)


def workflow_runner() -> SandboxedWorkflowRunner:
    """Temporal's workflow sandbox, with the template engine and tikflow's workflow code passed through.

    Jinja2 is deterministic and stateless here; re-importing it per run would cost time and trip
    the sandbox's lock checks. `workflows` (this module included) keeps no module-level state,
    and every module of it but this one was already imported passed through: importing this one
    once instead of once per run saves each cached monitor its own copy (bench/memory.py). The
    runner is the SDK's sandbox minus two per-activation costs (`workflows.runner`).
    """
    return LeanSandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("jinja2", "markupsafe", "workflows")
    )


@workflow.defn(name="RecipeWorkflow")
class RecipeWorkflow(Interpreter):
    """Runs one recipe: once, or as a monitor that polls until stopped."""

    def __init__(self) -> None:
        self._phase: Phase = "starting"
        # What `TikflowPhase` was last set to by this run (None: as the run started).
        self._searchable_phase: str | None = None
        # While paused the phase shows `paused`; this is the phase the run is in underneath.
        self._phase_under_pause: Phase = "running"
        self._paused = False
        self._stop = False
        # `reauthorized` signals received per account, and the accounts a call already waits for:
        # one expiry seen by N concurrent calls is one notification, one wait, one signal.
        self._reauthorized: dict[str, int] = {}
        self._awaiting_reauth: set[str] = set()
        # The provider of each account's expired session, for the `status` query.
        self._reauth_providers: dict[str, str] = {}
        self._waiting_for: str | None = None
        self._backoff_until: datetime | None = None
        # Calls waiting out a rate limit right now (concurrent `for_each` items may all be).
        self._backing_off = 0
        self._backoff_reason: str | None = None
        self._last_poll_at: datetime | None = None
        self._next_poll_at: datetime | None = None
        self._state = MonitorState()
        self._recipe_name = ""
        self._run: RecipeRun | None = None
        self._seen = SeenIds(limit=5000)
        # Calls in flight, by a number of this run's own (so `status` can list them, `stop` cancel them).
        self._calls: dict[int, CallInFlight] = {}
        self._call_count = 0
        # wait_for (see `Interpreter._wait_for`).
        self._inbox: list[Event] = []
        self._inbox_ids: set[str] = set()
        self._inbox_count = 0
        self._consumed: set[str] = set()
        self._subscribed: set[str] = set()
        self._event_waits: dict[int, str] = {}
        # approval (see `Interpreter._approval`).
        self._approvals: dict[str, dict[str, str]] = {}
        self._approval_waits: dict[str, str] = {}
        self._decisions: dict[str, dict[str, str]] = {}
        self._watched: set[str] = set()
        self._revoked: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        # `upgrade`: the new version the monitor continues as after this poll (`workflows.memory`).
        self._upgrade: RecipeRun | None = None
        # Paced calls (`CallPolicy._await_slot`).
        self._pace_slots: dict[str, datetime | None] = {}
        self._effect_bases: dict[str, str] = {}
        self._pace_requests = 0
        self._pacing = 0
        self._pacing_reason: str | None = None

    # -- signals and queries ---------------------------------------------------------------

    @workflow.signal
    def pause(self) -> None:
        """Hold the run before its next call or poll until `resume`."""
        if not self._paused:
            self._phase_under_pause = self._phase
        self._paused = True
        self._set_phase("paused")

    @workflow.signal
    def resume(self) -> None:
        """Continue a paused run."""
        self._paused = False
        if self._phase == "paused":
            self._set_phase(self._phase_under_pause)

    @workflow.signal
    def stop(self) -> None:
        """End the run: calls in flight finish their current attempt, no new call starts."""
        self._stop = True
        if self._calls and workflow.patched(STOP_PATCH):
            # A call retrying an unreachable provider would otherwise hold the run for all its
            # attempts. Cancelling stops the retries at once; an attempt already running ends
            # on its own (WAIT_CANCELLATION_COMPLETED), so a side effect it did is not lost.
            self._set_phase("stopping")
            for call in self._calls.values():
                call.cancelled = True
                if call.handle is not None:  # a local call between attempts has none
                    call.handle.cancel()

    @workflow.signal
    def upgrade(self, run: RecipeRun) -> None:
        """Continue as `run`'s recipe after the current poll, keeping the memory of the steps it still has.

        `tikflow upgrade` validates the new version before it sends it; a paused monitor takes it
        when resumed.
        """
        self._upgrade = run

    @workflow.signal
    def forget(self, step: str) -> None:
        """Forget the `new_only` memory of one step (its id, else its path): it acts on everything again."""
        forget_step(self._seen.ids, step)

    @workflow.query
    def memory(self) -> list[StepMemory]:
        """The `new_only` memory per step: how many keys, the oldest and newest, the watermark."""
        return summary(self._seen.ids)

    @workflow.query
    def remembered(self) -> dict[str, list[str]]:
        """The whole `new_only` memory: the keys per step, what a restart of this run is seeded with.

        Leaves out the `for_each` items whose steps were still running (a run terminated or timed
        out mid-poll never finished them): its restart acts on them. An item whose steps failed
        stays remembered.
        """
        in_flight = self._state.in_flight
        return {k: [x for x in v if x not in in_flight.get(k, ())] for k, v in self._seen.ids.items()}

    @workflow.query
    def unfinished(self) -> dict[str, dict[str, str]]:
        """The `for_each` items left out of `remembered`, per step, each with `<first run id>:<poll>`.

        A restart of this run after it was terminated (or timed out) acts on them again under
        these idempotency keys (`MonitorState.unfinished`), so the effect ledger holds what they did.
        """
        return {k: dict(v) for k, v in self._state.in_flight.items() if v}

    @workflow.signal
    def reauthorized(self, account: str) -> None:
        """The named account has a fresh credential in the store: redo the step that needed it."""
        self._reauthorized[account] = self._reauthorized.get(account, 0) + 1

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: Event) -> None:
        """A provider event from a mailbox this run subscribed to (`wait_for`); a repeat is dropped."""
        if event.id in self._inbox_ids:
            return
        account = event.key.removeprefix("account:")
        if event.type == "authorization.removed" and event.key != account and account in self._watched:
            self._inbox_ids.add(event.id)
            if account not in self._revoked:
                self._revoked.add(account)
                # The workflow's own event loop: deterministic like the rest of the run.
                task = asyncio.get_running_loop().create_task(self._authorization_removed(account))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            return
        self._inbox_ids.add(event.id)
        self._inbox = [*self._inbox, event][-MAX_INBOX:]
        self._inbox_count += 1

    @workflow.signal(name=PACE_SLOT_SIGNAL)
    def pace_slot(self, slot: PaceSlot) -> None:
        """An account pacer's answer to a paced call (one this run no longer awaits is dropped)."""
        if slot.request_id in self._pace_slots:
            self._pace_slots[slot.request_id] = slot.at

    @workflow.signal(name=APPROVAL_SIGNAL)
    def approval(self, decision: dict[str, str]) -> None:
        """A person's decision on a pending approval: `{id, decision, comment, via}`.

        Only the first decision on an approval that is waiting counts: a second one (another
        link, the shell after the page), one for an approval not (or no longer) pending, or one
        that is neither `approve` nor `reject` is logged and dropped.
        """
        approval_id = str(decision.get("id", ""))
        choice = decision.get("decision")
        if (
            approval_id not in self._approvals
            or approval_id in self._decisions
            or choice
            not in (
                "approve",
                "reject",
            )
        ):
            workflow.logger.warning("approval decision ignored", extra={"approval": approval_id})
            return
        self._decisions[approval_id] = {
            "decision": str(choice),
            "comment": str(decision.get("comment", ""))[:500],
            "via": str(decision.get("via", "")),
        }

    @workflow.query(name=APPROVAL_QUERY)
    def approval_request(self, approval_id: str) -> dict[str, str]:
        """What a pending approval shows (label → text).

        Raises:
            ValueError: The approval is not waiting for a decision (decided, timed out, unknown).
        """
        summary = self._approvals.get(approval_id)
        if summary is None or approval_id in self._decisions:
            raise ValueError(f"approval {approval_id!r} is not waiting for a decision")
        return dict(summary)

    @workflow.query
    def status(self) -> RunStatus:
        """Where the run is and what it has done."""
        return RunStatus(
            recipe=self._recipe_name,
            phase=self._phase,
            iteration=self._state.iteration,
            paused=self._paused,
            stop_requested=self._stop,
            last_poll_at=self._last_poll_at,
            next_poll_at=self._next_poll_at,
            backoff_until=self._backoff_until,
            waiting_for=self._waiting_for
            or "; ".join([*self._event_waits.values(), *self._approval_waits.values()])
            or None,
            last_error=self._state.last_error,
            recovered_from=self._state.recovered_from,
            calls=[call.shown() for call in self._calls.values()],
            counters=self._state.counters,
            awaiting_reauth={a: self._reauth_providers.get(a, "") for a in sorted(self._awaiting_reauth)},
            approvals=[a for a in self._approvals if a not in self._decisions],
        )

    # -- the run -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, run: RecipeRun) -> RunResult:
        """Run the recipe; a monitor loops until stopped, continuing-as-new to stay small.

        A run a webhook route started carries its event (`RecipeRun.event`, put there by
        `workflows.events.RouteListenerWorkflow`): the trigger's `inputs` take their values from it.
        """
        if run.event is not None:
            run = self._with_event_inputs(run, run.event)
        self._run = run
        recipe = run.recipe
        self._recipe_name = recipe.recipe
        self._seen = SeenIds(limit=recipe.dedupe_limit)
        if run.state is not None:
            self._state = run.state
            self._seen.ids = {k: dict.fromkeys(v) for k, v in run.state.seen.items()}
        if (
            recipe.trigger is not None
            and recipe.trigger.schedule is not None
            and workflow.has_last_completion_result()
            and workflow.patched(SCHEDULE_MEMORY_PATCH)
        ):
            last = workflow.get_last_completion_result(RunResult)
            if last is not None:
                self._seen.ids = {k: dict.fromkeys(v) for k, v in carried(last.memory, recipe).items()}
        if self._state.started_at is None:
            self._state.started_at = workflow.now()
        poll = recipe.trigger.poll if recipe.trigger else None
        if poll is None:
            try:
                outputs = await self._once(recipe)
            except RunStopped:
                self._ended("stopped")
                return RunResult(
                    recipe=recipe.recipe,
                    outcome="stopped",
                    polls=0,
                    counters=self._state.counters,
                    memory=self._memory(),
                )
            self._set_phase("completed")
            return RunResult(
                recipe=recipe.recipe,
                outcome="completed",
                polls=1,
                counters=self._state.counters,
                outputs=outputs,
                memory=self._memory(),
            )
        return await self._monitor(run, parse_duration(poll.every), poll.max_polls)

    def _with_event_inputs(self, run: RecipeRun, event: Event) -> RecipeRun:
        """`run` with the inputs its webhook trigger maps from `event` (checked against their types)."""
        webhook = run.recipe.trigger.webhook if run.recipe.trigger else None
        if webhook is None:
            return run
        try:
            mapped = evaluate_value(webhook.inputs, {"event": event.model_dump(mode="json")})
        except ExpressionError as exc:
            raise ApplicationError(
                f"trigger.webhook.inputs: {exc}", type="StepFailed", non_retryable=True
            ) from None
        inputs = dict(run.inputs)
        for name, value in mapped.items():
            spec = run.recipe.inputs.get(name)
            if spec is None:
                continue  # the loader refuses such a name; a recipe built in code may have one
            if isinstance(value, str) and spec.type != "string":
                with contextlib.suppress(ValueError):
                    value = spec.coerce(value)
            problem = None if spec.accepts(value) else f"is not {spec.type}"
            problem = problem or input_value_problem(value)
            if problem:
                raise ApplicationError(
                    f"trigger.webhook.inputs.{name}: the event's value {problem}",
                    type="StepFailed",
                    non_retryable=True,
                )
            inputs[name] = value
        missing = [n for n, s in run.recipe.inputs.items() if s.is_required and inputs.get(n) is None]
        if missing:
            raise ApplicationError(
                f"the event gave no value for the required input {missing[0]!r}",
                type="StepFailed",
                non_retryable=True,
            )
        return run.model_copy(update={"inputs": inputs})

    async def _once(self, recipe: Recipe) -> dict[str, Any]:
        self._set_phase("running")
        scope = self._new_scope()
        try:
            await self._steps(recipe.steps, scope, "steps")
        except StepFailed as exc:
            self._state.counters.errors += 1
            self._set_phase("failed")
            await self._alert(str(exc), exc, scope.values["vars"])
            raise ApplicationError(str(exc), type="StepFailed", non_retryable=True) from None
        return dict(scope.values["steps"])

    async def _monitor(self, run: RecipeRun, every: timedelta, max_polls: int | None) -> RunResult:
        recipe = run.recipe
        polls_this_run = 0
        failed_in_a_row = 0
        outputs: dict[str, Any] = {}
        while True:
            if self._state.next_poll_at is not None:
                self._next_poll_at = self._state.next_poll_at
                self._set_phase("sleeping")
                remaining = (self._state.next_poll_at - workflow.now()).total_seconds()
                if remaining > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await workflow.wait_condition(
                            lambda: self._stop or self._upgrade is not None,
                            timeout=timedelta(seconds=remaining),
                        )
                self._next_poll_at = None  # not sleeping any more: nothing is due
            await self._unpaused()
            if self._stop:
                break
            if self._upgrade is not None:
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._continue_as_new(run)
            self._set_phase("running")
            started = workflow.now()
            self._last_poll_at = started
            scope = self._new_scope()
            counters = self._state.counters
            failures_before = counters.errors + counters.notifications_failed
            try:
                await self._steps(recipe.steps, scope, "steps")
                failed_in_a_row = 0
                if counters.errors + counters.notifications_failed == failures_before:
                    self._recovered()  # a clean poll: the last error is history
            except RunStopped:
                break
            except StepFailed as exc:
                failed_in_a_row += 1
                self._state.counters.errors += 1
                self._state.last_error = str(exc)
                workflow.logger.warning(
                    "poll failed",
                    extra={"recipe": recipe.recipe, "error": str(exc), "in_a_row": failed_in_a_row},
                )
                if failed_in_a_row >= MAX_CONSECUTIVE_FAILED_POLLS:
                    self._set_phase("failed")
                    reason = f"{failed_in_a_row} polls in a row failed; last: {exc}"
                    await self._alert(reason, exc, scope.values["vars"])
                    # The memory travels in the failure: its restart starts from it (`tikflow.kept_memory`).
                    kept = [{"memory": self._memory()}] if workflow.patched(FAILURE_MEMORY_PATCH) else []
                    raise ApplicationError(reason, *kept, type="StepFailed", non_retryable=True) from None
            outputs = dict(scope.values["steps"])
            self._state.unfinished = {}  # the first poll acted on what it still listed
            self._state.vars = bounded_vars(scope.values["vars"])
            self._state.iteration += 1
            self._state.counters.polls += 1
            polls_this_run += 1
            self._state.next_poll_at = started + every
            if self._stop or (max_polls is not None and self._state.iteration >= max_polls):
                break
            if (
                polls_this_run >= POLLS_PER_RUN
                or workflow.info().is_continue_as_new_suggested()
                or self._upgrade is not None
            ):
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._continue_as_new(run)
        self._ended("stopped" if self._stop else "completed")
        return RunResult(
            recipe=recipe.recipe,
            outcome="stopped" if self._stop else "completed",
            polls=self._state.iteration,
            counters=self._state.counters,
            outputs=outputs,
            memory=self._memory(),
        )

    def _memory(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self._seen.ids.items()}

    async def _alert(self, reason: str, error: StepFailed, run_vars: dict[str, Any]) -> None:
        """Handle a failing run once: its `on_failure` steps, else one alert.

        The alert goes to `on_failure`'s webhook, else `notify`'s, else the worker's. With
        `on_failure.steps`, they run first (reading `error`, `failure` and the failing run's
        `vars`); the alert is then sent only if `on_failure` names a webhook, or if the steps fail
        too (a step that fails, or a `notify` that is not delivered): then with both reasons in it,
        so a broken handler never leaves a failure unheard.
        A run started before alerts existed sends none (its history has no such activity). An
        alert that cannot be delivered is logged and counted; the run still fails with `reason`.
        """
        if self._run is None or not workflow.patched(ON_FAILURE_PATCH):
            return
        run = self._run
        recipe = run.recipe
        handler = recipe.on_failure
        default = recipe.notify.webhook if recipe.notify else None
        target = (handler.webhook if handler else None) or default
        if handler is not None and handler.steps:
            problem = await self._on_failure_steps(handler.steps, reason, error, run_vars)
            if problem is None and handler.webhook is None:
                self._state.last_error = reason
                return
            if problem is not None:
                reason = f"{reason}; its on_failure steps failed too: {problem}"
        path = ALERT_PATH
        try:
            scope = self._new_scope()
            params = {
                "message": f"{recipe.recipe} failed: {reason}",
                # None: the worker's TIKFLOW_NOTIFY_WEBHOOK, read there so the URL stays out of history.
                "webhook": self._webhook(target, scope, path) if target else None,
                "data": {"event": "failed", "reason": reason, "restart": restart_command(run)},
                "recipe": recipe.recipe,
                "workflow_id": workflow.info().workflow_id,
                "alert": True,
            }
            # The alert's own bounded policy, not the recipe's: a dead webhook must not hold a failed
            # run open for the recipe's hour of retries.
            step = NotifyStep(notify="", retry=ALERT_RETRY, timeout=ALERT_TIMEOUT)
            if not workflow.patched(ALERT_RETRY_PATCH):
                step = NotifyStep(notify="")
            await self._call("notify.send", params, None, step, scope, path, rendered=True)
        except (StepFailed, RunStopped) as exc:
            self._notification_failed(str(exc) or "stopped before the alert was sent", path=path)
        self._state.last_error = reason  # the run's failure stays its last error, not the alert's

    async def _on_failure_steps(
        self, steps: list[Step], reason: str, error: StepFailed, run_vars: dict[str, Any]
    ) -> str | None:
        """Run a recipe's `on_failure` steps for the failure `reason`; why they failed, or None.

        They read the failure as `error` (the fields a `catch` reads), `failure` (`reason`, and
        `restart`: the command that starts the run again) and the failing run's `vars`. A step
        that fails, one that fails under `continue_on_error` and a `notify` that is not delivered
        all count as failing: the handler did not do its job. The run stays `failed` meanwhile.
        """
        assert self._run is not None
        fields = error.fields()
        failure = {"reason": reason, "restart": restart_command(self._run)}
        scope = self._new_scope()
        scope.values["vars"] = dict(run_vars)
        scope = scope.child(error=fields, failure=failure)
        counters = self._state.counters
        failures_before = counters.errors + counters.notifications_failed
        problem: str | None = None
        try:
            await self._steps(steps, scope, f"{ALERT_PATH}.steps")
        except (StepFailed, RunStopped) as exc:
            problem = str(exc) or "stopped before its on_failure steps finished"
        finally:
            self._set_phase("failed")
        if problem is None and counters.errors + counters.notifications_failed != failures_before:
            problem = self._state.last_error or "one of them failed"
        if problem is not None:
            workflow.logger.warning("on_failure steps failed", extra={"error": problem})
        return problem

    def _continue_as_new(self, run: RecipeRun) -> None:
        pacer_queue = run.pacer_queue
        self._state.seen = self._memory()
        if self._upgrade is not None:
            # The new version: its snapshot, the memory of the steps it still has.
            run = self._upgrade
            self._state.seen = carried(self._state.seen, run.recipe)
            workflow.logger.info("upgraded", extra={"recipe": run.recipe.recipe, "source": run.source})
        next_run = RecipeRun(
            recipe=run.recipe,
            inputs=run.inputs,
            source=run.source,
            side_effects=run.side_effects,
            state=self._state,
            pacer_queue=run.pacer_queue or pacer_queue,
        )
        workflow.logger.info(
            "continuing as new", extra={"recipe": run.recipe.recipe, "iteration": self._state.iteration}
        )
        workflow.continue_as_new(next_run)

    def _resume_phase(self) -> None:
        """The phase of whatever still holds the run back, else `running`.

        Concurrent calls wait and succeed independently: one item's success must not show a run
        as `running` while another item still waits for a re-authorization (nothing would tell
        the operator to act) or a rate limit.
        """
        if self._awaiting_reauth:
            self._set_phase("awaiting_reauth")
        elif self._backing_off:
            self._waiting_for = self._backoff_reason
            self._set_phase("backing_off")
        elif self._pacing:
            self._waiting_for = self._pacing_reason
            self._set_phase("pacing")
        elif self._approvals:
            self._waiting_for = None  # `status` lists the approvals
            self._set_phase("awaiting_approval")
        else:
            self._waiting_for = None
            self._set_phase("running")

    # -- helpers -----------------------------------------------------------------------------

    def _notification_failed(
        self, reason: str, *, path: str | None = None, account: str | None = None
    ) -> None:
        """A notification was not delivered: one log line and the status say so; the run goes on.

        A failed `notify` step becomes the last error; a failed re-authorization notice does not
        (the expiry it was about stays the last error, the notice's failure shows in `waiting_for`).
        """
        self._state.counters.notifications_failed += 1
        if path is not None:
            self._state.last_error = reason
        where = {"path": path} if path is not None else {"account": account}
        workflow.logger.warning("notification not delivered", extra={**where, "error": reason})

    def _recovered(self, error: str | None = None) -> None:
        """The run got past its last error (or `error`, if that is still the last): mark it resolved."""
        last = self._state.last_error
        if last is not None and (error is None or last == error):
            self._state.recovered_from = last
            self._state.last_error = None

    def _ended(self, phase: Phase) -> None:
        """The final phase; nothing is due or awaited any more."""
        self._next_poll_at = None
        self._waiting_for = None
        self._backoff_until = None
        self._set_phase(phase)

    async def _unpaused(self) -> None:
        if self._paused:
            previous = self._phase
            self._set_phase("paused")
            await workflow.wait_condition(lambda: not self._paused or self._stop)
            self._set_phase(previous if previous != "paused" else "running")

    def _set_phase(self, phase: Phase) -> None:
        if self._paused and phase in _PAUSABLE_PHASES:
            self._phase_under_pause = phase
            return
        if phase == self._phase:
            return
        self._phase = phase
        # Only runs started with tikflow's search attributes upsert them (the namespace has them).
        attributes = workflow.info().typed_search_attributes
        if attributes.get(RECIPE_KEY) is None:
            return
        searchable: str = phase
        if workflow.patched(QUIET_PHASE_PATCH):
            searchable = _SEARCHABLE_PHASE.get(phase, phase)
            # A continued run starts with the attributes its predecessor left.
            shown = self._searchable_phase or attributes.get(PHASE_KEY)
            if searchable == shown:
                return
            self._searchable_phase = searchable
        workflow.upsert_search_attributes([PHASE_KEY.value_set(searchable)])


def restart_command(run: RecipeRun) -> str:
    """The command line that starts `run`'s recipe again with the same inputs."""
    words = ["tikflow", "run", run.source or run.recipe.recipe]
    for name, value in run.inputs.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        words += ["--input", f"{name}={text}"]
    return shlex.join(words)
