"""`RecipeWorkflow` in the time-skipping server: every step kind, monitors, signals and the error table.

Actions are mocked by registering a function under the action's name on the task queue the engine
schedules it on (built-ins on the base queue, provider actions on `<base>.<provider>`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.contracts import ActionRequest, task_queue_for
from tests.support.waiting import eventually
from tikflow.loader import LoadedRecipe, load_recipe_text
from tikflow.runs import build_run
from workflows.recipe import POLLS_PER_RUN, RecipeWorkflow, RunResult, RunStatus, workflow_runner

Handler = Callable[[ActionRequest], Awaitable[dict[str, Any]] | dict[str, Any]]


class Actions:
    """Mock actions: every call is recorded; each name is served by a handler (default: echo)."""

    def __init__(self, **handlers: Handler) -> None:
        self.handlers: dict[str, Handler] = {name.replace("__", "."): h for name, h in handlers.items()}
        self.calls: list[ActionRequest] = []
        self.called = asyncio.Event()

    def of(self, action: str) -> list[ActionRequest]:
        return [c for c in self.calls if c.action == action]

    def activity_for(self, name: str) -> Callable[..., Any]:
        handler = self.handlers[name]

        @activity.defn(name=name)
        async def run(request: ActionRequest) -> dict[str, Any]:
            self.calls.append(request)
            self.called.set()
            result = handler(request)
            return await result if asyncio.iscoroutine(result) else result  # type: ignore[return-value]

        return run

    async def next_call(self) -> None:
        """Wait for the next recorded call."""
        self.called.clear()
        await asyncio.wait_for(self.called.wait(), 30)


def logged(request: ActionRequest) -> dict[str, Any]:
    return {"logged": request.params["message"]}


@contextlib.asynccontextmanager
async def workers(client: Client, task_queue: str, actions: Actions) -> AsyncIterator[None]:
    """The recipe workflow on `task_queue`, each mock action on the queue the engine routes it to."""
    by_queue: dict[str, list[Callable[..., Any]]] = {task_queue: []}
    for name in actions.handlers:
        by_queue.setdefault(task_queue_for(name, task_queue), []).append(actions.activity_for(name))
    async with contextlib.AsyncExitStack() as stack:
        for queue, activities in by_queue.items():
            await stack.enter_async_context(
                Worker(
                    client,
                    task_queue=queue,
                    workflows=[RecipeWorkflow] if queue == task_queue else [],
                    workflow_runner=workflow_runner(),
                    # The workflow's worker runs read calls as local activities too (as build_workers).
                    activities=[a for acts in by_queue.values() for a in acts]
                    if queue == task_queue
                    else activities,
                )
            )
        yield


def recipe(text: str) -> LoadedRecipe:
    """A recipe through the real loader (so every test recipe is also a valid one)."""
    return load_recipe_text(text, "test.yaml")


async def start(
    env: WorkflowEnvironment, task_queue: str, text: str, inputs: dict[str, Any] | None = None
) -> WorkflowHandle[Any, RunResult]:
    return await env.client.start_workflow(
        RecipeWorkflow.run,
        build_run(recipe(text), inputs or {}),
        id=f"wf-{task_queue}",
        task_queue=task_queue,
        task_timeout=timedelta(seconds=10),
    )


async def status_when(handle: WorkflowHandle[Any, Any], check: Callable[[RunStatus], bool]) -> RunStatus:
    """Query `status` until `check` holds (the signal or timer it waits for is processed)."""

    async def status() -> RunStatus:
        return await handle.query(RecipeWorkflow.status)

    return await eventually(status, until=check, within=10, every=0.025, what="the status checked")


async def failure_message(handle: WorkflowHandle[Any, Any]) -> str:
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(handle.result(), 60)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.message


async def test_run_once_recipe_returns_its_step_results(time_env, task_queue):
    actions = Actions(log=logged)
    text = """
recipe: once
inputs: {who: {type: string}}
steps:
  - id: greet
    call: log
    with: {message: "hello {{ inputs.who }}"}
  - id: again
    call: log
    with: {message: "{{ steps.greet.logged }}!"}
