"""A tikflow worker as a process of its own, pointed at a test's sandbox, for tests that SIGKILL it.

    TEMPORAL_ADDRESS=… TIKFLOW_TASK_QUEUE=… TIKFLOW_SANDBOX_URL=… TIKFLOW_CREDENTIALS=… \\
        python -m tests.resilience.worker_process

It runs `worker.run_workers` exactly as the real worker does (same services, same task queues);
only the provider base URLs come from the sandbox's URL. It prints `worker started` once it polls.

`TIKFLOW_TEST_HOLD_S=N` makes every side-effecting action hold its result N seconds after the
provider answered, before Temporal hears of it: a worker killed then leaves effects that are done
but not recorded, the case the check-before-act path exists for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from pathlib import Path
from typing import Any

from activities.config import EngineConfig
from activities.ratelimit import RateLimiter
from activities.registry import ActionContext, load_actions
from tests.support.emulator import emulator_services
from tikflow.connect import connect
from tikflow.logging import configure_logging
from tikflow.worker import provider_quotas, run_workers


def hold_side_effects(seconds: float) -> None:
    """Delay the report of every side effect by `seconds` (see the module docstring)."""
    actions = load_actions()
    for name, act in list(actions.items()):
        if not act.side_effect:
            continue

        async def held(ctx: ActionContext, params: Any, _handler: Any = act.handler) -> Any:
            result = await _handler(ctx, params)
            await asyncio.sleep(seconds)
            return result

        actions[name] = dataclasses.replace(act, handler=held)


async def main() -> None:
    hold = float(os.environ.get("TIKFLOW_TEST_HOLD_S") or 0)
    if hold > 0:
        hold_side_effects(hold)
    client = await connect(target_host=os.environ["TEMPORAL_ADDRESS"])
    # Paced as `build_services` paces a real worker (`TIKFLOW_<PROVIDER>_QUEUE_RPS`, its share of
    # it with `TIKFLOW_QUOTA_WORKERS`); unpaced when neither is set, as before.
    config = EngineConfig.from_env(os.environ)
    limiter = RateLimiter(quotas=provider_quotas(config), local_share=1 / config.quota_workers)
    services = emulator_services(
        os.environ["TIKFLOW_SANDBOX_URL"], Path(os.environ["TIKFLOW_CREDENTIALS"]), limiter=limiter
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_workers(client, services, base_queue=os.environ["TIKFLOW_TASK_QUEUE"], stop=stop, ready=ready)
    )
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if ready.is_set():
        print("worker started", flush=True)
    await task


if __name__ == "__main__":
    configure_logging(json=True, level="WARNING")
    asyncio.run(main())
