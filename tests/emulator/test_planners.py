"""HighLevel Social Planner and SocialAPI stand-ins: auth, headers, posts that progress, errors."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.emulator.support import admin, state
from tikflow.emulator.state import HIGHLEVEL_ACCOUNT, HIGHLEVEL_LOCATION, HIGHLEVEL_TOKEN, SOCIALAPI_KEY

HL = {"Authorization": f"Bearer {HIGHLEVEL_TOKEN}", "Version": "2021-07-28"}
HL_BASE = f"/highlevel/social-media-posting/{HIGHLEVEL_LOCATION}"
SA = {"Authorization": f"Bearer {SOCIALAPI_KEY}"}
VIDEO = [{"url": "https://cdn.example.com/v.mp4", "type": "video/mp4"}]


def _hl_post(**overrides):
    return {
        "accountIds": [HIGHLEVEL_ACCOUNT],
        "userId": "u1",
        "type": "post",
        "summary": "hi",
        "media": VIDEO,
        **overrides,
    }


async def test_highlevel_auth_and_version(emulator):
    bad = await emulator.get(f"{HL_BASE}/accounts", headers={**HL, "Authorization": "Bearer nope"})
    assert (bad.status_code, bad.json()) == (
        401,
        {"statusCode": 401, "message": "Invalid token: access token is invalid", "error": "Unauthorized"},
    )
    no_version = await emulator.get(f"{HL_BASE}/accounts", headers={"Authorization": HL["Authorization"]})
    assert (no_version.status_code, no_version.json()["statusCode"]) == (400, 400)
    for response in (bad, no_version):
        assert "x-ratelimit-remaining" in response.headers
    other = await emulator.get("/highlevel/social-media-posting/otherLocation/accounts", headers=HL)
    assert other.status_code == 403


async def test_highlevel_accounts_and_tiktok_profile(emulator):
    accounts = (await emulator.get(f"{HL_BASE}/accounts", headers=HL)).json()
    assert (accounts["success"], accounts["message"]) == (True, "Fetched Accounts")
    assert [a["id"] for a in accounts["results"]["accounts"]] == [HIGHLEVEL_ACCOUNT]
    profile = (
        await emulator.get(
            f"/highlevel/social-media-posting/oauth/{HIGHLEVEL_LOCATION}/tiktok/accounts/{HIGHLEVEL_ACCOUNT}",
            headers=HL,
        )
    ).json()
    assert profile["message"] == "Fetched Tiktok Account"
    assert profile["results"]["profile"][0]["isConnected"] is True


async def test_highlevel_post_is_created_then_published_on_later_reads(emulator):
    created = await emulator.post(f"{HL_BASE}/posts", json=_hl_post(), headers=HL)
    assert created.status_code == 201
    post = created.json()["results"]["post"]
    assert (created.json()["message"], post["status"]) == ("Created Post", "in_progress")
    reads = [
        (await emulator.get(f"{HL_BASE}/posts/{post['_id']}", headers=HL)).json()["results"]["post"]
        for _ in range(2)
    ]
    assert [r["status"] for r in reads] == ["in_progress", "published"]
    assert reads[1]["postId"]
    listed = await emulator.post(
        f"{HL_BASE}/posts/list",
        json={"type": "all", "accounts": HIGHLEVEL_ACCOUNT, "skip": "0", "limit": "10"},
        headers=HL,
    )
    assert listed.status_code == 201
    assert listed.json()["results"]["count"] == 1
    assert (await emulator.post(f"{HL_BASE}/posts/list", json={"type": "failed"}, headers=HL)).json()[
        "results"
    ]["count"] == 0


async def test_highlevel_post_without_a_video_fails_with_an_error(emulator):
    post = (await emulator.post(f"{HL_BASE}/posts", json=_hl_post(media=[]), headers=HL)).json()["results"][
        "post"
    ]
    for _ in range(2):
        read = (await emulator.get(f"{HL_BASE}/posts/{post['_id']}", headers=HL)).json()["results"]["post"]
    assert read["status"] == "failed"
    assert read["error"]


async def test_highlevel_scheduled_post_waits_for_its_date(emulator, fake_clock):
    post = (
        await emulator.post(
            f"{HL_BASE}/posts", json=_hl_post(scheduleDate="2027-01-15T10:00:00.000Z"), headers=HL
        )
    ).json()["results"]["post"]
    assert post["status"] == "scheduled"
    assert (await emulator.get(f"{HL_BASE}/posts/{post['_id']}", headers=HL)).json()["results"]["post"][
        "status"
    ] == "scheduled"
    fake_clock.now = 1_800_000_000.0 + 365 * 86_400
    statuses = [
        (await emulator.get(f"{HL_BASE}/posts/{post['_id']}", headers=HL)).json()["results"]["post"]["status"]
        for _ in range(2)
    ]
    assert statuses == ["in_progress", "published"]


async def test_highlevel_validation_errors(emulator):
    bad = await emulator.post(f"{HL_BASE}/posts", json={"type": "tweet"}, headers=HL)
    assert (bad.status_code, bad.json()["error"]) == (422, "Unprocessable Entity")
    assert isinstance(bad.json()["message"], list)
    unknown = await emulator.post(f"{HL_BASE}/posts", json=_hl_post(accountIds=["nope"]), headers=HL)
    assert unknown.status_code == 400
    assert (await emulator.get(f"{HL_BASE}/posts/doesnotexist", headers=HL)).status_code == 404


async def test_highlevel_burst_limit_with_its_headers(emulator, fake_clock):
    await admin(emulator, "config", {"highlevel_burst": 3})
    responses = [await emulator.get(f"{HL_BASE}/accounts", headers=HL) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert responses[0].headers["x-ratelimit-max"] == "3"
    assert responses[0].headers["x-ratelimit-interval-milliseconds"] == "10000"
    assert (
        int(responses[1].headers["x-ratelimit-daily-remaining"])
        == int(responses[0].headers["x-ratelimit-daily-remaining"]) - 1
    )
    assert "retry-after" not in responses[3].headers
    fake_clock.advance(10)
    assert (await emulator.get(f"{HL_BASE}/accounts", headers=HL)).status_code == 200
    assert (await state(emulator))["statuses"]["highlevel 429"] == 1


async def test_socialapi_auth_and_request_id(emulator):
    bad = await emulator.get(
        "/socialapi/v1/accounts", headers={"Authorization": "Bearer nope", "X-Request-ID": "trace-1"}
    )
    assert bad.status_code == 401
    assert bad.json() == {
        "error": {"code": "auth.unauthorized", "message": "Invalid or missing API key."},
        "request_id": "trace-1",
    }
    assert bad.headers["x-request-id"] == "trace-1"
    made_up = await emulator.get("/socialapi/v1/accounts", headers=SA)
    assert made_up.headers["x-request-id"].startswith("req_")
    invalid = await emulator.get("/socialapi/v1/accounts", headers={**SA, "X-Request-ID": "not valid!"})
    assert invalid.status_code == 400


async def test_socialapi_accounts_and_a_post_that_publishes(emulator):
    accounts = (
        await emulator.get("/socialapi/v1/accounts", params={"platform": "tiktok"}, headers=SA)
    ).json()
    account = accounts["data"][0]
    assert set(account["metadata"]) == {
        "avatar_url",
        "follower_count",
        "following_count",
        "video_count",
        "likes_count",
    }
    assert accounts["pagination"] == {"has_more": False, "next_cursor": None}
    body = {
        "account_ids": [account["id"]],
        "text": "new drop",
        "media_ids": ["https://cdn.example.com/v.mp4"],
    }
    created = await emulator.post("/socialapi/v1/posts", json=body, headers=SA)
    assert created.status_code == 201
    post = created.json()
    assert post["id"].startswith("p_")
    assert post["status"] == "publishing"
    reads = [(await emulator.get(f"/socialapi/v1/posts/{post['id']}", headers=SA)).json() for _ in range(2)]
    assert [r["status"] for r in reads] == ["publishing", "published"]
    assert reads[1]["targets"][0]["platform_post_id"]
    assert (await emulator.delete(f"/socialapi/v1/posts/{post['id']}", headers=SA)).json()["error"][
        "code"
    ] == "resource.not_supported"
    unknown = await emulator.post(
        "/socialapi/v1/posts", json={**body, "account_ids": ["acc_nope"]}, headers=SA
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "account.not_found")


async def test_socialapi_post_list_pages_to_the_end(emulator, fake_clock):
    account = (await emulator.get("/socialapi/v1/accounts", headers=SA)).json()["data"][0]["id"]
    for n in range(5):
        fake_clock.advance(1)
        await emulator.post(
            "/socialapi/v1/posts", json={"account_ids": [account], "text": f"post {n}"}, headers=SA
        )
    seen, params = [], {"limit": 2}
    for _ in range(10):
        page = (await emulator.get("/socialapi/v1/posts", params=params, headers=SA)).json()
        seen += [p["text"] for p in page["data"]]
        if not page["pagination"]["has_more"]:
            break
        params = {"limit": 2, "cursor": page["pagination"]["next_cursor"]}
    assert seen == [f"post {n}" for n in reversed(range(5))]


async def test_socialapi_invalid_token_until_the_account_is_reconnected(emulator):
    account = (await emulator.get("/socialapi/v1/accounts", headers=SA)).json()["data"][0]["id"]
    await admin(
        emulator,
        "faults",
        {"rules": [{"provider": "socialapi", "kind": "session_expired", "path": "/posts"}]},
    )
    body = {"account_ids": [account], "text": "hello", "media_ids": ["https://cdn.example.com/v.mp4"]}
    for call in (
        emulator.post("/socialapi/v1/posts", json=body, headers=SA),
        emulator.get("/socialapi/v1/posts", headers=SA),
        emulator.post("/socialapi/v1/posts", json=body, headers=SA),
    ):
        response = await call
        reconnect = (403, "account.reconnection_required")
        assert (response.status_code, response.json()["error"]["code"]) == reconnect
    connect = (
        await emulator.post(
            "/socialapi/v1/accounts/connect",
            json={"platform": "tiktok", "metadata": {"redirect_uri": "https://app.example/cb"}},
            headers=SA,
        )
    ).json()
    consent = await emulator.get(connect["auth_url"])
    query = parse_qs(urlsplit(consent.headers["location"]).query)
    assert query["state"] == [connect["state"]]
    wrong = await emulator.post(
        "/socialapi/v1/oauth/exchange",
        json={"platform": "tiktok", "code": "nope", "metadata": {"state": "nope"}},
        headers=SA,
    )
    assert wrong.status_code == 400
    exchanged = await emulator.post(
        "/socialapi/v1/oauth/exchange",
        json={
            "platform": "tiktok",
            "code": query["code"][0],
            "metadata": {"state": connect["state"], "redirect_uri": "https://app.example/cb"},
        },
        headers=SA,
    )
    assert exchanged.status_code == 200
    assert (await emulator.post("/socialapi/v1/posts", json=body, headers=SA)).status_code == 201


async def test_socialapi_quota(emulator, fake_clock):
    await admin(emulator, "config", {"socialapi_per_minute": 2})
    codes = [(await emulator.get("/socialapi/v1/accounts", headers=SA)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = await emulator.get("/socialapi/v1/accounts", headers=SA)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["retry-after"] == "60"
    fake_clock.advance(60)
    assert (await emulator.get("/socialapi/v1/accounts", headers=SA)).status_code == 200
