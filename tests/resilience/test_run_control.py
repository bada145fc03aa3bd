"""Steering runs that are stuck, on a real dev server against the sandbox over HTTP (issue 13).

A run retrying an unreachable provider shows in `tikflow status` which step it retries, the
attempt and why the last one failed, and `tikflow stop` ends it at once instead of after the last
of 20 attempts; `stop` ends a run waiting for a re-authorization; a notification that cannot be
delivered (the re-authorization notice, a `notify` step's alert) never fails the run; and after a
recovery `status` shows neither the old error nor a stale `next:` poll.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from activities.credentials import CredentialStore
from tests.resilience.conftest import Rig, worker_in
from tests.support.emulator import emulator_services
from tests.support.waiting import eventually
from tests.support.webhook import Webhook
from tikflow.devstack import running_workers
from tikflow.emulator.state import DEMO_ACCOUNT_KEY
from tikflow.loader import LoadedRecipe, load_recipe_text
from tikflow.runs import get_status, start_recipe
from workflows.models import PollTrigger, Trigger
from workflows.recipe import RecipeWorkflow, RunResult, RunStatus

#: The default retry policy (1 s doubling, 20 attempts): its last attempt would come hours later.
UNREACHABLE = """
recipe: unreachable
steps:
  - id: videos
    call: tikapi.hashtag_posts
    with: {name: cats}
  - call: log
    with: {message: "never reached"}
"""

REPLY = """
recipe: reply-once
inputs:
  video: {type: string, required: true}
  cid: {type: string, required: true}
NOTIFY
steps:
  - call: tikapi.reply
    with: {media_id: "{{ inputs.video }}", reply_comment_id: "{{ inputs.cid }}", text: "Thanks!"}
"""

ALERT = """
recipe: alert
inputs:
  webhook: {type: string, required: true}
steps:
  - id: alert
    notify: "followers jumped"
    webhook: "{{ inputs.webhook }}"
  - id: after
    call: log
    with: {message: "the run went on"}
"""


async def tikflow(rig: Rig, *args: str) -> tuple[int, str]:
    """The `tikflow` CLI as an operator runs it from a second shell: exit code and output."""
    env = {**os.environ, "TEMPORAL_ADDRESS": rig.address, "TIKFLOW_CREDENTIALS": str(rig.credentials_path)}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("tikflow")),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


def refusing_port() -> int:
    """A loopback port nothing listens on: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def status_until(handle: WorkflowHandle[Any, Any], check: Any, what: str) -> RunStatus:
    """The first `get_status` (what `tikflow status` shows) that passes `check`."""
    return await eventually(lambda: get_status(handle._client, handle.id), until=check, within=60, what=what)


@pytest.fixture
def failing_webhook() -> Iterator[Webhook]:
    hook = Webhook(status=404)  # the hook was deleted
    try:
        yield hook
    finally:
        hook.close()


async def history_kinds(handle: WorkflowHandle[Any, Any]) -> list[int]:
    return [event.event_type async for event in handle.fetch_history_events()]


