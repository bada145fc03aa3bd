"""TikTok's Display API: the authorized user's profile and public videos."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from activities.pagination import collect_pages
from activities.provider import obj
from activities.registry import ActionContext, ActionInput, PagedInput, action
from activities.tiktok.client import PROVIDER, number
from activities.tiktok.oauth import api

__all__ = ["DEFAULT_USER_FIELDS", "DEFAULT_VIDEO_FIELDS", "UserInfoInput", "VideoListInput"]

DEFAULT_USER_FIELDS = ("open_id", "union_id", "avatar_url", "display_name")
DEFAULT_VIDEO_FIELDS = (
    "id",
    "title",
    "video_description",
    "create_time",
    "duration",
    "cover_image_url",
    "share_url",
    "like_count",
    "comment_count",
    "share_count",
    "view_count",
)


class UserInfoInput(ActionInput):
    """Inputs of `tiktok.user_info`."""

    fields: list[str] = Field(
        default_factory=lambda: list(DEFAULT_USER_FIELDS),
        min_length=1,
        description="User fields to ask for (stats fields need the user.info.stats scope).",
    )


@action("tiktok.user_info", UserInfoInput, endpoint="GET /v2/user/info/")
async def user_info(ctx: ActionContext, params: UserInfoInput) -> dict[str, Any]:
    """The authorized TikTok user's profile: each requested field at the top level (None if absent)."""
    data = await api(ctx, "GET", "/v2/user/info/", params={"fields": ",".join(params.fields)})
    user = obj(data.get("user"))
    return {name: user.get(name) for name in params.fields}


class VideoListInput(PagedInput):
    """Inputs of `tiktok.videos`."""

    fields: list[str] = Field(
        default_factory=lambda: list(DEFAULT_VIDEO_FIELDS),
        min_length=1,
        description="Video fields to ask for; each becomes a key of every item.",
    )
    max_count: int = Field(default=20, ge=1, le=20, description="Videos per page (TikTok allows 20).")
    cursor: int | None = Field(
        default=None, description="Resume from this cursor (a previous result's `cursor`)."
    )


@action("tiktok.videos", VideoListInput, endpoint="POST /v2/video/list/")
async def videos(ctx: ActionContext, params: VideoListInput) -> dict[str, Any]:
    """The authorized user's public videos, newest first, in `items`."""
    query = {"fields": ",".join(params.fields)}

    async def fetch(cursor: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"max_count": params.max_count}
        if cursor is not None:
            body["cursor"] = cursor
        return await api(ctx, "POST", "/v2/video/list/", params=query, json_body=body)

    def next_cursor(data: dict[str, Any]) -> int | None:
        return number(ctx, data.get("cursor"), "data.cursor") if data.get("has_more") else None

    pages = await collect_pages(fetch, next_cursor, start=params.cursor, pages=params.pages)
    items = [
        {name: video.get(name) for name in params.fields}
        for data in pages.bodies
        for video in PROVIDER.items(ctx, data, "videos", what="data.videos", strict=False)
    ]
    return {"items": items, "cursor": pages.cursor, "has_more": pages.has_more}
