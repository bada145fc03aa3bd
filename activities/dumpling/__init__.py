"""DumplingAI (app.dumplingai.com): TikTok profiles, videos, comments and transcripts as `dumpling.*`.

Every endpoint is a POST with a JSON body and `Authorization: Bearer <key>`. Errors come as
`{"error": "<message>"}` (the seed) or `{"error": {"code", "message"}, "status": "error"}` (the
current API reference); both are read. The limiter reads `X-RateLimit-Limit/Remaining` from every
answer (see `activities.ratelimit`). Results use the TikTok item shapes of `activities.shapes`, as
TikAPI's do, so a recipe can swap the provider of a read without changing what it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from activities.http import Reply
from activities.pagination import collect_pages
from activities.provider import Provider, bearer, declared
from activities.ratelimit import parse_retry_after
from activities.redact import redact
from activities.registry import ActionContext, ActionInput, PagedInput, action
from activities.shapes import comment_item, user_item, video_item

__all__ = ["aweme_item", "classify"]

NAME = "dumpling"


def classify(reply: Reply, account: str) -> ProviderError | None:
    """Map a DumplingAI answer to the error tree (None for a success).

    401 → `CredentialsRejected`; 403 (insufficient credits) → `CredentialsRejected`; 429 and 503
    "upstream rate limit" → `RateLimited`; other 5xx → `ProviderUnavailable`; other 4xx →
    `ProviderRejected`. A 2xx carrying an `error` is judged by its message.
    """
    body = reply.body if isinstance(reply.body, dict) else {}
    status = reply.status
    if status < 400 and "error" not in body:
        return None
    message, code = _error(body, status)
    facts: dict[str, Any] = {"provider": NAME, "status": status, "code": code, "account": account}
    lowered = message.lower()
    if status in (401, 403) or (status < 400 and "credit" in lowered):
        return CredentialsRejected(message, **facts)
    if status == 429 or ((status == 503 or status < 400) and "rate limit" in lowered):
        return RateLimited(message, retry_after=parse_retry_after(reply.headers), **facts)
    if status >= 500:
        return ProviderUnavailable(message, **facts)
    return ProviderRejected(message, **facts)


def _error(body: Mapping[str, Any], status: int) -> tuple[str, str | None]:
    error = body.get("error")
    if isinstance(error, dict):
        message, code = error.get("message"), error.get("code")
    else:
        message, code = error, None
    text = message if isinstance(message, str) and message else f"HTTP {status}"
    return redact(text)[:500], code if isinstance(code, str) else None


#: DumplingAI as a provider.
PROVIDER = Provider(
    name=NAME,
    base_url="https://app.dumplingai.com",
    fields=("api_key",),
    required=("api_key",),
    classify=classify,
    auth=bearer("api_key"),
    order=40,
)


def _cursor(ctx: ActionContext, value: Any) -> int | None:
    """A numeric cursor (the comments listing sends numbers; digit strings too); 0/absent = end."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise PROVIDER.malformed(ctx, f"cursor {value!r} is not a number")
    return value or None


def _max_cursor(ctx: ActionContext, value: Any) -> str | None:
    """The profile-videos `max_cursor` as the string the docs type it; empty or "0" = end.

    A number is read as its digits, in case an older answer sends one.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.isdigit():
        raise PROVIDER.malformed(ctx, f"max_cursor {value!r} is not a cursor")
    return value if value.strip("0") else None


def aweme_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A video in TikTok's app (`aweme`) format, in the same shape as `activities.shapes.video_item`."""
    author = raw.get("author")
    author_obj = author if isinstance(author, dict) else {}
    stats = raw.get("statistics")
    stats_obj = stats if isinstance(stats, dict) else {}
    normalized = video_item(
        {
            "id": raw.get("aweme_id"),
            "desc": raw.get("desc"),
            "createTime": raw.get("create_time"),
            "author": {
                "uniqueId": author_obj.get("unique_id"),
                "id": author_obj.get("uid"),
                "secUid": author_obj.get("sec_uid"),
            },
            "stats": {
                "diggCount": stats_obj.get("digg_count"),
                "playCount": stats_obj.get("play_count"),
                "commentCount": stats_obj.get("comment_count"),
                "shareCount": stats_obj.get("share_count"),
            },
            # Seconds, as the normalized shape counts them. The docs win over TikTok's app format
            # (milliseconds): DumplingAI's get-tiktok-profile-videos example has `"duration": 15`.
            "video": raw.get("video"),
        }
    )
    return normalized


class ProfileInput(ActionInput):
    """A TikTok profile to read through DumplingAI."""

    handle: str = Field(min_length=1, description="TikTok username, with or without @.")


