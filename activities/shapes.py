"""TikTok items as recipes see them, whichever provider read them (TikAPI, DumplingAI).

Results are normalized so recipes see stable snake_case keys whatever TikTok's payload looks like
this month: videos are `video_item`s, comments `comment_item`s, users `user_item`s. A recipe can
swap the provider of a read without changing what it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["as_int", "as_text", "comment_item", "obj", "user_item", "video_item"]


def obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (providers omit or null fields)."""
    return value if isinstance(value, dict) else {}


def as_text(value: Any) -> str:
    """A string field as text; a whole number as its digits; anything else empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def as_int(value: Any) -> int | None:
    """A whole-number field (a number, a whole float or a digit string), else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def video_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A TikTok video (`itemList[]` / `itemStruct`) as recipes see it.

    Keys: `id`, `desc`, `create_time` (epoch s), `author` (unique id), `author_id`,
    `author_sec_uid`, `stats` {`digg_count`, `play_count`, `comment_count`, `share_count`},
    `duration` (s), `url`.
    """
    author = raw.get("author")
    author_obj = obj(author)
    # Older payloads give `author` as the bare unique id, with `authorId` beside it.
    unique_id = author if isinstance(author, str) else as_text(author_obj.get("uniqueId"))
    stats = obj(raw.get("stats"))
    video_id = as_text(raw.get("id"))
    return {
        "id": video_id,
        "desc": as_text(raw.get("desc")),
        "create_time": as_int(raw.get("createTime")),
        "author": unique_id,
        "author_id": as_text(author_obj.get("id") or raw.get("authorId")),
        "author_sec_uid": as_text(author_obj.get("secUid")),
        "stats": {
            "digg_count": as_int(stats.get("diggCount")),
            "play_count": as_int(stats.get("playCount")),
            "comment_count": as_int(stats.get("commentCount")),
            "share_count": as_int(stats.get("shareCount")),
        },
        "duration": as_int(obj(raw.get("video")).get("duration")),
        "url": f"https://www.tiktok.com/@{unique_id}/video/{video_id}" if unique_id and video_id else "",
    }


def comment_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A TikTok comment or reply (`comments[]`) as recipes see it.

    Keys: `cid`, `text`, `create_time` (epoch s), `author` (unique id), `user_id`, `aweme_id`
    (the video), `reply_count`, `digg_count`, `reply_to` (parent comment id, None at top level).
    """
    user = obj(raw.get("user"))
    reply_to = as_text(raw.get("reply_id"))
    return {
        "cid": as_text(raw.get("cid")),
        "text": as_text(raw.get("text")),
        "create_time": as_int(raw.get("create_time")),
        "author": as_text(user.get("unique_id")),
        "user_id": as_text(user.get("uid")),
        "aweme_id": as_text(raw.get("aweme_id")),
        "reply_count": as_int(raw.get("reply_comment_total")) or 0,
        "digg_count": as_int(raw.get("digg_count")) or 0,
        "reply_to": reply_to if reply_to not in ("", "0") else None,
    }


def user_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A TikTok user (web camelCase or app snake_case payload) as recipes see it.

    Keys: `id`, `unique_id`, `sec_uid`, `nickname`, `signature`, `verified`, `private`.
    """
    return {
        "id": as_text(raw.get("id") or raw.get("uid")),
        "unique_id": as_text(raw.get("uniqueId") or raw.get("unique_id")),
        "sec_uid": as_text(raw.get("secUid") or raw.get("sec_uid")),
        "nickname": as_text(raw.get("nickname")),
        "signature": as_text(raw.get("signature")),
        "verified": bool(raw.get("verified")),
        "private": bool(raw.get("privateAccount") or raw.get("secret")),
    }
