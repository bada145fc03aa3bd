"""TikTok official stand-in: OAuth with rotating refresh tokens, Display API, Content Posting API."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.emulator.support import admin, state
from tikflow.emulator.state import TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET

MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def config(config):
    # Small chunks so chunked uploads run on kilobytes (TikTok's own minimum is 5 MB).
    config.tiktok_min_chunk_bytes = 100
    config.publish_polls = 2
    return config


async def _bearer(client) -> dict[str, str]:
    pair = await admin(client, "keys", {"provider": "tiktok"})
    return {"Authorization": f"Bearer {pair['access_token']}"}


async def _token(client, **form):
    return await client.post(
        "/tiktok/v2/oauth/token/",
        data={"client_key": TIKTOK_CLIENT_KEY, "client_secret": TIKTOK_CLIENT_SECRET, **form},
        headers=FORM,
    )


async def test_authorize_code_exchange_and_rotating_refresh(emulator):
    consent = await emulator.get(
        "/tiktok/v2/auth/authorize/",
        params={
            "client_key": TIKTOK_CLIENT_KEY,
            "redirect_uri": "https://app.example/cb",
            "state": "xyz",
            "response_type": "code",
            "scope": "user.info.basic,video.publish",
        },
    )
    assert consent.status_code == 302
    query = parse_qs(urlsplit(consent.headers["location"]).query)
    assert query["state"] == ["xyz"]
    exchanged = await _token(
        emulator,
        code=query["code"][0],
        grant_type="authorization_code",
        redirect_uri="https://app.example/cb",
    )
    tokens = exchanged.json()
    assert set(tokens) == {
        "open_id",
        "scope",
        "access_token",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
        "token_type",
    }
    assert tokens["expires_in"] == 86_400
    # A code is spent once.
    reused = await _token(emulator, code=query["code"][0], grant_type="authorization_code")
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")

    refreshed = (
        await _token(emulator, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    ).json()
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    stale = await _token(emulator, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert (stale.status_code, stale.json()["error"]) == (400, "invalid_grant")
    assert set(stale.json()) == {"error", "error_description", "log_id"}
    again = await _token(emulator, grant_type="refresh_token", refresh_token=refreshed["refresh_token"])
    assert again.status_code == 200
    assert (await state(emulator))["tiktok"]["refresh_calls"] == 3


async def test_token_endpoint_refuses_a_wrong_secret_and_json(emulator):
    wrong = await emulator.post(
        "/tiktok/v2/oauth/token/",
        data={"client_key": TIKTOK_CLIENT_KEY, "client_secret": "nope", "grant_type": "refresh_token"},
        headers=FORM,
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    as_json = await emulator.post("/tiktok/v2/oauth/token/", json={"client_key": TIKTOK_CLIENT_KEY})
    assert as_json.json()["error"] == "invalid_request"


async def test_access_tokens_expire_on_the_clock_and_by_admin(emulator, fake_clock):
    bearer = await _bearer(emulator)
    ok = await emulator.get(
        "/tiktok/v2/user/info/", params={"fields": "open_id,display_name"}, headers=bearer
    )
    assert ok.json()["error"]["code"] == "ok"
    assert set(ok.json()["data"]["user"]) == {"open_id", "display_name"}
    fake_clock.advance(86_400)
    expired = await emulator.get("/tiktok/v2/user/info/", params={"fields": "open_id"}, headers=bearer)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "access_token_invalid"
    assert set(expired.json()) == {"data", "error"}
    bearer = await _bearer(emulator)
    await admin(emulator, "expire_token", {"provider": "tiktok"})
    assert (
        await emulator.get("/tiktok/v2/user/info/", params={"fields": "open_id"}, headers=bearer)
    ).status_code == 401


async def test_video_list_pages_by_time_cursor_to_the_end(emulator):
    bearer = await _bearer(emulator)
    seen, body = [], {"max_count": 2}
    for _ in range(20):
        data = (
            await emulator.post(
                "/tiktok/v2/video/list/", params={"fields": "id,title,create_time"}, json=body, headers=bearer
            )
        ).json()["data"]
        seen += data["videos"]
        if not data["has_more"]:
            break
        assert isinstance(data["cursor"], int)
        body = {"max_count": 2, "cursor": data["cursor"]}
    assert len(seen) == len({v["id"] for v in seen}) == 4
    assert set(seen[0]) == {"id", "title", "create_time"}
    too_many = await emulator.post(
        "/tiktok/v2/video/list/", params={"fields": "id"}, json={"max_count": 21}, headers=bearer
    )
    assert (too_many.status_code, too_many.json()["error"]["code"]) == (400, "invalid_params")


async def _init(client, bearer, size, chunk, total, privacy="PUBLIC_TO_EVERYONE", inbox=False):
    path = "/tiktok/v2/post/publish/inbox/video/init/" if inbox else "/tiktok/v2/post/publish/video/init/"
    body = {
        "source_info": {
            "source": "FILE_UPLOAD",
            "video_size": size,
            "chunk_size": chunk,
            "total_chunk_count": total,
        }
    }
    if not inbox:
        body["post_info"] = {"title": "sandbox #tikflowdemo", "privacy_level": privacy}
    return await client.post(path, json=body, headers=bearer)


async def _put(client, url, data, first, last, total, content_type="video/mp4"):
    return await client.put(
        url,
        content=data,
        headers={"Content-Type": content_type, "Content-Range": f"bytes {first}-{last}/{total}"},
    )


async def _status(client, bearer, publish_id):
    return (
        await client.post(
            "/tiktok/v2/post/publish/status/fetch/", json={"publish_id": publish_id}, headers=bearer
        )
    ).json()


async def test_chunked_upload_publishes_and_the_video_joins_the_account(emulator):
    bearer = await _bearer(emulator)
    creator = (await emulator.post("/tiktok/v2/post/publish/creator_info/query/", headers=bearer)).json()[
        "data"
    ]
    assert "PUBLIC_TO_EVERYONE" in creator["privacy_level_options"]
    size = len(MP4)
    init = (await _init(emulator, bearer, size, 300, size // 300)).json()["data"]
    publish_id, url = init["publish_id"], init["upload_url"]
    assert url.startswith("http://sandbox/tiktok/video/?upload_id=")
    assert (await _status(emulator, bearer, publish_id))["data"]["status"] == "PROCESSING_UPLOAD"
    cuts = [(0, 299), (300, 599), (600, size - 1)]
    codes = [(await _put(emulator, url, MP4[a : b + 1], a, b, size)).status_code for a, b in cuts]
    assert codes == [206, 206, 201]
    first = (await _status(emulator, bearer, publish_id))["data"]
    assert (first["status"], first["uploaded_bytes"]) == ("PROCESSING_UPLOAD", size)
    done = (await _status(emulator, bearer, publish_id))["data"]
    assert done["status"] == "PUBLISH_COMPLETE"
    post_id = str(done["publicaly_available_post_id"][0])
    snapshot = await state(emulator)
    publish = snapshot["tiktok"]["publishes"][0]
    assert (publish["publish_id"], publish["source"], publish["post_id"], publish["fail_reason"]) == (
        publish_id,
        "FILE_UPLOAD",
        post_id,
        None,
    )
    mine = (
        await emulator.post("/tiktok/v2/video/list/", params={"fields": "id"}, json={}, headers=bearer)
    ).json()
    assert mine["data"]["videos"][0]["id"] == post_id


async def test_a_resent_chunk_is_accepted_once(emulator):
    bearer = await _bearer(emulator)
    size = len(MP4)
    url = (await _init(emulator, bearer, size, 500, 2)).json()["data"]["upload_url"]
    assert (await _put(emulator, url, MP4[:500], 0, 499, size)).status_code == 206
    assert (await _put(emulator, url, MP4[:500], 0, 499, size)).status_code == 206
    assert (await _put(emulator, url, MP4[500:], 500, size - 1, size)).status_code == 201
    assert (await state(emulator))["tiktok"]["publishes"][0]["uploaded_bytes"] == size


async def test_bad_content_range_and_chunk_order_are_refused(emulator):
    bearer = await _bearer(emulator)
    size = len(MP4)
    url = (await _init(emulator, bearer, size, 500, 2)).json()["data"]["upload_url"]
    missing = await emulator.put(url, content=MP4[:500], headers={"Content-Type": "video/mp4"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "invalid_params")
    garbled = await emulator.put(
        url, content=MP4[:500], headers={"Content-Type": "video/mp4", "Content-Range": "0-499"}
    )
    assert garbled.status_code == 400
    assert (await _put(emulator, url, MP4[500:1000], 500, 999, size)).status_code == 416
    assert (await _put(emulator, url, MP4[:500], 0, 499, size + 1)).status_code == 416
    assert (await _put(emulator, url, MP4[:400], 0, 399, size)).status_code == 416
    assert (await _put(emulator, url, MP4[:499], 0, 499, size)).status_code == 400
    assert (await _put(emulator, url, MP4[:500], 0, 499, size, "text/plain")).status_code == 400
    assert (await _put(emulator, url + "x", MP4[:500], 0, 499, size)).status_code == 404


async def test_init_checks_the_chunking_rules_and_privacy(emulator, config):
    bearer = await _bearer(emulator)
    assert (await _init(emulator, bearer, 1000, 300, 4)).status_code == 400
    assert (await _init(emulator, bearer, 50, 40, 1)).status_code == 400
    assert (await _init(emulator, bearer, 50, 50, 1)).status_code == 200
    mismatch = await _init(emulator, bearer, 50, 50, 1, privacy="FOLLOWER_OF_CREATOR")
    assert (mismatch.status_code, mismatch.json()["error"]["code"]) == (400, "privacy_level_option_mismatch")
    config.tiktok_min_chunk_bytes = 5 * 1024 * 1024
    size = 12 * 1024 * 1024
    assert (await _init(emulator, bearer, size, 5 * 1024 * 1024, 2)).status_code == 200
    assert (await _init(emulator, bearer, size, 4 * 1024 * 1024, 3)).status_code == 400


async def test_upload_url_expires_after_an_hour(emulator, fake_clock):
    bearer = await _bearer(emulator)
    url = (await _init(emulator, bearer, len(MP4), len(MP4), 1)).json()["data"]["upload_url"]
    fake_clock.advance(3601)
    assert (await _put(emulator, url, MP4, 0, len(MP4) - 1, len(MP4))).status_code == 403


async def test_bytes_that_are_not_mp4_fail_the_format_check(emulator):
    bearer = await _bearer(emulator)
    junk = b"this is not a video" * 10
    init = (await _init(emulator, bearer, len(junk), len(junk), 1)).json()["data"]
    assert (await _put(emulator, init["upload_url"], junk, 0, len(junk) - 1, len(junk))).status_code == 201
    await _status(emulator, bearer, init["publish_id"])
    failed = (await _status(emulator, bearer, init["publish_id"]))["data"]
    assert (failed["status"], failed["fail_reason"]) == ("FAILED", "file_format_check_failed")


async def test_inbox_upload_ends_in_the_users_inbox(emulator):
    bearer = await _bearer(emulator)
    init = (await _init(emulator, bearer, len(MP4), len(MP4), 1, inbox=True)).json()["data"]
    await _put(emulator, init["upload_url"], MP4, 0, len(MP4) - 1, len(MP4))
    statuses = [(await _status(emulator, bearer, init["publish_id"]))["data"]["status"] for _ in range(2)]
    assert statuses == ["PROCESSING_UPLOAD", "SEND_TO_USER_INBOX"]


@pytest.mark.parametrize(
    ("url", "final", "reason"),
    [
        ("https://cdn.example.com/v/launch.mp4?sig=1", "PUBLISH_COMPLETE", None),
        ("https://cdn.example.com/v/launch.mov", "FAILED", "video_pull_failed"),
    ],
)
async def test_pull_from_url(emulator, url, final, reason):
    bearer = await _bearer(emulator)
    body = {
        "source_info": {"source": "PULL_FROM_URL", "video_url": url},
        "post_info": {"privacy_level": "SELF_ONLY"},
    }
    publish_id = (
        await emulator.post("/tiktok/v2/post/publish/video/init/", json=body, headers=bearer)
    ).json()["data"]["publish_id"]
    assert (await _status(emulator, bearer, publish_id))["data"]["status"] == "PROCESSING_DOWNLOAD"
    data = (await _status(emulator, bearer, publish_id))["data"]
    assert (data["status"], data.get("fail_reason")) == (final, reason)
    # SELF_ONLY posts are not publicly available: no public post id.
    assert data["publicaly_available_post_id"] == []
    plain = {
        "source_info": {"source": "PULL_FROM_URL", "video_url": "http://cdn.example.com/a.mp4"},
        "post_info": {"privacy_level": "SELF_ONLY"},
    }
    assert (
        await emulator.post("/tiktok/v2/post/publish/video/init/", json=plain, headers=bearer)
    ).status_code == 400


async def test_unknown_publish_id(emulator):
    bearer = await _bearer(emulator)
    body = await _status(emulator, bearer, "v_pub_file~v2-1.0")
    assert body["error"]["code"] == "invalid_publish_id"


async def test_init_is_limited_to_six_a_minute_per_token(emulator, fake_clock):
    bearer = await _bearer(emulator)
    codes = [(await _init(emulator, bearer, 50, 50, 1)).status_code for _ in range(7)]
    assert codes == [200] * 6 + [429]
    refused = await _init(emulator, bearer, 50, 50, 1)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    fake_clock.advance(60)
    assert (await _init(emulator, bearer, 50, 50, 1)).status_code == 200
    snapshot = await state(emulator)
    assert snapshot["statuses"]["tiktok 429"] == 2
    assert snapshot["requests"]["tiktok POST /v2/post/publish/video/init/"] == 9
