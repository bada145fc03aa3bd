"""TikAPI actions against a fake TikAPI behind `httpx.MockTransport` (the transport is the only seam)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities import tikapi
from activities.credentials import CredentialStore
from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    SessionExpired,
)
from activities.ratelimit import RateLimiter
from activities.registry import ACTIONS, ActionContext, Services
from tests.support.actions import action_context, fake_services, no_sleep, run_action
from tests.support.transport import FakeProvider

API_KEY = "DemoAPIKeyTokenSeHYGXDfd4SFD320Sc39Asd0Sc39Asd4s"
ACCOUNT_KEY = "DemoAccountKeyTokenSeHYGXDfd4SFD320Sc39Asd0Sc39A"
BASE = "https://api.tikapi.io"
ME = {"id": "6569595380449902597", "uniqueId": "ourbrand", "secUid": "MS4wLjABAAAAour"}


def tikapi_ok(body: dict[str, Any]) -> httpx.Response:
    """TikAPI's success envelope around `body`."""
    return httpx.Response(200, json={"status": "success", **body})


def no_route(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, json={"status": "error", "message": f"no route {request.url.path}"})


def fake_tikapi() -> FakeProvider:
    """A fake TikAPI: dict answers in its success envelope, unknown paths answered 404."""
    fake = FakeProvider(ok=tikapi_ok)
    fake.otherwise(no_route)
    return fake


def services_for(fake: FakeProvider, tmp_path: Path, env: dict[str, str] | None = None) -> Services:
    store = CredentialStore(tmp_path / "credentials.json", env=env or {})
    if env is None:
        store.update("tikapi", "main", {"api_key": API_KEY, "account_key": ACCOUNT_KEY})
    return fake_services(fake, store, limiter=RateLimiter(sleep=no_sleep))


def ctx(services: Services) -> ActionContext:
    return action_context(services, key="wf-1/step-1", action="tikapi")


@pytest.fixture
def fake() -> FakeProvider:
    return fake_tikapi()


@pytest.fixture
async def services(fake: FakeProvider, tmp_path: Path) -> AsyncIterator[Services]:
    svc = services_for(fake, tmp_path)
    async with svc.http:
        yield svc


def video(n: int) -> dict[str, Any]:
    return {
        "id": f"71091782051514647{n:02d}",
        "desc": f"video {n}",
        "createTime": 1700000000 + n,
        "author": {"uniqueId": "catlover", "id": "111", "secUid": "MS4wLjABAAAAcat"},
        "stats": {"diggCount": n, "playCount": 10 * n, "commentCount": 2, "shareCount": 1},
        "video": {"duration": 15},
    }


def comment(
    cid: str, text: str, *, uid: str = "222", unique_id: str = "fan", reply_to: str = "0"
) -> dict[str, Any]:
    return {
        "cid": cid,
        "text": text,
        "create_time": 1700000100,
        "digg_count": 3,
        "reply_comment_total": 1,
        "aweme_id": "7109178205151464746",
        "reply_id": reply_to,
        "user": {"uid": uid, "unique_id": unique_id, "nickname": unique_id},
    }


# ---------------------------------------------------------------------------------------------
# Request shapes.

READS: list[tuple[str, dict[str, Any], str, dict[str, str], dict[str, Any]]] = [
    ("tikapi.profile", {"username": "lilyachty"}, "/public/check", {"username": "lilyachty"}, {}),
    (
        "tikapi.user_posts",
        {"sec_uid": "MS4wLjABAAAAx", "cursor": "123"},
        "/public/posts",
        {"secUid": "MS4wLjABAAAAx", "count": "30", "cursor": "123"},
        {"itemList": []},
    ),
    ("tikapi.video", {"id": "7003402629929913605"}, "/public/video", {"id": "7003402629929913605"}, {}),
    (
        "tikapi.search",
        {"query": "cats", "category": "users"},
        "/public/search/users",
        {"query": "cats"},
        {},
    ),
    ("tikapi.explore", {"count": 5}, "/public/explore", {"count": "5"}, {}),
    (
        "tikapi.comments",
        {"media_id": "7109178205151464746", "cursor": 20, "count": 10},
        "/public/comment/list",
        {"media_id": "7109178205151464746", "count": "10", "cursor": "20"},
        {},
    ),
    (
        "tikapi.my_comments",
        {"media_id": "7109178205151464746"},
        "/user/comment/list",
        {"media_id": "7109178205151464746", "count": "30"},
        {},
    ),
    (
        "tikapi.replies",
        {"media_id": "7109178205151464746", "comment_id": "7109185042560680750"},
        "/public/comment/reply/list",
        {"media_id": "7109178205151464746", "comment_id": "7109185042560680750", "count": "30"},
        {},
    ),
    ("tikapi.feed", {}, "/user/feed", {"count": "30"}, {}),
    ("tikapi.followers", {"cursor": 5}, "/user/followers", {"count": "30", "nextCursor": "5"}, {}),
    ("tikapi.conversations", {}, "/user/conversations", {}, {}),
    ("tikapi.message_requests", {}, "/user/conversations/requests", {}, {}),
    (
        "tikapi.messages",
        {"conversation_id": "0:1:68:69", "conversation_short_id": "694", "limit": 20, "exclude_own": False},
        "/user/messages",
        {"conversation_id": "0:1:68:69", "conversation_short_id": "694", "limit": "20"},
        {},
    ),
    (
        "tikapi.notifications",
        {"filter": "comments"},
        "/user/notifications",
        {"filter": "comments", "count": "30"},
        {},
    ),
    (
        "tikapi.analytics",
        {"type": "followers", "days": 28},
        "/creator/analytics/followers",
        {"days": "28"},
        {},
    ),
    ("tikapi.session_check", {}, "/user/session/check", {}, {}),
    ("tikapi.key_info", {}, "/key/info", {}, {}),
    ("tikapi.me", {}, "/user/info", {}, {}),
]

