"""A whole deployment on loopback for the link tests: Temporal, the sandbox, the ingress and a worker.

The worker builds its notifications' links on the ingress's address (`Settings.public_url`); the
ingress finds the consent pages and token endpoints at the sandbox, and spends states in Temporal.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.credentials import CredentialStore
from activities.settings import Settings
from tests.support.emulator import emulator_services, serve_emulator, store_emulator_credentials
from tikflow.devstack import running_workers
from tikflow.emulator.server import provider_base_urls
from tikflow.ingress import IngressConfig, running_ingress

#: The link signing key of these deployments.
LINK_KEY = "test-link-signing-key-0123456789abcdef0123"
TIKAPI_APP = "c_sandboxapp0001"


@dataclass
class Deployment:
    """What a link test drives."""

    client: Client
    sandbox: str
    ingress: str
    task_queue: str
    store: CredentialStore
    admin: httpx.AsyncClient


@pytest.fixture
async def deployment(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Deployment]:
    task_queue = f"links-{uuid.uuid4()}"
    path = tmp_path / "credentials.json"
    with contextlib.ExitStack() as stack:
        sandbox, _ = stack.enter_context(serve_emulator())
        store = store_emulator_credentials(CredentialStore(path, env={}), sandbox)
        store.update("tikapi", "main", {"client_id": TIKAPI_APP})
        store.update("links", "main", {"signing_key": LINK_KEY})

        target = dev_env.client.service_client.config.target_host

        async def client() -> Client:
            # The ingress serves in a thread with its own event loop: it gets a client of its own.
            return await Client.connect(target, data_converter=pydantic_data_converter, lazy=True)

        ingress = stack.enter_context(
            running_ingress(
                IngressConfig(
                    task_queue=task_queue,
                    credentials=CredentialStore(path, env={}),
                    settings=Settings(base_urls=provider_base_urls(sandbox)),
                ),
                connect=client,
            )
        )
        services = emulator_services(sandbox, path)
        services = replace(services, settings=replace(services.settings, public_url=ingress))
        async with (
            running_workers(dev_env.client, services, task_queue),
            httpx.AsyncClient(base_url=sandbox, timeout=10) as admin,
        ):
            yield Deployment(dev_env.client, sandbox, ingress, task_queue, store, admin)
        await services.http.aclose()
