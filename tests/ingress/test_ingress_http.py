"""The ingress over real loopback HTTP (uvicorn) against a real Temporal dev server."""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import structlog
from temporalio.service import RPCError

from tests.ingress.conftest import (
    SECRETS,
    TOKEN,
    IngressRig,
    connect_to,
    ingress_config,
    standard_headers,
    tiktok_body,
    tiktok_signature,
    write_credentials,
)
from tikflow.ingress import running_ingress
from workflows.events import EventMailboxWorkflow, RouteListenerWorkflow, mailbox_id, route_workflow_id

pytestmark = pytest.mark.devserver

JSON = {"content-type": "application/json"}
BAD_PUBLISH = "v_pub_never_delivered"


def _tiktok(body: bytes, t: int | None = None, secret: str | None = None, **headers: Any) -> dict:
    signature = tiktok_signature(body, t) if secret is None else tiktok_signature(body, t, secret)
    return {**JSON, "tiktok-signature": signature, **headers}


def _bad_body(**extra: Any) -> bytes:
    return tiktok_body(publish_id=BAD_PUBLISH, **extra)


def _corpus() -> list[tuple[str, str, str, dict | list, bytes, int, str]]:
    """(case, method, path, headers, body, status, reason); `{std}`/`{tok}` name the rig's routes."""
    now = int(time.time())
    good = _bad_body()
    truncated = good[: len(good) // 2]
    not_json_content = json.dumps(
        {
            "client_key": "awtestclientkey",
            "event": "post.publish.complete",
            "create_time": 1,
            "content": "{oops",
        }
    ).encode()
    number_content = json.dumps(
        {"client_key": "awtestclientkey", "event": "post.publish.complete", "create_time": 1, "content": "5"}
    ).encode()
    other_app = _bad_body(client_key="someone-else")
    std_body = b'{"lead": "x"}'
    return [
        ("tiktok missing signature", "POST", "/events/tiktok", JSON, good, 401, "missing_signature"),
        (
            "tiktok garbage signature",
            "POST",
            "/events/tiktok",
            {**JSON, "tiktok-signature": "garbage"},
            good,
            400,
            "malformed_signature",
        ),
        (
            "tiktok non-numeric t",
            "POST",
            "/events/tiktok",
            {**JSON, "tiktok-signature": "t=abc,s=" + "0" * 64},
            good,
            400,
            "malformed_signature",
        ),
        (
            "tiktok repeated t",
            "POST",
            "/events/tiktok",
            {**JSON, "tiktok-signature": f"t={now},t={now},s=" + "0" * 64},
            good,
            400,
            "malformed_signature",
        ),
        (
            "tiktok wrong secret",
            "POST",
            "/events/tiktok",
            _tiktok(good, secret="not-the-secret"),
            good,
            401,
            "bad_signature",
        ),
        (
            "tiktok body changed after signing",
            "POST",
            "/events/tiktok",
            _tiktok(good),
            good + b" ",
            401,
            "bad_signature",
        ),
        (
            "tiktok stale timestamp",
            "POST",
            "/events/tiktok",
            _tiktok(good, now - 3600),
            good,
            401,
            "stale_timestamp",
        ),
        (
            "tiktok future timestamp",
            "POST",
            "/events/tiktok",
            _tiktok(good, now + 3600),
            good,
            401,
            "future_timestamp",
        ),
        (
            "tiktok truncated body",
            "POST",
            "/events/tiktok",
            _tiktok(truncated),
            truncated,
            400,
            "invalid_json",
        ),
        ("tiktok non-JSON body", "POST", "/events/tiktok", _tiktok(b"hello"), b"hello", 400, "invalid_json"),
        (
            "tiktok body not UTF-8",
            "POST",
            "/events/tiktok",
            _tiktok(b"\xff\xfe{}"),
            b"\xff\xfe{}",
            400,
            "invalid_json",
        ),
        (
            "tiktok content not JSON",
            "POST",
            "/events/tiktok",
            _tiktok(not_json_content),
            not_json_content,
            400,
            "invalid_content",
        ),
        (
            "tiktok content not an object",
            "POST",
            "/events/tiktok",
            _tiktok(number_content),
            number_content,
            400,
            "invalid_content",
        ),
        ("tiktok body is a list", "POST", "/events/tiktok", _tiktok(b"[1]"), b"[1]", 400, "invalid_event"),
        ("tiktok other app", "POST", "/events/tiktok", _tiktok(other_app), other_app, 403, "wrong_app"),
        (
            "tiktok text/plain",
            "POST",
            "/events/tiktok",
            {**_tiktok(good), "content-type": "text/plain"},
            good,
            415,
            "unsupported_content_type",
        ),
        (
            "tiktok form content type",
            "POST",
            "/events/tiktok",
            {**_tiktok(good), "content-type": "application/x-www-form-urlencoded"},
            good,
            415,
            "unsupported_content_type",
        ),
        (
            "tiktok latin-1 JSON",
            "POST",
            "/events/tiktok",
            {**_tiktok(good), "content-type": "application/json; charset=latin-1"},
            good,
            415,
            "unsupported_content_type",
        ),
        (
            "tiktok oversized body",
            "POST",
            "/events/tiktok",
            _tiktok(b"{}"),
            b" " * (300 * 1024),
            413,
            "body_too_large",
        ),
        (
            "tiktok two signature headers",
            "POST",
            "/events/tiktok",
            [*_tiktok(good).items(), ("tiktok-signature", "t=1,s=" + "0" * 64)],
            good,
            400,
            "duplicate_header",
        ),
        (
            "tiktok two content types",
            "POST",
            "/events/tiktok",
            [*_tiktok(good).items(), ("content-type", "text/plain")],
            good,
            400,
            "duplicate_header",
        ),
        (
            "tiktok obs-text in signature",
            "POST",
            "/events/tiktok",
            {**JSON, "tiktok-signature": "t=1,s=\xff".encode("latin-1")},
            good,
            400,
            "bad_header",
        ),
        ("tiktok GET", "GET", "/events/tiktok", {}, b"", 405, "method_not_allowed"),
        ("tiktok unknown app", "POST", "/events/tiktok/nobody", _tiktok(good), good, 404, "unknown_route"),
        ("unknown path", "POST", "/nope", _tiktok(good), good, 404, "unknown_route"),
        (
            "encoded CRLF in route",
            "POST",
            "/hooks/x%0d%0aSet-Cookie:%20a=b",
            JSON,
            b"{}",
            404,
            "unknown_route",
        ),
        ("path traversal", "POST", "/hooks/..%2Fevents%2Ftiktok", _tiktok(good), good, 404, "unknown_route"),
        ("standard missing headers", "POST", "/hooks/{std}", JSON, std_body, 401, "missing_signature"),
        (
            "standard wrong secret",
            "POST",
            "/hooks/{std}",
            standard_headers(std_body, "msg_bad1", secret="whsec_" + "QUJD" * 8),
            std_body,
            401,
            "bad_signature",
        ),
        (
            "standard stale",
            "POST",
            "/hooks/{std}",
            standard_headers(std_body, "msg_bad2", now - 3600),
            std_body,
            401,
            "stale_timestamp",
        ),
        (
            "standard future",
            "POST",
            "/hooks/{std}",
            standard_headers(std_body, "msg_bad3", now + 3600),
            std_body,
            401,
            "future_timestamp",
        ),
        (
            "standard malformed signature",
            "POST",
            "/hooks/{std}",
            {**standard_headers(std_body, "msg_bad4"), "webhook-signature": "v1 abc"},
            std_body,
            400,
            "malformed_signature",
        ),
        (
            "standard id with spaces",
            "POST",
            "/hooks/{std}",
            {**standard_headers(std_body, "msg_bad5"), "webhook-id": "a b"},
            std_body,
            400,
            "malformed_signature",
        ),
        (
            "standard replayed id, new body",
            "POST",
            "/hooks/{std}",
            standard_headers(std_body, "msg_bad6"),
            b'{"lead": "y"}',
            401,
            "bad_signature",
        ),
        (
            "unknown generic route",
            "POST",
            "/hooks/ghost-route-xyz",
            standard_headers(std_body, "m"),
            std_body,
            404,
            "unknown_route",
        ),
        (
            "generic PUT",
            "PUT",
            "/hooks/{std}",
            standard_headers(std_body, "msg_bad7"),
            std_body,
            405,
            "method_not_allowed",
        ),
        ("token missing", "POST", "/hooks/{tok}", JSON, std_body, 401, "missing_token"),
        (
            "token wrong",
            "POST",
            "/hooks/{tok}",
            {**JSON, "authorization": "Bearer nope"},
            std_body,
            401,
            "bad_token",
        ),
        (
            "token as basic auth",
            "POST",
            "/hooks/{tok}",
            {**JSON, "authorization": f"Basic {TOKEN}"},
            std_body,
            401,
            "malformed_token",
        ),
        (
            "token with non-JSON body",
            "POST",
            "/hooks/{tok}",
            {**JSON, "authorization": f"Bearer {TOKEN}"},
            b"lead=x",
            400,
            "invalid_json",
        ),
        (
            "token stale timestamp",
            "POST",
            "/hooks/{tok}",
            {**JSON, "authorization": f"Bearer {TOKEN}", "webhook-timestamp": str(now - 3600)},
            std_body,
            401,
            "stale_timestamp",
        ),
        ("metrics POST", "POST", "/metrics", JSON, b"{}", 405, "method_not_allowed"),
    ]


CORPUS = _corpus()


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 25
    assert len({case[0] for case in CORPUS}) == len(CORPUS)


def _no_secret_in(lines: list[Any]) -> None:
    text = repr(lines)
    for secret in SECRETS:
        assert secret not in text


async def test_bad_requests_each_get_their_status_and_reason_and_deliver_nothing(rig: IngressRig):
    results = []
    async with rig.http() as http:
        for case, method, path, headers, body, _status, _reason in CORPUS:
            path = path.format(std=rig.std_route, tok=rig.token_route)
            with structlog.testing.capture_logs() as logs:
                response = await http.request(method, path, headers=headers, content=body or None)
            lines = [line for line in logs if line.get("event") == "ingress rejected"]
            results.append(
                (case, response.status_code, response.json().get("error"), [x["reason"] for x in lines])
            )
            _no_secret_in(logs)
            for secret in SECRETS:
                assert secret not in response.text
    expected = [(case, status, reason, [reason]) for case, _, _, _, _, status, reason in CORPUS]
    assert results == expected
    for route in (rig.std_route, rig.token_route):
        handle = rig.client.get_workflow_handle(route_workflow_id(route))
        assert await handle.query(RouteListenerWorkflow.events) == []
    with pytest.raises(RPCError):
        await rig.client.get_workflow_handle(mailbox_id("tiktok", BAD_PUBLISH)).describe()
    async with rig.http() as http:
        metrics = (await http.get("/metrics")).text
    assert 'tikflow_ingress_rejections_total{reason="bad_signature"}' in metrics
    assert "tikflow_ingress_events_accepted_total{" not in metrics  # no event accepted at all


def _raw(url: str, request: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(65536)


@pytest.mark.parametrize(
    "request_bytes",
    [
        # A line break smuggled into a header value: the signature line ends early, a header follows.
        b"POST /events/tiktok HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"TikTok-Signature: t=1,s=00\rX-Injected: 1\r\nContent-Length: 2\r\n\r\n{}",
        # An obsolete folded header line continuing the signature.
        b"POST /events/tiktok HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"TikTok-Signature: t=1,\r\n s=00\r\nContent-Length: 2\r\n\r\n{}",
        # Two lengths: the classic request-smuggling setup.
        b"POST /events/tiktok HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
        # A NUL inside a header value.
        b"POST /hooks/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\x00\r\n"
        b"Content-Length: 2\r\n\r\n{}",
    ],
    ids=["bare-cr", "folded-line", "two-lengths", "nul"],
)
async def test_header_injection_is_refused_at_the_http_layer(rig: IngressRig, request_bytes: bytes):
    import asyncio

    answer = await asyncio.to_thread(_raw, rig.url, request_bytes)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]


async def test_healthz_and_metrics(rig: IngressRig):
    async with rig.http() as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        metrics = await http.get("/metrics")
    assert metrics.status_code == 200
    assert "tikflow_ingress_rejections_total" in metrics.text


async def _mailbox_counts(rig: IngressRig, publish_id: str) -> dict:
    return await rig.client.get_workflow_handle(mailbox_id("tiktok", publish_id)).query(
        EventMailboxWorkflow.counts
    )


async def test_tiktok_event_is_delivered_once_to_its_mailbox(rig: IngressRig, tmp_path):
    body = tiktok_body(publish_id="v_pub_good_1")
    async with rig.http() as http:
        statuses = []
        for _ in range(3):
            response = await http.post("/events/tiktok", content=body, headers=_tiktok(body))
            statuses.append(response.json()["status"])
        metrics = (await http.get("/metrics")).text
    assert statuses == ["accepted", "duplicate", "duplicate"]
    assert 'tikflow_ingress_events_accepted_total{source="tiktok"} 1.0' in metrics
    assert 'tikflow_ingress_events_duplicate_total{source="tiktok"} 2.0' in metrics
    # A second replica (or a restarted ingress) knows nothing of it: Temporal de-duplicates.
    credentials = tmp_path / "other.json"
    write_credentials(credentials)
    target = rig.client.service_client.config.target_host
    with running_ingress(ingress_config(credentials, rig.task_queue), connect=connect_to(target)) as other:
        import httpx

        async with httpx.AsyncClient(base_url=other, timeout=30) as http:
            response = await http.post("/events/tiktok", content=body, headers=_tiktok(body))
    assert response.status_code == 200
    counts = await _mailbox_counts(rig, "v_pub_good_1")
    assert (counts["accepted"], counts["duplicates"]) == (1, 1)
    events = await rig.client.get_workflow_handle(mailbox_id("tiktok", "v_pub_good_1")).query(
        EventMailboxWorkflow.events
    )
    (event,) = events
    assert event.type == "post.publish.complete"
    assert event.key == "v_pub_good_1"
    assert event.body["content"] == {"publish_id": "v_pub_good_1", "publish_type": "DIRECT_PUBLISH"}
    assert "tiktok-signature" not in event.headers
    assert event.headers["content-type"] == "application/json"


async def test_standard_webhook_is_delivered_once(rig: IngressRig):
    body = b'{"lead": {"name": "Ada"}}'
    headers = {**standard_headers(body, "msg_good_1"), "x-crm-source": "form"}
    async with rig.http() as http:
        statuses = [
            (await http.post(f"/hooks/{rig.std_route}", content=body, headers=headers)).json()["status"]
            for _ in range(3)
        ]
    assert statuses == ["accepted", "duplicate", "duplicate"]
    (event,) = await rig.client.get_workflow_handle(route_workflow_id(rig.std_route)).query(
        RouteListenerWorkflow.events
    )
    assert (event.id, event.body) == ("msg_good_1", {"lead": {"name": "Ada"}})
    assert event.headers["x-crm-source"] == "form"
    assert "webhook-signature" not in event.headers


async def test_token_webhook_is_delivered_once_by_idempotency_key_or_body(rig: IngressRig):
    auth = {**JSON, "authorization": f"Bearer {TOKEN}"}
    async with rig.http() as http:
        first = [
            (
                await http.post(
                    f"/hooks/{rig.token_route}", json={"n": 1}, headers={**auth, "idempotency-key": "k1"}
                )
            )
            for _ in range(2)
        ]
        second = [
            (await http.post(f"/hooks/{rig.token_route}", json={"n": 2}, headers=auth)) for _ in range(2)
        ]
    assert [r.json()["status"] for r in first + second] == ["accepted", "duplicate", "accepted", "duplicate"]
    handle = rig.client.get_workflow_handle(route_workflow_id(rig.token_route))
    events = await handle.query(RouteListenerWorkflow.events)
    assert [e.body for e in events] == [{"n": 1}, {"n": 2}]
    assert events[0].id == "k1"
    assert all("authorization" not in e.headers for e in events)
    assert await handle.query(RouteListenerWorkflow.counts) == {"accepted": 2, "duplicates": 0}
