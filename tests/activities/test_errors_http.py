"""The shared HTTP boundary (`send`), the error tree's Temporal mapping and the limiter's headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from activities.credentials import CredentialStore
from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    SessionExpired,
    to_application_error,
)
from activities.http import MAX_BODY_BYTES, Reply, send
from activities.ratelimit import RateLimiter, parse_retry_after
from activities.registry import ActionContext, Services
from activities.settings import Settings

URL = "https://api.example.test/v1/things"


def never(_reply: Reply, _account: str) -> ProviderError | None:
    return None


async def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def answer() -> list[Callable[[httpx.Request], httpx.Response]]:
    return []


@pytest.fixture
async def ctx(
    answer: list[Callable[[httpx.Request], httpx.Response]], tmp_path: Path
) -> AsyncIterator[ActionContext]:
    services = Services(
        http=httpx.AsyncClient(transport=httpx.MockTransport(lambda r: answer[0](r))),
        credentials=CredentialStore(tmp_path / "c.json", env={}),
        settings=Settings(),
        limiter=RateLimiter(sleep=_no_sleep),
    )
    async with services.http:
        yield ActionContext(services=services, account="main", idempotency_key="k", action="test.thing")


def _raise(exc: type[httpx.RequestError]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)

    return handler


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.ConnectError, httpx.RemoteProtocolError]
)
async def test_transport_failures_are_unavailable(
    ctx: ActionContext, answer: list[Callable[[httpx.Request], httpx.Response]], exc: type[httpx.RequestError]
) -> None:
    answer.append(_raise(exc))
    with pytest.raises(ProviderUnavailable, match=exc.__name__) as caught:
        await send(ctx, "example", "GET", URL, classify=never)
    assert caught.value.account == "main"


async def test_a_refused_connection_names_the_host_and_no_secret() -> None:
    """Over a real socket: nothing listens on the port, the message says where the call went."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago refuses connections
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    services = Services(
        http=httpx.AsyncClient(),
        credentials=CredentialStore(Path("/nonexistent/c.json"), env={}),
        settings=Settings(),
        limiter=RateLimiter(sleep=_no_sleep),
    )
    ctx = ActionContext(services=services, account="main", idempotency_key="k", action="test.thing")
    async with services.http:
        url = f"http://user:hunter2@127.0.0.1:{port}/api/public/hashtag?name=cats&token=sekrit123"
        with pytest.raises(ProviderUnavailable) as provider_call:
            await send(ctx, "tikapi", "GET", url, classify=never, params={"api_key": "k3y"})
        with pytest.raises(ProviderUnavailable) as webhook:
            await send(
                ctx, "http", "POST", f"http://127.0.0.1:{port}/services/T0/B0/hooktoken", classify=never
            )
    message = str(provider_call.value)
    assert message.startswith(f"tikapi: GET 127.0.0.1:{port}/api/public/hashtag failed: ConnectError")
    assert str(webhook.value).startswith(f"http: POST 127.0.0.1:{port} failed: ConnectError")
    for secret in ("hunter2", "sekrit123", "k3y", "token=", "user", "hooktoken"):
        assert secret not in message + str(webhook.value)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html></html>", headers={"content-type": "text/html"}),
        httpx.Response(401, text="Unauthorized", headers={"content-type": "text/plain"}),
        httpx.Response(200, content=b""),
        httpx.Response(200, content=b'{"a": [1, 2'),
    ],
)
async def test_unreadable_bodies_are_unavailable(
    ctx: ActionContext, answer: list[Callable[[httpx.Request], httpx.Response]], response: httpx.Response
) -> None:
    answer.append(lambda _r: response)
    with pytest.raises(ProviderUnavailable):
        await send(ctx, "example", "GET", URL, classify=never)


class _Endless(httpx.AsyncByteStream):
    """A body that never ends (no Content-Length): it counts what the client pulled."""

    def __init__(self) -> None:
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = b"x" * 65536
        while True:
            self.sent += len(chunk)
            yield chunk


