"""A monitor's read calls as local activities (`read-calls-as-local-activities`), in the time-skipping server.

What regular activities gave the user holds: the same retries and error tree, `SessionExpired` →
`awaiting_reauth`, a rate limit waited out in a durable timer, the step's summary in the UI (on
the marker), side effects as regular activities; and an idle poll costs one workflow task and a
timer. Mock actions are served as in `tests/test_recipe_workflow.py` (every one registered on the
workflow's worker too, as `tikflow.worker.build_workers` does).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from activities.contracts import ActionRequest
from tests.test_recipe_workflow import Actions, failure_message, logged, start, status_when, workers
from workflows.recipe import RecipeWorkflow, workflow_runner

MONITOR = """
recipe: local-reads
trigger: {poll: {every: 1m, max_polls: 4}}
steps:
  - id: videos
    call: tikapi.hashtag_posts
    with: {name: cats}
  - id: scan
    for_each: "{{ steps.videos['items'] }}"
    as: video
    steps:
      - id: comments
        call: tikapi.comments
        with: {media_id: "{{ video.id }}"}
    collect: "{{ steps.comments['items'] }}"
  - for_each: "{{ steps.scan['items'] }}"
    as: comment
    if: "{{ comment.text == 'price?' }}"
    steps:
      - call: tikapi.reply
        with: {media_id: "{{ comment.aweme_id }}", reply_comment_id: "{{ comment.cid }}", text: hi}
"""


ONE_READ = """recipe: r
trigger: {poll: {every: 1m, max_polls: 1}}
steps:
  - {id: videos, call: tikapi.hashtag_posts, with: {name: cats}}
