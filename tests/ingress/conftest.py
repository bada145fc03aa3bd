"""An ingress on real loopback HTTP (uvicorn) against the session's real Temporal dev server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.credentials import CredentialStore
from tests.ingress.waiters import EventWaiter, RouteRun
from tikflow.ingress import IngressConfig, register_route, running_ingress
from workflows.events import RouteSpec, event_workflows

TIKTOK_SECRET = "tiktok-client-secret-0123456789abcdef"
CLIENT_KEY = "awtestclientkey"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-secret-32bytes").decode()
TOKEN = "shared-bearer-token-0123456789"
SECRETS = (TIKTOK_SECRET, STANDARD_SECRET, STANDARD_SECRET[6:], TOKEN)


def write_credentials(path: Path) -> None:
    data = {
        "tiktok": {"main": {"client_key": CLIENT_KEY, "client_secret": TIKTOK_SECRET}},
        "ingress": {"std": {"signing_secret": STANDARD_SECRET}, "tok": {"token": TOKEN}},
    }
    path.write_text(json.dumps({"version": 1, "credentials": data}))
    path.chmod(0o600)


def tiktok_signature(body: bytes, t: int | None = None, secret: str = TIKTOK_SECRET) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},s={mac}"


def tiktok_body(event: str = "post.publish.complete", publish_id: str = "v_pub_1", **extra: Any) -> bytes:
    envelope = {
        "client_key": CLIENT_KEY,
        "event": event,
        "create_time": 1700000000,
        "user_openid": "act.user1",
        "content": json.dumps({"publish_id": publish_id, "publish_type": "DIRECT_PUBLISH"}),
        **extra,
    }
    return json.dumps(envelope).encode()


def standard_headers(body: bytes, msg_id: str, t: int | None = None, secret: str = STANDARD_SECRET) -> dict:
    from datetime import UTC, datetime

    from standardwebhooks.webhooks import Webhook

    t = int(time.time()) if t is None else t
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(t, tz=UTC), body.decode())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(t),
        "webhook-signature": signature,
    }


@dataclass
class IngressRig:
    client: Client
    url: str
    task_queue: str
    std_route: str
    token_route: str

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)


def ingress_config(credentials: Path, task_queue: str, **overrides: Any) -> IngressConfig:
    return IngressConfig(task_queue=task_queue, credentials=CredentialStore(credentials), **overrides)


def connect_to(target_host: str):
    async def connect() -> Client:
        return await Client.connect(target_host, data_converter=pydantic_data_converter, lazy=True)

    return connect


@pytest.fixture
async def rig(dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> AsyncIterator[IngressRig]:
    credentials = tmp_path / "credentials.json"
    write_credentials(credentials)
    suffix = uuid.uuid4().hex[:10]
    std_route, token_route = f"std-{suffix}", f"tok-{suffix}"
    async with Worker(
        dev_env.client, task_queue=task_queue, workflows=[*event_workflows(), EventWaiter, RouteRun]
    ):
        await register_route(
            dev_env.client,
            RouteSpec(name=std_route, auth="standard", credential="std"),
            task_queue=task_queue,
        )
        await register_route(
            dev_env.client, RouteSpec(name=token_route, auth="token", credential="tok"), task_queue=task_queue
        )
        target = dev_env.client.service_client.config.target_host
        with running_ingress(ingress_config(credentials, task_queue), connect=connect_to(target)) as url:
            yield IngressRig(dev_env.client, url, task_queue, std_route, token_route)
