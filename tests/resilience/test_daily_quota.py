"""A spent daily quota costs one durable timer, not hundreds of retries (time-skipping server)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.contracts import ActionRequest, task_queue_for
from tests.resilience.report import record
from tests.support.waiting import eventually
from tikflow.loader import load_recipe_text
from tikflow.runs import start_recipe
from workflows.recipe import RecipeWorkflow, RunResult, workflow_runner

#: What TikAPI's daily limit looks like once `to_application_error` has mapped it: a reset 20 h
#: away is over the short-wait bound, so it arrives non-retryable and the workflow waits it out.
DAY_QUOTA_RESET_S = 72000

THREE_REPLIES = """
recipe: three-replies
inputs:
  cids: {type: list, default: ["7300000000000000001", "7300000000000000002", "7300000000000000003"]}
steps:
  - for_each: "{{ inputs.cids }}"
    as: cid
    steps:
      - call: tikapi.reply
        with: {media_id: "7109178205151464746", reply_comment_id: "{{ cid }}", text: "thanks!"}
"""


class QuotaProvider:
    """A stand-in `tikapi.reply`: the second reply finds the day's quota spent, once."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @activity.defn(name="tikapi.reply")
    async def reply(self, request: ActionRequest) -> dict[str, Any]:
        self.calls.append(request.params["reply_comment_id"])
        if len(self.calls) == 2:
            raise ApplicationError(
                "tikapi HTTP 429: API Key Rate-Limit reached.",
                {"provider": "tikapi", "status": 429, "retry_after": DAY_QUOTA_RESET_S},
                type="RateLimited",
                non_retryable=True,
            )
        return {"comment": {"cid": uuid.uuid4().hex}, "already_done": False}


async def test_daily_quota_sleeps_in_one_timer_and_completes(time_env: WorkflowEnvironment) -> None:
    queue = f"quota-{uuid.uuid4()}"
    provider = QuotaProvider()
    loaded = load_recipe_text(THREE_REPLIES)
    async with (
        Worker(
            time_env.client,
            task_queue=queue,
            workflows=[RecipeWorkflow],
            workflow_runner=workflow_runner(),
        ),
        Worker(
            time_env.client, task_queue=task_queue_for("tikapi.reply", queue), activities=[provider.reply]
        ),
    ):
        # The time-skipping server has no custom search attributes.
        _, handle = await start_recipe(
            time_env.client, loaded, {}, task_queue=queue, workflow_id=queue, search_attributes=False
        )
        assert handle is not None

        # Time stands still while we only query: the run is seen waiting, with its resume time.
        async def backing_off() -> Any:
            status = await handle.query(RecipeWorkflow.status)
            return status if status.phase == "backing_off" else None

        status = await eventually(backing_off, within=30, what="phase backing_off")
        assert status.backoff_until is not None
        waited = status.backoff_until - await _now(time_env)
        assert timedelta(hours=19) < waited <= timedelta(seconds=DAY_QUOTA_RESET_S)
        assert status.counters.rate_limited == 1
        assert status.waiting_for is not None

        # Waiting for the result lets the server skip the 20 hours.
        result: RunResult = await handle.result()

    history = await handle.fetch_history()
    events = list(history.events)
    timers = [e for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    record(
        "daily_quota_one_timer",
        faults=1,
        expected=3,
        actual=result.counters.effects,
        duplicates=0,
        missing=0,
        timers=len(timers),
        history_events=len(events),
    )
    assert result.outcome == "completed"
    assert [t.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta() for t in timers] == [
        timedelta(seconds=DAY_QUOTA_RESET_S)
    ]
    assert len(events) < 100
    # The spent call was redone once after the reset; nothing was retried in between.
    assert provider.calls == [
        "7300000000000000001",
        "7300000000000000002",
        "7300000000000000002",
        "7300000000000000003",
    ]
    assert result.counters.effects == 3
    assert result.counters.rate_limited == 1
    assert result.counters.backoff_s == DAY_QUOTA_RESET_S


async def _now(env: WorkflowEnvironment) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp((await env.get_current_time()).timestamp(), UTC)
