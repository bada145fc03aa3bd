"""The composition root: configure logging, connect to Temporal, register everything, run.

One process runs one Temporal worker per task queue: `tikflow` (the recipe workflows and the
built-in actions) and `tikflow.<provider>` for each provider's actions, so a provider's documented
quota can be enforced across every worker with Temporal's task-queue rate limit
(`TIKFLOW_<PROVIDER>_QUEUE_RPS`). All of them share one pooled HTTP client, one credential store
and one rate-limit tracker. Scale out by running more processes: Temporal hands each task to one.

Environment (all optional; `tikflow worker` needs nothing else to reach `localhost:7233`):

Temporal connection, read by Temporal's own `envconfig` (see `tikflow.connect`):
    `TEMPORAL_ADDRESS` (default `localhost:7233`), `TEMPORAL_NAMESPACE` (default `default`),
    `TEMPORAL_API_KEY`, `TEMPORAL_TLS` (`true` to force TLS), `TEMPORAL_TLS_CLIENT_CERT_PATH` /
    `TEMPORAL_TLS_CLIENT_KEY_PATH` (mTLS, e.g. Temporal Cloud), `TEMPORAL_TLS_SERVER_CA_CERT_PATH`,
    `TEMPORAL_TLS_SERVER_NAME`, `TEMPORAL_TLS_DISABLE_HOST_VERIFICATION` (and the `*_DATA` twins of
    the `*_PATH` variables), `TEMPORAL_PROFILE` / `TEMPORAL_CONFIG_FILE`, `TEMPORAL_GRPC_META_*`.

What runs where:
    `TIKFLOW_TASK_QUEUE`: the base task queue (default `tikflow`); providers get `<base>.<provider>`.
    `TIKFLOW_<PROVIDER>_URL`: a provider's base URL (default: the real service; see
        `activities.settings`), e.g. the sandbox's in a trial deployment.
    `TIKFLOW_HTTP_TIMEOUT`, `TIKFLOW_HTTP_MAX_CONNECTIONS`: the shared HTTP client.
    `TIKFLOW_CREDENTIALS`: the credentials file (default `.tikflow/credentials.json` when the
        current directory has `.tikflow/`, else the user config dir; see `activities.credentials`;
        `TIKFLOW_<PROVIDER>_<FIELD>` variables override it, `TIKFLOW_WEBHOOK_URL` and
        `TIKFLOW_WEBHOOK__<NAME>__URL` give webhook credentials), written when tokens rotate; the
        worker's first log line names it; `TIKFLOW_CREDENTIALS_SEED`: a
        read-only file under it (a Docker secret); `TIKFLOW_LEDGER`: the side-effect ledger
        (default beside the credentials file, which must then be writable).

Capacity and shutdown:
    `TIKFLOW_MAX_CONCURRENT_ACTIVITIES` (default 100 per task queue),
    `TIKFLOW_MAX_CONCURRENT_WORKFLOW_TASKS` (default 100), `TIKFLOW_MAX_CACHED_WORKFLOWS` (runs
    kept in memory, default 1000; keep it above the number of monitors a worker serves, or each
    evicted run replays its history at its next poll), `TIKFLOW_<PROVIDER>_QUEUE_RPS` (a
    provider queue's activities per second across all workers; each worker also spaces its own
    requests to that provider, per credential, to the same rate), `TIKFLOW_GRACEFUL_SHUTDOWN_S`
    (default 30: on SIGTERM, polling stops at once and running activities get this long to
    finish; any still running are then cancelled and Temporal retries them on another worker).

Operations:
    `TIKFLOW_HEALTH_FILE`: a file touched every `TIKFLOW_HEALTH_INTERVAL_S` seconds (default 10)
        while every worker polls, removed on shutdown (`deploy/healthcheck.py` checks its age).
    `TIKFLOW_HEALTH_PORT` (and `TIKFLOW_HEALTH_HOST`, default `0.0.0.0`): an HTTP endpoint that
        answers any GET with 200 while every worker polls, 503 otherwise (for Kubernetes probes).
    `TIKFLOW_METRICS_ADDRESS`: `host:port` where the Temporal SDK serves Prometheus metrics at
        `/metrics` (e.g. `0.0.0.0:9464`); unset, no metrics endpoint.
    `TIKFLOW_LOG_JSON`: `1` for JSON logs, `0` for the console renderer (default: JSON unless a TTY).
    `TIKFLOW_GC_THRESHOLD`: the garbage collector's thresholds for a worker process, three
        integers (default `20000,20,20`; `python` keeps Python's own `700,10,10`); see `tune_gc`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import structlog
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.http import make_http_client
from activities.ratelimit import Quota, RateLimiter
from activities.registry import Services
from activities.runner import ProviderActivities
from activities.settings import PROVIDERS, Settings
from tikflow.connect import connect, task_queue
from workflows.recipe import RecipeWorkflow, workflow_runner

__all__ = [
    "Health",
    "build_runtime",
    "build_services",
    "build_workers",
    "main",
    "provider_quotas",
    "run_workers",
]

DEFAULT_CACHED_WORKFLOWS = 1000
"""Workflow runs a worker keeps in memory (the SDK's default; `TIKFLOW_MAX_CACHED_WORKFLOWS`)."""

log = structlog.get_logger("tikflow.worker")


def build_services(settings: Settings | None = None, env: Mapping[str, str] | None = None) -> Services:
    """The dependencies every action shares in this process."""
    from activities.credentials import CredentialStore

    settings = settings or Settings.from_env(env)
    return Services(
        http=make_http_client(settings),
        credentials=CredentialStore(env=env),
        settings=settings,
        limiter=RateLimiter(quotas=provider_quotas(env)),
    )


def provider_quotas(env: Mapping[str, str] | None = None) -> dict[str, Quota]:
    """`TIKFLOW_<PROVIDER>_QUEUE_RPS` as the in-process pace of each provider's requests.

    Temporal's task-queue limit is a token bucket: it lets a burst of a second's worth of
    activities through at once, and a provider counting a sliding second then answers 429 to the
    next burst (9% of requests at 10/s in `bench/ratelimit.py`). Spacing each worker's requests
    evenly at the same rate keeps a single worker under the quota; the queue limit still caps
    the total across workers.
    """
    env = os.environ if env is None else env
    quotas: dict[str, Quota] = {}
    for provider in PROVIDERS:
        rps = env.get(f"TIKFLOW_{provider.upper()}_QUEUE_RPS")
        if rps and float(rps) > 0:
            quotas[provider] = Quota(requests=1, per_seconds=1 / float(rps))
    return quotas


#: `gc.set_threshold` of a worker process (`TIKFLOW_GC_THRESHOLD`).
DEFAULT_GC_THRESHOLD = (20_000, 20, 20)


class WorkerConfigError(ValueError):
    """A worker setting from the environment that cannot be used (the message names it)."""


def tune_gc(env: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """Fit Python's garbage collector to a long-running worker; returns the thresholds set.

    A worker keeps every cached run in memory (hundreds of MiB at 1,000 monitors), and a full
    collection walks all of it while the event loop, and so every workflow task, waits. With
    Python's thresholds (700, 10, 10) the monitors benchmark saw 11 full collections in 10
    minutes, pauses of up to 1.3 s and 20.6 s in the collector; with the default here, none in 10
    minutes, the longest pause 0.3 s and 6.4 s in all, for ~100 MiB more peak RSS
    (`bench/monitors.py`). Objects that exist
    when it is called (modules, classes: the worker's code) are frozen out of every collection.
    Call it once per worker process, before the workers start (`tikflow worker` and `tikflow
    dev` do).

    Raises:
        WorkerConfigError: `TIKFLOW_GC_THRESHOLD` is not `python` or three positive integers.
    """
    env = os.environ if env is None else env
    value = env.get("TIKFLOW_GC_THRESHOLD", "").strip()
    if value.lower() == "python":
        return gc.get_threshold()
    threshold = DEFAULT_GC_THRESHOLD
    if value:
        parts = value.replace(" ", "").split(",")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise WorkerConfigError(
                f"TIKFLOW_GC_THRESHOLD={value!r}: expected three positive integers like "
                f"{','.join(map(str, DEFAULT_GC_THRESHOLD))}, or 'python'"
            )
        threshold = (int(parts[0]), int(parts[1]), int(parts[2]))
    gc.collect()
    gc.freeze()
    gc.set_threshold(*threshold)
    return threshold


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    return int(value) if value else default


def build_runtime(env: Mapping[str, str] | None = None) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics at `TIKFLOW_METRICS_ADDRESS`, if it is set.

    The metrics are the SDK's own (poll latencies, task slots in use, activity and workflow task
    outcomes), labelled by namespace and task queue, so a dashboard shows whether workers keep up.
    """
    env = os.environ if env is None else env
    address = env.get("TIKFLOW_METRICS_ADDRESS")
    if not address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


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
            # Runs kept in memory between their tasks; one evicted replays its whole history next time.
            max_cached_workflows=_env_int(env, "TIKFLOW_MAX_CACHED_WORKFLOWS", DEFAULT_CACHED_WORKFLOWS),
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
    def from_env(cls, env: Mapping[str, str] | None = None) -> Health:
        """Read the `TIKFLOW_HEALTH_*` variables (see the module docstring)."""
        env = os.environ if env is None else env
        file = env.get("TIKFLOW_HEALTH_FILE")
        port = env.get("TIKFLOW_HEALTH_PORT")
        return cls(
            file=Path(file) if file else None,
            port=int(port) if port else None,
            host=env.get("TIKFLOW_HEALTH_HOST") or "0.0.0.0",
            interval_s=float(env.get("TIKFLOW_HEALTH_INTERVAL_S") or 10),
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
    base_queue: str | None = None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    health: Health | None = None,
) -> None:
    """Run all workers until `stop` is set (or forever), then shut down gracefully.

    Shutdown stops every worker's polling at once and gives running activities the graceful
    timeout to finish, all workers in parallel (one after another, the wait would multiply by the
    number of task queues and outlast the orchestrator's kill deadline).
    """
    stop = stop or asyncio.Event()
    workers = build_workers(client, services, base_queue=base_queue)
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
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("worker stopping: finishing running activities")
        started = time.monotonic()
        await asyncio.gather(*(worker.shutdown() for worker in workers))
        log.info("worker stopped", seconds=round(time.monotonic() - started, 3))


async def _main() -> None:
    from activities.credentials import path_origin

    services = build_services()
    # First, so an operator sees which store (and so which keys) this worker uses before anything fails.
    log.info(
        "worker starting",
        credentials_file=str(services.credentials.path),
        credentials_file_from=path_origin(),
        credentials_seed_file=str(services.credentials.seed) if services.credentials.seed else None,
    )
    client = await connect(runtime=build_runtime())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_workers(client, services, stop=stop, health=Health.from_env())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker from the environment until SIGTERM/SIGINT."""
    from tikflow.logging import configure_logging

    del argv
    json_env = os.environ.get("TIKFLOW_LOG_JSON")
    configure_logging(json=None if json_env is None else json_env not in ("0", "false", ""))
    try:
        tune_gc()
    except WorkerConfigError as exc:
        print(f"tikflow worker: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