async def test_a_run_retrying_an_unreachable_provider_shows_its_attempts_and_stops_at_once(rig: Rig) -> None:
    port = refusing_port()
    with structlog.testing.capture_logs() as logs:
        unreachable = f"http://127.0.0.1:{port}/tikapi"
        services = emulator_services(rig.emulator.base, rig.credentials_path, tikapi=unreachable)
        async with running_workers(rig.client, services, rig.task_queue):
            handle = await rig.start(UNREACHABLE)
            await status_until(
                handle,
                lambda s: s.calls and (s.calls[0].attempt or 0) >= 3,
                "the third attempt of the unreachable call",
            )
            code, shown = await tikflow(rig, "status", handle.id)
            assert code == 0, shown
            # What an operator needs: the step, the action, the attempt, the host and why.
            assert "is backing_off" in shown, shown
            attempt = re.search(
                r"steps\.videos \(tikapi\.hashtag_posts\) to succeed: attempt (\d+) of 20", shown
            )
            assert attempt is not None, shown
            assert int(attempt.group(1)) >= 3, shown
            assert re.search(
                rf"last error: steps\.videos \(tikapi\.hashtag_posts\): tikapi: GET 127\.0\.0\.1:{port}"
                r"/tikapi/public/hashtag failed: ConnectError",
                shown,
            ), shown
            assert "errors=0" in shown  # nothing has failed for good yet

            asked = time.monotonic()
            code, said = await tikflow(rig, "stop", handle.id)
            assert code == 0, said
            result: RunResult = await asyncio.wait_for(handle.result(), 30)
            took = time.monotonic() - asked
            final = await get_status(rig.client, handle.id)

    assert result.outcome == "stopped"
    assert took < 10, f"stop took {took:.1f} s"
    kinds = await history_kinds(handle)
    # Cancelled between attempts: no attempt after the stop, no failure, the log step never ran.
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in kinds
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED in kinds
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED not in kinds
    assert kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == 1
    assert (final.phase, final.calls, final.waiting_for, final.next_poll_at) == ("stopped", [], None, None)
    # The worker's log line for a failed attempt names the host, and no query string.
    failed = [entry for entry in logs if entry.get("event") == "action failed"]
    # `attempt 3` is the attempt pending when stop came: the two before it failed and logged.
    assert len(failed) >= 2
    assert all(f"127.0.0.1:{port}/tikapi/public/hashtag" in entry["error"] for entry in failed)
    assert all("?" not in entry["error"] for entry in failed)


async def expired_reply_run(rig: Rig, notify: str) -> tuple[WorkflowHandle[Any, Any], list[str]]:
    """A one-reply run whose TikAPI session expires on its first call: (handle, parent cids)."""
    video, parents = await rig.emulator.comments_to_answer(1)
    await rig.emulator.faults({"provider": "tikapi", "kind": "session_expired", "path": "/user/comment"})
    recipe = REPLY.replace("NOTIFY", notify)
    handle = await rig.start(recipe, {"video": video, "cid": parents[0]})
    return handle, parents


async def test_stop_ends_a_run_waiting_for_reauthorization(rig: Rig) -> None:
    async with worker_in(rig):
        handle, parents = await expired_reply_run(rig, "")
        await status_until(handle, lambda s: s.phase == "awaiting_reauth", "phase awaiting_reauth")
        asked = time.monotonic()
        code, said = await tikflow(rig, "stop", handle.id)
        assert code == 0, said
        result: RunResult = await asyncio.wait_for(handle.result(), 30)
        took = time.monotonic() - asked
        final = await get_status(rig.client, handle.id)

    assert result.outcome == "stopped"
    assert took < 10, f"stop took {took:.1f} s"  # not the 7 days of the default reauth_deadline
    assert (final.phase, final.waiting_for) == ("stopped", None)
    assert sum((await rig.emulator.replies(parents)).values()) == 0


async def test_an_undeliverable_reauth_notification_does_not_fail_the_run(
    rig: Rig, failing_webhook: Webhook
) -> None:
    async with worker_in(rig):
        handle, parents = await expired_reply_run(rig, f"notify: {{webhook: '{failing_webhook.url}'}}")
        waiting = await status_until(
            handle,
            lambda s: s.phase == "awaiting_reauth" and s.counters.notifications_failed == 1,
            "awaiting_reauth with the notification failed",
        )
        assert failing_webhook.posts == 1
        assert waiting.waiting_for is not None
        assert waiting.waiting_for.startswith(
            "re-authorization of tikapi account 'main' (the notification failed:"
        )
        assert "HTTP 404" in waiting.waiting_for
        expired = waiting.last_error
        assert expired is not None
        assert "session" in expired.lower()

        # The operator learned of it from `status` and re-authorizes: the run goes on.
        fresh = await rig.emulator.admin(
            "reauthorize", {"provider": "tikapi", "account_key": DEMO_ACCOUNT_KEY}
        )
        CredentialStore(rig.credentials_path, env={}).update(
            "tikapi", "main", {"account_key": fresh["account_key"]}
        )
        await handle.signal(RecipeWorkflow.reauthorized, "main")
        result: RunResult = await asyncio.wait_for(handle.result(), 60)
        final = await get_status(rig.client, handle.id)
        code, shown = await tikflow(rig, "status", handle.id)

    assert result.outcome == "completed"
    assert (await rig.emulator.replies(parents))[parents[0]] == 1
    # Recovered: the expiry is no longer the last error, it is what the run recovered from.
    assert (final.last_error, final.recovered_from, final.waiting_for) == (None, expired, None)
    assert code == 0, shown
    assert "last error" not in shown, shown
    assert "notifications_failed=1" in shown