CANNED: dict[str, dict[str, Any]] = {
    "/public/check": {"userInfo": {"user": ME, "stats": {"followerCount": 7}}},
    "/user/info": {"userInfo": {"user": ME, "stats": {"followerCount": 7}}},
    "/public/video": {"itemInfo": {"itemStruct": video(1)}},
}


@pytest.mark.parametrize(("name", "params", "path", "query", "body"), READS, ids=[r[0] for r in READS])
async def test_read_request_shape(
    fake: FakeProvider,
    services: Services,
    name: str,
    params: dict[str, Any],
    path: str,
    query: dict[str, str],
    body: dict[str, Any],
) -> None:
    fake.on("GET", path, body or CANNED.get(path, {}))
    await run_action(ctx(services), name, **params)
    (request,) = fake.requests
    assert request.method == "GET"
    assert str(request.url).startswith(BASE + path)
    assert dict(request.url.params) == query
    assert request.content == b""
    assert request.headers["X-API-KEY"] == API_KEY
    if path.startswith(("/user/", "/creator/")):
        assert request.headers["X-ACCOUNT-KEY"] == ACCOUNT_KEY
    else:
        assert "X-ACCOUNT-KEY" not in request.headers


async def test_hashtag_first_by_name_then_by_id(fake: FakeProvider, services: Services) -> None:
    challenge = {"challenge": {"id": "4655293", "title": "cats"}, "stats": {"videoCount": 9, "viewCount": 99}}
    fake.on(
        "GET",
        "/public/hashtag",
        {"challengeInfo": challenge, "itemList": [video(1)], "hasMore": True, "cursor": "30"},
        {"itemList": [video(2)], "hasMore": True, "cursor": "60"},
        {"itemList": [video(3)], "hasMore": False, "cursor": "90"},
    )
    result = await run_action(ctx(services), "tikapi.hashtag_posts", name="cats", pages=5, count=30)
    queries = [dict(r.url.params) for r in fake.requests]
    assert queries == [
        {"name": "cats", "count": "30"},
        {"id": "4655293", "count": "30", "cursor": "30"},
        {"id": "4655293", "count": "30", "cursor": "60"},
    ]
    assert [v["desc"] for v in result["items"]] == ["video 1", "video 2", "video 3"]
    assert result["hashtag"] == {"id": "4655293", "title": "cats", "video_count": 9, "view_count": 99}
    assert result["has_more"] is False
    assert result["cursor"] is None


async def test_hashtag_by_id_directly(fake: FakeProvider, services: Services) -> None:
    fake.on("GET", "/public/hashtag", {"itemList": [video(1)], "hasMore": True, "cursor": "30"})
    result = await run_action(ctx(services), "tikapi.hashtag_posts", id="4655293")
    assert [dict(r.url.params) for r in fake.requests] == [{"id": "4655293", "count": "30"}]
    assert result["cursor"] == "30"
    assert result["has_more"] is True


async def test_hashtag_name_with_one_page_keeps_cursor(fake: FakeProvider, services: Services) -> None:
    challenge = {"challenge": {"id": "4655293", "title": "cats"}}
    fake.on(
        "GET",
        "/public/hashtag",
        {"challengeInfo": challenge, "itemList": [video(1)], "hasMore": 1, "cursor": 30},
    )
    result = await run_action(ctx(services), "tikapi.hashtag_posts", name="cats")
    assert len(fake.requests) == 1
    assert result["cursor"] == "30"  # a string, as the client's type check wants it back
    assert result["hashtag"]["id"] == "4655293"


