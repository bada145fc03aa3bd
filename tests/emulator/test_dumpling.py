"""DumplingAI stand-in: the documented profile, cursors, error bodies, credits and rate headers."""

from __future__ import annotations

from tests.emulator.support import DOC_VIDEO, admin, state
from tikflow.emulator.dumpling import CREDITS
from tikflow.emulator.state import DUMPLING_KEY

AUTH = {"Authorization": f"Bearer {DUMPLING_KEY}"}


async def test_unknown_key_and_bad_parameters(emulator):
    bad = await emulator.post(
        "/dumpling/api/v1/get-tiktok-profile", json={"handle": "x"}, headers={"Authorization": "Bearer nope"}
    )
    assert (bad.status_code, bad.json()) == (401, {"error": "API key is invalid or missing."})
    missing = await emulator.post("/dumpling/api/v1/get-tiktok-profile", json={}, headers=AUTH)
    assert (missing.status_code, missing.json()) == (
        400,
        {"error": "'handle' parameter is required and must be a non-empty string."},
    )
    garbled = await emulator.post("/dumpling/api/v1/get-tiktok-profile", content=b"{", headers=AUTH)
    assert garbled.json() == {"error": "Invalid JSON in request body"}
    unknown = await emulator.post(
        "/dumpling/api/v1/get-tiktok-profile", json={"handle": "nobody_here"}, headers=AUTH
    )
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"error": "TikTok profile not found for handle: nobody_here"},
    )


async def test_the_documented_example_profile(emulator):
    response = await emulator.post(
        "/dumpling/api/v1/get-tiktok-profile", json={"handle": "stoolpresidente"}, headers=AUTH
    )
    body = response.json()
    assert (body["user"]["id"], body["user"]["nickname"], body["user"]["uniqueId"]) == (
        "6659752019493208069",
        "Dave Portnoy",
        "stoolpresidente",
    )
    assert body["stats"]["followerCount"] == 4_100_000
    assert body["stats"]["heartCount"] == 190_400_000
    assert response.headers["x-ratelimit-limit"] == "600"
    assert response.headers["x-ratelimit-remaining"] == "599"


async def test_profile_videos_page_by_max_cursor_to_the_end(emulator):
    # `maxCursor` is a string, as the docs type it; the first page sends none.
    seen, cursor = [], None
    for _ in range(10):
        body = (
            await emulator.post(
                "/dumpling/api/v1/get-tiktok-profile-videos",
                json={"handle": "catlover99", "maxCursor": cursor},
                headers=AUTH,
            )
        ).json()
        seen += [a["aweme_id"] for a in body["aweme_list"]]
        assert body["has_more"] in (0, 1)
        if not body["has_more"]:
            break
        cursor = body["max_cursor"]
    videos = [v for v in (await state(emulator))["tikapi"]["videos"] if v["author"] == "catlover99"]
    assert sorted(seen) == sorted(v["id"] for v in videos)


async def test_profile_videos_as_the_docs_example_types_them(emulator):
    first = await emulator.post(
        "/dumpling/api/v1/get-tiktok-profile-videos", json={"handle": "catlover99"}, headers=AUTH
    )
    body = first.json()
    # Cursors are strings of milliseconds; each video has its `video` object, duration in seconds.
    assert isinstance(body["max_cursor"], str)
    assert isinstance(body["min_cursor"], str)
    assert body["max_cursor"].isdigit()
    assert body["aweme_list"]
    videos = {v["id"]: v for v in (await state(emulator))["tikapi"]["videos"]}
    for aweme in body["aweme_list"]:
        assert aweme["video"]["duration"] == videos[aweme["aweme_id"]]["duration"]
        assert aweme["video"]["cover"]["url_list"]
    assert aweme["video"]["duration"] == 15
    following = await emulator.post(
        "/dumpling/api/v1/get-tiktok-profile-videos",
        json={"handle": "catlover99", "maxCursor": body["max_cursor"]},
        headers=AUTH,
    )
    assert following.status_code == 200
    assert not {a["aweme_id"] for a in following.json()["aweme_list"]} & {
        a["aweme_id"] for a in body["aweme_list"]
    }
    numeric = await emulator.post(
        "/dumpling/api/v1/get-tiktok-profile-videos",
        json={"handle": "catlover99", "maxCursor": int(body["max_cursor"])},
        headers=AUTH,
    )
    assert numeric.status_code == 400
    assert "'maxCursor' must be a string" in numeric.json()["error"]


