"""`pace:` per account across recipes: three monitors, one TikAPI account, the real sandbox.

The runs, the account's pacer and the reply activities run in the time-skipping server, the
replies go over HTTP to the sandbox (the real `tikapi.reply` activity of the production worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.contracts import ActionRequest
from activities.credentials import CredentialStore
from activities.registry import Action
from activities.runner import ProviderActivities
from tests.support.emulator import AdminClient, emulator_services, store_emulator_credentials
from tests.support.waiting import eventually
from tikflow.devstack import running_workers
from tikflow.loader import load_recipe_text
from tikflow.runs import build_run
from workflows.pacing import GRANTS_PER_RUN, AccountPacerWorkflow, PacerState, pacer_id
from workflows.recipe import RecipeWorkflow, RunStatus, workflow_runner

ME = "tikflow_demo"
EVERY = timedelta(seconds=8)

PACED = """
recipe: pace-{n}
inputs:
  video: {{type: string}}
trigger:
  poll: {{every: 1m, max_polls: 4}}
steps:
  - id: comments
    call: tikapi.comments
    with: {{media_id: "{{{{ inputs.video }}}}", count: 30}}
  - id: replies
    for_each: "{{{{ steps.comments.items }}}}"
    as: comment
    if: "{{{{ comment.author != '{me}' }}}}"
    new_only: cid
    concurrency: 4
    steps:
      - call: tikapi.reply
        pace: {{every: 8s}}
        with:
          media_id: "{{{{ comment.aweme_id }}}}"
          reply_comment_id: "{{{{ comment.cid }}}}"
          text: "thanks from recipe {n}"
