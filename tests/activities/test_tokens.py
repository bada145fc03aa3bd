"""Token refresh coordination (`activities.tokens`), driven through `tiktok.user_info`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

import activities.tiktok  # noqa: F401  (registers the tiktok actions)
from activities.credentials import CredentialStore
from activities.errors import CredentialsRejected, ProviderUnavailable, SessionExpired
from activities.registry import ACTIONS, ActionContext
from activities.tiktok import UserInfoInput
from tests.support.actions import ContextFactory, action_context, contexts, fake_services

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]

OLD = {
    "client_key": "ck_test",
    "client_secret": "cs_test",
    "access_token": "act.old",
    "refresh_token": "rft.old",
    "open_id": "open-1",
}


def api_ok(data: dict[str, object]) -> httpx.Response:
    return httpx.Response(200, json={"data": data, "error": {"code": "ok", "message": "", "log_id": "L"}})


def token_invalid() -> httpx.Response:
    return httpx.Response(
        401,
        json={
            "data": {},
            "error": {
                "code": "access_token_invalid",
                "message": "The access token is invalid",
                "log_id": "L",
            },
        },
    )


def new_pair(n: int = 1) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "access_token": f"act.new{n}",
            "expires_in": 86400,
            "open_id": "open-1",
            "refresh_expires_in": 31536000,
            "refresh_token": f"rft.new{n}",
            "scope": "user.info.basic",
            "token_type": "Bearer",
        },
    )


class Provider:
    """A fake TikTok: records requests, answers the token endpoint and user/info."""

    def __init__(
        self, token_answer: Callable[[], httpx.Response] = new_pair, valid: str = "act.new1"
    ) -> None:
        self.requests: list[httpx.Request] = []
        self.token_answer = token_answer
        self.valid = valid
        self.on_refresh: Callable[[], None] | None = None

    @property
    def refreshes(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == "/v2/oauth/token/"]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        # Yield, as a real network round trip would, so concurrent callers interleave.
        await asyncio.sleep(0.01)
        if request.url.path == "/v2/oauth/token/":
            if self.on_refresh:
                self.on_refresh()
            return self.token_answer()
        if request.headers["authorization"] != f"Bearer {self.valid}":
            return token_invalid()
        return api_ok({"user": {"open_id": "open-1", "display_name": "Cat"}})


@pytest.fixture
def store(tmp_path: Path) -> CredentialStore:
    return CredentialStore(tmp_path / "credentials.json", env={})


@pytest.fixture
async def make_ctx(tmp_path: Path, store: CredentialStore) -> AsyncIterator[ContextFactory]:
    ledger = tmp_path / "effects.json"
    async with contexts(store, ledger=ledger, action="tiktok.user_info", key="wf/step") as build:
        yield build


async def user_info(ctx: ActionContext) -> dict[str, object]:
    return await ACTIONS["tiktok.user_info"].handler(ctx, UserInfoInput(fields=["open_id", "display_name"]))


async def test_an_expired_token_is_refreshed_before_the_call_and_the_rotated_pair_stored(
    make_ctx: ContextFactory, store: CredentialStore
) -> None:
    store.update("tiktok", "main", {**OLD, "expires_at": str(int(time.time()) - 10)})
    provider = Provider()

    result = await user_info(make_ctx(provider))

    assert result == {"open_id": "open-1", "display_name": "Cat"}
    assert [r.url.path for r in provider.requests] == ["/v2/oauth/token/", "/v2/user/info/"]
    refresh = provider.refreshes[0]
    assert refresh.method == "POST"
    assert refresh.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(refresh.content.decode()) == {
        "client_key": ["ck_test"],
        "client_secret": ["cs_test"],
        "grant_type": ["refresh_token"],
        "refresh_token": ["rft.old"],
    }
    stored = store.get("tiktok", "main")
    assert stored["access_token"] == "act.new1"
    assert stored["refresh_token"] == "rft.new1"
    assert abs(int(stored["expires_at"]) - (time.time() + 86400)) < 60
    assert stored["client_secret"] == "cs_test"


async def test_a_token_within_the_margin_is_refreshed_too(
    make_ctx: ContextFactory, store: CredentialStore
) -> None:
    store.update("tiktok", "main", {**OLD, "expires_at": str(int(time.time()) + 30)})
    provider = Provider()
    await user_info(make_ctx(provider))
    assert len(provider.refreshes) == 1


async def test_a_fresh_token_is_used_without_refreshing(
    make_ctx: ContextFactory, store: CredentialStore
) -> None:
    store.update("tiktok", "main", {**OLD, "expires_at": str(int(time.time()) + 3600)})
    provider = Provider(valid="act.old")
    await user_info(make_ctx(provider))
    assert provider.refreshes == []


async def test_twenty_concurrent_calls_with_an_expired_token_refresh_exactly_once(
    make_ctx: ContextFactory, store: CredentialStore
) -> None:
    store.update("tiktok", "main", {**OLD, "expires_at": str(int(time.time()) - 10)})
    provider = Provider()
    ctx = make_ctx(provider)

    results = await asyncio.gather(*(user_info(ctx) for _ in range(20)))

    assert len(provider.refreshes) == 1
    assert all(r["display_name"] == "Cat" for r in results)
    calls = [r for r in provider.requests if r.url.path == "/v2/user/info/"]
    assert len(calls) == 20
    assert {r.headers["authorization"] for r in calls} == {"Bearer act.new1"}


async def test_twenty_concurrent_calls_rejected_with_access_token_invalid_refresh_exactly_once(
    make_ctx: ContextFactory, store: CredentialStore
) -> None:
    # The stored expiry looks fine, but TikTok revoked the token early: every call sees a 401.
    store.update("tiktok", "main", {**OLD, "expires_at": str(int(time.time()) + 3600)})
    provider = Provider()
    ctx = make_ctx(provider)

    results = await asyncio.gather(*(user_info(ctx) for _ in range(20)))

    assert len(provider.refreshes) == 1
    assert len(results) == 20
    assert store.get("tiktok", "main")["refresh_token"] == "rft.new1"


async def test_a_refused_refresh_is_session_expired_with_what_to_do(
    make_ctx: ContextFactory, store: CredentialStore
) -> None:
    store.update("tiktok", "main", {**OLD, "expires_at": str(int(time.time()) - 10)})

    def invalid_grant() -> httpx.Response:
        # TikTok's OAuth errors are flat and may come with HTTP 200.
        return httpx.Response(
            200,
            json={
                "error": "invalid_grant",
                "error_description": "Refresh token is invalid or expired.",
                "log_id": "L9",
            },
        )

    provider = Provider(token_answer=invalid_grant)
    with pytest.raises(SessionExpired) as caught:
        await user_info(make_ctx(provider))

    assert caught.value.code == "invalid_grant"
    assert caught.value.account == "main"
    assert "re-authorize" in str(caught.value)
    assert "rft.old" not in str(caught.value)
    assert store.get("tiktok", "main")["refresh_token"] == "rft.old"
    assert [r.url.path for r in provider.requests] == ["/v2/oauth/token/"]


async def test_a_refresh_refused_because_another_process_rotated_the_token_uses_the_new_pair(
    make_ctx: ContextFactory, store: CredentialStore
) -> None:
    store.update("tiktok", "main", {**OLD, "expires_at": str(int(time.time()) - 10)})
    provider = Provider(
        token_answer=lambda: httpx.Response(
            400, json={"error": "invalid_grant", "error_description": "used"}
        ),
        valid="act.other",
    )
    provider.on_refresh = lambda: store.update(
        "tiktok",
        "main",
        {
            "access_token": "act.other",
            "refresh_token": "rft.other",
            "expires_at": str(int(time.time()) + 3600),
        },
    )

    result = await user_info(make_ctx(provider))

    assert result["display_name"] == "Cat"


async def test_a_refresh_that_cannot_be_tried_now_stays_retryable(
    make_ctx: ContextFactory, store: CredentialStore
) -> None:
    store.update("tiktok", "main", {**OLD, "expires_at": str(int(time.time()) - 10)})
    provider = Provider(token_answer=lambda: httpx.Response(503, text="upstream down"))
    with pytest.raises(ProviderUnavailable):
        await user_info(make_ctx(provider))


async def test_refused_client_credentials_fail_fast(make_ctx: ContextFactory, store: CredentialStore) -> None:
    store.update("tiktok", "main", {**OLD, "expires_at": str(int(time.time()) - 10)})
    provider = Provider(
        token_answer=lambda: httpx.Response(
            401, json={"error": "invalid_client", "error_description": "Client key or secret is incorrect."}
        )
    )
    with pytest.raises(CredentialsRejected, match="client_key and client_secret"):
        await user_info(make_ctx(provider))


async def test_no_refresh_token_is_session_expired(make_ctx: ContextFactory, store: CredentialStore) -> None:
    store.update(
        "tiktok",
        "main",
        {"client_key": "ck", "client_secret": "cs", "access_token": "act.old", "expires_at": "1"},
    )
    provider = Provider()
    with pytest.raises(SessionExpired, match="no refresh token"):
        await user_info(make_ctx(provider))
    assert provider.requests == []


async def test_a_just_refreshed_token_that_is_rejected_again_is_session_expired(
    make_ctx: ContextFactory, store: CredentialStore
) -> None:
    store.update("tiktok", "main", {**OLD, "expires_at": str(int(time.time()) + 3600)})
    provider = Provider(valid="never")
    with pytest.raises(SessionExpired, match="revoked"):
        await user_info(make_ctx(provider))
    assert [r.url.path for r in provider.requests] == ["/v2/user/info/", "/v2/oauth/token/", "/v2/user/info/"]


async def test_two_worker_processes_sharing_the_file_refresh_once(tmp_path: Path) -> None:
    """Each process has its own store object, locks and HTTP pool; only the file is shared."""
    path = tmp_path / "credentials.json"
    CredentialStore(path, env={}).update("tiktok", "main", {**OLD, "expires_at": str(int(time.time()) - 10)})
    provider = Provider()
    workers = []
    for n in range(2):
        store = CredentialStore(path, env={})
        services = fake_services(provider, store, ledger=tmp_path / f"effects-{n}.json")
        workers.append(action_context(services, key="wf/step", action="tiktok.user_info"))

    results = await asyncio.gather(*(user_info(workers[i % 2]) for i in range(20)))

    assert len(provider.refreshes) == 1
    assert all(r["display_name"] == "Cat" for r in results)
    assert CredentialStore(path, env={}).get("tiktok", "main")["refresh_token"] == "rft.new1"
    for ctx in workers:
        await ctx.services.http.aclose()
