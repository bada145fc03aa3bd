"""Re-authorization waits on the time-skipping server: one notification per expiry, a clear failure
at the deadline, and no second wait for a 428 that only reflects the key before the re-authorization.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.contracts import ActionRequest, task_queue_for
from tests.support.waiting import eventually
from tikflow.loader import load_recipe_text
from tikflow.runs import start_recipe
from workflows.recipe import RecipeWorkflow, RunResult, workflow_runner

FIVE_REPLIES = """
recipe: five-replies
reauth_deadline: 2d
inputs:
  cids: {type: list, default: ["7300000000000000001", "7300000000000000002", "7300000000000000003",
                               "7300000000000000004", "7300000000000000005"]}
steps:
  - for_each: "{{ inputs.cids }}"
    as: cid
    concurrency: 5
    steps:
      - call: tikapi.reply
        with: {media_id: "7109178205151464746", reply_comment_id: "{{ cid }}", text: "thanks!"}
"""


class ExpiredSession:
    """TikAPI answering 428 to everything, and a notification target that records."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []

    @activity.defn(name="tikapi.reply")
    async def reply(self, request: ActionRequest) -> dict[str, Any]:
        raise ApplicationError(
            "tikapi HTTP 428 code 8: Account session expired",
            {"provider": "tikapi", "status": 428, "code": 8, "account": request.account},
            type="SessionExpired",
            non_retryable=True,
        )

    @activity.defn(name="notify.send")
    async def notify(self, request: ActionRequest) -> dict[str, Any]:
        self.notifications.append(request.params)
        return {"sent": True}


async def test_unanswered_reauth_notifies_once_then_fails_clearly_at_the_deadline(
    time_env: WorkflowEnvironment,
) -> None:
    queue = f"reauth-{uuid.uuid4()}"
    provider = ExpiredSession()
    async with (
        Worker(
            time_env.client,
            task_queue=queue,
            workflows=[RecipeWorkflow],
            workflow_runner=workflow_runner(),
            activities=[provider.notify],
        ),
        Worker(
            time_env.client, task_queue=task_queue_for("tikapi.reply", queue), activities=[provider.reply]
        ),
    ):
        _, handle = await start_recipe(
            time_env.client,
            load_recipe_text(FIVE_REPLIES),
            {},
            task_queue=queue,
            workflow_id=queue,
            search_attributes=False,
        )
        assert handle is not None

        async def awaiting() -> Any:
            status = await handle.query(RecipeWorkflow.status)
            return status if status.phase == "awaiting_reauth" else None

        status = await eventually(awaiting, within=30, what="phase awaiting_reauth")
        assert status.waiting_for == "re-authorization of tikapi account 'main'"

        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        # A closed run still answers queries (replayed by the worker).
        status = await handle.query(RecipeWorkflow.status)

    message = str(failure.value.cause)
    assert "was not re-authorized within 2d" in message
    assert "account 'main'" in message
    # Five calls met the expiry at once: one re-authorization request, saying what to run; then,
    # at the deadline, the run's one failure alert with its reason.
    request, alert = provider.notifications
    assert f"tikflow reauth {queue} --account main" in request["message"]
    assert request["data"]["event"] == "awaiting_reauth"
    assert alert["alert"] is True
    assert alert["data"]["event"] == "failed"
    assert alert["data"]["reason"] == failure.value.cause.message  # type: ignore[attr-defined]
    assert status.phase == "failed"
    assert status.counters.reauths == 1


