"""Chaos (issue 7): killed workers, a restarted Temporal server, a sandbox that misbehaves on purpose.

Every scenario runs short in `make test` and at full length with `TIKFLOW_CHAOS_FULL=1` (`make
chaos`, which selects these tests by their `chaos` marker). Every run must end with exactly the
expected effects in the sandbox: each comment answered once, none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from activities.credentials import CredentialStore
from tests.resilience.conftest import (
    ME,
    REPLY_ALL,
    LiveEmulator,
    Rig,
    recovered_effects,
    reply_run_with_kills,
    worker_in,
)
from tests.resilience.report import record
from tests.support.waiting import eventually
from tikflow.connect import connect
from tikflow.devstack import dev_server_args, find_binary, free_port
from tikflow.emulator.state import DEMO_ACCOUNT_KEY
from workflows.recipe import RecipeWorkflow, RunResult

#: `make chaos` sets this: the same tests at full length (and a longer timeout), nothing skipped.
FULL = os.environ.get("TIKFLOW_CHAOS_FULL", "") not in ("", "0")
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1800 if FULL else 300)]


# -- 1. SIGKILL the worker at random points -----------------------------------------------------


async def _kills(rig: Rig, name: str, comments: int, kills: int) -> None:
    started = time.monotonic()
    figures = await reply_run_with_kills(rig, comments=comments, kills=kills, seed=kills * 1000 + comments)
    record(
        name,
        restarts=0,
        faults=0,
        seconds=round(time.monotonic() - started, 1),
        **dataclasses.asdict(figures),
    )
    assert figures.kills == kills
    assert figures.recovered > 0  # kills landed between a reply and its report
    assert figures.duplicates == 0
    assert figures.missing == 0
    assert figures.actual == figures.expected


async def test_chaos_sigkills_at_random_points(rig: Rig) -> None:
    if FULL:
        await _kills(rig, "chaos_sigkill_10x_500_replies", comments=500, kills=10)
    else:
        await _kills(rig, "chaos_sigkill_2x_60_replies", comments=60, kills=2)


# -- 2. stop and restart the Temporal dev server (SQLite) mid-run -------------------------------


@dataclasses.dataclass
class OwnTemporal:
    """A `temporal server start-dev` with a SQLite file, which the test stops and starts again."""

    db: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            find_binary("temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(self.db),
            "--port",
            str(self.port),
            "--ip",
            "127.0.0.1",
            "--headless",
            "--log-level",
            "error",
            *dev_server_args(),
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        """Stop it the way an operator does (SIGTERM), and wait until it is gone."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def client(self) -> Client:
        async def connected() -> Client:
            assert self.process is not None
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            client = await connect(target_host=self.address, namespace="default")
            await client.count_workflows()  # the namespace answers, not just the socket
            return client

        return await eventually(connected, within=60, what="the Temporal dev server", every=0.2)


@contextlib.asynccontextmanager
async def own_temporal(tmp_path: Path) -> AsyncIterator[OwnTemporal]:
    server = OwnTemporal(db=tmp_path / "temporal.db", port=free_port(), log=tmp_path / "temporal.log")
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.stop()


async def _restarts(
    emulator: LiveEmulator, credentials_path: Path, tmp_path: Path, name: str, comments: int, restarts: int
) -> None:
    started = time.monotonic()
    async with own_temporal(tmp_path) as server:
        rig = Rig(await server.client(), emulator, credentials_path, f"restart-{uuid.uuid4()}")
        try:
            video, parents = await emulator.comments_to_answer(comments)
            # Two workers that report each reply a little late, so the run is still going when the
            # server goes away and some replies are done but unrecorded at that moment.
            for _ in range(2):
                await rig.spawn_worker(hold_s=0.3).ready()
            handle = await rig.start(REPLY_ALL, {"video": video})
            for n in range(restarts):
                point = len(parents) * (n + 1) // (restarts + 2)

                async def posted(at_least: int = point) -> bool:
                    return sum((await emulator.replies(parents)).values()) >= at_least

                await eventually(posted, within=120, what=f"{point} replies", every=0.05)
                server.stop()
                server.start()
                rig.client = await server.client()
            # A handle from the client of the restarted server (the same run, found by id).
            handle = rig.client.get_workflow_handle_for(RecipeWorkflow.run, handle.id)
            result: RunResult = await asyncio.wait_for(handle.result(), 240)
            recovered = await recovered_effects(handle)
        finally:
            rig.stop_workers()
    replies = await emulator.replies(parents)
    state = await emulator.state()
    mine = [c for c in state["tikapi"]["comments"] if c["author"] == ME and c["reply_to"] is not None]
    duplicates = sum(n - 1 for n in replies.values() if n > 1)
    missing = sum(1 for cid in parents if replies[cid] == 0)
    record(
        name,
        kills=0,
        restarts=restarts,
        faults=0,
        expected=len(parents),
        actual=len(mine),
        duplicates=duplicates,
        missing=missing,
        recovered=recovered,
        seconds=round(time.monotonic() - started, 1),
    )
    assert result.outcome == "completed"
    assert duplicates == 0
    assert missing == 0
    assert len(mine) == len(parents)


