"""Ingress: signed TikTok events accepted per second and acceptance latency at a fixed offered load.

The ingress (`tikflow ingress`, in a process of its own as deployed) takes each event only once
Temporal holds it: one signal-with-start of the publish's mailbox (`Delivery.to_mailbox`). The
baseline is that same call made bare from this process (`client.start_workflow` with
`start_signal`), against the same dev server in the same run, at the same offered load. Both are
open loops: request i leaves at `i / rate` whether or not earlier ones are answered, and its
latency counts from then, so a backlog shows as latency instead of slowing the load down.

Figures: events accepted per second (accepted events over the time from the first send to the
last answer), p50/p99 latency, and the ingress's rate as a share of the bare loop's.
Goal: >= 90% of the bare rate, p99 < 250 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import machine, percentile, run_main
from tikflow.emulator.webhooks import tiktok_signature

CLIENT_KEY, SECRET = "awbenchclientkey", "bench-client-secret-0123456789abcdef"


def _body(publish_id: str) -> bytes:
    content = json.dumps({"publish_id": publish_id, "publish_type": "DIRECT_PUBLISH"})
    return json.dumps(
        {
            "client_key": CLIENT_KEY,
            "event": "post.publish.complete",
            "create_time": int(time.time()),
            "user_openid": "act.bench",
            "content": content,
        }
    ).encode()


async def _open_loop(
    rate: float, count: int, send: Callable[[str], Awaitable[bool]], label: str
) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    start = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal failures
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            ok = await send(f"{label}{i}")
        except Exception:
            ok = False
        if ok:
            latencies.append(time.perf_counter() - due)
        else:
            failures += 1

    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - start
    return {
        "accepted": len(latencies),
        "failed": failures,
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
    }


def _ingress_process(address: str, queue: str, credentials: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": "default",
        "TIKFLOW_TASK_QUEUE": queue,
        "TIKFLOW_CREDENTIALS": str(credentials),
        "TIKFLOW_LOG_JSON": "1",
    }
    tikflow = Path(sys.executable).parent / "tikflow"
    return subprocess.Popen(
        [str(tikflow), "ingress", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http:
        deadline = time.monotonic() + 30
        while True:
            try:
                if (await http.get(f"{url}/healthz", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the ingress did not start")
            await asyncio.sleep(0.05)


async def bench(quick: bool) -> dict[str, Any]:
    """Run both loops; the result as JSON-able figures."""
    from activities.credentials import CredentialStore
    from tikflow.devstack import DevStack, free_port
    from workflows.events import DELIVER_SIGNAL, Event, EventMailboxWorkflow, MailboxSpec, mailbox_id

    rate = 100.0 if quick else 200.0
    seconds = 5 if quick else 20
    count = int(rate * seconds)
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="tikflow-bench-ingress-") as tmp:
        home = Path(tmp)
        credentials = home / "credentials.json"
        CredentialStore(credentials, env={}).update(
            "tiktok", "main", {"client_key": CLIENT_KEY, "client_secret": SECRET}
        )
        stack = DevStack(
            home=home,
            temporal_port=free_port(),
            ui_port=free_port(),
            sandbox_port=None,  # type: ignore[arg-type]  # no sandbox: the load is the events
            with_worker=False,
        )
        async with stack:
            client = stack.client
            assert client is not None
            queue = f"bench-ingress-{run}"
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            process = _ingress_process(stack.address, queue, credentials, port)
            try:
                await _wait_healthy(url, process)
                limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
                async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

                    async def post_event(name: str) -> bool:
                        body = _body(f"v_pub_bench_{run}_{name}")
                        headers = {
                            "content-type": "application/json",
                            "tiktok-signature": tiktok_signature(SECRET, int(time.time()), body),
                        }
                        response = await http.post("/events/tiktok", content=body, headers=headers)
                        return response.status_code == 200 and response.json()["status"] == "accepted"

                    # Warm-up (connections, caches), with events of their own.
                    await _open_loop(rate, min(50, count), post_event, "warm")
                    ingress = await _open_loop(rate, count, post_event, "i")
            finally:
                process.terminate()
                process.wait(10)

            async def bare(name: str) -> bool:
                key = f"v_pub_bare_{run}_{name}"
                # The event the ingress keeps for such a delivery: the same size on the wire.
                envelope = json.loads(_body(key))
                event = Event(
                    id=f"e-{name}",
                    source="tiktok",
                    type="post.publish.complete",
                    key=key,
                    received_at=datetime.now(UTC).isoformat(),
                    headers={"content-type": "application/json"},
                    body={**envelope, "content": json.loads(envelope["content"])},
                )
                await client.start_workflow(
                    EventMailboxWorkflow.run,
                    args=[MailboxSpec(provider="tiktok", key=key), None],
                    id=mailbox_id("tiktok", key),
                    task_queue=queue,
                    start_signal=DELIVER_SIGNAL,
                    start_signal_args=[event],
                )
                return True

            await _open_loop(rate, min(50, count), bare, "warm")
            baseline = await _open_loop(rate, count, bare, "b")
    share = ingress["per_s"] / baseline["per_s"] if baseline["per_s"] else 0.0
    return {
        "benchmark": "ingress",
        "offered_per_s": rate,
        "events": count,
        "ingress_per_s": ingress["per_s"],
        "ingress_p50_ms": ingress["p50_ms"],
        "ingress_p99_ms": ingress["p99_ms"],
        "ingress_failed": ingress["failed"],
        "bare_per_s": baseline["per_s"],
        "bare_p50_ms": baseline["p50_ms"],
        "bare_p99_ms": baseline["p99_ms"],
        "bare_failed": baseline["failed"],
        "share_of_bare": round(share, 3),
        "goal_met": share >= 0.9 and ingress["p99_ms"] < 250 and ingress["failed"] == 0,
        "machine": machine(),
    }


if __name__ == "__main__":
    run_main(bench)
