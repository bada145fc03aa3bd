"""Workflows the ingress tests use as the other end: a run that waits for events, a run a route starts."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.events import EVENT_SIGNAL, Event, subscribe_mailbox


@workflow.defn(name="TestEventWaiter")
class EventWaiter:
    """Subscribes to a mailbox and returns the first `count` distinct events it is sent."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    @workflow.run
    async def run(self, provider: str, key: str, count: int) -> list[Event]:
        await subscribe_mailbox(provider, key)
        await workflow.wait_condition(lambda: len(self.events) >= count)
        return self.events

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: Event) -> None:
        if all(e.id != event.id for e in self.events):
            self.events.append(event)

    @workflow.query
    def received(self) -> list[str]:
        return [e.id for e in self.events]


@workflow.defn(name="TestRouteRun")
class RouteRun:
    """What a route's target stands for in tests: returns what it was started with."""

    @workflow.run
    async def run(self, label: str, event: Event) -> dict[str, object]:
        return {"label": label, "event_id": event.id, "body": event.body}
