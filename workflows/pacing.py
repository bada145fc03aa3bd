"""Pacing per (provider, account), across every recipe and worker: one pacer workflow per account.

TikTok reads a burst of replies, comments, likes or messages from one account as spam, and an
agency runs several recipes as one account. A call with `pace:` therefore takes a slot from the
account's `AccountPacerWorkflow` (id `tikflow-pace-<provider>-<digest of the account>`) before it
runs, and the run waits for its slot with a durable timer (phase `pacing`).

Why a workflow holds the slots, not a reservation activity against a shared store:
- Temporal is the only store every worker on every machine shares (no database beside Temporal):
  the effect ledger's flock'd file is shared by one machine's processes only, and the in-process
  `activities.ratelimit.RateLimiter` by one worker's activities only.
- The slots are in Temporal's clock, the clock of the run's own timers: a slot is never early by
  a worker's clock skew, and the time-skipping test server crosses hours of pacing in milliseconds.
- Its state (the last slot and the day's slots) is workflow state: it survives every process
  restart, and a stopped or restarted worker finds the account's bookings where they were.
- A workflow cannot send an update, so the exchange is two signals: the run starts the pacer as an
  abandoned child with its request (as `subscribe_mailbox` starts a mailbox) or, when it runs,
  signals `tikflow_pace_reserve`; the pacer books the slot in the signal handler (one at a time, in
  the order the server delivered them) and signals `tikflow_pace_slot` back to the run.

A slot is booked, never handed back: a run stopped while it waits leaves a gap, which only paces the
account more gently. The pacer ends once a day has passed since its last slot (nothing it holds
matters then) and continues-as-new with its bookings when Temporal suggests it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows.events import digest

__all__ = [
    "PACE_RESERVE_SIGNAL",
    "PACE_SLOT_SIGNAL",
    "AccountPacerWorkflow",
    "PaceRequest",
    "PaceSlot",
    "PacerState",
    "pacer_id",
    "request_slot",
]

#: Signal a run sends to an account's pacer for a slot.
PACE_RESERVE_SIGNAL = "tikflow_pace_reserve"
#: Signal the pacer sends back to the run with its slot.
PACE_SLOT_SIGNAL = "tikflow_pace_slot"
_DAY = timedelta(days=1)


def pacer_id(provider: str, account: str) -> str:
    """The workflow id of the pacer of (provider, account): the account name is digested (any text)."""
    return f"tikflow-pace-{provider}-{digest(account, 16)}"


class PaceRequest(BaseModel):
    """One call's request for a slot (the call's own `pace:`; calls of one account may differ)."""

    workflow_id: str = Field(description="The run to signal the slot to.")
    request_id: str = Field(description="Names the request in the reply (unique within the run).")
    every_s: float | None = Field(default=None, description="Seconds since the account's last slot.")
    per_day: int | None = Field(default=None, description="Slots of the account in any 24 hours.")


class PaceSlot(BaseModel):
    """The pacer's answer: the call may go out at `at`."""

    request_id: str = Field(description="The request answered.")
    at: datetime = Field(description="When the call may go out (Temporal's clock).")


class PacerState(BaseModel):
    """What a pacer carries across continue-as-new."""

    last_at: datetime | None = Field(default=None, description="The latest slot handed out.")
    booked: list[datetime] = Field(
        default_factory=list, description="Slots of the last 24 hours, oldest first (for `per_day`)."
    )
    pending: list[PaceSlot] = Field(default_factory=list, description="Slots booked, not yet sent.")
    owners: list[str] = Field(default_factory=list, description="The run of each pending slot.")
    granted: int = Field(default=0, description="Slots handed out in all.")


@workflow.defn(name="AccountPacerWorkflow")
class AccountPacerWorkflow:
    """Hands out one (provider, account)'s slots to every run that paces its calls."""

    @workflow.init
    def __init__(self, first: PaceRequest | None = None, state: PacerState | None = None) -> None:
        self._state = state or PacerState()
        if first is not None:
            self.reserve(first)

    @workflow.run
    async def run(self, first: PaceRequest | None = None, state: PacerState | None = None) -> PacerState:
        """Send booked slots to their runs; end a day after the last slot."""
        while True:
            last = self._state.last_at
            idle = (last + _DAY - workflow.now()) if last else timedelta(0)
            try:
                await workflow.wait_condition(
                    lambda: bool(self._state.pending) or workflow.info().is_continue_as_new_suggested(),
                    timeout=max(idle, timedelta(seconds=1)),
                )
            except TimeoutError:
                if not self._state.pending and (
                    self._state.last_at is None or self._state.last_at + _DAY <= workflow.now()
                ):
                    return self._state
            await self._send()
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._send()
                workflow.continue_as_new(args=[None, self._state])

    async def _send(self) -> None:
        while self._state.pending:
            slot, owner = self._state.pending[0], self._state.owners[0]
            try:
                await workflow.get_external_workflow_handle(owner).signal(PACE_SLOT_SIGNAL, slot)
            except FailureError:
                # The run is gone: its slot stays booked (the account is paced as if it had called).
                workflow.logger.info("pacer: run gone", extra={"run": owner})
            self._state.pending = self._state.pending[1:]
            self._state.owners = self._state.owners[1:]

    @workflow.signal(name=PACE_RESERVE_SIGNAL)
    def reserve(self, request: PaceRequest) -> None:
        """Book the next slot that keeps `request`'s spacing and daily budget (sent by `_send`)."""
        now = workflow.now()
        state = self._state
        at = now
        if state.last_at is not None:
            # Never before the last slot: the account's paced calls go out in the order booked.
            at = max(at, state.last_at + timedelta(seconds=request.every_s or 0))
        day = [b for b in state.booked if b > now - _DAY]
        if request.per_day is not None and len(day) >= request.per_day:
            at = max(at, day[-request.per_day] + _DAY)
        state.booked = [*day, at][-_MAX_BOOKED:]
        state.last_at = at
        state.granted += 1
        state.pending = [*state.pending, PaceSlot(request_id=request.request_id, at=at)]
        state.owners = [*state.owners, request.workflow_id]

    @workflow.query(name="pacing")
    def pacing(self) -> PacerState:
        """The bookings: the latest slot, the last day's slots, slots handed out."""
        return self._state


#: As `workflows.models.MAX_PACE_PER_DAY`: no `per_day` looks further back than that many slots.
_MAX_BOOKED = 10_000


async def request_slot(provider: str, account: str, request: PaceRequest) -> bool:
    """From a run's workflow code: ask the account's pacer for a slot (the answer is a signal).

    Starts the pacer (an abandoned child, so it outlives this run, on this run's task queue) with
    the request, or signals it when it runs already. A pacer that ended between the two is started
    again. False: it could be neither started nor signalled, three times over.
    """
    target = pacer_id(provider, account)
    for _ in range(3):
        try:
            await workflow.start_child_workflow(
                AccountPacerWorkflow.run,
                args=[request, None],
                id=target,
                task_queue=workflow.info().task_queue,
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
