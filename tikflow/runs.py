"""Starting and steering recipe runs from a client: ids, schedules, signals, status.

Shared by the CLI, the dev stack's demo and the tests, so all of them start runs the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from tikflow.loader import LoadedRecipe, resolve_inputs
from workflows.memory import carried, memory_keys
from workflows.models import DEFAULT_BACKFILL_OVERLAP, Recipe, ScheduleTrigger, parse_duration
from workflows.recipe import (
    PHASE_KEY,
    RECIPE_KEY,
    CallStatus,
    RecipeRun,
    RecipeWorkflow,
    RunResult,
    RunStatus,
)
from workflows.state import LABELS_KEY, MonitorState

if TYPE_CHECKING:
    from temporalio.api.workflow.v1 import PendingActivityInfo

__all__ = [
    "AlreadyRunning",
    "BackfillRefused",
    "ScheduleInfo",
    "ScheduleRun",
    "backfill_schedule",
    "describe_schedule",
    "get_status",
    "label_values",
    "last_state",
    "overlap_policy",
    "run_id_for",
    "start_recipe",
    "steer_schedule",
    "trigger_schedule",
]


class AlreadyRunning(Exception):
    """A run with this id is already going; starting it again would double the automation."""


def run_id_for(recipe: Recipe, inputs: dict[str, Any]) -> str:
    """`recipe-<name>-<hash of inputs>`: the same recipe with the same inputs gets the same id."""
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"recipe-{recipe.recipe}-{digest}"


def side_effect_actions(recipe: Recipe) -> list[str]:
    """Names of the side-effecting actions a recipe can call (counted as effects by the run)."""
    from activities.registry import load_actions

    return [*sorted(name for name, act in load_actions().items() if act.side_effect), "notify.send"]


def build_run(loaded: LoadedRecipe, given: dict[str, Any]) -> RecipeRun:
    """The workflow input for a loaded recipe with the given inputs (defaults and types applied).

    A webhook recipe's inputs that its trigger maps from the event need no value now: each run
    takes them from its event (and fails if the event has none for a required one).
    """
    recipe = loaded.recipe
    webhook = recipe.trigger.webhook if recipe.trigger else None
    if webhook is not None and webhook.inputs:
        optional = {
            name: spec.model_copy(update={"required": False}) if name in webhook.inputs else spec
            for name, spec in recipe.inputs.items()
        }
        recipe = recipe.model_copy(update={"inputs": optional})
    inputs = resolve_inputs(recipe, given, loaded.source)
    return RecipeRun(
        recipe=loaded.recipe,
        inputs=inputs,
        source=loaded.source,
        side_effects=sorted(set(side_effect_actions(loaded.recipe))),
    )


def label_values(labels: dict[str, str]) -> list[str]:
    """`TikflowLabels`' values of `labels`: `key=value`, sorted."""
    return sorted(f"{key}={value}" for key, value in labels.items())


