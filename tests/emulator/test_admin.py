"""The admin API: state, fault rules, tick, reset, config, keys, expiry."""

from __future__ import annotations

import httpx
import pytest

from tests.emulator.support import ACCOUNT, DOC_VIDEO, TIKAPI, admin, state
from tikflow.emulator.app import create_app
from tikflow.emulator.state import HIGHLEVEL_LOCATION, HIGHLEVEL_TOKEN, SOCIALAPI_KEY, EmulatorConfig

HL = {"Authorization": f"Bearer {HIGHLEVEL_TOKEN}", "Version": "2021-07-28"}


async def test_state_holds_every_provider_tokens_and_traffic(emulator):
    await emulator.get("/tikapi/public/check", params={"username": "lilyachty"}, headers=TIKAPI)
    await emulator.get(
        "/tikapi/public/check", params={"username": "lilyachty"}, headers={"X-API-KEY": "nopenopenope"}
    )
    snapshot = await state(emulator)
    assert set(snapshot) >= {
        "config",
        "tikapi",
        "tiktok",
        "highlevel",
        "dumpling",
        "socialapi",
        "tokens",
        "requests",
        "statuses",
        "rate_limited",
    }
    tikapi = snapshot["tikapi"]
    assert {"lilyachty", "stoolpresidente", "tikflow_demo"} <= {u["unique_id"] for u in tikapi["users"]}
    assert set(tikapi["hashtags"]) >= {"lilyachty", "cats", "tikflowdemo"}
    comment = tikapi["comments"][0]
    assert set(comment) >= {"cid", "aweme_id", "text", "author", "reply_to", "liked_by", "deleted"}
    # Several seeded comments ask for a price, so keyword filters have work.
    assert sum("price" in c["text"].lower() for c in tikapi["comments"]) >= 3
    for tag in ("cats", "tikflowdemo"):
        videos = [v for v in tikapi["videos"] if tag in v["hashtags"]]
        assert len(videos) >= 5
        assert all(any(c["aweme_id"] == v["id"] for c in tikapi["comments"]) for v in videos)
    assert {c["request"] for c in tikapi["conversations"]} == {True, False}
    assert snapshot["tokens"]["tikapi"]["api_keys"] == [TIKAPI["X-API-KEY"]]
    assert snapshot["requests"] == {"tikapi GET /public/check": 2}
    assert snapshot["statuses"] == {"tikapi 200": 1, "tikapi 401": 1}
    assert snapshot["rate_limited"] == 0


async def test_the_world_is_deterministic_for_a_seed(fake_clock):
    async def snapshot(seed: int) -> dict:
        app = create_app(EmulatorConfig(seed=seed, clock=fake_clock))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as client:
            return (await state(client))["tikapi"]

    assert await snapshot(3) == await snapshot(3)
    assert (await snapshot(3))["comments"] != (await snapshot(4))["comments"]


async def test_tick_on_a_hashtag_messages_and_followers(emulator):
    made = await admin(
        emulator,
        "tick",
        {"comments": 4, "hashtag": "cats", "text": "price?", "messages": 2, "followers": {"lilyachty": 5}},
    )
    snapshot = await state(emulator)
    cats = {v["id"] for v in snapshot["tikapi"]["videos"] if "cats" in v["hashtags"]}
    assert len(made["comments"]) == 4
    assert all(c["aweme_id"] in cats and c["text"] == "price?" for c in made["comments"])
    assert len(made["messages"]) == 2
    star = next(u for u in snapshot["tikapi"]["users"] if u["unique_id"] == "lilyachty")
    assert star["followers"] == 9_800_005
    bad = await emulator.post("/_admin/tick", json={"comments": 1, "video_id": "123"})
    assert bad.status_code == 400


async def test_reset_restores_the_seeded_world_and_the_starting_configuration(emulator):
    before = await state(emulator)
    await admin(emulator, "tick", {"comments": 3, "video_id": DOC_VIDEO})
    await admin(emulator, "config", {"highlevel_burst": 1, "publish_polls": 9})
    await admin(emulator, "faults", {"rules": [{"provider": "tikapi", "kind": "status", "count": None}]})
    await admin(emulator, "reset")
    after = await state(emulator)
    assert after["tikapi"] == before["tikapi"]
    assert after["config"] == before["config"]
    assert (await emulator.get("/_admin/faults")).json() == {"rules": []}
    assert (await emulator.get("/tikapi/key/info", headers=TIKAPI)).status_code == 200


