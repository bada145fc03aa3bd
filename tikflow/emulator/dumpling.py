"""DumplingAI stand-in: TikTok data through `POST /api/v1/…` JSON endpoints.

`Authorization: Bearer <key>`, `X-RateLimit-Limit`/`X-RateLimit-Remaining` on every answer
(per-minute window per key; no reset header is documented), errors as `{"error": "<message>"}`
with the documented statuses: 400 bad parameters, 401 bad key, 403 out of credits (each endpoint
costs what DumplingAI's Credit Costs page lists, `CREDITS`, per successful request), 404 unknown
profile (seed 002 has the messages).

The profile-videos cursor is TikTok's app cursor, a time in milliseconds, typed as a string both
ways as the docs type it (`maxCursor` in, `max_cursor`/`min_cursor` out): the next page holds
older videos. Each video carries its `video` object with `duration` in seconds, as the docs'
example has it. The comments cursor is a number, an offset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tikflow.emulator.payloads import json_body
from tikflow.emulator.ratelimit import Quotas
from tikflow.emulator.routing import Provider, Router
from tikflow.emulator.state import User, Video, World
from tikflow.emulator.tikapi import comment_json, stats_json, user_json

__all__ = ["PROVIDER"]

#: Credits per successful request, per endpoint, from DumplingAI's Credit Costs page (the
#: denomination of its November 19, 2025 update): every TikTok endpoint tikflow calls costs 10.
#: A request the API refuses costs nothing.
CREDITS: dict[str, int] = {
    "/api/v1/get-tiktok-profile": 10,
    "/api/v1/get-tiktok-profile-videos": 10,
    "/api/v1/get-tiktok-video-comments": 10,
    "/api/v1/get-tiktok-transcript": 10,
}
PAGE = 10


class DumplingError(Exception):
    """An error answer: `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _handle(world: World, body: dict[str, Any]) -> User:
    handle = body.get("handle")
    if not isinstance(handle, str) or not handle.strip():
        raise DumplingError(400, "'handle' parameter is required and must be a non-empty string.")
    user = world.users.get(handle.strip().lstrip("@"))
    if user is None:
        raise DumplingError(404, f"TikTok profile not found for handle: {handle}")
    return user


def _video_from_url(world: World, url: Any, field: str) -> Video:
    if not isinstance(url, str) or not url.strip():
        raise DumplingError(400, f"'{field}' parameter is required and must be a non-empty string.")
    video = world.videos.get(url.split("?")[0].rstrip("/").rsplit("/", 1)[-1])
    if video is None:
        raise DumplingError(404, f"TikTok video not found for url: {url}")
    return video


def _profile(world: World, body: dict[str, Any]) -> dict[str, Any]:
    user = _handle(world, body)
    items = [
        {
            "id": v.id,
            "desc": v.desc,
            "createTime": v.create_time,
            "stats": {"playCount": v.plays, "diggCount": v.likes},
        }
        for v in world.videos_of(user.unique_id)[:PAGE]
    ]
    profile = {**user_json(user), "shortId": "", "avatarMedium": "", "avatarThumb": "", "secret": False}
    return {"user": profile, "stats": stats_json(world, user), "itemList": items}


def _profile_videos(world: World, body: dict[str, Any]) -> dict[str, Any]:
    user = _handle(world, body)
    videos = world.videos_of(user.unique_id)
    raw = body.get("maxCursor")
    # The docs type `maxCursor` as a string; a number is refused so a client sending one learns
    # it here (what the live API does with a number is not documented).
    if raw is not None and (not isinstance(raw, str) or (raw and not raw.isdigit())):
        raise DumplingError(400, "'maxCursor' must be a string (the max_cursor of a previous response).")
    cursor = int(raw or 0)
    if cursor:
        videos = [v for v in videos if v.create_time * 1000 < cursor]
    page = videos[:PAGE]
    awemes = [
        {
            "aweme_id": v.id,
            "desc": v.desc,
            "create_time": v.create_time,
            "author": {"uid": user.id, "unique_id": user.unique_id, "nickname": user.nickname},
            "statistics": {
                "comment_count": len(world.visible_comments(v.id, None)),
                "digg_count": v.likes,
                "play_count": v.plays,
                "share_count": v.likes // 10,
            },
            "video": {"duration": v.duration, "cover": {"url_list": [f"https://cdn.example.com/{v.id}.jpg"]}},
        }
        for v in page
    ]
    return {
        "aweme_list": awemes,
        "max_cursor": str(page[-1].create_time * 1000 if page else cursor),
        "min_cursor": str(page[0].create_time * 1000 if page else cursor),
        "has_more": 1 if len(page) < len(videos) else 0,
        "extra": {"now": int(world.now() * 1000)},
    }


def _video_comments(world: World, body: dict[str, Any]) -> dict[str, Any]:
    video = _video_from_url(world, body.get("url"), "url")
    world.arrive([video.id])
    comments = world.visible_comments(video.id, None)
    try:
        start, count = int(body.get("cursor") or 0), max(1, min(int(body.get("count") or 20), 50))
    except (TypeError, ValueError):
        raise DumplingError(400, "'cursor' and 'count' must be numbers.") from None
    page = comments[start : start + count]
    return {
        "comments": [comment_json(world, c) for c in page],
        "cursor": start + len(page),
        "hasMore": start + len(page) < len(comments),
        "total": len(comments),
    }


def _transcript(world: World, body: dict[str, Any]) -> dict[str, Any]:
    video = _video_from_url(world, body.get("videoUrl"), "videoUrl")
    text = video.desc.split("#")[0].strip() or "hello from the sandbox"
    return {
        "transcript": f"WEBVTT\n\n00:00:00.000 --> 00:00:03.000\n{text}\n",
        "language": body.get("preferredLanguage") or "en",
        "id": video.id,
        "originalUrl": body["videoUrl"],
    }


Endpoint = Callable[[World, dict[str, Any]], dict[str, Any]]
ROUTER: Router[Endpoint] = Router()
for _path, _endpoint in (
    ("/api/v1/get-tiktok-profile", _profile),
    ("/api/v1/get-tiktok-profile-videos", _profile_videos),
    ("/api/v1/get-tiktok-video-comments", _video_comments),
    ("/api/v1/get-tiktok-transcript", _transcript),
):
    ROUTER.add("POST", _path, _endpoint)


def _rate_limited(retry_after: float | None) -> Response:
    headers = {} if retry_after is None else {"Retry-After": str(max(1, round(retry_after)))}
    return JSONResponse(
        {"error": "Rate limit exceeded. Please try again later."}, status_code=429, headers=headers
    )


def _server_error(status: int) -> Response:
    messages = {
        502: "The profile service is currently unavailable.",
        503: "Rate limit exceeded with the profile service. Please try again later.",
    }
    return JSONResponse(
        {"error": messages.get(status, "An unexpected server error occurred.")}, status_code=status
    )


async def answer(world: World, quotas: Quotas, request: Request, path: str) -> Response:
    """Answer one DumplingAI request at `path` (below the `/dumpling` prefix)."""
    key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if key not in world.bearer_keys["dumpling"]:
        return JSONResponse({"error": "API key is invalid or missing."}, status_code=401)
    limit = world.config.dumpling_per_minute
    verdict = quotas.sliding("dumpling", key, limit, 60.0)
    headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(verdict.remaining)}
    if not verdict.allowed:
        response = _rate_limited(None)
    else:
        try:
            response = await _route(world, request, path)
        except DumplingError as error:
            response = JSONResponse({"error": error.message}, status_code=error.status)
    response.headers.update(headers)
    return response


async def _route(world: World, request: Request, path: str) -> Response:
    route = ROUTER.match(request.method, path)
    if route is None:
        raise DumplingError(404, f"Not found: {request.method} {path}")
    try:
        body = json_body(await request.body() or b"{}")
    except ValueError:
        raise DumplingError(400, "Invalid JSON in request body") from None
    if not isinstance(body, dict):
        raise DumplingError(400, "Invalid JSON in request body")
    cost = CREDITS[path]
    if world.dumpling_credits < cost:
        raise DumplingError(403, "Insufficient credits. Please top up your account.")
    result = route.handler(world, body)
    # Only answered requests cost credits.
    world.dumpling_credits -= cost
    return JSONResponse(result)


PROVIDER = Provider(
    name="dumpling",
    prefix="/dumpling",
    answer=answer,
    template=ROUTER.template,
    server_error=_server_error,
    rate_limited=_rate_limited,
)