"""
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text, {"who": "ann"})).result()
    assert result.outcome == "completed"
    assert result.polls == 1
    assert result.outputs == {"greet": {"logged": "hello ann"}, "again": {"logged": "hello ann!"}}
    assert result.counters.calls == 2
    assert [c.params["message"] for c in actions.calls] == ["hello ann", "hello ann!"]
    assert actions.calls[0].account == "main"
    assert actions.calls[0].recipe == "once"


async def test_for_each_filters_with_if_and_runs_items_concurrently(time_env, task_queue):
    in_flight = 0
    most_in_flight = 0
    started = 0
    changed = asyncio.Condition()

    async def reply(request: ActionRequest) -> dict[str, Any]:
        nonlocal in_flight, most_in_flight, started
        async with changed:
            position = started
            started += 1
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
            changed.notify_all()
            # A call completes only once its whole batch of three has started: sequential
            # processing never gets there.
            batch_end = (position // 3 + 1) * 3
            try:
                await asyncio.wait_for(changed.wait_for(lambda: started >= batch_end), 10)
            except TimeoutError:
                raise ApplicationError("batch never filled", non_retryable=True) from None
            in_flight -= 1
        return {"replied": request.params["reply_comment_id"]}

    actions = Actions(tikapi__reply=reply)
    comments = [{"cid": str(i), "text": "price?" if i % 3 else "nice"} for i in range(9)]
    text = """
recipe: fan-out
inputs: {comments: {type: list}}
steps:
  - id: replies
    for_each: "{{ inputs.comments }}"
    as: comment
    if: "{{ comment.text | contains_any(['price']) }}"
    concurrency: 3
    collect: "{{ steps.sent.replied }}"
    steps:
      - id: sent
        call: tikapi.reply
        with: {media_id: v1, reply_comment_id: "{{ comment.cid }}", text: see bio}
"""
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text, {"comments": comments})).result()
    asked = [c["cid"] for c in comments if c["text"] == "price?"]
    assert sorted(c.params["reply_comment_id"] for c in actions.calls) == asked
    assert most_in_flight == 3
    assert result.outputs["replies"] == {
        "count": 9,
        "processed": 6,
        "failed": 0,
        "errors": [],
        "items": asked,
    }
    assert len({c.idempotency_key for c in actions.calls}) == 6


@pytest.mark.parametrize(("loud", "branch", "message"), [(True, "then", "HI"), (False, "else", "hi")])
async def test_if_else_runs_exactly_one_branch(time_env, task_queue, loud, branch, message):
    actions = Actions(log=logged)
    text = """
recipe: branch
inputs: {loud: {type: boolean}}
steps:
  - id: choice
    if: "{{ inputs.loud }}"
    then:
      - call: log
        with: {message: HI}
    else:
      - call: log
        with: {message: hi}
"""
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text, {"loud": loud})).result()
    assert [c.params["message"] for c in actions.calls] == [message]
    assert result.outputs["choice"] == {"branch": branch}


async def test_step_if_false_skips_the_step_and_leaves_no_result(time_env, task_queue):
    actions = Actions(log=logged)
    text = """
recipe: skip
steps:
  - id: maybe
    if: "{{ 1 > 2 }}"
    call: log
    with: {message: never}
  - call: log
    with: {message: "defined={{ steps.maybe is defined }}"}
"""
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    assert [c.params["message"] for c in actions.calls] == ["defined=False"]
    assert "maybe" not in result.outputs


UNTIL = """
recipe: until
steps:
  - id: upload
    until: "{{ result.status == 'done' }}"
    call: tikapi.hashtag_posts
    with: {name: cats}
    every: 10s
    deadline: 1m
  - call: log
    with: {message: "finished with {{ steps.upload.status }}"}
"""


async def test_until_repeats_the_call_until_its_condition_holds(time_env, task_queue):
    def status(request: ActionRequest) -> dict[str, Any]:
        done = len(actions.of("tikapi.hashtag_posts")) >= 3
        return {"status": "done" if done else "pending"}

    actions = Actions(tikapi__hashtag_posts=status, log=logged)
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, UNTIL)
        result = await handle.result()
    assert len(actions.of("tikapi.hashtag_posts")) == 3
    assert result.outputs["upload"] == {"status": "done"}
    assert actions.of("log")[0].params["message"] == "finished with done"
    # The calls are `every` apart in workflow time.
    scheduled = [
        e.event_time.ToDatetime()
        async for e in handle.fetch_history_events()
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "tikapi.hashtag_posts"
    ]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(scheduled)]
    assert len(gaps) == 2
    assert all(10 <= gap < 11 for gap in gaps), gaps


async def test_until_fails_the_run_when_its_deadline_passes(time_env, task_queue):
    actions = Actions(tikapi__hashtag_posts=lambda request: {"status": "pending"}, log=logged)
    async with workers(time_env.client, task_queue, actions):
        message = await failure_message(await start(time_env, task_queue, UNTIL))
    assert message == "steps.upload: `until` condition still false after 1m"
    # A call every 10s within the minute (the calls' own run time counts against the deadline).
    assert len(actions.of("tikapi.hashtag_posts")) in (6, 7)
    assert actions.of("log") == []


async def test_wait_sleeps_durably_in_workflow_time(time_env, task_queue):
    times = []

    def stamp(request: ActionRequest) -> dict[str, Any]:
        times.append(activity.info().current_attempt_scheduled_time)
        return logged(request)

    actions = Actions(log=stamp)
    text = """
