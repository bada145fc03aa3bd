"""HighLevel Social Planner, DumplingAI and SocialAPI stand-ins (the three Bearer-key services).

Each answers its real paths, auth header, body shapes, rate-limit headers and error bodies
(see shared/reference/providers.md sections 3-5). Posts move from in progress to published on
later reads, so a tracking recipe has something to wait for.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tikflow.sandbox.faults import Quotas, rate_limited
from tikflow.sandbox.state import HIGHLEVEL_ACCOUNT, HIGHLEVEL_LOCATION, World

__all__ = ["dumpling", "highlevel", "socialapi"]


def _bearer(request: Request) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ").strip()


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# -- HighLevel -------------------------------------------------------------------------------


async def highlevel(world: World, quotas: Quotas, request: Request, path: str) -> Response:
    """Answer one HighLevel request at `path` (below the `/highlevel` prefix)."""
    token = _bearer(request)
    if token not in world.bearer_keys["highlevel"]:
        return JSONResponse(
            {"statusCode": 401, "message": "Invalid token: access token is invalid", "error": "Unauthorized"},
            status_code=401,
        )
    if request.headers.get("version") != "2021-07-28":
        return JSONResponse({"statusCode": 400, "message": "Version header is required"}, status_code=400)
    burst_ok, burst_left, _ = quotas.take("highlevel", token, world.config.highlevel_burst, 10.0)
    day_ok, day_left, _ = quotas.take("highlevel", token + ":day", world.config.highlevel_daily, 86400.0)
    headers = {
        "X-RateLimit-Limit-Daily": str(world.config.highlevel_daily),
        "X-RateLimit-Daily-Remaining": str(day_left),
        "X-RateLimit-Interval-Milliseconds": "10000",
        "X-RateLimit-Max": str(world.config.highlevel_burst),
        "X-RateLimit-Remaining": str(burst_left),
    }
    if not (burst_ok and day_ok):
        return rate_limited("highlevel", headers)
    response = await _highlevel_route(world, request, path)
    response.headers.update(headers)
    return response


async def _highlevel_route(world: World, request: Request, path: str) -> Response:
    parts = path.strip("/").split("/")
    if len(parts) < 3 or parts[0] != "social-media-posting":
        return JSONResponse({"statusCode": 404, "message": "Not Found"}, status_code=404)
    if parts[1] == "oauth" and len(parts) == 6:  # oauth/{loc}/tiktok/accounts/{id}
        profile = {
            "id": parts[5],
            "name": "Tikflow Demo",
            "username": "tikflow_demo",
            "avatar": "",
            "verified": False,
            "isConnected": True,
            "type": "profile",
        }
        return JSONResponse(
            {
                "success": True,
                "statusCode": 200,
                "message": "Fetched Profile",
                "results": {"profile": [profile]},
            }
        )
    location = parts[1]
    if location != HIGHLEVEL_LOCATION:
        return JSONResponse({"statusCode": 400, "message": "Location not found"}, status_code=400)
    if parts[2] == "accounts" and request.method == "GET":
        account: dict[str, Any] = {
            "id": HIGHLEVEL_ACCOUNT,
            "oauthId": "6582fba7ae57770a2c0b5b3c",
            "profileId": "7168938218329163778",
            "name": "Tikflow Demo",
            "platform": "tiktok",
            "type": "profile",
            "expire": None,
            "isExpired": False,
            "meta": {},
        }
        return JSONResponse(
            {
                "success": True,
                "statusCode": 200,
                "message": "Fetched Accounts",
                "results": {"accounts": [account], "groups": []},
            }
        )
    if parts[2] == "posts" and len(parts) == 3 and request.method == "POST":
        body = await _json(request)
        missing = [k for k in ("accountIds", "userId", "type") if not body.get(k)]
        if missing:
            return JSONResponse(
                {
                    "statusCode": 422,
                    "message": [f"{m} should not be empty" for m in missing],
                    "error": "Unprocessable Entity",
                },
                status_code=422,
            )
        post = {
            "_id": world.token("", 24).lower(),
            "status": "in_progress",
            "error": None,
            "postId": None,
            "publishedAt": None,
            "platform": "tiktok",
            "accountId": body["accountIds"][0],
            "accountIds": body["accountIds"],
            "summary": body.get("summary", ""),
            "media": body.get("media", []),
            "userId": body["userId"],
            "type": body["type"],
            "createdAt": int(world.now()),
            "reads": 0,
        }
        world.highlevel_posts[post["_id"]] = post
        return JSONResponse(
            {"success": True, "statusCode": 201, "message": "Created Post", "results": {"post": post}},
            status_code=201,
        )
    if parts[2] == "posts" and len(parts) == 4 and parts[3] == "list" and request.method == "POST":
        body = await _json(request)
        posts = sorted(world.highlevel_posts.values(), key=lambda p: -p["createdAt"])
        skip, limit = int(body.get("skip") or 0), int(body.get("limit") or 10)
        return JSONResponse(
            {
                "success": True,
                "statusCode": 201,
                "message": "Posts fetched",
                "results": {"posts": posts[skip : skip + limit], "count": len(posts)},
            },
            status_code=201,
        )
    if parts[2] == "posts" and len(parts) == 4 and request.method == "GET":
        found = world.highlevel_posts.get(parts[3])
        if found is None:
            return JSONResponse({"statusCode": 404, "message": "Post not found"}, status_code=404)
        post = found
        post["reads"] += 1
        if post["status"] == "in_progress" and post["reads"] >= world.config.publish_polls:
            post.update(status="published", postId=world.new_id(), publishedAt=int(world.now()))
        return JSONResponse(
            {"success": True, "statusCode": 200, "message": "Fetched Post", "results": {"post": post}}
        )
    return JSONResponse({"statusCode": 404, "message": "Not Found"}, status_code=404)


# -- DumplingAI ------------------------------------------------------------------------------


async def dumpling(world: World, quotas: Quotas, request: Request, path: str) -> Response:
    """Answer one DumplingAI request at `path` (below the `/dumpling` prefix)."""
    key = _bearer(request)
    if key not in world.bearer_keys["dumpling"]:
        return JSONResponse({"error": "Invalid API key"}, status_code=401)
    allowed, left, _ = quotas.take("dumpling", key, world.config.dumpling_per_minute, 60.0)
    headers = {
        "X-RateLimit-Limit": str(world.config.dumpling_per_minute),
        "X-RateLimit-Remaining": str(max(left, 0)),
    }
    if not allowed:
        return rate_limited("dumpling", headers)
    if request.method != "POST":
        return JSONResponse({"error": "Method not allowed"}, status_code=405, headers=headers)
    body = await _json(request)
    response = _dumpling_route(world, path, body)
    response.headers.update(headers)
    return response


def _dumpling_route(world: World, path: str, body: dict[str, Any]) -> Response:
    from tikflow.sandbox.tikapi import _comment_json, _stats_json, _user_json

    handle = str(body.get("handle", "")).lstrip("@")
    if path in ("/api/v1/get-tiktok-profile", "/api/v1/get-tiktok-profile-videos"):
        if not handle:
            return JSONResponse({"error": "handle is required"}, status_code=400)
        user = world.users.get(handle)
        if user is None:
            return JSONResponse({"error": "Profile not found"}, status_code=404)
        videos = sorted(
            (v for v in world.videos.values() if v.author == handle), key=lambda v: -v.create_time
        )
        if path.endswith("profile"):
            items = [
                {
                    "id": v.id,
                    "desc": v.desc,
                    "createTime": v.create_time,
                    "stats": {"playCount": v.plays, "diggCount": v.likes},
                }
                for v in videos[:10]
            ]
            return JSONResponse(
                {
                    "user": {
                        **_user_json(user),
                        "avatarLarger": "",
                        "signature": "",
                        "createTime": 1500000000,
                    },
                    "stats": _stats_json(world, user),
                    "itemList": items,
                }
            )
        start = int(body.get("maxCursor") or 0)
        chunk = videos[start : start + 10]
        awemes = [
            {
                "aweme_id": v.id,
                "desc": v.desc,
                "create_time": v.create_time,
                "author": {"unique_id": v.author},
                "statistics": {
                    "comment_count": 0,
                    "digg_count": v.likes,
                    "play_count": v.plays,
                    "share_count": 0,
                },
            }
            for v in chunk
        ]
        more = start + len(chunk) < len(videos)
        return JSONResponse(
            {
                "aweme_list": awemes,
                "max_cursor": start + len(chunk),
                "min_cursor": start,
                "has_more": 1 if more else 0,
            }
        )
    if path == "/api/v1/get-tiktok-video-comments":
        video_id = str(body.get("url", "")).rstrip("/").rsplit("/", 1)[-1]
        if video_id not in world.videos:
            return JSONResponse({"error": "Video not found"}, status_code=404)
        comments = world.visible_comments(video_id, None)
        start, count = int(body.get("cursor") or 0), int(body.get("count") or 20)
        page = comments[start : start + count]
        return JSONResponse(
            {
                "comments": [_comment_json(world, c) for c in page],
                "cursor": start + len(page),
                "hasMore": start + len(page) < len(comments),
                "total": len(comments),
            }
        )
    if path == "/api/v1/get-tiktok-transcript":
        url = str(body.get("videoUrl", ""))
        if not url:
            return JSONResponse({"error": "videoUrl is required"}, status_code=400)
        return JSONResponse(
            {
                "transcript": "WEBVTT\n\n00:00.000 --> 00:02.000\nhello from the sandbox\n",
                "language": body.get("preferredLanguage") or "en",
                "id": url.rsplit("/", 1)[-1],
                "originalUrl": url,
            }
        )
    return JSONResponse({"error": "Not found"}, status_code=404)


# -- SocialAPI -------------------------------------------------------------------------------


def _social_error(status: int, code: str, message: str, request_id: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}, "request_id": request_id}, status_code=status
    )


async def socialapi(world: World, quotas: Quotas, request: Request, path: str) -> Response:
    """Answer one SocialAPI request at `path` (below the `/socialapi/v1` prefix)."""
    request_id = request.headers.get("x-request-id") or world.token("req_", 16)
    key = _bearer(request)
    response: Response
    if key not in world.bearer_keys["socialapi"]:
        response = _social_error(401, "auth.unauthorized", "Invalid API key.", request_id)
    elif world.socialapi_expired and path.startswith("/posts") and request.method == "POST":
        message = "The connected account's token expired; reconnect it."
        response = _social_error(401, "auth.invalid_token", message, request_id)
    else:
        response = await _social_route(world, request, path, request_id)
    response.headers["X-Request-ID"] = request_id
    return response


def _account() -> dict[str, Any]:
    return {
        "id": "acc_tiktok_demo",
        "platform": "tiktok",
        "name": "Tikflow Demo",
        "username": "tikflow_demo",
        "metadata": {
            "avatar_url": "",
            "follower_count": 1250,
            "following_count": 88,
            "video_count": 12,
            "likes_count": 9000,
        },
    }


async def _social_route(world: World, request: Request, path: str, request_id: str) -> Response:
    if path == "/accounts" and request.method == "GET":
        return JSONResponse({"data": [_account()], "pagination": {"has_more": False, "next_cursor": None}})
    if path == "/accounts/connect" and request.method == "POST":
        return JSONResponse(
            {
                "auth_url": "https://www.tiktok.com/v2/auth/authorize/?client_key=sandbox",
                "state": world.token("st_", 12),
            }
        )
    if path == "/oauth/exchange" and request.method == "POST":
        world.socialapi_expired = False
        return JSONResponse({"account": _account()})
    if path == "/posts" and request.method == "POST":
        body = await _json(request)
        if not body.get("account_ids"):
            return _social_error(400, "validation.invalid", "account_ids is required.", request_id)
        if request_id in world.socialapi_request_ids:
            return JSONResponse(
                world.socialapi_posts[world.socialapi_request_ids[request_id]], status_code=201
            )
        post_id = world.token("p_", 16)
        status = "scheduled" if body.get("scheduled_at") else "publishing"
        post = {
            "id": post_id,
            "status": status,
            "text": body.get("text", ""),
            "created_at": int(world.now()),
            "reads": 0,
            "targets": [
                {
                    "account_id": a,
                    "platform": "tiktok",
                    "status": status,
                    "platform_post_id": None,
                    "permalink": None,
                    "error": None,
                    "published_at": None,
                }
                for a in body["account_ids"]
            ],
        }
        world.socialapi_posts[post_id] = post
        world.socialapi_request_ids[request_id] = post_id
        return JSONResponse(post, status_code=201)
    if path.startswith("/posts/") and request.method == "GET":
        found = world.socialapi_posts.get(path.rsplit("/", 1)[-1])
        if found is None:
            return _social_error(404, "posts.not_found", "Post not found.", request_id)
        post = found
        post["reads"] += 1
        if post["status"] == "publishing" and post["reads"] >= world.config.publish_polls:
            post["status"] = "published"
            for target in post["targets"]:
                pid = world.new_id()
                target.update(
                    status="published",
                    platform_post_id=pid,
                    published_at=int(world.now()),
                    permalink=f"https://www.tiktok.com/@tikflow_demo/video/{pid}",
                )
        return JSONResponse(post)
    if path == "/posts" and request.method == "GET":
        posts = sorted(world.socialapi_posts.values(), key=lambda p: -p["created_at"])
        wanted = request.query_params.get("status")
        if wanted:
            posts = [p for p in posts if p["status"] == wanted]
        start = int(request.query_params.get("cursor") or 0)
        limit = int(request.query_params.get("limit") or 25)
        chunk = posts[start : start + limit]
        more = start + len(chunk) < len(posts)
        return JSONResponse(
            {
                "data": chunk,
                "pagination": {"has_more": more, "next_cursor": str(start + len(chunk)) if more else None},
            }
        )
    return _social_error(404, "not_found", "Not found.", request_id)
