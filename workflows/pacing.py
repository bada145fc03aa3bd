"""Pacing per (provider, account), across every recipe and worker: one pacer workflow per account.

TikTok reads a burst of replies, comments, likes or messages from one account as spam, and an
agency runs several recipes as one account. A call with `pace:` therefore takes the account's slot
from its `AccountPacerWorkflow` (id `tikflow-pace-<provider>-<account>`) before it runs, and
gives it back when it is done; the run waits for its slot in a durable timer (phase `pacing`).

The slot is a lease: one paced call of an account is out at a time, and the next one starts no
earlier than `every` after the previous one *ended* (the run's own clock when its call returned,
which is after the provider saw the request). Spacing from the end, not from the start, is what
makes the gap the provider sees at least `every`: two starts `every` apart would let a slower
first request land closer than that to the next one.
`per_day` is a rolling window: at most that many calls of the account in any 24 hours (not a
calendar day, which would allow twice the budget around midnight), each counted at its end.
Each call brings its own `every`/`per_day` (recipes of one account may differ).

Why a workflow holds the slots, not a reservation activity against a shared store:
- Temporal is the only store every worker on every machine shares (no database beside Temporal):
  the effect ledger's file is shared by one machine's processes only, and the in-process
  `activities.ratelimit.RateLimiter` by one worker's activities only.
- The slots are in Temporal's clock, the clock of the run's own timers: a slot is never early by
  a worker's clock skew, and the time-skipping test server crosses hours of pacing in milliseconds.
- Its state is workflow state: it survives every process restart.
- A workflow can neither signal-with-start nor send an update, so the exchange is signals: the run
  starts the pacer as an abandoned child with its request (as `subscribe_mailbox` starts a
  mailbox) or, when it runs already, signals `tikflow_pace_reserve`; the pacer signals
  `tikflow_pace_slot` back when the slot is the run's, and the run signals `tikflow_pace_release`
  when its call is done (or stopped, or cancelled before it went out: then the slot is unused and
  counts against nothing).
- A lease never given back (a run terminated, or reset, inside its paced call) is taken back
  `LEASE_TTL` after its slot, so one lost run cannot stall the account.

History: only the account's *name* is in it (the workflow id; `every`/`per_day` and run ids are
the rest), never a credential. Per paced call the pacer records about 15 events; it
continues-as-new with its bookings every `GRANTS_PER_RUN` slots (or when Temporal suggests it),
and ends once a day has passed since its last slot with nobody waiting (nothing it holds matters
then; the next paced call starts it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows.events import digest

__all__ = [
    "GRANTS_PER_RUN",
    "LEASE_TTL",
    "PACE_RELEASE_SIGNAL",
    "PACE_RESERVE_SIGNAL",
    "PACE_SLOT_SIGNAL",
    "AccountPacerWorkflow",
    "PaceRelease",
    "PaceRequest",
    "PaceSlot",
    "PacerState",
    "pacer_id",
    "release_slot",
    "request_slot",
]

#: Signal a run sends to an account's pacer for a slot.
PACE_RESERVE_SIGNAL = "tikflow_pace_reserve"
#: Signal the pacer sends back to the run when the slot is its.
PACE_SLOT_SIGNAL = "tikflow_pace_slot"
#: Signal a run sends to the pacer when its paced call is done (or will not go out).
PACE_RELEASE_SIGNAL = "tikflow_pace_release"
#: A slot not given back this long after it began is taken back (the run is gone mid-call).
LEASE_TTL = timedelta(minutes=30)
#: Slots one pacer run hands out before it continues-as-new: about 15 events each (measured by
#: tests/test_pacing.py), so a run stays under the 4,000 events where a server suggests it.
GRANTS_PER_RUN = 240
_DAY = timedelta(days=1)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def pacer_id(provider: str, account: str) -> str:
    """The workflow id of the pacer of (provider, account): the name as is when plain, else digested."""
    name = account if _PLAIN_NAME.fullmatch(account) else digest(account, 16)
    return f"tikflow-pace-{provider}-{name}"


class PaceRequest(BaseModel):
    """One call's request for a slot (the call's own `pace:`; calls of one account may differ)."""

    workflow_id: str = Field(description="The run to signal the slot to.")
    request_id: str = Field(description="Names the request in the reply and the release (unique).")
    every_s: float | None = Field(default=None, description="Seconds since the account's last call ended.")
    per_day: int | None = Field(default=None, description="Slots of the account in any 24 hours.")


class PaceSlot(BaseModel):
    """The pacer's answer: the call may go out at `at`."""

    request_id: str = Field(description="The request answered.")
    at: datetime = Field(description="When the call may go out (Temporal's clock).")