async def test_config_is_validated(emulator):
    # A payload of the wrong shape or type is a 422 (tests/emulator/test_hostile_admin.py has more).
    assert (await emulator.post("/_admin/config", json={"nonsense": 1})).status_code == 422
    assert (await emulator.post("/_admin/config", json={"publish_polls": "two"})).status_code == 422
    assert (await emulator.post("/_admin/config", json={"clock": 1})).status_code == 422
    changed = await admin(emulator, "config", {"publish_polls": 3})
    assert changed["config"]["publish_polls"] == 3
    assert (await emulator.get("/_admin/config")).json()["config"]["publish_polls"] == 3


async def test_admin_rejects_unknown_actions_and_bad_bodies(emulator):
    assert (await emulator.post("/_admin/nonsense")).status_code == 400
    assert (
        await emulator.post("/_admin/faults", json={"rules": [{"provider": "nope", "kind": "status"}]})
    ).status_code == 422
    assert (
        await emulator.post("/_admin/faults", json={"rules": [{"provider": "tikapi", "kind": "nope"}]})
    ).status_code == 422
    assert (
        await emulator.post(
            "/_admin/faults", json={"rules": [{"provider": "tikapi", "kind": "status", "colour": 1}]}
        )
    ).status_code == 422
    assert (await emulator.post("/_admin/faults", content=b"[1]")).status_code == 400
    assert (
        await emulator.post("/_admin/reauthorize", json={"provider": "tikapi", "account_key": "unknown"})
    ).status_code == 400


async def test_status_faults_count_skip_and_clear(emulator):
    await admin(
        emulator,
        "faults",
        {
            "rules": [
                {
                    "provider": "tikapi",
                    "kind": "status",
                    "status": 502,
                    "count": 2,
                    "skip": 1,
                    "path": "/key/",
                    "method": "get",
                }
            ]
        },
    )
    codes = [(await emulator.get("/tikapi/key/info", headers=TIKAPI)).status_code for _ in range(4)]
    assert codes == [200, 502, 502, 200]
    # Other paths and providers do not match.
    assert (await emulator.get("/tikapi/user/info", headers=ACCOUNT)).status_code == 200
    rules = (await emulator.get("/_admin/faults")).json()["rules"]
    assert (rules[0]["seen"], rules[0]["fired"]) == (4, 2)
    await admin(emulator, "faults", {"rules": [{"provider": "tikapi", "kind": "status", "count": None}]})
    assert (await emulator.get("/tikapi/key/info", headers=TIKAPI)).status_code == 503
    assert (await emulator.delete("/_admin/faults")).json() == {"rules": 0}
    assert (await emulator.get("/tikapi/key/info", headers=TIKAPI)).status_code == 200


@pytest.mark.parametrize(
    ("provider", "request_args", "error"),
    [
        ("tikapi", ("GET", "/tikapi/key/info", {"headers": TIKAPI}), lambda b: b["status"] == "error"),
        (
            "highlevel",
            ("GET", f"/highlevel/social-media-posting/{HIGHLEVEL_LOCATION}/accounts", {"headers": HL}),
            lambda b: b["statusCode"] == 500,
        ),
        (
            "socialapi",
            ("GET", "/socialapi/v1/accounts", {"headers": {"Authorization": f"Bearer {SOCIALAPI_KEY}"}}),
            lambda b: b["error"]["code"] == "internal_error",
        ),
        (
            "tiktok",
            ("POST", "/tiktok/v2/post/publish/status/fetch/", {"json": {}}),
            lambda b: b["error"]["code"] == "internal_error",
        ),
        ("dumpling", ("POST", "/dumpling/api/v1/get-tiktok-profile", {"json": {}}), lambda b: "error" in b),
    ],
)
async def test_status_faults_answer_in_each_providers_own_error_shape(
    emulator, provider, request_args, error
):
    await admin(emulator, "faults", {"rules": [{"provider": provider, "kind": "status", "status": 500}]})
    method, url, kwargs = request_args
    response = await emulator.request(method, url, **kwargs)
    assert response.status_code == 500
    assert error(response.json())


async def test_socialapi_faults_still_echo_the_request_id(emulator):
    await admin(
        emulator, "faults", {"rules": [{"provider": "socialapi", "kind": "rate_limit", "retry_after": 2}]}
    )
    response = await emulator.get(
        "/socialapi/v1/accounts", headers={"Authorization": f"Bearer {SOCIALAPI_KEY}", "X-Request-ID": "t-1"}
    )
    assert (response.status_code, response.headers["x-request-id"], response.headers["retry-after"]) == (
        429,
        "t-1",
        "2",
    )
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


