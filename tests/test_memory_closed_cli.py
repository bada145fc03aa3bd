"""A failed or terminated monitor, the real sandbox, the CLI: `tikflow state` shows what it kept,
and `tikflow run` restarts it without answering a comment twice (dev server)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker
from test_devserver import tikflow

from tests.support.waiting import eventually
from tikflow.loader import LoadedRecipe, load_recipe
from tikflow.runs import build_run, run_id_for, start_recipe
from workflows.models import PollTrigger, Trigger
from workflows.recipe import RecipeRun, RecipeWorkflow, RunStatus

pytestmark = pytest.mark.devserver

ME = "tikflow_demo"

MONITOR = """
recipe: {name}
inputs:
  video: {{type: string}}
trigger:
  poll: {{every: 1h}}
steps:
  - id: comments
    call: tikapi.comments
    with: {{media_id: "{{{{ inputs.video }}}}", count: 30}}
  - id: replies
    for_each: "{{{{ steps.comments.items }}}}"
    as: comment
    if: "{{{{ comment.author != '{me}' }}}}"
    new_only: cid
    steps:
      - call: tikapi.reply
        with:
          media_id: "{{{{ comment.aweme_id }}}}"
          reply_comment_id: "{{{{ comment.cid }}}}"
          text: thanks
"""

#: A monitor that needs no provider.
LOGGING = """
recipe: {name}
trigger: {{poll: {{every: 1h}}}}
steps:
  - call: log
    with: {{message: hi}}
"""


def prepare(stack: Any) -> str:
    """A video of someone else's with a few comments to answer; its id."""
    video = next(v["id"] for v in stack.state()["tikapi"]["videos"] if v["author"] != ME)
    stack.admin("tick", {"comments": 3, "video_id": video, "text": "love it"})
    return str(video)


def replies_per_comment(stack: Any, video: str) -> Counter[str]:
    """How many replies of ours each comment under `video` has in the sandbox."""
    comments = stack.state()["tikapi"]["comments"]
    return Counter(c["reply_to"] for c in comments if c["author"] == ME and c["aweme_id"] == video)


def asked(stack: Any, video: str) -> set[str]:
    """The comments of others under `video` (each wants one reply)."""
    comments = stack.state()["tikapi"]["comments"]
    return {c["cid"] for c in comments if c["aweme_id"] == video and not c["reply_to"] and c["author"] != ME}


async def first_run(stack: Any, path: Path, video: str, every: str) -> tuple[str, Any]:
    """Start the monitor in `path` polling `every` (the CLI holds files to 10 s at least)."""
    loaded = load_recipe(path)
    fast = loaded.recipe.model_copy(update={"trigger": Trigger(poll=PollTrigger(every=every))})
    run_id, handle = await start_recipe(
        stack.client,
        LoadedRecipe(recipe=fast, source=loaded.source),
        {"video": video},
        task_queue=stack.task_queue,
    )
    assert run_id == run_id_for(loaded.recipe, {"video": video})
    return run_id, handle


async def restart_and_answer(stack: Any, path: Path, video: str, run_id: str) -> None:
    """`tikflow run` the same recipe and inputs again, let it poll once, stop it."""
    ran = await tikflow(
        stack.client, "run", str(path), "--input", f"video={video}", "--task-queue", stack.task_queue
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""  # no warning: the memory was recovered
    handle = stack.client.get_workflow_handle(run_id)

    async def status() -> RunStatus:
        return await handle.query(RecipeWorkflow.status)

    await eventually(status, until=lambda s: s.iteration == 1, within=30, what="the restart's first poll")
    await handle.signal(RecipeWorkflow.stop)
    await asyncio.wait_for(handle.result(), 30)


async def test_a_monitor_that_gave_up_on_a_refusing_provider_restarts_without_answering_twice(
    stack, tmp_path
):
    video = await asyncio.to_thread(prepare, stack)
    path = tmp_path / "monitor.yaml"
    path.write_text(MONITOR.format(name=f"memfail-{stack.task_queue[3:11]}", me=ME))
    run_id, handle = await first_run(stack, path, video, "1s")

    async def status() -> RunStatus:
        return await handle.query(RecipeWorkflow.status)

    await eventually(status, until=lambda s: s.iteration >= 1, within=30, what="the first poll")
    # TikAPI refuses the key for listings from now on (401: CredentialsRejected, not retried):
    # every poll fails. Replies still pass, so one in flight now is posted.
    rule = {"provider": "tikapi", "kind": "status", "status": 401, "path": "/comment/list", "count": None}
    await asyncio.to_thread(stack.admin, "faults", {"rules": [rule]})
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), 60)
    answered = await asyncio.to_thread(replies_per_comment, stack, video)
    assert answered
    assert set(answered.values()) == {1}

    shown = await tikflow(stack.client, "state", run_id)
    assert shown.returncode == 0, shown.stderr
    head, *lines = shown.stdout.splitlines()
    assert head == f"{run_id} is closed (failed): its restart starts from this memory"
    [line] = lines
    assert line.startswith(f"replies#each: {len(answered)} keys   oldest: ")
    refused = await tikflow(stack.client, "state", run_id, "--reset", "replies")
    assert refused.returncode == 1
    assert refused.stderr == (
        f"tikflow: cannot reset {run_id!r}: it is not running (failed); its restart starts from the "
        "memory `tikflow state` shows: start it again, then reset\n"
    )

    await asyncio.to_thread(stack.admin, "faults", method="DELETE")
    await asyncio.to_thread(stack.admin, "tick", {"comments": 1, "video_id": video, "text": "and me?"})
    await restart_and_answer(stack, path, video, run_id)
    answered = await asyncio.to_thread(replies_per_comment, stack, video)
    assert set(answered.values()) == {1}, "a comment was answered twice"
    assert set(answered) == await asyncio.to_thread(asked, stack, video)


