"""SocialAPI actions (`activities.socialapi`) against a MockTransport."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
)
from activities.socialapi import (
    AccountsInput,
    CreatePostInput,
    GetPostInput,
    ListPostsInput,
    TiktokOptions,
    request_id,
)
from tests.support.actions import ContextFactory, contexts, run_action
from tests.support.transport import FakeProvider

BASE = "https://api.social-api.ai/v1"
REQUEST_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
KEY = "recipe-post-abc123/steps/2/for_each/7"

Responder = Callable[[httpx.Request], httpx.Response]

POST = {
    "id": "p_01HZ9X3Q4R5M6N7P8V2K0W1J",
    "status": "publishing",
    "text": "Check out this video!",
    "created_at": "2026-03-14T09:00:00Z",
    "media_ids": ["https://cdn.example.com/video.mp4"],
    "targets": [
        {
            "account_id": "acc_01",
            "platform": "tiktok",
            "status": "failed",
            "error": {"code": "platform.tiktok.media_required", "message": "Video posts require media"},
        }
    ],
}


@pytest.fixture
def store(tmp_path: Path) -> CredentialStore:
    store = CredentialStore(tmp_path / "credentials.json", env={})
    store.update("socialapi", "main", {"api_key": "sapi_key_test123"})
    return store


@pytest.fixture
async def make_ctx(tmp_path: Path, store: CredentialStore) -> AsyncIterator[ContextFactory]:
    async with contexts(store, ledger=tmp_path / "effects.json", action="socialapi", key=KEY) as build:
        yield build


def assert_headers(request: httpx.Request) -> None:
    assert request.headers["authorization"] == "Bearer sapi_key_test123"
    assert REQUEST_ID.fullmatch(request.headers["x-request-id"])


@pytest.mark.parametrize("key", ["", "a", KEY, "ü/ß" * 100, "x" * 1000])
def test_request_ids_fit_socialapis_alphabet_and_are_stable(key: str) -> None:
    assert REQUEST_ID.fullmatch(request_id(key))
    assert request_id(key) == request_id(key)
    assert request_id(key) != request_id(key + "!")


async def test_accounts_follow_the_cursor(make_ctx: ContextFactory) -> None:
    tiktok = {
        "id": "acc_01HZ9X3Q4R5M6N7P8V2K0W1J",
        "platform": "tiktok",
        "name": "Acme Corp",
        "username": "acmecorp",
        "metadata": {"follower_count": 12400, "video_count": 94},
    }

    def page(request: httpx.Request) -> httpx.Response:
        if "cursor" not in request.url.params:
            return httpx.Response(
                200, json={"data": [tiktok], "pagination": {"has_more": True, "next_cursor": "c2"}}
            )
        return httpx.Response(
            200, json={"data": [{**tiktok, "id": "acc_02"}], "pagination": {"has_more": False}}
        )

    fake = FakeProvider({("GET", "/v1/accounts"): page})

    result = await run_action(make_ctx(fake), "socialapi.accounts", AccountsInput(platform="tiktok", pages=3))

    assert [str(r.url) for r in fake.requests] == [
        f"{BASE}/accounts?platform=tiktok&limit=25",
        f"{BASE}/accounts?platform=tiktok&limit=25&cursor=c2",
    ]
    assert_headers(fake.requests[0])
    assert [a["id"] for a in result["items"]] == ["acc_01HZ9X3Q4R5M6N7P8V2K0W1J", "acc_02"]
    assert result["items"][0] == {**tiktok}
    assert (result["cursor"], result["has_more"]) == (None, False)


async def test_create_post_sends_the_body_and_idempotency_headers(
    make_ctx: ContextFactory,
) -> None:
    fake = FakeProvider({("POST", "/v1/posts"): lambda r: httpx.Response(201, json=POST)})
    params = CreatePostInput(
        account_ids=["acc_01"],
        text="Check out this video!",
        media_ids=["https://cdn.example.com/video.mp4"],
        tiktok=TiktokOptions(media_type="video", privacy_level="SELF_ONLY"),
        scheduled_at=datetime(2030, 4, 1, 10, 0, tzinfo=UTC),
    )

    result = await run_action(make_ctx(fake), "socialapi.create_post", params)

    request = fake.requests[0]
    assert str(request.url) == f"{BASE}/posts"
    assert_headers(request)
    assert request.headers["x-request-id"] == request_id(KEY)
    assert request.headers["idempotency-key"] == request_id(KEY)
    assert json.loads(request.content) == {
        "account_ids": ["acc_01"],
        "text": "Check out this video!",
        "media_ids": ["https://cdn.example.com/video.mp4"],
        "platform_data": {"tiktok": {"media_type": "video", "privacy_level": "SELF_ONLY"}},
        "scheduled_at": "2030-04-01T10:00:00+00:00",
    }
    assert result["post_id"] == "p_01HZ9X3Q4R5M6N7P8V2K0W1J"
    assert result["status"] == "publishing"
    assert result["targets"][0]["error"] == {
        "code": "platform.tiktok.media_required",
        "message": "Video posts require media",
    }
    assert result["already_done"] is False


async def test_a_rerun_of_create_post_makes_no_second_create(make_ctx: ContextFactory) -> None:
    fake = FakeProvider({("POST", "/v1/posts"): lambda r: httpx.Response(201, json={"data": POST})})
    params = CreatePostInput(account_ids=["acc_01"], text="hi")

    first = await run_action(make_ctx(fake), "socialapi.create_post", params)
    second = await run_action(make_ctx(fake), "socialapi.create_post", params)
    other_step = await run_action(make_ctx(fake, key=KEY + "-other"), "socialapi.create_post", params)

    assert len(fake.requests) == 2
    assert second == {**first, "already_done": True}
    assert other_step["already_done"] is False
    assert json.loads(fake.requests[0].content) == {"account_ids": ["acc_01"], "text": "hi", "media_ids": []}


async def test_get_post_normalizes_targets(make_ctx: ContextFactory) -> None:
    published = {
        **POST,
        "status": "published",
        "published_at": "2026-04-01T10:00:05Z",
        "targets": [
            {
                "account_id": "acc_01",
                "platform": "tiktok",
                "status": "published",
                "platform_post_id": "7291",
                "permalink": "https://www.tiktok.com/@acme/video/7291",
                "published_at": "2026-04-01T10:00:05Z",
            }
        ],
    }
    fake = FakeProvider({("GET", f"/v1/posts/{POST['id']}"): lambda r: httpx.Response(200, json=published)})

    result = await run_action(make_ctx(fake), "socialapi.get_post", GetPostInput(post_id=str(POST["id"])))

    assert_headers(fake.requests[0])
    assert result["status"] == "published"
    assert result["targets"] == [
        {
            "account_id": "acc_01",
            "platform": "tiktok",
            "status": "published",
            "platform_post_id": "7291",
            "permalink": "https://www.tiktok.com/@acme/video/7291",
            "published_at": "2026-04-01T10:00:05Z",
            "error": None,
        }
    ]
    assert result["raw"] == published


async def test_list_posts_sends_filters_and_stops_at_the_page_budget(
    make_ctx: ContextFactory,
) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        following = "n" + str(int(request.url.params.get("cursor", "n1")[1:]) + 1)
        return httpx.Response(
            200,
            json={"data": [POST], "pagination": {"has_more": True, "limit": 10, "next_cursor": following}},
        )

    fake = FakeProvider({("GET", "/v1/posts"): page})
    params = ListPostsInput(
        status="published", platform="tiktok", account_ids=["acc_01", "acc_02"], limit=10, pages=2
    )

    result = await run_action(make_ctx(fake), "socialapi.list_posts", params)

    assert [dict(r.url.params) for r in fake.requests] == [
        {"status": "published", "platform": "tiktok", "account_ids": "acc_01,acc_02", "limit": "10"},
        {
            "status": "published",
            "platform": "tiktok",
            "account_ids": "acc_01,acc_02",
            "limit": "10",
            "cursor": "n2",
        },
    ]
    assert len(result["items"]) == 2
    assert (result["cursor"], result["has_more"]) == ("n3", True)


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (
            401,
            {
                "error": {"code": "auth.invalid_token", "message": "Bearer token is invalid"},
                "request_id": "r1",
            },
            SessionExpired,
            "auth.invalid_token",
        ),
        (401, {"error": "Token expired", "code": "invalid_token"}, SessionExpired, "invalid_token"),
        (401, {"error": "Invalid API key", "code": "unauthorized"}, CredentialsRejected, "unauthorized"),
        (
            404,
            {"error": "Account not found", "code": "account_not_found"},
            ProviderRejected,
            "account_not_found",
        ),
        (
            429,
            {"error": "Plan quota reached", "code": "rate_limit_exceeded"},
            RateLimited,
            "rate_limit_exceeded",
        ),
        (
            429,
            {"error": {"code": "platform.rate_limit", "message": "TikTok says slow down"}},
            RateLimited,
            "platform.rate_limit",
        ),
        (
            501,
            {"error": "Not supported for tiktok", "code": "not_supported"},
            ProviderRejected,
            "not_supported",
        ),
        (
            500,
            {"error": {"code": "internal.error", "message": "boom"}, "request_id": "r5"},
            ProviderUnavailable,
            "internal.error",
        ),
        (502, {"error": "bad gateway"}, ProviderUnavailable, None),
    ],
)
async def test_both_error_shapes_map_into_the_error_tree(
    make_ctx: ContextFactory,
    status: int,
    body: dict[str, Any],
    error: type[ProviderError],
    code: str | None,
) -> None:
    fake = FakeProvider(
        {("GET", "/v1/posts/p_1"): lambda r: httpx.Response(status, json=body, headers={"Retry-After": "30"})}
    )
    with pytest.raises(error) as caught:
        await run_action(make_ctx(fake), "socialapi.get_post", GetPostInput(post_id="p_1"))
    assert type(caught.value) is error
    assert (caught.value.code, caught.value.status, caught.value.account) == (code, status, "main")
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 30.0
    if isinstance(caught.value, SessionExpired):
        assert "reconnect" in str(caught.value)
    if "request_id" in body:
        assert f"request_id {body['request_id']}" in str(caught.value)