POSTS = [
    (
        "tikapi.reply",
        {"media_id": "7109178205151464746", "reply_comment_id": "7109185042560680750", "text": "Hi"},
    ),
    ("tikapi.comment", {"media_id": "7109178205151464746", "text": "Hi"}),
    ("tikapi.like_comment", {"media_id": "7109178205151464746", "comment_id": "7109185042560680750"}),
    ("tikapi.delete_comment", {"comment_id": "7109185042560680750"}),
    ("tikapi.like_video", {"media_id": "7109178205151464746"}),
    ("tikapi.unlike_comment", {"media_id": "7109178205151464746", "comment_id": "7109185042560680750"}),
    ("tikapi.unlike_video", {"media_id": "7109178205151464746"}),
    (
        "tikapi.send_message",
        {"conversation_id": "0:1:68:69", "conversation_short_id": "694", "text": "Hi", "ticket": "tkt"},
    ),
]
POST_PATHS = {
    "tikapi.reply": "/user/comment",
    "tikapi.comment": "/user/comment",
    "tikapi.like_comment": "/user/comment/like",
    "tikapi.delete_comment": "/user/comment/delete",
    "tikapi.like_video": "/user/like",
    "tikapi.unlike_comment": "/user/comment/unlike",
    "tikapi.unlike_video": "/user/unlike",
    "tikapi.send_message": "/user/message/send",
}


@pytest.mark.parametrize(("name", "params"), POSTS, ids=[p[0] for p in POSTS])
async def test_post_request_shape(
    fake: FakeProvider, services: Services, name: str, params: dict[str, Any]
) -> None:
    fake.on("GET", "/user/info", CANNED["/user/info"])
    for listing in ("/user/comment/reply/list", "/user/comment/list", "/user/messages"):
        fake.on("GET", listing, {"comments": [], "messages": []})
    path = POST_PATHS[name]
    fake.on("POST", path, {"comment": comment("1", "Hi", uid=ME["id"])})
    await run_action(ctx(services), name, **params)
    (request,) = fake.calls("POST", path)
    assert request.headers["X-API-KEY"] == API_KEY
    assert request.headers["X-ACCOUNT-KEY"] == ACCOUNT_KEY
    assert request.headers["content-type"] == "application/json"
    assert request.url.query == b""
    assert json.loads(request.content) == params


async def test_accept_request_is_a_get_with_query(fake: FakeProvider, services: Services) -> None:
    fake.on("GET", "/user/conversations/requests/accept", {})
    params = {
        "conversation_id": "0:1:68:69",
        "conversation_short_id": "694",
        "user_id": "6569595380449902597",
    }
    result = await run_action(ctx(services), "tikapi.accept_request", **params)
    (request,) = fake.requests
    assert dict(request.url.params) == params
    assert result == {"accepted": True, "already_done": False}


# ---------------------------------------------------------------------------------------------
# Normalized results.


async def test_video_and_comment_items_have_stable_keys(fake: FakeProvider, services: Services) -> None:
    fake.on("GET", "/public/posts", {"itemList": [video(1)], "hasMore": False})
    fake.on(
        "GET", "/public/comment/list", {"comments": [comment("77", "price?", reply_to="0")], "has_more": 0}
    )
    posts = await run_action(ctx(services), "tikapi.user_posts", sec_uid="MS4wLjABAAAAx")
    assert posts["items"] == [
        {
            "id": "7109178205151464701",
            "desc": "video 1",
            "create_time": 1700000001,
            "author": "catlover",
            "author_id": "111",
            "author_sec_uid": "MS4wLjABAAAAcat",
            "stats": {"digg_count": 1, "play_count": 10, "comment_count": 2, "share_count": 1},
            "duration": 15,
            "url": "https://www.tiktok.com/@catlover/video/7109178205151464701",
        }
    ]
    comments = await run_action(ctx(services), "tikapi.comments", media_id="7109178205151464746")
    assert comments["items"] == [
        {
            "cid": "77",
            "text": "price?",
            "create_time": 1700000100,
            "author": "fan",
            "user_id": "222",
            "aweme_id": "7109178205151464746",
            "reply_count": 1,
            "digg_count": 3,
            "reply_to": None,
        }
    ]
    assert comments["has_more"] is False
    assert "raw" not in comments


async def test_key_info_keeps_accounts_out_of_the_result(fake: FakeProvider, services: Services) -> None:
    fake.on(
        "GET",
        "/key/info",
        {
            "credits": 779,
            "subscription_active": 1,
            "accounts": [{"account_key": ACCOUNT_KEY}],
            "email": "x@y.z",
        },
    )
    result = await run_action(ctx(services), "tikapi.key_info")
    assert result["credits"] == 779
    assert result["accounts"] == 1
    assert ACCOUNT_KEY not in json.dumps(result)
    assert "x@y.z" not in json.dumps(result)


async def test_profile_and_me(fake: FakeProvider, services: Services) -> None:
    fake.on("GET", "/user/info", CANNED["/user/info"])
    result = await run_action(ctx(services), "tikapi.me")
    assert result["user"]["unique_id"] == "ourbrand"
    assert result["stats"]["follower_count"] == 7


# ---------------------------------------------------------------------------------------------
# Errors: every answer ends in the error tree, never a raw exception.

