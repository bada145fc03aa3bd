"""The sandbox answers like the real providers: auth, shapes, cursors, errors, quotas, faults."""

from __future__ import annotations

import httpx
import pytest

from tikflow.emulator import demo_credentials
from tikflow.emulator.app import create_app
from tikflow.emulator.state import EmulatorConfig

CREDS = demo_credentials()
TIKAPI = {"X-API-KEY": CREDS["tikapi"]["main"]["api_key"]}
USER = {**TIKAPI, "X-ACCOUNT-KEY": CREDS["tikapi"]["main"]["account_key"]}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def _bearer(c) -> dict[str, str]:
    pair = (await c.post("/_admin/keys", json={"provider": "tiktok"})).json()
    return {"Authorization": f"Bearer {pair['access_token']}"}


@pytest.fixture
async def sync_client(clock):
    app = create_app(
        EmulatorConfig(seed=3, clock=clock, publish_polls=1, tiktok_app_audited=True, tiktok_moderation_s=0)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as c:
        yield c


async def test_each_provider_rejects_an_unknown_key_with_its_real_body(sync_client):
    c = sync_client
    assert (
        await c.get("/tikapi/public/check", params={"username": "lilyachty"}, headers={"X-API-KEY": "x" * 20})
    ).json() == {
        "status": "error",
        "message": "A valid API Key is required.",
    }
    r = await c.post("/tiktok/v2/user/info/", headers={"Authorization": "Bearer nope"})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "access_token_invalid")
    r = await c.get(
        "/highlevel/social-media-posting/x/accounts",
        headers={"Authorization": "Bearer nope", "Version": "2021-07-28"},
    )
    assert r.json()["message"] == "Invalid token: access token is invalid"
    assert (await c.post("/dumpling/api/v1/get-tiktok-profile", json={"handle": "x"})).status_code == 401
    r = await c.get("/socialapi/v1/accounts", headers={"Authorization": "Bearer nope", "X-Request-ID": "abc"})
    assert (r.status_code, r.json()["error"]["code"], r.headers["x-request-id"]) == (
        401,
        "auth.unauthorized",
        "abc",
    )


async def test_cursor_types_follow_the_official_client(sync_client):
    c = sync_client
    posts = (await c.get("/tikapi/public/hashtag", params={"id": "5635", "count": 5}, headers=TIKAPI)).json()
    assert isinstance(posts["cursor"], str)
    assert posts["hasMore"] is True
    comments = (
        await c.get("/tikapi/public/comment/list", params={"media_id": "7109178205151464746"}, headers=TIKAPI)
    ).json()
    assert isinstance(comments["cursor"], int)
    assert comments["has_more"] in (0, 1)
    followers = (await c.get("/tikapi/user/followers", headers=USER)).json()
    assert isinstance(followers["nextCursor"], int)


async def test_unknown_hashtag_and_video_answer_tiktok_codes(sync_client):
    r = await sync_client.get("/tikapi/public/hashtag", params={"name": "nosuchtag"}, headers=TIKAPI)
    assert (r.status_code, r.json()["statusCode"]) == (403, 10205)
    r = await sync_client.get("/tikapi/public/video", params={"id": "1"}, headers=TIKAPI)
    assert (r.status_code, r.json()["statusCode"]) == (403, 10204)


async def test_session_expiry_lasts_until_reauthorized(sync_client):
    c = sync_client
    await c.post(
        "/_admin/faults",
        json={"rules": [{"provider": "tikapi", "kind": "session_expired", "path": "/user/"}]},
    )
    for _ in range(3):
        r = await c.get("/tikapi/user/info", headers=USER)
        assert (r.status_code, r.json()["statusCode"]) == (428, 8)
    new = await c.get(
        "/tikapi/account/authorize",
        params={
            "client_id": "c_1",
            "redirect_uri": "https://app.example/cb",
            "scope": "view_profile",
            "state": "s",
        },
        follow_redirects=False,
    )
    assert new.status_code == 302
    key = httpx.URL(new.headers["location"]).params["access_token"]
    assert (await c.get("/tikapi/user/info", headers={**TIKAPI, "X-ACCOUNT-KEY": key})).status_code == 200
    assert (await c.get("/tikapi/user/info", headers=USER)).status_code == 428


async def test_tiktok_tokens_expire_and_refresh_tokens_rotate(sync_client, clock):
    c = sync_client
    pair = (await c.post("/_admin/keys", json={"provider": "tiktok"})).json()
    bearer = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (
        await c.get("/tiktok/v2/user/info/", params={"fields": "open_id"}, headers=bearer)
    ).status_code == 200
    clock.now += pair["expires_in"] + 1
    assert (await c.get("/tiktok/v2/user/info/", headers=bearer)).json()["error"][
        "code"
    ] == "access_token_invalid"
    form = {
        "client_key": CREDS["tiktok"]["main"]["client_key"],
        "client_secret": CREDS["tiktok"]["main"]["client_secret"],
        "grant_type": "refresh_token",
        "refresh_token": pair["refresh_token"],
    }
    fresh = (await c.post("/tiktok/v2/oauth/token/", data=form)).json()
    assert fresh["refresh_token"] != pair["refresh_token"]
    assert (await c.post("/tiktok/v2/oauth/token/", data=form)).json()["error"] == "invalid_grant"


