"""The composition root: configure logging, connect to Temporal, register everything, run.

One process runs one Temporal worker per task queue: `tikflow` (the recipe workflows and the
built-in actions) and `tikflow.<provider>` for each provider's actions, so a provider's documented
quota can be enforced across every worker with Temporal's task-queue rate limit
(`TIKFLOW_<PROVIDER>_QUEUE_RPS`). All of them share one pooled HTTP client, one credential store
and one rate-limit tracker.

Environment: `TEMPORAL_ADDRESS`/`TEMPORAL_NAMESPACE`/`TEMPORAL_TLS_*` (Temporal's standard
variables), `TIKFLOW_TASK_QUEUE`, `TIKFLOW_<PROVIDER>_URL`, `TIKFLOW_CREDENTIALS`,
`TIKFLOW_MAX_CONCURRENT_ACTIVITIES`, `TIKFLOW_MAX_CONCURRENT_WORKFLOW_TASKS`,
`TIKFLOW_<PROVIDER>_QUEUE_RPS`, `TIKFLOW_GRACEFUL_SHUTDOWN_S`, `TIKFLOW_LOG_JSON`.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities.http import make_http_client
from activities.ratelimit import RateLimiter
from activities.registry import Services
from activities.runner import ProviderActivities
from tikflow.connect import connect, task_queue
from tikflow.settings import PROVIDERS, Settings
from workflows.recipe import RecipeWorkflow, workflow_runner

__all__ = ["build_services", "build_workers", "main", "run_workers"]

log = structlog.get_logger("tikflow.worker")


def build_services(settings: Settings | None = None, env: Mapping[str, str] | None = None) -> Services:
    """The dependencies every action shares in this process."""
    from tikflow.credentials import CredentialStore

    settings = settings or Settings.from_env(env)
    return Services(
        http=make_http_client(settings),
        credentials=CredentialStore(env=env),
        settings=settings,
        limiter=RateLimiter(),
    )


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    return int(value) if value else default


def build_workers(
    client: Client,
    services: Services,
    *,
    base_queue: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[Worker]:
    """One `Worker` per task queue: workflows + built-ins on the base queue, one per provider."""
    env = os.environ if env is None else env
    base = base_queue or task_queue()
    grouped = ProviderActivities(services).activities(base)
    max_activities = _env_int(env, "TIKFLOW_MAX_CONCURRENT_ACTIVITIES", 100)
    graceful = timedelta(seconds=_env_int(env, "TIKFLOW_GRACEFUL_SHUTDOWN_S", 30))
    workers = [
        Worker(
            client,
            task_queue=base,
            workflows=[RecipeWorkflow],
            workflow_runner=workflow_runner(),
            activities=grouped.pop(base),
            max_concurrent_activities=max_activities,
            max_concurrent_workflow_tasks=_env_int(env, "TIKFLOW_MAX_CONCURRENT_WORKFLOW_TASKS", 100),
            graceful_shutdown_timeout=graceful,
        )
    ]
    for queue, activities in sorted(grouped.items()):
        provider = queue.rsplit(".", 1)[-1]
        rps = env.get(f"TIKFLOW_{provider.upper()}_QUEUE_RPS")
        workers.append(
            Worker(
                client,
                task_queue=queue,
                activities=activities,
                max_concurrent_activities=max_activities,
                max_task_queue_activities_per_second=float(rps) if rps else None,
                graceful_shutdown_timeout=graceful,
            )
        )
    return workers


async def run_workers(
    client: Client,
    services: Services,
    *,
    base_queue: str | None = None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run all workers until `stop` is set (or forever), then shut down gracefully."""
    stop = stop or asyncio.Event()
    workers = build_workers(client, services, base_queue=base_queue)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(services.http.aclose)
        for worker in workers:
            await stack.enter_async_context(worker)
        log.info("worker started", task_queues=[w.task_queue for w in workers], providers=list(PROVIDERS))
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("worker stopping: finishing running activities")


async def _main() -> None:
    client = await connect()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_workers(client, build_services(), stop=stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker from the environment until SIGTERM/SIGINT."""
    from tikflow.logging import configure_logging

    del argv
    json_env = os.environ.get("TIKFLOW_LOG_JSON")
    configure_logging(json=None if json_env is None else json_env not in ("0", "false", ""))
    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
