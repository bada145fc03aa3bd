"""`wait_for` and `trigger: webhook` in `RecipeWorkflow`, on the time-skipping test server.

Events reach runs as the ingress hands them over: a signal-with-start of the correlation key's
mailbox (`tikflow_deliver`), or a signal to a route's listener. The HTTP side is in
`tests/ingress/test_recipe_events.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.contracts import ActionRequest
from tests.support.waiting import eventually
from tests.test_recipe_workflow import status_when
from tikflow.loader import load_recipe_text
from tikflow.runs import AlreadyRunning, build_run, start_recipe
from workflows.events import (
    DELIVER_SIGNAL,
    Event,
    EventMailboxWorkflow,
    MailboxSpec,
    RouteState,
    event_workflows,
    mailbox_id,
    route_child_id,
    route_workflow_id,
)
from workflows.recipe import RecipeWorkflow, RunResult, RunStatus, workflow_runner

WAITER = """
recipe: waiter
inputs:
  key: {type: string}
  wait: {type: string, default: 10m}
  kind: {type: string, default: post.publish.complete}
steps:
  - id: done
    wait_for: tiktok
    key: "{{ inputs.key }}"
    match: "{{ event.type == inputs.kind }}"
    timeout: "{{ inputs.wait }}"
  - id: after
    set: {type: "{{ steps.done.type }}", publish_id: "{{ steps.done.body.content.publish_id }}"}
"""


#: The `notify.send` calls of the runs below (a failing run sends its failure alert), by run.
SENT: dict[str, list[dict[str, Any]]] = {}


@activity.defn(name="notify.send")
async def record_notification(request: ActionRequest) -> dict[str, Any]:
    SENT.setdefault(activity.info().workflow_id or "", []).append(request.params)
    return {"sent": True}


@contextlib.asynccontextmanager
async def worker(client: Client, task_queue: str, *, notify: bool = True) -> AsyncIterator[None]:
    """The workflows' worker; with `notify`, also a `notify.send` that records into `SENT`."""
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[RecipeWorkflow, *event_workflows()],
        workflow_runner=workflow_runner(),
        activities=[record_notification] if notify else [],
    ):
        yield


def tiktok_event(event_id: str, key: str, kind: str = "post.publish.complete") -> Event:
    return Event(
        id=event_id,
        source="tiktok",
        type=kind,
        key=key,
        received_at="2025-01-01T00:00:00+00:00",
        body={"event": kind, "content": {"publish_id": key}},
    )


async def deliver(client: Client, task_queue: str, event: Event) -> None:
    """What the ingress does with a TikTok event: signal-with-start the key's mailbox."""
    await client.start_workflow(
        EventMailboxWorkflow.run,
        args=[MailboxSpec(provider="tiktok", key=event.key), None],
        id=mailbox_id("tiktok", event.key),
        task_queue=task_queue,
        start_signal=DELIVER_SIGNAL,
        start_signal_args=[event],
    )


async def start_waiter(env: WorkflowEnvironment, task_queue: str, inputs: dict[str, Any], wf_id: str):
    run = build_run(load_recipe_text(WAITER, "waiter.yaml"), inputs)
    return await env.client.start_workflow(RecipeWorkflow.run, run, id=wf_id, task_queue=task_queue)


async def waiting(handle: Any) -> RunStatus:
    async def status() -> RunStatus:
        return await handle.query(RecipeWorkflow.status)

    return await eventually(status, until=lambda s: bool(s.waiting_for), within=20, what="the wait")


async def test_an_event_that_came_before_the_wait_is_not_lost(time_env: WorkflowEnvironment, task_queue: str):
    async with worker(time_env.client, task_queue):
        await deliver(time_env.client, task_queue, tiktok_event("e1", "pub-early"))
        handle = await start_waiter(time_env, task_queue, {"key": "pub-early"}, "waiter-early")
        result = await handle.result()
    assert result.outputs["done"]["id"] == "e1"
    assert result.outputs["done"]["timed_out"] is False
    assert result.outputs["after"] == {"type": "post.publish.complete", "publish_id": "pub-early"}


async def test_the_run_waits_then_takes_the_matching_event_once(
    time_env: WorkflowEnvironment, task_queue: str
):
    async with worker(time_env.client, task_queue):
        handle = await start_waiter(time_env, task_queue, {"key": "pub-2"}, "waiter-late")
        status = await waiting(handle)
        assert status.waiting_for == ("a tiktok event for 'pub-2' where {{ event.type == inputs.kind }}")
        # Another key's event, an event of another kind, then the same event three times.
        await deliver(time_env.client, task_queue, tiktok_event("other", "pub-3"))
        await deliver(
            time_env.client, task_queue, tiktok_event("inbox", "pub-2", "post.publish.inbox_delivered")
        )
        for _ in range(3):
            await deliver(time_env.client, task_queue, tiktok_event("done", "pub-2"))
        result = await handle.result()
        mailbox = time_env.client.get_workflow_handle(mailbox_id("tiktok", "pub-2"))
        counts = await mailbox.query(EventMailboxWorkflow.counts)
    assert result.outputs["done"]["id"] == "done"
    assert (counts["accepted"], counts["duplicates"]) == (2, 2)


