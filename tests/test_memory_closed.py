"""Memory that survives a monitor that failed or was terminated: its restart answers no comment twice."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker
from test_memory import MONITOR, answered, replied
from test_recipe_workflow import Actions, recipe, status_when, workers

from activities.contracts import ActionRequest
from tests.support.waiting import eventually
from tikflow.kept_memory import kept_memory
from tikflow.runs import build_run, run_id_for, start_recipe
from workflows.recipe import MAX_CONSECUTIVE_FAILED_POLLS, RecipeRun, RecipeWorkflow, RunResult

FIRST = [{"cid": "a", "t": 1}, {"cid": "b", "t": 2}]
LATER = [*FIRST, {"cid": "c", "t": 3}]
#: What the first poll leaves (the for_each without `new_only` keeps an empty entry).
KEPT = {"comments": ["a", "b"], "comments#after": ["2"], "steps.1#each": []}


def listing_then_outage(outage: int):
    """Poll 1 lists FIRST, the next `outage` polls are refused, then LATER is listed."""
    calls = itertools.count()

    def listing(request: ActionRequest) -> dict[str, Any]:
        n = next(calls)
        if n == 0:
            return {"items": FIRST}
        if n <= outage:
            raise ApplicationError("media not found", type="ProviderRejected", non_retryable=True)
        return {"items": LATER}

    return listing


async def terminated_after_first_poll(client: Any, loaded: Any, task_queue: str) -> Any:
    """Start `loaded` as a monitor, terminate it once its first poll is done, read its kept memory."""
    run_id, first = await start_recipe(client, loaded, {}, task_queue=task_queue, search_attributes=False)
    assert first is not None
    await status_when(first, lambda s: s.iteration == 1 and s.phase == "sleeping")
    await first.terminate("operator pulled the plug")
    return await kept_memory(client, run_id)


async def test_a_monitor_that_gave_up_restarts_from_its_memory(time_env, task_queue):
    actions = Actions(
        tikapi__comments=listing_then_outage(MAX_CONSECUTIVE_FAILED_POLLS),
        tikapi__reply=answered,
        notify__send=answered,  # the give-up alert
    )
    loaded = recipe(MONITOR.format(step="comments"))
    warnings: list[str] = []
    async with workers(time_env.client, task_queue, actions):
        run_id, first = await start_recipe(
            time_env.client, loaded, {}, task_queue=task_queue, search_attributes=False
        )
        assert first is not None
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(first.result(), 60)
        # The failure carries the memory: no replay is needed to read it.
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.details[0]["memory"] == KEPT
        _, again = await start_recipe(
            time_env.client, loaded, {}, task_queue=task_queue, search_attributes=False, warn=warnings.append
        )
        assert again is not None
        await status_when(again, lambda s: s.iteration == 1)
        await again.signal(RecipeWorkflow.stop)
        ended: RunResult = await again.result()
    assert replied(actions) == ["a", "b", "c"]
    assert ended.counters.new_items == 1
    assert warnings == []
    assert run_id == again.id


async def test_a_terminated_monitor_restarts_from_the_memory_its_history_replays_to(time_env, task_queue):
    actions = Actions(tikapi__comments=listing_then_outage(0), tikapi__reply=answered)
    loaded = recipe(MONITOR.format(step="comments"))
    warnings: list[str] = []
    async with workers(time_env.client, task_queue, actions):
        kept = await terminated_after_first_poll(time_env.client, loaded, task_queue)
        assert kept is not None
        assert (kept.status, kept.memory, kept.lost) == (
            "terminated",
            KEPT,
            None,
        )
        _, again = await start_recipe(
            time_env.client, loaded, {}, task_queue=task_queue, search_attributes=False, warn=warnings.append
        )
        assert again is not None
        await status_when(again, lambda s: s.iteration == 1)
        await again.signal(RecipeWorkflow.stop)
        await again.result()
    assert replied(actions) == ["a", "b", "c"]
    assert warnings == []


async def test_a_failed_run_without_memory_in_its_failure_is_replayed(time_env, task_queue):
    # A run-once recipe's failure carries no memory (as a monitor's before FAILURE_MEMORY_PATCH).
    text = MONITOR.format(step="comments").replace("trigger: {poll: {every: 1m}}\n", "")
    actions = Actions(tikapi__comments=listing_then_outage(0), tikapi__reply=answered)
    broken = recipe(text + "  - fail: then it broke\n")
    async with workers(time_env.client, task_queue, actions):
        run_id, handle = await start_recipe(
            time_env.client, broken, {}, task_queue=task_queue, search_attributes=False
        )
        assert handle is not None
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    kept = await kept_memory(time_env.client, run_id)
    assert kept is not None
    assert (kept.status, kept.memory, kept.lost) == ("failed", KEPT, None)


@workflow.defn(name="RecipeWorkflow", sandboxed=False)
class AnotherVersion:
    """A `RecipeWorkflow` whose commands today's code would not make: its history does not replay."""

    @workflow.run
    async def run(self, run: RecipeRun) -> None:
        await workflow.sleep(timedelta(hours=1))