async def test_chunked_upload_checks_content_range_and_the_bytes(sync_client):
    c = sync_client
    bearer = await _bearer(c)
    body = b"\0\0\0\x10ftypisom" + bytes(1000)
    init = (
        await c.post(
            "/tiktok/v2/post/publish/video/init/",
            headers=bearer,
            json={
                "post_info": {"title": "t", "privacy_level": "SELF_ONLY"},
                "source_info": {
                    "source": "FILE_UPLOAD",
                    "video_size": len(body),
                    "chunk_size": len(body),
                    "total_chunk_count": 1,
                },
            },
        )
    ).json()["data"]
    url = init["upload_url"].replace("http://sandbox", "")
    bad = await c.put(url, content=body, headers={"Content-Range": f"bytes 5-{len(body)}/{len(body)}"})
    assert bad.status_code == 400
    ok = await c.put(
        url,
        content=body,
        headers={"Content-Range": f"bytes 0-{len(body) - 1}/{len(body)}", "Content-Type": "video/mp4"},
    )
    assert ok.status_code == 201
    status = (
        await c.post(
            "/tiktok/v2/post/publish/status/fetch/", headers=bearer, json={"publish_id": init["publish_id"]}
        )
    ).json()
    assert status["data"]["status"] == "PUBLISH_COMPLETE"


async def test_privacy_level_not_offered_is_refused_at_init(sync_client):
    c = sync_client
    bearer = await _bearer(c)
    r = await c.post(
        "/tiktok/v2/post/publish/video/init/",
        headers=bearer,
        json={
            "post_info": {"privacy_level": "FOLLOWER_OF_CREATOR"},
            "source_info": {"source": "PULL_FROM_URL", "video_url": "https://x/a.mp4"},
        },
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "privacy_level_option_mismatch")


async def test_highlevel_needs_the_version_header_and_sends_its_five_rate_headers(sync_client):
    c = sync_client
    auth = {"Authorization": f"Bearer {CREDS['highlevel']['main']['token']}"}
    loc = CREDS["highlevel"]["main"]["location_id"]
    assert (await c.get(f"/highlevel/social-media-posting/{loc}/accounts", headers=auth)).status_code == 400
    r = await c.get(
        f"/highlevel/social-media-posting/{loc}/accounts", headers={**auth, "Version": "2021-07-28"}
    )
    assert r.status_code == 200
    for name in (
        "x-ratelimit-limit-daily",
        "x-ratelimit-daily-remaining",
        "x-ratelimit-interval-milliseconds",
        "x-ratelimit-max",
        "x-ratelimit-remaining",
    ):
        assert name in r.headers


async def test_tikapi_quota_answers_429_with_and_without_reset_header(sync_client, clock):
    c = sync_client
    await c.post("/_admin/config", json={"tikapi_per_second": 2})
    codes = [(await c.get("/tikapi/key/info", headers=TIKAPI)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert "retry-after" not in (await c.get("/tikapi/key/info", headers=TIKAPI)).headers
    await c.post("/_admin/config", json={"tikapi_retry_after": 3})
    assert (await c.get("/tikapi/key/info", headers=TIKAPI)).headers["retry-after"] == "3"
    clock.now += 1.5
    assert (await c.get("/tikapi/key/info", headers=TIKAPI)).status_code == 200
    assert (await c.get("/_admin/state")).json()["rate_limited"] == 3


async def test_fault_rules_count_skip_and_probability_are_deterministic(clock):
    async def run() -> list[int]:
        app = create_app(EmulatorConfig(seed=5, clock=clock))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as c:
            await c.post(
                "/_admin/faults",
                json={
                    "rules": [
                        {"provider": "tikapi", "kind": "status", "status": 502, "count": 2, "skip": 1},
                        {
                            "provider": "tikapi",
                            "kind": "status",
                            "status": 500,
                            "count": None,
                            "probability": 0.3,
                        },
                    ]
                },
            )
            return [(await c.get("/tikapi/key/info", headers=TIKAPI)).status_code for _ in range(12)]

    first = await run()
    assert first[:3] == [first[0], 502, 502]
    assert first[0] != 502
    assert 500 in first[3:]
    assert 200 in first[3:]
    assert await run() == first


async def test_malformed_and_html_faults(sync_client):
    c = sync_client
    await c.post(
        "/_admin/faults",
        json={"rules": [{"provider": "tikapi", "kind": "malformed"}, {"provider": "tikapi", "kind": "html"}]},
    )
    r = await c.get("/tikapi/key/info", headers=TIKAPI)
    with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
        r.json()
    r = await c.get("/tikapi/key/info", headers=TIKAPI)
    assert (r.status_code, r.headers["content-type"].split(";")[0]) == (502, "text/html")


async def test_tick_adds_comments_that_show_up_and_reset_restores_the_seed(sync_client):
    c = sync_client
    before = (
        await c.get("/tikapi/public/comment/list", params={"media_id": "7109178205151464746"}, headers=TIKAPI)
    ).json()["total"]
    await c.post("/_admin/tick", json={"comments": 3, "video_id": "7109178205151464746"})
    after = (
        await c.get("/tikapi/public/comment/list", params={"media_id": "7109178205151464746"}, headers=TIKAPI)
    ).json()["total"]
    assert after == before + 3
    await c.post("/_admin/reset")
    assert (
        await c.get("/tikapi/public/comment/list", params={"media_id": "7109178205151464746"}, headers=TIKAPI)
    ).json()["total"] == before
