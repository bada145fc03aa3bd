"""The `approval:` step in `RecipeWorkflow`, on the time-skipping test server (issue 16, item 4).

The run asks (one `notify.send`, its `approval_request` query answering what is to be approved),
waits durably, and takes the first decision only; a timeout fails the step or continues.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.test_recipe_workflow import Actions, failure_message, recipe, start, status_when, workers
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


async def test_tikflow_approve_and_reject_decide_once_from_a_shell(dev_env, workers, tmp_path):
    """`tikflow approve` delivers the decision (via `cli`); a second decision is refused with one line."""
    import os

    from test_devserver import tikflow

    from tikflow.runs import build_run
    from workflows.recipe import RecipeWorkflow

    client = dev_env.client
    os.environ["TIKFLOW_TASK_QUEUE"] = workers  # the CLI's one-decision records go to these workers
    try:
        handles = []
        for suffix in ("yes", "no"):
            handles.append(
                await client.start_workflow(
                    RecipeWorkflow.run,
                    build_run(recipe(ASK), {}),
                    id=f"ask-{suffix}-{workers}",
                    task_queue=workers,
                )
            )
        yes, no = handles
        approval_id = await pending(yes)
        await pending(no)

        approved = await tikflow(client, "approve", yes.id, "--comment", "looks   good")
        assert approved.returncode == 0, approved.stderr
        assert approved.stdout == f"approved approval {approval_id} of run {yes.id}\n"
        result = await asyncio.wait_for(yes.result(), 60)
        assert result.outputs["ask"]["decision"] == "approve"
        assert result.outputs["ask"]["via"] == "cli"
        assert result.outputs["ask"]["comment"] == "looks good"

        again = await tikflow(client, "reject", yes.id)
        assert again.returncode == 1
        [line] = again.stderr.splitlines()
        assert line.startswith(f"tikflow: run {yes.id} is not waiting for an approval")

        wrong = await tikflow(client, "reject", no.id, "--approval", "steps.other")
        assert wrong.returncode == 1
        assert "is not waiting for approval 'steps.other'" in wrong.stderr

        rejected = await tikflow(client, "reject", no.id, "--approval", "steps.ask")
        assert rejected.returncode == 0, rejected.stderr
        assert (await asyncio.wait_for(no.result(), 60)).outputs["ask"]["decision"] == "reject"
    finally:
        del os.environ["TIKFLOW_TASK_QUEUE"]
