"""SIGKILL a worker process while it posts replies: the run completes, no reply doubled or lost.

The killed worker's in-memory idempotency record dies with it, so the replacement's retries can
only rely on TikAPI itself: each reply first looks for our earlier reply under the comment.
"""

from __future__ import annotations

import dataclasses
import time

from tests.resilience.conftest import Rig, reply_run_with_kills
from tests.resilience.report import record


async def test_sigkilled_worker_mid_replies_leaves_no_duplicate_and_nothing_missing(rig: Rig) -> None:
    started = time.monotonic()
    figures = await reply_run_with_kills(rig, comments=60, kills=1, seed=4)
    record(
        "sigkill_1_of_2_workers_60_replies",
        restarts=0,
        faults=0,
        seconds=round(time.monotonic() - started, 1),
        **dataclasses.asdict(figures),
    )
    assert figures.duplicates == 0
    assert figures.missing == 0
    assert figures.actual == figures.expected
    assert figures.kills == 1
    # The kill really caught replies TikAPI had but Temporal did not, and their retries found them.
    assert figures.recovered > 0
