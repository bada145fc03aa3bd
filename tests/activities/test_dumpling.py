"""DumplingAI actions against a fake behind `httpx.MockTransport`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities import dumpling
from activities.credentials import CredentialStore
from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from activities.ratelimit import RateLimiter
from activities.registry import ActionContext, Services
from tests.support.actions import action_context, fake_services, no_sleep, run_action
from tests.support.transport import FakeProvider

KEY = "dumpling_sk_1234567890abcdef1234567890"
BASE = "https://app.dumplingai.com"


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
async def services(fake: FakeProvider, tmp_path: Path) -> AsyncIterator[Services]:
    store = CredentialStore(tmp_path / "c.json", env={"TIKFLOW_DUMPLING_API_KEY": KEY})
    svc = fake_services(fake, store, limiter=RateLimiter(sleep=no_sleep))
    async with svc.http:
        yield svc


def ctx(services: Services) -> ActionContext:
    return action_context(services, key="wf/1", action="dumpling")


def aweme(n: int) -> dict[str, Any]:
    return {
        "aweme_id": f"72000000000000000{n:02d}",
        "desc": f"clip {n}",
        "create_time": 1700000000 + n,
        "statistics": {"comment_count": 1, "digg_count": 2, "play_count": 3, "share_count": 4},
        "author": {"unique_id": "catlover", "uid": "111", "sec_uid": "MS4w"},
        # Seconds, as the docs' example of get-tiktok-profile-videos gives it.
        "video": {"duration": 15},
    }


@pytest.mark.parametrize(
    ("action", "params", "path", "body"),
    [
        ("dumpling.profile", {"handle": "@catlover"}, "/api/v1/get-tiktok-profile", {"handle": "catlover"}),
        (
            "dumpling.profile_videos",
            {"handle": "catlover", "cursor": "99"},
            "/api/v1/get-tiktok-profile-videos",
            {"handle": "catlover", "maxCursor": "99"},
        ),
        (
            "dumpling.video_comments",
            {"url": "https://www.tiktok.com/@a/video/1", "count": 20},
            "/api/v1/get-tiktok-video-comments",
            {"url": "https://www.tiktok.com/@a/video/1", "count": 20},
        ),
        (
            "dumpling.transcript",
            {"url": "https://www.tiktok.com/@a/video/1", "preferred_language": "en"},
            "/api/v1/get-tiktok-transcript",
            {"videoUrl": "https://www.tiktok.com/@a/video/1", "preferredLanguage": "en"},
        ),
    ],
)
async def test_request_shape(
    fake: FakeProvider,
    services: Services,
    action: str,
    params: dict[str, Any],
    path: str,
    body: dict[str, Any],
) -> None:
    fake.otherwise({"user": {"id": "1", "uniqueId": "catlover"}, "transcript": "WEBVTT"})
    await run_action(ctx(services), action, **params)
    (request,) = fake.requests
    assert request.method == "POST"
    assert str(request.url) == BASE + path
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content) == body


async def test_profile_normalized(fake: FakeProvider, services: Services) -> None:
    fake.otherwise(
        {
            "user": {"id": "1", "uniqueId": "catlover", "secUid": "MS4w", "nickname": "Cat"},
            "stats": {"followerCount": 10, "heart": 5, "videoCount": 2},
            "itemList": [{"id": "7", "desc": "d", "createTime": 1, "author": {"uniqueId": "catlover"}}],
        }
    )
    result = await run_action(ctx(services), "dumpling.profile", handle="catlover")
    assert result["user"]["unique_id"] == "catlover"
    assert result["stats"]["follower_count"] == 10
    assert result["stats"]["heart_count"] == 5
    assert result["items"][0]["url"] == "https://www.tiktok.com/@catlover/video/7"


async def test_profile_videos_pages_by_max_cursor(fake: FakeProvider, services: Services) -> None:
    fake.otherwise(
        {"aweme_list": [aweme(1)], "max_cursor": "1700000000000", "has_more": 1},
        {"aweme_list": [aweme(2)], "max_cursor": "1600000000000", "has_more": 0},
    )
    result = await run_action(ctx(services), "dumpling.profile_videos", handle="catlover", pages=5)
    assert [b.get("maxCursor") for b in fake.bodies()] == [None, "1700000000000"]
    assert [v["id"] for v in result["items"]] == ["7200000000000000001", "7200000000000000002"]
    assert result["items"][0]["stats"] == {
        "digg_count": 2,
        "play_count": 3,
        "comment_count": 1,
        "share_count": 4,
    }
    assert result["items"][0]["duration"] == 15
    assert (result["cursor"], result["has_more"]) == (None, False)


async def test_video_comments_pages_cap(fake: FakeProvider, services: Services) -> None:
    comment = {"cid": "5", "text": "hi", "create_time": 1, "user": {"uid": "2", "unique_id": "fan"}}
    fake.otherwise(
        {"comments": [comment], "cursor": 20, "hasMore": True, "total": 100},
        {"comments": [comment], "cursor": 40, "hasMore": True, "total": 100},
    )
    result = await run_action(
        ctx(services), "dumpling.video_comments", url="https://www.tiktok.com/@a/video/1", pages=2
    )
    assert [b.get("cursor") for b in fake.bodies()] == [None, 20]
    assert (result["cursor"], result["has_more"]) == (40, True)
    assert result["items"][0]["author"] == "fan"


async def test_transcript(fake: FakeProvider, services: Services) -> None:
    fake.otherwise(
        {"transcript": "WEBVTT\n\n00:00.000 --> 00:01.000\nhi", "language": "en", "id": 1, "originalUrl": "u"}
    )
    result = await run_action(ctx(services), "dumpling.transcript", url="https://www.tiktok.com/@a/video/1")
    assert result == {
        "transcript": "WEBVTT\n\n00:00.000 --> 00:01.000\nhi",
        "language": "en",
        "id": "1",
        "url": "u",
    }


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": "Invalid API key"}, CredentialsRejected),
        (403, {"error": "Insufficient credits"}, CredentialsRejected),
        (404, {"error": "Profile not found"}, ProviderRejected),
        (
            400,
            {"error": {"code": "invalid_request", "message": "bad handle"}, "status": "error"},
            ProviderRejected,
        ),
        (500, {"error": "Internal error"}, ProviderUnavailable),
        (502, {"error": "Upstream error"}, ProviderUnavailable),
        (503, {"error": "Upstream rate limit"}, RateLimited),
        (503, {"error": "Service unavailable"}, ProviderUnavailable),
        (429, {"error": "Too many requests"}, RateLimited),
    ],
)
async def test_errors(
    fake: FakeProvider, services: Services, status: int, body: dict[str, Any], error: type[ProviderError]
) -> None:
    fake.otherwise(httpx.Response(status, json=body))
    with pytest.raises(error) as caught:
        await run_action(ctx(services), "dumpling.profile", handle="x")
    assert type(caught.value) is error
    assert caught.value.provider == "dumpling"
    assert caught.value.status == status


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>oops</html>"),
        httpx.Response(200, content=b'{"user": {"id": '),
        httpx.Response(200, json={"user": "catlover"}),
        httpx.Response(200, json={"user": {"id": "1"}, "itemList": "nope"}),
    ],
)
async def test_garbage_is_provider_unavailable(
    fake: FakeProvider, services: Services, answer: httpx.Response
) -> None:
    fake.otherwise(answer)
    with pytest.raises(ProviderUnavailable):
        await run_action(ctx(services), "dumpling.profile", handle="x")


async def test_zero_remaining_holds_the_next_call(fake: FakeProvider, services: Services) -> None:
    headers = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0"}
    fake.otherwise(httpx.Response(200, json={"transcript": "WEBVTT"}, headers=headers))
    await run_action(ctx(services), "dumpling.transcript", url="u")
    assert services.limiter.wait_time("dumpling", "main") > 0


async def test_profile_videos_cursor_is_a_string_both_ways(fake: FakeProvider, services: Services) -> None:
    # A number from an older answer is read as its digits; a number in old recipes still validates.
    fake.otherwise(
        {"aweme_list": [aweme(1)], "max_cursor": 1700000000000, "has_more": 1},
        {"aweme_list": [aweme(2)], "max_cursor": "1600000000000", "has_more": 1},
    )
    result = await run_action(ctx(services), "dumpling.profile_videos", handle="catlover", cursor=5, pages=2)
    assert [b.get("maxCursor") for b in fake.bodies()] == ["5", "1700000000000"]
    assert (result["cursor"], result["has_more"]) == ("1600000000000", True)


def test_aweme_item_without_video_keeps_duration_unknown() -> None:
    raw = {k: v for k, v in aweme(1).items() if k != "video"}
    assert dumpling.aweme_item(raw)["duration"] is None
