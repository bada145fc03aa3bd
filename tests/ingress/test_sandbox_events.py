"""The sandbox's TikTok sends its signed events over real HTTP into the real ingress and on into Temporal."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.credentials import CredentialStore
from tests.ingress.conftest import connect_to
from tests.ingress.waiters import EventWaiter
from tests.support.emulator import AdminClient, serve_emulator
from tests.support.waiting import eventually
from tikflow.devstack import store_credentials
from tikflow.emulator import EmulatorConfig, demo_credentials
from tikflow.emulator.state import TIKTOK_OPEN_ID
from tikflow.ingress import IngressConfig, running_ingress
from workflows.events import EventMailboxWorkflow, event_workflows, mailbox_id

pytestmark = pytest.mark.devserver

MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000


def _store(tmp_path: Path) -> CredentialStore:
    store = CredentialStore(tmp_path / "credentials.json", env={})
    store_credentials(store, {"tiktok": demo_credentials()["tiktok"]})
    return store


def _publish(sandbox: str) -> str:
    """A direct post through the sandbox's Content Posting API; its publish id (no status fetch)."""
    token = AdminClient(sandbox).admin("keys", {"provider": "tiktok"})["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    source = {"source": "FILE_UPLOAD", "video_size": len(MP4), "chunk_size": len(MP4), "total_chunk_count": 1}
    post = {"title": "events #tikflowdemo", "privacy_level": "PUBLIC_TO_EVERYONE"}
    init = httpx.post(
        f"{sandbox}/tiktok/v2/post/publish/video/init/",
        json={"source_info": source, "post_info": post},
        headers=bearer,
    ).json()["data"]
    put = httpx.put(
        init["upload_url"],
        content=MP4,
        headers={"Content-Type": "video/mp4", "Content-Range": f"bytes 0-{len(MP4) - 1}/{len(MP4)}"},
    )
    assert put.status_code == 201
    return str(init["publish_id"])


async def _deliveries(sandbox: str, count: int) -> list[dict]:
    async def probe() -> list[dict]:
        return list(AdminClient(sandbox).admin("webhooks", method="GET")["deliveries"])

    return await eventually(
        probe,
        within=20,
        every=0.05,
        what=f"{count} settled deliveries",
        until=lambda found: len(found) >= count and all(d["delivered"] or d["gave_up"] for d in found),
    )


async def test_a_sandbox_publish_reaches_the_waiting_run_through_the_ingress_once(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
):
    config = IngressConfig(task_queue=task_queue, credentials=_store(tmp_path))
    target = dev_env.client.service_client.config.target_host
    async with Worker(dev_env.client, task_queue=task_queue, workflows=[*event_workflows(), EventWaiter]):
        with running_ingress(config, connect=connect_to(target)) as ingress:
            sandbox_config = EmulatorConfig(
                # An audited app with instant moderation: the post is public and its id out at once.
                tiktok_app_audited=True,
                tiktok_moderation_s=0,
                webhook_url=f"{ingress}/events/tiktok",
                webhook_duplicates=2,  # TikTok delivers at least once: three copies of each event
                webhook_out_of_order=True,
                webhook_retry_delays_s=(0.05,) * 5,
            )
            with serve_emulator(sandbox_config) as (sandbox, _):
                publish_id = _publish(sandbox)
                # The events are in before any run waits for them: the mailbox keeps them.
                found = await _deliveries(sandbox, 6)
                assert all(d["attempts"] == [200] for d in found)
                waiter = await dev_env.client.start_workflow(
                    EventWaiter.run,
                    args=["tiktok", publish_id, 2],
                    id=f"waiter-{publish_id}",
                    task_queue=task_queue,
                )
                events = await waiter.result()
        counts = await dev_env.client.get_workflow_handle(mailbox_id("tiktok", publish_id)).query(
            EventMailboxWorkflow.counts
        )
    assert sorted(e.type for e in events) == ["post.publish.complete", "post.publish.publicly_available"]
    assert {e.body["content"]["publish_id"] for e in events} == {publish_id}
    assert {e.body["user_openid"] for e in events} == {TIKTOK_OPEN_ID}
    # Six deliveries, two events: the first replica's memory or Temporal's mailbox took the rest.
    assert counts["accepted"] == 2


async def test_events_sent_while_the_ingress_is_down_arrive_by_the_sandbox_retries(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
):
    config = IngressConfig(task_queue=task_queue, credentials=_store(tmp_path))
    target = dev_env.client.service_client.config.target_host
    open_id = f"act.{uuid.uuid4().hex}"  # a mailbox of its own on the shared dev server
    async with Worker(dev_env.client, task_queue=task_queue, workflows=event_workflows()):
        with running_ingress(config, connect=connect_to(target)) as ingress:
            port = int(ingress.rsplit(":", 1)[1])
        # The ingress is gone: deliveries fail until it is back on the same port.
        sandbox_config = EmulatorConfig(
            tiktok_app_audited=True,
            tiktok_moderation_s=0,
            webhook_url=f"{ingress}/events/tiktok",
            webhook_retry_delays_s=(0.2,) * 100,
        )
        with serve_emulator(sandbox_config) as (sandbox, _):
            AdminClient(sandbox).admin("deauthorize", {"open_id": open_id, "reason": 1})
            await eventually(
                lambda: _first_attempts(sandbox),
                within=10,
                every=0.05,
                what="a failed first attempt",
                until=lambda attempts: len(attempts) >= 1,
            )
            with running_ingress(config, connect=connect_to(target), port=port):
                (found,) = await _deliveries(sandbox, 1)
        counts = await dev_env.client.get_workflow_handle(mailbox_id("tiktok", f"user:{open_id}")).query(
            EventMailboxWorkflow.counts
        )
    assert found["delivered"]
    assert found["attempts"][-1] == 200
    assert all(isinstance(a, str) for a in found["attempts"][:-1])  # connection refused, then taken
    assert json.loads(found["body"])["event"] == "authorization.removed"
    assert counts["accepted"] == 1


async def _first_attempts(sandbox: str) -> list:
    deliveries = AdminClient(sandbox).admin("webhooks", method="GET")["deliveries"]
    return list(deliveries[0]["attempts"]) if deliveries else []
