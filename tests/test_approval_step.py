"""The `approval:` step in `RecipeWorkflow`, on the time-skipping test server (issue 16, item 4).

The run asks (one `notify.send`, its `approval_request` query answering what is to be approved),
waits durably, and takes the first decision only; a timeout fails the step or continues.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.test_recipe_workflow import Actions, failure_message, start, status_when, workers
from workflows.links import APPROVAL_QUERY, APPROVAL_SIGNAL

ASK = """
recipe: ask-first
inputs:
  on_timeout: {type: string, default: fail}
steps:
  - id: ask
    approval: {reply: "Thanks {{ 'Nina' }}!", video: "https://www.tiktok.com/@nina_art/video/1"}
    timeout: 1h
  - id: posted
    if: "{{ steps.ask.decision == 'approve' }}"
    call: log
    with: {message: "posting {{ steps.ask.comment }}"}
"""

TIMES_OUT = """
recipe: ask-late
steps:
  - id: ask
    approval: {reply: "Thanks!"}
    timeout: 1h
    on_timeout: continue
  - call: log
    with: {message: "timed out {{ steps.ask.timed_out }}"}
"""


def actions() -> Actions:
    return Actions(notify__send=lambda request: {"sent": True}, log=lambda r: {"logged": r.params["message"]})


async def pending(handle: Any) -> str:
    status = await status_when(handle, lambda s: s.phase == "awaiting_approval" and bool(s.approvals))
    [approval_id] = status.approvals
    return str(approval_id)


async def test_an_approved_step_goes_on_and_a_second_decision_changes_nothing(time_env, task_queue):
    mocked = actions()
    async with workers(time_env.client, task_queue, mocked):
        handle = await start(time_env, task_queue, ASK)
        approval_id = await pending(handle)
        asked = await handle.query(APPROVAL_QUERY, approval_id)
        assert asked == {"reply": "Thanks Nina!", "video": "https://www.tiktok.com/@nina_art/video/1"}
        assert len(mocked.of("notify.send")) == 1
        decision = {"id": approval_id, "decision": "approve", "comment": "ok", "via": "cli"}
        await handle.signal(APPROVAL_SIGNAL, decision)
        await handle.signal(APPROVAL_SIGNAL, {**decision, "decision": "reject", "comment": "no"})
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.outputs["ask"]["decision"] == "approve"
    assert result.outputs["ask"]["via"] == "cli"
    assert [c.params["message"] for c in mocked.of("log")] == ["posting ok"]


async def test_a_rejected_step_posts_nothing(time_env, task_queue):
    mocked = actions()
    async with workers(time_env.client, task_queue, mocked):
        handle = await start(time_env, task_queue, ASK)
        approval_id = await pending(handle)
        await handle.signal(
            APPROVAL_SIGNAL, {"id": approval_id, "decision": "reject", "comment": "", "via": "link"}
        )
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.outputs["ask"]["decision"] == "reject"
    assert mocked.of("log") == []


async def test_no_decision_in_time_fails_the_step_or_continues(time_env, task_queue):
    mocked = actions()
    async with workers(time_env.client, task_queue, mocked):
        failing = await start(time_env, task_queue, ASK)
        message = await failure_message(failing)
        assert message.startswith("steps.ask")
        assert "1h" in message
        assert mocked.of("log") == []
    mocked = actions()
    async with workers(time_env.client, f"{task_queue}-late", mocked):
        late = await start(time_env, f"{task_queue}-late", TIMES_OUT)
        result = await asyncio.wait_for(late.result(), 60)
    assert result.outputs["ask"]["timed_out"] is True
    assert [c.params["message"] for c in mocked.of("log")] == ["timed out True"]
