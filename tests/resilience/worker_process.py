"""A tikflow worker as a process of its own, pointed at a test's sandbox, for tests that SIGKILL it.

    TEMPORAL_ADDRESS=… TIKFLOW_TASK_QUEUE=… TIKFLOW_SANDBOX_URL=… TIKFLOW_CREDENTIALS=… \\
        python -m tests.resilience.worker_process

It runs `worker.run_workers` exactly as the real worker does (same services, same task queues);
only the provider base URLs come from the sandbox's URL. It prints `worker started` once it polls.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from activities.http import make_http_client
from activities.ratelimit import RateLimiter
from activities.registry import Services
from tikflow.connect import connect
from tikflow.credentials import CredentialStore
from tikflow.logging import configure_logging
from tikflow.sandbox.server import provider_base_urls
from tikflow.settings import Settings
from worker import run_workers


def sandbox_services(base: str, credentials_path: Path) -> Services:
    """A worker's services with every provider pointed at the sandbox at `base`."""
    settings = Settings(base_urls=provider_base_urls(base))
    return Services(
        http=make_http_client(settings),
        credentials=CredentialStore(credentials_path, env={}),
        settings=settings,
        limiter=RateLimiter(),
    )


async def main() -> None:
    client = await connect(target_host=os.environ["TEMPORAL_ADDRESS"])
    services = sandbox_services(os.environ["TIKFLOW_SANDBOX_URL"], Path(os.environ["TIKFLOW_CREDENTIALS"]))
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