class ProfileVideosInput(PagedInput):
    """A profile's videos."""

    handle: str = Field(min_length=1, description="TikTok username, with or without @.")
    cursor: str | None = Field(
        default=None,
        pattern=r"^[0-9]+$",
        description="Resume from this `maxCursor` (a previous result's `cursor`; a string of digits).",
    )

    @field_validator("cursor", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> Any:
        # Recipes (and recorded runs) written when the cursor was a number stay valid.
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
        return value


class VideoCommentsInput(PagedInput):
    """A video's comments."""

    url: str = Field(min_length=1, description="The video's URL (`https://www.tiktok.com/@user/video/…`).")
    cursor: int | None = Field(default=None, ge=0, description="Resume from this cursor.")
    count: int | None = Field(default=None, ge=1, le=100, description="Comments per page.")


class TranscriptInput(ActionInput):
    """A video to transcribe."""

    url: str = Field(min_length=1, description="The video's URL.")
    preferred_language: str | None = Field(default=None, description="Language code to prefer (`en`).")


@action("dumpling.profile", ProfileInput, endpoint="POST /api/v1/get-tiktok-profile")
async def profile(ctx: ActionContext, params: ProfileInput) -> dict[str, Any]:
    """A profile: `user`, `stats`, and its latest videos as `items`."""
    body = await PROVIDER.request(
        ctx, "POST", "/api/v1/get-tiktok-profile", json_body=declared({"handle": params.handle.lstrip("@")})
    )
    user = body.get("user")
    if not isinstance(user, dict):
        raise PROVIDER.malformed(ctx, "get-tiktok-profile has no `user`")
    stats = body.get("stats")
    stats_obj = stats if isinstance(stats, dict) else {}
    return {
        "user": user_item(user),
        "stats": {
            "follower_count": stats_obj.get("followerCount"),
            "following_count": stats_obj.get("followingCount"),
            "heart_count": stats_obj.get("heartCount", stats_obj.get("heart")),
            "video_count": stats_obj.get("videoCount"),
            "digg_count": stats_obj.get("diggCount"),
        },
        "items": [video_item(raw) for raw in PROVIDER.items(ctx, body, "itemList")],
    }


@action("dumpling.profile_videos", ProfileVideosInput, endpoint="POST /api/v1/get-tiktok-profile-videos")
async def profile_videos(ctx: ActionContext, params: ProfileVideosInput) -> dict[str, Any]:
    """A profile's videos, paged by `max_cursor` (a string, both ways, as the docs type it)."""

    async def fetch(cursor: str | None) -> dict[str, Any]:
        return await PROVIDER.request(
            ctx,
            "POST",
            "/api/v1/get-tiktok-profile-videos",
            json_body=declared({"handle": params.handle.lstrip("@"), "maxCursor": cursor}),
        )

    def following(body: dict[str, Any]) -> str | None:
        return _max_cursor(ctx, body.get("max_cursor")) if body.get("has_more") else None

    pages = await collect_pages(fetch, following, start=params.cursor, pages=params.pages)
    items = [aweme_item(raw) for body in pages.bodies for raw in PROVIDER.items(ctx, body, "aweme_list")]
    return {"items": [i for i in items if i["id"]], "cursor": pages.cursor, "has_more": pages.has_more}


@action("dumpling.video_comments", VideoCommentsInput, endpoint="POST /api/v1/get-tiktok-video-comments")
async def video_comments(ctx: ActionContext, params: VideoCommentsInput) -> dict[str, Any]:
    """A video's comments, in the same shape as `tikapi.comments`."""

    async def fetch(cursor: int | None) -> dict[str, Any]:
        return await PROVIDER.request(
            ctx,
            "POST",
            "/api/v1/get-tiktok-video-comments",
            json_body=declared({"url": params.url, "cursor": cursor, "count": params.count}),
        )

    def following(body: dict[str, Any]) -> int | None:
        return _cursor(ctx, body.get("cursor")) if body.get("hasMore") or body.get("has_more") else None

    pages = await collect_pages(fetch, following, start=params.cursor, pages=params.pages)
    items = [comment_item(raw) for body in pages.bodies for raw in PROVIDER.items(ctx, body, "comments")]
    return {"items": [i for i in items if i["cid"]], "cursor": pages.cursor, "has_more": pages.has_more}


@action("dumpling.transcript", TranscriptInput, endpoint="POST /api/v1/get-tiktok-transcript")
async def transcript(ctx: ActionContext, params: TranscriptInput) -> dict[str, Any]:
    """A video's transcript (WebVTT text) and its language."""
    body = await PROVIDER.request(
        ctx,
        "POST",
        "/api/v1/get-tiktok-transcript",
        json_body=declared({"videoUrl": params.url, "preferredLanguage": params.preferred_language}),
    )
    text = body.get("transcript")
    if not isinstance(text, str):
        raise PROVIDER.malformed(ctx, "get-tiktok-transcript has no `transcript` text")
    return {
        "transcript": text,
        "language": body.get("language") if isinstance(body.get("language"), str) else None,
        "id": str(body.get("id") or ""),
        "url": body.get("originalUrl") if isinstance(body.get("originalUrl"), str) else params.url,
    }
