"""Every shipped recipe, end to end: a real Temporal dev server, a worker, the sandbox over HTTP.

Each test asserts the effects in the sandbox's own state (which replies exist, which post is
published), not just that the workflow completed.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import sys
from collections import Counter
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "definitions"
pytestmark = pytest.mark.devserver
ME = "tikflow_demo"


def _replies_by_parent(state: dict) -> Counter[str]:
    return Counter(
        c["reply_to"]
        for c in state["tikapi"]["comments"]
        if c["author"] == ME and c["reply_to"] and not c["deleted"]
    )


def _mp4(path: Path, size: int = 64 * 1024) -> Path:
    path.write_bytes(struct.pack(">I4s4s", 16, b"ftyp", b"isom") + bytes(size))
    return path


# The shipped reply policy (reply-to-comment) paces replies 8 s apart per account by default, in
# real time on the dev server: the tests ask for 1 s (`reply_every`), still paced.
async def test_hashtag_reply_replies_once_to_each_matching_comment(stack):
    cats = [v["id"] for v in stack.state()["tikapi"]["videos"] if "cats" in v["hashtags"]]
    stack.admin("tick", {"comments": 4, "video_id": cats[0], "text": "what's the PRICE of this?"})
    handle = await stack.run(
        DEFINITIONS / "hashtag-reply.yaml",
        {"max_replies": 5, "reply_every": "1s"},
        poll_every="1s",
        max_polls=3,
    )
    result = await handle.result()

    state = stack.state()
    comments = {c["cid"]: c for c in state["tikapi"]["comments"]}
    cat_videos = set(cats[:10])
    matching = {
        cid
        for cid, c in comments.items()
        if c["aweme_id"] in cat_videos
        and not c["reply_to"]
        and c["author"] != ME
        and any(k in c["text"].lower() for k in ("price", "cost", "how much"))
    }
    replies = _replies_by_parent(state)
    assert result.polls == 3
    assert replies, "no replies were posted"
    assert set(replies) <= matching, "replied to a comment that does not match the keywords"
    assert max(replies.values()) == 1, "a comment got two replies"
    # At most max_replies per poll, and the backlog is worked off over the polls.
    assert len(replies) <= 5 * 3
    assert len(replies) == min(len(matching), 15)
    assert result.counters.effects == len(replies)


async def test_my_comments_autoreply_likes_replies_and_deletes_blocklisted(stack):
    mine = [v["id"] for v in stack.state()["tikapi"]["videos"] if v["author"] == ME]
    spam = stack.admin("tick", {"comments": 1, "video_id": mine[0], "text": "FREE FOLLOWERS here"})[
        "comments"
    ][0]
    nice = stack.admin("tick", {"comments": 1, "video_id": mine[0], "text": "love it"})["comments"][0]
    handle = await stack.run(
        DEFINITIONS / "my-comments-autoreply.yaml", {"reply_every": "1s"}, poll_every="1s", max_polls=2
    )
    await handle.result()

    comments = {c["cid"]: c for c in stack.state()["tikapi"]["comments"]}
    assert comments[spam["cid"]]["deleted"] is True
    assert comments[nice["cid"]]["deleted"] is False
    assert ME in comments[nice["cid"]]["liked_by"]
    replies = _replies_by_parent(stack.state())
    assert replies[nice["cid"]] == 1
    assert spam["cid"] not in replies
    # Two polls, but every comment was handled once.
    assert max(replies.values()) == 1


async def test_upload_and_confirm_publishes_and_notifies(stack, tmp_path, webhook):
    video = _mp4(tmp_path / "clip.mp4")
    handle = await stack.run(
        DEFINITIONS / "upload-and-confirm.yaml",
        # No ingress here: the run waits a second for TikTok's event, then polls the status.
        {"file": str(video), "title": "e2e #tikflow", "privacy": "SELF_ONLY", "webhook": webhook.url}
        | {"event_wait": "1s"},
    )
    result = await handle.result()

    publishes = stack.state()["tiktok"]["publishes"]
    assert len(publishes) == 1
    assert publishes[0]["status"] == "PUBLISH_COMPLETE"
    assert publishes[0]["uploaded_bytes"] == video.stat().st_size
    assert result.outputs["status"]["status"] == "PUBLISH_COMPLETE"
    assert len(webhook.calls) == 1
    key, body = webhook.calls[0]
    assert key
    assert body["status"] == "PUBLISH_COMPLETE"
    assert body["publish_id"] == publishes[0]["publish_id"]


async def test_upload_of_a_non_video_fails_with_tiktoks_reason(stack, tmp_path, webhook):
    bogus = tmp_path / "notes.mp4"
    bogus.write_bytes(b"this is not a video" * 100)
    handle = await stack.run(
        DEFINITIONS / "upload-and-confirm.yaml",
        {"file": str(bogus), "webhook": webhook.url, "event_wait": "0s"},
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert "file_format_check_failed" in str(failed.value.cause)
    assert stack.state()["tiktok"]["publishes"][0]["status"] == "FAILED"
    assert webhook.calls[0][1]["status"] == "FAILED"


async def test_upload_from_url_publishes(stack):
    handle = await stack.run(
        DEFINITIONS / "upload-from-url.yaml",
        {"url": "https://cdn.example.com/v/launch.mp4", "event_wait": "1s"},
    )
    await handle.result()
    publishes = stack.state()["tiktok"]["publishes"]
    assert [p["source"] for p in publishes] == ["PULL_FROM_URL"]
    assert publishes[0]["status"] == "PUBLISH_COMPLETE"


async def test_crosspost_and_track_publishes_on_both_planners(stack, webhook):
    handle = await stack.run(DEFINITIONS / "crosspost-and-track.yaml", {"webhook": webhook.url})
    await handle.result()
    state = stack.state()
    assert [p["status"] for p in state["highlevel"]["posts"]] == ["published"]
    assert [p["status"] for p in state["socialapi"]["posts"]] == ["published"]
    # The privacy level HighLevel's v3 `tiktokPostDetails` requires, and SocialAPI's TikTok field.
    [hl_post] = state["highlevel"]["posts"]
    assert hl_post["tiktokPostDetails"]["privacyLevel"] == "PUBLIC_TO_EVERYONE"
    [sa_post] = state["socialapi"]["posts"]
    assert sa_post["platform_data"]["tiktok"]["privacy_level"] == "PUBLIC_TO_EVERYONE"
    assert webhook.calls[0][1]["highlevel"]["status"] == "published"
    assert webhook.calls[0][1]["socialapi"]["status"] == "published"


async def test_profile_watch_alerts_on_a_follower_jump_only(stack, webhook):
    handle = await stack.run(
        DEFINITIONS / "profile-watch.yaml",
        {"webhook": webhook.url, "threshold": 1000},
        poll_every="2s",
        max_polls=3,
    )
    # Wait for the first poll, then move one count a lot and another a little.
    import asyncio

    from workflows.recipe import RecipeWorkflow

    for _ in range(200):
        if (await handle.query(RecipeWorkflow.status)).iteration >= 1:
            break
        await asyncio.sleep(0.05)
    stack.admin("tick", {"followers": {"lilyachty": 50_000, "tikflow_demo": 3}})
    await handle.result()
    handles = [body["handle"] for _, body in webhook.calls]
    assert handles == ["lilyachty"]


async def test_dm_autoreply_accepts_requests_and_answers_once(stack):
    handle = await stack.run(DEFINITIONS / "dm-autoreply.yaml", poll_every="1s", max_polls=2)
    await handle.result()
    state = stack.state()["tikapi"]
    assert all(not c["request"] for c in state["conversations"]), "a message request was not accepted"
    ours = [m for m in state["messages"] if m["sender"] == ME]
    # Both conversations had a message from the other side: one answer each, not one per poll.
    assert Counter(m["conversation_id"] for m in ours) == Counter(
        {c["conversation_id"]: 1 for c in state["conversations"]}
    )


async def test_provider_tour_runs_from_the_cli_against_every_provider(stack, dev_env):
    """`tikflow run --wait` (a user's command) reads TikAPI, DumplingAI, HighLevel and the Display API.

    The run starts in another process, so the worker compiles every expression inside the
    workflow sandbox (an in-process start would find them compiled by the loader).
    """
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tikflow.cli",
        "run",
        str(DEFINITIONS / "provider-tour.yaml"),
        "--task-queue",
        stack.task_queue,
        "--wait",
        "--id",
        f"tour-{stack.task_queue}",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-2000:]
    result = json.loads(out.decode()[out.decode().index("{") :])
    outputs = result["outputs"]
    seeded = [v["id"] for v in stack.state()["tikapi"]["videos"] if "lilyachty" in v["hashtags"]]
    assert sorted(item["id"] for item in outputs["hashtag"]["items"]) == sorted(seeded[:10])
    assert outputs["dumpling"]["user"]["unique_id"] == "stoolpresidente"
    assert outputs["highlevel"]["items"][0]["platform"] == "tiktok"
    assert outputs["me"]["display_name"] == "Tikflow Demo"
    requests = stack.state()["requests"]
    for provider in ("tikapi", "dumpling", "highlevel", "tiktok"):
        assert any(key.startswith(provider + " ") for key in requests), provider
