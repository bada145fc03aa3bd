"""The composition root: configure logging, connect to Temporal, register everything, run.

One process runs one Temporal worker per task queue: `tikflow` (the recipe workflows and the
built-in actions) and `tikflow.<provider>` for each provider's actions, so a provider's documented
quota can be enforced across every worker with Temporal's task-queue rate limit
(`TIKFLOW_<PROVIDER>_QUEUE_RPS`). All of them share one pooled HTTP client, one credential store
and one rate-limit tracker. Scale out by running more processes: Temporal hands each task to one.

Configuration comes from the environment, parsed once by `activities.config.EngineConfig` in
`main` and passed down (all optional; `tikflow worker` needs nothing else to reach
`localhost:7233`). The fields of `EngineConfig` document every variable: the Temporal connection
(`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS_CLIENT_CERT_PATH` /
`TEMPORAL_TLS_CLIENT_KEY_PATH` and the rest, read by Temporal's own `envconfig`, see
`tikflow.connect`), what runs where (`TIKFLOW_TASK_QUEUE`, `TIKFLOW_<PROVIDER>_URL`, the HTTP
client's tunables, the credentials file, its seed and the side-effect ledger), capacity and
shutdown (`TIKFLOW_<PROVIDER>_QUEUE_RPS`, the concurrency and cache limits, the graceful shutdown,
the garbage collector) and operations (health file and endpoint, metrics, JSON logs). Credentials
given as `TIKFLOW_<PROVIDER>_<FIELD>` variables are credential data, read by the credential store
(the `activities.config` docstring says why). A value that cannot be used ends `tikflow worker` with
a one-line message naming the variable and exit code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import structlog
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.config import ConfigError, EngineConfig
from activities.dryrun import DryRun
from activities.http import make_http_client
from activities.ratelimit import Quota, RateLimiter
from activities.registry import Services
from activities.runner import ProviderActivities
from activities.settings import PROVIDERS
from tikflow.connect import connect
from workflows.events import event_workflows
from workflows.links import LinkUsedWorkflow
from workflows.pacing import AccountPacerWorkflow
from workflows.recipe import RecipeWorkflow, workflow_runner

__all__ = [
    "Health",
    "build_runtime",
    "build_services",
    "build_workers",
    "cache_warning",
    "main",
    "provider_quotas",
    "run_workers",
]

log = structlog.get_logger("tikflow.worker")


def build_services(config: EngineConfig) -> Services:
    """The dependencies every action shares in this process."""
    from activities.credentials import CredentialStore, resolve_path
    from activities.ledger import EffectLedger

    settings = config.settings()
    path, _ = resolve_path(config.credentials_file)
    return Services(
        http=make_http_client(settings),
        credentials=CredentialStore(path, seed=config.credentials_seed),
        settings=settings,
        limiter=RateLimiter(quotas=provider_quotas(config), local_share=1 / config.quota_workers),
        ledger=EffectLedger(config.ledger_file or path.with_name("effects.json")),
    )


def provider_quotas(config: EngineConfig) -> dict[str, Quota]:
    """`TIKFLOW_<PROVIDER>_QUEUE_RPS` as the in-process pace of each provider's requests.

    Temporal's task-queue limit is a token bucket: it lets a burst of a second's worth of
    activities through at once, and a provider counting a sliding second then answers 429 to the
    next burst (9% of requests at 10/s in `bench/ratelimit.py`). Spacing each worker's requests
    evenly at the same rate keeps a single worker under the quota; the queue limit still caps
    the total across workers.
    """
    return {
        provider: Quota(requests=1, per_seconds=1 / rps)
        for provider, rps in config.queue_rps.items()
        if rps > 0
    }


def tune_gc(config: EngineConfig) -> tuple[int, int, int]:
    """Fit Python's garbage collector to a long-running worker; returns the thresholds set.

    A worker keeps every cached run in memory (hundreds of MiB at 1,000 monitors), and a full
    collection walks all of it while the event loop, and so every workflow task, waits. With
    Python's thresholds (700, 10, 10) the monitors benchmark saw 11 full collections in 10
    minutes, pauses of up to 1.3 s and 20.6 s in the collector; with the default here, none in 10
    minutes, the longest pause 0.3 s and 6.4 s in all, for ~100 MiB more peak RSS
    (`bench/monitors.py`). Objects that exist
    when it is called (modules, classes: the worker's code) are frozen out of every collection.
    Call it once per worker process, before the workers start (`tikflow worker` and `tikflow
    dev` do), with the thresholds of `config.gc_threshold` (`TIKFLOW_GC_THRESHOLD`).
    """
    threshold = config.gc_threshold
    if threshold == "python":
        return gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*threshold)
    return threshold


def build_runtime(config: EngineConfig) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics at `TIKFLOW_METRICS_ADDRESS`, if it is set.

    The metrics are the SDK's own (poll latencies, task slots in use, activity and workflow task
    outcomes), labelled by namespace and task queue, so a dashboard shows whether workers keep up.
    """
    if not config.metrics_address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=config.metrics_address)))


