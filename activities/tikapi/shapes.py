"""TikAPI's own item shapes (messages, conversations) and how its answers hold TikTok items.

The TikTok items themselves (videos, comments, users) are shared with DumplingAI: `activities.shapes`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import structlog

from activities.registry import ActionContext
from activities.shapes import as_int, as_text, comment_item, obj, user_item, video_item
from activities.tikapi.client import PROVIDER

__all__ = [
    "comment_items",
    "conversation_item",
    "conversation_items",
    "message_item",
    "posted",
    "profile_result",
    "search_items",
    "sent_message_id",
    "strip_envelope",
    "user_items",
    "video_items",
]

log = structlog.get_logger()


def message_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A direct message. Keys: `id`, `text`, `sender_id`, `create_time`.

    TikTok's IM payload keeps the text inside `content`, a JSON string (`{"text": …}`); the exact
    field names of TikAPI's message listing are not documented, so the known variants are read.
    """
    text = as_text(raw.get("text"))
    content = raw.get("content")
    if not text and isinstance(content, str):
        try:
            decoded = json.loads(content)
        except ValueError:
            decoded = content
        text = as_text(obj(decoded).get("text")) if isinstance(decoded, dict) else as_text(decoded)
    return {
        "id": as_text(raw.get("server_message_id") or raw.get("message_id") or raw.get("id")),
        "text": text,
        "sender_id": as_text(raw.get("sender") or raw.get("sender_id")),
        "create_time": as_int(raw.get("create_time") or raw.get("created_at")),
    }


def conversation_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A direct-message conversation as recipes see it.

    Keys: `conversation_id`, `conversation_short_id`, `ticket`, and `raw` (the provider's item, since
    TikAPI documents no schema for it).
    """
    return {
        "conversation_id": as_text(raw.get("conversation_id") or raw.get("id")),
        "conversation_short_id": as_text(raw.get("conversation_short_id") or raw.get("short_id")),
        "ticket": as_text(raw.get("ticket")),
        "raw": dict(raw),
    }


def video_items(ctx: ActionContext, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The videos of listing pages (`itemList`); items without an id are dropped (and logged)."""
    items = [video_item(raw) for body in bodies for raw in PROVIDER.items(ctx, body, "itemList")]
    kept = [item for item in items if item["id"]]
    if len(kept) < len(items):
        log.warning("tikapi.items_without_id", dropped=len(items) - len(kept))
    return kept


def comment_items(ctx: ActionContext, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The comments of listing pages (`comments`); items without a `cid` are dropped."""
    items = [comment_item(raw) for body in bodies for raw in PROVIDER.items(ctx, body, "comments")]
    return [item for item in items if item["cid"]]


def user_items(ctx: ActionContext, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The users of follower pages (`followers`)."""
    return [user_item(raw) for body in bodies for raw in PROVIDER.items(ctx, body, "followers")]


def conversation_items(ctx: ActionContext, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversations of inbox pages (`conversations`)."""
    return [conversation_item(raw) for body in bodies for raw in PROVIDER.items(ctx, body, "conversations")]


def profile_result(body: Mapping[str, Any]) -> dict[str, Any]:
    """A profile answer (`userInfo`) as `user` and `stats`."""
    info = obj(body.get("userInfo"))
    stats = obj(info.get("stats"))
    return {
        "user": user_item(obj(info.get("user"))),
        "stats": {
            "follower_count": as_int(stats.get("followerCount")),
            "following_count": as_int(stats.get("followingCount")),
            "heart_count": as_int(stats.get("heartCount") or stats.get("heart")),
            "video_count": as_int(stats.get("videoCount")),
            "digg_count": as_int(stats.get("diggCount")),
        },
    }


def search_items(ctx: ActionContext, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Search pages mix shapes: `item_list`/`data[].item` are videos, `user_list[].user_info` users."""
    items: list[dict[str, Any]] = []
    for body in bodies:
        for raw in PROVIDER.items(ctx, body, "item_list"):
            items.append({"type": "video", **video_item(raw)})
        for entry in PROVIDER.items(ctx, body, "data"):
            if isinstance(entry.get("item"), dict):
                items.append({"type": "video", **video_item(entry["item"])})
            elif isinstance(entry.get("user_info"), dict):
                items.append({"type": "user", **user_item(entry["user_info"])})
            else:
                items.append({"type": "other", "raw": entry})
        for entry in PROVIDER.items(ctx, body, "user_list"):
            items.append({"type": "user", **user_item(obj(entry.get("user_info")) or entry)})
    return items


def posted(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The comment a post answer carries, normalized (None when it carries none)."""
    comment = body.get("comment")
    return comment_item(comment) if isinstance(comment, dict) else None


def sent_message_id(body: Mapping[str, Any]) -> str:
    """The new message's id in a send answer, else ''.

    TikAPI documents the answer only as TikTok's IM envelope (`cmd` 100, `body`, `sequence_id`);
    the id inside `body` follows TikTok's IM `send_message_body` (not verified against TikAPI).
    """
    sent = obj(obj(body.get("body")).get("send_message_body"))
    return as_text(sent.get("server_message_id"))


def strip_envelope(body: Mapping[str, Any]) -> dict[str, Any]:
    """An answer without TikAPI's status envelope (what is left is TikTok's data)."""
    envelope = {"status", "message", "statusCode", "status_code", "status_msg", "extra", "log_pb", "$other"}
    return {k: v for k, v in body.items() if k not in envelope}
