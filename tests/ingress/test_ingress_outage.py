"""Temporal down while events arrive: 503 (the sender retries), then every retry accepted, each event once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.worker import Worker

from tests.ingress.conftest import (
    TOKEN,
    connect_to,
    ingress_config,
    tiktok_body,
    tiktok_signature,
    write_credentials,
)
from tests.resilience.test_chaos import own_temporal
from tests.support.waiting import eventually
from tikflow.devstack import free_port
from tikflow.ingress import register_route, running_ingress
from workflows.events import (
    EventMailboxWorkflow,
    RouteListenerWorkflow,
    RouteSpec,
    event_workflows,
    mailbox_id,
    route_workflow_id,
)

pytestmark = pytest.mark.devserver


async def test_temporal_down_answers_503_then_accepts_each_event_once(tmp_path: Path):
    credentials = tmp_path / "credentials.json"
    write_credentials(credentials)
    task_queue = f"tq-{uuid.uuid4()}"
    route = "outage"
    body = tiktok_body(publish_id="v_pub_outage")
    auth = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    async with own_temporal(tmp_path) as server:
        client = await server.client()
        await register_route(
            client, RouteSpec(name=route, auth="token", credential="tok"), task_queue=task_queue
        )
        config = ingress_config(credentials, task_queue, rpc_timeout_s=2.0, route_cache_s=0.0)
        with running_ingress(config, connect=connect_to(server.address)) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:

                async def tiktok(event_body: bytes) -> httpx.Response:
                    signed = {
                        "content-type": "application/json",
                        "tiktok-signature": tiktok_signature(event_body),
                    }
                    return await http.post("/events/tiktok", content=event_body, headers=signed)

                async def hook(key: str) -> httpx.Response:
                    return await http.post(
                        f"/hooks/{route}", json={"lead": key}, headers={**auth, "idempotency-key": key}
                    )

                assert [(await tiktok(body)).status_code, (await hook("o-1")).status_code] == [200, 200]
                server.stop()
                # A redelivery of what Temporal already holds needs no Temporal: still its 2xx.
                assert (await tiktok(body)).json()["status"] == "duplicate"
                fresh = tiktok_body(publish_id="v_pub_outage_2")
                during = [await tiktok(fresh), await hook("o-2")]
                assert [(r.status_code, r.json()["error"], r.headers["retry-after"]) for r in during] == [
                    (503, "temporal_unavailable", "5")
                ] * 2
                server.start()
                client = await server.client()

                async def retried() -> list[int]:
                    return [(await tiktok(fresh)).status_code, (await hook("o-2")).status_code]

                await eventually(
                    retried, within=60, what="the retries accepted", until=lambda s: s == [200, 200]
                )
                # The sender's later retries (it did not see our 200, say) are answered and change nothing.
                assert [(await tiktok(fresh)).status_code, (await hook("o-2")).status_code] == [200, 200]
                metrics = (await http.get("/metrics")).text
        assert 'tikflow_ingress_rejections_total{reason="temporal_unavailable"}' in metrics
        async with Worker(client, task_queue=task_queue, workflows=event_workflows()):
            for publish_id in ("v_pub_outage", "v_pub_outage_2"):
                handle = client.get_workflow_handle(mailbox_id("tiktok", publish_id))
                assert [e.key for e in await handle.query(EventMailboxWorkflow.events)] == [publish_id]
            listener = client.get_workflow_handle(route_workflow_id(route))
            assert [e.id for e in await listener.query(RouteListenerWorkflow.events)] == ["o-1", "o-2"]


def test_the_command_serves_and_stops_on_sigterm(tmp_path: Path):
    credentials = tmp_path / "credentials.json"
    write_credentials(credentials)
    port = free_port()
    env = {**os.environ, "TIKFLOW_CREDENTIALS": str(credentials), "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tikflow.cli", "ingress", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().decode().strip() == f"ingress: http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        import time

        deadline = time.monotonic() + 30
        while not healthy():
            assert time.monotonic() < deadline, "the ingress did not come up"
            time.sleep(0.05)
        # Temporal is unreachable (port 1): a verified event is answered 503, not lost silently.
        body = tiktok_body(publish_id="v_pub_cli")
        response = httpx.post(
            f"http://127.0.0.1:{port}/events/tiktok",
            content=body,
            headers={"content-type": "application/json", "tiktok-signature": tiktok_signature(body)},
            timeout=30,
        )
        assert response.status_code == 503
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        _, err = process.communicate(timeout=10)
        assert b"Traceback" not in err
        assert b"temporal_unavailable" in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