async def test_video_comments_and_transcript(emulator):
    await admin(emulator, "tick", {"comments": 30, "video_id": DOC_VIDEO})
    url = f"https://www.tiktok.com/@lilyachty/video/{DOC_VIDEO}"
    seen, cursor = [], 0
    for _ in range(10):
        body = (
            await emulator.post(
                "/dumpling/api/v1/get-tiktok-video-comments",
                json={"url": url, "cursor": cursor, "count": 20},
                headers=AUTH,
            )
        ).json()
        seen += [c["cid"] for c in body["comments"]]
        if not body["hasMore"]:
            break
        cursor = body["cursor"]
    assert len(seen) == len(set(seen)) == 31
    transcript = (
        await emulator.post("/dumpling/api/v1/get-tiktok-transcript", json={"videoUrl": url}, headers=AUTH)
    ).json()
    assert transcript["transcript"].startswith("WEBVTT")
    assert (transcript["id"], transcript["language"]) == (DOC_VIDEO, "en")


async def test_credits_run_out_with_a_403(emulator):
    await admin(emulator, "config", {"dumpling_credits": 25})
    codes = [
        (
            await emulator.post(
                "/dumpling/api/v1/get-tiktok-profile", json={"handle": "lilyachty"}, headers=AUTH
            )
        ).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 403]
    out = await emulator.post(
        "/dumpling/api/v1/get-tiktok-profile", json={"handle": "lilyachty"}, headers=AUTH
    )
    assert out.json() == {"error": "Insufficient credits. Please top up your account."}
    assert (await state(emulator))["dumpling"]["credits"] == 5


async def test_each_endpoint_costs_its_documented_credits_and_refusals_cost_none(emulator):
    url = f"https://www.tiktok.com/@lilyachty/video/{DOC_VIDEO}"
    calls = {
        "/api/v1/get-tiktok-profile": {"handle": "lilyachty"},
        "/api/v1/get-tiktok-profile-videos": {"handle": "lilyachty"},
        "/api/v1/get-tiktok-video-comments": {"url": url},
        "/api/v1/get-tiktok-transcript": {"videoUrl": url},
    }
    # DumplingAI's Credit Costs page (November 2025 denomination): 10 a request for each.
    documented = dict.fromkeys(calls, 10)
    assert documented == CREDITS
    for path, body in calls.items():
        before = (await state(emulator))["dumpling"]["credits"]
        assert (await emulator.post(f"/dumpling{path}", json=body, headers=AUTH)).status_code == 200
        assert (await state(emulator))["dumpling"]["credits"] == before - documented[path]
    before = (await state(emulator))["dumpling"]["credits"]
    missing = await emulator.post(
        "/dumpling/api/v1/get-tiktok-profile", json={"handle": "nobody"}, headers=AUTH
    )
    assert missing.status_code == 404
    assert (await state(emulator))["dumpling"]["credits"] == before


async def test_rate_limit_headers_count_down_then_429(emulator, fake_clock):
    await admin(emulator, "config", {"dumpling_per_minute": 2})
    responses = [
        await emulator.post("/dumpling/api/v1/get-tiktok-profile", json={"handle": "lilyachty"}, headers=AUTH)
        for _ in range(3)
    ]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in responses] == ["1", "0", "0"]
    fake_clock.advance(60)
    assert (
        await emulator.post("/dumpling/api/v1/get-tiktok-profile", json={"handle": "lilyachty"}, headers=AUTH)
    ).status_code == 200
