"""TikAPI as its reference documents it (seed 004): the sandbox keys, `session/check`, more endpoints."""

from __future__ import annotations

from tests.emulator.support import admin, state

#: The keys exactly as TikAPI's REST reference prints them ("Sandbox API Key", "Sandbox Account
#: Key"), written out here rather than imported: a truncated copy in the emulator must fail this.
DOCUMENTED_API_KEY = "DemoAPIKeyTokenSeHYGXDfd4SFD320Sc39Asd0Sc39Asd4s"
DOCUMENTED_ACCOUNT_KEY = "DemoAccountKeyTokenSeHYGXDfd4SFD320Sc39Asd0Sc39A"
DOCUMENTED = {"X-API-KEY": DOCUMENTED_API_KEY, "X-ACCOUNT-KEY": DOCUMENTED_ACCOUNT_KEY}


async def test_the_documented_sandbox_account_key_is_accepted(emulator):
    me = await emulator.get("/tikapi/user/info", headers=DOCUMENTED)
    assert me.status_code == 200, me.json()
    assert me.json()["userInfo"]["user"]["uniqueId"] == "tikflow_demo"
    checked = await emulator.get("/tikapi/user/session/check", headers=DOCUMENTED)
    assert checked.json()["status"] == "success"


async def test_session_check_removes_a_user_whose_session_is_invalid(emulator):
    await admin(emulator, "expire_token", {"provider": "tikapi", "account_key": DOCUMENTED_ACCOUNT_KEY})
    # Any other call with the expired key says so, and keeps saying so.
    assert (await emulator.get("/tikapi/user/info", headers=DOCUMENTED)).status_code == 428
    checked = await emulator.get("/tikapi/user/session/check", headers=DOCUMENTED)
    assert checked.status_code == 428
    assert checked.json()["statusCode"] == 8
    # "Auto-removes the user if it's invalid": the key is now unknown, not merely expired.
    for path in ("/tikapi/user/info", "/tikapi/user/session/check"):
        gone = await emulator.get(path, headers=DOCUMENTED)
        assert (gone.status_code, gone.json()["message"]) == (401, "A valid Account Key is required.")
    tokens = (await state(emulator))["tokens"]["tikapi"]
    assert DOCUMENTED_ACCOUNT_KEY not in tokens["account_keys"]
    assert DOCUMENTED_ACCOUNT_KEY not in tokens["expired_account_keys"]
    assert tokens["removed_account_keys"] == {DOCUMENTED_ACCOUNT_KEY: "tikflow_demo"}
    key_info = (await emulator.get("/tikapi/key/info", headers=DOCUMENTED)).json()
    assert key_info["accounts"] == []
    # The user authorizes again: a new key for the same account.
    fresh = (
        await admin(emulator, "reauthorize", {"provider": "tikapi", "account_key": DOCUMENTED_ACCOUNT_KEY})
    )["account_key"]
    me = await emulator.get("/tikapi/user/info", headers={**DOCUMENTED, "X-ACCOUNT-KEY": fresh})
    assert me.json()["userInfo"]["user"]["uniqueId"] == "tikflow_demo"


async def test_session_check_leaves_a_valid_user_alone(emulator):
    assert (await emulator.get("/tikapi/user/session/check", headers=DOCUMENTED)).status_code == 200
    assert (await emulator.get("/tikapi/user/info", headers=DOCUMENTED)).status_code == 200
    assert (await state(emulator))["tokens"]["tikapi"]["removed_account_keys"] == {}


async def test_liked_and_related_posts_as_the_reference_lists_them(emulator):
    video = "7109178205151464746"
    assert (
        await emulator.post("/tikapi/user/like", json={"media_id": video}, headers=DOCUMENTED)
    ).status_code == 200
    liked = (await emulator.get("/tikapi/user/likes", headers=DOCUMENTED)).json()
    assert [item["id"] for item in liked["itemList"]] == [video]
    assert isinstance(liked["cursor"], str)
    await emulator.post("/tikapi/user/unlike", json={"media_id": video}, headers=DOCUMENTED)
    assert (await emulator.get("/tikapi/user/likes", headers=DOCUMENTED)).json()["itemList"] == []
    related = await emulator.get(
        "/tikapi/public/related_posts", params={"video_id": video}, headers={"X-API-KEY": DOCUMENTED_API_KEY}
    )
    videos = {v["id"]: v for v in (await state(emulator))["tikapi"]["videos"]}
    items = related.json()["itemList"]
    assert items
    assert video not in [item["id"] for item in items]
    assert all(set(videos[item["id"]]["hashtags"]) & set(videos[video]["hashtags"]) for item in items)
    missing = await emulator.get("/tikapi/public/related_posts", headers={"X-API-KEY": DOCUMENTED_API_KEY})
    assert missing.status_code == 400