recipe: wait
steps:
  - call: log
    with: {message: before}
  - id: pause
    wait: 2h
  - call: log
    with: {message: after}
"""
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    assert result.outputs["pause"] == {"waited": "2h"}
    assert times[1] - times[0] >= timedelta(hours=2)
    assert times[1] - times[0] < timedelta(hours=2, minutes=1)


async def test_set_values_are_read_as_vars_by_later_steps(time_env, task_queue):
    actions = Actions(log=logged)
    text = """
recipe: set
inputs: {n: {type: integer, default: 4}}
steps:
  - id: computed
    set:
      double: "{{ inputs.n * 2 }}"
      label: "n={{ inputs.n }}"
  - call: log
    with: {message: "{{ vars.label }} double={{ vars.double }} {{ vars.double is number }}"}
"""
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    assert result.outputs["computed"] == {"double": 8, "label": "n=4"}
    assert actions.calls[0].params["message"] == "n=4 double=8 True"


async def test_parallel_branches_run_together_and_their_results_are_visible_after(time_env, task_queue):
    both = asyncio.Barrier(2)

    async def meet(request: ActionRequest) -> dict[str, Any]:
        try:
            await asyncio.wait_for(both.wait(), 10)
        except TimeoutError:
            raise ApplicationError("branches did not run together", non_retryable=True) from None
        return {"logged": request.params["name"]}

    actions = Actions(log=logged, tikapi__hashtag_posts=meet)
    text = """
recipe: parallel
steps:
  - parallel:
      - - id: cats
          call: tikapi.hashtag_posts
          with: {name: cats}
      - - id: dogs
          call: tikapi.hashtag_posts
          with: {name: dogs}
  - call: log
    with: {message: "{{ steps.cats.logged }}+{{ steps.dogs.logged }}"}
"""

    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    assert result.outputs["cats"] == {"logged": "cats"}
    assert result.outputs["dogs"] == {"logged": "dogs"}
    assert actions.of("log")[0].params["message"] == "cats+dogs"


async def test_fail_step_ends_the_run_with_its_message(time_env, task_queue):
    actions = Actions(log=logged)
    text = """
recipe: fail
inputs: {who: {type: string, default: ann}}
steps:
  - id: check
    fail: "no access for {{ inputs.who }}"
  - call: log
    with: {message: unreachable}
"""
    async with workers(time_env.client, task_queue, actions):
        message = await failure_message(await start(time_env, task_queue, text))
    assert message == "steps.check: no access for ann"
    assert actions.calls == []


async def test_continue_on_error_records_the_failure_and_goes_on(time_env, task_queue):
    def rejected(request: ActionRequest) -> dict[str, Any]:
        raise ApplicationError("comment is gone", type="ProviderRejected", non_retryable=True)

    actions = Actions(tikapi__reply=rejected, log=logged)
    text = """
recipe: carry-on
steps:
  - id: answer
    call: tikapi.reply
    with: {media_id: v, reply_comment_id: '7', text: hi}
    continue_on_error: true
  - call: log
    with: {message: "failed={{ steps.answer.failed }}"}
"""
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    assert result.outputs["answer"] == {
        "error": "steps.answer (tikapi.reply): comment is gone",
        "failed": True,
        "type": "ProviderRejected",
        "code": None,
        "provider": "tikapi",
        "message": "comment is gone",
        "step": "steps.answer",
    }
    assert actions.of("log")[0].params["message"] == "failed=True"
    assert len(actions.of("tikapi.reply")) == 1, "a rejection must not be retried"
    assert result.counters.errors == 1


async def test_failing_call_without_continue_on_error_fails_the_run(time_env, task_queue):
    def rejected(request: ActionRequest) -> dict[str, Any]:
        raise ApplicationError("comment is gone", type="ProviderRejected", non_retryable=True)

    actions = Actions(tikapi__reply=rejected)
    text = """
recipe: stop-here
steps:
  - call: tikapi.reply
    with: {media_id: v, reply_comment_id: '7', text: hi}
