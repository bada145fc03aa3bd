"""`RecipeWorkflow`: the interpreter that runs a validated recipe durably.

The recipe arrives as the workflow's input (so every run keeps its own snapshot in history) and is
walked step by step, in the shape of Temporal's DSL sample. Every `call` is one activity named
after the action, on its provider's task queue. Expressions are evaluated here, in the sandboxed
template engine, which is deterministic. Monitors (`trigger.poll`) loop and continue-as-new when
Temporal suggests it, carrying their dedupe state and counters.

The error table's engine side lives here: a `SessionExpired` call parks the run in
`awaiting_reauth` until the `reauthorized` signal; a long `RateLimited` becomes one durable timer;
everything else a call raises is either retried by Temporal (transient) or fails the step.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

with workflow.unsafe.imports_passed_through():
    from activities.contracts import ActionRequest, idempotency_key, reauth_command, task_queue_for
    from workflows.expressions import ExpressionError, evaluate_value, truthy
    from workflows.models import (
        CallStep,
        FailStep,
        ForEachStep,
        IfStep,
        NotifyStep,
        ParallelStep,
        Recipe,
        RetryPolicy,
        SetStep,
        Step,
        UntilStep,
        WaitStep,
        WebhookCredential,
        parse_duration,
    )

__all__ = [
    "PHASE_KEY",
    "RECIPE_KEY",
    "CallStatus",
    "Counters",
    "MonitorState",
    "Phase",
    "RecipeRun",
    "RecipeWorkflow",
    "RunResult",
    "RunStatus",
    "workflow_runner",
]

RECIPE_KEY = SearchAttributeKey.for_keyword("TikflowRecipe")
PHASE_KEY = SearchAttributeKey.for_keyword("TikflowPhase")

#: Search attributes the namespace needs, name → type (as `temporal operator` spells it).
SEARCH_ATTRIBUTES = {"TikflowRecipe": "Keyword", "TikflowPhase": "Keyword"}

Phase = Literal[
    "starting",
    "running",
    "sleeping",
    "backing_off",
    "awaiting_reauth",
    "paused",
    "stopping",
    "completed",
    "stopped",
    "failed",
]

#: A monitor continues-as-new after this many polls even if Temporal has not suggested it yet,
#: so every run's history stays small (and replays fast) whatever the poll interval.
POLLS_PER_RUN = 50
#: A monitor gives up after this many polls in a row fail (a misconfigured recipe, not a blip).
MAX_CONSECUTIVE_FAILED_POLLS = 5
#: Calls whose provider error is permanent: Temporal must not retry them.
NON_RETRYABLE_ERRORS = ["ProviderRejected", "CredentialsRejected", "SessionExpired", "InvalidActionInput"]
DEFAULT_CALL_TIMEOUT = timedelta(minutes=2)
#: `workflow.patched` id of `for_each`'s sliding window (runs started before it used fixed
#: batches of `concurrency` items and keep doing so on replay). Remove the old branch, with
#: `workflow.deprecate_patch`, once no run started before it is open.
SLIDING_WINDOW_PATCH = "for-each-sliding-window"
#: `workflow.patched` id of the quieter `TikflowPhase`: a monitor between polls keeps showing
#: `running` there (`status` still says `sleeping`), instead of two search-attribute updates per
#: poll. Those updates cost a quarter of a dev server's throughput at 1,000 monitors (bench/).
QUIET_PHASE_PATCH = "phase-not-upserted-per-poll"
#: `workflow.patched` id of a `stop` that ends the run promptly: calls in flight get no further
#: attempts (one already running finishes and its result is kept), no new call starts, and a
#: re-authorization or rate-limit wait ends. Runs started before it finished the current poll
#: first, however long its retries or waits took, and keep doing so on replay.
STOP_PATCH = "stop-interrupts-calls-and-waits"
#: `workflow.patched` id of a `notify` step whose delivery fails: logged and counted, the run
#: goes on (before it, the step failed, and with it the poll or the run).
NOTIFY_PATCH = "notify-failure-continues"
#: `workflow.patched` id of idempotency keys that name the run (`activities.contracts.
#: idempotency_key`): before it, a second run with the same inputs (the same workflow id) found
#: the first run's side effects under its keys and did nothing. Runs started before it keep the
#: keys their history holds.
RUN_SCOPED_KEYS_PATCH = "idempotency-keys-name-the-run"
#: Phases `TikflowPhase` shows as another (runs with QUIET_PHASE_PATCH).
_SEARCHABLE_PHASE: dict[str, str] = {"sleeping": "running"}


def workflow_runner() -> SandboxedWorkflowRunner:
    """Temporal's workflow sandbox, with the template engine passed through.

    Jinja2 is deterministic and stateless here; re-importing it per run would cost time and trip
    the sandbox's lock checks.
    """
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("jinja2", "markupsafe")
    )


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


class RecipeRun(BaseModel):
    """The workflow's input: a validated recipe, its resolved inputs and carried-over state."""

    recipe: Recipe = Field(description="The validated recipe.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="Resolved inputs (never secrets).")
    source: str = Field(default="", description="The recipe file it came from.")
    side_effects: list[str] = Field(
        default_factory=list, description="Action names that change the outside world (counted as effects)."
    )
    state: MonitorState | None = Field(default=None, description="Carried over by continue-as-new.")


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


class RunResult(BaseModel):
    """What a finished run returns."""

    recipe: str
    outcome: Literal["completed", "stopped"]
    polls: int
    counters: Counters
    outputs: dict[str, Any] = Field(default_factory=dict, description="Top-level step results (last poll).")


class StepFailed(Exception):
    """A step failed; the message names the step and says why (one line)."""


class _RunStopped(Exception):
    """`stop` ended the run in the middle of a poll (not a failure: the run ends `stopped`)."""


@dataclass
class _CallInFlight:
    """A call the workflow waits for, and what `stop` needs to cancel it."""

    path: str
    action: str
    started_at: datetime
    handle: workflow.ActivityHandle[Any]
    cancelled: bool = False


@dataclass
class _Scope:
    """What expressions see: inputs, step results, vars, loop variables, run info."""

    values: dict[str, Any]

    def child(self, **extra: Any) -> _Scope:
        values = dict(self.values)
        values["steps"] = dict(self.values["steps"])
        values["vars"] = dict(self.values["vars"])
        values.update(extra)
        return _Scope(values)


@dataclass
class _Seen:
    """Bounded insertion-ordered sets of ids per `new_only` step."""

    limit: int
    ids: dict[str, dict[str, None]] = field(default_factory=dict)

    def has(self, key: str, value: str) -> bool:
        return value in self.ids.get(key, {})

    def add(self, key: str, values: Sequence[str]) -> None:
        seen = self.ids.setdefault(key, {})
        for value in values:
            seen[value] = None
        while len(seen) > self.limit:
            del seen[next(iter(seen))]

    def filter_new(self, key: str, values: Sequence[str]) -> list[bool]:
        seen = self.ids.setdefault(key, {})
        fresh: list[bool] = []
        for value in values:
            is_new = value not in seen
            fresh.append(is_new)
            seen[value] = None
        while len(seen) > self.limit:
            del seen[next(iter(seen))]
        return fresh


@workflow.defn(name="RecipeWorkflow")
class RecipeWorkflow:
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
        self._seen = _Seen(limit=5000)
        # Calls in flight, by a number of this run's own (so `status` can list them, `stop` cancel them).
        self._calls: dict[int, _CallInFlight] = {}
        self._call_count = 0

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
                call.handle.cancel()

    @workflow.signal
    def reauthorized(self, account: str) -> None:
        """The named account has a fresh credential in the store: redo the step that needed it."""
        self._reauthorized[account] = self._reauthorized.get(account, 0) + 1

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
            waiting_for=self._waiting_for,
            last_error=self._state.last_error,
            recovered_from=self._state.recovered_from,
            calls=[
                CallStatus(path=call.path, action=call.action, started_at=call.started_at)
                for call in self._calls.values()
            ],
            counters=self._state.counters,
            awaiting_reauth={a: self._reauth_providers.get(a, "") for a in sorted(self._awaiting_reauth)},
        )

    # -- the run -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, run: RecipeRun) -> RunResult:
        """Run the recipe; a monitor loops until stopped, continuing-as-new to stay small."""
        self._run = run
        recipe = run.recipe
        self._recipe_name = recipe.recipe
        self._seen = _Seen(limit=recipe.dedupe_limit)
        if run.state is not None:
            self._state = run.state
            self._seen.ids = {k: dict.fromkeys(v) for k, v in run.state.seen.items()}
        if self._state.started_at is None:
            self._state.started_at = workflow.now()
        poll = recipe.trigger.poll if recipe.trigger else None
        if poll is None:
            try:
                outputs = await self._once(recipe)
            except _RunStopped:
                self._ended("stopped")
                return RunResult(
                    recipe=recipe.recipe, outcome="stopped", polls=0, counters=self._state.counters
                )
            self._set_phase("completed")
            return RunResult(
                recipe=recipe.recipe,
                outcome="completed",
                polls=1,
                counters=self._state.counters,
                outputs=outputs,
            )
        return await self._monitor(run, parse_duration(poll.every), poll.max_polls)

    async def _once(self, recipe: Recipe) -> dict[str, Any]:
        self._set_phase("running")
        scope = self._new_scope()
        try:
            await self._steps(recipe.steps, scope, "steps")
        except StepFailed as exc:
            self._state.counters.errors += 1
            self._set_phase("failed")
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
                            lambda: self._stop, timeout=timedelta(seconds=remaining)
                        )
                self._next_poll_at = None  # not sleeping any more: nothing is due
            await self._unpaused()
            if self._stop:
                break
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
            except _RunStopped:
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
                    raise ApplicationError(
                        f"{failed_in_a_row} polls in a row failed; last: {exc}",
                        type="StepFailed",
                        non_retryable=True,
                    ) from None
            outputs = dict(scope.values["steps"])
            self._state.vars = _bounded_vars(scope.values["vars"])
            self._state.iteration += 1
            self._state.counters.polls += 1
            polls_this_run += 1
            self._state.next_poll_at = started + every
            if self._stop or (max_polls is not None and self._state.iteration >= max_polls):
                break
            if polls_this_run >= POLLS_PER_RUN or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._continue_as_new(run)
        self._ended("stopped" if self._stop else "completed")
        return RunResult(
            recipe=recipe.recipe,
            outcome="stopped" if self._stop else "completed",
            polls=self._state.iteration,
            counters=self._state.counters,
            outputs=outputs,
        )

    def _continue_as_new(self, run: RecipeRun) -> None:
        self._state.seen = {k: list(v) for k, v in self._seen.ids.items()}
        carried = RecipeRun(
            recipe=run.recipe,
            inputs=run.inputs,
            source=run.source,
            side_effects=run.side_effects,
            state=self._state,
        )
        workflow.logger.info(
            "continuing as new", extra={"recipe": run.recipe.recipe, "iteration": self._state.iteration}
        )
        workflow.continue_as_new(carried)

    # -- steps -------------------------------------------------------------------------------

    def _new_scope(self) -> _Scope:
        assert self._run is not None
        info = workflow.info()
        return _Scope(
            {
                "inputs": dict(self._run.inputs),
                "steps": {},
                "vars": dict(self._state.vars),
                "now": workflow.now().isoformat(),
                "run": {
                    "workflow_id": info.workflow_id,
                    "recipe": self._recipe_name,
                    "iteration": self._state.iteration,
                },
            }
        )

    async def _steps(self, steps: Sequence[Step], scope: _Scope, path: str) -> None:
        for index, step in enumerate(steps):
            here = f"{path}.{step.id or index}"
            result = await self._step(step, scope, here)
            if step.id is not None and result is not _SKIPPED:
                scope.values["steps"][step.id] = result

    async def _step(self, step: Step, scope: _Scope, path: str) -> Any:
        guarded = not isinstance(step, ForEachStep | IfStep) and step.when is not None
        if guarded and step.when is not None and not self._condition(step.when, scope, path):
            return _SKIPPED
        try:
            return await self._dispatch(step, scope, path)
        except StepFailed as exc:
            if not step.continue_on_error:
                raise
            self._state.counters.errors += 1
            self._state.last_error = str(exc)
            return {"error": str(exc), "failed": True}

    async def _dispatch(self, step: Step, scope: _Scope, path: str) -> Any:
        if isinstance(step, UntilStep):
            return await self._until(step, scope, path)
        if isinstance(step, CallStep):
            return await self._call_step(step, scope, path)
        if isinstance(step, ForEachStep):
            return await self._for_each(step, scope, path)
        if isinstance(step, IfStep):
            branch = step.then if self._condition(step.when, scope, path) else step.else_
            await self._steps(branch, scope, f"{path}.{'then' if branch is step.then else 'else'}")
            return {"branch": "then" if branch is step.then else "else"}
        if isinstance(step, WaitStep):
            await workflow.sleep(parse_duration(step.wait))
            return {"waited": step.wait}
        if isinstance(step, SetStep):
            values = self._eval(step.set, scope, path)
            scope.values["vars"].update(values)
            return values
        if isinstance(step, ParallelStep):
            branches = [scope.child() for _ in step.parallel]
            await asyncio.gather(
                *(
                    self._steps(branch, branch_scope, f"{path}.parallel{i}")
                    for i, (branch, branch_scope) in enumerate(zip(step.parallel, branches, strict=True))
                )
            )
            for branch_scope in branches:
                scope.values["steps"].update(branch_scope.values["steps"])
            return {"branches": len(branches)}
        if isinstance(step, FailStep):
            raise StepFailed(f"{path}: {self._eval(step.fail, scope, path)}")
        if isinstance(step, NotifyStep):
            return await self._notify(step, scope, path)
        raise StepFailed(f"{path}: unsupported step {type(step).__name__}")

    async def _call_step(self, step: CallStep, scope: _Scope, path: str) -> Any:
        result = await self._call(step.call, step.with_, step.account, step, scope, path)
        if step.new_only and isinstance(result, dict) and isinstance(result.get("items"), list):
            items = result["items"]
            keys = [
                str(item.get(step.new_only, "")) if isinstance(item, dict) else str(item) for item in items
            ]
            fresh = self._seen.filter_new(step.id or _static(path), keys)
            new_items = [item for item, is_new in zip(items, fresh, strict=True) if is_new]
            self._state.counters.items_seen += len(items)
            self._state.counters.new_items += len(new_items)
            result = {**result, "items": new_items, "seen": len(items)}
        return result

    async def _until(self, step: UntilStep, scope: _Scope, path: str) -> Any:
        deadline = workflow.now() + parse_duration(step.deadline)
        every = parse_duration(step.every)
        attempt = 0
        while True:
            result = await self._call(step.call, step.with_, step.account, step, scope, f"{path}#{attempt}")
            if step.id is not None:
                scope.values["steps"][step.id] = result
            if self._condition(step.until, scope.child(result=result), path):
                return result
            if workflow.now() + every > deadline:
                raise StepFailed(f"{path}: `until` condition still false after {step.deadline}")
            attempt += 1
            await workflow.sleep(every)

    async def _for_each(self, step: ForEachStep, scope: _Scope, path: str) -> Any:
        items = self._eval(step.for_each, scope, path)
        if items is None:
            items = []
        if isinstance(items, dict):
            items = list(items.values())
        if not isinstance(items, list):
            raise StepFailed(f"{path}: for_each needs a list, got {type(items).__name__}")
        limit = self._eval(step.limit, scope, path) if step.limit is not None else None
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise StepFailed(f"{path}: for_each limit must be a whole number, got {limit!r}")
        seen_key = f"{step.id or _static(path)}#each"
        chosen: list[tuple[str, _Scope]] = []
        chosen_keys: list[str] = []
        if step.new_only is not None:
            self._state.counters.items_seen += len(items)
        for index, item in enumerate(items):
            if limit is not None and len(chosen) >= limit:
                break
            if step.new_only is not None:
                item_key = str(item.get(step.new_only, "")) if isinstance(item, dict) else str(item)
                if self._seen.has(seen_key, item_key):
                    continue
                self._state.counters.new_items += 1
            child = scope.child(**{step.as_: item})
            if step.when is not None and not self._condition(step.when, child, path):
                continue
            chosen.append((f"{path}[{_item_key(item, index)}]", child))
            if step.new_only is not None:
                chosen_keys.append(item_key)
        # Remembered before the items run: a failed item is not retried by the next poll either,
        # exactly as with a call step's `new_only` (Temporal already retried it durably).
        self._seen.add(seen_key, chosen_keys)
        failures: list[str] = []
        collected: list[Any] = [None] * len(chosen)

        async def one(position: int, item_path: str, child: _Scope) -> None:
            try:
                await self._steps(step.steps, child, item_path)
            except StepFailed as exc:
                if not step.continue_on_error:
                    raise
                failures.append(str(exc))
                return
            if step.collect is not None:
                collected[position] = self._eval(step.collect, child, item_path)

        if workflow.patched(SLIDING_WINDOW_PATCH):
            # A sliding window: an item starts as soon as any running one finishes, so one slow
            # item (a 429 waited out, a long upload) does not hold up `concurrency - 1` others.
            gate = asyncio.Semaphore(step.concurrency)
            stopped = False

            async def windowed(position: int, item_path: str, child: _Scope) -> None:
                nonlocal stopped
                async with gate:
                    if stopped:  # an earlier item failed the step: start no more
                        return
                    try:
                        await one(position, item_path, child)
                    except BaseException:
                        stopped = True
                        raise

            await asyncio.gather(*(windowed(i, p, c) for i, (p, c) in enumerate(chosen)))
        else:
            # Runs started before the sliding window went in replay with fixed batches.
            for start in range(0, len(chosen), step.concurrency):
                batch = chosen[start : start + step.concurrency]
                await asyncio.gather(*(one(start + i, p, c) for i, (p, c) in enumerate(batch)))
        self._state.counters.errors += len(failures)
        result: dict[str, Any] = {
            "count": len(items),
            "processed": len(chosen),
            "failed": len(failures),
            "errors": failures[:10],
        }
        if step.collect is not None:
            gathered: list[Any] = []
            for value in collected:
                if isinstance(value, list):
                    gathered.extend(value)
                elif value is not None:
                    gathered.append(value)
            result["items"] = gathered
        return result

    async def _notify(self, step: NotifyStep, scope: _Scope, path: str) -> Any:
        assert self._run is not None
        target = step.webhook or (self._run.recipe.notify.webhook if self._run.recipe.notify else None)
        params = {
            "message": self._eval(step.notify, scope, path),
            "webhook": self._webhook(target, scope, path) if target else None,
            "data": self._eval(step.data, scope, path),
            "recipe": self._recipe_name,
            "workflow_id": workflow.info().workflow_id,
        }
        try:
            return await self._call("notify.send", params, None, step, scope, path, rendered=True)
        except StepFailed as exc:
            # A notification that cannot be delivered (a webhook down) must not take the run with
            # it: the run's own work goes on, the failure is logged and shown by `status`.
            if not workflow.patched(NOTIFY_PATCH):
                raise
            self._notification_failed(str(exc), path=path)
            return {"sent": False, "failed": True, "error": str(exc)}

    # -- calls -------------------------------------------------------------------------------

    async def _call(
        self,
        action: str,
        params: dict[str, Any],
        account_expr: str | None,
        step: CallStep | UntilStep | NotifyStep,
        scope: _Scope,
        path: str,
        *,
        rendered: bool = False,
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
        # The error this call put in the status (an expiry it waits out): cleared once it succeeds.
        own_error: str | None = None
        while True:
            await self._unpaused()
            if self._stop and workflow.patched(STOP_PATCH):
                raise _RunStopped
            # A re-authorization that lands while this call is in flight cures its 428 too.
            reauths_before = self._reauthorized.get(account, 0)
            handle = workflow.start_activity(
                action,
                request,
                task_queue=task_queue_for(action, workflow.info().task_queue),
                start_to_close_timeout=timeout,
                schedule_to_close_timeout=parse_duration(policy.max_duration)
                if policy and policy.max_duration
                else None,
                retry_policy=_retry_policy(policy),
                result_type=dict,
                # Only `stop` cancels a call: retries end at once, a running attempt may finish.
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            self._call_count += 1
            key = self._call_count
            call = self._calls[key] = _CallInFlight(path, action, workflow.now(), handle)
            try:
                result = await handle
            except ActivityError as exc:
                if call.cancelled:
                    raise _RunStopped from None
                cause = exc.cause
                if isinstance(cause, ApplicationError) and cause.type == "SessionExpired":
                    del self._calls[key]  # waiting for a person, not for this call
                    own_error = await self._await_reauth(account, cause, path, reauths_before) or own_error
                    continue
                if isinstance(cause, ApplicationError) and cause.type == "RateLimited":
                    del self._calls[key]
                    await self._back_off(cause, path)
                    continue
                raise StepFailed(f"{path} ({action}): {_failure_message(exc)}") from None
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

    def _effect_key(self, path: str) -> str:
        """The idempotency key of the call at `path` in this poll of this run."""
        info = workflow.info()
        if workflow.patched(RUN_SCOPED_KEYS_PATCH):
            return idempotency_key(info.workflow_id, info.first_execution_run_id, self._state.iteration, path)
        return f"{info.workflow_id}:{self._state.iteration}:{path}"

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
            raise StepFailed(
                f"{path}: account {account!r} was not re-authorized within {self._run.recipe.reauth_deadline}"
            ) from None
        finally:
            if first:
                self._awaiting_reauth.discard(account)
        if not renewed():
            raise _RunStopped  # stopped while waiting
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
            reason = _failure_message(exc) if isinstance(exc, ActivityError) else str(exc)
            self._notification_failed(reason, account=account)
            self._waiting_for = f"{self._waiting_for} (the notification failed: {reason})"
        return error

    async def _back_off(self, cause: ApplicationError, path: str) -> None:
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        retry_after = float(details.get("retry_after") or 60)
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

    def _eval(self, value: Any, scope: _Scope, path: str) -> Any:
        try:
            return evaluate_value(value, scope.values)
        except ExpressionError as exc:
            raise StepFailed(f"{path}: expression failed: {exc}") from None

    def _webhook(self, target: str | WebhookCredential, scope: _Scope, path: str) -> Any:
        """A notification's target: a rendered URL, or the name of the credential holding one."""
        if isinstance(target, WebhookCredential):
            return {"credential": target.credential}
        return self._eval(target, scope, path)

    def _condition(self, source: str, scope: _Scope, path: str) -> bool:
        try:
            return truthy(source, scope.values)
        except ExpressionError as exc:
            raise StepFailed(f"{path}: condition failed: {exc}") from None

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


_SKIPPED = object()
#: Phases a pause hides: a paused run shows `paused` until it is resumed (or ends).
_PAUSABLE_PHASES = frozenset({"starting", "running", "sleeping", "backing_off", "awaiting_reauth"})
#: `vars` a monitor carries between polls are kept in history: keep them small.
MAX_VARS_BYTES = 64 * 1024


def _bounded_vars(values: dict[str, Any]) -> dict[str, Any]:
    import json

    size = len(json.dumps(values, default=str))
    if size > MAX_VARS_BYTES:
        raise ApplicationError(
            f"`vars` grew to {size} bytes; a monitor may keep at most {MAX_VARS_BYTES} between polls",
            type="StepFailed",
            non_retryable=True,
        )
    return values


def _static(path: str) -> str:
    """A step path without item keys: the same step in every loop iteration."""
    out = []
    depth = 0
    for char in path:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out).split("#")[0]


def _item_key(item: Any, index: int) -> str:
    if isinstance(item, dict):
        for key in ("id", "cid", "publish_id", "conversation_id", "post_id", "key"):
            value = item.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return str(value)
    return str(index)


def _retry_policy(policy: RetryPolicy | None) -> TemporalRetryPolicy:
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


def _failure_message(exc: ActivityError) -> str:
    cause: BaseException | None = exc.cause
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or exc)