class PaceRelease(BaseModel):
    """A run gives its slot back."""

    request_id: str = Field(description="The request whose slot (or place in the queue) ends.")
    done_at: datetime | None = Field(
        default=None, description="When the call ended (the run's clock); None: it never went out."
    )


class PacerState(BaseModel):
    """What a pacer carries across continue-as-new."""

    queue: list[PaceRequest] = Field(default_factory=list, description="Requests waiting, first come first.")
    holder: PaceRequest | None = Field(default=None, description="The request whose call is out now.")
    holder_at: datetime | None = Field(default=None, description="The holder's slot.")
    last_done: datetime | None = Field(default=None, description="When the last paced call ended.")
    booked: list[datetime] = Field(
        default_factory=list, description="Slots used in the last 24 hours, oldest first (for `per_day`)."
    )
    granted: int = Field(default=0, description="Slots handed out in all.")
    grants_per_run: int | None = Field(
        default=None, description="Slots per run before continue-as-new (None: `GRANTS_PER_RUN`)."
    )


@workflow.defn(name="AccountPacerWorkflow")
class AccountPacerWorkflow:
    """Hands out one (provider, account)'s slots, one at a time, to every run that paces its calls."""

    @workflow.init
    def __init__(self, first: PaceRequest | None = None, state: PacerState | None = None) -> None:
        self._state = state or PacerState()
        self._outbox: list[PaceSlot] = []
        self._granted_here = 0
        if first is not None:
            self.reserve(first)

    @workflow.run
    async def run(self, first: PaceRequest | None = None, state: PacerState | None = None) -> PacerState:
        """Grant slots in order, send them, take back lost leases; end a day after the last slot."""
        s = self._state
        if s.holder is not None and s.holder_at is not None:
            # Carried across continue-as-new: the slot signal may not have reached the run yet.
            self._outbox.append(PaceSlot(request_id=s.holder.request_id, at=s.holder_at))
        while True:
            self._grant()
            await self._send()
            if (
                self._granted_here >= (s.grants_per_run or GRANTS_PER_RUN)
                or workflow.info().is_continue_as_new_suggested()
            ):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(args=[None, self._state])
            now = workflow.now()
            if s.holder is not None and s.holder_at is not None:
                timeout = s.holder_at + LEASE_TTL - now
            elif s.last_done is not None:
                timeout = s.last_done + _DAY - now
            else:
                timeout = timedelta(0)
            if timeout <= timedelta(0) and s.holder is None and not s.queue:
                return s
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: bool(self._outbox) or (s.holder is None and bool(s.queue)),
                    timeout=max(timeout, timedelta(seconds=1)),
                )
            if s.holder is not None and s.holder_at is not None and workflow.now() >= s.holder_at + LEASE_TTL:
                workflow.logger.warning("pacer: lease taken back", extra={"run": s.holder.workflow_id})
                self._released(workflow.now())

    def _grant(self) -> None:
        """Give the slot to the first waiting request, if it is free."""
        s = self._state
        if s.holder is not None or not s.queue:
            return
        request, s.queue = s.queue[0], s.queue[1:]
        now = workflow.now()
        at = now
        if s.last_done is not None and request.every_s:
            at = max(at, s.last_done + timedelta(seconds=request.every_s))
        day = [b for b in s.booked if b > now - _DAY]
        if request.per_day is not None and len(day) >= request.per_day:
            at = max(at, day[-request.per_day] + _DAY)
        s.booked = [*day, at][-_MAX_BOOKED:]
        s.holder, s.holder_at = request, at
        s.granted += 1
        self._granted_here += 1
        self._outbox.append(PaceSlot(request_id=request.request_id, at=at))

    def _released(self, done_at: datetime | None) -> None:
        s = self._state
        if done_at is None:
            # The call never went out: its slot counts against nothing.
            if s.holder_at in s.booked:
                s.booked.remove(s.holder_at)
        else:
            s.last_done = max(s.last_done or done_at, done_at)
            # The day's window counts from the call's end too (after the provider saw it), so a
            # call a day later is a day after this one as the provider saw them, not a few ms less.
            s.booked = [done_at if b == s.holder_at else b for b in s.booked]
        s.holder, s.holder_at = None, None

    async def _send(self) -> None:
        while self._outbox:
            slot, self._outbox = self._outbox[0], self._outbox[1:]
            holder = self._state.holder
            if holder is None or holder.request_id != slot.request_id:
                continue  # given back before it was sent
            try:
                await workflow.get_external_workflow_handle(holder.workflow_id).signal(PACE_SLOT_SIGNAL, slot)
            except FailureError:
                # The run is gone: the slot was never used.
                workflow.logger.info("pacer: run gone", extra={"run": holder.workflow_id})
                if self._state.holder is holder:
                    self._released(None)

    @workflow.signal(name=PACE_RESERVE_SIGNAL)
    def reserve(self, request: PaceRequest) -> None:
        """Queue `request` (a repeated one is ignored)."""
        s = self._state
        if (s.holder and s.holder.request_id == request.request_id) or any(
            q.request_id == request.request_id for q in s.queue
        ):
            return
        s.queue = [*s.queue, request]

    @workflow.signal(name=PACE_RELEASE_SIGNAL)
    def release(self, release: PaceRelease) -> None:
        """End a slot (its call is done) or a place in the queue (the run stopped waiting)."""
        s = self._state
        if s.holder is not None and s.holder.request_id == release.request_id:
            self._released(release.done_at)
        else:
            s.queue = [q for q in s.queue if q.request_id != release.request_id]

    @workflow.query(name="pacing")
    def pacing(self) -> PacerState:
        """The bookings: who holds the slot, who waits, the last day's slots, slots handed out."""
        return self._state