async def test_no_event_in_time_fails_the_step(time_env: WorkflowEnvironment, task_queue: str):
    SENT.pop("waiter-none", None)
    async with worker(time_env.client, task_queue):
        handle = await start_waiter(time_env, task_queue, {"key": "pub-none", "wait": "5m"}, "waiter-none")
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    reason = "steps.done: no tiktok event for 'pub-none' where {{ event.type == inputs.kind }} within 5m"
    assert failed.value.cause.message == reason  # type: ignore[attr-defined]
    # One failure alert, with the reason.
    alerts = [(sent["data"]["event"], sent["data"]["reason"]) for sent in SENT[handle.id]]
    assert alerts == [("failed", reason)]


async def test_on_timeout_continue_and_a_zero_wait_subscribes_to_nothing(
    time_env: WorkflowEnvironment, task_queue: str
):
    text = WAITER.replace(
        'timeout: "{{ inputs.wait }}"', 'timeout: "{{ inputs.wait }}"\n    on_timeout: continue'
    )
    text = text[: text.index("  - id: after")]
    async with worker(time_env.client, task_queue):
        run = build_run(load_recipe_text(text, "w.yaml"), {"key": "pub-zero", "wait": "0s"})
        result = await time_env.client.execute_workflow(
            RecipeWorkflow.run, run, id="w0", task_queue=task_queue
        )
        assert result.outputs["done"] == {"timed_out": True, "key": "pub-zero"}
        history = await time_env.client.get_workflow_handle("w0").fetch_history()
        assert not [
            e
            for e in history.events
            if e.HasField("start_child_workflow_execution_initiated_event_attributes")
        ]
        assert not [e for e in history.events if e.HasField("timer_started_event_attributes")]
        run = build_run(load_recipe_text(text, "w.yaml"), {"key": "pub-late", "wait": "1m"})
        result = await time_env.client.execute_workflow(
            RecipeWorkflow.run, run, id="w1", task_queue=task_queue
        )
        assert result.outputs["done"] == {"timed_out": True, "key": "pub-late"}


async def test_stop_ends_a_wait(time_env: WorkflowEnvironment, task_queue: str):
    async with worker(time_env.client, task_queue):
        handle = await start_waiter(time_env, task_queue, {"key": "pub-stop", "wait": "7d"}, "waiter-stop")
        await waiting(handle)
        await handle.signal(RecipeWorkflow.stop)
        result = await handle.result()
    assert result.outcome == "stopped"


HOOK = """
recipe: hooked
inputs:
  video_url: {type: string}
  caption: {type: string, default: ""}
  tag: {type: string, default: fixed}
trigger:
  webhook:
    route: ROUTE
    auth: token
    credential: crm
    filter: "{{ event.body.video_url is defined }}"
    event_id: "{{ event.body.submission | default(event.id) }}"
    inputs:
      video_url: "{{ event.body.video_url }}"
      caption: "{{ event.body.caption | default('none') }}"
steps:
  - id: echo
    set: {url: "{{ inputs.video_url }}", caption: "{{ inputs.caption }}", tag: "{{ inputs.tag }}"}
"""


def form_event(event_id: str, body: Any) -> Event:
    return Event(id=event_id, source="form", received_at="2025-01-01T00:00:00+00:00", body=body)


