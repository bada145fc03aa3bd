"""HighLevel Social Planner actions (`activities.highlevel`) against a MockTransport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
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
)
from activities.highlevel import (
    AccountsInput,
    CreatePostInput,
    GetPostInput,
    ListPostsInput,
    PostMedia,
    TiktokPostDetails,
    TiktokProfileInput,
)
from activities.ledger import EffectLedger
from activities.ratelimit import RateLimiter
from activities.registry import ActionContext
from tests.support.actions import ContextFactory, contexts, run_action
from tests.support.transport import FakeProvider

BASE = "https://services.leadconnectorhq.com"
LOCATION = "ve9EPM428h8vShlRW1KT"
ACCOUNT = "aF3KhyL8JIuBwzK3m7Ly_iVrVJ2uoXNF0wzcBzgl5_125546"
HL_RATE_HEADERS = {
    "X-RateLimit-Limit-Daily": "200000",
    "X-RateLimit-Daily-Remaining": "199990",
    "X-RateLimit-Interval-Milliseconds": "10000",
    "X-RateLimit-Max": "100",
    "X-RateLimit-Remaining": "99",
}

Responder = Callable[[httpx.Request], httpx.Response]


def hl(status: int, results: dict[str, Any], message: str = "OK", **headers: str) -> httpx.Response:
    body = {"success": True, "statusCode": status, "message": message, "results": results}
    return httpx.Response(status, json=body, headers={**HL_RATE_HEADERS, **headers})


@pytest.fixture
def store(tmp_path: Path) -> CredentialStore:
    store = CredentialStore(tmp_path / "credentials.json", env={})
    store.update("highlevel", "main", {"token": "pit-abc123", "location_id": LOCATION, "user_id": "user-1"})
    return store


@pytest.fixture
async def make_ctx(tmp_path: Path, store: CredentialStore) -> AsyncIterator[ContextFactory]:
    async with contexts(
        store, ledger=tmp_path / "effects.json", action="highlevel", key="wf-1/steps/0"
    ) as build:
        yield build


def assert_headers(request: httpx.Request) -> None:
    assert request.headers["authorization"] == "Bearer pit-abc123"
    assert request.headers["version"] == "2021-07-28"


# --------------------------------------------------------------------------- accounts and profiles


async def test_accounts_lists_the_locations_connected_accounts(
    make_ctx: ContextFactory,
) -> None:
    account = {
        "id": ACCOUNT,
        "oauthId": "aF3KhyL8JIuBwzK3m7Ly",
        "profileId": "prof-1",
        "name": "Cat Shop",
        "platform": "tiktok",
        "type": "profile",
        "expire": "2026-03-11T19:29:59.785Z",
        "isExpired": False,
        "meta": {"canDelete": True},
    }
    fake = FakeProvider(
        {
            ("GET", f"/social-media-posting/{LOCATION}/accounts"): lambda r: hl(
                200, {"accounts": [account], "groups": []}, "Fetched Accounts"
            )
        }
    )

    result = await run_action(make_ctx(fake), "highlevel.accounts", AccountsInput())

    assert str(fake.requests[0].url) == f"{BASE}/social-media-posting/{LOCATION}/accounts"
    assert_headers(fake.requests[0])
    assert result == {
        "items": [
            {
                "id": ACCOUNT,
                "name": "Cat Shop",
                "platform": "tiktok",
                "type": "profile",
                "profile_id": "prof-1",
                "oauth_id": "aF3KhyL8JIuBwzK3m7Ly",
                "expire": "2026-03-11T19:29:59.785Z",
                "is_expired": False,
                "meta": {"canDelete": True},
            }
        ],
        "groups": [],
    }


async def test_the_location_can_be_overridden(make_ctx: ContextFactory) -> None:
    fake = FakeProvider(
        {
            ("GET", "/social-media-posting/other-loc/accounts"): lambda r: hl(
                200, {"accounts": [], "groups": []}
            )
        }
    )
    result = await run_action(make_ctx(fake), "highlevel.accounts", AccountsInput(location_id="other-loc"))
    assert result == {"items": [], "groups": []}


async def test_tiktok_profile_reads_the_profile_list(make_ctx: ContextFactory) -> None:
    profile = {
        "id": "w37swmmLbA02zgqKPpxITe",
        "name": "Account Name",
        "username": "User_name",
        "avatar": "w37swmmLbA02zgqKPpxITe",
        "verified": True,
        "isConnected": True,
        "type": "BUSINESS",
    }
    path = f"/social-media-posting/oauth/{LOCATION}/tiktok/accounts/{ACCOUNT}"
    fake = FakeProvider({("GET", path): lambda r: hl(200, {"profile": [profile]}, "Fetched Tiktok Account")})

    result = await run_action(
        make_ctx(fake), "highlevel.tiktok_profile", TiktokProfileInput(account_id=ACCOUNT)
    )

    assert_headers(fake.requests[0])
    assert result["items"] == [
        {
            "id": "w37swmmLbA02zgqKPpxITe",
            "name": "Account Name",
            "username": "User_name",
            "avatar": "w37swmmLbA02zgqKPpxITe",
            "verified": True,
            "is_connected": True,
            "type": "BUSINESS",
        }
    ]


# --------------------------------------------------------------------------- posts


def created_post(**fields: Any) -> dict[str, Any]:
    return {
        "_id": "65fac446d599990d1313c1dd",
        "locationId": LOCATION,
        "accountIds": [ACCOUNT],
        "summary": "New drop",
        "media": [{"url": "https://cdn.example.com/a.mp4", "type": "video/mp4"}],
        "status": "in_progress",
        "type": "post",
        "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **fields,
    }


POSTS = f"/social-media-posting/{LOCATION}/posts"
LIST = f"/social-media-posting/{LOCATION}/posts/list"

CREATE = CreatePostInput(
    account_ids=[ACCOUNT],
    summary="New drop",
    media=[PostMedia(url="https://cdn.example.com/a.mp4", type="video/mp4")],
    tiktok=TiktokPostDetails(privacy_level="PUBLIC_TO_EVERYONE", enable_duet=False),
)


def post_routes(listed: list[dict[str, Any]]) -> dict[tuple[str, str], Responder]:
    return {
        ("POST", LIST): lambda r: hl(201, {"posts": listed, "count": len(listed)}, "Fetched Posts"),
        ("POST", POSTS): lambda r: hl(201, {"post": created_post()}, "Created Post"),
    }


def lost_attempt(tmp_path: Path, minutes_ago: float = 10, key: str = "wf-1/steps/0") -> None:
    """What an attempt that died between its note and its record leaves in the ledger."""
    started = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).timestamp()
    EffectLedger(tmp_path / "effects.json").put(
        f"highlevel.create_post:{key}", {"pending": True, "started_at": started}
    )


async def test_create_post_creates_without_looking_first(make_ctx: ContextFactory) -> None:
    # Nothing says an earlier attempt of this step may have posted: a lookalike post (an earlier
    # run with the same text) is not ours, so nothing is listed.
    fake = FakeProvider(post_routes([created_post(_id="earlier-run")]))

    result = await run_action(make_ctx(fake), "highlevel.create_post", CREATE)

    assert fake.trail == [f"POST {POSTS}"]
    create = fake.requests[0]
    assert_headers(create)
    assert json.loads(create.content) == {
        "accountIds": [ACCOUNT],
        "userId": "user-1",
        "type": "post",
        "summary": "New drop",
        "media": [{"url": "https://cdn.example.com/a.mp4", "type": "video/mp4"}],
        "tags": [],
        "tiktokPostDetails": {
            "privacyLevel": "PUBLIC_TO_EVERYONE",
            "enableComment": True,
            "enableDuet": False,
            "enableStitch": True,
            "videoDisclosure": False,
            "promoteYourBrand": False,
            "promoteOtherBrand": False,
        },
    }
    assert result == {"post_id": "65fac446d599990d1313c1dd", "status": "in_progress", "already_done": False}


async def test_create_post_sends_the_schedule_in_utc(make_ctx: ContextFactory) -> None:
    fake = FakeProvider(post_routes([]))
    when = datetime(2030, 1, 2, 12, 0, tzinfo=UTC)
    params = CreatePostInput(
        account_ids=[ACCOUNT], summary="Later", status="scheduled", schedule_date=when, user_id="user-2"
    )
    await run_action(make_ctx(fake), "highlevel.create_post", params)
    body = json.loads(fake.requests[0].content)
    assert (body["scheduleDate"], body["status"], body["userId"]) == (
        "2030-01-02T12:00:00.000Z",
        "scheduled",
        "user-2",
    )


async def test_a_lost_scheduled_post_is_looked_for_up_to_its_date(
    make_ctx: ContextFactory, tmp_path: Path
) -> None:
    lost_attempt(tmp_path)
    fake = FakeProvider(post_routes([]))
    when = datetime(2030, 1, 2, 12, 0, tzinfo=UTC)
    params = CreatePostInput(account_ids=[ACCOUNT], summary="Later", status="scheduled", schedule_date=when)
    await run_action(make_ctx(fake), "highlevel.create_post", params)
    assert fake.trail == [f"POST {LIST}", f"POST {POSTS}"]
    assert json.loads(fake.requests[0].content)["toDate"] >= "2030-01-02"


async def test_a_rerun_of_create_post_makes_no_request_at_all(make_ctx: ContextFactory) -> None:
    fake = FakeProvider(post_routes([]))
    first = await run_action(make_ctx(fake), "highlevel.create_post", CREATE)
    second = await run_action(make_ctx(fake), "highlevel.create_post", CREATE)
    assert fake.trail == [f"POST {POSTS}"]
    assert second == {**first, "already_done": True}


async def test_a_new_run_posts_again_with_the_same_text(make_ctx: ContextFactory) -> None:
    fake = FakeProvider(post_routes([]))
    first = await run_action(make_ctx(fake, key="wf-1@run-a:0:steps.0"), "highlevel.create_post", CREATE)
    second = await run_action(make_ctx(fake, key="wf-1@run-b:0:steps.0"), "highlevel.create_post", CREATE)
    assert fake.trail == [f"POST {POSTS}", f"POST {POSTS}"]
    assert (first["already_done"], second["already_done"]) == (False, False)


async def test_a_post_created_by_a_lost_attempt_is_found_instead_of_posting_again(
    make_ctx: ContextFactory, tmp_path: Path
) -> None:
    lost_attempt(tmp_path, minutes_ago=11)
    ten_minutes_ago = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    fake = FakeProvider(
        post_routes(
            [
                created_post(_id="other", summary="Something else", createdAt=ten_minutes_ago),
                created_post(_id="ours", status="published", createdAt=ten_minutes_ago),
            ]
        )
    )

    result = await run_action(make_ctx(fake), "highlevel.create_post", CREATE)
    again = await run_action(make_ctx(fake), "highlevel.create_post", CREATE)

    assert fake.trail == [f"POST {LIST}"]
    search = json.loads(fake.requests[0].content)
    assert search["accounts"] == ACCOUNT
    assert (search["skip"], search["includeUsers"]) == ("0", "false")
    # From when the lost attempt began, less the clock skew allowed for.
    since = datetime.fromisoformat(search["fromDate"].replace("Z", "+00:00"))
    assert timedelta(minutes=15) < datetime.now(UTC) - since < timedelta(minutes=17)
    assert result == {"post_id": "ours", "status": "published", "already_done": True}
    assert again == result


@pytest.mark.parametrize(
    "lookalike",
    [
        created_post(createdAt=(datetime.now(UTC) - timedelta(minutes=20)).isoformat()),
        created_post(accountIds=["someone-else"]),
        created_post(media=[{"url": "https://cdn.example.com/b.mp4"}]),
    ],
    ids=["older-than-the-lost-attempt", "other-account", "other-media"],
)
async def test_a_lookalike_post_is_not_taken_for_ours(
    make_ctx: ContextFactory, lookalike: dict[str, Any], tmp_path: Path
) -> None:
    lost_attempt(tmp_path)
    fake = FakeProvider(post_routes([lookalike]))
    result = await run_action(make_ctx(fake), "highlevel.create_post", CREATE)
    assert fake.trail == [f"POST {LIST}", f"POST {POSTS}"]
    assert result["already_done"] is False


async def test_get_post_normalizes_the_post(make_ctx: ContextFactory) -> None:
    post = created_post(
        status="failed", error="Failed due to auth token", postId="7291", platform="tiktok", accountId=ACCOUNT
    )
    fake = FakeProvider({("GET", f"{POSTS}/65fac446d599990d1313c1dd"): lambda r: hl(200, {"post": post})})

    result = await run_action(
        make_ctx(fake), "highlevel.get_post", GetPostInput(post_id="65fac446d599990d1313c1dd")
    )

    assert_headers(fake.requests[0])
    assert result["post_id"] == "65fac446d599990d1313c1dd"
    assert (result["status"], result["error"], result["platform_post_id"]) == (
        "failed",
        "Failed due to auth token",
        "7291",
    )
    assert result["raw"] == post


async def test_list_posts_pages_by_skip_until_the_count_is_reached(
    make_ctx: ContextFactory,
) -> None:
    everything = [created_post(_id=f"p{i}") for i in range(5)]

    def page(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        skip, limit = int(body["skip"]), int(body["limit"])
        return hl(201, {"posts": everything[skip : skip + limit], "count": len(everything)})

    fake = FakeProvider({("POST", LIST): page})
    params = ListPostsInput(
        limit=2, pages=10, account_ids=[ACCOUNT, "acc2"], type="published", post_type="reel"
    )

    result = await run_action(make_ctx(fake), "highlevel.list_posts", params)

    bodies = [json.loads(r.content) for r in fake.requests]
    assert [b["skip"] for b in bodies] == ["0", "2", "4"]
    assert {(b["limit"], b["type"], b["accounts"], b["postType"], b["includeUsers"]) for b in bodies} == {
        ("2", "published", f"{ACCOUNT},acc2", "reel", "false")
    }
    assert [item["post_id"] for item in result["items"]] == ["p0", "p1", "p2", "p3", "p4"]
    assert (result["count"], result["next_skip"], result["has_more"]) == (5, None, False)


async def test_list_posts_resumes_from_next_skip(make_ctx: ContextFactory) -> None:
    fake = FakeProvider({("POST", LIST): lambda r: hl(201, {"posts": [created_post()] * 2, "count": 9})})
    result = await run_action(
        make_ctx(fake), "highlevel.list_posts", ListPostsInput(limit=2, skip=4, pages=1)
    )
    assert json.loads(fake.requests[0].content)["skip"] == "4"
    assert (result["next_skip"], result["has_more"]) == (6, True)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("response", "error", "retry_after"),
    [
        (httpx.Response(400, json={"statusCode": 400, "message": "Bad Request"}), ProviderRejected, None),
        (
            httpx.Response(
                422,
                json={"statusCode": 422, "message": ["summary is too long"], "error": "Unprocessable Entity"},
            ),
            ProviderRejected,
            None,
        ),
        (
            httpx.Response(
                401,
                json={
                    "statusCode": 401,
                    "message": "Invalid token: access token is invalid",
                    "error": "Unauthorized",
                },
            ),
            CredentialsRejected,
            None,
        ),
        (httpx.Response(429, json={"statusCode": 429}, headers={"Retry-After": "3"}), RateLimited, 3.0),
        (
            httpx.Response(
                429, json={"statusCode": 429}, headers={"X-RateLimit-Interval-Milliseconds": "10000"}
            ),
            RateLimited,
            10.0,
        ),
        (
            httpx.Response(500, json={"statusCode": 500, "message": "Internal server error"}),
            ProviderUnavailable,
            None,
        ),
    ],
)
async def test_errors_map_into_the_error_tree(
    make_ctx: ContextFactory,
    response: httpx.Response,
    error: type[ProviderError],
    retry_after: float | None,
) -> None:
    fake = FakeProvider({("GET", f"{POSTS}/x"): lambda r: response})
    with pytest.raises(error) as caught:
        await run_action(make_ctx(fake), "highlevel.get_post", GetPostInput(post_id="x"))
    assert type(caught.value) is error
    assert (caught.value.provider, caught.value.status, caught.value.account) == (
        "highlevel",
        response.status_code,
        "main",
    )
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == retry_after
    if response.status_code == 422:
        assert "summary is too long" in str(caught.value)


async def test_a_credential_without_location_is_refused_with_the_fix(
    make_ctx: ContextFactory, store: CredentialStore
) -> None:
    store.update("highlevel", "brand2", {"token": "pit-2"})
    fake = FakeProvider({})
    ctx = make_ctx(fake)
    other = ActionContext(
        services=ctx.services, account="brand2", idempotency_key="k", action="highlevel.accounts"
    )
    with pytest.raises(CredentialsRejected, match="location_id"):
        await run_action(other, "highlevel.accounts", AccountsInput())
    assert fake.requests == []


# --------------------------------------------------------------------------- rate-limit headers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_holds_calls_when_the_burst_window_is_spent() -> None:
    limiter = RateLimiter(clock=Clock())
    headers = httpx.Headers({**HL_RATE_HEADERS, "X-RateLimit-Remaining": "0"})
    limiter.observe("highlevel", "main", headers, 200)
    assert limiter.wait_time("highlevel", "main") == pytest.approx(10.0)
    assert limiter.wait_time("highlevel", "other") == 0.0


def test_the_limiter_holds_calls_when_the_daily_quota_is_spent() -> None:
    limiter = RateLimiter(clock=Clock())
    headers = httpx.Headers(
        {**HL_RATE_HEADERS, "X-RateLimit-Daily-Remaining": "0", "X-RateLimit-Remaining": "57"}
    )
    limiter.observe("highlevel", "main", headers, 200)
    assert limiter.wait_time("highlevel", "main") > 0


async def test_the_limiter_spaces_the_last_calls_of_a_window() -> None:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    limiter = RateLimiter(clock=clock, sleep=sleep)
    limiter.observe(
        "highlevel", "main", httpx.Headers({**HL_RATE_HEADERS, "X-RateLimit-Remaining": "2"}), 200
    )
    await limiter.acquire("highlevel", "main")
    await limiter.acquire("highlevel", "main")
    # Two calls left in a 10 s window: the second waits half the window.
    assert slept == [pytest.approx(5.0)]


async def test_highlevel_answers_feed_the_limiter(make_ctx: ContextFactory) -> None:
    limiter = RateLimiter()
    fake = FakeProvider(
        {
            ("GET", f"/social-media-posting/{LOCATION}/accounts"): lambda r: hl(
                200, {"accounts": [], "groups": []}, **{"X-RateLimit-Remaining": "0"}
            )
        }
    )
    await run_action(make_ctx(fake, limiter=limiter), "highlevel.accounts", AccountsInput())
    assert limiter.wait_time("highlevel", "main") == pytest.approx(10.0, abs=0.5)