async def start_recipe(
    client: Client,
    loaded: LoadedRecipe,
    given: dict[str, Any],
    *,
    task_queue: str,
    workflow_id: str | None = None,
    search_attributes: bool = True,
    labels: dict[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
    pacer_queue: str | None = None,
) -> tuple[str, WorkflowHandle[Any, Any] | None]:
    """Start a recipe: a workflow, or a Temporal Schedule for `trigger.schedule`.

    The run's labels are the recipe's `labels:` with `labels` (`tikflow run --label`) over them,
    stored in `TikflowLabels` as `key=value` and in the memo. A monitor starts from the memory
    its id's last closed run kept (`last_state`); `warn` gets the one line saying why it starts
    empty when that memory is lost (default: a log warning). `pacer_queue` is where its account
    pacers start (`TIKFLOW_PACER_QUEUE`; None: `activities.contracts.DEFAULT_PACER_QUEUE`).

    Returns:
        The workflow (or schedule) id and, for a workflow, its handle.

    Raises:
        AlreadyRunning: a run (or schedule) with that id exists.
        RecipeError: the inputs are wrong.
    """
    run = build_run(loaded, given)
    run.pacer_queue = pacer_queue
    run_id = workflow_id or run_id_for(loaded.recipe, run.inputs)
    all_labels = {**loaded.recipe.labels, **(labels or {})}
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(RECIPE_KEY, loaded.recipe.recipe),
        SearchAttributePair(PHASE_KEY, "starting"),
    ]
    if all_labels:
        pairs.append(SearchAttributePair(LABELS_KEY, label_values(all_labels)))
    attrs = TypedSearchAttributes(pairs) if search_attributes else TypedSearchAttributes.empty
    memo: dict[str, Any] = {"recipe": loaded.recipe.recipe, "source": loaded.source}
    if all_labels:
        memo["labels"] = all_labels
    trigger = loaded.recipe.trigger
    if trigger is not None and trigger.webhook is not None:
        searchable = (
            {RECIPE_KEY.name: loaded.recipe.recipe, PHASE_KEY.name: "starting"} if search_attributes else {}
        )
        return await _register_webhook(client, run, memo, searchable, task_queue=task_queue), None
    if trigger is not None and trigger.schedule is not None:
        try:
            await client.create_schedule(
                run_id,
                Schedule(
                    action=ScheduleActionStartWorkflow(
                        RecipeWorkflow.run,
                        run,
                        id=f"{run_id}-run",
                        task_queue=task_queue,
                        typed_search_attributes=attrs,
                        memo=memo,
                    ),
                    spec=ScheduleSpec(
                        cron_expressions=[trigger.schedule.cron],
                        time_zone_name=trigger.schedule.timezone,
                        jitter=_duration_or_none(trigger.schedule.jitter),
                    ),
                    policy=schedule_policy(trigger.schedule),
                ),
                # The server turns cron strings into calendar specs; keep the user's words.
                memo={**memo, "cron": trigger.schedule.cron, "timezone": trigger.schedule.timezone},
            )
        except ScheduleAlreadyRunningError:
            raise AlreadyRunning(f"a schedule with id {run_id!r} already exists") from None
        return run_id, None
    if trigger is not None and trigger.poll is not None:
        run.state = await last_state(client, run_id, run.recipe, warn=warn)
    try:
        handle = await client.start_workflow(
            RecipeWorkflow.run,
            run,
            id=run_id,
            task_queue=task_queue,
            search_attributes=attrs,
            memo=memo,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            execution_timeout=None,
            task_timeout=timedelta(seconds=10),
        )
    except WorkflowAlreadyStartedError:
        raise AlreadyRunning(
            f"run {run_id!r} is already running (same recipe and inputs); "
            "stop it first, or start another with --id"
        ) from None
    return run_id, handle


async def last_state(
    client: Client, run_id: str, recipe: Recipe, *, warn: Callable[[str], None] | None = None
) -> MonitorState | None:
    """What a monitor's new run starts from: what its id's last closed run kept (`tikflow.kept_memory`).

    Its `new_only` memory (of the steps `recipe` still has) and the items it had started and not
    finished, which the new run acts on under the old run's idempotency keys. None when there was
    nothing, or the last run is still running; also when it was lost, and then `warn` (default: a
    log warning) gets one line saying so and why.
    """
    from tikflow.kept_memory import kept_memory

    kept = await kept_memory(client, run_id)
    if kept is None:
        return None
    if kept.lost is not None:
        line = f"run {run_id} ended {kept.status} and {kept.lost}: the new run's new_only memory starts empty"
        (warn or logging.getLogger(__name__).warning)(line)
    memory = carried(kept.memory, recipe)
    steps = memory_keys(recipe)
    unfinished = {key: dict(items) for key, items in kept.unfinished.items() if key in steps and items}
    if not memory and not unfinished:
        return None
    return MonitorState(seen=memory, unfinished=unfinished)