async def test_probability_is_reproducible_with_the_seed(fake_clock):
    async def run(seed: int) -> list[int]:
        app = create_app(EmulatorConfig(seed=seed, clock=fake_clock))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as client:
            await admin(
                client,
                "faults",
                {"rules": [{"provider": "tikapi", "kind": "status", "count": None, "probability": 0.5}]},
            )
            return [(await client.get("/tikapi/key/info", headers=TIKAPI)).status_code for _ in range(30)]

    first = await run(11)
    assert await run(11) == first
    assert 8 < first.count(503) < 22
    assert await run(12) != first


@pytest.mark.parametrize(("retry_after", "header"), [(7, "7"), (None, None)])
async def test_rate_limit_faults_with_and_without_reset_headers(emulator, retry_after, header):
    await admin(
        emulator,
        "faults",
        {"rules": [{"provider": "tikapi", "kind": "rate_limit", "retry_after": retry_after, "count": 2}]},
    )
    responses = [await emulator.get("/tikapi/key/info", headers=TIKAPI) for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 200]
    assert responses[0].json() == {"status": "error", "message": "API Key Rate-Limit reached."}
    assert responses[0].headers.get("retry-after") == header
    assert not any(h.startswith("x-ratelimit") for h in responses[0].headers)
    snapshot = await state(emulator)
    assert (snapshot["rate_limited"], snapshot["statuses"]["tikapi 429"]) == (2, 2)


async def test_malformed_html_slow_and_timeout_faults(emulator):
    await admin(
        emulator,
        "faults",
        {
            "rules": [
                {"provider": "tikapi", "kind": "malformed"},
                {"provider": "tikapi", "kind": "html"},
                {"provider": "tikapi", "kind": "slow", "delay_s": 0},
                {"provider": "tikapi", "kind": "timeout", "delay_s": 0},
            ]
        },
    )
    malformed = await emulator.get("/tikapi/key/info", headers=TIKAPI)
    assert malformed.status_code == 200
    with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
        malformed.json()
    html = await emulator.get("/tikapi/key/info", headers=TIKAPI)
    assert (html.status_code, html.headers["content-type"].split(";")[0]) == (502, "text/html")
    slow = await emulator.get("/tikapi/key/info", headers=TIKAPI)
    assert slow.json()["status"] == "success"
    assert (await emulator.get("/tikapi/key/info", headers=TIKAPI)).status_code == 504


async def test_expire_and_reauthorize_through_admin(emulator):
    new_key = "AnotherAccountKey123456"
    await admin(emulator, "keys", {"provider": "tikapi", "account_key": new_key, "username": "nina_art"})
    headers = {**TIKAPI, "X-ACCOUNT-KEY": new_key}
    assert (await emulator.get("/tikapi/user/info", headers=headers)).json()["userInfo"]["user"][
        "uniqueId"
    ] == "nina_art"
    await admin(emulator, "expire_token", {"provider": "tikapi", "account_key": new_key})
    assert (await emulator.get("/tikapi/user/info", headers=headers)).status_code == 428
    fresh = (await admin(emulator, "reauthorize", {"provider": "tikapi", "account_key": new_key}))[
        "account_key"
    ]
    me = (await emulator.get("/tikapi/user/info", headers={**TIKAPI, "X-ACCOUNT-KEY": fresh})).json()
    assert me["userInfo"]["user"]["uniqueId"] == "nina_art"
    sa = {"Authorization": f"Bearer {SOCIALAPI_KEY}"}
    await admin(emulator, "expire_token", {"provider": "socialapi"})
    assert (await emulator.get("/socialapi/v1/posts", headers=sa)).status_code == 403
    await admin(emulator, "reauthorize", {"provider": "socialapi"})
    assert (await emulator.get("/socialapi/v1/posts", headers=sa)).status_code == 200
    tokens = (await state(emulator))["tokens"]
    assert new_key in tokens["tikapi"]["expired_account_keys"]
    assert tokens["tikapi"]["account_keys"][fresh] == "nina_art"


async def test_added_bearer_keys_work(emulator):
    await admin(emulator, "keys", {"provider": "socialapi", "key": "sk_my_own_key_1234"})
    assert (
        await emulator.get("/socialapi/v1/accounts", headers={"Authorization": "Bearer sk_my_own_key_1234"})
    ).status_code == 200
    assert (await emulator.post("/_admin/keys", json={"provider": "nope", "key": "x"})).status_code == 400
