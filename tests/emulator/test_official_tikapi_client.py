"""The official `tikapi` client works against the sandbox: the sandbox speaks TikAPI faithfully."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tikapi import TikAPI

from tikflow.emulator.server import running_emulator
from tikflow.emulator.state import EmulatorConfig

#: The sandbox keys as TikAPI's reference prints them (seed 004) and as its request samples pass
#: them to the client; not the emulator's constants, so a wrong copy there fails here.
DEMO_API_KEY = "DemoAPIKeyTokenSeHYGXDfd4SFD320Sc39Asd0Sc39Asd4s"
DEMO_ACCOUNT_KEY = "DemoAccountKeyTokenSeHYGXDfd4SFD320Sc39Asd0Sc39A"


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with running_emulator(port=0, config=EmulatorConfig(seed=11)) as url:
        yield url


def _api(base: str, key: str = DEMO_API_KEY):
    api = TikAPI(key)
    api.set(__options__={"base": f"{base}/tikapi"})
    return api


def test_hashtag_by_name_then_by_id_and_pages_with_next_items(base):
    api = _api(base)
    first = api.public.hashtag(name="cats", count=5).json()
    hashtag_id = first["challengeInfo"]["challenge"]["id"]
    assert hashtag_id == "5635"

    response = api.public.hashtag(id=hashtag_id, count=5)
    seen = [item["id"] for item in response.json()["itemList"]]
    pages = 1
    while response is not None:
        response = response.next_items()
        if response is not None:
            seen += [item["id"] for item in response.json()["itemList"]]
            pages += 1
    # 12 seeded #cats videos, 5 per page: the client's own iteration reaches all of them.
    assert pages == 3
    assert len(seen) == len(set(seen)) == 12


def test_comments_list_and_reply_shows_up(base):
    api = _api(base)
    video_id, comment_id = "7109178205151464746", "7109185042560680750"
    comments = api.public.commentsList(media_id=video_id).json()["comments"]
    assert comment_id in [c["cid"] for c in comments]

    user = api.user(accountKey=DEMO_ACCOUNT_KEY)
    posted = user.posts.comments.post(
        media_id=video_id, text="thanks from the official client", reply_comment_id=comment_id
    )
    assert posted.json()["comment"]["text"] == "thanks from the official client"

    replies = api.public.commentRepliesList(media_id=video_id, comment_id=comment_id).json()["comments"]
    assert [r["text"] for r in replies] == ["thanks from the official client"]
    assert replies[0]["user"]["unique_id"] == "tikflow_demo"


def test_the_docs_request_sample_for_session_check_works_as_written(base):
    # TikAPI's "Check session" sample: `User = api.user(accountKey="DemoAccountKey…")`, `verify()`.
    user = _api(base).user(accountKey=DEMO_ACCOUNT_KEY)
    assert user.verify().json()["status"] == "success"
    assert user.info().json()["userInfo"]["user"]["uniqueId"] == "tikflow_demo"


def test_other_keys_get_the_real_401(base):
    from tikapi import ResponseException

    api = _api(base, key="NotTheDemoKey12345")
    with pytest.raises(ResponseException) as caught:
        api.public.check(username="lilyachty")
    assert caught.value.response.status_code == 401
    assert "valid API Key" in str(caught.value)


def test_comment_and_follower_listings_iterate_with_the_clients_own_cursor_checks(base):
    import httpx

    video_id = "7109178205151464746"
    httpx.post(f"{base}/_admin/tick", json={"comments": 11, "video_id": video_id}).raise_for_status()
    api = _api(base)
    response = api.public.commentsList(media_id=video_id, count=5)
    cids = []
    while response is not None:
        cids += [c["cid"] for c in response.json()["comments"]]
        response = response.next_items()
    assert len(cids) == len(set(cids)) == response_total(api, video_id)

    user = api.user(accountKey=DEMO_ACCOUNT_KEY)
    response = user.followers(count=4)
    handles = []
    while response is not None:
        handles += [u["uniqueId"] for u in response.json()["followers"]]
        response = response.next_items()
    assert len(handles) == len(set(handles)) == 10


def response_total(api, video_id: str) -> int:
    return api.public.commentsList(media_id=video_id, count=1).json()["total"]