def overlap_policy(name: str) -> ScheduleOverlapPolicy:
    """Temporal's overlap policy of a recipe's `overlap:` word (`skip`, `buffer_one`, …)."""
    return ScheduleOverlapPolicy[name.upper()]


def schedule_policy(schedule: ScheduleTrigger) -> SchedulePolicy:
    """The Temporal policy of a recipe's `schedule:`; what it leaves out is Temporal's default.

    A recipe that names no policy gets the same `SchedulePolicy()` schedules had before these
    fields existed: overlap `skip`, the server's catch-up window (365 days), no jitter.
    """
    return SchedulePolicy(
        overlap=overlap_policy(schedule.overlap),
        catchup_window=_duration_or_none(schedule.catchup_window),
    )


def _duration_or_none(text: str | None) -> timedelta | None:
    return None if text is None else parse_duration(text)


async def _register_webhook(
    client: Client, run: RecipeRun, memo: dict[str, Any], searchable: dict[str, str], *, task_queue: str
) -> str:
    """Start the route listener of a webhook recipe: each event it accepts starts one run.

    The listener (`tikflow-route-<route>`) holds the validated recipe and its inputs, so the route
    survives restarts of every process; `tikflow stop tikflow-route-<route>` retires it.

    Raises:
        AlreadyRunning: the route is already registered (by this recipe or another).
    """
    from tikflow.ingress.delivery import register_route
    from workflows.events import RouteSpec, RouteTarget, route_workflow_id

    trigger = run.recipe.trigger
    assert trigger is not None
    webhook = trigger.webhook
    assert webhook is not None
    route_id = route_workflow_id(webhook.route)
    try:
        described = await client.get_workflow_handle(route_id).describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    else:
        if described.status == WorkflowExecutionStatus.RUNNING:
            raise AlreadyRunning(
                f"route {webhook.route!r} is already registered ({route_id}); "
                f"stop it first: tikflow stop {route_id}"
            )
    spec = RouteSpec(
        name=webhook.route,
        auth=webhook.auth,
        credential=webhook.credential,
        target=RouteTarget(
            workflow="RecipeWorkflow",
            task_queue=task_queue,
            args=[run.model_dump(mode="json")],
            filter=webhook.filter,
            event_id=webhook.event_id,
            memo=memo,
            search_attributes=searchable,
            event_field="event",
        ),
    )
    await register_route(client, spec, task_queue=task_queue)
    return route_id


async def get_status(client: Client, workflow_id: str) -> RunStatus:
    """The `status` query of a run, with the attempts of the calls it waits for.

    A call Temporal is retrying looks like any other call to the workflow (the failures stay on
    the server until the last attempt), so the attempt count and the last failure come from the
    run's pending activities (`describe()`); such a run shows phase `backing_off`, what it retries
    in `waiting_for`, the failure as `last_error`, and the next attempt as `backoff_until`.
    """
    handle = client.get_workflow_handle(workflow_id)
    status: RunStatus = await handle.query(RecipeWorkflow.status)
    if not status.calls:
        return status
    try:
        described = await handle.describe()
    except RPCError:
        return status  # the run ended (or the server is busy) in between: the query is the answer
    return with_attempts(status, list(described.raw_description.pending_activities))


