"""TikTok official stand-in: OAuth v2 (rotating refresh tokens), Display API, Content Posting API.

Uploads are real: `PUT upload_url` chunks are checked against `Content-Range` and the init's
chunking; the bytes decide the outcome (no `ftyp` box → FAILED `file_format_check_failed`).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from tikflow.sandbox.faults import Quotas, rate_limited
from tikflow.sandbox.state import TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET, World

__all__ = ["handle", "issue_tokens"]

_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
MB = 1024 * 1024
#: Per-minute quotas per token (TikTok's documented limits).
LIMITS = {
    "/v2/post/publish/creator_info/query/": 20,
    "/v2/post/publish/video/init/": 6,
    "/v2/post/publish/inbox/video/init/": 6,
    "/v2/post/publish/status/fetch/": 30,
}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"data": {}, "error": {"code": code, "message": message, "log_id": "sandbox"}}, status_code=status
    )


def _ok(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"data": data, "error": {"code": "ok", "message": "", "log_id": "sandbox"}})


def issue_tokens(world: World, open_id: str = "sandbox-open-id-tikflow-demo") -> dict[str, Any]:
    """A fresh access/refresh token pair for `open_id` (the token endpoint's answer)."""
    access = world.token("act.", 40)
    refresh = world.token("rft.", 40)
    world.tiktok_access[access] = (open_id, world.now() + world.config.tiktok_token_ttl_s)
    world.tiktok_refresh[refresh] = open_id
    return {
        "open_id": open_id,
        "scope": "user.info.basic,user.info.stats,video.list,video.publish,video.upload",
        "access_token": access,
        "expires_in": world.config.tiktok_token_ttl_s,
        "refresh_token": refresh,
        "refresh_expires_in": 31536000,
        "token_type": "Bearer",
    }


async def handle(world: World, quotas: Quotas, request: Request, path: str) -> Response:
    """Answer one TikTok request at `path` (below the `/tiktok` prefix)."""
    if path == "/v2/auth/authorize/":
        return _authorize(world, request)
    if path == "/v2/oauth/token/":
        return await _token(world, request)
    if path.startswith("/upload/"):
        return await _upload(world, request, path.rsplit("/", 1)[-1])
    auth = request.headers.get("authorization", "")
    token = auth.removeprefix("Bearer ").strip()
    holder = world.tiktok_access.get(token)
    if holder is None or holder[1] <= world.now():
        return _error(401, "access_token_invalid", "The access token is invalid or not found in the request.")
    limit = LIMITS.get(path, 600)
    allowed, _, _ = quotas.take("tiktok", f"{token}:{path}", limit, 60.0)
    if not allowed:
        return rate_limited("tiktok")
    try:
        body = json.loads(await request.body() or b"{}") if request.method == "POST" else {}
    except ValueError:
        return _error(400, "invalid_params", "The request body is not JSON.")
    if path == "/v2/user/info/":
        return _user_info(world, request)
    if path == "/v2/video/list/":
        return _video_list(world, body)
    if path == "/v2/post/publish/creator_info/query/":
        return _ok(_creator(world))
    if path in ("/v2/post/publish/video/init/", "/v2/post/publish/inbox/video/init/"):
        return _init(world, request, body, inbox="inbox" in path)
    if path == "/v2/post/publish/status/fetch/":
        return _status(world, body)
    return _error(404, "invalid_params", f"No route {request.method} {path}")


def _authorize(world: World, request: Request) -> Response:
    query = request.query_params
    if query.get("client_key") != TIKTOK_CLIENT_KEY or not query.get("redirect_uri"):
        return JSONResponse(
            {"error": "invalid_client", "error_description": "Unknown client_key."}, status_code=400
        )
    code = world.token("code_", 24)
    world.tiktok_codes[code] = "sandbox-open-id-tikflow-demo"
    target = query["redirect_uri"]
    return RedirectResponse(
        f"{target}?{urlencode({'code': code, 'scopes': query.get('scope', ''), 'state': query.get('state', '')})}",  # noqa: E501
        302,
    )


async def _token(world: World, request: Request) -> Response:
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    if form.get("client_key") != TIKTOK_CLIENT_KEY or form.get("client_secret") != TIKTOK_CLIENT_SECRET:
        return JSONResponse(
            {
                "error": "invalid_client",
                "error_description": "Client key or secret is invalid.",
                "log_id": "sandbox",
            }
        )
    grant = form.get("grant_type")
    if grant == "authorization_code":
        open_id = world.tiktok_codes.pop(form.get("code", ""), None)
    elif grant == "refresh_token":
        world.refresh_calls += 1
        # Refresh tokens rotate: the one used is spent.
        open_id = world.tiktok_refresh.pop(form.get("refresh_token", ""), None)
    else:
        return JSONResponse(
            {"error": "invalid_request", "error_description": "Unsupported grant_type.", "log_id": "sandbox"},
            status_code=400,
        )
    if open_id is None:
        return JSONResponse(
            {
                "error": "invalid_grant",
                "error_description": "Authorization code or refresh token is invalid.",
                "log_id": "sandbox",
            }
        )
    return JSONResponse(issue_tokens(world, open_id))


def _user_info(world: World, request: Request) -> Response:
    me = world.users["tikflow_demo"]
    values = {
        "open_id": "sandbox-open-id-tikflow-demo",
        "union_id": "sandbox-union-id",
        "avatar_url": "https://p16.example/avatar.jpeg",
        "display_name": me.nickname,
        "username": me.unique_id,
        "follower_count": me.followers,
        "following_count": me.following,
        "likes_count": me.hearts,
        "video_count": sum(1 for v in world.videos.values() if v.author == me.unique_id),
    }
    fields = request.query_params.get("fields", "open_id").split(",")
    return _ok({"user": {f: values[f] for f in fields if f in values}})


def _video_list(world: World, body: dict[str, Any]) -> Response:
    mine = sorted(
        (v for v in world.videos.values() if v.author == "tikflow_demo"), key=lambda v: -v.create_time
    )
    cursor = int(body.get("cursor") or 0)
    count = min(int(body.get("max_count") or 20), 20)
    chunk = mine[cursor : cursor + count]
    videos = [
        {
            "id": v.id,
            "title": v.desc,
            "video_description": v.desc,
            "create_time": v.create_time,
            "duration": 15,
            "like_count": v.likes,
            "view_count": v.plays,
            "comment_count": 0,
            "share_count": 0,
            "share_url": f"https://www.tiktok.com/@tikflow_demo/video/{v.id}",
        }
        for v in chunk
    ]
    return _ok({"videos": videos, "cursor": cursor + len(chunk), "has_more": cursor + len(chunk) < len(mine)})


def _creator(world: World) -> dict[str, Any]:
    return {
        "creator_avatar_url": "https://p16.example/avatar.jpeg",
        "creator_username": "tikflow_demo",
        "creator_nickname": "Tikflow Demo",
        "privacy_level_options": ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"],
        "comment_disabled": False,
        "duet_disabled": False,
        "stitch_disabled": True,
        "max_video_post_duration_sec": 600,
    }


def _init(world: World, request: Request, body: dict[str, Any], *, inbox: bool) -> Response:
    source = body.get("source_info") or {}
    post = body.get("post_info") or {}
    if not inbox and post.get("privacy_level") not in _creator(world)["privacy_level_options"]:
        return _error(
            400, "privacy_level_option_mismatch", "privacy_level is not one of the creator's options."
        )
    publish_id = f"v_pub_file~v2-1.{world.new_id()}"
    record: dict[str, Any] = {
        "publish_id": publish_id,
        "source": source.get("source"),
        "inbox": inbox,
        "title": post.get("title", ""),
        "status": "PROCESSING_UPLOAD",
        "fail_reason": None,
        "uploaded_bytes": 0,
        "polls_done": 0,
        "post_id": None,
        "chunks": 0,
    }
    if source.get("source") == "FILE_UPLOAD":
        size, chunk, total = (
            source.get("video_size"),
            source.get("chunk_size"),
            source.get("total_chunk_count"),
        )
        if (
            not (isinstance(size, int) and isinstance(chunk, int) and isinstance(total, int))
            or min(size, chunk, total) <= 0
        ):
            return _error(400, "invalid_params", "video_size, chunk_size and total_chunk_count are required.")
        expected = max(size // chunk, 1)
        if size < 5 * MB and (chunk != size or total != 1):
            return _error(400, "invalid_params", "Videos under 5 MB upload as one chunk of the whole size.")
        if size >= 5 * MB and (not 5 * MB <= chunk <= 64 * MB or total != expected):
            return _error(
                400, "invalid_params", "chunk_size must be 5-64 MB and total_chunk_count floor(size/chunk)."
            )
        record.update(video_size=size, chunk_size=chunk, total_chunk_count=total)
        world.uploads[publish_id] = bytearray()
        upload_url = f"{str(request.base_url).rstrip('/')}/tiktok/upload/{publish_id.rsplit('.', 1)[-1]}"
        world.publishes[publish_id] = record
        return _ok({"publish_id": publish_id, "upload_url": upload_url})
    if source.get("source") == "PULL_FROM_URL":
        url = str(source.get("video_url", ""))
        record.update(status="PROCESSING_DOWNLOAD", video_url=url)
        if not url.startswith("https://"):
            return _error(400, "invalid_params", "video_url must be https.")
        world.publishes[publish_id] = record
        return _ok({"publish_id": publish_id})
    return _error(400, "invalid_params", "source_info.source must be FILE_UPLOAD or PULL_FROM_URL.")


async def _upload(world: World, request: Request, key: str) -> Response:
    record = next((p for p in world.publishes.values() if p["publish_id"].endswith("." + key)), None)
    if record is None or request.method != "PUT":
        return _error(404, "invalid_params", "Unknown upload.")
    match = _RANGE.match(request.headers.get("content-range", ""))
    data = await request.body()
    if not match:
        return _error(400, "invalid_params", "Content-Range must be 'bytes first-last/total'.")
    first, last, total = (int(g) for g in match.groups())
    if total != record["video_size"] or first != record["uploaded_bytes"] or last - first + 1 != len(data):
        return _error(400, "invalid_params", "Content-Range does not match the upload so far.")
    world.uploads[record["publish_id"]] += data
    record["uploaded_bytes"] = last + 1
    record["chunks"] += 1
    if record["uploaded_bytes"] < total:
        return Response(status_code=206)
    # Keep the state small: only the verdict about the bytes matters.
    record["ok_format"] = bytes(world.uploads.pop(record["publish_id"])[4:8]) == b"ftyp"
    return Response(status_code=201)


def _status(world: World, body: dict[str, Any]) -> Response:
    record = world.publishes.get(str(body.get("publish_id", "")))
    if record is None:
        return _error(400, "invalid_publish_id", "publish_id does not exist.")
    uploading = record["source"] == "FILE_UPLOAD" and record["uploaded_bytes"] < record.get("video_size", 0)
    if record["status"] in ("PROCESSING_UPLOAD", "PROCESSING_DOWNLOAD") and not uploading:
        record["polls_done"] += 1
        if record["polls_done"] >= world.config.publish_polls:
            if record["source"] == "FILE_UPLOAD" and not record.get("ok_format"):
                record.update(status="FAILED", fail_reason="file_format_check_failed")
            elif record["source"] == "PULL_FROM_URL" and not str(record.get("video_url", "")).endswith(
                ".mp4"
            ):
                record.update(status="FAILED", fail_reason="video_pull_failed")
            elif record["inbox"]:
                record.update(status="SEND_TO_USER_INBOX")
            else:
                record.update(status="PUBLISH_COMPLETE", post_id=world.new_id())
    data = {
        "status": record["status"],
        "fail_reason": record["fail_reason"],
        "uploaded_bytes": record["uploaded_bytes"],
        "downloaded_bytes": 0,
        "publicaly_available_post_id": [int(record["post_id"])] if record["post_id"] else [],
    }
    return _ok(data)