"""
    async with workers(time_env.client, task_queue, actions):
        message = await failure_message(await start(time_env, task_queue, text))
    assert message == "steps.0 (tikapi.reply): comment is gone"


async def test_expression_error_at_run_time_fails_the_step_clearly(time_env, task_queue):
    actions = Actions(log=lambda request: {"logged": "x"})
    text = """
recipe: bad-runtime
steps:
  - id: first
    call: log
    with: {message: hi}
  - call: log
    with: {message: "{{ steps.first.nothing_here.deeper }}"}
"""
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, text)
        message = await failure_message(handle)
    assert message.startswith("steps.1: expression failed:")
    assert "nothing_here" in message
    # A failed step ends the workflow; it is not a workflow task failing (and retrying) forever.
    task_failures = [
        e async for e in handle.fetch_history_events() if e.HasField("workflow_task_failed_event_attributes")
    ]
    assert task_failures == []


MONITOR_DAY = """
recipe: day-monitor
trigger:
  poll: {every: 1m, max_polls: 1440}
steps:
  - id: videos
    call: tikapi.hashtag_posts
    with: {name: cats}
    new_only: id
  - for_each: "{{ steps.videos.items }}"
    as: video
    steps:
      - call: log
        with: {message: "{{ video.id }}"}
"""


async def test_monitor_for_a_simulated_day_acts_on_each_item_once_with_bounded_history(time_env, task_queue):
    def window(request: ActionRequest) -> dict[str, Any]:
        # A new item every 5 polls; each item is listed by ~15 polls, across continue-as-new.
        n = len(actions.of("tikapi.hashtag_posts")) // 5  # this call included: 0 … 288
        return {"items": [{"id": f"v{i}"} for i in range(n, n + 3)]}

    actions = Actions(tikapi__hashtag_posts=window, log=logged)
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, MONITOR_DAY)
        result = await handle.result()
    assert result.outcome == "completed"
    assert result.polls == 1440
    acted = Counter(c.params["message"] for c in actions.of("log"))
    assert set(acted) == {f"v{i}" for i in range(1440 // 5 + 3)}
    assert max(acted.values()) == 1, "an item was acted on twice"
    assert result.counters.new_items == 1440 // 5 + 3
    assert result.counters.items_seen == 3 * 1440

    run_ids = []
    run_id: str | None = handle.first_execution_run_id
    sizes = []
    while run_id is not None:
        run_ids.append(run_id)
        events = [
            e
            async for e in time_env.client.get_workflow_handle(
                handle.id, run_id=run_id
            ).fetch_history_events()
        ]
        sizes.append(len(events))
        last = events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else None
        )
    assert len(run_ids) == -(-1440 // POLLS_PER_RUN)
    assert max(sizes) < 2000, sizes


async def test_new_only_remembers_at_most_dedupe_limit_ids(time_env, task_queue):
    actions = Actions(tikapi__hashtag_posts=lambda request: {"items": [{"id": i} for i in range(15)]})
    text = """
recipe: bounded
dedupe_limit: 10
trigger: {poll: {every: 1m, max_polls: 3}}
steps:
  - id: videos
    call: tikapi.hashtag_posts
    with: {name: cats}
    new_only: id
"""
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    # Poll 1: all 15 are new; only the last 10 (5..14) are remembered. Poll 2: 0..4 are new again
    # and push 5..9 out. Poll 3: 5..9 are new again.
    assert result.counters.new_items == 15 + 5 + 5
    assert [item["id"] for item in result.outputs["videos"]["items"]] == [5, 6, 7, 8, 9]
    assert result.outputs["videos"]["seen"] == 15


FAN_OUT = """
recipe: fan-out
inputs: {comments: {type: list}}
steps:
  - id: replies
    for_each: "{{ inputs.comments }}"
    as: comment
    concurrency: 2
    steps:
      - call: tikapi.reply
        with: {media_id: v1, reply_comment_id: "{{ comment }}", text: see bio}
