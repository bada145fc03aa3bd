"""What every engine benchmark shares: a fresh dev server, a sandbox process, a worker, the machine.

The sandbox runs in its own process, not in a thread of the benchmark: on a 2-core machine a
thread would share the worker's GIL, so provider latency would rise with worker load and the
benchmark would measure the sandbox as much as the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from tests.support.emulator import AdminClient

ROOT = Path(__file__).resolve().parent.parent

__all__ = [
    "Engine",
    "GcClock",
    "cores_used",
    "cpu_seconds",
    "emulator_process",
    "engine",
    "machine",
    "peak_rss_mib",
    "percentile",
]


def machine() -> dict[str, Any]:
    """Cores, RAM, Python and temporalio versions: what the figures were measured on."""
    from importlib.metadata import version

    mem_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def peak_rss_mib() -> float:
    """Peak resident memory of this process (the worker runs in it)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def process_peak_rss_mib(pid: int) -> float:
    """Peak resident memory of another (running) process, e.g. a further worker."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def current_rss_mib() -> float:
    """Resident memory of this process right now."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_seconds(workers: Sequence[int] = ()) -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process (`worker`) and by each of its
    child processes, by name: `temporal` (the dev server), the further worker processes `workers`
    (counted as `worker` with this one) and `sandbox` (the providers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    used: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended while we looked
        command = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid != me and ppid != me:
            continue
        name = "worker" if pid == me or pid in workers else "temporal" if command == "temporal" else "sandbox"
        used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return used


def cores_used(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Average cores each process used between two `cpu_seconds()` samples `seconds` apart."""
    return {name: round((after[name] - before.get(name, 0.0)) / seconds, 2) for name in sorted(after)}


class GcClock:
    """Time this process spends in Python's garbage collector (a pause of the worker's event loop).

    Use as `with GcClock() as gc_clock: ...`, then read `total_s`, `max_pause_ms`, `full_collections`.
    """

    def __init__(self) -> None:
        self.total_s = 0.0
        self.max_pause_ms = 0.0
        self.full_collections = 0
        self._began: float | None = None

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        if self._began is None:
            return
        pause = time.perf_counter() - self._began
        self._began = None
        self.total_s += pause
        self.max_pause_ms = max(self.max_pause_ms, pause * 1000)
        self.full_collections += info.get("generation") == 2

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@contextlib.contextmanager
def emulator_process(**config: Any) -> Iterator[str]:
    """The provider sandbox in a child process on a free port; yields its base URL.

    `config` fields are set through `POST /_admin/config` once it answers. Comments only arrive
    through `/_admin/tick` (interval 0), so every benchmark decides its own load.
    """
    from tikflow.devstack import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tikflow.emulator", "--port", str(port), "--comment-interval", "0"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_admin/config", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.05)
        if config:
            AdminClient(url, timeout=60).admin("config", config)
        yield url
    finally:
        stop_process(process, 10)


def stop_process(process: subprocess.Popen[Any], grace_s: float) -> None:
    """Terminate `process`, and kill it if it has not ended after `grace_s` seconds."""
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Engine:
    """A running dev server, emulator and worker for one benchmark."""

    client: Client
    emulator_url: str
    task_queue: str
    services: Any
    home: Path
    #: The further worker processes (`engine(worker_processes=N)`): N - 1 of them.
    worker_pids: tuple[int, ...] = ()

    @property
    def emulator(self) -> AdminClient:
        """The emulator's admin API."""
        return AdminClient(self.emulator_url, timeout=60)


@contextlib.asynccontextmanager
async def engine(
    *,
    emulator_config: Mapping[str, Any] | None = None,
    quotas: Mapping[str, Any] | None = None,
    extra_workflows: Sequence[type] = (),
    worker_env: Mapping[str, str] | None = None,
    activity_interceptors: Sequence[Any] = (),
    worker_processes: int = 1,
) -> AsyncIterator[Engine]:
    """A fresh Temporal dev server (as `tikflow dev` starts it), a sandbox and tikflow's workers.

    `quotas` replaces the in-process pacing the worker derives from `worker_env` (None: derive it).
    The workers are `worker.build_workers` exactly, with `extra_workflows` (the hand-written
    baselines) registered next to `RecipeWorkflow` on the base queue, so the interpreter and its
    baseline share one worker, one activity implementation and one HTTP pool. With
    `worker_processes` > 1, that many minus one further processes (`bench.worker_process`) poll
    the same queue with the same configuration, as a second `tikflow worker` would.
    """
    if worker_processes > 1 and (quotas is not None or activity_interceptors):
        raise ValueError("further worker processes take their pacing from the environment, no interceptors")
    from activities.config import EngineConfig
    from activities.credentials import CredentialStore
    from activities.ratelimit import RateLimiter
    from tests.support.emulator import emulator_services, store_emulator_credentials
    from tikflow.devstack import DevStack, free_port
    from tikflow.worker import provider_quotas, tune_gc

    config = EngineConfig.from_env({**os.environ, **dict(worker_env or {})})
    tune_gc(config)  # this process is the worker, as in `tikflow worker`
    with (
        tempfile.TemporaryDirectory(prefix="tikflow-bench-") as tmp,
        emulator_process(**dict(emulator_config or {})) as url,
    ):
        home = Path(tmp)
        store = store_emulator_credentials(CredentialStore(home / "credentials.json", env={}), url)
        services = emulator_services(
            url,
            store,
            # As `build_services` paces them (from `TIKFLOW_<PROVIDER>_QUEUE_RPS`), unless given.
            limiter=RateLimiter(
                quotas=provider_quotas(config) if quotas is None else dict(quotas),
                local_share=1 / config.quota_workers,
            ),
        )
        stack = DevStack(
            home=home,
            temporal_port=free_port(),
            ui_port=free_port(),
            sandbox_port=None,  # type: ignore[arg-type]  # ours runs in its own process
            with_worker=False,
        )
        async with stack:
            assert stack.client is not None
            queue = f"bench-{uuid.uuid4().hex[:8]}"
            workers = _build_workers(
                stack.client, services, queue, config, list(extra_workflows), list(activity_interceptors)
            )
            async with contextlib.AsyncExitStack() as running:
                running.push_async_callback(services.http.aclose)
                for w in workers:
                    await running.enter_async_context(w)
                pids: list[int] = []
                for _ in range(worker_processes - 1):
                    process = worker_process(
                        {**os.environ, **dict(worker_env or {})}, stack.address, queue, url, home
                    )
                    running.callback(stop_process, process, 30)
                    pids.append(process.pid)
                yield Engine(stack.client, url, queue, services, home, tuple(pids))


def worker_process(
    env: Mapping[str, str], address: str, queue: str, emulator_url: str, home: Path
) -> subprocess.Popen[bytes]:
    """A further worker process (`bench.worker_process`) on `queue`, returned once its workers poll."""
    ready = home / f"worker-{uuid.uuid4().hex[:8]}.ready"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.worker_process"],
        cwd=ROOT,
        env={
            **env,
            "BENCH_WORKER_ADDRESS": address,
            "BENCH_WORKER_QUEUE": queue,
            "BENCH_WORKER_EMULATOR": emulator_url,
            "BENCH_WORKER_HOME": str(home),
            "BENCH_WORKER_READY": str(ready),
        },
        # The SDK core logs to stdout; the benchmark's own stdout is its JSON result.
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process, 5)
            raise RuntimeError(f"a further worker process did not start (exit code {process.returncode})")
        time.sleep(0.05)  # setup, before any load: nothing else waits on this loop yet
    return process


