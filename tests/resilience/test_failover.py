"""Scaling out (issue 8): two worker processes share one run; one dies; the survivor finishes it.

This is `docker compose up --scale worker=2` in miniature: both processes poll the same task
queues of one dev server, Temporal hands each activity to one of them, and when one is SIGKILLed
its unfinished activities time out and go to the other. No replacement is started.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from temporalio.api.enums.v1 import EventType

from tests.resilience.conftest import ME, REPLY_ALL, Rig, recovered_effects
from tests.resilience.report import record
from tests.support.waiting import eventually


async def test_two_worker_processes_share_a_run_and_the_survivor_finishes_it(rig: Rig) -> None:
    video, parents = await rig.emulator.comments_to_answer(60)
    survivor, victim = rig.spawn_worker(hold_s=0.5), rig.spawn_worker(hold_s=0.5)
    await survivor.ready()
    await victim.ready()
    handle = await rig.start(REPLY_ALL, {"video": video})

    async def posted() -> int:
        return sum((await rig.emulator.replies(parents)).values())

    await eventually(posted, within=120, what="20 replies posted", every=0.05, until=lambda n: n >= 20)
    victim.sigkill()
    await asyncio.wait_for(handle.result(), 240)

    # Effects: every comment answered exactly once.
    replies = await rig.emulator.replies(parents)
    record(
        "failover_1_of_2_workers_no_replacement",
        kills=1,
        restarts=0,
        faults=0,
        expected=len(parents),
        actual=sum(replies[cid] for cid in parents),
        duplicates=sum(replies[cid] - 1 for cid in parents if replies[cid] > 1),
        missing=sum(1 for cid in parents if replies[cid] == 0),
        recovered=await recovered_effects(handle),
    )
    assert {cid: replies[cid] for cid in parents} == dict.fromkeys(parents, 1)
    state = await rig.emulator.state()
    mine = [c for c in state["tikapi"]["comments"] if c["author"] == ME and c["reply_to"] is not None]
    assert len(mine) == len(parents)

    # Both processes did the run's work, and only the survivor worked after the kill.
    started_by: Counter[str] = Counter()
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started_by[event.activity_task_started_event_attributes.identity.split("@")[0]] += 1
    pids = {str(survivor.process.pid), str(victim.process.pid)}
    assert set(started_by) == pids, started_by
    assert started_by[str(survivor.process.pid)] > started_by[str(victim.process.pid)] > 0