"""


async def test_for_each_starts_the_next_item_as_soon_as_any_finishes(time_env, task_queue):
    """A sliding window: one slow item does not hold up the rest (fixed batches would wait for it)."""
    done: set[str] = set()
    changed = asyncio.Condition()

    async def reply(request: ActionRequest) -> dict[str, Any]:
        cid = request.params["reply_comment_id"]
        async with changed:
            if cid == "slow":
                # Finishes only after every other item did, one at a time through the other slot.
                try:
                    await asyncio.wait_for(changed.wait_for(lambda: len(done) == 4), 10)
                except TimeoutError:
                    raise ApplicationError("the other items waited for me", non_retryable=True) from None
            done.add(cid)
            changed.notify_all()
        return {"replied": cid}

    actions = Actions(tikapi__reply=reply)
    comments = ["slow", "a", "b", "c", "d"]
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, FAN_OUT, {"comments": comments})).result()
    assert result.outputs["replies"]["processed"] == 5
    assert result.outputs["replies"]["failed"] == 0
    assert [c.params["reply_comment_id"] for c in actions.calls][-1] == "d"
    assert done == set(comments)


async def test_a_failed_item_stops_the_for_each_from_starting_more(time_env, task_queue):
    async def reply(request: ActionRequest) -> dict[str, Any]:
        if request.params["reply_comment_id"] == "bad":
            raise ApplicationError("comment gone", type="ProviderRejected", non_retryable=True)
        return {"replied": request.params["reply_comment_id"]}

    actions = Actions(tikapi__reply=reply)
    comments = ["bad", "a", "b", "c", "d", "e"]
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, FAN_OUT, {"comments": comments})
        message = await failure_message(handle)
    assert "comment gone" in message
    # At most the other slot's items ran while "bad" failed; the rest never started.
    assert len(actions.calls) < len(comments)


async def test_new_only_state_survives_continue_as_new_for_for_each_too(time_env, task_queue):
    actions = Actions(log=logged)
    text = f"""
recipe: each-once
trigger: {{poll: {{every: 1m, max_polls: {POLLS_PER_RUN + 5}}}}}
steps:
  - for_each: "{{{{ range(run.iteration, run.iteration + 3) | list }}}}"
    as: n
    new_only: n
    steps:
      - call: log
        with: {{message: "{{{{ n }}}}"}}
"""
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    acted = Counter(c.params["message"] for c in actions.calls)
    assert max(acted.values()) == 1
    assert len(acted) == POLLS_PER_RUN + 5 + 2
    assert result.polls == POLLS_PER_RUN + 5


MONITOR = """
recipe: watcher
trigger: {poll: {every: 1m}}
steps:
  - call: tikapi.hashtag_posts
    with: {name: cats}
"""


async def test_pause_holds_calls_until_resume_and_stop_ends_gracefully(time_env, task_queue):
    actions = Actions(tikapi__hashtag_posts=lambda request: {"items": []})
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, MONITOR)
        await actions.next_call()
        await handle.signal(RecipeWorkflow.pause)
        status = await status_when(handle, lambda s: s.paused)
        assert status.phase == "paused"
        calls_when_paused = len(actions.calls)

        await time_env.sleep(timedelta(hours=3))  # 180 polls' worth of workflow time
        status = await handle.query(RecipeWorkflow.status)
        assert (status.phase, status.paused) == ("paused", True)
        assert len(actions.calls) == calls_when_paused

        await handle.signal(RecipeWorkflow.resume)
        await actions.next_call()
        assert len(actions.calls) == calls_when_paused + 1
        assert not (await handle.query(RecipeWorkflow.status)).paused

        await handle.signal(RecipeWorkflow.stop)
        result = await handle.result()
        assert (await handle.query(RecipeWorkflow.status)).phase == "stopped"
    assert result.outcome == "stopped"
    assert result.polls == len(actions.calls)


async def test_stop_while_sleeping_ends_without_another_poll(time_env, task_queue):
    actions = Actions(tikapi__hashtag_posts=lambda request: {"items": []})
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, MONITOR)
        await actions.next_call()
        status = await status_when(handle, lambda s: s.phase == "sleeping")
        assert status.iteration == 1
        assert status.next_poll_at is not None
        assert status.last_poll_at is not None
        assert status.next_poll_at - status.last_poll_at == timedelta(minutes=1)
        await handle.signal(RecipeWorkflow.stop)
        result = await handle.result()
    assert (result.outcome, result.polls, len(actions.calls)) == ("stopped", 1, 1)


async def test_session_expired_waits_for_reauthorization_then_redoes_the_step(time_env, task_queue):
    def posts(request: ActionRequest) -> dict[str, Any]:
        if len(actions.of("tikapi.hashtag_posts")) == 1:
            raise ApplicationError(
                "session expired", {"provider": "tikapi"}, type="SessionExpired", non_retryable=True
            )
        return {"items": [{"id": "v1"}]}

    actions = Actions(tikapi__hashtag_posts=posts, notify__send=lambda request: {"sent": True}, log=logged)
    text = """
recipe: reauth
account: shop
steps:
  - id: videos
    call: tikapi.hashtag_posts
    with: {name: cats}
  - call: log
    with: {message: "n={{ steps.videos['items'] | length }}"}