async def test_a_webhook_recipe_starts_one_run_per_new_event(time_env: WorkflowEnvironment, task_queue: str):
    loaded = load_recipe_text(HOOK.replace("ROUTE", "form-a"), "hooked.yaml")
    client = time_env.client
    async with worker(client, task_queue):
        route_id, handle = await start_recipe(
            client, loaded, {"tag": "given"}, task_queue=task_queue, search_attributes=False
        )
        assert (route_id, handle) == (route_workflow_id("form-a"), None)
        with pytest.raises(AlreadyRunning):
            await start_recipe(client, loaded, {}, task_queue=task_queue, search_attributes=False)
        listener = client.get_workflow_handle(route_id, result_type=RouteState)
        events = [
            form_event("d1", {"video_url": "https://v/1.mp4", "caption": "one", "submission": "s1"}),
            form_event("d2", {"video_url": "https://v/1.mp4", "caption": "one", "submission": "s1"}),
            form_event("d3", {"caption": "no url"}),
            form_event("d4", {"video_url": "https://v/2.mp4"}),
        ]
        for event in [events[0], events[0], *events[1:]]:
            await listener.signal(DELIVER_SIGNAL, event)
        await listener.signal("stop")  # `tikflow stop`: events taken are still dispatched
        state = await listener.result()
        first = await client.get_workflow_handle(
            route_child_id("form-a", "s1"), result_type=RunResult
        ).result()
        second = await client.get_workflow_handle(
            route_child_id("form-a", "d4"), result_type=RunResult
        ).result()
    assert first.outputs["echo"] == {"url": "https://v/1.mp4", "caption": "one", "tag": "given"}
    assert second.outputs["echo"] == {"url": "https://v/2.mp4", "caption": "none", "tag": "given"}
    # d1 twice: the listener's own de-dup; d2: the same submission, one run; d3: filtered.
    assert (state.accepted, state.duplicates, state.filtered) == (2, 2, 1)
    assert (await listener.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_an_event_without_a_required_input_fails_its_run(
    time_env: WorkflowEnvironment, task_queue: str
):
    text = HOOK.replace("ROUTE", "form-b").replace(
        '    filter: "{{ event.body.video_url is defined }}"\n', ""
    )
    client = time_env.client
    async with worker(client, task_queue):
        route_id, _ = await start_recipe(
            client, load_recipe_text(text, "h.yaml"), {}, task_queue=task_queue, search_attributes=False
        )
        await client.get_workflow_handle(route_id).signal(DELIVER_SIGNAL, form_event("x", {"video_url": 5}))
        await client.get_workflow_handle(route_id).signal("stop")
        await client.get_workflow_handle(route_id).result()
        with pytest.raises(WorkflowFailureError) as failed:
            await client.get_workflow_handle(route_child_id("form-b", "x")).result()
    assert "trigger.webhook.inputs.video_url: the event's value is not string" in str(failed.value.cause)


async def test_two_concurrent_waits_both_show_and_both_end(time_env: WorkflowEnvironment, task_queue: str):
    text = """
recipe: two
steps:
  - parallel:
      - - id: a
          wait_for: tiktok
          key: ka
      - - id: b
          wait_for: tiktok
          key: kb
"""
    async with worker(time_env.client, task_queue):
        run = build_run(load_recipe_text(text, "two.yaml"), {})
        handle = await time_env.client.start_workflow(
            RecipeWorkflow.run, run, id="two", task_queue=task_queue
        )
        status = await eventually(
            lambda: handle.query(RecipeWorkflow.status),
            until=lambda s: bool(s.waiting_for) and ";" in s.waiting_for,
            within=20,
            what="both waits",
        )
        assert "'ka'" in (status.waiting_for or "")
        assert "'kb'" in (status.waiting_for or "")
        await asyncio.gather(
            deliver(time_env.client, task_queue, tiktok_event("ea", "ka")),
            deliver(time_env.client, task_queue, tiktok_event("eb", "kb")),
        )
        result = await handle.result()
    assert (result.outputs["a"]["id"], result.outputs["b"]["id"]) == ("ea", "eb")


REVOKED = """
recipe: revoked
steps:
  - id: info
    call: tiktok.creator_info
  - wait: 1h
  - id: again
    call: tiktok.creator_info
"""


async def test_authorization_removed_parks_the_run_at_once_with_its_notice(
    time_env: WorkflowEnvironment, task_queue: str
):
    from activities.contracts import task_queue_for
    from tests.test_recipe_workflow import Actions

    actions = Actions(
        tiktok__creator_info=lambda r: {"creator_username": "me"}, notify__send=lambda r: {"sent": True}
    )
    client = time_env.client
    async with (
        worker(client, task_queue, notify=False),  # the notices go to `actions`
        Worker(
            client,
            task_queue=task_queue_for("tiktok.creator_info", task_queue),
            activities=[actions.activity_for("tiktok.creator_info")],
        ),
    ):
        notify_worker = Worker(
            client, task_queue=task_queue, activities=[actions.activity_for("notify.send")]
        )
        async with notify_worker:
            run = build_run(load_recipe_text(REVOKED, "revoked.yaml"), {})
            handle = await client.start_workflow(RecipeWorkflow.run, run, id="revoked", task_queue=task_queue)
            mailbox = client.get_workflow_handle(mailbox_id("tiktok", "account:main"))

            async def subscribers() -> int:
                return int((await mailbox.query(EventMailboxWorkflow.counts))["subscribers"])

            await eventually(subscribers, within=20, what="the run to watch its account")
            removed = Event(
                id="rm1",
                source="tiktok",
                type="authorization.removed",
                key="account:main",
                received_at="2025-01-01T00:00:00+00:00",
                body={"event": "authorization.removed", "content": {"reason": 1}},
            )
            for _ in range(2):
                await deliver(client, task_queue, removed)
            status = await status_when(handle, lambda s: s.phase == "awaiting_reauth")
            assert status.awaiting_reauth == {"main": "tiktok"}
            assert "re-authorization of tiktok account 'main'" in (status.waiting_for or "")
            await eventually(
                lambda: asyncio.sleep(0, len(actions.of("notify.send"))), within=20, what="the notice"
            )
            await handle.signal(RecipeWorkflow.reauthorized, "main")
            result = await handle.result()
    assert result.outcome == "completed"
    assert len(actions.of("tiktok.creator_info")) == 2
    notices = actions.of("notify.send")
    assert len(notices) == 1
    assert notices[0].params["data"] == {"event": "awaiting_reauth", "account": "main", "provider": "tiktok"}
    assert result.counters.reauths == 1
