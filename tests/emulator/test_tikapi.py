"""TikAPI stand-in: keys, every automation endpoint's shape, cursor types, pagination, effects."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.emulator.support import ACCOUNT, DOC_COMMENT, DOC_VIDEO, TIKAPI, admin, state
from tikflow.emulator.state import DEMO_ACCOUNT_KEY


async def _walk(client, path, params, headers, cursor_name, items_key):
    """Every page of a listing, as the official client iterates it; (items, cursors seen)."""
    items, cursors = [], []
    query = dict(params)
    for _ in range(50):
        body = (await client.get(path, params=query, headers=headers)).json()
        assert body["status"] == "success"
        items += body[items_key]
        more = body.get("hasMore") or body.get("has_more")
        cursor = body.get("cursor", body.get("nextCursor"))
        if not more or not cursor:
            return items, cursors
        cursors.append(cursor)
        query[cursor_name] = cursor
    raise AssertionError("the listing never ended")


async def test_unknown_api_key_gets_the_documented_401(emulator):
    response = await emulator.get(
        "/tikapi/public/check", params={"username": "lilyachty"}, headers={"X-API-KEY": "x" * 30}
    )
    assert response.status_code == 401
    assert response.json() == {"message": "A valid API Key is required.", "status": "error"}
    assert (await emulator.get("/tikapi/public/check", params={"username": "lilyachty"})).status_code == 401


async def test_user_endpoints_need_a_known_account_key(emulator):
    assert (await emulator.get("/tikapi/user/info", headers=TIKAPI)).status_code == 401
    wrong = {**TIKAPI, "X-ACCOUNT-KEY": "NotAnAccountKey1234567890"}
    assert (await emulator.get("/tikapi/user/info", headers=wrong)).status_code == 401
    me = (await emulator.get("/tikapi/user/info", headers=ACCOUNT)).json()
    assert me["userInfo"]["user"]["uniqueId"] == "tikflow_demo"


async def test_keys_added_through_admin_are_accepted(emulator):
    await admin(
        emulator,
        "keys",
        {"provider": "tikapi", "api_key": "MyOwnApiKey123456", "account_key": "MyAccount12345"},
    )
    headers = {"X-API-KEY": "MyOwnApiKey123456", "X-ACCOUNT-KEY": "MyAccount12345"}
    assert (await emulator.get("/tikapi/user/session/check", headers=headers)).status_code == 200


async def test_profile_check_and_missing_user(emulator):
    body = (
        await emulator.get("/tikapi/public/check", params={"username": "lilyachty"}, headers=TIKAPI)
    ).json()
    assert (body["status"], body["statusCode"]) == ("success", 0)
    assert set(body["userInfo"]["user"]) >= {"id", "uniqueId", "secUid", "nickname"}
    assert body["userInfo"]["stats"]["followerCount"] == 9_800_000
    missing = await emulator.get("/tikapi/public/check", params={"username": "nobody_here"}, headers=TIKAPI)
    assert missing.status_code == 403
    assert missing.json() == {"status": "error", "message": "User doesn't exist", "statusCode": 10202}
    bad = await emulator.get("/tikapi/public/check", headers=TIKAPI)
    assert (bad.status_code, bad.json()["message"]) == (400, "Missing fields.")
    assert "secUid" in bad.json()["fields"]


async def test_hashtag_by_name_then_id_pages_with_string_cursors(emulator):
    first = (
        await emulator.get("/tikapi/public/hashtag", params={"name": "cats", "count": 5}, headers=TIKAPI)
    ).json()
    challenge = first["challengeInfo"]["challenge"]
    assert challenge == {"id": "5635", "title": "cats"}
    assert first["challengeInfo"]["stats"]["videoCount"] == 12
    assert isinstance(first["cursor"], str)
    assert first["hasMore"] is True
    items, cursors = await _walk(
        emulator, "/tikapi/public/hashtag", {"id": challenge["id"], "count": 5}, TIKAPI, "cursor", "itemList"
    )
    assert len(items) == len({i["id"] for i in items}) == 12
    assert all(isinstance(c, str) for c in cursors)
    item = items[0]
    assert set(item) >= {"id", "desc", "createTime", "author", "stats", "video"}
    assert set(item["stats"]) == {"diggCount", "playCount", "commentCount", "shareCount"}
    missing = await emulator.get("/tikapi/public/hashtag", params={"name": "nosuchtag"}, headers=TIKAPI)
    assert (missing.status_code, missing.json()["statusCode"]) == (403, 10205)


async def test_posts_feed_and_video(emulator):
    profile = (
        await emulator.get("/tikapi/public/check", params={"username": "crafty_jo"}, headers=TIKAPI)
    ).json()
    sec_uid = profile["userInfo"]["user"]["secUid"]
    items, _ = await _walk(
        emulator, "/tikapi/public/posts", {"secUid": sec_uid, "count": 2}, TIKAPI, "cursor", "itemList"
    )
    assert {i["author"]["uniqueId"] for i in items} == {"crafty_jo"}
    assert len(items) == profile["userInfo"]["stats"]["videoCount"]
    feed, _ = await _walk(emulator, "/tikapi/user/feed", {"count": 3}, ACCOUNT, "cursor", "itemList")
    assert {i["author"]["uniqueId"] for i in feed} == {"tikflow_demo"}
    video = (await emulator.get("/tikapi/public/video", params={"id": DOC_VIDEO}, headers=TIKAPI)).json()
    assert video["itemInfo"]["itemStruct"]["id"] == DOC_VIDEO
    gone = await emulator.get("/tikapi/public/video", params={"id": "1"}, headers=TIKAPI)
    assert (gone.status_code, gone.json()["statusCode"]) == (403, 10204)
    explore = (await emulator.get("/tikapi/public/explore", params={"count": 4}, headers=TIKAPI)).json()
    assert len(explore["itemList"]) == 4


async def test_comment_lists_use_number_cursors_and_page_to_the_end(emulator):
    await admin(emulator, "tick", {"comments": 7, "video_id": DOC_VIDEO})
    comments, cursors = await _walk(
        emulator,
        "/tikapi/public/comment/list",
        {"media_id": DOC_VIDEO, "count": 3},
        TIKAPI,
        "cursor",
        "comments",
    )
    assert len(comments) == 8
    assert all(isinstance(c, int) for c in cursors)
    first = (
        await emulator.get(
            "/tikapi/public/comment/list", params={"media_id": DOC_VIDEO, "count": 3}, headers=TIKAPI
        )
    ).json()
    assert (first["has_more"], first["total"], first["status_code"]) == (1, 8, 0)
    comment = next(c for c in comments if c["cid"] == DOC_COMMENT)
    assert set(comment) >= {
        "cid",
        "text",
        "create_time",
        "digg_count",
        "reply_comment_total",
        "aweme_id",
        "user",
    }
    assert set(comment["user"]) >= {"uid", "unique_id", "nickname"}
    # Newest first.
    times = [c["create_time"] for c in comments]
    assert times == sorted(times, reverse=True)


async def test_a_posted_reply_shows_up_under_its_parent_written_by_our_account(emulator):
    posted = await emulator.post(
        "/tikapi/user/comment",
        json={"media_id": DOC_VIDEO, "text": "thanks!", "reply_comment_id": DOC_COMMENT},
        headers=ACCOUNT,
    )
    assert posted.status_code == 200
    reply = posted.json()["comment"]
    assert (reply["text"], reply["user"]["unique_id"], reply["reply_id"]) == (
        "thanks!",
        "tikflow_demo",
        DOC_COMMENT,
    )
    listed = (
        await emulator.get(
            "/tikapi/public/comment/reply/list",
            params={"media_id": DOC_VIDEO, "comment_id": DOC_COMMENT},
            headers=TIKAPI,
        )
    ).json()
    assert [c["cid"] for c in listed["comments"]] == [reply["cid"]]
    assert isinstance(listed["cursor"], int)
    # A reply to the reply is threaded under the same top-level comment.
    nested = (
        await emulator.post(
            "/tikapi/user/comment",
            json={"media_id": DOC_VIDEO, "text": "and again", "reply_comment_id": reply["cid"]},
            headers=ACCOUNT,
        )
    ).json()["comment"]
    assert (nested["reply_id"], nested["reply_to_reply_id"]) == (DOC_COMMENT, reply["cid"])
    top = (
        await emulator.get("/tikapi/user/comment/list", params={"media_id": DOC_VIDEO}, headers=ACCOUNT)
    ).json()
    parent = next(c for c in top["comments"] if c["cid"] == DOC_COMMENT)
    assert parent["reply_comment_total"] == 2
    snapshot = {c["cid"]: c for c in (await state(emulator))["tikapi"]["comments"]}
    assert snapshot[reply["cid"]]["author"] == "tikflow_demo"
    assert snapshot[reply["cid"]]["reply_to"] == DOC_COMMENT


async def test_top_level_comment_likes_and_delete(emulator):
    made = (
        await emulator.post(
            "/tikapi/user/comment", json={"media_id": DOC_VIDEO, "text": "hello"}, headers=ACCOUNT
        )
    ).json()
    cid = made["comment"]["cid"]
    listed = (
        await emulator.get("/tikapi/public/comment/list", params={"media_id": DOC_VIDEO}, headers=TIKAPI)
    ).json()
    assert cid in [c["cid"] for c in listed["comments"]]
    for action in ("like", "unlike", "like"):
        response = await emulator.post(
            f"/tikapi/user/comment/{action}",
            json={"media_id": DOC_VIDEO, "comment_id": DOC_COMMENT},
            headers=ACCOUNT,
        )
        assert response.status_code == 200
    snapshot = {c["cid"]: c for c in (await state(emulator))["tikapi"]["comments"]}
    assert snapshot[DOC_COMMENT]["liked_by"] == ["tikflow_demo"]
    # Someone else's comment on someone else's video: not ours to delete.
    refused = await emulator.post(
        "/tikapi/user/comment/delete", json={"comment_id": DOC_COMMENT}, headers=ACCOUNT
    )
    assert refused.status_code == 403
    assert (
        await emulator.post("/tikapi/user/comment/delete", json={"comment_id": cid}, headers=ACCOUNT)
    ).status_code == 200
    listed = (
        await emulator.get("/tikapi/public/comment/list", params={"media_id": DOC_VIDEO}, headers=TIKAPI)
    ).json()
    assert cid not in [c["cid"] for c in listed["comments"]]
    again = await emulator.post("/tikapi/user/comment/delete", json={"comment_id": cid}, headers=ACCOUNT)
    assert (again.status_code, again.json()["statusCode"]) == (403, 10224)
    snapshot = {c["cid"]: c for c in (await state(emulator))["tikapi"]["comments"]}
    assert snapshot[cid]["deleted"] is True


async def test_video_like_and_unlike(emulator):
    before = (await emulator.get("/tikapi/public/video", params={"id": DOC_VIDEO}, headers=TIKAPI)).json()
    likes = before["itemInfo"]["itemStruct"]["stats"]["diggCount"]
    await emulator.post("/tikapi/user/like", json={"media_id": DOC_VIDEO}, headers=ACCOUNT)
    await emulator.post("/tikapi/user/like", json={"media_id": DOC_VIDEO}, headers=ACCOUNT)
    after = (await emulator.get("/tikapi/public/video", params={"id": DOC_VIDEO}, headers=TIKAPI)).json()
    assert after["itemInfo"]["itemStruct"]["stats"]["diggCount"] == likes + 1
    await emulator.post("/tikapi/user/unlike", json={"media_id": DOC_VIDEO}, headers=ACCOUNT)
    videos = {v["id"]: v for v in (await state(emulator))["tikapi"]["videos"]}
    assert videos[DOC_VIDEO]["liked_by"] == []


@pytest.mark.parametrize(
    ("path", "key"), [("/tikapi/user/followers", "followers"), ("/tikapi/user/following", "followings")]
)
async def test_follow_lists_use_number_next_cursors(emulator, path, key):
    users, cursors = await _walk(emulator, path, {"count": 3}, ACCOUNT, "nextCursor", key)
    assert all(isinstance(c, int) for c in cursors)
    assert len(users) == len({u["uniqueId"] for u in users})
    if key == "followers":
        assert len(users) == 10
    else:
        assert {u["uniqueId"] for u in users} == {"lilyachty", "stoolpresidente"}


async def test_public_followers_by_sec_uid(emulator):
    star = (
        await emulator.get("/tikapi/public/check", params={"username": "lilyachty"}, headers=TIKAPI)
    ).json()
    body = (
        await emulator.get(
            "/tikapi/public/followers",
            params={"secUid": star["userInfo"]["user"]["secUid"], "count": 30},
            headers=TIKAPI,
        )
    ).json()
    assert "tikflow_demo" in [u["user"]["uniqueId"] for u in body["userList"]]
    # The last page ends with a falsy nextCursor: the official client would follow a truthy one.
    assert (len(body["userList"]), body["hasMore"], body["nextCursor"]) == (11, False, 0)


@pytest.mark.parametrize(
    ("category", "key"),
    [("general", "data"), ("videos", "item_list"), ("users", "user_list"), ("autocomplete", "sug_list")],
)
async def test_search_categories(emulator, category, key):
    body = (
        await emulator.get(f"/tikapi/public/search/{category}", params={"query": "cat"}, headers=TIKAPI)
    ).json()
    assert body[key]
    if category != "autocomplete":
        assert isinstance(body["nextCursor"], str)


async def test_messages_conversations_and_requests(emulator):
    convs = (await emulator.get("/tikapi/user/conversations", headers=ACCOUNT)).json()
    assert isinstance(convs["nextCursor"], int)
    conv = convs["conversations"][0]
    ref = {"conversation_id": conv["conversation_id"], "conversation_short_id": conv["conversation_short_id"]}
    sent = await emulator.post(
        "/tikapi/user/message/send",
        json={**ref, "text": "hello back", "ticket": conv["ticket"]},
        headers=ACCOUNT,
    )
    assert sent.status_code == 200
    messages = (await emulator.get("/tikapi/user/messages", params=ref, headers=ACCOUNT)).json()["messages"]
    assert json.loads(messages[0]["content"]) == {"text": "hello back"}
    bad_ticket = await emulator.post(
        "/tikapi/user/message/send", json={**ref, "text": "x", "ticket": "nope"}, headers=ACCOUNT
    )
    assert bad_ticket.status_code == 403

    requests = (await emulator.get("/tikapi/user/conversations/requests", headers=ACCOUNT)).json()[
        "conversations"
    ]
    assert len(requests) == 1
    request = requests[0]
    rref = {
        "conversation_id": request["conversation_id"],
        "conversation_short_id": request["conversation_short_id"],
    }
    waiting = (await emulator.get("/tikapi/user/messages/requests", params=rref, headers=ACCOUNT)).json()
    assert len(waiting["messages"]) == 1
    assert (
        await emulator.get("/tikapi/user/conversations/requests/mark_read", params=rref, headers=ACCOUNT)
    ).status_code == 200
    accepted = await emulator.get(
        "/tikapi/user/conversations/requests/accept",
        params={**rref, "user_id": request["user_id"]},
        headers=ACCOUNT,
    )
    assert accepted.status_code == 200
    assert (await emulator.get("/tikapi/user/conversations/requests", headers=ACCOUNT)).json()[
        "conversations"
    ] == []
    ids = [
        c["conversation_id"]
        for c in (await emulator.get("/tikapi/user/conversations", headers=ACCOUNT)).json()["conversations"]
    ]
    assert request["conversation_id"] in ids


async def test_deleting_a_message_request_hides_it(emulator):
    made = await admin(emulator, "tick", {"message_requests": 2})
    assert len(made["message_requests"]) == 2
    requests = (await emulator.get("/tikapi/user/conversations/requests", headers=ACCOUNT)).json()[
        "conversations"
    ]
    assert len(requests) == 3
    first = requests[0]
    ref = {
        "conversation_id": first["conversation_id"],
        "conversation_short_id": first["conversation_short_id"],
    }
    assert (
        await emulator.get("/tikapi/user/conversations/requests/delete", params=ref, headers=ACCOUNT)
    ).status_code == 200
    assert (
        len(
            (await emulator.get("/tikapi/user/conversations/requests", headers=ACCOUNT)).json()[
                "conversations"
            ]
        )
        == 2
    )


async def test_message_pages_use_string_next_cursors(emulator):
    await admin(emulator, "tick", {"messages": 5})
    conv = (await emulator.get("/tikapi/user/conversations", headers=ACCOUNT)).json()["conversations"][0]
    ref = {
        "conversation_id": conv["conversation_id"],
        "conversation_short_id": conv["conversation_short_id"],
        "limit": 2,
    }
    messages, cursors = await _walk(emulator, "/tikapi/user/messages", ref, ACCOUNT, "nextCursor", "messages")
    assert len(messages) == 6
    assert all(isinstance(c, str) for c in cursors)


async def test_notifications_page_by_time_without_losing_same_second_comments(emulator):
    mine = [v["id"] for v in (await state(emulator))["tikapi"]["videos"] if v["author"] == "tikflow_demo"]
    # Five comments in the same second: a page boundary must not split them.
    await admin(emulator, "tick", {"comments": 5, "video_id": mine[0]})
    seen, query = [], {"count": 3}
    for _ in range(30):
        listing = (await emulator.get("/tikapi/user/notifications", params=query, headers=ACCOUNT)).json()[
            "notice_lists"
        ][0]
        seen += [n["nid"] for n in listing["notice_list"]]
        if not listing["has_more"]:
            break
        query = {"count": 3, "min_time": listing["min_time"], "max_time": listing["max_time"]}
    snapshot = (await state(emulator))["tikapi"]
    expected = [
        c["cid"] for c in snapshot["comments"] if c["aweme_id"] in mine and c["author"] != "tikflow_demo"
    ]
    assert sorted(seen) == sorted(expected)


async def test_creator_analytics_session_and_key_info(emulator):
    overview = (
        await emulator.get("/tikapi/creator/analytics/overview", params={"days": 7}, headers=ACCOUNT)
    ).json()
    assert (overview["type"], overview["days"]) == ("overview", 7)
    bad = await emulator.get("/tikapi/creator/analytics/nonsense", headers=ACCOUNT)
    assert bad.status_code == 400
    assert (await emulator.get("/tikapi/user/session/check", headers=ACCOUNT)).json()["status"] == "success"
    info = (await emulator.get("/tikapi/key/info", headers=TIKAPI)).json()
    assert info["accounts"] == [{"username": "tikflow_demo"}]


async def test_session_expired_fault_answers_428_until_reauthorized(emulator):
    await admin(
        emulator,
        "faults",
        {"rules": [{"provider": "tikapi", "kind": "session_expired", "path": "/user/comment"}]},
    )
    body = {"media_id": DOC_VIDEO, "text": "hi"}
    for _ in range(3):
        expired = await emulator.post("/tikapi/user/comment", json=body, headers=ACCOUNT)
        assert expired.status_code == 428
        assert expired.json() == {
            "status": "error",
            "message": "Account session expired, please ask user to re-login and re-authorize.",
            "statusCode": 8,
        }
    # Every user request with that key, not only the faulted path.
    assert (await emulator.get("/tikapi/user/info", headers=ACCOUNT)).status_code == 428
    # The consent page mints a new key for the same user and redirects with it.
    consent = await emulator.get(
        "/tikapi/account/authorize",
        params={
            "client_id": "c_123",
            "redirect_uri": "https://app.example/cb",
            "scope": "view_profile explore",
            "state": "s1",
        },
    )
    assert consent.status_code == 302
    location = urlsplit(consent.headers["location"])
    query = parse_qs(location.query)
    assert (location.netloc, query["state"], query["scope"]) == (
        "app.example",
        ["s1"],
        ["view_profile explore"],
    )
    fresh = {**ACCOUNT, "X-ACCOUNT-KEY": query["access_token"][0]}
    assert (await emulator.post("/tikapi/user/comment", json=body, headers=fresh)).status_code == 200
    assert (await emulator.get("/tikapi/user/info", headers=ACCOUNT)).status_code == 428
    other = (await admin(emulator, "reauthorize", {"provider": "tikapi", "account_key": DEMO_ACCOUNT_KEY}))[
        "account_key"
    ]
    me = (await emulator.get("/tikapi/user/info", headers={**ACCOUNT, "X-ACCOUNT-KEY": other})).json()
    assert me["userInfo"]["user"]["uniqueId"] == "tikflow_demo"
    assert (await state(emulator))["statuses"]["tikapi 428"] == 5


async def test_daily_quota_resets_at_midnight_utc(emulator, fake_clock):
    await admin(emulator, "config", {"tikapi_daily": 3})
    codes = [(await emulator.get("/tikapi/key/info", headers=TIKAPI)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = await emulator.get("/tikapi/key/info", headers=TIKAPI)
    assert refused.json() == {"status": "error", "message": "API Key Rate-Limit reached."}
    assert "retry-after" not in refused.headers
    fake_clock.advance(86_400 - fake_clock.now % 86_400)
    assert (await emulator.get("/tikapi/key/info", headers=TIKAPI)).status_code == 200
    assert (await state(emulator))["rate_limited"] == 2


async def test_comments_arrive_over_clock_time_when_configured(emulator, fake_clock):
    await admin(emulator, "config", {"comment_interval_s": 10})
    before = (
        await emulator.get("/tikapi/public/comment/list", params={"media_id": DOC_VIDEO}, headers=TIKAPI)
    ).json()["total"]
    fake_clock.advance(35)
    after = (
        await emulator.get("/tikapi/public/comment/list", params={"media_id": DOC_VIDEO}, headers=TIKAPI)
    ).json()["total"]
    assert after == before + 3
    again = (
        await emulator.get("/tikapi/public/comment/list", params={"media_id": DOC_VIDEO}, headers=TIKAPI)
    ).json()["total"]
    assert again == after


async def test_requests_are_counted_by_documented_template(emulator):
    await emulator.get("/tikapi/public/search/users", params={"query": "cat"}, headers=TIKAPI)
    await emulator.get("/tikapi/creator/analytics/overview", headers=ACCOUNT)
    await emulator.get("/tikapi/no/such/endpoint", headers=TIKAPI)
    counted = (await state(emulator))["requests"]
    assert counted["tikapi GET /public/search/{category}"] == 1
    assert counted["tikapi GET /creator/analytics/{type}"] == 1
    assert counted["tikapi GET /no/such/endpoint"] == 1