"""
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, text)
        status = await status_when(handle, lambda s: s.phase == "awaiting_reauth")
        assert status.waiting_for == "re-authorization of tikapi account 'shop'"
        assert status.last_error == "steps.videos: session expired"
        [notice] = actions.of("notify.send")
        assert f"tikflow reauth {handle.id} --account shop" in notice.params["message"]
        assert len(actions.of("tikapi.hashtag_posts")) == 1

        await handle.signal(RecipeWorkflow.reauthorized, "someone-else")
        await handle.signal(RecipeWorkflow.reauthorized, "shop")
        result = await handle.result()
    assert result.outcome == "completed"
    assert len(actions.of("tikapi.hashtag_posts")) == 2
    assert actions.of("log")[0].params["message"] == "n=1"
    assert result.counters.reauths == 1


async def test_session_expired_fails_the_run_after_the_reauth_deadline(time_env, task_queue):
    def expired(request: ActionRequest) -> dict[str, Any]:
        raise ApplicationError(
            "session expired", {"provider": "tikapi"}, type="SessionExpired", non_retryable=True
        )

    actions = Actions(tikapi__hashtag_posts=expired, notify__send=lambda request: {"sent": True})
    text = (
        "recipe: reauth\nreauth_deadline: 1d\nsteps:\n  - {call: tikapi.hashtag_posts, with: {name: cats}}\n"
    )
    async with workers(time_env.client, task_queue, actions):
        message = await failure_message(await start(time_env, task_queue, text))
    assert message == "steps.0: account 'main' was not re-authorized within 1d"


async def test_long_rate_limit_backs_off_in_one_timer_then_completes(time_env, task_queue):
    def limited(request: ActionRequest) -> dict[str, Any]:
        if len(actions.of("tikapi.hashtag_posts")) == 1:
            raise ApplicationError(
                "daily quota spent",
                {"provider": "tikapi", "retry_after": 3600},
                type="RateLimited",
                non_retryable=True,
            )
        return {"items": []}

    actions = Actions(tikapi__hashtag_posts=limited)
    text = "recipe: limited\nsteps:\n  - {id: videos, call: tikapi.hashtag_posts, with: {name: cats}}\n"
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, text)
        status = await status_when(handle, lambda s: s.phase == "backing_off")
        assert status.waiting_for == "rate limit of tikapi to reset"
        assert status.backoff_until is not None
        assert len(actions.calls) == 1
        result = await handle.result()
    assert result.outcome == "completed"
    assert len(actions.calls) == 2
    assert result.counters.rate_limited == 1
    assert result.counters.backoff_s == 3600
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        async for e in handle.fetch_history_events()
        if e.HasField("timer_started_event_attributes")
    ]
    assert timers == [timedelta(hours=1)]


async def test_side_effect_calls_are_counted_as_effects(time_env, task_queue):
    actions = Actions(tikapi__reply=lambda request: {"ok": True})
    text = """
recipe: effects
steps:
  - {call: tikapi.reply, with: {media_id: v, reply_comment_id: '7', text: hi}}
"""
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    assert (result.counters.calls, result.counters.effects) == (1, 1)


async def test_pause_and_resume_while_sleeping_show_in_the_phase(time_env, task_queue):
    actions = Actions(tikapi__hashtag_posts=lambda request: {"items": []})
    text = MONITOR.replace("every: 1m", "every: 1h")
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, text)
        await status_when(handle, lambda s: s.phase == "sleeping")
        await handle.signal(RecipeWorkflow.pause)
        assert (await status_when(handle, lambda s: s.paused)).phase == "paused"
        await handle.signal(RecipeWorkflow.resume)
        status = await status_when(handle, lambda s: not s.paused)
        assert (status.phase, len(actions.calls)) == ("sleeping", 1)
        await handle.signal(RecipeWorkflow.stop)
        assert (await handle.result()).outcome == "stopped"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{% for a in range(inputs.n) %}{% for b in range(inputs.n) %}{% endfor %}{% endfor %}",
            "loops ran more than",
        ),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(inputs.n) }}", "recursion too deep"),
    ],
    ids=["nested loops", "recursion"],
)
async def test_a_runaway_template_fails_the_step_instead_of_the_workflow_task(
    time_env, task_queue, template: str, message: str
):
    """Without a bound, the workflow task would spin past Temporal's deadlock timeout and be
    retried forever; with it, the run fails at once with a message naming the step. (A template
    without inputs is evaluated, and refused, when the recipe loads.)"""
    actions = Actions(log=logged)
    text = f"""
