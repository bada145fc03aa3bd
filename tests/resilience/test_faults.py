"""A reply run against a hostile sandbox: 5xx bursts, 429s with and without a reset, one 428.

Issue 4's first promise: the run retries what is transient, waits out rate limits, parks in
`awaiting_reauth` when the TikAPI session expires, resumes after `tikflow reauth`, and ends with
exactly one reply per comment.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from tests.resilience.conftest import ME, REPLY_ALL, Rig, worker_in
from tests.resilience.report import record
from tests.support.waiting import eventually
from tikflow.emulator.state import DEMO_ACCOUNT_KEY
from workflows.recipe import RunResult


async def reauth_cli(rig: Rig, workflow_id: str, account_key: str) -> str:
    """`tikflow reauth ID --account main --provider tikapi account_key=…`, as an operator runs it."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": rig.address,
        "TIKFLOW_CREDENTIALS": str(rig.credentials_path),
    }
    tikflow = Path(sys.executable).with_name("tikflow")
    process = await asyncio.create_subprocess_exec(
        str(tikflow),
        "reauth",
        workflow_id,
        "--account",
        "main",
        "--provider",
        "tikapi",
        f"account_key={account_key}",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    return out.decode()


async def test_reply_run_survives_5xx_429_and_428_with_exactly_one_reply_per_comment(rig: Rig) -> None:
    started = time.monotonic()
    video, parents = await rig.emulator.comments_to_answer(200)
    rules = [
        # A burst of 503s on the very first replies, and more later, on reads and posts alike.
        {"provider": "tikapi", "kind": "status", "status": 503, "count": 6, "path": "/user/comment"},
        {"provider": "tikapi", "kind": "status", "status": 502, "count": 5, "skip": 80},
        {"provider": "tikapi", "kind": "status", "status": 500, "count": 4, "path": "/public/", "skip": 0},
        # 429s with a reset header (next_retry_delay) and without one (plain backoff).
        {"provider": "tikapi", "kind": "rate_limit", "retry_after": 1, "count": 4, "skip": 40},
        {"provider": "tikapi", "kind": "rate_limit", "retry_after": None, "count": 4, "skip": 150},
        # One expired session on a reply: every /user/* call with the old key is 428 from then on.
        {"provider": "tikapi", "kind": "session_expired", "path": "/user/comment", "method": "POST"}
        | {"skip": 60},
    ]
    await rig.emulator.faults(*rules)
    async with worker_in(rig):
        handle = await rig.start(REPLY_ALL, {"video": video})

        status = await eventually(
            lambda: rig.status(handle),
            until=lambda status: status.phase == "awaiting_reauth",
            within=60,
            what="phase awaiting_reauth",
        )
        assert status.waiting_for is not None
        assert "tikapi" in status.waiting_for
        # While it waits nothing moves: the count of replies stays put.
        before = sum((await rig.emulator.replies(parents)).values())
        assert 0 < before < len(parents)

        fresh = await rig.emulator.admin(
            "reauthorize", {"provider": "tikapi", "account_key": DEMO_ACCOUNT_KEY}
        )
        output = await reauth_cli(rig, handle.id, fresh["account_key"])
        assert "reauthorized" in output
        assert fresh["account_key"] not in output  # the CLI never echoes the key

        result: RunResult = await asyncio.wait_for(handle.result(), 120)

    replies = await rig.emulator.replies(parents)
    state = await rig.emulator.state()
    mine = [c for c in state["tikapi"]["comments"] if c["author"] == ME and c["reply_to"] is not None]
    duplicates = sum(n - 1 for n in replies.values() if n > 1)
    missing = [cid for cid in parents if replies[cid] == 0]
    record(
        "faults_5xx_429_428_200_replies",
        kills=0,
        restarts=0,
        faults=rig.emulator.faults_fired(),
        expected=len(parents),
        actual=len(mine),
        duplicates=duplicates,
        missing=len(missing),
        reauths=result.counters.reauths,
        seconds=round(time.monotonic() - started, 1),
    )
    assert duplicates == 0
    assert missing == []
    assert len(mine) == len(parents)  # no reply went anywhere else either
    assert result.outcome == "completed"
    # One expiry seen by ten concurrent replies is one wait (and one notification), not ten.
    assert result.counters.reauths == 1
    # Every scripted fault really happened (the 428 among them).
    assert rig.emulator.faults_fired() == sum(r["count"] if r.get("count") else 1 for r in rules)
    assert state["statuses"].get("tikapi 428", 0) >= 1
    assert state["statuses"].get("tikapi 429", 0) == 8