async def test_a_huge_body_is_abandoned_at_the_limit_not_read_to_the_end(
    ctx: ActionContext, answer: list[Callable[[httpx.Request], httpx.Response]]
) -> None:
    stream = _Endless()
    answer.append(lambda _r: httpx.Response(200, stream=stream))
    with pytest.raises(ProviderUnavailable, match=f"over the {MAX_BODY_BYTES} byte limit"):
        await send(ctx, "example", "GET", URL, classify=never)
    assert MAX_BODY_BYTES < stream.sent <= MAX_BODY_BYTES + 65536


async def test_a_declared_huge_body_is_refused_before_reading(
    ctx: ActionContext, answer: list[Callable[[httpx.Request], httpx.Response]]
) -> None:
    stream = _Endless()
    headers = {"content-length": str(10 * MAX_BODY_BYTES)}
    answer.append(lambda _r: httpx.Response(200, headers=headers, stream=stream))
    with pytest.raises(ProviderUnavailable, match=f"answered a body of {10 * MAX_BODY_BYTES} bytes"):
        await send(ctx, "example", "GET", URL, classify=never)
    assert stream.sent == 0


async def test_an_error_status_the_classifier_missed_is_never_a_success(
    ctx: ActionContext, answer: list[Callable[[httpx.Request], httpx.Response]]
) -> None:
    answer.append(lambda _r: httpx.Response(418, json={"teapot": True}))
    with pytest.raises(ProviderUnavailable, match="HTTP 418"):
        await send(ctx, "example", "GET", URL, classify=never)


async def test_none_params_are_dropped_and_headers_sent(
    ctx: ActionContext, answer: list[Callable[[httpx.Request], httpx.Response]]
) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    answer.append(record)
    reply = await send(
        ctx, "example", "GET", URL, classify=never, params={"a": 1, "b": None}, headers={"X-Key": "k"}
    )
    assert reply.body == {"ok": True}
    assert dict(seen[0].url.params) == {"a": "1"}
    assert seen[0].headers["X-Key"] == "k"


async def test_rate_limit_blocks_the_key_until_reset(
    ctx: ActionContext, answer: list[Callable[[httpx.Request], httpx.Response]]
) -> None:
    def classify(reply: Reply, account: str) -> ProviderError | None:
        return RateLimited("slow down", provider="example", retry_after=parse_retry_after(reply.headers))

    answer.append(lambda _r: httpx.Response(429, json={}, headers={"Retry-After": "30"}))
    with pytest.raises(RateLimited) as caught:
        await send(ctx, "example", "GET", URL, classify=classify)
    assert caught.value.retry_after == 30.0
    assert caught.value.account == "main"
    assert ctx.services.limiter.wait_time("example", "main") > 25


def test_parse_retry_after_variants() -> None:
    assert parse_retry_after(httpx.Headers({"Retry-After": "12"})) == 12.0
    assert parse_retry_after(httpx.Headers({"X-RateLimit-Reset": "7"})) == 7.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({})) is None


@pytest.mark.parametrize(
    ("error", "non_retryable", "delay"),
    [
        (ProviderUnavailable("x", provider="p"), False, None),
        (RateLimited("x", provider="p", retry_after=20), False, timedelta(seconds=20)),
        (RateLimited("x", provider="p", retry_after=3600), True, None),
        (RateLimited("x", provider="p"), False, None),
        (SessionExpired("x", provider="p", account="main"), True, None),
        (CredentialsRejected("x", provider="p"), True, None),
        (ProviderRejected("x", provider="p", code=10202), True, None),
    ],
)
def test_application_error_mapping(
    error: ProviderError, non_retryable: bool, delay: timedelta | None
) -> None:
    app = to_application_error(error)
    assert app.type == type(error).__name__
    assert app.non_retryable is non_retryable
    assert app.next_retry_delay == delay
    assert app.details[0]["provider"] == "p"