ERRORS: list[tuple[int, Any, dict[str, str], type[ProviderError], Any]] = [
    (
        428,
        {
            "status": "error",
            "message": "Account session expired, please ask user to re-login and re-authorize.",
            "statusCode": 8,
        },
        {},
        SessionExpired,
        8,
    ),
    (401, {"message": "A valid API Key is required.", "status": "error"}, {}, CredentialsRejected, None),
    (
        403,
        {"status": "error", "message": "User doesn't exist", "statusCode": 10202},
        {},
        ProviderRejected,
        10202,
    ),
    (
        403,
        {"status": "error", "message": "Hashtag doesn't exist", "statusCode": "10205"},
        {},
        ProviderRejected,
        10205,
    ),
    (
        403,
        {"status": "error", "message": "TikTok Captcha Error", "statusCode": 10000},
        {},
        ProviderUnavailable,
        10000,
    ),
    (
        403,
        {"status": "error", "message": "You have run out of credits, upgrade your subscription."},
        {},
        CredentialsRejected,
        None,
    ),
    (403, {"status": "error", "message": "Something went wrong."}, {}, ProviderRejected, None),
    (429, {"status": "error", "message": "API Key Rate-Limit reached."}, {}, RateLimited, None),
    (
        429,
        {"status": "error", "message": "API Key Rate-Limit reached."},
        {"Retry-After": "120"},
        RateLimited,
        None,
    ),
    (
        400,
        {
            "status": "error",
            "message": "Missing fields.",
            "fields": {"secUid": "A valid TikTok secUid is required."},
        },
        {},
        ProviderRejected,
        None,
    ),
    (404, {"status": "error", "message": "Not found"}, {}, ProviderRejected, None),
    (422, {"status": "error", "message": "Invalid"}, {}, ProviderRejected, None),
    (500, {"status": "error", "message": "Internal"}, {}, ProviderUnavailable, None),
    (502, {"status": "error", "message": "Bad gateway"}, {}, ProviderUnavailable, None),
    (200, {"status": "error", "message": "Account session expired", "statusCode": 8}, {}, SessionExpired, 8),
    (
        200,
        {"status": "error", "message": "User doesn't exist", "statusCode": 10202},
        {},
        ProviderRejected,
        10202,
    ),
    (200, {"status": "error", "message": "API Key Rate-Limit reached."}, {}, RateLimited, None),
]


@pytest.mark.parametrize(("status", "body", "headers", "error", "code"), ERRORS)
async def test_error_answers_map_to_the_tree(
    fake: FakeProvider,
    services: Services,
    status: int,
    body: Any,
    headers: dict[str, str],
    error: type[ProviderError],
    code: Any,
) -> None:
    fake.on("GET", "/user/info", httpx.Response(status, json=body, headers=headers))
    with pytest.raises(error) as caught:
        await run_action(ctx(services), "tikapi.me")
    assert type(caught.value) is error
    assert caught.value.provider == "tikapi"
    assert caught.value.status == status
    assert caught.value.code == code
    assert caught.value.account == "main"
    if error is RateLimited:
        assert isinstance(caught.value, RateLimited)
        assert caught.value.retry_after == (120.0 if headers else None)


async def test_missing_fields_are_listed_in_the_message(fake: FakeProvider, services: Services) -> None:
    body = {
        "status": "error",
        "message": "Missing fields.",
        "fields": {"secUid": "A valid TikTok secUid is required."},
    }
    fake.on("GET", "/public/posts", httpx.Response(400, json=body))
    with pytest.raises(ProviderRejected, match="secUid: A valid TikTok secUid is required"):
        await run_action(ctx(services), "tikapi.user_posts", sec_uid="x")


async def test_error_messages_are_redacted(fake: FakeProvider, services: Services) -> None:
    body = {"status": "error", "message": f"Invalid X-API-KEY: {API_KEY}"}
    fake.on("GET", "/public/check", httpx.Response(403, json=body))
    with pytest.raises(ProviderRejected) as caught:
        await run_action(ctx(services), "tikapi.profile", username="x")
    assert API_KEY not in str(caught.value)


GARBAGE: list[tuple[str, httpx.Response]] = [
    ("html", httpx.Response(200, text="<html>Cloudflare</html>", headers={"content-type": "text/html"})),
    ("html 502", httpx.Response(502, text="<html>Bad gateway</html>", headers={"content-type": "text/html"})),
    ("truncated", httpx.Response(200, content=b'{"status": "success", "itemList": [{"id": "1"', headers={})),
    ("empty", httpx.Response(200, content=b"")),
    ("list body", httpx.Response(200, json=[1, 2, 3])),
    ("itemList not a list", httpx.Response(200, json={"status": "success", "itemList": {"id": "1"}})),
    ("item not an object", httpx.Response(200, json={"status": "success", "itemList": ["1"]})),
    (
        "cursor object",
        httpx.Response(200, json={"status": "success", "itemList": [], "hasMore": True, "cursor": {"a": 1}}),
    ),
]


@pytest.mark.parametrize("answer", [g[1] for g in GARBAGE], ids=[g[0] for g in GARBAGE])
async def test_garbage_is_provider_unavailable(
    fake: FakeProvider, services: Services, answer: httpx.Response
) -> None:
    fake.on("GET", "/public/posts", answer)
    with pytest.raises(ProviderUnavailable) as caught:
        await run_action(ctx(services), "tikapi.user_posts", sec_uid="MS4wLjABAAAAx", pages=2)
    assert caught.value.account == "main"


