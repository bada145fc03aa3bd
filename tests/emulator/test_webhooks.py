"""The TikTok stand-in sends signed webhook events to a callback URL served over real HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.emulator.support import admin
from tests.support.emulator import AsyncAdminClient
from tests.support.waiting import eventually
from tikflow.emulator.state import TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET, TIKTOK_OPEN_ID
from tikflow.ingress.verify import verify_tiktok
from tikflow.serving import running_in_thread

MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000


@dataclass
class Receiver:
    """A callback URL that records each request and answers the next scripted status (then 200)."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def endpoint(self, request: Request) -> JSONResponse:
        body = await request.body()
        with self.lock:
            self.received.append((dict(request.headers), body))
            status = self.statuses.pop(0) if self.statuses else 200
        return JSONResponse({"ok": status == 200}, status_code=status)

    def events(self) -> list[str]:
        with self.lock:
            return [json.loads(body)["event"] for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    app = Starlette(routes=[Route("/events/tiktok", found.endpoint, methods=["POST"])])
    with running_in_thread(app, what="receiver") as base:
        found.url = f"{base}/events/tiktok"
        yield found


@pytest.fixture
def config(config, receiver: Receiver):
    config.webhook_url = receiver.url
    config.webhook_retry_delays_s = (0.01, 0.01, 0.01)
    return config


async def _bearer(client) -> dict[str, str]:
    pair = await admin(client, "keys", {"provider": "tiktok"})
    return {"Authorization": f"Bearer {pair['access_token']}"}


async def _upload(
    client, bearer, data: bytes = MP4, *, inbox: bool = False, privacy: str = "PUBLIC_TO_EVERYONE"
):
    path = "/tiktok/v2/post/publish/inbox/video/init/" if inbox else "/tiktok/v2/post/publish/video/init/"
    source = {
        "source": "FILE_UPLOAD",
        "video_size": len(data),
        "chunk_size": len(data),
        "total_chunk_count": 1,
    }
    body: dict = {"source_info": source}
    if not inbox:
        body["post_info"] = {"title": "events #tikflowdemo", "privacy_level": privacy}
    init = (await client.post(path, json=body, headers=bearer)).json()["data"]
    put = await client.put(
        init["upload_url"],
        content=data,
        headers={"Content-Type": "video/mp4", "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"},
    )
    assert put.status_code == 201
    return init["publish_id"]


async def _webhooks(client) -> dict:
    return await AsyncAdminClient(client).admin("webhooks", method="GET")


async def _deliveries(client, count: int, *, done: bool = True) -> list[dict]:
    async def probe() -> list[dict]:
        return (await _webhooks(client))["deliveries"]

    def settled(found: list[dict]) -> bool:
        return len(found) >= count and (not done or all(d["delivered"] or d["gave_up"] for d in found))

    return await eventually(probe, within=10, every=0.02, what=f"{count} webhook deliveries", until=settled)


async def test_a_publish_is_confirmed_by_signed_events_without_a_status_fetch(emulator, receiver):
    bearer = await _bearer(emulator)
    publish_id = await _upload(emulator, bearer)
    await _deliveries(emulator, 2)
    assert receiver.events() == ["post.publish.complete", "post.publish.publicly_available"]
    for headers, body in receiver.received:
        # The ingress's own check passes: the sandbox signs as TikTok does.
        verify_tiktok(headers["tiktok-signature"], body, TIKTOK_CLIENT_SECRET, now=time.time(), window_s=5)
        assert headers["content-type"] == "application/json"
        envelope = json.loads(body)
        assert set(envelope) == {"client_key", "event", "create_time", "user_openid", "content"}
        assert (envelope["client_key"], envelope["user_openid"]) == (TIKTOK_CLIENT_KEY, TIKTOK_OPEN_ID)
        assert isinstance(envelope["content"], str)
    complete, public = (json.loads(json.loads(body)["content"]) for _, body in receiver.received)
    assert complete == {"publish_id": publish_id, "publish_type": "DIRECT_PUBLISH"}
    snapshot = (await emulator.get("/_admin/state")).json()
    (publish,) = (p for p in snapshot["tiktok"]["publishes"] if p["publish_id"] == publish_id)
    assert public["post_id"] == publish["post_id"]
    assert snapshot["requests"].get("tiktok POST /v2/post/publish/status/fetch/", 0) == 0
    # A fetch now sees the outcome at once, and sends nothing again.
    status = await emulator.post(
        "/tiktok/v2/post/publish/status/fetch/", json={"publish_id": publish_id}, headers=bearer
    )
    assert status.json()["data"]["status"] == "PUBLISH_COMPLETE"
    assert len(await _deliveries(emulator, 2)) == 2


async def test_failures_and_inbox_deliveries_have_their_events(emulator, receiver):
    bearer = await _bearer(emulator)
    await _upload(emulator, bearer, b"\x00" * 1024)  # no ftyp box: the format check fails
    failed_inbox = await _upload(emulator, bearer, b"\x00" * 1024, inbox=True)
    await _upload(emulator, bearer, inbox=True)
    await _upload(emulator, bearer, privacy="SELF_ONLY")  # complete, never public
    found = await _deliveries(emulator, 5)
    assert [d["event"] for d in found] == [
        "post.publish.failed",
        "post.publish.failed",
        "video.upload.failed",
        "post.publish.inbox_delivered",
        "post.publish.complete",
    ]
    content = json.loads(json.loads(found[0]["body"])["content"])
    assert (content["reason"], content["publish_type"]) == ("file_format_check_failed", "DIRECT_PUBLISH")
    assert json.loads(json.loads(found[2]["body"])["content"]) == {"share_id": failed_inbox}


async def test_a_delivery_without_a_2xx_is_retried_then_dropped(emulator, receiver, config):
    receiver.statuses = [500, 503]
    bearer = await _bearer(emulator)
    await _upload(emulator, bearer, privacy="SELF_ONLY")
    (first,) = await _deliveries(emulator, 1)
    assert (first["attempts"], first["delivered"], first["gave_up"]) == ([500, 503, 200], True, False)
    bodies = {body for _, body in receiver.received}
    assert len(bodies) == 1  # the same event each time, signed anew
    receiver.statuses = [500] * 4
    await _upload(emulator, bearer, privacy="SELF_ONLY")
    second = (await _deliveries(emulator, 2))[1]
    assert (second["attempts"], second["delivered"], second["gave_up"]) == ([500] * 4, False, True)


async def test_a_callback_that_cannot_be_reached_is_retried(emulator, config):
    config.webhook_url = "http://127.0.0.1:9/events/tiktok"  # discard port: refused
    await _upload(emulator, await _bearer(emulator), privacy="SELF_ONLY")
    (found,) = await _deliveries(emulator, 1)
    assert found["gave_up"]
    assert len(found["attempts"]) == 4
    assert all(isinstance(a, str) for a in found["attempts"])


async def test_duplicates_and_out_of_order_on_request(emulator, receiver):
    await admin(emulator, "config", {"webhook_duplicates": 2, "webhook_out_of_order": True})
    await _upload(emulator, await _bearer(emulator))
    await _deliveries(emulator, 6)
    assert receiver.events() == ["post.publish.publicly_available", "post.publish.complete"] * 3
    assert len({body for _, body in receiver.received}) == 2


async def test_deauthorize_revokes_the_tokens_and_sends_authorization_removed(emulator, receiver):
    bearer = await _bearer(emulator)
    answer = await admin(emulator, "deauthorize", {"reason": 5})
    assert answer["events"] == ["authorization.removed"]
    assert answer["revoked"] >= 2
    info = await emulator.get("/tiktok/v2/user/info/", params={"fields": "open_id"}, headers=bearer)
    assert info.status_code == 401
    (found,) = await _deliveries(emulator, 1)
    envelope = json.loads(found["body"])
    assert (envelope["event"], envelope["user_openid"]) == ("authorization.removed", TIKTOK_OPEN_ID)
    assert json.loads(envelope["content"]) == {"reason": 5}
    bad = await emulator.post("/_admin/deauthorize", json={"reason": 9})
    assert bad.status_code == 400
    assert "0-5" in bad.json()["error"]


async def test_take_down_sends_no_longer_publicaly_available(emulator, receiver):
    publish_id = await _upload(emulator, await _bearer(emulator))
    await _deliveries(emulator, 2)
    answer = await admin(emulator, "take_down", {"publish_id": publish_id})
    assert answer["events"] == ["post.publish.no_longer_publicaly_available"]
    found = await _deliveries(emulator, 3)
    assert json.loads(json.loads(found[2]["body"])["content"])["publish_id"] == publish_id
    again = await emulator.post("/_admin/take_down", json={"publish_id": publish_id})
    assert again.status_code == 400


async def test_without_a_callback_url_nothing_is_sent_and_polls_finish_the_publish(
    emulator, receiver, config
):
    await admin(emulator, "config", {"webhook_url": None})
    bearer = await _bearer(emulator)
    publish_id = await _upload(emulator, bearer)
    statuses = []
    for _ in range(config.publish_polls):
        fetched = await emulator.post(
            "/tiktok/v2/post/publish/status/fetch/", json={"publish_id": publish_id}, headers=bearer
        )
        statuses.append(fetched.json()["data"]["status"])
    assert statuses[-1] == "PUBLISH_COMPLETE"
    assert statuses[0] == "PROCESSING_UPLOAD"
    assert (await _webhooks(emulator))["deliveries"] == []
    assert receiver.received == []


async def test_events_of_a_publish_finished_by_polls_are_sent_once_a_callback_is_set(
    emulator, receiver, config
):
    await admin(emulator, "config", {"webhook_url": None})
    bearer = await _bearer(emulator)
    publish_id = await _upload(emulator, bearer, privacy="SELF_ONLY")
    await admin(emulator, "config", {"webhook_url": receiver.url})
    for _ in range(config.publish_polls + 1):
        await emulator.post(
            "/tiktok/v2/post/publish/status/fetch/", json={"publish_id": publish_id}, headers=bearer
        )
    (found,) = await _deliveries(emulator, 1)
    assert found["event"] == "post.publish.complete"


async def test_the_webhook_settings_are_checked(emulator):
    for bad in (
        {"webhook_url": "ftp://x/events"},
        {"webhook_retry_delays_s": [-1]},
        {"webhook_duplicates": 100},
    ):
        response = await emulator.post("/_admin/config", json=bad)
        assert response.status_code == 422, bad
    await admin(emulator, "reset")
    assert (await _webhooks(emulator))["deliveries"] == []
