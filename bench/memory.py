"""Memory per cached monitor: what one `hashtag-reply` monitor costs the worker between its polls.

N monitors (default 1,000; `--quick` 200; `BENCH_MONITORS`) start with `every: 1h`, so after
their first poll each sleeps in the worker's cache and nothing else runs. Figures: the worker's
RSS growth per monitor, and (tracemalloc, started before the first monitor) the Python memory
still allocated per monitor, by the source file that allocated it, largest first: where the
cost of a cached run is (the workflow sandbox's per-run module state, the run's own state).
Compare with `reads: activity` by `BENCH_READS=activity`. Not part of `python -m bench`'s
default list (tracemalloc slows the worker); `python -m bench.memory [--quick]` runs it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc
import uuid
from typing import Any

from bench.common import ROOT, current_rss_mib, engine, machine, run_main
from bench.monitors import INPUTS, RECIPE_FILE, recipe_text

TOP = 15


def _short(filename: str) -> str:
    for prefix in (str(ROOT) + "/", "site-packages/"):
        if prefix in filename:
            return filename.split(prefix, 1)[1]
    return filename


async def main(quick: bool = False) -> dict[str, Any]:
    """Start N hourly monitors, wait for every first poll, then measure what stays allocated."""
    from tikflow.loader import load_recipe_text
    from tikflow.runs import start_recipe

    monitors = int(os.environ.get("BENCH_MONITORS", 200 if quick else 1000))
    reads = os.environ.get("BENCH_READS", "local")
    text = recipe_text().replace("every: 30s}", f"every: 1h, reads: {reads}}}")
    loaded = load_recipe_text(text, str(RECIPE_FILE))
    async with engine() as eng:
        gc.collect()
        rss_before = current_rss_mib()
        tracemalloc.start(1)
        base = tracemalloc.take_snapshot()
        requests_before = _tikapi_requests(eng)
        for i in range(monitors):
            await start_recipe(
                eng.client,
                loaded,
                {**INPUTS, "hashtag": "cats"},
                task_queue=eng.task_queue,
                workflow_id=f"mem-{i:04d}-{uuid.uuid4().hex[:6]}",
            )
        # Every monitor's first poll makes at least two requests; then all of them sleep.
        for _ in range(600):
            if _tikapi_requests(eng) - requests_before >= 2 * monitors:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(3)  # the last workflow tasks complete
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        rss_after = current_rss_mib()
        tracemalloc.stop()
        stats = snapshot.compare_to(base, "filename")
    traced = sum(s.size_diff for s in stats)
    by_file = [
        {"file": _short(s.traceback[0].filename), "kib_per_monitor": round(s.size_diff / monitors / 1024, 1)}
        for s in stats[:TOP]
    ]
    return {
        "benchmark": "memory",
        "quick": quick,
        "monitors": monitors,
        "reads": reads,
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "rss_per_monitor_kib": round((rss_after - rss_before) * 1024 / monitors, 1),
        "traced_per_monitor_kib": round(traced / monitors / 1024, 1),
        "top_files": by_file,
        "machine": machine(),
    }


def _tikapi_requests(eng: Any) -> int:
    return sum(n for k, n in eng.emulator.state()["requests"].items() if k.startswith("tikapi "))


if __name__ == "__main__":
    run_main(main)