async def test_memory_that_cannot_be_recovered_is_one_warning_and_an_empty_start(time_env, task_queue):
    actions = Actions(tikapi__comments=listing_then_outage(0), tikapi__reply=answered)
    loaded = recipe(MONITOR.format(step="comments"))
    run_id = run_id_for(loaded.recipe, {})
    async with Worker(time_env.client, task_queue=task_queue, workflows=[AnotherVersion]):
        other = await time_env.client.start_workflow(
            AnotherVersion.run, build_run(loaded, {}), id=run_id, task_queue=task_queue
        )

        async def timer_started() -> bool:
            history = await other.fetch_history()
            return any(event.HasField("timer_started_event_attributes") for event in history.events)

        await eventually(timer_started, within=10, what="the other version's timer")
        await other.terminate()
    warnings: list[str] = []
    async with workers(time_env.client, task_queue, actions):
        _, again = await start_recipe(
            time_env.client, loaded, {}, task_queue=task_queue, search_attributes=False, warn=warnings.append
        )
        assert again is not None
        await status_when(again, lambda s: s.iteration == 1)
        await again.signal(RecipeWorkflow.stop)
        await again.result()
    [line] = warnings
    assert line.startswith(
        f"run {run_id} ended terminated and its history did not replay with this version ("
    )
    assert line.endswith("): the new run's new_only memory starts empty")
    assert "\n" not in line
    assert replied(actions) == ["a", "b"]


async def test_a_monitor_that_timed_out_restarts_from_its_memory(time_env, task_queue):
    actions = Actions(tikapi__comments=listing_then_outage(0), tikapi__reply=answered)
    loaded = recipe(MONITOR.format(step="comments"))
    run_id = run_id_for(loaded.recipe, {})
    async with workers(time_env.client, task_queue, actions):
        # `tikflow run` gives a monitor no execution timeout; one started with one ends timed out.
        first = await time_env.client.start_workflow(
            RecipeWorkflow.run,
            build_run(loaded, {}),
            id=run_id,
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=90),
        )
        with pytest.raises(WorkflowFailureError):
            await first.result()
        kept = await kept_memory(time_env.client, run_id)
        assert kept is not None
        assert (kept.status, kept.memory) == (
            "timed_out",
            KEPT | {"comments": ["a", "b", "c"], "comments#after": ["3"]},
        )
        _, again = await start_recipe(
            time_env.client, loaded, {}, task_queue=task_queue, search_attributes=False
        )
        assert again is not None
        await status_when(again, lambda s: s.iteration == 1)
        await again.signal(RecipeWorkflow.stop)
        await again.result()
    assert replied(actions) == ["a", "b", "c"]


#: A monitor whose `for_each` remembers the comments it answers (`new_only` on the for_each).
EACH_MONITOR = """
recipe: answer
trigger: {poll: {every: 1m}}
steps:
  - id: comments
    call: tikapi.comments
    with: {media_id: v1}
  - id: replies
    for_each: "{{ steps.comments.items }}"
    as: comment
    new_only: cid
    steps:
      - call: tikapi.reply
        with: {media_id: v1, reply_comment_id: "{{ comment.cid }}", text: hi}
"""


async def test_a_monitor_terminated_mid_reply_keeps_no_memory_of_the_unfinished_item(time_env, task_queue):
    sending = asyncio.Event()
    release = asyncio.Event()
    first_run = True

    async def reply(request: ActionRequest) -> dict[str, Any]:
        # The first run's reply to `b` is cut off by the terminate: it never returns a result.
        if first_run and request.params["reply_comment_id"] == "b":
            sending.set()
            await release.wait()
            raise ApplicationError("cut off", type="ProviderRejected", non_retryable=True)
        return {"replied": True}

    actions = Actions(tikapi__comments=lambda request: {"items": FIRST}, tikapi__reply=reply)
    loaded = recipe(EACH_MONITOR)
    async with workers(time_env.client, task_queue, actions):
        run_id, first = await start_recipe(
            time_env.client, loaded, {}, task_queue=task_queue, search_attributes=False
        )
        assert first is not None
        await asyncio.wait_for(sending.wait(), 30)
        await first.terminate("operator pulled the plug mid-poll")
        first_run = False
        release.set()
        kept = await kept_memory(time_env.client, run_id)
        assert kept is not None
        # `a` was answered, `b`'s steps never finished: the restart must answer it.
        assert (kept.status, kept.memory.get("replies#each"), kept.lost) == ("terminated", ["a"], None)
        before = len(replied(actions))
        _, again = await start_recipe(
            time_env.client, loaded, {}, task_queue=task_queue, search_attributes=False
        )
        assert again is not None
        await status_when(again, lambda s: s.iteration == 1 and s.phase == "sleeping")
        await again.signal(RecipeWorkflow.stop)
        ended: RunResult = await again.result()
    assert replied(actions)[before:] == ["b"]
    assert ended.memory["replies#each"] == ["a", "b"]


async def test_an_item_whose_steps_failed_stays_remembered(time_env, task_queue):
    def reply(request: ActionRequest) -> dict[str, Any]:
        if request.params["reply_comment_id"] == "b":
            raise ApplicationError("comment deleted", type="ProviderRejected", non_retryable=True)
        return {"replied": True}

    actions = Actions(tikapi__comments=lambda request: {"items": FIRST}, tikapi__reply=reply)
    loaded = recipe(EACH_MONITOR.replace("as: comment", "as: comment\n    continue_on_error: true"))
    async with workers(time_env.client, task_queue, actions):
        kept = await terminated_after_first_poll(time_env.client, loaded, task_queue)
    assert kept is not None
    assert kept.memory.get("replies#each") == ["a", "b"]