def build_workers(
    client: Client,
    services: Services,
    *,
    config: EngineConfig | None = None,
    base_queue: str | None = None,
    dry_run: DryRun | None = None,
    activities: ProviderActivities | None = None,
) -> list[Worker]:
    """One `Worker` per task queue: workflows + built-ins on the base queue, one per provider.

    Args:
        client: The Temporal client.
        services: What the actions share.
        config: Limits and queue names (default: `EngineConfig()`'s defaults).
        base_queue: The base task queue instead of `config.task_queue`.
        dry_run: Hold back every side effect there (`tikflow run --dry-run`).
        activities: The actions' activities instead of `ProviderActivities(services, dry_run=...)`
            (`tikflow test` answers them with canned results).
    """
    config = config or EngineConfig()
    base = base_queue or config.task_queue
    actions = activities or ProviderActivities(services, dry_run=dry_run)
    grouped = actions.activities(base)
    # Read calls may run as local activities of the workflow's worker: every action is registered
    # there too (a local activity never leaves the worker, so no task queue routes it).
    local = [act for queue, on_queue in sorted(grouped.items()) if queue != base for act in on_queue]
    max_activities = config.max_concurrent_activities
    graceful = timedelta(seconds=config.graceful_shutdown_s)
    workers = [
        Worker(
            client,
            task_queue=base,
            workflows=[RecipeWorkflow, *event_workflows(), LinkUsedWorkflow, AccountPacerWorkflow],
            workflow_runner=workflow_runner(),
            activities=[*grouped.pop(base), *local],
            max_concurrent_activities=max_activities,
            max_concurrent_workflow_tasks=config.max_concurrent_workflow_tasks,
            # Runs kept in memory between their tasks; one evicted replays its whole history next time.
            max_cached_workflows=config.max_cached_workflows,
            graceful_shutdown_timeout=graceful,
        )
    ]
    if config.pacer_queue != base:
        # The account pacers: one queue for the namespace, served by every worker (`workflows.pacing`).
        workers.append(
            Worker(
                client,
                task_queue=config.pacer_queue,
                workflows=[AccountPacerWorkflow],
                workflow_runner=workflow_runner(),
                max_concurrent_workflow_tasks=config.max_concurrent_workflow_tasks,
                graceful_shutdown_timeout=graceful,
            )
        )
    for queue, on_queue in sorted(grouped.items()):
        provider = queue.rsplit(".", 1)[-1]
        workers.append(
            Worker(
                client,
                task_queue=queue,
                activities=on_queue,
                max_concurrent_activities=max_activities,
                max_task_queue_activities_per_second=config.queue_rps.get(provider),
                graceful_shutdown_timeout=graceful,
            )
        )
    return workers


async def cache_warning(client: Client, config: EngineConfig, base_queue: str | None = None) -> str | None:
    """A one-line warning when this worker may serve more recipe runs than its workflow cache holds.

    A run the cache cannot hold is evicted and replays its whole history at its next workflow
    task: 2,000 monitors on one worker caching 1,000 served 9.6 of their 33.3 polls/s, 27.6 with
    all cached (bench/monitors.py). Counts the running `RecipeWorkflow`s of the task queue (one
    visibility count), shared among `TIKFLOW_QUOTA_WORKERS` worker processes. None when they fit,
    or when the count cannot be had (visibility is an aid here, never a reason not to start).
    """
    queue = base_queue or config.task_queue
    query = f"WorkflowType = 'RecipeWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '{queue}'"
    try:
        running = (await client.count_workflows(query)).count
    except RPCError as exc:
        log.debug("running recipe runs not counted", error=str(exc))
        return None
    workers = max(1, config.quota_workers)
    share = math.ceil(running / workers)
    if share <= config.max_cached_workflows:
        return None
    among = f" among {workers} workers (TIKFLOW_QUOTA_WORKERS)" if workers > 1 else ""
    return (
        f"{running} recipe runs are running on task queue {queue!r}{among}, more than this worker's "
        f"workflow cache holds (TIKFLOW_MAX_CACHED_WORKFLOWS={config.max_cached_workflows}): evicted runs "
        f"replay their history at each poll; set TIKFLOW_MAX_CACHED_WORKFLOWS to at least {share} "
        "or run more workers"
    )


async def _warn_if_cache_too_small(client: Client, config: EngineConfig, base_queue: str | None) -> None:
    try:
        warning = await cache_warning(client, config, base_queue)
    except Exception as exc:  # an advisory check: whatever it meets, the worker runs on
        log.debug("running recipe runs not counted", error=str(exc))
        return
    if warning is not None:
        log.warning(warning)


