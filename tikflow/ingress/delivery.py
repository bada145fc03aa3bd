"""Handing an accepted event to Temporal, and finding out which generic routes exist.

The ingress answers 2xx only after one of these calls returned: a signal to a route's listener
(`tikflow-route-<name>`) or a signal-with-start of a correlation key's mailbox
(`tikflow-events-<provider>-<digest>`); see `workflows.events`. A Temporal that cannot be reached
within `rpc_timeout` is `TemporalUnavailable` (the ingress answers 503, the sender retries). The
client connects lazily, so the ingress starts, answers 503 and recovers while Temporal is down.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from workflows.events import (
    DELIVER_SIGNAL,
    MEMO_AUTH,
    MEMO_CREDENTIAL,
    Event,
    EventMailboxWorkflow,
    MailboxSpec,
    RouteListenerWorkflow,
    RouteSpec,
    mailbox_id,
    route_workflow_id,
)

__all__ = ["Delivery", "RouteInfo", "TemporalUnavailable", "register_route"]

_UNREACHABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.UNKNOWN,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.INTERNAL,
}


class TemporalUnavailable(Exception):
    """Temporal did not take the event (unreachable, overloaded or too slow): answer 503."""


class RouteGone(Exception):
    """The route's listener ended between lookup and delivery."""


@dataclass(frozen=True)
class RouteInfo:
    """How a generic route's senders authenticate, read from its listener's memo."""

    name: str
    auth: str
    credential: str


async def register_route(client: Client, spec: RouteSpec, *, task_queue: str) -> None:
    """Start the listener of a generic route, with the memo the ingress reads (idempotent)."""
    from temporalio.common import WorkflowIDConflictPolicy

    await client.start_workflow(
        RouteListenerWorkflow.run,
        args=[spec, None],
        id=route_workflow_id(spec.name),
        task_queue=task_queue,
        memo={MEMO_AUTH: spec.auth, MEMO_CREDENTIAL: spec.credential},
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


class Delivery:
    """The ingress's Temporal side: route lookups (cached briefly) and event delivery.

    Args:
        connect: Makes the (lazy) client on first use.
        task_queue: Where started mailboxes run (the worker's base task queue).
        rpc_timeout: Longest wait for one Temporal call before answering 503.
        route_ttl: How long a route lookup (found or not) is trusted.
        remember: How many delivered (target, event id) pairs this replica remembers, so a
            redelivery it has already handed over is answered without another call.
    """

    def __init__(
        self,
        connect: Any,
        *,
        task_queue: str,
        rpc_timeout: float = 5.0,
        route_ttl: float = 5.0,
        remember: int = 10_000,
    ) -> None:
        self._connect = connect
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self.task_queue = task_queue
        self._timeout = timedelta(seconds=rpc_timeout)
        self._route_ttl = route_ttl
        self._routes: dict[str, tuple[float, RouteInfo | None]] = {}
        self._delivered: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._remember = remember

    async def client(self) -> Client:
        """The Temporal client (connected lazily, once)."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    try:
                        self._client = await self._connect()
                    except (RPCError, RuntimeError, OSError) as exc:
                        raise TemporalUnavailable(type(exc).__name__) from None
        return self._client

    async def route(self, name: str) -> RouteInfo | None:
        """The route `name`, or None when no listener of that name is running."""
        now = time.monotonic()
        cached = self._routes.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        handle = (await self.client()).get_workflow_handle(route_workflow_id(name))
        info: RouteInfo | None = None
        try:
            desc = await self._call(handle.describe(rpc_timeout=self._timeout))
        except RouteGone:
            desc = None
        if desc is not None and desc.status == WorkflowExecutionStatus.RUNNING:
            auth = await desc.memo_value(MEMO_AUTH, default=None)
            credential = await desc.memo_value(MEMO_CREDENTIAL, default=None)
            if isinstance(auth, str) and isinstance(credential, str):
                info = RouteInfo(name=name, auth=auth, credential=credential)
        self._routes[name] = (now + self._route_ttl, info)
        return info

    def seen(self, target: str, event_id: str) -> bool:
        """True when this replica already handed this event to `target` (a redelivery)."""
        return (target, event_id) in self._delivered

    def _remember_delivered(self, target: str, event_id: str) -> None:
        self._delivered[(target, event_id)] = None
        while len(self._delivered) > self._remember:
            self._delivered.popitem(last=False)

    async def to_route(self, name: str, event: Event) -> None:
        """Signal the event to the route's listener; durable once this returns.

        Raises:
            RouteGone: The listener ended (the route was retired).
            TemporalUnavailable: Temporal did not take it.
        """
        target = route_workflow_id(name)
        handle = (await self.client()).get_workflow_handle(target)
        try:
            await self._call(handle.signal(DELIVER_SIGNAL, event, rpc_timeout=self._timeout))
        except RouteGone:
            self._routes.pop(name, None)
            raise
        self._remember_delivered(target, event.id)

    async def to_mailbox(self, provider: str, key: str, event: Event) -> None:
        """Signal-with-start the correlation key's mailbox; durable once this returns.

        Raises:
            TemporalUnavailable: Temporal did not take it.
        """
        target = mailbox_id(provider, key)
        client = await self.client()
        await self._call(
            client.start_workflow(
                EventMailboxWorkflow.run,
                args=[MailboxSpec(provider=provider, key=key), None],
                id=target,
                task_queue=self.task_queue,
                start_signal=DELIVER_SIGNAL,
                start_signal_args=[event],
                rpc_timeout=self._timeout,
            )
        )
        self._remember_delivered(target, event.id)

    async def _call(self, call: Any) -> Any:
        try:
            return await asyncio.wait_for(call, self._timeout.total_seconds() + 1)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise RouteGone from None
            if exc.status in _UNREACHABLE:
                raise TemporalUnavailable(exc.status.name) from None
            raise
        except (TimeoutError, RuntimeError, OSError) as exc:
            raise TemporalUnavailable(type(exc).__name__) from None
