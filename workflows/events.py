"""Events in: the durable inboxes between the ingress and the runs.

The ingress keeps nothing: every accepted event is handed to one of two workflows, so no database
beside Temporal is needed and an accepted event survives restarts of every process.

- `RouteListenerWorkflow`, id `tikflow-route-<name>`: one per generic webhook route
  (`POST /hooks/<name>`). Its memo tells the ingress how senders authenticate (`tikflow_auth`:
  `standard` or `token`; `tikflow_credential`: a credential *name*, never a secret). Each new event
  starts one child workflow (the route's `target`) with an id derived from the event id and parent
  close policy ABANDON; a route without a target keeps its last events (query `events`).
- `EventMailboxWorkflow`, id `tikflow-events-<provider>-<digest of the correlation key>` (TikTok: the
  `publish_id`): the ingress signal-with-starts it, so an event that comes before any run waits for
  it is kept, not lost. A run that waits calls `subscribe_mailbox` from its workflow code and then
  receives every kept event and every later one as the signal `tikflow_event`.

Both de-duplicate by event id over their last `MAX_SEEN` ids (the ingress derives the event id from
the sender's delivery id), carry their state across continue-as-new, and only ever record the event
body and its non-secret headers. The mailbox ends after `idle_seconds` without events or
subscriptions (longer than TikTok's 72 hours of retries).

Signals: `tikflow_deliver(Event)` (ingress → listener / mailbox), `tikflow_subscribe(Subscription)`
(run → mailbox), `tikflow_event(Event)` (mailbox → run), `tikflow_close()` (retire a route).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows.expressions import ExpressionError, evaluate, truthy

__all__ = [
    "DELIVER_SIGNAL",
    "EVENT_SIGNAL",
    "MAX_SEEN",
    "SUBSCRIBE_SIGNAL",
    "Event",
    "EventMailboxWorkflow",
    "MailboxSpec",
    "MailboxState",
    "RouteListenerWorkflow",
    "RouteSpec",
    "RouteState",
    "RouteTarget",
    "Subscription",
    "digest",
    "event_workflows",
    "mailbox_id",
    "route_child_id",
    "route_workflow_id",
    "subscribe_mailbox",
]

#: Signal that hands an event to a listener or mailbox (sent by the ingress).
DELIVER_SIGNAL = "tikflow_deliver"
#: Signal a mailbox sends to each subscribed run, one per event.
EVENT_SIGNAL = "tikflow_event"
#: Signal a waiting run sends to a mailbox that is already running.
SUBSCRIBE_SIGNAL = "tikflow_subscribe"
#: How many event ids a listener or mailbox remembers for de-duplication.
MAX_SEEN = 2000
#: How many runs a mailbox keeps subscribed (the most recent; a long-running run re-subscribes
#: after each continue-as-new), so an account's mailbox stays small however many runs used it.
MAX_SUBSCRIBERS = 1000
#: Memo keys the ingress reads from a route listener.
MEMO_AUTH = "tikflow_auth"
MEMO_CREDENTIAL = "tikflow_credential"


def digest(text: str, size: int = 32) -> str:
    """A short, id-safe digest of `text` (hex SHA-256): workflow ids never carry raw sender data."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:size]


def route_workflow_id(route: str) -> str:
    """The listener workflow id of a generic route."""
    return f"tikflow-route-{route}"


def route_child_id(route: str, event_id: str) -> str:
    """The id of the run one event of `route` starts: a redelivery maps to the same id."""
    return f"tikflow-route-{route}-{digest(event_id)}"


def mailbox_id(provider: str, key: str) -> str:
    """The mailbox workflow id for a provider's correlation key (TikTok: a `publish_id`)."""
    return f"tikflow-events-{provider}-{digest(key)}"


class Event(BaseModel):
    """One accepted delivery, as it is kept in history: no signature, token or secret header."""

    id: str = Field(description="The de-duplication id (the sender's delivery or event id).")
    source: str = Field(description="`tiktok` or the name of the generic route it came in on.")
    type: str = Field(default="", description="The provider's event name (`post.publish.complete`).")
    key: str = Field(default="", description="The correlation key (TikTok: the publish_id).")
    received_at: str = Field(description="When the ingress accepted it (ISO 8601, UTC).")
    headers: dict[str, str] = Field(default_factory=dict, description="Non-secret request headers.")
    body: Any = Field(default=None, description="The JSON body (TikTok's `content` decoded).")