class RacingReauth:
    """cid …1 meets the expiry at once; cid …2 is in flight with the old key until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls: Counter[str] = Counter()

    @activity.defn(name="tikapi.reply")
    async def reply(self, request: ActionRequest) -> dict[str, Any]:
        cid = request.params["reply_comment_id"]
        self.calls[cid] += 1
        if self.calls[cid] > 1:
            return {"comment": {"cid": uuid.uuid4().hex}, "already_done": False}
        if cid.endswith("2"):
            await self.release.wait()
        raise ApplicationError(
            "tikapi HTTP 428 code 8: Account session expired",
            {"provider": "tikapi", "status": 428, "code": 8, "account": request.account},
            type="SessionExpired",
            non_retryable=True,
        )

    @activity.defn(name="notify.send")
    async def notify(self, request: ActionRequest) -> dict[str, Any]:
        return {"sent": True}


async def test_a_428_from_a_call_sent_before_the_reauth_is_redone_without_waiting_again(
    time_env: WorkflowEnvironment,
) -> None:
    queue = f"reauth-race-{uuid.uuid4()}"
    provider = RacingReauth()
    recipe = FIVE_REPLIES.replace("reauth_deadline: 2d", "reauth_deadline: 1h")
    async with (
        Worker(
            time_env.client,
            task_queue=queue,
            workflows=[RecipeWorkflow],
            workflow_runner=workflow_runner(),
            activities=[provider.notify],
        ),
        Worker(
            time_env.client, task_queue=task_queue_for("tikapi.reply", queue), activities=[provider.reply]
        ),
    ):
        _, handle = await start_recipe(
            time_env.client,
            load_recipe_text(recipe),
            {},
            task_queue=queue,
            workflow_id=queue,
            search_attributes=False,
        )
        assert handle is not None

        async def awaiting() -> bool:
            return (await handle.query(RecipeWorkflow.status)).phase == "awaiting_reauth"

        await eventually(awaiting, within=30, what="phase awaiting_reauth")
        await handle.signal(RecipeWorkflow.reauthorized, "main")

        async def redone() -> bool:
            return provider.calls["7300000000000000001"] == 2

        await eventually(redone, within=30, what="the first call redone after the signal")
        # The old-key call now fails too, after the signal: the run must redo it with the new key,
        # not wait (here until the 1 h deadline, which the time-skipping server would jump to).
        provider.release.set()
        result: RunResult = await handle.result()

    assert result.outcome == "completed"
    assert result.counters.reauths == 1
    assert result.counters.effects == 5
    assert provider.calls["7300000000000000002"] == 2


class ExpiryBesideASuccess:
    """cid …1 meets the expiry; cid …2 succeeds later, while the run still waits for the reauth."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls: Counter[str] = Counter()

    @activity.defn(name="tikapi.reply")
    async def reply(self, request: ActionRequest) -> dict[str, Any]:
        cid = request.params["reply_comment_id"]
        self.calls[cid] += 1
        if cid.endswith("1") and self.calls[cid] == 1:
            raise ApplicationError(
                "tikapi HTTP 428 code 8: Account session expired",
                {"provider": "tikapi", "status": 428, "code": 8, "account": request.account},
                type="SessionExpired",
                non_retryable=True,
            )
        if cid.endswith("2"):
            await self.release.wait()
        return {"comment": {"cid": uuid.uuid4().hex}, "already_done": False}

    @activity.defn(name="notify.send")
    async def notify(self, request: ActionRequest) -> dict[str, Any]:
        return {"sent": True}


async def test_a_concurrent_success_does_not_hide_a_run_that_awaits_reauth(
    time_env: WorkflowEnvironment,
) -> None:
    queue = f"reauth-phase-{uuid.uuid4()}"
    provider = ExpiryBesideASuccess()
    recipe = FIVE_REPLIES.replace('"7300000000000000003",\n', "").replace(
        '"7300000000000000004", "7300000000000000005"', ""
    )
    async with (
        Worker(
            time_env.client,
            task_queue=queue,
            workflows=[RecipeWorkflow],
            workflow_runner=workflow_runner(),
            activities=[provider.notify],
        ),
        Worker(
            time_env.client, task_queue=task_queue_for("tikapi.reply", queue), activities=[provider.reply]
        ),
    ):
        _, handle = await start_recipe(
            time_env.client,
            load_recipe_text(recipe),
            {},
            task_queue=queue,
            workflow_id=queue,
            search_attributes=False,
        )
        assert handle is not None

        async def status_when(check: Any) -> Any:
            status = await handle.query(RecipeWorkflow.status)
            return status if check(status) else None

        await eventually(
            lambda: status_when(lambda s: s.phase == "awaiting_reauth"), within=30, what="awaiting_reauth"
        )
        provider.release.set()
        status = await eventually(
            lambda: status_when(lambda s: s.counters.calls == 1), within=30, what="the other reply done"
        )
        # Still waiting for the operator, and still saying so: `tikflow status` and TikflowPhase
        # are how anyone learns that a re-authorization is needed.
        assert status.phase == "awaiting_reauth"
        assert status.waiting_for == "re-authorization of tikapi account 'main'"
        await handle.signal(RecipeWorkflow.reauthorized, "main")
        result: RunResult = await handle.result()

    assert result.outcome == "completed"
    assert result.counters.effects == 2