async def test_comment_cursor_that_is_not_a_number_is_malformed(
    fake: FakeProvider, services: Services
) -> None:
    fake.on("GET", "/public/comment/list", {"comments": [], "has_more": 1, "cursor": "abc"})
    with pytest.raises(ProviderUnavailable, match="not a number"):
        await run_action(ctx(services), "tikapi.comments", media_id="1", pages=2)


async def test_transport_failure_is_provider_unavailable(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    svc = services_for(fake_tikapi(), tmp_path)
    svc.http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    async with svc.http:
        with pytest.raises(ProviderUnavailable, match="ConnectError"):
            await run_action(ctx(svc), "tikapi.profile", username="x")


async def test_missing_credentials_fail_before_any_request(fake: FakeProvider, tmp_path: Path) -> None:
    svc = services_for(fake, tmp_path, env={})
    async with svc.http:
        with pytest.raises(CredentialsRejected) as caught:
            await run_action(ctx(svc), "tikapi.profile", username="x")
    assert fake.requests == []
    assert "tikflow credentials set tikapi main api_key=" in str(caught.value)


async def test_user_endpoints_need_the_account_key(fake: FakeProvider, tmp_path: Path) -> None:
    svc = services_for(fake, tmp_path, env={"TIKFLOW_TIKAPI_API_KEY": API_KEY})
    fake.on("GET", "/public/check", CANNED["/public/check"])
    async with svc.http:
        await run_action(ctx(svc), "tikapi.profile", username="x")
        with pytest.raises(CredentialsRejected, match="account_key"):
            await run_action(ctx(svc), "tikapi.feed")
    assert [r.url.path for r in fake.requests] == ["/public/check"]


# ---------------------------------------------------------------------------------------------
# Pagination, as the official client walks it.


async def test_multi_page_with_string_cursor(fake: FakeProvider, services: Services) -> None:
    fake.on(
        "GET",
        "/public/posts",
        {"itemList": [video(1)], "hasMore": True, "cursor": "1696827055000"},
        {"itemList": [video(2)], "hasMore": True, "cursor": 1696827000000},
        {"itemList": [video(3)], "hasMore": False, "cursor": "0"},
    )
    result = await run_action(ctx(services), "tikapi.user_posts", sec_uid="MS4wLjABAAAAx", pages=10)
    assert [r.url.params.get("cursor") for r in fake.requests] == [None, "1696827055000", "1696827000000"]
    assert len(result["items"]) == 3
    assert result == {**result, "cursor": None, "has_more": False}


async def test_pages_cap_returns_the_resume_cursor(fake: FakeProvider, services: Services) -> None:
    fake.on(
        "GET",
        "/public/posts",
        {"itemList": [video(1)], "hasMore": True, "cursor": "100"},
        {"itemList": [video(2)], "hasMore": True, "cursor": "200"},
    )
    result = await run_action(ctx(services), "tikapi.user_posts", sec_uid="MS4wLjABAAAAx", pages=2)
    assert len(fake.requests) == 2
    assert result["cursor"] == "200"
    assert result["has_more"] is True


@pytest.mark.parametrize(
    "last",
    [
        {"hasMore": True, "cursor": 0},
        {"hasMore": True, "cursor": ""},
        {"has_more": 1, "cursor": None},
        {"hasMore": False, "cursor": "500"},
        {"has_more": 0, "cursor": 500},
        {},
    ],
)
async def test_listing_ends_on_falsy_cursor_or_no_more(
    fake: FakeProvider, services: Services, last: dict[str, Any]
) -> None:
    fake.on("GET", "/public/posts", {"itemList": [video(1)], **last})
    result = await run_action(ctx(services), "tikapi.user_posts", sec_uid="MS4wLjABAAAAx", pages=5)
    assert len(fake.requests) == 1
    assert (result["cursor"], result["has_more"]) == (None, False)


async def test_offset_wins_over_cursor_as_in_the_client(fake: FakeProvider, services: Services) -> None:
    fake.on(
        "GET",
        "/public/comment/list",
        {"comments": [comment("1", "a")], "has_more": 1, "offset": 40, "cursor": 20},
        {"comments": [comment("2", "b")], "has_more": 0, "cursor": 60},
    )
    result = await run_action(ctx(services), "tikapi.comments", media_id="1", pages=3)
    assert [r.url.params.get("cursor") for r in fake.requests] == [None, "40"]
    assert [c["cid"] for c in result["items"]] == ["1", "2"]


async def test_comment_cursor_comes_back_as_a_number(fake: FakeProvider, services: Services) -> None:
    fake.on("GET", "/public/comment/list", {"comments": [comment("1", "a")], "has_more": 1, "cursor": "20"})
    result = await run_action(ctx(services), "tikapi.comments", media_id="1")
    assert result["cursor"] == 20


async def test_bare_next_cursor_continues(fake: FakeProvider, services: Services) -> None:
    fake.on(
        "GET",
        "/user/followers",
        {"followers": [ME], "nextCursor": 1615902725060022},
        {"followers": [ME], "nextCursor": 0},
    )
    result = await run_action(ctx(services), "tikapi.followers", pages=5)
    assert [r.url.params.get("nextCursor") for r in fake.requests] == [None, "1615902725060022"]
    assert [u["unique_id"] for u in result["items"]] == ["ourbrand", "ourbrand"]
    assert result["has_more"] is False


async def test_stuck_cursor_stops(fake: FakeProvider, services: Services) -> None:
    fake.on("GET", "/public/posts", {"itemList": [video(1)], "hasMore": True, "cursor": "100"})
    result = await run_action(
        ctx(services), "tikapi.user_posts", sec_uid="MS4wLjABAAAAx", cursor="100", pages=5
    )
    assert len(fake.requests) == 1
    assert result["has_more"] is False


async def test_search_next_cursor_is_a_string(fake: FakeProvider, services: Services) -> None:
    fake.on(
        "GET",
        "/public/search/general",
        {
            "data": [{"type": 1, "item": video(1)}, {"type": 4, "user_info": {"uid": "5", "unique_id": "u"}}],
            "has_more": 1,
            "nextCursor": "MTItLS1zcGxpdA",
        },
        {"data": [], "has_more": 0},
    )
    result = await run_action(ctx(services), "tikapi.search", query="cats", category="general", pages=3)
    assert [r.url.params.get("nextCursor") for r in fake.requests] == [None, "MTItLS1zcGxpdA"]
    assert [i["type"] for i in result["items"]] == ["video", "user"]


async def test_notifications_page_by_min_and_max_time(fake: FakeProvider, services: Services) -> None:
    fake.on(
        "GET",
        "/user/notifications",
        {"notice_lists": [{"notice_list": [{"nid": 1}], "has_more": True, "min_time": 10, "max_time": 20}]},
        {"notice_lists": [{"notice_list": [{"nid": 2}], "has_more": False, "min_time": 5, "max_time": 9}]},
    )
    result = await run_action(ctx(services), "tikapi.notifications", pages=5)
    assert [dict(r.url.params) for r in fake.requests][1] == {
        "filter": "all",
        "count": "30",
        "min_time": "10",
        "max_time": "20",
    }
    assert result["items"] == [{"nid": 1}, {"nid": 2}]
    assert (result["cursor"], result["has_more"]) == (None, False)


# ---------------------------------------------------------------------------------------------
# No double side effects.


@dataclass
class CommentThread:
    """A fake TikAPI whose comment section remembers what was posted, like the real one."""

    fake: FakeProvider
    posted: list[dict[str, Any]] = field(default_factory=list)

    def install(self) -> None:
        self.fake.on("GET", "/user/info", CANNED["/user/info"])
        self.fake.on("GET", "/user/comment/reply/list", self._listing)
        self.fake.on("GET", "/user/comment/list", self._listing)
        self.fake.on("POST", "/user/comment", self._post)

    def _listing(self, request: httpx.Request) -> httpx.Response:
        parent = request.url.params.get("comment_id", "0")
        items = [c for c in self.posted if c["reply_id"] == parent]
        others = [comment("900", "Hi", uid="333", unique_id="someone", reply_to=parent)]
        return httpx.Response(200, json={"status": "success", "comments": others + items, "has_more": 0})

    def _post(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        new = comment(
            f"8{len(self.posted)}",
            body["text"],
            uid=ME["id"],
            unique_id=ME["uniqueId"],
            reply_to=body.get("reply_comment_id", "0"),
        )
        self.posted.append(new)
        return httpx.Response(200, json={"status": "success", "comment": new})


REPLY = {
    "media_id": "7109178205151464746",
    "reply_comment_id": "7109185042560680750",
    "text": "Thanks! Link in bio.",
}


async def test_reply_twice_posts_once_even_on_a_fresh_worker(fake: FakeProvider, tmp_path: Path) -> None:
    thread = CommentThread(fake)
    thread.install()
    first_worker = services_for(fake, tmp_path / "a")
    async with first_worker.http:
        first = await run_action(ctx(first_worker), "tikapi.reply", **REPLY)
    # The retry lands on another worker: no memory of the first attempt, only the listing.
    second_worker = services_for(fake, tmp_path / "b")
    async with second_worker.http:
        second = await run_action(ctx(second_worker), "tikapi.reply", **REPLY)
    assert len(fake.calls("POST", "/user/comment")) == 1
    assert first["already_done"] is False
    assert second["already_done"] is True
    assert second["comment"]["cid"] == first["comment"]["cid"] == "80"
    listing = fake.calls("GET", "/user/comment/reply/list")[0]
    assert dict(listing.url.params) == {
        "media_id": REPLY["media_id"],
        "comment_id": REPLY["reply_comment_id"],
        "count": "30",
    }


async def test_reply_retry_on_the_same_worker_uses_its_memory(fake: FakeProvider, services: Services) -> None:
    thread = CommentThread(fake)
    thread.install()
    await run_action(ctx(services), "tikapi.reply", **REPLY)
    thread.posted.clear()  # the listing lags behind: only the worker's memory knows
    again = await run_action(ctx(services), "tikapi.reply", **REPLY)
    assert again["already_done"] is True
    assert len(fake.calls("POST", "/user/comment")) == 1
    assert len(fake.calls("GET", "/user/info")) == 1  # who we are is learned once per account


async def test_same_text_by_someone_else_does_not_count(fake: FakeProvider, services: Services) -> None:
    CommentThread(fake).install()
    result = await run_action(
        ctx(services), "tikapi.reply", **{**REPLY, "text": "Hi"}
    )  # "Hi" exists, by someone else
    assert result["already_done"] is False
    assert len(fake.calls("POST", "/user/comment")) == 1


async def test_comment_twice_posts_once(fake: FakeProvider, tmp_path: Path) -> None:
    CommentThread(fake).install()
    params = {"media_id": "7109178205151464746", "text": "Love it"}
    for sub in ("a", "b"):
        svc = services_for(fake, tmp_path / sub)
        async with svc.http:
            result = await run_action(ctx(svc), "tikapi.comment", **params)
    assert result["already_done"] is True
    assert len(fake.calls("POST", "/user/comment")) == 1
    assert "reply_comment_id" not in json.loads(fake.calls("POST", "/user/comment")[0].content)


@pytest.mark.parametrize(
    "gone",
    [
        httpx.Response(404, json={"status": "error", "message": "Comment not found"}),
        httpx.Response(403, json={"status": "error", "message": "Entity doesn't exist", "statusCode": 10224}),
    ],
)
async def test_delete_of_a_gone_comment_succeeds(
    fake: FakeProvider, services: Services, gone: httpx.Response
) -> None:
    fake.on("POST", "/user/comment/delete", gone)
    result = await run_action(ctx(services), "tikapi.delete_comment", comment_id="7109185042560680750")
    assert result == {"deleted": True, "already_done": True}


async def test_delete_refused_for_another_reason_still_fails(fake: FakeProvider, services: Services) -> None:
    fake.on(
        "POST",
        "/user/comment/delete",
        httpx.Response(403, json={"status": "error", "message": "Not allowed"}),
    )
    with pytest.raises(ProviderRejected):
        await run_action(ctx(services), "tikapi.delete_comment", comment_id="7109185042560680750")


@dataclass
class Conversation:
    """One DM conversation: the listing shows what was sent; a send may fail after delivering."""

    fake: FakeProvider
    messages: list[dict[str, Any]] = field(default_factory=list)
    fail_after_delivering: int = 0

    def install(self) -> None:
        self.fake.on("GET", "/user/info", CANNED["/user/info"])
        self.fake.on("GET", "/user/messages", self._list)
        self.fake.on("POST", "/user/message/send", self._send)

    def add(self, sender: str, text: str) -> None:
        self.messages.insert(
            0,
            {
                "server_message_id": str(len(self.messages) + 1),
                "sender": sender,
                "content": json.dumps({"text": text}),
            },
        )

    def _list(self, _request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "success", "messages": self.messages, "hasMore": False})

    def _send(self, request: httpx.Request) -> httpx.Response:
        self.add(ME["id"], json.loads(request.content)["text"])
        if self.fail_after_delivering:
            self.fail_after_delivering -= 1
            return httpx.Response(502, text="Bad Gateway")
        sent = {"server_message_id": self.messages[0]["server_message_id"]}
        return httpx.Response(
            200, json={"status": "success", "body": {"send_message_body": sent}, "cmd": 100}
        )

    def ours(self) -> list[str]:
        return [json.loads(m["content"])["text"] for m in self.messages if m["sender"] == ME["id"]]


DM = {"conversation_id": "0:1:68:69", "conversation_short_id": "694", "text": "Thanks!", "ticket": "tkt"}


async def send(services: Services, key: str) -> dict[str, Any]:
    act = ACTIONS["tikapi.send_message"]
    ctx = ActionContext(services=services, account="main", idempotency_key=key, action=act.name)
    return await act.handler(ctx, act.input_model(**DM))


async def test_send_message_sends_a_text_we_sent_before_for_another_step(
    fake: FakeProvider, services: Services
) -> None:
    # A template auto-reply: the same text, for the second message of the conversation.
    conversation = Conversation(fake)
    conversation.install()
    conversation.add("222", "first question")
    first = await send(services, "wf-1@r:0:steps.1[m1]")
    conversation.add("222", "second question")
    second = await send(services, "wf-1@r:0:steps.1[m2]")
    assert conversation.ours() == ["Thanks!", "Thanks!"]
    assert (first["already_done"], second["already_done"]) == (False, False)
    assert second["message"] == {"id": "4", "text": "Thanks!", "sender_id": ME["id"]}


async def test_a_send_delivered_by_a_failed_attempt_is_not_sent_again(
    fake: FakeProvider, tmp_path: Path
) -> None:
    conversation = Conversation(fake, fail_after_delivering=1)
    conversation.install()
    conversation.add(ME["id"], "Thanks!")  # an earlier step's identical message
    dying = services_for(fake, tmp_path)
    async with dying.http:
        with pytest.raises(ProviderUnavailable):
            await send(dying, "wf-1@r:0:steps.1[m2]")
    # The retry runs on a fresh worker (no memory), sharing the machine's ledger.
    retry = services_for(fake, tmp_path)
    async with retry.http:
        again = await send(retry, "wf-1@r:0:steps.1[m2]")
        recorded = await send(retry, "wf-1@r:0:steps.1[m2]")
    assert conversation.ours() == ["Thanks!", "Thanks!"]
    assert len(fake.calls("POST", "/user/message/send")) == 1
    assert again["already_done"] is True
    assert again["message"]["id"] == "2"
    assert recorded == again


async def test_a_send_that_failed_before_delivering_is_sent_by_the_retry(
    fake: FakeProvider, services: Services
) -> None:
    conversation = Conversation(fake)
    conversation.install()
    conversation.add(ME["id"], "Thanks!")
    fake.on(
        "POST",
        "/user/message/send",
        httpx.Response(502, text="Bad Gateway"),
        conversation._send,
    )
    with pytest.raises(ProviderUnavailable):
        await send(services, "wf-1@r:0:steps.1[m2]")
    again = await send(services, "wf-1@r:0:steps.1[m2]")
    assert again["already_done"] is False
    assert conversation.ours() == ["Thanks!", "Thanks!"]


async def test_a_send_recorded_by_another_worker_makes_no_request(fake: FakeProvider, tmp_path: Path) -> None:
    Conversation(fake).install()
    for _ in range(2):
        worker = services_for(fake, tmp_path)
        async with worker.http:
            result = await send(worker, "wf-1@r:0:steps.1[m1]")
    assert result["already_done"] is True
    assert len(fake.calls("POST", "/user/message/send")) == 1
    assert len(fake.calls("GET", "/user/messages")) == 1


async def test_messages_leave_out_our_own_unless_asked(fake: FakeProvider, services: Services) -> None:
    conversation = Conversation(fake)
    conversation.install()
    conversation.add("222", "what's the price?")
    conversation.add(ME["id"], "The price is $5")
    ref = {"conversation_id": DM["conversation_id"], "conversation_short_id": DM["conversation_short_id"]}
    theirs = await run_action(ctx(services), "tikapi.messages", **ref)
    both = await run_action(ctx(services), "tikapi.messages", **ref, exclude_own=False)
    assert [(m["text"], m["sender_id"]) for m in theirs["items"]] == [("what's the price?", "222")]
    assert [m["sender_id"] for m in both["items"]] == [ME["id"], "222"]


async def test_accept_request_already_accepted(fake: FakeProvider, services: Services) -> None:
    fake.on(
        "GET",
        "/user/conversations/requests/accept",
        httpx.Response(400, json={"status": "error", "message": "Request not found"}),
    )
    fake.on("GET", "/user/conversations", {"conversations": [{"conversation_id": "0:1:68:69"}]})
    params = {
        "conversation_id": "0:1:68:69",
        "conversation_short_id": "694",
        "user_id": "6569595380449902597",
    }
    assert await run_action(ctx(services), "tikapi.accept_request", **params) == {
        "accepted": True,
        "already_done": True,
    }


async def test_accept_request_refused_and_not_in_inbox_fails(fake: FakeProvider, services: Services) -> None:
    fake.on(
        "GET",
        "/user/conversations/requests/accept",
        httpx.Response(400, json={"status": "error", "message": "Request not found"}),
    )
    fake.on("GET", "/user/conversations", {"conversations": []})
    params = {
        "conversation_id": "0:1:68:69",
        "conversation_short_id": "694",
        "user_id": "6569595380449902597",
    }
    with pytest.raises(ProviderRejected):
        await run_action(ctx(services), "tikapi.accept_request", **params)


def test_every_side_effect_documents_its_idempotency() -> None:
    side_effects = [a for a in ACTIONS.values() if a.provider == "tikapi" and a.side_effect]
    assert {a.name for a in side_effects} == set(POST_PATHS) | {"tikapi.accept_request"}
    for act in side_effects:
        assert "Idempotent" in (act.handler.__doc__ or ""), act.name


def test_every_input_field_is_described() -> None:
    for act in ACTIONS.values():
        if act.provider in ("tikapi", "dumpling"):
            for name, info in act.input_model.model_fields.items():
                assert info.description, f"{act.name}.{name}"


def test_next_cursor_matches_the_official_client() -> None:
    assert tikapi.next_cursor({"hasMore": True, "cursor": "5"}) == "5"
    assert tikapi.next_cursor({"has_more": 1, "offset": 3, "cursor": 9}) == 3
    assert tikapi.next_cursor({"has_more": 1, "offset": None, "cursor": 9}) is None  # offset present wins
    assert tikapi.next_cursor({"nextCursor": 7}) == 7
    assert tikapi.next_cursor({"hasMore": False, "nextCursor": 7}) == 7
    assert tikapi.next_cursor({"hasMore": False, "cursor": "7"}) is None