class RouteTarget(BaseModel):
    """What each new event of a route starts: a workflow type given `[*args, event]`.

    `filter` and `event_id` are expressions over `event` (the `Event` as JSON), evaluated by the
    listener before it starts anything: an event the filter refuses starts nothing (counted as
    `filtered`), and the run's id derives from `event_id`'s value (default: the delivery id), so
    two deliveries with the same value start one run.
    """

    workflow: str = Field(description="Workflow type name.")
    task_queue: str = Field(description="Task queue of the started run.")
    args: list[Any] = Field(default_factory=list, description="Arguments before the event.")
    filter: str | None = Field(default=None, description="Start a run only when this is true.")
    event_id: str | None = Field(default=None, description="The id that de-duplicates runs.")
    memo: dict[str, Any] = Field(default_factory=dict, description="Memo of each started run.")
    search_attributes: dict[str, str] = Field(
        default_factory=dict, description="Keyword search attributes of each started run (name → value)."
    )
    event_field: str | None = Field(
        default=None,
        description="Put the event into this field of the last argument (a mapping) instead of "
        "passing it as one more argument (`RecipeWorkflow` takes one argument, `RecipeRun.event`).",
    )


class RouteSpec(BaseModel):
    """A generic webhook route, as its listener is started."""

    name: str = Field(description="Route name: the ingress serves it at `POST /hooks/<name>`.")
    auth: Literal["standard", "token", "tiktok"] = Field(description="How the sender authenticates.")
    credential: str = Field(description="Name of the credential that holds the secret or token.")
    target: RouteTarget | None = Field(default=None, description="What each new event starts.")
    keep: int = Field(default=100, ge=0, description="Events kept for `events` when there is no target.")


class RouteState(BaseModel):
    """What a listener carries across continue-as-new."""

    seen: list[str] = Field(default_factory=list)
    pending: list[Event] = Field(default_factory=list)
    kept: list[Event] = Field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    filtered: int = 0


class Subscription(BaseModel):
    """A run that wants a mailbox's events."""

    workflow_id: str = Field(description="The waiting run's workflow id.")
    signal: str = Field(default=EVENT_SIGNAL, description="The signal each event is sent with.")
    after: int = Field(default=0, description="Sequence number of the last event it was sent.")


class MailboxSpec(BaseModel):
    """A mailbox for one provider correlation key."""

    provider: str
    key: str
    idle_seconds: float = Field(default=4 * 24 * 3600.0, gt=0, description="End after this long idle.")
    keep: int = Field(default=100, ge=1, description="Events kept for late subscribers.")


class MailboxEntry(BaseModel):
    """A kept event and its sequence number within the mailbox."""

    seq: int
    event: Event


class MailboxState(BaseModel):
    """What a mailbox carries across continue-as-new (and what a first subscriber starts it with)."""

    seen: list[str] = Field(default_factory=list)
    entries: list[MailboxEntry] = Field(default_factory=list)
    subscribers: list[Subscription] = Field(default_factory=list)
    next_seq: int = 1
    accepted: int = 0
    duplicates: int = 0