"""


def kind(event: Any) -> str:
    return str(event.WhichOneof("attributes")).removesuffix("_event_attributes")


async def events(handle: WorkflowHandle[Any, Any]) -> list[Any]:
    return [e async for e in handle.fetch_history_events()]


def idle_actions() -> Actions:
    return Actions(
        tikapi__hashtag_posts=lambda request: {"items": [{"id": "v1"}]},
        tikapi__comments=lambda request: {"items": [{"cid": "c1", "aweme_id": "v1", "text": "nice"}]},
        tikapi__reply=lambda request: {"ok": True},
    )


async def test_an_idle_poll_is_one_workflow_task_and_a_timer(time_env, task_queue):
    actions = idle_actions()
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, MONITOR)
        result = await handle.result()
        history = await events(handle)
    assert (result.outcome, result.polls) == ("completed", 4)
    assert len(actions.of("tikapi.comments")) == 4
    kinds = [kind(e) for e in history]
    assert "activity_task_scheduled" not in kinds  # nothing but reads, and they ran locally
    # From one poll's timer to the next: fired, one workflow task (3 events), a marker per call
    # (the list and one video's comments), started: 7 events (17 as regular activities).
    timers = [i for i, k in enumerate(kinds) if k == "timer_started"]
    polls = [kinds[a + 1 : b + 1] for a, b in itertools.pairwise(timers)]
    assert len(polls) == 2
    for poll in polls:
        assert poll == [
            "timer_fired",
            "workflow_task_scheduled",
            "workflow_task_started",
            "workflow_task_completed",
            "marker_recorded",
            "marker_recorded",
            "timer_started",
        ]
    # The markers carry the step's summary, as the activities' did.
    summaries = [
        (await pydantic_data_converter.decode([e.user_metadata.summary], [str]))[0]
        for e in history
        if kind(e) == "marker_recorded" and e.user_metadata.HasField("summary")
    ]
    assert summaries[:2] == ["videos tikapi.hashtag_posts → cats", "scan[v1].comments tikapi.comments → v1"]
    # Both sides of the patch replay: this history (local reads) here, the committed monitor
    # histories (regular activities) in tests/test_replay.py.
    replayer = Replayer(
        workflows=[RecipeWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner()
    )
    recorded = WorkflowHistory.from_json(handle.id, (await handle.fetch_history()).to_json())
    await replayer.replay_workflow(recorded)


async def test_side_effects_stay_regular_activities(time_env, task_queue):
    actions = idle_actions()
    actions.handlers["tikapi.comments"] = lambda request: {
        "items": [{"cid": f"c{len(actions.calls)}", "aweme_id": "v1", "text": "price?"}]
    }
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, MONITOR.replace("max_polls: 4", "max_polls: 2"))
        result = await handle.result()
        history = await events(handle)
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history
        if kind(e) == "activity_task_scheduled"
    ]
    assert scheduled == ["tikapi.reply", "tikapi.reply"]
    assert result.counters.effects == 2


async def test_reads_activity_keeps_every_call_a_regular_activity(time_env, task_queue):
    actions = idle_actions()
    text = MONITOR.replace("max_polls: 4}", "max_polls: 2, reads: activity}")
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, text)
        await handle.result()
        history = await events(handle)
    kinds = [kind(e) for e in history]
    assert kinds.count("activity_task_scheduled") == 4
    # Markers only for the patches the first workflow task looks at, none for the calls.
    assert "marker_recorded" not in kinds[kinds.index("timer_started") :]


async def test_a_local_read_is_retried_under_the_same_policy_and_error_tree(time_env, task_queue):
    def flaky(request: ActionRequest) -> dict[str, Any]:
        if len(actions.of("tikapi.hashtag_posts")) < 3:
            raise ApplicationError("tikapi HTTP 502", type="ProviderUnavailable")
        return {"items": []}

    def rejected(request: ActionRequest) -> dict[str, Any]:
        raise ApplicationError(
            "tikapi HTTP 404: no such hashtag", type="ProviderRejected", non_retryable=True
        )

    actions = Actions(tikapi__hashtag_posts=flaky)
    text = ONE_READ
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    assert (result.outcome, len(actions.calls)) == ("completed", 3)

    rejecting = Actions(tikapi__hashtag_posts=rejected)
    text = text.replace("max_polls: 1", "max_polls: 5")
    async with workers(time_env.client, f"{task_queue}-2", rejecting):
        message = await failure_message(await start(time_env, f"{task_queue}-2", text))
    # Not retried (non-retryable): one attempt per poll, five polls in a row failed.
    assert len(rejecting.calls) == 5
    last = "steps.videos (tikapi.hashtag_posts): tikapi HTTP 404: no such hashtag"
    assert message == f"5 polls in a row failed; last: {last}"


async def test_a_local_read_seeing_an_expired_session_waits_for_reauthorization(time_env, task_queue):
    def posts(request: ActionRequest) -> dict[str, Any]:
        if len(actions.of("tikapi.hashtag_posts")) == 1:
            raise ApplicationError(
                "session expired", {"provider": "tikapi"}, type="SessionExpired", non_retryable=True
            )
        return {"items": []}

    actions = Actions(tikapi__hashtag_posts=posts, notify__send=lambda request: {"sent": True}, log=logged)
    text = "recipe: r\naccount: shop\n" + ONE_READ.removeprefix("recipe: r\n")
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, text)
        status = await status_when(handle, lambda s: s.phase == "awaiting_reauth")
        assert status.waiting_for == "re-authorization of tikapi account 'shop'"
        assert len(actions.of("notify.send")) == 1
        await handle.signal(RecipeWorkflow.reauthorized, "shop")
        result = await handle.result()
    assert (result.outcome, result.counters.reauths) == ("completed", 1)
    assert len(actions.of("tikapi.hashtag_posts")) == 2


async def test_rate_limits_of_a_local_read_are_waited_in_workflow_timers(time_env, task_queue):
    def limited(request: ActionRequest) -> dict[str, Any]:
        n = len(actions.of("tikapi.hashtag_posts"))
        if n == 1:  # a daily quota: the workflow's own backoff
            raise ApplicationError(
                "daily quota spent",
                {"provider": "tikapi", "retry_after": 3600},
                type="RateLimited",
                non_retryable=True,
            )
        if n == 2:  # a short reset: the retry's backoff, longer than a local activity may wait in-process
            raise ApplicationError(
                "slow down",
                {"provider": "tikapi", "retry_after": 30},
                type="RateLimited",
                next_retry_delay=timedelta(seconds=30),
            )
        return {"items": []}

    actions = Actions(tikapi__hashtag_posts=limited)
    text = ONE_READ
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env, task_queue, text)
        status = await status_when(handle, lambda s: s.phase == "backing_off")
        assert status.waiting_for == "rate limit of tikapi to reset"
        result = await handle.result()
        history = await events(handle)
    assert (result.outcome, result.counters.rate_limited, len(actions.calls)) == ("completed", 1, 3)
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history
        if kind(e) == "timer_started"
    ]
    assert timers == [timedelta(hours=1), timedelta(seconds=30)]