recipe: runaway
inputs: {{n: {{type: integer, default: 10000}}}}
steps:
  - id: say
    call: log
    with: {{message: "{template}"}}
"""
    async with workers(time_env.client, task_queue, actions):
        failure = await failure_message(await start(time_env, task_queue, text))
    assert message in failure
    assert "say" in failure
    assert actions.calls == []


async def test_stop_cancels_every_retrying_call_of_a_for_each_and_starts_no_more(time_env, task_queue):
    def down(request: ActionRequest) -> dict[str, Any]:
        raise ApplicationError("tikapi: GET 127.0.0.1:9/public/comments failed: ConnectError")

    actions = Actions(tikapi__comments=down, log=logged)
    text = """
recipe: fan-out
inputs:
  videos: {type: list, default: ["v1", "v2", "v3", "v4", "v5", "v6"]}
steps:
  - for_each: "{{ inputs.videos }}"
    as: video
    concurrency: 3
    steps:
      - call: tikapi.comments
        with: {media_id: "{{ video }}"}
  - call: log
    with: {message: never}
"""
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, text)
        status = await status_when(handle, lambda s: len(s.calls) == 3 and len(actions.calls) >= 3)
        assert sorted(call.path for call in status.calls) == [f"steps.0[{i}].0" for i in range(3)]
        await handle.signal(RecipeWorkflow.stop)
        result = await handle.result()
        final = await handle.query(RecipeWorkflow.status)
    # Without the cancel, the time-skipping server would have run all 20 attempts of each call,
    # and the run would have failed; instead it stops: items 4-6 and the log step never start.
    assert (result.outcome, result.counters.errors, final.phase, final.calls) == ("stopped", 0, "stopped", [])
    assert {request.params["media_id"] for request in actions.calls} == {"v1", "v2", "v3"}
    assert len(actions.calls) < 3 * 3
    assert actions.of("log") == []


async def test_stop_while_paused_in_the_middle_of_a_run_ends_it_without_another_call(time_env, task_queue):
    actions = Actions(log=logged)
    text = "recipe: two\nsteps:\n  - {wait: 1h}\n  - {call: log, with: {message: second}}\n"
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, text)
        await status_when(handle, lambda s: s.phase == "running")
        await handle.signal(RecipeWorkflow.pause)
        await status_when(handle, lambda s: s.paused)
        await handle.signal(RecipeWorkflow.stop)
        result = await handle.result()  # the time-skipping server jumps the hour
    assert (result.outcome, actions.calls) == ("stopped", [])


async def test_for_each_item_paths_use_the_steps_own_new_only_key(time_env, task_queue):
    """An item's key in its step path (and so in its calls' idempotency keys) is its value at the
    step's `new_only` key, else its `id`, else its position: no provider field guessed by the engine
    (`publish_id` here). The run records the patch's marker, and its history replays."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer

    from tests.replay.history import readable
    from workflows.recipe import ITEM_KEY_PATCH

    actions = Actions(log=logged)
    items = [{"id": "v1", "ref": "r1"}, {"ref": "r2"}, {"publish_id": "p3"}]
    text = """
recipe: item-keys
inputs: {items: {type: list}}
steps:
  - id: by_ref
    for_each: "{{ inputs.items }}"
    new_only: ref
    steps:
      - {call: log, with: {message: "{{ item.ref | default('none') }}"}}
  - id: by_id
    for_each: "{{ inputs.items }}"
    steps:
      - {call: log, with: {message: "{{ item.id | default('none') }}"}}
"""
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, text, {"items": items})
        await handle.result()
        history = await handle.fetch_history()
    paths = sorted(c.idempotency_key.rsplit(":", 1)[1] for c in actions.calls)
    assert paths == sorted(
        [
            "steps.by_ref[r1].0",
            "steps.by_ref[r2].0",
            "steps.by_ref[2].0",
            "steps.by_id[v1].0",
            "steps.by_id[1].0",
            "steps.by_id[2].0",
        ]
    )
    assert ITEM_KEY_PATCH in readable(history.to_json())
    replayer = Replayer(
        workflows=[RecipeWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner()
    )
    assert (await replayer.replay_workflow(history)).replay_failure is None


def polls_of(*lists: list[dict[str, Any]]) -> Callable[[ActionRequest], dict[str, Any]]:
    """A listing action answering poll N with `lists[N]` (the last one again after that)."""
    calls = itertools.count()

    def listing(request: ActionRequest) -> dict[str, Any]:
        return {"items": lists[min(next(calls), len(lists) - 1)]}

    return listing


NEW_ONLY_OBJECT = """
recipe: strategies
trigger: {{poll: {{every: 1m, max_polls: {polls}}}}}
steps:
  - id: comments
    call: tikapi.comments
    with: {{media_id: v1}}
    new_only: {new_only}
  - for_each: "{{{{ steps.comments.items }}}}"
    as: comment
    steps:
      - call: log
        with: {{message: "{{{{ comment.cid }}}}"}}
"""


async def test_new_only_from_now_acts_on_nothing_the_first_poll_then_on_new_items(time_env, task_queue):
    listing = polls_of(
        [{"cid": "a"}, {"cid": "b"}],
        [{"cid": "c"}, {"cid": "a"}, {"cid": "b"}, {"cid": "d"}],
    )
    actions = Actions(tikapi__comments=listing, log=logged)
    text = NEW_ONLY_OBJECT.format(polls=3, new_only="{key: cid, from: now}")
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    assert [c.params["message"] for c in actions.of("log")] == ["c", "d"]
    assert result.counters.new_items == 2
    assert len(actions.of("tikapi.comments")) == 3


async def test_new_only_from_all_acts_on_the_first_polls_items_as_the_string_form(time_env, task_queue):
    listing = polls_of([{"cid": "a"}, {"cid": "b"}], [{"cid": "a"}, {"cid": "c"}])
    actions = Actions(tikapi__comments=listing, log=logged)
    text = NEW_ONLY_OBJECT.format(polls=2, new_only="{key: cid, from: all}")
    async with workers(time_env.client, task_queue, actions):
        await (await start(time_env, task_queue, text)).result()
    assert [c.params["message"] for c in actions.of("log")] == ["a", "b", "c"]


async def test_new_only_watermark_skips_old_items_even_when_their_ids_are_new(time_env, task_queue):
    listing = polls_of(
        [{"cid": "a", "t": 100}, {"cid": "b", "t": 200}],
        # c and e are new ids but older than b; 90 < 200 as numbers though "90" > "200" as text.
        [{"cid": "c", "t": 150}, {"cid": "d", "t": 300}, {"cid": "e", "t": 90}],
        [{"cid": "f", "t": 300}, {"cid": "g", "t": 301}],
    )
    actions = Actions(tikapi__comments=listing, log=logged)
    text = NEW_ONLY_OBJECT.format(polls=3, new_only='{key: cid, after: "{{ item.t }}"}')
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    assert [c.params["message"] for c in actions.of("log")] == ["a", "b", "d", "g"]
    assert result.outputs["comments"]["items"] == [{"cid": "g", "t": 301}]


async def test_for_each_new_only_from_now_with_a_watermark(time_env, task_queue):
    listing = polls_of(
        [{"cid": "a", "t": "2026-01-02"}, {"cid": "b", "t": "2026-01-03"}],
        [{"cid": "c", "t": "2026-01-01"}, {"cid": "d", "t": "2026-01-04"}, {"cid": "a", "t": "2026-01-05"}],
    )
    actions = Actions(tikapi__comments=listing, log=logged)
    text = """
recipe: each-strategies
trigger: {poll: {every: 1m, max_polls: 3}}
steps:
  - id: comments
    call: tikapi.comments
    with: {media_id: v1}
  - for_each: "{{ steps.comments.items }}"
    as: comment
    new_only: {key: cid, from: now, after: "{{ comment.t }}"}
    steps:
      - call: log
        with: {message: "{{ comment.cid }}"}
"""
    async with workers(time_env.client, task_queue, actions):
        await (await start(time_env, task_queue, text)).result()
    # Poll 1 records a, b (watermark 2026-01-03); c is older, a was seen: only d, once.
    assert [c.params["message"] for c in actions.of("log")] == ["d"]


async def test_new_only_watermark_survives_continue_as_new(time_env, task_queue):
    calls = itertools.count()

    def listing(request: ActionRequest) -> dict[str, Any]:
        # Each poll: one item past the watermark and one new id just behind it.
        n = next(calls)
        return {"items": [{"cid": f"new{n}", "t": n}, {"cid": f"old{n}", "t": n - 1}]}

    actions = Actions(tikapi__comments=listing, log=logged)
    polls = POLLS_PER_RUN + 3
    text = NEW_ONLY_OBJECT.format(polls=polls, new_only='{key: cid, after: "{{ item.t }}"}')
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    assert [c.params["message"] for c in actions.of("log")] == ["new0", "old0"] + [
        f"new{n}" for n in range(1, polls)
    ]
    assert result.polls == polls