async def test_an_undeliverable_alert_is_counted_and_the_run_goes_on(
    rig: Rig, failing_webhook: Webhook
) -> None:
    async with worker_in(rig):
        handle = await rig.start(ALERT, {"webhook": failing_webhook.url})
        result: RunResult = await asyncio.wait_for(handle.result(), 60)
        final = await get_status(rig.client, handle.id)

    assert result.outcome == "completed"
    assert failing_webhook.posts == 1  # a 404 is not retried
    assert result.outputs["alert"]["sent"] is False
    assert "HTTP 404" in result.outputs["alert"]["error"]
    assert result.outputs["after"] == {"logged": "the run went on"}
    assert result.counters.notifications_failed == 1
    assert final.last_error is not None
    assert final.last_error.startswith("steps.alert (notify.send)")


MONITOR = """
recipe: flaky-monitor
retry: {initial: 1s, max_attempts: 2}
trigger: {poll: {every: 1h}}
steps:
  - id: videos
    call: tikapi.hashtag_posts
    with: {name: cats}
"""


async def test_status_after_a_recovery_shows_no_stale_error_or_next_poll(rig: Rig) -> None:
    loaded = load_recipe_text(MONITOR, "<test recipe>")
    # Polls 2 s apart (below what a shipped recipe may ask for, so set past the loader).
    fast = loaded.recipe.model_copy(update={"trigger": Trigger(poll=PollTrigger(every="2s"))})
    # Poll 2 meets a 503 on both its attempts (it fails); poll 3 is clean again.
    await rig.emulator.faults(
        {"provider": "tikapi", "kind": "status", "status": 503, "count": 2, "skip": 1, "path": "/public/"}
    )
    async with worker_in(rig):
        _, handle = await start_recipe(
            rig.client,
            LoadedRecipe(recipe=fast, source=loaded.source),
            {},
            task_queue=rig.task_queue,
            workflow_id=f"recovery-{rig.task_queue}",
        )
        assert handle is not None
        retrying = await status_until(handle, lambda s: s.phase == "backing_off", "poll 2 retrying")
        assert retrying.next_poll_at is None  # polling, not sleeping: no next poll is due
        assert retrying.last_error is not None
        assert "HTTP 503" in retrying.last_error
        failed = await status_until(
            handle, lambda s: s.counters.errors == 1 and s.phase == "sleeping", "poll 2 failed"
        )
        assert failed.last_error is not None
        assert "HTTP 503" in failed.last_error
        recovered = await status_until(handle, lambda s: s.counters.polls >= 3, "poll 3 done")
        assert (recovered.last_error, recovered.recovered_from) == (None, failed.last_error)
        code, shown = await tikflow(rig, "status", handle.id)
        assert code == 0, shown
        assert "last error" not in shown, shown
        await handle.signal(RecipeWorkflow.stop)
        result: RunResult = await asyncio.wait_for(handle.result(), 30)
        code, shown = await tikflow(rig, "status", handle.id)

    assert result.outcome == "stopped"
    assert "next: -" in shown, shown  # the run ended: nothing is due