@dataclass(frozen=True)
class Health:
    """How this process tells an orchestrator that its workers poll.

    Attributes:
        file: Touched every `interval_s` while all workers run, removed when they stop
            (Docker's HEALTHCHECK reads its age: no port needed, so replicas scale freely).
        port: Serve `200 ok` / `503 stopping` over HTTP here (Kubernetes probes); None = no server.
        host: Address the HTTP endpoint binds.
        interval_s: Seconds between touches of `file`.
    """

    file: Path | None = None
    port: int | None = None
    host: str = "0.0.0.0"
    interval_s: float = 10.0

    @classmethod
    def from_config(cls, config: EngineConfig) -> Health:
        """The `TIKFLOW_HEALTH_*` settings of `config`."""
        return cls(
            file=config.health_file,
            port=config.health_port,
            host=config.health_host,
            interval_s=config.health_interval_s,
        )

    @contextlib.asynccontextmanager
    async def reporting(self, workers: Sequence[Worker], stop: asyncio.Event) -> AsyncIterator[None]:
        """Report health while the block runs; from `stop` on (shutdown) report unhealthy."""

        def healthy() -> bool:
            return not stop.is_set() and all(worker.is_running for worker in workers)

        async with AsyncExitStack() as stack:
            if self.file is not None:
                task = asyncio.create_task(self._touch_file(self.file, healthy, stop))
                stack.callback(self._remove_file, self.file)
                stack.push_async_callback(_cancelled, task)
            if self.port is not None:
                server = await asyncio.start_server(
                    lambda reader, writer: self._answer(reader, writer, healthy), self.host, self.port
                )
                stack.push_async_callback(server.wait_closed)
                stack.callback(server.close)
            yield

    async def _touch_file(self, path: Path, healthy: Callable[[], bool], stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._mark(path, healthy())
            # Waking on `stop` removes the file at once, so the orchestrator sees the drain begin.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
        self._remove_file(path)

    @staticmethod
    def _mark(path: Path, healthy: bool) -> None:
        # A local file's mtime: too quick to be worth a thread.
        if healthy:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:
            path.unlink(missing_ok=True)

    @staticmethod
    def _remove_file(path: Path) -> None:
        path.unlink(missing_ok=True)

    @staticmethod
    async def _answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, healthy: Callable[[], bool]
    ) -> None:
        try:
            # Only the request line matters; headers are drained so the client sees a clean reply.
            with contextlib.suppress(TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            status, body = ("200 OK", b"ok\n") if healthy() else ("503 Service Unavailable", b"stopping\n")
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run_workers(
    client: Client,
    services: Services,
    *,
    config: EngineConfig | None = None,
    base_queue: str | None = None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    health: Health | None = None,
    dry_run: DryRun | None = None,
    activities: ProviderActivities | None = None,
) -> None:
    """Run all workers until `stop` is set (or forever), then shut down gracefully.

    Shutdown stops every worker's polling at once and gives running activities the graceful
    timeout to finish, all workers in parallel (one after another, the wait would multiply by the
    number of task queues and outlast the orchestrator's kill deadline). `config` and
    `base_queue`, `dry_run` and `activities` are `build_workers`'.
    """
    stop = stop or asyncio.Event()
    workers = build_workers(
        client, services, config=config, base_queue=base_queue, dry_run=dry_run, activities=activities
    )
    async with AsyncExitStack() as stack:
        stack.push_async_callback(services.http.aclose)
        for worker in workers:
            await stack.enter_async_context(worker)
        await stack.enter_async_context((health or Health()).reporting(workers, stop))
        log.info(
            "worker started",
            task_queues=[w.task_queue for w in workers],
            providers=list(PROVIDERS),
            credentials_file=str(services.credentials.path),
        )
        # In the background: a slow visibility store must not hold the start up.
        check = asyncio.create_task(_warn_if_cache_too_small(client, config or EngineConfig(), base_queue))
        stack.push_async_callback(_cancelled, check)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("worker stopping: finishing running activities")
        started = time.monotonic()
        await asyncio.gather(*(worker.shutdown() for worker in workers))
        log.info("worker stopped", seconds=round(time.monotonic() - started, 3))


async def _main(config: EngineConfig) -> None:
    from activities.credentials import resolve_path

    services = build_services(config)
    # First, so an operator sees which store (and so which keys) this worker uses before anything fails.
    log.info(
        "worker starting",
        credentials_file=str(services.credentials.path),
        credentials_file_from=resolve_path(config.credentials_file)[1],
        credentials_seed_file=str(services.credentials.seed) if services.credentials.seed else None,
    )
    client = await connect(runtime=build_runtime(config))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_workers(client, services, config=config, stop=stop, health=Health.from_config(config))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker from the environment until SIGTERM/SIGINT."""
    from tikflow.logging import configure_logging

    del argv
    try:
        config = EngineConfig.from_env()
    except ConfigError as exc:
        print(f"tikflow worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(json=config.log_json)
    tune_gc(config)
    asyncio.run(_main(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