#: As `workflows.models.MAX_PACE_PER_DAY`: no `per_day` looks further back than that many slots.
_MAX_BOOKED = 10_000


async def request_slot(
    provider: str, account: str, request: PaceRequest, task_queue: str | None = None
) -> bool:
    """From a run's workflow code: queue `request` at the account's pacer (the answer is a signal).

    Starts the pacer (an abandoned child, so it outlives this run, on `task_queue`: the
    namespace's pacer queue, or this run's own queue for runs from before `PACER_QUEUE_PATCH`)
    with the request, or signals it when it runs already. A pacer that ended between the two is
    started again. False: it could be neither started nor signalled, three times over.
    """
    target = pacer_id(provider, account)
    for _ in range(3):
        try:
            await workflow.start_child_workflow(
                AccountPacerWorkflow.run,
                args=[request, None],
                id=target,
                task_queue=task_queue or workflow.info().task_queue,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
            return True
        except WorkflowAlreadyStartedError:
            pass
        try:
            await workflow.get_external_workflow_handle(target).signal(PACE_RESERVE_SIGNAL, request)
            return True
        except FailureError:
            continue  # it ended (a day idle) between the start and the signal: start it again
    return False


async def release_slot(provider: str, account: str, release: PaceRelease) -> None:
    """From a run's workflow code: give the slot (or the place in the queue) back; a gone pacer is fine."""
    with contextlib.suppress(FailureError):
        await workflow.get_external_workflow_handle(pacer_id(provider, account)).signal(
            PACE_RELEASE_SIGNAL, release
        )