async def test_chaos_temporal_restart_mid_run(
    emulator: LiveEmulator, credentials_path: Path, tmp_path: Path
) -> None:
    if FULL:
        await _restarts(emulator, credentials_path, tmp_path, "chaos_temporal_restart_3x_300_replies", 300, 3)
    else:
        await _restarts(emulator, credentials_path, tmp_path, "chaos_temporal_restart_1x_60_replies", 60, 1)


# -- 3. a sandbox that answers 20% 5xx, 5% timeouts, 429 bursts, one 428, malformed JSON -------


def _fault_mix(comments: int) -> list[dict[str, Any]]:
    reply_traffic = "/user/comment"  # the check-before-act listing and the POST itself
    return [
        # One expired session partway through; every /user/* call with the old key is 428 after it.
        {"provider": "tikapi", "kind": "session_expired", "path": reply_traffic, "method": "POST"}
        | {"skip": comments // 3},
        # Bursts of 429, with and without a reset time.
        {"provider": "tikapi", "kind": "rate_limit", "retry_after": 1, "count": 5, "skip": comments // 5},
        {"provider": "tikapi", "kind": "rate_limit", "retry_after": None, "count": 5, "skip": comments},
        # Garbage: truncated JSON and an HTML error page, a few of each, anywhere.
        {"provider": "tikapi", "kind": "malformed", "count": 4, "probability": 0.05},
        {"provider": "tikapi", "kind": "html", "count": 3, "probability": 0.05},
        # The steady background: 5% of calls hang past the 2 s call timeout, 20% answer 5xx.
        {"provider": "tikapi", "kind": "timeout", "path": reply_traffic, "count": None, "probability": 0.05}
        | {"delay_s": 3},
        {"provider": "tikapi", "kind": "status", "status": 503, "path": reply_traffic, "count": None}
        | {"probability": 0.2},
    ]


async def _fault_mix_run(rig: Rig, name: str, comments: int) -> None:
    started = time.monotonic()
    video, parents = await rig.emulator.comments_to_answer(comments)
    await rig.emulator.faults(*_fault_mix(comments))
    # A 2 s call timeout (the 3 s hangs exceed it); wider batches, since `for_each` waits for the
    # slowest item of each batch and under this much noise some item always needs a few attempts.
    recipe = (
        REPLY_ALL.replace("timeout: 5s", "timeout: 2s")
        .replace("concurrency: 10", "concurrency: 30")
        .replace("max_interval: 2s", "max_interval: 1s")
    )
    assert "timeout: 2s" in recipe
    assert "concurrency: 30" in recipe
    async with worker_in(rig):
        handle = await rig.start(recipe, {"video": video})

        await eventually(
            lambda: handle.query(RecipeWorkflow.status),
            until=lambda status: status.phase == "awaiting_reauth",
            within=120,
            what="phase awaiting_reauth",
        )
        # Re-authorize the way `tikflow reauth` does: new key into the store, then the signal.
        fresh = await rig.emulator.admin(
            "reauthorize", {"provider": "tikapi", "account_key": DEMO_ACCOUNT_KEY}
        )
        CredentialStore(rig.credentials_path, env={}).update(
            "tikapi", "main", {"account_key": fresh["account_key"]}
        )
        await handle.signal(RecipeWorkflow.reauthorized, "main")
        result: RunResult = await asyncio.wait_for(handle.result(), 1500)
        recovered = await recovered_effects(handle)
    replies = await rig.emulator.replies(parents)
    state = await rig.emulator.state()
    mine = [c for c in state["tikapi"]["comments"] if c["author"] == ME and c["reply_to"] is not None]
    duplicates = sum(n - 1 for n in replies.values() if n > 1)
    missing = sum(1 for cid in parents if replies[cid] == 0)
    statuses = state["statuses"]
    record(
        name,
        kills=0,
        restarts=0,
        faults=rig.emulator.faults_fired(),
        faults_by_status={k: v for k, v in sorted(statuses.items()) if not k.endswith((" 200", " 302"))},
        expected=len(parents),
        actual=len(mine),
        duplicates=duplicates,
        missing=missing,
        reauths=result.counters.reauths,
        recovered=recovered,
        seconds=round(time.monotonic() - started, 1),
    )
    assert result.outcome == "completed"
    assert duplicates == 0
    assert missing == 0
    assert len(mine) == len(parents)
    assert result.counters.reauths == 1
    # Every kind of fault really happened.
    for status in ("503", "504", "429", "428", "502"):
        assert statuses.get(f"tikapi {status}", 0) > 0, status


async def test_chaos_fault_mix_exact_effects(rig: Rig) -> None:
    if FULL:
        await _fault_mix_run(rig, "chaos_fault_mix_500_replies", 500)
    else:
        await _fault_mix_run(rig, "chaos_fault_mix_60_replies", 60)


# -- 4. a monitor (poll trigger: reads as local activities) through kills, a restart and faults --

#: Replies to every new comment of one video, polling as often as a recipe may (every 10 s);
#: the listing is a read, so a local activity (`reads: local`, the default).
MONITOR = """
recipe: chaos-monitor
inputs:
  video: {type: string, required: true}
trigger: {poll: {every: 10s}}
timeout: 2s
retry: {initial: 200ms, max_interval: 1s, max_attempts: 100}
steps:
  - id: listing
    call: tikapi.comments
    with: {media_id: "{{ inputs.video }}", count: 30, pages: 50}
  - for_each: "{{ steps.listing.items }}"
    as: comment
    new_only: cid
    if: "{{ comment.author != 'tikflow_demo' }}"
    concurrency: 10
    steps:
      - call: tikapi.reply
        with:
          media_id: "{{ comment.aweme_id }}"
          reply_comment_id: "{{ comment.cid }}"
          text: "Thanks!"
"""


def _monitor_faults() -> list[dict[str, Any]]:
    return [
        {"provider": "tikapi", "kind": "rate_limit", "retry_after": 1, "count": 5, "skip": 20},
        {"provider": "tikapi", "kind": "timeout", "count": None, "probability": 0.03, "delay_s": 3},
        {"provider": "tikapi", "kind": "status", "status": 503, "count": None, "probability": 0.15},
    ]


async def _monitor_chaos(
    emulator: LiveEmulator, credentials_path: Path, tmp_path: Path, name: str, waves: int, per_wave: int
) -> None:
    started = time.monotonic()
    async with own_temporal(tmp_path) as server:
        rig = Rig(await server.client(), emulator, credentials_path, f"monitor-{uuid.uuid4()}")
        try:
            video = await emulator.video_of("nina_art")
            before = {
                c["cid"] for c in (await emulator.state())["tikapi"]["comments"] if c["aweme_id"] == video
            }
            alive = [rig.spawn_worker(hold_s=0.5) for _ in range(2)]
            for process in alive:
                await process.ready()
            handle = await rig.start(MONITOR, {"video": video})
            await emulator.faults(*_monitor_faults())
            parents: list[str] = []
            for wave in range(waves):
                parents += await emulator.seed_comments(per_wave, video)
                half = len(parents) - per_wave // 2

                async def posted(at_least: int = half, parents: list[str] = parents) -> bool:
                    return sum((await emulator.replies(parents)).values()) >= at_least

                await eventually(posted, within=120, what=f"{half} replies", every=0.05)
                if wave % 2 == 0:  # SIGKILL a worker between a reply and its report
                    victim = alive.pop(0)
                    victim.sigkill()
                    replacement = rig.spawn_worker(hold_s=0.5)
                    await replacement.ready()
                    alive.append(replacement)
                else:  # the Temporal server goes away and comes back
                    server.stop()
                    server.start()
                    rig.client = await server.client()

            async def all_answered() -> bool:
                replies = await emulator.replies(parents)
                return all(replies[cid] >= 1 for cid in parents)

            await eventually(all_answered, within=180, what="every comment answered", every=0.2)
            fired = emulator.faults_fired()  # (clearing the rules drops their counters)
            await emulator.clear_faults()
            handle = rig.client.get_workflow_handle_for(RecipeWorkflow.run, handle.id)
            # Two more polls, with no faults: nothing answered again.
            polls = (await handle.query(RecipeWorkflow.status)).counters.polls

            async def more_polls() -> bool:
                return (await handle.query(RecipeWorkflow.status)).counters.polls >= polls + 2

            await eventually(more_polls, within=60, what="two more polls")
            await handle.terminate("chaos test done")
        finally:
            rig.stop_workers()
    replies = await emulator.replies(parents)
    state = await emulator.state()
    new_parents = [
        c["cid"]
        for c in state["tikapi"]["comments"]
        if c["aweme_id"] == video and c["reply_to"] is None and c["author"] != ME and c["cid"] not in before
    ]
    duplicates = sum(n - 1 for n in replies.values() if n > 1)
    missing = sum(1 for cid in parents if replies[cid] == 0)
    record(
        name,
        kills=(waves + 1) // 2,
        restarts=waves // 2,
        faults=fired,
        expected=len(parents),
        actual=sum(replies.values()),
        duplicates=duplicates,
        missing=missing,
        seconds=round(time.monotonic() - started, 1),
    )
    assert sorted(new_parents) == sorted(parents)
    assert duplicates == 0
    assert missing == 0
    assert fired > 0


async def test_chaos_monitor_local_reads(
    emulator: LiveEmulator, credentials_path: Path, tmp_path: Path
) -> None:
    if FULL:
        await _monitor_chaos(emulator, credentials_path, tmp_path, "chaos_monitor_8_waves_x_40", 8, 40)
    else:
        await _monitor_chaos(emulator, credentials_path, tmp_path, "chaos_monitor_2_waves_x_20", 2, 20)
