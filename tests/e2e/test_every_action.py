"""Every registered action, end to end: a recipe run by a real worker against the sandbox over HTTP.

The actions come from the registry itself, so an action registered without a case here fails
("no integration case for action X"). `CASES` maps each action to one or more cases: how the
scene is set (the sandbox's admin API, or recipe steps before the call), the call's `with:`
inputs, and a check of the call's normalized result and, for actions that change the world, of
the sandbox's state afterwards (the reply exists, the like counted, the post published, the
webhook got the body). Listings are read with `pages: 2` where the sandbox holds more than one
page, and the check asserts both pages arrived.

Each case runs as its own recipe (YAML text built here, loaded by the loader, started like
`tikflow run`) on a fresh sandbox world. One worker serves the whole module: starting one per
action would cost more than the runs themselves.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import Stack
from structlog.testing import capture_logs
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from activities.credentials import CredentialStore
from activities.registry import load_actions
from tests.support.emulator import emulator_services, store_emulator_credentials
from tests.support.webhook import Webhook
from tikflow.devstack import running_workers
from tikflow.emulator.state import HIGHLEVEL_ACCOUNT, ME, SOCIALAPI_ACCOUNT, TIKTOK_OPEN_ID
from tikflow.loader import load_recipe_text
from tikflow.runs import start_recipe
from workflows.recipe import RunResult

pytestmark = pytest.mark.devserver

#: Upload chunks small enough that the test video (64 KiB) goes up in four of them.
CHUNK = 16 * 1024
VIDEO_URL = "https://cdn.example.com/v/launch.mp4"


# ---------------------------------------------------------------------------------------------
# The scene a case plays in, and what it left behind.


@dataclass
class Scene:
    """A fresh sandbox world for one case: what a case's functions may read and set.

    Attributes:
        stack: The sandbox and the worker's task queue.
        scratch: A directory for files (videos to upload).
        webhook: A webhook receiver on loopback.
        seeded: The sandbox's state right after the reset.
        found: What the case's `prepare` found or made (ids, ticked comments).
    """

    stack: Stack
    scratch: Path
    webhook: Webhook
    seeded: dict[str, Any]
    found: dict[str, Any] = field(default_factory=dict)

    def admin(self, action: str, body: dict[str, Any] | None = None) -> Any:
        return self.stack.admin(action, body)


@dataclass(frozen=True)
class Outcome:
    """A finished case run.

    Attributes:
        out: The result of the call under test (step `out`).
        outputs: Every top-level step's result.
        state: The sandbox's state after the run.
        logs: What was logged while the run went (structlog events).
    """

    out: dict[str, Any]
    outputs: dict[str, Any]
    state: dict[str, Any]
    logs: list[dict[str, Any]]


Inputs = dict[str, Any] | Callable[[Scene], dict[str, Any]]
Steps = Callable[[Scene], list[dict[str, Any]]]
Check = Callable[[Scene, Outcome], None]


@dataclass(frozen=True)
class Case:
    """One integration case of `action`.

    Attributes:
        action: The action under test.
        name: The check's name (tells variants of one action apart).
        inputs: The call's `with:` mapping (or a function of the scene giving it).
        check: Asserts on the result and on the sandbox afterwards.
        prepare: Sets the scene through the admin API before the run.
        before: Recipe steps that run before the call (the call reads them as `steps.X`).
        after: Recipe steps that run after the call (e.g. fetching a publish's status).
    """

    action: str
    name: str
    inputs: Inputs
    check: Check
    prepare: Callable[[Scene], None] | None = None
    before: Steps | None = None
    after: Steps | None = None


CASES: dict[str, list[Case]] = {}


def case(
    action: str,
    inputs: Inputs,
    *,
    prepare: Callable[[Scene], None] | None = None,
    before: Steps | None = None,
    after: Steps | None = None,
) -> Callable[[Check], Check]:
    """Register the decorated check as a case of `action`."""

    def register(check: Check) -> Check:
        CASES.setdefault(action, []).append(
            Case(action, check.__name__, inputs, check, prepare, before, after)
        )
        return check

    return register


# ---------------------------------------------------------------------------------------------
# Reading the sandbox's state.


def _newest_videos(videos: Any) -> list[dict[str, Any]]:
    return sorted(videos, key=lambda v: (-v["create_time"], v["id"]))


def _videos_of(state: dict[str, Any], author: str) -> list[dict[str, Any]]:
    return _newest_videos(v for v in state["tikapi"]["videos"] if v["author"] == author)


def _tagged(state: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return _newest_videos(v for v in state["tikapi"]["videos"] if tag in v["hashtags"])


def _video(state: dict[str, Any], video_id: str) -> dict[str, Any]:
    return next(v for v in state["tikapi"]["videos"] if v["id"] == video_id)


def _user(state: dict[str, Any], unique_id: str) -> dict[str, Any]:
    return next(u for u in state["tikapi"]["users"] if u["unique_id"] == unique_id)


def _comment(state: dict[str, Any], cid: str) -> dict[str, Any]:
    return next(c for c in state["tikapi"]["comments"] if c["cid"] == cid)


def _comments_under(state: dict[str, Any], video_id: str, parent: str | None = None) -> list[dict[str, Any]]:
    """A video's visible comments (or the replies to `parent`), newest first, as TikAPI lists them."""
    found = [
        c
        for c in state["tikapi"]["comments"]
        if c["aweme_id"] == video_id and c["reply_to"] == parent and not c["deleted"]
    ]
    return sorted(found, key=lambda c: (-c["create_time"], -int(c["cid"])))


def _busiest_video(state: dict[str, Any]) -> str:
    """The video with the most top-level comments."""
    return max(state["tikapi"]["videos"], key=lambda v: len(_comments_under(state, v["id"])))["id"]


def _conversation(state: dict[str, Any], *, request: bool) -> dict[str, Any]:
    return next(c for c in state["tikapi"]["conversations"] if c["request"] is request)


def _requests(state: dict[str, Any], key: str) -> int:
    """How many requests the sandbox counted under `PROVIDER METHOD TEMPLATE`."""
    return int(state["requests"].get(key, 0))


def _mp4(path: Path, size: int = 64 * 1024) -> Path:
    """A small file that starts like an MP4 (an `ftyp` box): enough for the sandbox's upload."""
    path.write_bytes(struct.pack(">I4s4s", 16, b"ftyp", b"isom") + bytes(size))
    return path


# ---------------------------------------------------------------------------------------------
# Built-in actions.


@case("log", {"message": "every action says hi", "level": "warning", "fields": {"case": "log", "n": 3}})
def log_writes_the_line_with_its_fields(scene: Scene, o: Outcome) -> None:
    assert o.out == {"logged": "every action says hi"}
    assert {"event": "every action says hi", "log_level": "warning", "case": "log", "n": 3} in o.logs


@case(
    "http.request",
    lambda scene: {
        "url": scene.webhook.url,
        "method": "POST",
        "params": {"source": "tikflow"},
        "headers": {"Idempotency-Key": "every-action-http"},
        "json": {"hello": "webhook", "n": [1, 2]},
    },
)
def http_request_posts_json_to_a_webhook(scene: Scene, o: Outcome) -> None:
    assert o.out["status"] == 204
    assert scene.webhook.calls == [("every-action-http", {"hello": "webhook", "n": [1, 2]})]


@case(
    "http.request",
    lambda scene: {
        "url": f"{scene.stack.sandbox_url}/_admin/config",
        "headers": {"Accept": "application/json"},
        "expect": [200],
    },
)
def http_request_reads_a_json_answer(scene: Scene, o: Outcome) -> None:
    assert o.out["status"] == 200
    assert o.out["headers"]["content-type"] == "application/json"
    assert o.out["body"]["config"] == scene.seeded["config"]


@case(
    "notify.send",
    lambda scene: {
        "message": "a publish finished",
        "webhook": scene.webhook.url,
        "data": {"publish_id": "v_pub_1", "status": "PUBLISH_COMPLETE"},
        "recipe": "every-action",
        "workflow_id": "wf-1",
    },
)
def notify_posts_the_notification_once(scene: Scene, o: Outcome) -> None:
    assert o.out == {"sent": True, "status": 204, "logged": True}
    [(key, body)] = scene.webhook.calls
    assert key
    assert body == {
        "message": "a publish finished",
        "recipe": "every-action",
        "workflow_id": "wf-1",
        "publish_id": "v_pub_1",
        "status": "PUBLISH_COMPLETE",
    }


# ---------------------------------------------------------------------------------------------
# TikAPI: reads.


@case("tikapi.profile", {"username": "lilyachty"})
def tikapi_profile_reads_a_public_profile(scene: Scene, o: Outcome) -> None:
    user = _user(o.state, "lilyachty")
    assert o.out["user"]["id"] == user["id"]
    assert o.out["user"]["sec_uid"] == user["sec_uid"]
    assert o.out["user"]["verified"] is True
    assert o.out["stats"]["follower_count"] == user["followers"]
    assert o.out["stats"]["video_count"] == len(_videos_of(o.state, "lilyachty"))


@case(
    "tikapi.user_posts",
    lambda scene: {"sec_uid": _user(scene.seeded, "lilyachty")["sec_uid"], "count": 4, "pages": 2},
)
def tikapi_user_posts_pages_through_a_users_videos(scene: Scene, o: Outcome) -> None:
    expected = [v["id"] for v in _videos_of(o.state, "lilyachty")]
    assert len(expected) > 4
    assert [item["id"] for item in o.out["items"]] == expected
    assert all(item["author"] == "lilyachty" for item in o.out["items"])
    assert o.out["has_more"] is False
    assert _requests(o.state, "tikapi GET /public/posts") == 2


@case("tikapi.hashtag_posts", {"name": "cats", "count": 5, "pages": 2})
def tikapi_hashtag_posts_pages_by_the_hashtags_id(scene: Scene, o: Outcome) -> None:
    expected = [v["id"] for v in _tagged(o.state, "cats")]
    assert [item["id"] for item in o.out["items"]] == expected[:10]
    assert o.out["hashtag"]["id"] == o.state["tikapi"]["hashtags"]["cats"]["id"]
    assert o.out["hashtag"]["video_count"] == len(expected)
    assert o.out["has_more"] is True
    assert o.out["cursor"] == "10"
    assert _requests(o.state, "tikapi GET /public/hashtag") == 2


@case("tikapi.video", lambda scene: {"id": _tagged(scene.seeded, "lilyachty")[-1]["id"]})
def tikapi_video_reads_one_video(scene: Scene, o: Outcome) -> None:
    video = _tagged(o.state, "lilyachty")[-1]
    assert o.out["video"]["id"] == video["id"]
    assert o.out["video"]["author"] == "lilyachty"
    assert o.out["video"]["desc"] == video["desc"]
    assert o.out["video"]["stats"]["play_count"] == video["plays"]
    assert o.out["video"]["url"] == f"https://www.tiktok.com/@lilyachty/video/{video['id']}"
    assert o.out["raw"]["id"] == video["id"]


@case("tikapi.search", {"category": "videos", "query": "cats", "pages": 2})
def tikapi_search_pages_through_matching_videos(scene: Scene, o: Outcome) -> None:
    expected = {v["id"] for v in _tagged(o.state, "cats")}
    ids = [item["id"] for item in o.out["items"]]
    # The sandbox answers 10 results a page: two pages hold all 12.
    assert len(ids) == len(expected) > 10
    assert set(ids) == expected
    assert {item["type"] for item in o.out["items"]} == {"video"}
    assert o.out["has_more"] is False
    assert _requests(o.state, "tikapi GET /public/search/{category}") == 2


@case("tikapi.explore", {"count": 5})
def tikapi_explore_lists_the_most_played_videos(scene: Scene, o: Outcome) -> None:
    expected = sorted(o.state["tikapi"]["videos"], key=lambda v: (-v["plays"], v["id"]))[:5]
    assert [item["id"] for item in o.out["items"]] == [v["id"] for v in expected]


@case(
    "tikapi.comments",
    lambda scene: {"media_id": _busiest_video(scene.seeded), "count": 2, "pages": 2},
)
def tikapi_comments_pages_through_a_videos_comments(scene: Scene, o: Outcome) -> None:
    expected = _comments_under(o.state, _busiest_video(scene.seeded))
    assert len(expected) > 4
    assert [item["cid"] for item in o.out["items"]] == [c["cid"] for c in expected[:4]]
    assert [item["text"] for item in o.out["items"]] == [c["text"] for c in expected[:4]]
    assert all(item["reply_to"] is None for item in o.out["items"])
    assert o.out["has_more"] is True
    assert o.out["cursor"] == 4
    assert _requests(o.state, "tikapi GET /public/comment/list") == 2


def _fresh_comments_on_my_video(scene: Scene) -> None:
    video = _videos_of(scene.seeded, ME)[0]["id"]
    made = scene.admin("tick", {"comments": 2, "video_id": video, "text": "just arrived"})["comments"]
    scene.found.update(video=video, fresh=[c["cid"] for c in made])


@case(
    "tikapi.my_comments",
    lambda scene: {"media_id": scene.found["video"]},
    prepare=_fresh_comments_on_my_video,
)
def tikapi_my_comments_include_fresh_comments(scene: Scene, o: Outcome) -> None:
    expected = _comments_under(o.state, scene.found["video"])
    assert [item["cid"] for item in o.out["items"]] == [c["cid"] for c in expected]
    assert set(scene.found["fresh"]) <= {item["cid"] for item in o.out["items"]}
    assert _requests(o.state, "tikapi GET /user/comment/list") == 1


def _a_comment_on_my_video(scene: Scene) -> None:
    scene.found["parent"] = _comments_under(scene.seeded, _videos_of(scene.seeded, ME)[0]["id"])[0]


def _three_replies(scene: Scene) -> list[dict[str, Any]]:
    parent = scene.found["parent"]
    return [
        {
            "for_each": "{{ ['first reply', 'second reply', 'third reply'] }}",
            "as": "text",
            "steps": [
                {
                    "call": "tikapi.reply",
                    "with": {
                        "media_id": parent["aweme_id"],
                        "reply_comment_id": parent["cid"],
                        "text": "{{ text }}",
                    },
                }
            ],
        }
    ]


@case(
    "tikapi.replies",
    lambda scene: {
        "media_id": scene.found["parent"]["aweme_id"],
        "comment_id": scene.found["parent"]["cid"],
        "count": 2,
        "pages": 2,
    },
    prepare=_a_comment_on_my_video,
    before=_three_replies,
)
def tikapi_replies_pages_through_a_comments_replies(scene: Scene, o: Outcome) -> None:
    parent = scene.found["parent"]
    expected = _comments_under(o.state, parent["aweme_id"], parent["cid"])
    assert len(expected) == 3
    assert [item["cid"] for item in o.out["items"]] == [c["cid"] for c in expected]
    assert {item["text"] for item in o.out["items"]} == {"first reply", "second reply", "third reply"}
    assert all(item["reply_to"] == parent["cid"] and item["author"] == ME for item in o.out["items"])
    assert o.out["has_more"] is False


@case("tikapi.feed", {"count": 3, "pages": 2})
def tikapi_feed_pages_through_our_own_videos(scene: Scene, o: Outcome) -> None:
    expected = [v["id"] for v in _videos_of(o.state, ME)]
    assert len(expected) > 3
    assert [item["id"] for item in o.out["items"]] == expected
    assert {item["author"] for item in o.out["items"]} == {ME}
    assert _requests(o.state, "tikapi GET /user/feed") == 2


@case("tikapi.followers", {"count": 4, "pages": 2})
def tikapi_followers_pages_through_our_followers(scene: Scene, o: Outcome) -> None:
    expected = sorted(o.state["tikapi"]["followers"][ME])
    assert [item["unique_id"] for item in o.out["items"]] == expected[:8]
    assert all(item["id"] == _user(o.state, item["unique_id"])["id"] for item in o.out["items"])
    assert o.out["has_more"] is True
    assert o.out["cursor"] == 8
    assert _requests(o.state, "tikapi GET /user/followers") == 2


@case("tikapi.conversations", {})
def tikapi_conversations_list_the_inbox_with_tickets(scene: Scene, o: Outcome) -> None:
    inbox = [c for c in o.state["tikapi"]["conversations"] if not c["request"]]
    assert [
        (item["conversation_id"], item["conversation_short_id"], item["ticket"]) for item in o.out["items"]
    ] == [(c["conversation_id"], c["short_id"], c["ticket"]) for c in inbox]


@case(
    "tikapi.message_requests",
    {},
    prepare=lambda scene: scene.admin("tick", {"message_requests": 2}),
)
def tikapi_message_requests_list_the_requests_tab(scene: Scene, o: Outcome) -> None:
    waiting = [c["conversation_id"] for c in o.state["tikapi"]["conversations"] if c["request"]]
    assert len(waiting) == 3
    assert [item["conversation_id"] for item in o.out["items"]] == waiting


def _inbox_conversation(scene: Scene) -> dict[str, Any]:
    conv = _conversation(scene.seeded, request=False)
    return {"conversation_id": conv["conversation_id"], "conversation_short_id": conv["short_id"]}


@case(
    "tikapi.messages",
    lambda scene: {**_inbox_conversation(scene), "limit": 1, "pages": 2},
    prepare=lambda scene: scene.admin("tick", {"messages": 2}),
)
def tikapi_messages_page_through_a_conversation(scene: Scene, o: Outcome) -> None:
    conv = _conversation(o.state, request=False)
    expected = sorted(
        (m for m in o.state["tikapi"]["messages"] if m["conversation_id"] == conv["conversation_id"]),
        key=lambda m: (-m["create_time"], -int(m["id"])),
    )
    assert len(expected) == 3
    assert [(item["id"], item["text"]) for item in o.out["items"]] == [
        (m["id"], m["text"]) for m in expected[:2]
    ]
    peer = _user(o.state, conv["peer"])["id"]
    assert {item["sender_id"] for item in o.out["items"]} == {peer}
    assert o.out["has_more"] is True
    assert _requests(o.state, "tikapi GET /user/messages") == 2


@case("tikapi.notifications", {"count": 5, "pages": 2})
def tikapi_notifications_page_back_in_time(scene: Scene, o: Outcome) -> None:
    mine = {v["id"] for v in _videos_of(o.state, ME)}
    expected = sorted(
        (
            c
            for c in o.state["tikapi"]["comments"]
            if c["aweme_id"] in mine and c["author"] != ME and not c["deleted"]
        ),
        key=lambda c: (-c["create_time"], -int(c["cid"])),
    )
    nids = [item["nid"] for item in o.out["items"]]
    # A page never splits comments of one second, so a page may hold a few more than `count`.
    assert len(nids) >= 10
    assert nids == [c["cid"] for c in expected[: len(nids)]]
    assert o.out["has_more"] is True
    assert set(o.out["cursor"]) == {"min_time", "max_time"}
    assert _requests(o.state, "tikapi GET /user/notifications") == 2


@case("tikapi.analytics", {"type": "overview", "days": 28})
def tikapi_analytics_report_our_accounts_numbers(scene: Scene, o: Outcome) -> None:
    videos = _videos_of(o.state, ME)
    assert o.out["type"] == "overview"
    assert o.out["data"]["days"] == 28
    assert o.out["data"]["video_views"] == sum(v["plays"] for v in videos)
    assert o.out["data"]["likes"] == sum(v["likes"] for v in videos)
    assert o.out["data"]["followers"] == _user(o.state, ME)["followers"]
    assert "status" not in o.out["data"]


@case("tikapi.session_check", {})
def tikapi_session_check_finds_the_session_alive(scene: Scene, o: Outcome) -> None:
    assert o.out["valid"] is True
    assert _requests(o.state, "tikapi GET /user/session/check") == 1


@case("tikapi.key_info", {})
def tikapi_key_info_reports_the_subscription_only(scene: Scene, o: Outcome) -> None:
    assert o.out == {
        "credits": 100_000,
        "active": True,
        "subscription_active": True,
        "has_expired": False,
        "date_expiry": 4_070_908_800,
        "plan_id": 1,
        "accounts": 1,
    }


@case("tikapi.me", {})
def tikapi_me_reads_our_own_profile(scene: Scene, o: Outcome) -> None:
    me = _user(o.state, ME)
    assert o.out["user"]["id"] == me["id"]
    assert o.out["user"]["unique_id"] == ME
    assert o.out["stats"]["follower_count"] == me["followers"]
    assert o.out["stats"]["video_count"] == len(_videos_of(o.state, ME))


# ---------------------------------------------------------------------------------------------
# TikAPI: side effects.


def _my_comments(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in state["tikapi"]["comments"] if c["author"] == ME and not c["deleted"]]


@case(
    "tikapi.reply",
    lambda scene: {
        "media_id": scene.found["parent"]["aweme_id"],
        "reply_comment_id": scene.found["parent"]["cid"],
        "text": "thanks for asking! link in bio",
    },
    prepare=_a_comment_on_my_video,
)
def tikapi_reply_posts_one_reply_under_the_comment(scene: Scene, o: Outcome) -> None:
    parent = scene.found["parent"]
    [reply] = _my_comments(o.state)
    assert (reply["reply_to"], reply["aweme_id"], reply["text"]) == (
        parent["cid"],
        parent["aweme_id"],
        "thanks for asking! link in bio",
    )
    assert o.out["already_done"] is False
    assert o.out["comment"]["cid"] == reply["cid"]
    assert o.out["comment"]["reply_to"] == parent["cid"]
    assert o.out["comment"]["author"] == ME


@case(
    "tikapi.comment",
    lambda scene: {"media_id": _tagged(scene.seeded, "cats")[0]["id"], "text": "best cat on the app"},
)
def tikapi_comment_posts_one_top_level_comment(scene: Scene, o: Outcome) -> None:
    video = _tagged(o.state, "cats")[0]["id"]
    [posted] = _my_comments(o.state)
    assert (posted["aweme_id"], posted["reply_to"], posted["text"]) == (video, None, "best cat on the app")
    assert o.out["already_done"] is False
    assert o.out["comment"]["cid"] == posted["cid"]
    assert o.out["comment"]["aweme_id"] == video


def _a_fans_comment(scene: Scene) -> None:
    scene.found["comment"] = _comments_under(scene.seeded, _tagged(scene.seeded, "cats")[0]["id"])[0]


def _the_fans_comment(scene: Scene) -> dict[str, Any]:
    """The inputs naming the comment `_a_fans_comment` found."""
    return {"media_id": scene.found["comment"]["aweme_id"], "comment_id": scene.found["comment"]["cid"]}


@case(
    "tikapi.like_comment",
    _the_fans_comment,
    prepare=_a_fans_comment,
)
def tikapi_like_comment_counts_our_like(scene: Scene, o: Outcome) -> None:
    assert o.out == {"liked": True}
    assert _comment(o.state, scene.found["comment"]["cid"])["liked_by"] == [ME]
    liked = [c["cid"] for c in o.state["tikapi"]["comments"] if c["liked_by"]]
    assert liked == [scene.found["comment"]["cid"]]


@case("tikapi.like_video", lambda scene: {"media_id": _tagged(scene.seeded, "cats")[0]["id"]})
def tikapi_like_video_counts_our_like(scene: Scene, o: Outcome) -> None:
    before = _tagged(scene.seeded, "cats")[0]
    after = _video(o.state, before["id"])
    assert o.out == {"liked": True}
    assert after["liked_by"] == [ME]
    assert after["likes"] == before["likes"] + 1


def _like_first(scene: Scene) -> list[dict[str, Any]]:
    """Recipe steps that like the newest #cats video and the fan's comment, to be unliked."""
    return [
        {
            "id": "liked",
            "call": "tikapi.like_video",
            "with": {"media_id": _tagged(scene.seeded, "cats")[0]["id"]},
        },
        {
            "id": "liked_comment",
            "call": "tikapi.like_comment",
            "with": _the_fans_comment(scene),
        },
    ]


@case(
    "tikapi.unlike_video",
    lambda scene: {"media_id": _tagged(scene.seeded, "cats")[0]["id"]},
    prepare=_a_fans_comment,
    before=_like_first,
)
def tikapi_unlike_video_takes_our_like_back(scene: Scene, o: Outcome) -> None:
    before = _tagged(scene.seeded, "cats")[0]
    after = _video(o.state, before["id"])
    assert o.out == {"liked": False}
    assert (after["liked_by"], after["likes"]) == ([], before["likes"])
    # Only the video: the comment liked before stays liked.
    assert _comment(o.state, scene.found["comment"]["cid"])["liked_by"] == [ME]


@case(
    "tikapi.unlike_comment",
    _the_fans_comment,
    prepare=_a_fans_comment,
    before=_like_first,
)
def tikapi_unlike_comment_takes_our_like_back(scene: Scene, o: Outcome) -> None:
    assert o.out == {"liked": False}
    assert _comment(o.state, scene.found["comment"]["cid"])["liked_by"] == []
    assert _video(o.state, _tagged(scene.seeded, "cats")[0]["id"])["liked_by"] == [ME]
    assert _requests(o.state, "tikapi POST /user/comment/unlike") == 1


def _three_likes(scene: Scene) -> list[dict[str, Any]]:
    return [
        {"id": f"like{n}", "call": "tikapi.like_video", "with": {"media_id": video["id"]}}
        for n, video in enumerate(_tagged(scene.seeded, "cats")[:3])
    ]


@case("tikapi.liked_posts", {"count": 2, "pages": 2}, before=_three_likes)
def tikapi_liked_posts_page_through_what_we_liked(scene: Scene, o: Outcome) -> None:
    expected = _newest_videos(v for v in o.state["tikapi"]["videos"] if ME in v["liked_by"])
    assert len(expected) == 3
    assert [item["id"] for item in o.out["items"]] == [v["id"] for v in expected]
    assert o.out["has_more"] is False
    assert _requests(o.state, "tikapi GET /user/likes") == 2


@case("tikapi.related_posts", lambda scene: {"video_id": _tagged(scene.seeded, "cats")[0]["id"]})
def tikapi_related_posts_share_a_hashtag(scene: Scene, o: Outcome) -> None:
    video = _tagged(o.state, "cats")[0]
    assert o.out["items"]
    assert video["id"] not in [item["id"] for item in o.out["items"]]
    for item in o.out["items"]:
        assert set(_video(o.state, item["id"])["hashtags"]) & set(video["hashtags"])


def _followed_by(state: dict[str, Any], fan: str) -> list[str]:
    return sorted(user for user, fans in state["tikapi"]["followers"].items() if fan in fans)


@case("tikapi.following", {"count": 2, "pages": 2})
def tikapi_following_pages_through_whom_we_follow(scene: Scene, o: Outcome) -> None:
    expected = _followed_by(o.state, ME)
    assert len(expected) >= 2
    assert [item["unique_id"] for item in o.out["items"]] == expected[:4]
    assert all(item["id"] == _user(o.state, item["unique_id"])["id"] for item in o.out["items"])
    assert _requests(o.state, "tikapi GET /user/following") == min(2, (len(expected) + 1) // 2)


def _lilys_sec_uid(scene: Scene) -> dict[str, Any]:
    return {"sec_uid": _user(scene.seeded, "lilyachty")["sec_uid"], "count": 4, "pages": 2}


@case("tikapi.public_followers", _lilys_sec_uid)
def tikapi_public_followers_list_anyones_followers(scene: Scene, o: Outcome) -> None:
    expected = sorted(o.state["tikapi"]["followers"]["lilyachty"])
    assert len(expected) > 4
    assert [item["unique_id"] for item in o.out["items"]] == expected[:8]
    assert all(item["sec_uid"] == _user(o.state, item["unique_id"])["sec_uid"] for item in o.out["items"])
    assert _requests(o.state, "tikapi GET /public/followers") == 2


@case("tikapi.public_following", _lilys_sec_uid)
def tikapi_public_following_lists_whom_anyone_follows(scene: Scene, o: Outcome) -> None:
    expected = _followed_by(o.state, "lilyachty")
    assert [item["unique_id"] for item in o.out["items"]] == expected[:8]
    assert _requests(o.state, "tikapi GET /public/following") >= 1


def _a_comment_to_delete(scene: Scene) -> None:
    video = _videos_of(scene.seeded, ME)[0]["id"]
    [made] = scene.admin("tick", {"comments": 1, "video_id": video, "text": "FREE FOLLOWERS"})["comments"]
    scene.found["comment"] = made


@case(
    "tikapi.delete_comment",
    lambda scene: {"comment_id": scene.found["comment"]["cid"]},
    prepare=_a_comment_to_delete,
)
def tikapi_delete_comment_deletes_it(scene: Scene, o: Outcome) -> None:
    assert o.out == {"deleted": True, "already_done": False}
    assert _comment(o.state, scene.found["comment"]["cid"])["deleted"] is True
    deleted = [c["cid"] for c in o.state["tikapi"]["comments"] if c["deleted"]]
    assert deleted == [scene.found["comment"]["cid"]]


@case(
    "tikapi.send_message",
    lambda scene: {
        **_inbox_conversation(scene),
        "ticket": _conversation(scene.seeded, request=False)["ticket"],
        "text": "yes, still available!",
    },
)
def tikapi_send_message_sends_one_message(scene: Scene, o: Outcome) -> None:
    conv = _conversation(o.state, request=False)
    ours = [m for m in o.state["tikapi"]["messages"] if m["sender"] == ME]
    assert [(m["conversation_id"], m["text"]) for m in ours] == [
        (conv["conversation_id"], "yes, still available!")
    ]
    assert o.out["already_done"] is False
    assert o.out["message"] == {
        "id": ours[0]["id"],
        "text": "yes, still available!",
        "sender_id": _user(o.state, ME)["id"],
    }


@case(
    "tikapi.accept_request",
    lambda scene: {
        "conversation_id": _conversation(scene.seeded, request=True)["conversation_id"],
        "conversation_short_id": _conversation(scene.seeded, request=True)["short_id"],
        "user_id": _user(scene.seeded, _conversation(scene.seeded, request=True)["peer"])["id"],
    },
)
def tikapi_accept_request_moves_it_to_the_inbox(scene: Scene, o: Outcome) -> None:
    accepted = _conversation(scene.seeded, request=True)["conversation_id"]
    assert o.out == {"accepted": True, "already_done": False}
    assert all(not c["request"] for c in o.state["tikapi"]["conversations"])
    assert accepted in {c["conversation_id"] for c in o.state["tikapi"]["conversations"]}


# ---------------------------------------------------------------------------------------------
# TikTok: Display API and Content Posting API.


def _expired_tiktok_token(scene: Scene) -> None:
    scene.admin("expire_token", {"provider": "tiktok"})


@case(
    "tiktok.user_info", {"fields": ["open_id", "username", "display_name", "follower_count", "video_count"]}
)
def tiktok_user_info_reads_the_requested_fields(scene: Scene, o: Outcome) -> None:
    me = _user(o.state, ME)
    assert o.out == {
        "open_id": TIKTOK_OPEN_ID,
        "username": ME,
        "display_name": me["nickname"],
        "follower_count": me["followers"],
        "video_count": len(_videos_of(o.state, ME)),
    }
    assert o.state["tiktok"]["refresh_calls"] == 0


@case("tiktok.user_info", {"fields": ["open_id", "display_name"]}, prepare=_expired_tiktok_token)
def tiktok_user_info_refreshes_an_expired_token(scene: Scene, o: Outcome) -> None:
    assert o.out == {"open_id": TIKTOK_OPEN_ID, "display_name": _user(o.state, ME)["nickname"]}
    # The expired token was refused once, refreshed once, and the call redone.
    assert o.state["tiktok"]["refresh_calls"] == 1
    assert o.state["statuses"]["tiktok 401"] == 1
    assert _requests(o.state, "tiktok GET /v2/user/info/") == 2


@case("tiktok.videos", {"fields": ["id", "title", "view_count"], "max_count": 2, "pages": 2})
def tiktok_videos_page_through_our_videos(scene: Scene, o: Outcome) -> None:
    expected = _videos_of(o.state, ME)
    assert len(expected) > 2
    assert o.out["items"] == [{"id": v["id"], "title": v["desc"], "view_count": v["plays"]} for v in expected]
    assert o.out["has_more"] is False
    assert _requests(o.state, "tiktok POST /v2/video/list/") == 2


@case("tiktok.creator_info", {})
def tiktok_creator_info_says_what_we_may_post(scene: Scene, o: Outcome) -> None:
    assert o.out["creator_username"] == ME
    assert o.out["privacy_level_options"] == ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
    assert (o.out["comment_disabled"], o.out["duet_disabled"], o.out["stitch_disabled"]) == (
        False,
        False,
        True,
    )
    assert o.out["max_video_post_duration_sec"] == 600


def _small_chunks(scene: Scene) -> None:
    """Chunks of 16 KiB (TikTok's minimum is 5 MB) and publishes that finish on the first status fetch."""
    scene.admin("config", {"tiktok_min_chunk_bytes": CHUNK, "publish_polls": 1})
    scene.found["file"] = _mp4(scene.scratch / "clip.mp4")


def _fast_publishes(scene: Scene) -> None:
    scene.admin("config", {"publish_polls": 1})


def _status_of_out(scene: Scene) -> list[dict[str, Any]]:
    return [
        {
            "id": "status",
            "call": "tiktok.publish_status",
            "with": {"publish_id": "{{ steps.out.publish_id }}"},
        }
    ]


def _only_publish(state: dict[str, Any]) -> dict[str, Any]:
    [publish] = state["tiktok"]["publishes"]
    return publish


@case(
    "tiktok.publish_video",
    lambda scene: {
        "source": "FILE_UPLOAD",
        "file_path": str(scene.found["file"]),
        "chunk_size": CHUNK,
        "title": "every action #tikflow",
        "privacy_level": "PUBLIC_TO_EVERYONE",
    },
    prepare=_small_chunks,
    after=_status_of_out,
)
def tiktok_publish_video_uploads_in_chunks_and_publishes(scene: Scene, o: Outcome) -> None:
    size = scene.found["file"].stat().st_size
    publish = _only_publish(o.state)
    assert (publish["source"], publish["inbox"], publish["title"]) == (
        "FILE_UPLOAD",
        False,
        "every action #tikflow",
    )
    assert (publish["uploaded_bytes"], publish["chunks_received"], publish["total_chunk_count"]) == (
        size,
        4,
        4,
    )
    assert publish["status"] == "PUBLISH_COMPLETE"
    assert o.out == {
        "publish_id": publish["publish_id"],
        "mode": "direct",
        "source": "FILE_UPLOAD",
        "video_size": size,
        "chunk_count": 4,
        "already_done": False,
    }
    # Published: the video is on our profile, and public, so its id is reported.
    posted = _video(o.state, publish["post_id"])
    assert (posted["author"], posted["desc"], posted["hashtags"]) == (
        ME,
        "every action #tikflow",
        ["tikflow"],
    )
    assert o.outputs["status"]["post_ids"] == [publish["post_id"]]


@case(
    "tiktok.publish_video",
    {"source": "PULL_FROM_URL", "video_url": VIDEO_URL, "title": "from a URL", "privacy_level": "SELF_ONLY"},
    prepare=_fast_publishes,
    after=_status_of_out,
)
def tiktok_publish_video_has_tiktok_pull_a_url(scene: Scene, o: Outcome) -> None:
    publish = _only_publish(o.state)
    assert (publish["source"], publish["video_url"], publish["privacy_level"]) == (
        "PULL_FROM_URL",
        VIDEO_URL,
        "SELF_ONLY",
    )
    assert publish["status"] == "PUBLISH_COMPLETE"
    assert _video(o.state, publish["post_id"])["desc"] == "from a URL"
    assert o.out["publish_id"] == publish["publish_id"]
    assert (o.out["mode"], o.out["source"], o.out["already_done"]) == ("direct", "PULL_FROM_URL", False)
    # SELF_ONLY: published, but no public post id.
    assert o.outputs["status"]["post_ids"] == []


@case(
    "tiktok.upload_draft",
    lambda scene: {"source": "FILE_UPLOAD", "file_path": str(scene.found["file"]), "chunk_size": CHUNK},
    prepare=_small_chunks,
    after=_status_of_out,
)
def tiktok_upload_draft_sends_the_file_to_the_inbox(scene: Scene, o: Outcome) -> None:
    size = scene.found["file"].stat().st_size
    publish = _only_publish(o.state)
    assert (publish["source"], publish["inbox"], publish["uploaded_bytes"]) == ("FILE_UPLOAD", True, size)
    assert publish["chunks_received"] == 4
    assert publish["status"] == "SEND_TO_USER_INBOX"
    assert publish["post_id"] is None
    assert o.out["publish_id"] == publish["publish_id"]
    assert (o.out["mode"], o.out["chunk_count"], o.out["already_done"]) == ("inbox", 4, False)
    assert o.outputs["status"]["status"] == "SEND_TO_USER_INBOX"
    assert len(o.state["tikapi"]["videos"]) == len(scene.seeded["tikapi"]["videos"])


@case(
    "tiktok.upload_draft",
    {"source": "PULL_FROM_URL", "video_url": VIDEO_URL},
    prepare=_fast_publishes,
    after=_status_of_out,
)
def tiktok_upload_draft_has_tiktok_pull_a_url(scene: Scene, o: Outcome) -> None:
    publish = _only_publish(o.state)
    assert (publish["source"], publish["inbox"], publish["video_url"]) == ("PULL_FROM_URL", True, VIDEO_URL)
    assert publish["status"] == "SEND_TO_USER_INBOX"
    assert (o.out["publish_id"], o.out["mode"]) == (publish["publish_id"], "inbox")
    assert o.outputs["status"]["status"] == "SEND_TO_USER_INBOX"


def _a_pulled_publish(url: str) -> Steps:
    def steps(scene: Scene) -> list[dict[str, Any]]:
        return [
            {
                "id": "pub",
                "call": "tiktok.publish_video",
                "with": {"source": "PULL_FROM_URL", "video_url": url, "privacy_level": "PUBLIC_TO_EVERYONE"},
            }
        ]

    return steps


@case(
    "tiktok.publish_status",
    {"publish_id": "{{ steps.pub.publish_id }}"},
    prepare=_fast_publishes,
    before=_a_pulled_publish(VIDEO_URL),
)
def tiktok_publish_status_reports_a_complete_publish(scene: Scene, o: Outcome) -> None:
    publish = _only_publish(o.state)
    assert o.out == {
        "publish_id": publish["publish_id"],
        "status": "PUBLISH_COMPLETE",
        "fail_reason": None,
        "post_ids": [publish["post_id"]],
        "uploaded_bytes": 0,
        "downloaded_bytes": publish["downloaded_bytes"],
    }
    assert publish["downloaded_bytes"] > 0


@case(
    "tiktok.publish_status",
    {"publish_id": "{{ steps.pub.publish_id }}"},
    prepare=_fast_publishes,
    before=_a_pulled_publish("https://cdn.example.com/v/launch.html"),
)
def tiktok_publish_status_reports_tiktoks_failure(scene: Scene, o: Outcome) -> None:
    publish = _only_publish(o.state)
    assert publish["status"] == "FAILED"
    assert (o.out["status"], o.out["fail_reason"], o.out["post_ids"]) == ("FAILED", "video_pull_failed", [])


# ---------------------------------------------------------------------------------------------
# HighLevel Social Planner.


def _highlevel_post(summary: str) -> dict[str, Any]:
    return {
        "account_ids": [HIGHLEVEL_ACCOUNT],
        "summary": summary,
        "media": [{"url": "https://cdn.example.com/v/launch.mp4", "type": "video/mp4"}],
        "tiktok": {"privacy_level": "SELF_ONLY", "enable_duet": False},
    }


@case("highlevel.accounts", {})
def highlevel_accounts_list_the_connected_tiktok_account(scene: Scene, o: Outcome) -> None:
    [account] = o.out["items"]
    assert (account["id"], account["platform"], account["is_expired"]) == (HIGHLEVEL_ACCOUNT, "tiktok", False)
    assert account["meta"] == {"username": ME}
    assert o.out["groups"] == []


@case("highlevel.tiktok_profile", {"account_id": HIGHLEVEL_ACCOUNT})
def highlevel_tiktok_profile_reads_the_profile_behind_the_account(scene: Scene, o: Outcome) -> None:
    [profile] = o.out["items"]
    assert (profile["id"], profile["username"], profile["is_connected"]) == (HIGHLEVEL_ACCOUNT, ME, True)


@case("highlevel.create_post", _highlevel_post("launch day #tikflow"))
def highlevel_create_post_creates_one_post(scene: Scene, o: Outcome) -> None:
    [post] = o.state["highlevel"]["posts"]
    assert (post["summary"], post["accountIds"], post["status"]) == (
        "launch day #tikflow",
        [HIGHLEVEL_ACCOUNT],
        "in_progress",
    )
    assert post["media"] == [{"url": "https://cdn.example.com/v/launch.mp4", "type": "video/mp4"}]
    assert post["tiktokPostDetails"]["privacyLevel"] == "SELF_ONLY"
    assert post["tiktokPostDetails"]["enableDuet"] is False
    assert o.out == {"post_id": post["_id"], "status": "in_progress", "already_done": False}


@case(
    "highlevel.get_post",
    {"post_id": "{{ steps.made.post_id }}"},
    prepare=_fast_publishes,
    before=lambda scene: [
        {"id": "made", "call": "highlevel.create_post", "with": _highlevel_post("read me back")}
    ],
)
def highlevel_get_post_sees_the_post_published(scene: Scene, o: Outcome) -> None:
    [post] = o.state["highlevel"]["posts"]
    assert post["status"] == "published"
    assert o.out["post_id"] == o.outputs["made"]["post_id"] == post["_id"]
    assert (o.out["status"], o.out["summary"]) == ("published", "read me back")
    assert o.out["platform_post_id"] == post["postId"] is not None
    assert o.out["media_urls"] == ["https://cdn.example.com/v/launch.mp4"]
    assert o.out["raw"]["_id"] == post["_id"]


@case(
    "highlevel.list_posts",
    {"limit": 2, "pages": 2},
    before=lambda scene: [
        {
            "for_each": "{{ ['one', 'two', 'three'] }}",
            "as": "word",
            "steps": [{"call": "highlevel.create_post", "with": _highlevel_post("post {{ word }}")}],
        }
    ],
)
def highlevel_list_posts_pages_by_skip(scene: Scene, o: Outcome) -> None:
    posts = o.state["highlevel"]["posts"]
    assert len(posts) == 3
    assert sorted(item["post_id"] for item in o.out["items"]) == sorted(p["_id"] for p in posts)
    assert sorted(item["summary"] for item in o.out["items"]) == ["post one", "post three", "post two"]
    # Two posts a page: three items took both pages.
    assert (o.out["count"], o.out["has_more"], o.out["next_skip"]) == (3, False, None)


# ---------------------------------------------------------------------------------------------
# DumplingAI.


def _video_url(video: dict[str, Any]) -> str:
    return f"https://www.tiktok.com/@{video['author']}/video/{video['id']}"


@case("dumpling.profile", {"handle": "@lilyachty"})
def dumpling_profile_reads_a_profile_with_its_videos(scene: Scene, o: Outcome) -> None:
    user = _user(o.state, "lilyachty")
    assert (o.out["user"]["id"], o.out["user"]["unique_id"]) == (user["id"], "lilyachty")
    assert o.out["stats"]["follower_count"] == user["followers"]
    assert [item["id"] for item in o.out["items"]] == [v["id"] for v in _videos_of(o.state, "lilyachty")]
    assert o.state["dumpling"]["credits"] == scene.seeded["dumpling"]["credits"] - 10


@case("dumpling.profile_videos", {"handle": "lilyachty"})
def dumpling_profile_videos_list_a_profiles_videos(scene: Scene, o: Outcome) -> None:
    expected = _videos_of(o.state, "lilyachty")
    assert [item["id"] for item in o.out["items"]] == [v["id"] for v in expected]
    assert [item["stats"]["play_count"] for item in o.out["items"]] == [v["plays"] for v in expected]
    # The sandbox sends each video's `video` object, duration in seconds as in DumplingAI's docs.
    assert [item["duration"] for item in o.out["items"]] == [v["duration"] for v in expected]
    assert {item["author"] for item in o.out["items"]} == {"lilyachty"}
    assert o.out["has_more"] is False


def _a_max_cursor(scene: Scene) -> dict[str, Any]:
    """Resume after the second-newest video: `maxCursor` is its time in ms, as a string."""
    second = _videos_of(scene.seeded, "lilyachty")[1]
    return {"handle": "lilyachty", "cursor": str(second["create_time"] * 1000)}


@case("dumpling.profile_videos", _a_max_cursor)
def dumpling_profile_videos_resume_from_a_string_max_cursor(scene: Scene, o: Outcome) -> None:
    expected = _videos_of(o.state, "lilyachty")[2:]
    assert expected
    assert [item["id"] for item in o.out["items"]] == [v["id"] for v in expected]
    assert _requests(o.state, "dumpling POST /api/v1/get-tiktok-profile-videos") == 1
    assert o.state["statuses"].get("dumpling 400", 0) == 0


@case(
    "dumpling.video_comments",
    lambda scene: {
        "url": _video_url(_video(scene.seeded, _busiest_video(scene.seeded))),
        "count": 2,
        "pages": 2,
    },
)
def dumpling_video_comments_page_through_a_videos_comments(scene: Scene, o: Outcome) -> None:
    expected = _comments_under(o.state, _busiest_video(scene.seeded))
    assert len(expected) > 4
    assert [item["cid"] for item in o.out["items"]] == [c["cid"] for c in expected[:4]]
    assert (o.out["cursor"], o.out["has_more"]) == (4, True)
    assert _requests(o.state, "dumpling POST /api/v1/get-tiktok-video-comments") == 2


@case(
    "dumpling.transcript",
    lambda scene: {"url": _video_url(_tagged(scene.seeded, "lilyachty")[-1]), "preferred_language": "es"},
)
def dumpling_transcript_reads_a_videos_transcript(scene: Scene, o: Outcome) -> None:
    video = _tagged(o.state, "lilyachty")[-1]
    assert o.out["transcript"].startswith("WEBVTT")
    assert video["desc"].split("#")[0].strip() in o.out["transcript"]
    assert (o.out["language"], o.out["id"], o.out["url"]) == ("es", video["id"], _video_url(video))


# ---------------------------------------------------------------------------------------------
# SocialAPI.


def _socialapi_post(text: str) -> dict[str, Any]:
    return {
        "account_ids": [SOCIALAPI_ACCOUNT],
        "text": text,
        "media_ids": ["https://cdn.example.com/v/launch.mp4"],
        "tiktok": {"privacy_level": "SELF_ONLY"},
    }


@case("socialapi.accounts", {"platform": "tiktok"})
def socialapi_accounts_list_the_connected_account(scene: Scene, o: Outcome) -> None:
    [account] = o.out["items"]
    assert (account["id"], account["platform"], account["username"]) == (SOCIALAPI_ACCOUNT, "tiktok", ME)
    assert account["metadata"]["follower_count"] == _user(o.state, ME)["followers"]
    assert account["metadata"]["video_count"] == len(_videos_of(o.state, ME))
    assert (o.out["cursor"], o.out["has_more"]) == (None, False)


@case("socialapi.create_post", _socialapi_post("launch day #tikflow"))
def socialapi_create_post_creates_one_post(scene: Scene, o: Outcome) -> None:
    [post] = o.state["socialapi"]["posts"]
    assert (post["text"], post["media_ids"], post["status"]) == (
        "launch day #tikflow",
        ["https://cdn.example.com/v/launch.mp4"],
        "publishing",
    )
    assert post["platform_data"] == {"tiktok": {"privacy_level": "SELF_ONLY"}}
    assert (o.out["post_id"], o.out["status"], o.out["already_done"]) == (post["id"], "publishing", False)
    assert [t["account_id"] for t in o.out["targets"]] == [SOCIALAPI_ACCOUNT]


@case(
    "socialapi.get_post",
    {"post_id": "{{ steps.made.post_id }}"},
    prepare=_fast_publishes,
    before=lambda scene: [
        {"id": "made", "call": "socialapi.create_post", "with": _socialapi_post("read me back")}
    ],
)
def socialapi_get_post_sees_the_post_published(scene: Scene, o: Outcome) -> None:
    [post] = o.state["socialapi"]["posts"]
    assert post["status"] == "published"
    assert o.out["post_id"] == o.outputs["made"]["post_id"] == post["id"]
    assert (o.out["status"], o.out["text"]) == ("published", "read me back")
    [target] = o.out["targets"]
    assert (target["status"], target["error"]) == ("published", None)
    assert target["permalink"] == f"https://www.tiktok.com/@{ME}/video/{target['platform_post_id']}"


@case(
    "socialapi.list_posts",
    {"limit": 2, "pages": 2},
    before=lambda scene: [
        {
            "for_each": "{{ ['one', 'two', 'three'] }}",
            "as": "word",
            "steps": [{"call": "socialapi.create_post", "with": _socialapi_post("post {{ word }}")}],
        }
    ],
)
def socialapi_list_posts_pages_by_cursor(scene: Scene, o: Outcome) -> None:
    posts = o.state["socialapi"]["posts"]
    assert len(posts) == 3
    assert sorted(item["post_id"] for item in o.out["items"]) == sorted(p["id"] for p in posts)
    assert sorted(item["text"] for item in o.out["items"]) == ["post one", "post three", "post two"]
    assert (o.out["cursor"], o.out["has_more"]) == (None, False)
    assert _requests(o.state, "socialapi GET /posts") == 2


# ---------------------------------------------------------------------------------------------
# Running the cases.


@dataclass(frozen=True)
class Bench:
    """What every case shares: the sandbox, a worker on its own task queue, a webhook receiver.

    Attributes:
        stack: The sandbox and the worker's task queue (as the `stack` fixture gives them).
        store: The worker's credential store (rewritten after every reset of the sandbox).
        webhook: A webhook receiver on loopback (its calls cleared before every case).
    """

    stack: Stack
    store: CredentialStore
    webhook: Webhook


@pytest.fixture(scope="module")
async def bench(
    dev_env: WorkflowEnvironment, sandbox_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Bench]:
    """The `stack` and `webhook` fixtures, set up once for the module.

    A worker and a webhook receiver per test (the fixtures' scope) take about half a second to
    stop, more than most cases take to run; what a case needs fresh is the sandbox's world.
    """
    path = tmp_path_factory.mktemp("every-action") / "credentials.json"
    store = CredentialStore(path, env={})
    services = emulator_services(sandbox_url, store, http=httpx.AsyncClient(timeout=30))
    queue = f"tq-{uuid.uuid4()}"
    async with services.http, running_workers(dev_env.client, services, queue):
        webhook = Webhook()
        try:
            yield Bench(Stack(dev_env.client, sandbox_url, queue, path), store, webhook)
        finally:
            webhook.close()


def _fresh_world(bench: Bench) -> dict[str, Any]:
    """Reset the sandbox and store its credentials (a reset forgets the TikTok tokens it issued)."""
    bench.stack.admin("reset")
    store_emulator_credentials(bench.store, bench.stack.sandbox_url)
    bench.webhook.calls.clear()
    return bench.stack.state()


async def _run_case(one: Case, bench: Bench, scratch: Path) -> None:
    """Run one case on a fresh world: its scene, its recipe, then its check."""
    stack = bench.stack
    scene = Scene(stack, scratch, bench.webhook, await asyncio.to_thread(_fresh_world, bench))
    if one.prepare is not None:
        one.prepare(scene)
    before = one.before(scene) if one.before else []
    inputs = one.inputs(scene) if callable(one.inputs) else one.inputs
    after = one.after(scene) if one.after else []
    steps = [*before, {"id": "out", "call": one.action, "with": inputs}, *after]
    # One attempt: the sandbox has no faults here, so a failure is the answer, not a hiccup.
    text = yaml.safe_dump({"recipe": "every-action", "retry": {"max_attempts": 1}, "steps": steps})
    loaded = load_recipe_text(text, f"<{one.name}>")
    with capture_logs() as logs:
        _, handle = await start_recipe(
            stack.client, loaded, {}, task_queue=stack.task_queue, workflow_id=f"every-{uuid.uuid4()}"
        )
        assert handle is not None
        try:
            result: RunResult = await asyncio.wait_for(handle.result(), 60)
        except WorkflowFailureError as failed:
            pytest.fail(f"{one.name}: the run failed: {failed.cause}")
    one.check(scene, Outcome(result.outputs["out"], result.outputs, stack.state(), logs))


@pytest.mark.parametrize("action", sorted(load_actions()))
async def test_action_works_through_a_worker_against_the_sandbox(
    action: str, bench: Bench, tmp_path: Path
) -> None:
    cases = CASES.get(action)
    if not cases:
        pytest.fail(f"no integration case for action {action}: add one to CASES in {Path(__file__).name}")
    for one in cases:
        await _run_case(one, bench, tmp_path)


def test_every_case_is_of_a_registered_action() -> None:
    assert sorted(set(CASES) - set(load_actions())) == []