def with_attempts(status: RunStatus, pending: list[PendingActivityInfo]) -> RunStatus:
    """`status` with each call's attempt, last failure and next attempt from Temporal.

    A call is matched to its pending activity by action name, in the order both were scheduled
    (the SDK numbers activity ids in scheduling order), so concurrent calls of one action pair up.
    """
    by_action: dict[str, list[PendingActivityInfo]] = {}
    for activity in sorted(pending, key=_schedule_order):
        by_action.setdefault(activity.activity_type.name, []).append(activity)
    calls: list[CallStatus] = []
    for call in sorted(status.calls, key=lambda c: c.started_at):
        infos = by_action.get(call.action)
        info = infos.pop(0) if infos else None
        if info is None:
            calls.append(call)
            continue
        calls.append(
            call.model_copy(
                update={
                    "attempt": info.attempt,
                    "max_attempts": info.maximum_attempts,
                    "last_failure": _failure_text(info) or None,
                    "next_attempt_at": info.next_attempt_schedule_time.ToDatetime(tzinfo=UTC)
                    if info.HasField("next_attempt_schedule_time")
                    else None,
                }
            )
        )
    update: dict[str, Any] = {"calls": calls}
    retrying = [call for call in calls if call.last_failure is not None]
    if retrying:
        first = retrying[0]
        of = f" of {first.max_attempts}" if first.max_attempts else ""
        more = f" (and {len(retrying) - 1} more calls)" if len(retrying) > 1 else ""
        update["last_error"] = f"{first.path} ({first.action}): {first.last_failure}"
        if status.phase == "running":
            update["phase"] = "backing_off"
            update["waiting_for"] = (
                f"{first.path} ({first.action}) to succeed: attempt {first.attempt}{of}{more}"
            )
            update["backoff_until"] = first.next_attempt_at
    return status.model_copy(update=update)


def _schedule_order(info: PendingActivityInfo) -> tuple[int, str]:
    return (int(info.activity_id), "") if info.activity_id.isdigit() else (0, info.activity_id)


def _failure_text(info: PendingActivityInfo) -> str:
    """The message of the previous attempt's failure (an application error's own message)."""
    failure = info.last_failure
    while not failure.message and failure.HasField("cause"):
        failure = failure.cause
    return failure.message


async def wait_result(handle: WorkflowHandle[Any, Any]) -> RunResult:
    """Wait for a run to finish and return its result."""
    result: RunResult = await handle.result()
    return result


@dataclass(frozen=True)
class ScheduleRun:
    """One run a schedule started, and how it went.

    Attributes:
        workflow_id: The run's workflow id (`<schedule id>-run-<time>`).
        started_at: When the schedule started it.
        status: `running`, `completed`, `failed`, `timed_out`, `terminated`, `canceled`, or
            `unknown` when Temporal no longer has it (past the namespace's retention).
    """

    workflow_id: str
    started_at: datetime
    status: str


@dataclass(frozen=True)
class ScheduleInfo:
    """What `tikflow status` shows for a recipe with a `schedule:` trigger.

    Attributes:
        recent_runs: Workflow ids of the last runs it started, oldest first.
        runs: The same runs with when they started and their outcome.
        overlap: The overlap policy, as a recipe writes it (`skip`, `buffer_one`, …).
        catchup_window: The catch-up window; None when the server's default (365 days) holds.
        jitter: The most a run may start after its cron time; None for none.
    """

    schedule_id: str
    recipe: str
    cron: list[str]
    paused: bool
    note: str
    next_runs: list[datetime]
    recent_runs: list[str]
    runs: list[ScheduleRun] = field(default_factory=list)
    overlap: str = "skip"
    catchup_window: timedelta | None = None
    jitter: timedelta | None = None