def _build_workers(
    client: Client,
    services: Any,
    queue: str,
    config: Any,
    workflows: list[type],
    interceptors: list[Any],
) -> list[Worker]:
    """`worker.build_workers`, with the baselines and interceptors added as it creates each Worker.

    A Worker registers itself with the client when constructed, so it cannot be rebuilt from its
    config afterwards; patching the class `build_workers` instantiates keeps every option it sets
    (and any it sets in the future) without copying them here.
    """
    from tikflow import worker as worker_module

    class BenchWorker(Worker):
        def __init__(self, client: Client, **options: Any) -> None:
            if options["task_queue"] == queue and workflows:
                options["workflows"] = [*options.get("workflows", []), *workflows]
            if interceptors:
                options["interceptors"] = [*options.get("interceptors", []), *interceptors]
            super().__init__(client, **options)

    original = worker_module.Worker
    worker_module.Worker = BenchWorker  # type: ignore[misc]
    try:
        return worker_module.build_workers(client, services, config=config, base_queue=queue)
    finally:
        worker_module.Worker = original  # type: ignore[misc]


def emit(result: dict[str, Any]) -> None:
    """Print a benchmark's result as the last line of output (JSON), for `python -m bench`."""
    print(json.dumps(result, default=str))


async def run_child(args: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run a benchmark's child process to its end: (exit code, stdout, stderr).

    Cancelled (the benchmark got SIGTERM, SIGHUP or Ctrl-C: `run_main`), it passes SIGTERM on
    and waits for the child to stop what it started (its dev server, sandbox, workers), then
    SIGKILLs it after a minute.
    """
    process = await asyncio.create_subprocess_exec(
        *args,
        env=dict(env) if env is not None else None,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await process.communicate()
    except asyncio.CancelledError:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
        raise
    return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def run_main(coro_fn: Any) -> None:
    """`python -m bench.X [--quick]`: run one benchmark and print its JSON result.

    SIGTERM and SIGHUP stop it as Ctrl-C does (`tikflow.devstack.run_until_stopped`): what it
    started (dev server, sandbox, worker processes, child benchmarks) is stopped before it exits
    (code 143, no result).
    """
    from tikflow.devstack import run_until_stopped
    from tikflow.logging import configure_logging

    quick = "--quick" in sys.argv[1:]
    # Warnings only, on stderr: a debug line per activity would cost more than the step itself.
    configure_logging(json=False, level="WARNING")
    result = run_until_stopped(lambda: coro_fn(quick=quick))
    if result is None:
        print("stopped before the end: no result", file=sys.stderr)
        sys.stderr.flush()
        os._exit(143)
    emit(result)
    sys.stdout.flush()
    # A Temporal client leaves the interpreter to abort at finalization (sdk-python#300); the
    # result is out, so leave without finalizing.
    os._exit(0)
