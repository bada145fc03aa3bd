"""The workflow cache (issue 20): its default is sized from memory, and a worker that may serve more
runs than it holds says so at start, naming the setting.

The warning is checked against a real dev server: monitors started on a queue no worker polls
yet are running (their first workflow task waits), so visibility counts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import structlog
from conftest import make_services

from activities.config import (
    DEFAULT_CACHED_WORKFLOWS,
    MAX_DEFAULT_CACHED_WORKFLOWS,
    EngineConfig,
    default_cached_workflows,
)
from tests.support.waiting import eventually
from tikflow.loader import load_recipe_text
from tikflow.logging import configure_logging
from tikflow.runs import start_recipe
from tikflow.worker import cache_warning, run_workers

MONITOR = """
recipe: cache-check
trigger:
  poll: {every: 1h}
steps:
  - set: {polled: true}
"""


def test_the_default_cache_fills_a_quarter_of_memory_at_one_mib_a_run():
    assert default_cached_workflows(24 * 1024) == 6144
    # Never fewer than the SDK's own default, never more than the cap.
    assert default_cached_workflows(2 * 1024) == DEFAULT_CACHED_WORKFLOWS == 1000
    assert default_cached_workflows(1024 * 1024) == MAX_DEFAULT_CACHED_WORKFLOWS == 10_000
    # Unset, the variable gives the default for this machine's memory; set, it wins.
    assert EngineConfig.from_env({}).max_cached_workflows == default_cached_workflows()
    assert EngineConfig.from_env({"TIKFLOW_MAX_CACHED_WORKFLOWS": "7"}).max_cached_workflows == 7


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """`configure_logging` into a buffer for this test; the previous configuration comes back after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_config = structlog.get_config()
    stream = io.StringIO()
    configure_logging(stream=stream, json=False, level="INFO")
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_config)


@contextlib.asynccontextmanager
async def monitors(client, task_queue: str, count: int) -> AsyncIterator[None]:
    """`count` monitors running on `task_queue` (counted by visibility), terminated after."""
    loaded = load_recipe_text(MONITOR, "cache-check.yaml")
    handles = []
    for _ in range(count):
        _, handle = await start_recipe(
            client, loaded, {}, task_queue=task_queue, workflow_id=f"cache-{uuid.uuid4()}"
        )
        handles.append(handle)
    query = f"WorkflowType = 'RecipeWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '{task_queue}'"
    await eventually(
        lambda: client.count_workflows(query),
        within=30,
        what=f"visibility to count {count} running monitors",
        until=lambda counted: counted.count >= count,
    )
    try:
        yield
    finally:
        for handle in handles:
            await handle.terminate("test over")


async def test_a_worker_warns_when_the_running_monitors_exceed_its_cache(dev_env, task_queue, log_stream):
    client = dev_env.client
    async with monitors(client, task_queue, 3):
        await _warns(client, task_queue, log_stream)


async def _warns(client, task_queue: str, log_stream: io.StringIO) -> None:
    warning = await cache_warning(client, EngineConfig(max_cached_workflows=2), task_queue)
    assert warning is not None
    assert "3 recipe runs are running on task queue" in warning
    assert "TIKFLOW_MAX_CACHED_WORKFLOWS=2" in warning
    assert "set TIKFLOW_MAX_CACHED_WORKFLOWS to at least 3" in warning
    assert "\n" not in warning
    # They fit: no warning; nor when two worker processes share them (2 each at most).
    assert await cache_warning(client, EngineConfig(max_cached_workflows=3), task_queue) is None
    shared = EngineConfig(max_cached_workflows=2, quota_workers=2)
    assert await cache_warning(client, shared, task_queue) is None

    # The worker says it once at start, in its log.
    stop, ready = asyncio.Event(), asyncio.Event()
    config = EngineConfig(max_cached_workflows=2)
    worker = asyncio.create_task(
        run_workers(client, make_services(), config=config, base_queue=task_queue, stop=stop, ready=ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), 30)
        # The check runs beside the start, not before it.
        await eventually(
            _logged(log_stream),
            within=30,
            what="the cache warning",
            until=lambda text: "TIKFLOW_MAX_CACHED_WORKFLOWS=2" in text,
        )
    finally:
        stop.set()
        await worker
    lines = [line for line in log_stream.getvalue().splitlines() if "TIKFLOW_MAX_CACHED_WORKFLOWS" in line]
    assert len(lines) == 1
    assert "warn" in lines[0].lower()


def _logged(stream: io.StringIO) -> Callable[[], Awaitable[str]]:
    async def text() -> str:
        return stream.getvalue()

    return text


async def test_a_worker_whose_cache_holds_every_run_says_nothing(dev_env, task_queue):
    async with monitors(dev_env.client, task_queue, 2):
        assert await cache_warning(dev_env.client, EngineConfig(max_cached_workflows=2), task_queue) is None