class _Seen:
    """A bounded, ordered set of event ids (oldest forgotten first)."""

    def __init__(self, ids: list[str]) -> None:
        self._ids: dict[str, None] = dict.fromkeys(ids[-MAX_SEEN:])

    def add(self, event_id: str) -> bool:
        """Remember `event_id`; False when it was already there (a duplicate)."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        while len(self._ids) > MAX_SEEN:
            del self._ids[next(iter(self._ids))]
        return True

    def dump(self) -> list[str]:
        return list(self._ids)


def _continue_as_new_due() -> bool:
    return workflow.info().is_continue_as_new_suggested()


@workflow.defn(name="TikflowRouteListener")
class RouteListenerWorkflow:
    """The durable end of a generic webhook route (see the module docstring)."""

    @workflow.init
    def __init__(self, spec: RouteSpec, state: RouteState | None = None) -> None:
        # Initialized from the arguments before any signal handler runs, so the first signal (a
        # signal-with-start's, or one buffered across continue-as-new) sees the carried state.
        self._state = state or RouteState()
        self._seen = _Seen(self._state.seen)
        self._closing = False

    @workflow.run
    async def run(self, spec: RouteSpec, state: RouteState | None = None) -> RouteState:
        """Start a run per new event until closed; continue-as-new when history grows."""
        while True:
            await workflow.wait_condition(
                lambda: bool(self._state.pending) or self._closing or _continue_as_new_due()
            )
            while self._state.pending:
                event = self._state.pending.pop(0)
                await self._dispatch(spec, event)
            if self._closing:
                return self._dump()
            if _continue_as_new_due():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._state.pending:
                    workflow.continue_as_new(args=[spec, self._dump()])

    async def _dispatch(self, spec: RouteSpec, event: Event) -> None:
        if spec.target is None:
            self._state.kept = [*self._state.kept, event][-spec.keep :] if spec.keep else []
            self._state.accepted += 1
            return
        target = spec.target
        run_key = event.id
        if target.filter is not None or target.event_id is not None:
            context = {"event": event.model_dump(mode="json")}
            try:
                if target.filter is not None and not truthy(target.filter, context):
                    self._state.filtered += 1
                    return
                if target.event_id is not None:
                    run_key = str(evaluate(target.event_id, context) or "") or event.id
            except ExpressionError as exc:
                # The sender's event, not the route, is at fault: it starts nothing, the route goes on.
                workflow.logger.warning(
                    "route expression failed", extra={"route": spec.name, "error": str(exc)}
                )
                self._state.filtered += 1
                return
        args: list[Any] = [*target.args, event]
        if target.event_field is not None and target.args and isinstance(target.args[-1], dict):
            args = [*target.args[:-1], {**target.args[-1], target.event_field: event}]
        try:
            await workflow.start_child_workflow(
                target.workflow,
                args=args,
                id=route_child_id(spec.name, run_key),
                task_queue=target.task_queue,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                # Also after that run ended (for the namespace's retention), not only while it runs.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo=target.memo or None,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SearchAttributeKey.for_keyword(name), value)
                        for name, value in target.search_attributes.items()
                    ]
                )
                if target.search_attributes
                else None,
            )
            self._state.accepted += 1
        except WorkflowAlreadyStartedError:
            # Its id is derived from the event id: an event forgotten by `seen` still starts nothing.
            self._state.duplicates += 1

    def _dump(self) -> RouteState:
        return self._state.model_copy(update={"seen": self._seen.dump()})

    @workflow.signal(name=DELIVER_SIGNAL)
    def deliver(self, event: Event) -> None:
        """Take one event from the ingress (a redelivery is counted and dropped)."""
        if self._seen.add(event.id):
            self._state.pending.append(event)
        else:
            self._state.duplicates += 1

    @workflow.signal(name="tikflow_close")
    def close(self) -> None:
        """Retire the route: events already taken are still dispatched, then the listener ends."""
        self._closing = True

    @workflow.signal(name="stop")
    def stop(self) -> None:
        """`tikflow stop tikflow-route-<name>`: the same as `tikflow_close`."""
        self._closing = True

    @workflow.query(name="events")
    def events(self) -> list[Event]:
        """The events kept by a route without a target (newest last)."""
        return list(self._state.kept)

    @workflow.query(name="counts")
    def counts(self) -> dict[str, int]:
        """Events accepted and duplicates dropped (since the route was registered)."""
        return {"accepted": self._state.accepted, "duplicates": self._state.duplicates}


@workflow.defn(name="TikflowEventMailbox")
class EventMailboxWorkflow:
    """Keeps one correlation key's provider events until the runs that wait for them collect them."""

    @workflow.init
    def __init__(self, spec: MailboxSpec, state: MailboxState | None = None) -> None:
        self._state = state or MailboxState()
        self._seen = _Seen(self._state.seen)
        self._keep = spec.keep
        self._touched = False

    @workflow.run
    async def run(self, spec: MailboxSpec, state: MailboxState | None = None) -> MailboxState:
        """Forward events to subscribers; end after `idle_seconds` with nothing new."""
        idle = timedelta(seconds=spec.idle_seconds)
        while True:
            self._touched = False
            try:
                await workflow.wait_condition(
                    lambda: self._touched or self._undelivered() or _continue_as_new_due(), timeout=idle
                )
            except TimeoutError:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._touched and not self._undelivered():
                    return self._dump()
            await self._forward()
            if _continue_as_new_due():
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._forward()
                workflow.continue_as_new(args=[spec, self._dump()])

    def _undelivered(self) -> bool:
        last = self._state.entries[-1].seq if self._state.entries else 0
        return any(sub.after < last for sub in self._state.subscribers)

    async def _forward(self) -> None:
        for sub in list(self._state.subscribers):
            for entry in [e for e in self._state.entries if e.seq > sub.after]:
                try:
                    await workflow.get_external_workflow_handle(sub.workflow_id).signal(
                        sub.signal, entry.event
                    )
                except FailureError:
                    # The run is gone (ended or never existed): nobody to deliver to any more.
                    workflow.logger.info("mailbox subscriber gone", extra={"subscriber": sub.workflow_id})
                    self._state.subscribers = [
                        s for s in self._state.subscribers if s.workflow_id != sub.workflow_id
                    ]
                    break
                sub.after = entry.seq

    def _dump(self) -> MailboxState:
        return self._state.model_copy(update={"seen": self._seen.dump()})

    @workflow.signal(name=DELIVER_SIGNAL)
    def deliver(self, event: Event) -> None:
        """Take one event from the ingress (a redelivery is counted and dropped)."""
        self._touched = True
        if not self._seen.add(event.id):
            self._state.duplicates += 1
            return
        entry = MailboxEntry(seq=self._state.next_seq, event=event)
        self._state.next_seq += 1
        self._state.accepted += 1
        self._state.entries = [*self._state.entries, entry][-self._keep :]

    @workflow.signal(name=SUBSCRIBE_SIGNAL)
    def subscribe(self, subscription: Subscription) -> None:
        """Add (or replace) a waiting run; it is sent every kept event it has not had yet."""
        self._touched = True
        others = [s for s in self._state.subscribers if s.workflow_id != subscription.workflow_id]
        self._state.subscribers = [*others, subscription][-MAX_SUBSCRIBERS:]

    @workflow.query(name="events")
    def events(self) -> list[Event]:
        """The kept events, oldest first."""
        return [entry.event for entry in self._state.entries]

    @workflow.query(name="counts")
    def counts(self) -> dict[str, int]:
        """Events accepted, duplicates dropped and runs subscribed."""
        return {
            "accepted": self._state.accepted,
            "duplicates": self._state.duplicates,
            "subscribers": len(self._state.subscribers),
        }


async def subscribe_mailbox(
    provider: str, key: str, *, signal: str = EVENT_SIGNAL, task_queue: str | None = None
) -> None:
    """From a run's workflow code: receive `provider`'s events for `key` as `signal`.

    Starts the mailbox (an abandoned child, so it outlives this run) with this run subscribed, or,
    when an event already started it, subscribes by signal; kept events are sent at once either way.
    The run must have a handler for `signal` taking one `Event`.
    """
    me = Subscription(workflow_id=workflow.info().workflow_id, signal=signal)
    target = mailbox_id(provider, key)
    try:
        await workflow.start_child_workflow(
            EventMailboxWorkflow.run,
            args=[MailboxSpec(provider=provider, key=key), MailboxState(subscribers=[me])],
            id=target,
            task_queue=task_queue or workflow.info().task_queue,
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )
    except WorkflowAlreadyStartedError:
        await workflow.get_external_workflow_handle(target).signal(SUBSCRIBE_SIGNAL, me)


def event_workflows() -> list[type]:
    """The workflow classes the worker registers for events in."""
    return [RouteListenerWorkflow, EventMailboxWorkflow]
