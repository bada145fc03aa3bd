"""The listener and mailbox workflows on the time-skipping test server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.ingress.waiters import EventWaiter, RouteRun
from workflows.events import (
    DELIVER_SIGNAL,
    MAX_SEEN,
    Event,
    EventMailboxWorkflow,
    MailboxSpec,
    RouteListenerWorkflow,
    RouteSpec,
    RouteTarget,
    event_workflows,
    mailbox_id,
    route_child_id,
    route_workflow_id,
)


def _event(event_id: str, key: str = "p1", body: object = None) -> Event:
    return Event(
        id=event_id, source="tiktok", type="post.publish.complete", key=key, received_at="t", body=body
    )


def _worker(env: WorkflowEnvironment, task_queue: str) -> Worker:
    return Worker(env.client, task_queue=task_queue, workflows=[*event_workflows(), EventWaiter, RouteRun])


async def _deliver_to_mailbox(client: Client, task_queue: str, event: Event, spec: MailboxSpec | None = None):
    spec = spec or MailboxSpec(provider="tiktok", key=event.key)
    return await client.start_workflow(
        EventMailboxWorkflow.run,
        args=[spec, None],
        id=mailbox_id("tiktok", event.key),
        task_queue=task_queue,
        start_signal=DELIVER_SIGNAL,
        start_signal_args=[event],
    )


async def test_listener_without_target_keeps_each_event_once(time_env: WorkflowEnvironment, task_queue: str):
    async with _worker(time_env, task_queue):
        spec = RouteSpec(name="crm", auth="token", credential="crm")
        handle = await time_env.client.start_workflow(
            RouteListenerWorkflow.run, args=[spec, None], id=route_workflow_id("crm"), task_queue=task_queue
        )
        for event_id in ("a", "b", "a", "a"):
            await handle.signal(DELIVER_SIGNAL, _event(event_id))
        assert [e.id for e in await handle.query(RouteListenerWorkflow.events)] == ["a", "b"]
        assert await handle.query(RouteListenerWorkflow.counts) == {"accepted": 2, "duplicates": 2}
        await handle.signal(RouteListenerWorkflow.close)
        state = await handle.result()
        assert state.seen == ["a", "b"]


async def test_listener_starts_one_run_per_new_event(time_env: WorkflowEnvironment, task_queue: str):
    async with _worker(time_env, task_queue):
        target = RouteTarget(workflow="TestRouteRun", task_queue=task_queue, args=["form"])
        spec = RouteSpec(name="form", auth="standard", credential="form", target=target)
        handle = await time_env.client.start_workflow(
            RouteListenerWorkflow.run, args=[spec, None], id=route_workflow_id("form"), task_queue=task_queue
        )
        for event_id in ("e1", "e1", "e2"):
            await handle.signal(DELIVER_SIGNAL, _event(event_id, body={"n": event_id}))
        await handle.signal(RouteListenerWorkflow.close)
        state = await handle.result()
        assert (state.accepted, state.duplicates) == (2, 1)
        for event_id in ("e1", "e2"):
            run = time_env.client.get_workflow_handle(route_child_id("form", event_id))
            assert await run.result() == {"label": "form", "event_id": event_id, "body": {"n": event_id}}


async def test_listener_child_id_stops_a_forgotten_duplicate(time_env: WorkflowEnvironment, task_queue: str):
    """A re-registered route has forgotten its ids, but the run id derived from the event id holds."""
    async with _worker(time_env, task_queue):
        target = RouteTarget(workflow="TestRouteRun", task_queue=task_queue, args=["x"])
        spec = RouteSpec(name="old", auth="token", credential="old", target=target)
        for expected in ((1, 0), (0, 1)):
            handle = await time_env.client.start_workflow(
                RouteListenerWorkflow.run,
                args=[spec, None],
                id=route_workflow_id("old"),
                task_queue=task_queue,
            )
            await handle.signal(DELIVER_SIGNAL, _event("again"))
            await handle.signal(RouteListenerWorkflow.close)
            state = await handle.result()
            assert (state.accepted, state.duplicates) == expected
            # The first run has ended before the second listener sees the event again.
            await time_env.client.get_workflow_handle(route_child_id("old", "again")).result()


async def test_event_before_the_wait_is_not_lost(time_env: WorkflowEnvironment, task_queue: str):
    async with _worker(time_env, task_queue):
        await _deliver_to_mailbox(time_env.client, task_queue, _event("ev1", key="pub-1"))
        await _deliver_to_mailbox(time_env.client, task_queue, _event("ev1", key="pub-1"))
        waiter = await time_env.client.start_workflow(
            EventWaiter.run, args=["tiktok", "pub-1", 1], id="waiter-early", task_queue=task_queue
        )
        events = await waiter.result()
        assert [e.id for e in events] == ["ev1"]
        mailbox = time_env.client.get_workflow_handle(mailbox_id("tiktok", "pub-1"))
        assert await mailbox.query(EventMailboxWorkflow.counts) == {
            "accepted": 1,
            "duplicates": 1,
            "subscribers": 1,
        }


async def test_waiter_first_then_events_once_each(time_env: WorkflowEnvironment, task_queue: str):
    async with _worker(time_env, task_queue):
        waiter = await time_env.client.start_workflow(
            EventWaiter.run, args=["tiktok", "pub-2", 2], id="waiter-first", task_queue=task_queue
        )
        mailbox = time_env.client.get_workflow_handle(mailbox_id("tiktok", "pub-2"))

        async def subscribed() -> None:
            while True:
                try:
                    if (await mailbox.query(EventMailboxWorkflow.counts))["subscribers"]:
                        return
                except Exception:
                    pass
                await asyncio.sleep(0.05)

        await asyncio.wait_for(subscribed(), 30)
        for event_id in ("x1", "x1", "x1", "x2"):
            await _deliver_to_mailbox(time_env.client, task_queue, _event(event_id, key="pub-2"))
        events = await waiter.result()
        assert [e.id for e in events] == ["x1", "x2"]
        counts = await mailbox.query(EventMailboxWorkflow.counts)
        assert (counts["accepted"], counts["duplicates"]) == (2, 2)


async def test_mailbox_ends_when_idle_and_drops_gone_subscribers(
    time_env: WorkflowEnvironment, task_queue: str
):
    async with _worker(time_env, task_queue):
        spec = MailboxSpec(provider="tiktok", key="pub-3", idle_seconds=3600)
        handle = await _deliver_to_mailbox(time_env.client, task_queue, _event("i1", key="pub-3"), spec)
        from workflows.events import SUBSCRIBE_SIGNAL, Subscription

        await handle.signal(SUBSCRIBE_SIGNAL, Subscription(workflow_id="nobody-runs-this"))
        await time_env.sleep(timedelta(hours=2))
        state = await asyncio.wait_for(handle.result(), 30)
        assert state.subscribers == []
        assert [e.event.id for e in state.entries] == ["i1"]
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


@pytest.mark.parametrize("size", [MAX_SEEN + 5])
def test_seen_is_bounded(size: int):
    from workflows.events import _Seen

    seen = _Seen([])
    for n in range(size):
        assert seen.add(str(n))
    assert len(seen.dump()) == MAX_SEEN
    assert seen.dump()[0] == "5"
    assert not seen.add(str(size - 1))
