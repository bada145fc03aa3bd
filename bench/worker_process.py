"""A further worker process for a benchmark (`engine(worker_processes=N)`, `BENCH_WORKERS=N`).

Built as the benchmark's own worker is (`bench.common._build_workers`: `worker.build_workers` with
the hand-written baselines registered beside `RecipeWorkflow`), against the same dev server, task
queue, sandbox and credentials file, which the parent passes in `BENCH_WORKER_*` variables. It
touches the file `BENCH_WORKER_READY` once its workers poll and runs until SIGTERM, then shuts
them down. Temporal hands each workflow task to one of the processes polling the queue; a run
stays on the process that has it cached (its sticky queue) while that process keeps up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path


async def main() -> None:
    """Run the workers until SIGTERM."""
    from activities.config import EngineConfig
    from activities.credentials import CredentialStore
    from activities.ratelimit import RateLimiter
    from bench.baseline import MonitorBaseline
    from bench.common import _build_workers
    from tests.support.emulator import emulator_services
    from tikflow.connect import connect
    from tikflow.worker import provider_quotas, tune_gc

    env = os.environ
    config = EngineConfig.from_env(env)
    tune_gc(config)
    url = env["BENCH_WORKER_EMULATOR"]
    store = CredentialStore(Path(env["BENCH_WORKER_HOME"]) / "credentials.json", env={})
    limiter = RateLimiter(quotas=provider_quotas(config), local_share=1 / config.quota_workers)
    services = emulator_services(url, store, limiter=limiter)
    client = await connect(target_host=env["BENCH_WORKER_ADDRESS"], namespace="default")
    workers = _build_workers(client, services, env["BENCH_WORKER_QUEUE"], config, [MonitorBaseline], [])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with contextlib.AsyncExitStack() as running:
        running.push_async_callback(services.http.aclose)
        for worker in workers:
            await running.enter_async_context(worker)
        _mark_ready(Path(env["BENCH_WORKER_READY"]))
        await stop.wait()
        await asyncio.gather(*(worker.shutdown() for worker in workers))


def _mark_ready(path: Path) -> None:
    # A local file, once at start: too quick to be worth a thread.
    path.touch()


if __name__ == "__main__":
    from tikflow.logging import configure_logging

    configure_logging(json=False, level="WARNING")
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # as bench.common.run_main: a Temporal client aborts at finalization
