"""Rate-limit efficiency: 20 recipes share one TikAPI credential whose sandbox quota is 10 requests/s.

Each recipe lists comments (`tikapi.comments`, one request per call) as fast as it can, two calls
at a time: together they ask for far more than the quota. Over a steady window the sandbox counts
what it answered:
- achieved share: requests answered 200 per second, against the quota (10/s), the ceiling;
- 429s: requests refused for the quota, as a share of all requests.

tikflow is configured as a deployment would be for a provider with a known per-second quota:
`TIKFLOW_TIKAPI_QUEUE_RPS` set to the quota (Temporal's task-queue rate limit across workers, and
each worker's own pacing of its requests). `--mode` measures the alternatives for comparison:
`queue_rps_unpaced` (the task-queue limit alone, as tikflow did before this benchmark),
`limiter` (in-process pacing alone) and `reactive` (nothing configured: only 429s slow it down).

Goal (issue 6): at least 90% of the quota used, under 1% of requests answered 429.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any

from bench.common import engine, machine, run_main

RECIPES = 20
QUOTA_RPS = 10
GOAL_SHARE = 0.90
GOAL_429 = 0.01

RECIPE = """\
recipe: bench-ratelimit
description: List comments again and again, two calls at a time.
inputs:
  calls: {type: list, description: One item per call.}
  video: {type: string, description: The video whose comments are listed.}
steps:
  - id: lists
    for_each: "{{ inputs.calls }}"
    as: n
    concurrency: 2
    steps:
      - call: tikapi.comments
        with: {media_id: "{{ inputs.video }}", count: 5}
"""


#: `--mode two_workers_local`: the same calls as the reads of a monitor's poll, so local
#: activities (`reads: local`, the default), on two worker processes that each pace their local
#: calls to half the quota (`TIKFLOW_QUOTA_WORKERS=2`); Temporal's queue limit does not see them.
MONITOR_RECIPE = RECIPE.replace("steps:\n", "trigger: {poll: {every: 10m, max_polls: 1}}\nsteps:\n", 1)


def _mode(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--mode" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--mode="):
            return arg.split("=", 1)[1]
    return "queue_rps"


def _counts(state: dict[str, Any]) -> tuple[int, int]:
    statuses = state["statuses"]
    return statuses.get("tikapi 200", 0), statuses.get("tikapi 429", 0)


async def measure(mode: str, warmup_s: float, window_s: float) -> dict[str, Any]:
    from activities.ratelimit import Quota
    from tikflow.loader import load_recipe_text
    from tikflow.runs import start_recipe

    queue_limited = mode in ("queue_rps", "queue_rps_unpaced", "two_workers_local")
    worker_env = {"TIKFLOW_TIKAPI_QUEUE_RPS": str(QUOTA_RPS)} if queue_limited else {}
    if mode == "two_workers_local":
        worker_env["TIKFLOW_QUOTA_WORKERS"] = "2"
    quotas: dict[str, Quota] | None = {
        "queue_rps": None,  # what the worker derives from the variable
        "queue_rps_unpaced": {},  # the task-queue limit alone (tikflow before the bench)
        "limiter": {"tikapi": Quota(QUOTA_RPS, 1.0)},
        "reactive": {},
        "two_workers_local": None,
    }[mode]
    async with engine(
        emulator_config={"tikapi_per_second": QUOTA_RPS}, worker_env=worker_env, quotas=quotas
    ) as eng:
        video = eng.emulator.state()["tikapi"]["videos"][0]["id"]
        second = await _second_worker(eng, worker_env) if mode == "two_workers_local" else None
        try:
            recipe = MONITOR_RECIPE if mode == "two_workers_local" else RECIPE
            loaded = load_recipe_text(recipe, "bench-ratelimit.yaml")
            # More calls than the window can serve, so no recipe finishes while it is measured.
            calls = list(range(int(QUOTA_RPS * (warmup_s + window_s) * 2 / RECIPES) + 10))
            handles = []
            for _ in range(RECIPES):
                _, handle = await start_recipe(
                    eng.client,
                    loaded,
                    {"calls": calls, "video": video},
                    task_queue=eng.task_queue,
                    workflow_id=f"rl-{uuid.uuid4().hex[:8]}",
                )
                handles.append(handle)
            await asyncio.sleep(warmup_s)
            ok_before, refused_before = _counts(eng.emulator.state())
            started = time.monotonic()
            await asyncio.sleep(window_s)
            ok_after, refused_after = _counts(eng.emulator.state())
            elapsed = time.monotonic() - started
            for handle in handles:
                assert handle is not None
                await handle.terminate("benchmark window over")
        finally:
            if second is not None:
                second.kill()  # also when the measurement fails: no worker outlives the bench
    ok, refused = ok_after - ok_before, refused_after - refused_before
    rps = ok / elapsed
    share = rps / QUOTA_RPS
    refused_share = refused / max(ok + refused, 1)
    return {
        "mode": mode,
        "window_s": round(elapsed, 1),
        "answered_200": ok,
        "answered_429": refused,
        "achieved_rps": round(rps, 2),
        "quota_share": round(share, 3),
        "share_429": round(refused_share, 4),
        "goal_met": share >= GOAL_SHARE and refused_share < GOAL_429,
    }


async def _second_worker(eng: Any, worker_env: dict[str, str]) -> Any:
    """A second worker process on the engine's queue, paced like the first (its share of the quota)."""
    from tests.resilience.conftest import WorkerProcess

    process = WorkerProcess.start(
        address=str(eng.client.service_client.config.target_host),
        task_queue=eng.task_queue,
        emulator=eng.emulator_url,
        credentials=eng.home / "credentials.json",
        extra_env=worker_env,
    )
    await process.ready()
    return process


async def main(quick: bool = False) -> dict[str, Any]:
    mode = _mode(sys.argv[1:])
    warmup_s, window_s = (10.0, 30.0) if quick else (15.0, 90.0)
    result = await measure(mode, warmup_s, window_s)
    return {
        "benchmark": "ratelimit",
        "quick": quick,
        "recipes": RECIPES,
        "quota_rps": QUOTA_RPS,
        **result,
        "goal": f"quota share >= {GOAL_SHARE:.0%}, 429s < {GOAL_429:.0%}",
        "machine": machine(),
    }


if __name__ == "__main__":
    run_main(main)