async def test_a_terminated_monitor_restarts_without_answering_twice(stack, tmp_path):
    video = await asyncio.to_thread(prepare, stack)
    path = tmp_path / "monitor.yaml"
    path.write_text(MONITOR.format(name=f"memterm-{stack.task_queue[3:11]}", me=ME))
    run_id, handle = await first_run(stack, path, video, "1h")

    async def status() -> RunStatus:
        return await handle.query(RecipeWorkflow.status)

    # Terminated between polls: a reply cut off mid-poll would stay unanswered (items are
    # remembered before their steps run), which is not what this test is about.
    await eventually(
        status, until=lambda s: s.iteration == 1 and s.phase == "sleeping", within=30, what="the first poll"
    )
    await handle.terminate("pulled the plug")
    answered = await asyncio.to_thread(replies_per_comment, stack, video)
    assert answered

    shown = await tikflow(stack.client, "state", run_id)
    assert shown.returncode == 0, shown.stderr
    head, line = shown.stdout.splitlines()
    assert head == f"{run_id} is closed (terminated): its restart starts from this memory"
    assert line.startswith(f"replies#each: {len(answered)} keys   oldest: ")

    await asyncio.to_thread(stack.admin, "tick", {"comments": 1, "video_id": video, "text": "and me?"})
    await restart_and_answer(stack, path, video, run_id)
    answered = await asyncio.to_thread(replies_per_comment, stack, video)
    assert set(answered.values()) == {1}, "a comment was answered twice"
    assert set(answered) == await asyncio.to_thread(asked, stack, video)


@workflow.defn(name="RecipeWorkflow", sandboxed=False)
class AnotherVersion:
    """A `RecipeWorkflow` whose commands today's code would not make: its history does not replay."""

    @workflow.run
    async def run(self, run: RecipeRun) -> None:
        await workflow.sleep(timedelta(hours=1))


async def test_memory_that_cannot_be_recovered_is_one_line_in_state_and_run(dev_env, workers, tmp_path):
    client = dev_env.client
    path = tmp_path / "monitor.yaml"
    path.write_text(LOGGING.format(name=f"memlost-{workers[3:11]}"))
    loaded = load_recipe(path)
    run_id = run_id_for(loaded.recipe, {})
    other_queue = f"{workers}-other"
    async with Worker(client, task_queue=other_queue, workflows=[AnotherVersion]):
        other = await client.start_workflow(
            AnotherVersion.run, build_run(loaded, {}), id=run_id, task_queue=other_queue
        )

        async def timer_started() -> bool:
            history = await other.fetch_history()
            return any(event.HasField("timer_started_event_attributes") for event in history.events)

        await eventually(timer_started, within=10, what="the other version's timer")
        await other.terminate()

    shown = await tikflow(client, "state", run_id)
    assert shown.returncode == 1
    assert shown.stdout == ""
    [line] = shown.stderr.splitlines()
    assert line.startswith(
        f"tikflow: {run_id} ended terminated and its history did not replay with this version"
    )
    assert line.endswith(": its restart starts empty")

    ran = await tikflow(client, "run", str(path), "--task-queue", workers)
    assert ran.returncode == 0, ran.stderr
    [warning] = ran.stderr.splitlines()
    assert warning.startswith(
        f"tikflow: warning: run {run_id} ended terminated and its history did not replay"
    )
    assert warning.endswith(": the new run's new_only memory starts empty")
    assert ran.stdout.startswith(f"started run {run_id}\n")
    handle = client.get_workflow_handle(run_id)
    await handle.signal(RecipeWorkflow.stop)
    await asyncio.wait_for(handle.result(), 30)


async def test_a_monitor_terminated_mid_replies_restarts_and_answers_every_comment_once(stack, tmp_path):
    video = await asyncio.to_thread(prepare, stack)
    path = tmp_path / "monitor.yaml"
    path.write_text(MONITOR.format(name=f"memmid-{stack.task_queue[3:11]}", me=ME))
    # The first reply is posted; the next ones get a 503 (retried), so the run terminated between
    # two attempts has an item whose steps are in flight and that posted nothing.
    rule = {
        "provider": "tikapi",
        "kind": "status",
        "method": "POST",
        "path": "/user/comment",
        "count": None,
        "skip": 1,
    }
    await asyncio.to_thread(stack.admin, "faults", {"rules": [rule]})
    run_id, handle = await first_run(stack, path, video, "1h")

    async def attempts() -> list[int]:
        described = await handle.describe()
        return [a.attempt for a in described.raw_description.pending_activities]

    await eventually(attempts, until=lambda a: any(n >= 2 for n in a), within=30, what="a reply retried")
    await handle.terminate("pulled the plug mid-replies")
    await asyncio.to_thread(stack.admin, "faults", method="DELETE")
    answered = await asyncio.to_thread(replies_per_comment, stack, video)
    assert len(answered) == 1
    # Only the answered comment is remembered: the restart answers the others.
    shown = await tikflow(stack.client, "state", run_id)
    assert shown.returncode == 0, shown.stderr
    head, line, unfinished = shown.stdout.splitlines()
    assert head == f"{run_id} is closed (terminated): its restart starts from this memory"
    assert line.startswith("replies#each: 1 keys   oldest: ")
    assert unfinished.startswith("replies#each: ")
    assert unfinished.endswith(
        " items not finished: its restart acts on them again under the same idempotency keys"
    )

    await restart_and_answer(stack, path, video, run_id)
    answered = await asyncio.to_thread(replies_per_comment, stack, video)
    assert set(answered.values()) == {1}, "a comment was answered twice"
    assert set(answered) == await asyncio.to_thread(asked, stack, video)