"""


class TimedReplies(ProviderActivities):
    """The production activities, with the test server's clock read around each reply.

    `get_current_time` is the time-skipping server's clock, the one every workflow timer (and so
    every pacing slot) runs on. The sandbox received each reply between the two readings, on that
    clock, so `before` of one reply minus `after` of the previous is a lower bound of the gap the
    sandbox saw. (The sandbox's own wall clock is no witness: skipped time never passes on it.)
    It also counts the activities running, so the test skips time only when none is (a skip
    during one would fire its timeout and retry it while the first attempt still posts).
    """

    def __init__(self, services: Any, env: WorkflowEnvironment) -> None:
        super().__init__(services)
        self.env = env
        self.replies: list[tuple[datetime, datetime, str]] = []
        self.running = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def execute(self, act: Action[Any], request: ActionRequest) -> dict[str, Any]:
        self.running += 1
        self.idle.clear()
        try:
            if act.name != "tikapi.reply":
                return await super().execute(act, request)
            before = await self.env.get_current_time()
            result = await super().execute(act, request)
            after = await self.env.get_current_time()
            self.replies.append((before, after, activity.info().workflow_id))
            return result
        finally:
            self.running -= 1
            if not self.running:
                self.idle.set()


async def _start(client: Client, task_queue: str, n: int, video: str) -> Any:
    loaded = load_recipe_text(PACED.format(n=n, me=ME), f"pace-{n}.yaml")
    return await client.start_workflow(
        RecipeWorkflow.run,
        build_run(loaded, {"video": video}),
        id=f"pace-{n}-{uuid.uuid4()}",
        task_queue=task_queue,
    )


async def test_three_recipes_on_one_account_reply_8s_apart_each_once(
    time_env, sandbox_url, tmp_path, task_queue
):
    def prepare() -> tuple[CredentialStore, list[str]]:
        admin = AdminClient(sandbox_url, timeout=10)
        admin.admin("reset")
        videos = [v["id"] for v in admin.state()["tikapi"]["videos"] if v["author"] != ME][:3]
        for video in videos:
            admin.admin("tick", {"comments": 12, "video_id": video, "text": "love it"})
        return store_emulator_credentials(CredentialStore(tmp_path / "c.json", env={}), sandbox_url), videos

    store, videos = await asyncio.to_thread(prepare)
    services = emulator_services(sandbox_url, store, http=httpx.AsyncClient(timeout=30))
    timed = TimedReplies(services, time_env)
    async with running_workers(time_env.client, services, task_queue, activities=timed):
        started = await time_env.get_current_time()
        handles = [await _start(time_env.client, task_queue, n, video) for n, video in enumerate(videos)]

        # While they run, a waiting run says so: phase `pacing` and until when.
        async def status() -> RunStatus:
            return await handles[0].query(RecipeWorkflow.status)

        waiting = await eventually(
            status, until=lambda s: s.phase == "pacing", within=30, every=0.01, what="a run pacing"
        )
        assert waiting.waiting_for
        assert "tikapi account 'main'" in waiting.waiting_for

        # Time moves a second at a time, each step once no activity runs (see `TimedReplies`).
        with time_env.auto_time_skipping_disabled():
            done = asyncio.gather(*(h.result() for h in handles))
            for _ in range(15 * 60):
                if done.done():
                    break
                await asyncio.wait_for(timed.idle.wait(), 30)
                await time_env.sleep(timedelta(seconds=1))
            results = await asyncio.wait_for(done, 30)
        ended = await time_env.get_current_time()
        pacer: PacerState = await time_env.client.get_workflow_handle(pacer_id("tikapi", "main")).query(
            AccountPacerWorkflow.pacing
        )

    state = await asyncio.to_thread(AdminClient(sandbox_url).state)
    comments = state["tikapi"]["comments"]
    asked = {
        c["cid"] for c in comments if c["aweme_id"] in videos and not c["reply_to"] and c["author"] != ME
    }
    replies = [c["reply_to"] for c in comments if c["author"] == ME and c["reply_to"] in asked]
    assert len(asked) >= 36
    assert sorted(replies) == sorted(asked), "a comment got no reply or two"
    assert sum(r.polls for r in results) == 12
    assert EVERY * (len(asked) - 1) <= ended - started <= timedelta(minutes=10)  # simulated

    timed.replies.sort()
    assert len(timed.replies) == len(asked)  # each posted once: no activity posted a second time
    assert {wf for _, _, wf in timed.replies} == {h.id for h in handles}  # all three recipes replied
    gaps = [nxt[0] - prev[1] for prev, nxt in zip(timed.replies, timed.replies[1:], strict=False)]
    assert min(gaps) >= EVERY, f"two replies {min(gaps)} apart"
    # Paced, not serialised far beyond the pace: the slots follow each other closely.
    assert max(gaps) < EVERY + timedelta(seconds=2) or len(timed.replies) < 3
    assert pacer.granted == len(asked)
    assert pacer.holder is None
    assert not pacer.queue
    assert sum(r.counters.pacing_s for r in results) > 0


class MockReplies:
    """A mock `tikapi.reply` recording the server's (simulated) clock when each attempt was scheduled."""

    def __init__(self) -> None:
        self.calls: list[tuple[datetime, str]] = []
        self.running = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def activity(self) -> Any:
        @activity.defn(name="tikapi.reply")
        async def reply(request: ActionRequest) -> dict[str, Any]:
            self.running += 1
            self.idle.clear()
            self.calls.append((activity.info().current_attempt_scheduled_time, activity.info().workflow_id))
            await asyncio.sleep(0)
            self.running -= 1
            if not self.running:
                self.idle.set()
            return {"cid": "1"}

        return reply


async def _drive(env: WorkflowEnvironment, done: Any, idle: asyncio.Event) -> Any:
    """Move the test server's clock until `done`: to the account's next slot, else a second on.

    Time moves only while no activity runs: the server's automatic skipping would also skip while
    one runs and fire its timeout (see `TimedReplies`).
    """
    pacer = env.client.get_workflow_handle(pacer_id("tikapi", "main"))
    with env.auto_time_skipping_disabled():
        for _ in range(5000):
            if done.done():
                break
            await asyncio.wait_for(idle.wait(), 30)
            gap = timedelta(seconds=1)
            with contextlib.suppress(RPCError):
                state: PacerState = await pacer.query(AccountPacerWorkflow.pacing)
                now = await env.get_current_time()
                if state.holder_at is not None and state.holder_at - now > gap:
                    gap = state.holder_at - now
            await env.sleep(gap)
        return await asyncio.wait_for(done, 30)


def _replying(name: str, times: int, pace: str, account: str = "main") -> str:
    return f"""
recipe: {name}
account: {account}
steps:
  - for_each: "{{{{ range({times}) | list }}}}"
    as: n
    steps:
      - call: tikapi.reply
        pace: {pace}
        with: {{media_id: "1", reply_comment_id: "{{{{ n }}}}", text: hi}}
"""


async def _start_text(client: Client, task_queue: str, text: str) -> Any:
    """Start `text` on `task_queue`, its account pacers there too (the test's workers serve both)."""
    run = build_run(load_recipe_text(text, "test.yaml"), {})
    run.pacer_queue = task_queue
    return await client.start_workflow(
        RecipeWorkflow.run,
        run,
        id=f"wf-{uuid.uuid4()}",
        task_queue=task_queue,
    )


@contextlib.asynccontextmanager
async def _workers(client: Client, task_queue: str, mock: MockReplies) -> AsyncIterator[None]:
    """The recipe and pacer workflows on `task_queue`, a mock `tikapi.reply` on its provider queue."""
    async with (
        Worker(
            client,
            task_queue=task_queue,
            workflows=[RecipeWorkflow, AccountPacerWorkflow],
            workflow_runner=workflow_runner(),
        ),
        Worker(client, task_queue=f"{task_queue}.tikapi", activities=[mock.activity()]),
    ):
        yield


async def test_per_day_is_a_rolling_24_hours_across_recipes(time_env, task_queue):
    mock = MockReplies()
    calls = mock.calls
    async with _workers(time_env.client, task_queue, mock):
        handles = [
            await _start_text(time_env.client, task_queue, _replying(f"r{n}", 3, "{per_day: 4}"))
            for n in range(2)
        ]
        await _drive(time_env, asyncio.gather(*(h.result() for h in handles)), mock.idle)
    times = sorted(t for t, _ in calls)
    assert len(times) == 6
    assert len({wf for _, wf in calls}) == 2
    assert times[3] - times[0] < timedelta(minutes=1)  # four at once: the budget
    # The fifth and sixth wait until the first and second are a day old, not for midnight.
    assert times[4] - times[0] >= timedelta(days=1)
    assert times[4] - times[0] < timedelta(days=1, minutes=1)
    assert times[5] - times[1] >= timedelta(days=1)


async def test_a_run_stopped_while_pacing_gives_its_slot_back_and_shows_the_wait(time_env, task_queue):
    mock = MockReplies()
    calls = mock.calls
    async with _workers(time_env.client, task_queue, mock):
        first = await _start_text(time_env.client, task_queue, _replying("first", 2, "{every: 1h}"))
        waiting = await status_of(first, lambda s: s.phase == "pacing" and " at " in (s.waiting_for or ""))
        assert "pacing slot of tikapi account 'main' at" in (waiting.waiting_for or "")
        await first.signal(RecipeWorkflow.stop)
        await _drive(time_env, asyncio.ensure_future(first.result()), mock.idle)
        pacer = time_env.client.get_workflow_handle(pacer_id("tikapi", "main"))
        state: PacerState = await pacer.query(AccountPacerWorkflow.pacing)
        assert state.holder is None
        assert len(state.booked) == 1

        second = await _start_text(time_env.client, task_queue, _replying("second", 1, "{every: 1h}"))
        await _drive(time_env, asyncio.ensure_future(second.result()), mock.idle)
    assert [wf for _, wf in calls] == [first.id, second.id]
    # The second run's call keeps the hour after the first call, though the stopped run gave up its slot.
    assert calls[1][0] - calls[0][0] >= timedelta(hours=1)
    summaries = [
        e.user_metadata.summary.data.decode()
        async for e in first.fetch_history_events()
        if e.HasField("timer_started_event_attributes") and e.HasField("user_metadata")
    ]
    assert any("pacing" in s and "tikapi account 'main'" in s for s in summaries)  # the UI's timer label


async def status_of(handle: Any, check: Any) -> RunStatus:
    """Query `status` until `check` holds."""

    async def status() -> RunStatus:
        return await handle.query(RecipeWorkflow.status)

    return await eventually(status, until=check, within=10, every=0.02, what="the status checked")


def test_graph_shows_a_calls_pace():
    from pathlib import Path

    from tikflow.commands.graph import mermaid
    from tikflow.loader import load_recipe

    recipe = load_recipe(Path(__file__).parent / "recipes" / "valid" / "paced.yaml").recipe
    assert '["tikapi.reply (pace every 8s, 200/day)"]' in mermaid(recipe)


class HeldReplies(MockReplies):
    """A mock `tikapi.reply` whose calls from the `held` recipes stay out until cancelled (a slow provider).

    A held attempt heartbeats (that is how a cancellation reaches it) and ends cancelled, as a
    real attempt stopped mid-request would; `holding` is set while one is out.
    """

    def __init__(self, held: set[str]) -> None:
        super().__init__()
        self.held = held
        self.holding = asyncio.Event()

    def activity(self) -> Any:
        @activity.defn(name="tikapi.reply")
        async def reply(request: ActionRequest) -> dict[str, Any]:
            self.calls.append((activity.info().current_attempt_scheduled_time, activity.info().workflow_id))
            if request.recipe not in self.held:
                return {"cid": "1"}
            self.holding.set()
            try:
                while True:
                    activity.heartbeat()
                    await asyncio.sleep(0.05)
            finally:
                self.holding.clear()

        return reply


@contextlib.asynccontextmanager
async def _held_workers(client: Client, task_queue: str, mock: MockReplies) -> AsyncIterator[None]:
    """As `_workers`, with heartbeats sent at once (so a cancellation reaches a held attempt in ms)."""
    async with (
        Worker(
            client,
            task_queue=task_queue,
            workflows=[RecipeWorkflow, AccountPacerWorkflow],
            workflow_runner=workflow_runner(),
        ),
        Worker(
            client,
            task_queue=f"{task_queue}.tikapi",
            activities=[mock.activity()],
            default_heartbeat_throttle_interval=timedelta(milliseconds=20),
            max_heartbeat_throttle_interval=timedelta(milliseconds=20),
        ),
    ):
        yield


@pytest.mark.parametrize("how", ["stop", "cancel"])
async def test_a_run_ended_while_its_paced_call_is_out_gives_the_slot_back_at_once(dev_env, task_queue, how):
    # The dev server: the time-skipping server drops a cancelled attempt at once, as if it had not
    # started; a real server waits until the worker says the attempt ended, as here.
    mock = HeldReplies(held={"first"})
    account = f"acct-{uuid.uuid4().hex[:8]}"  # the session's server: a pacer of this test's own
    pace = "{every: 2s}"
    async with _held_workers(dev_env.client, task_queue, mock):
        first = await _start_text(dev_env.client, task_queue, _replying("first", 1, pace, account))
        await asyncio.wait_for(mock.holding.wait(), 30)  # its call is out: it holds the slot
        pacer = dev_env.client.get_workflow_handle(pacer_id("tikapi", account))
        held: PacerState = await pacer.query(AccountPacerWorkflow.pacing)
        assert held.holder is not None
        assert held.holder.workflow_id == first.id
        if how == "stop":
            await first.signal(RecipeWorkflow.stop)
            assert (await asyncio.wait_for(first.result(), 30)).outcome == "stopped"
        else:
            await first.cancel()
            with pytest.raises(WorkflowFailureError) as caught:
                await asyncio.wait_for(first.result(), 30)
            assert isinstance(caught.value.cause, CancelledError)

        async def pacing() -> PacerState:
            return await pacer.query(AccountPacerWorkflow.pacing)

        freed = await eventually(
            pacing, until=lambda s: s.holder is None, within=10, every=0.02, what="the slot given back"
        )
        assert freed.last_done is not None
        second = await _start_text(dev_env.client, task_queue, _replying("second", 1, pace, account))
        await asyncio.wait_for(second.result(), 60)
    assert [wf for _, wf in mock.calls] == [first.id, second.id]
    # The second recipe waited the pace after the first call ended, not the lease's half hour.
    gap = mock.calls[1][0] - freed.last_done
    assert timedelta(seconds=2) - timedelta(milliseconds=50) <= gap < timedelta(seconds=30)


async def test_a_worker_restart_mid_pacing_keeps_the_pace_and_posts_each_reply_once(dev_env, task_queue):
    # The dev server: a worker that shuts down tells a real server to stop sending its runs' tasks
    # to its own (sticky) queue; the time-skipping server keeps sending them there for a while.
    mock = MockReplies()
    account = f"acct-{uuid.uuid4().hex[:8]}"
    every = timedelta(seconds=2)
    async with _workers(dev_env.client, task_queue, mock):
        handles = [
            await _start_text(dev_env.client, task_queue, _replying(f"r{n}", 3, "{every: 2s}", account))
            for n in range(2)
        ]
        done = asyncio.gather(*(h.result() for h in handles))

        async def replies() -> int:
            return len(mock.calls)

        await eventually(replies, until=lambda n: n >= 2, within=30, every=0.05, what="two replies out")
    # The old workers are gone (their caches with them); new ones take the runs and the pacer over.
    assert 2 <= len(mock.calls) < 6
    async with _workers(dev_env.client, task_queue, mock):
        await asyncio.wait_for(done, 60)
    keys = [wf for _, wf in mock.calls]
    assert sorted(keys) == sorted([h.id for h in handles] * 3)  # three replies per recipe, none twice
    times = sorted(t for t, _ in mock.calls)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= every, f"two replies {min(gaps)} apart"


async def test_the_pacer_continues_as_new_keeping_the_day_count_and_the_last_call(time_env, task_queue):
    mock = MockReplies()
    pacer = time_env.client.get_workflow_handle(pacer_id("tikapi", "main"))
    async with _workers(time_env.client, task_queue, mock):
        now = await time_env.get_current_time()
        # A pacer of 3 slots per run (the production one hands out `GRANTS_PER_RUN`), idle since an hour.
        first_run = await time_env.client.start_workflow(
            AccountPacerWorkflow.run,
            args=[None, PacerState(grants_per_run=3, last_done=now - timedelta(hours=1))],
            id=pacer.id,
            task_queue=task_queue,
        )
        run = await _start_text(time_env.client, task_queue, _replying("many", 8, "{every: 8s, per_day: 6}"))
        await _drive(time_env, asyncio.ensure_future(run.result()), mock.idle)
        state: PacerState = await pacer.query(AccountPacerWorkflow.pacing)
        # The pacer's runs, each continued as the next, and the events of each.
        events: list[int] = []
        run_id: str | None = first_run.result_run_id
        while run_id:
            history = await time_env.client.get_workflow_handle(pacer.id, run_id=run_id).fetch_history()
            events.append(len(history.events))
            last = history.events[-1]
            run_id = (
                last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                if last.HasField("workflow_execution_continued_as_new_event_attributes")
                else None
            )
    times = sorted(t for t, _ in mock.calls)
    assert len(times) == 8
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= EVERY  # the last call's end crossed each continue-as-new
    # The day's count crossed them too: the 7th and 8th waited until the 1st and 2nd were a day old.
    assert times[5] - times[0] < timedelta(minutes=2)
    assert times[6] - times[0] >= timedelta(days=1)
    assert times[7] - times[1] >= timedelta(days=1)
    assert state.granted == 8
    assert state.grants_per_run == 3
    assert state.booked[-1] == state.last_done  # the last slot counted at its end
    assert state.last_done is not None
    assert state.last_done >= times[-1]
    assert len(events) == 3  # 8 slots, 3 per run: continued as new twice
    # About 15 events per slot (46, 55, 44 measured): `GRANTS_PER_RUN` slots stay under 4,000.
    assert max(events) < 3 * 20
    assert GRANTS_PER_RUN * 16 < 4000


async def test_a_call_awaiting_reauth_holds_no_slot_other_recipes_of_the_account_post(time_env, task_queue):
    calls: list[tuple[datetime, str]] = []
    expired = {"a"}  # recipe a's session has expired until it is re-authorized
    idle = asyncio.Event()
    idle.set()

    @activity.defn(name="tikapi.reply")
    async def reply(request: ActionRequest) -> dict[str, Any]:
        if request.recipe in expired:
            raise ApplicationError(
                "session expired (428)", {"provider": "tikapi", "account": "main"}, type="SessionExpired"
            )
        calls.append((activity.info().current_attempt_scheduled_time, request.recipe or ""))
        return {"cid": "1"}

    @activity.defn(name="notify.send")
    async def notify(request: ActionRequest) -> dict[str, Any]:
        return {"sent": True}

    async with (
        Worker(
            time_env.client,
            task_queue=task_queue,
            workflows=[RecipeWorkflow, AccountPacerWorkflow],
            activities=[notify],
            workflow_runner=workflow_runner(),
        ),
        Worker(time_env.client, task_queue=f"{task_queue}.tikapi", activities=[reply]),
    ):
        a = await _start_text(time_env.client, task_queue, _replying("a", 1, "{every: 8s}"))
        await status_of(a, lambda s: s.phase == "awaiting_reauth")
        b_started = await time_env.get_current_time()
        b = await _start_text(time_env.client, task_queue, _replying("b", 3, "{every: 8s}"))
        await _drive(time_env, asyncio.ensure_future(b.result()), idle)
        # b posted all its replies while a waited for a person: the slot was not a's.
        assert [r for _, r in calls] == ["b", "b", "b"]
        assert (await a.query(RecipeWorkflow.status)).phase == "awaiting_reauth"
        expired.clear()
        await a.signal(RecipeWorkflow.reauthorized, "main")
        await _drive(time_env, asyncio.ensure_future(a.result()), idle)
    assert [r for _, r in calls] == ["b", "b", "b", "a"]
    times = [t for t, _ in calls]
    assert min(b - a for a, b in itertools.pairwise(times)) >= EVERY
    # b was paced after a's failed attempt, not held for a's lease (`LEASE_TTL`).
    assert times[0] - b_started <= EVERY + timedelta(seconds=2)
    assert times[2] - times[0] < 2 * EVERY + timedelta(seconds=4)


async def test_a_call_retrying_an_outage_gives_the_slot_back_between_attempts(time_env, task_queue):
    attempts: list[tuple[datetime, str, bool]] = []  # (when, recipe, succeeded): every request sent
    idle = asyncio.Event()
    idle.set()

    @activity.defn(name="tikapi.reply")
    async def reply(request: ActionRequest) -> dict[str, Any]:
        failing = request.recipe == "a" and sum(r == "a" for _, r, _ in attempts) < 2
        attempts.append((activity.info().current_attempt_scheduled_time, request.recipe or "", not failing))
        if failing:
            raise ApplicationError("HTTP 503", {"provider": "tikapi"}, type="ProviderUnavailable")
        return {"cid": "1"}

    retrying = _replying("a", 1, "{every: 8s}").replace(
        "steps:", "retry: {initial: 1m, max_attempts: 3}\nsteps:", 1
    )
    async with (
        Worker(
            time_env.client,
            task_queue=task_queue,
            workflows=[RecipeWorkflow, AccountPacerWorkflow],
            workflow_runner=workflow_runner(),
        ),
        Worker(time_env.client, task_queue=f"{task_queue}.tikapi", activities=[reply]),
    ):
        a = await _start_text(time_env.client, task_queue, retrying)
        await status_of(a, lambda s: any(c.last_failure for c in s.calls))  # its first attempt failed
        b_started = await time_env.get_current_time()
        b = await _start_text(time_env.client, task_queue, _replying("b", 3, "{every: 8s}"))
        await _drive(time_env, asyncio.ensure_future(asyncio.gather(a.result(), b.result())), idle)
    assert [(r, ok) for _, r, ok in attempts] == [
        ("a", False),
        ("b", True),
        ("b", True),
        ("b", True),
        ("a", False),
        ("a", True),
    ]
    times = [t for t, _, _ in attempts]
    assert min(y - x for x, y in itertools.pairwise(times)) >= EVERY  # failed attempts are paced too
    assert times[1] - b_started <= EVERY + timedelta(seconds=2)  # b went on during a's backoff