async def describe_schedule(client: Client, schedule_id: str) -> ScheduleInfo | None:
    """The schedule `schedule_id`, or None when there is none."""
    try:
        described = await client.get_schedule_handle(schedule_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    schedule = described.schedule
    memo = await described.memo()
    recent = [
        (getattr(action.action, "workflow_id", "?"), action.started_at)
        for action in described.info.recent_actions[-5:]
    ]
    statuses = await asyncio.gather(*(_run_status(client, workflow_id) for workflow_id, _ in recent))
    return ScheduleInfo(
        schedule_id=schedule_id,
        recipe=str(memo.get("recipe", "?")),
        cron=list(schedule.spec.cron_expressions) or [str(memo.get("cron", "?"))],
        paused=schedule.state.paused,
        note=schedule.state.note or "",
        next_runs=list(described.info.next_action_times[:3]),
        recent_runs=[workflow_id for workflow_id, _ in recent],
        runs=[
            ScheduleRun(workflow_id=workflow_id, started_at=started, status=status)
            for (workflow_id, started), status in zip(recent, statuses, strict=True)
        ],
        overlap=schedule.policy.overlap.name.lower(),
        catchup_window=schedule.policy.catchup_window,
        jitter=schedule.spec.jitter,
    )


async def _run_status(client: Client, workflow_id: str) -> str:
    """`completed`, `failed`, `running`, … of a schedule's run (its latest execution)."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return "unknown"
        raise
    return described.status.name.lower() if described.status is not None else "unknown"


#: How long `trigger_schedule` waits, by default, for the schedule to report the run it started.
#: A schedule starts its run asynchronously; on a server just started (`tikflow dev`'s first
#: minute) that has been seen to take more than 15 s.
TRIGGER_TIMEOUT_S = 60.0


async def trigger_schedule(
    client: Client, schedule_id: str, *, timeout_s: float = TRIGGER_TIMEOUT_S
) -> str | None:
    """Start a run of the schedule `schedule_id` now (`ScheduleHandle.trigger`); the run's workflow id.

    The run is found either in the schedule's own record of its actions or in the visibility
    store (`TemporalScheduledById`), whichever reports it first.

    Returns:
        The new run's workflow id, or None when there is no such schedule.

    Raises:
        AlreadyRunning: a run the schedule started is still going (the schedule's overlap policy
            would skip the new one, or run the recipe twice at once).
        TimeoutError: neither reported a new run within `timeout_s`.
    """
    handle = client.get_schedule_handle(schedule_id)
    try:
        before = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    running = [getattr(a, "workflow_id", "?") for a in before.info.running_actions]
    if running:
        raise AlreadyRunning(
            f"schedule {schedule_id!r} has a run still going ({running[0]}); "
            "wait for it to finish or stop it, then trigger again"
        )
    seen = {getattr(a.action, "workflow_id", None) for a in before.info.recent_actions}
    seen |= set(await _scheduled_runs(client, schedule_id))
    # A schedule names each run `<workflow id>-<time to the second>`: a trigger in the same second
    # as the last run would get that run's id, and the server drops it. Let that second pass.
    if before.info.recent_actions:
        latest = max(action.started_at for action in before.info.recent_actions)
        since = (datetime.now(UTC) - latest).total_seconds()
        if since < 1.0:
            await asyncio.sleep(1.0 - since + 0.05)
    await handle.trigger()
    # The schedule starts the run asynchronously and has no call that returns its id: poll.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = (await handle.describe()).info
        started = [getattr(a, "workflow_id", None) for a in info.running_actions]
        started += [getattr(a.action, "workflow_id", None) for a in info.recent_actions]
        started += await _scheduled_runs(client, schedule_id)
        fresh = [str(workflow_id) for workflow_id in started if workflow_id and workflow_id not in seen]
        if fresh:
            return fresh[0]
        await asyncio.sleep(0.2)
    raise TimeoutError(
        f"schedule {schedule_id!r} did not start a run within {timeout_s:.0f} s "
        f"(`tikflow status {schedule_id}` shows its recent runs; `--timeout` waits longer)"
    )


async def _scheduled_runs(client: Client, schedule_id: str) -> list[str]:
    """Workflow ids the visibility store lists as started by the schedule (newest first, at most 20)."""
    escaped = schedule_id.replace("\\", "\\\\").replace('"', '\\"')
    ids: list[str] = []
    async for execution in client.list_workflows(f'TemporalScheduledById = "{escaped}"', limit=20):
        ids.append(execution.id)
    return ids


async def steer_schedule(client: Client, schedule_id: str, command: str) -> bool:
    """`pause`, `resume` or `stop` (delete) the schedule `schedule_id`; False when there is none.

    Runs a schedule already started are not touched: they finish on their own, or take the
    same command by their own id.
    """
    if await describe_schedule(client, schedule_id) is None:
        return False
    handle = client.get_schedule_handle(schedule_id)
    if command == "pause":
        await handle.pause(note="paused with tikflow pause")
    elif command == "resume":
        await handle.unpause(note="resumed with tikflow resume")
    elif command == "stop":
        await handle.delete()
    else:
        raise ValueError(f"unknown command {command!r}")
    return True


class BackfillRefused(Exception):
    """A backfill that would do nothing, or not what was asked; the message says why, in one line."""


#: The most runs one `tikflow backfill` starts: more is a mistyped range far more often than a
#: wish (and Temporal lists at most 1,000 matching times); a longer outage is backfilled in parts.
MAX_BACKFILL_RUNS = 500

#: Less than any gap between two cron times: turns Temporal's inclusive range ends into `[from, to)`.
_EPSILON = timedelta(milliseconds=1)


async def backfill_schedule(
    client: Client,
    schedule_id: str,
    start: datetime,
    end: datetime,
    *,
    overlap: str | None = None,
    now: datetime | None = None,
) -> list[datetime]:
    """Run the cron times of `schedule_id` from `start` (included) to `end` (excluded) now.

    The runs are what the schedule would have started at those times (same input, workflow ids
    `<schedule id>-run-<cron time>`), started by Temporal's `ScheduleHandle.backfill` under the
    overlap policy `overlap` (default `DEFAULT_BACKFILL_OVERLAP`).

    Returns:
        The cron times that get a run, oldest first.

    Raises:
        BackfillRefused: no such schedule (or it is a run), `start` is not before `end`, `end`
            is in the future, no cron time falls in the range, or more than `MAX_BACKFILL_RUNS` do.
    """
    from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest

    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("backfill_schedule needs times with a time zone")
    now = now or datetime.now(UTC)
    span = f"from {start.isoformat()} to {end.isoformat()}"
    if start >= end:
        raise BackfillRefused(f"nothing to backfill {span}: --from must be before --to")
    if end > now:
        raise BackfillRefused(
            f"--to {end.isoformat()} is in the future: backfill runs missed times only "
            "(`tikflow trigger ID` runs the schedule once now)"
        )
    described = await _describe_for_backfill(client, schedule_id)
    request = ListScheduleMatchingTimesRequest(namespace=client.namespace, schedule_id=schedule_id)
    # Temporal's list reads (start, end]; shifted by less than a minute it is [start, end).
    request.start_time.FromDatetime(start - _EPSILON)
    request.end_time.FromDatetime(end - _EPSILON)
    listed = await client.workflow_service.list_schedule_matching_times(request)
    times = [stamp.ToDatetime(tzinfo=UTC) for stamp in listed.start_time]
    cron = ", ".join(described.schedule.spec.cron_expressions) or "?"
    if not times:
        raise BackfillRefused(f"no cron time of schedule {schedule_id!r} ({cron}) falls {span}")
    if len(times) > MAX_BACKFILL_RUNS:
        shown = f"{len(times)}" if len(times) < 1000 else "1000 or more"
        raise BackfillRefused(
            f"{shown} cron times of schedule {schedule_id!r} ({cron}) fall {span}; at most "
            f"{MAX_BACKFILL_RUNS} per backfill: split the range"
        )
    await client.get_schedule_handle(schedule_id).backfill(
        # Temporal's backfill reads [start, end]: end - 1 ms leaves a cron time at `end` out.
        ScheduleBackfill(
            start_at=start,
            end_at=end - _EPSILON,
            overlap=overlap_policy(overlap or DEFAULT_BACKFILL_OVERLAP),
        )
    )
    return times


async def _describe_for_backfill(client: Client, schedule_id: str) -> Any:
    """The schedule's description; a missing schedule (or a run's id) is a `BackfillRefused`."""
    try:
        return await client.get_schedule_handle(schedule_id).describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    try:
        await client.get_workflow_handle(schedule_id).describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        raise BackfillRefused(f"no schedule {schedule_id!r} (`tikflow list` shows the runs)") from None
    raise BackfillRefused(
        f"{schedule_id!r} is a run, not a schedule: only a recipe with a `schedule:` trigger "
        "has missed times to backfill"
    )
