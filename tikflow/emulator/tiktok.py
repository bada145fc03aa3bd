"""TikTok official API stand-in: OAuth v2, the Display API and the Content Posting API.

- OAuth: `GET /v2/auth/authorize/` (the consent page, auto-approved) redirects with a `code`;
  `POST /v2/oauth/token/` (form-encoded) exchanges it or a refresh token. Refresh tokens rotate:
  the one used is spent (`invalid_grant` the next time). Access tokens expire after `expires_in`,
  then every API call answers `401 access_token_invalid`.
- Content posting: `video/init` and `inbox/video/init` return a `publish_id` and, for FILE_UPLOAD,
  an absolute `upload_url` served here. Chunks are checked against `Content-Range` and the init's
  chunking (206 for a chunk, 201 for the last); the bytes decide the outcome (no `ftyp` box at
  offset 4 → FAILED `file_format_check_failed`). `status/fetch` moves through PROCESSING_UPLOAD
  (or PROCESSING_DOWNLOAD) for `publish_polls` fetches, then PUBLISH_COMPLETE (the video joins
  the account's videos; `publicaly_available_post_id` lists it when it is PUBLIC_TO_EVERYONE),
  SEND_TO_USER_INBOX or FAILED (`video_pull_failed` for a URL that is not an .mp4). With a
  webhook callback URL configured, processing ends as soon as the bytes are in (or the URL is
  given) and the outcome is POSTed as signed events (`tikflow.emulator.webhooks`).
- Per-minute limits per token and endpoint, sliding windows (429 `rate_limit_exceeded`, with no
  reset header: TikTok's rate-limit doc documents none, so a client must pace itself).
- An unaudited app (`tiktok_app_audited` false, the default, as for every new TikTok app): creator
  info offers SELF_ONLY only; a direct post that is not SELF_ONLY, or from an account that is not
  private, answers 403 `unaudited_client_can_only_post_to_private_accounts`, and a sixth creator
  posting within 24 h 403 `reached_active_user_cap` (TikTok's Direct Post developer guidelines).
- Chunking per the Media Transfer Guide: chunks of 5-64 MB, `total_chunk_count` floor(video_size /
  chunk_size), the last chunk up to 128 MB, and a file over 64 MB in at least two chunks.
- A public post's `publicaly_available_post_id` stays empty for `tiktok_moderation_s` after
  PUBLISH_COMPLETE: TikTok hands out the id only after moderation.

Not documented, chosen here: a malformed `Content-Range` is a 400 and a range that does not fit
the upload (order, total, chunk size) a 416, both with TikTok's error object; re-sending a chunk
that already arrived is answered as before without storing it twice (a client resuming after a
crash may not know whether its last chunk landed).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from tikflow.emulator import webhooks
from tikflow.emulator.payloads import json_body
from tikflow.emulator.ratelimit import Quotas
from tikflow.emulator.routing import Provider, Router
from tikflow.emulator.state import (
    ME,
    TIKTOK_OPEN_ID,
    TIKTOK_UNION_ID,
    Publish,
    Video,
    World,
)

__all__ = ["PROVIDER", "issue_tokens"]

MB = 1024 * 1024
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_VIDEO_TYPES = ("video/mp4", "video/quicktime", "video/webm")
PRIVACY_OPTIONS = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
SCOPES = "user.info.basic,user.info.profile,user.info.stats,video.list,video.publish,video.upload"
UPLOAD_URL_TTL_S = 3600.0
MAX_CHUNK, MAX_CHUNKS, MAX_LAST_CHUNK = 64 * MB, 1000, 128 * MB
#: TikTok's posting caps (documented approximately): direct posts per creator per day, pending
#: inbox drafts per 24 h.
DAILY_POSTS, PENDING_DRAFTS = 15, 5


class ApiError(Exception):
    """An API answer with TikTok's error object."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _log_id(world: World) -> str:
    stamp = datetime.fromtimestamp(world.now(), tz=UTC).strftime("%Y%m%d%H%M%S")
    return f"{stamp}{sum(world.requests.values()):018X}"


def _ok(world: World, data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"data": data, "error": {"code": "ok", "message": "", "log_id": _log_id(world)}})


def _api_error(world: World, error: ApiError) -> JSONResponse:
    body = {"data": {}, "error": {"code": error.code, "message": error.message, "log_id": _log_id(world)}}
    return JSONResponse(body, status_code=error.status)


def _oauth_error(world: World, status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": code, "error_description": description, "log_id": _log_id(world)}, status_code=status
    )


def issue_tokens(world: World, open_id: str = TIKTOK_OPEN_ID) -> dict[str, Any]:
    """A fresh access/refresh token pair for `open_id` (the token endpoint's answer)."""
    config = world.config
    access, refresh = world.token("act.", 60), world.token("rft.", 60)
    world.tiktok_access[access] = (open_id, world.now() + config.tiktok_token_ttl_s)
    world.tiktok_refresh[refresh] = (open_id, world.now() + config.tiktok_refresh_ttl_s)
    return {
        "open_id": open_id,
        "scope": SCOPES,
        "access_token": access,
        "expires_in": config.tiktok_token_ttl_s,
        "refresh_token": refresh,
        "refresh_expires_in": config.tiktok_refresh_ttl_s,
        "token_type": "Bearer",
    }


# -- OAuth ---------------------------------------------------------------------------------------


async def _authorize(world: World, request: Request, open_id: str) -> Response:
    query = request.query_params
    client, redirect = query.get("client_key", ""), query.get("redirect_uri", "")
    if client not in world.tiktok_clients or not redirect or query.get("response_type") != "code":
        return _oauth_error(
            world, 400, "invalid_request", "client_key, redirect_uri and response_type=code are required."
        )
    code = world.token("", 64)
    world.tiktok_codes[code] = (client, TIKTOK_OPEN_ID)
    answer = urlencode({"code": code, "scopes": query.get("scope", ""), "state": query.get("state", "")})
    return RedirectResponse(f"{redirect}{'&' if '?' in redirect else '?'}{answer}", status_code=302)


def redeem_code(world: World, client_key: str, code: str) -> str | None:
    """The open_id an authorization code was issued for, spending it (None if unknown)."""
    issued = world.tiktok_codes.get(code)
    if issued is None or issued[0] != client_key:
        return None
    del world.tiktok_codes[code]
    return issued[1]


async def _token(world: World, request: Request, open_id: str) -> Response:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _oauth_error(
            world, 400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded."
        )
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    client = form.get("client_key", "")
    if world.tiktok_clients.get(client) != form.get("client_secret") or not client:
        return _oauth_error(world, 401, "invalid_client", "Client key or secret is invalid.")
    grant = form.get("grant_type")
    if grant == "authorization_code":
        owner = redeem_code(world, client, form.get("code", ""))
        if owner is None:
            return _oauth_error(world, 400, "invalid_grant", "Authorization code is expired or invalid.")
        return JSONResponse(issue_tokens(world, owner))
    if grant == "refresh_token":
        world.refresh_calls += 1
        # Refresh tokens rotate: the one used is spent, whatever happens next.
        held = world.tiktok_refresh.pop(form.get("refresh_token", ""), None)
        if held is None or held[1] <= world.now():
            return _oauth_error(world, 400, "invalid_grant", "Refresh token is invalid or expired.")
        return JSONResponse(issue_tokens(world, held[0]))
    return _oauth_error(
        world, 400, "invalid_request", "grant_type must be authorization_code or refresh_token."
    )


# -- Display API ---------------------------------------------------------------------------------


def _fields(request: Request) -> list[str]:
    fields = [f for f in request.query_params.get("fields", "").split(",") if f]
    if not fields:
        raise ApiError(400, "invalid_params", "fields is required.")
    return fields


async def _user_info(world: World, request: Request, open_id: str) -> Response:
    me = world.users[ME]
    values = {
        "open_id": open_id,
        "union_id": TIKTOK_UNION_ID,
        "avatar_url": f"https://p19-sign.tiktokcdn-us.example/{me.id}~c5_168x168.jpeg",
        "avatar_url_100": f"https://p19-sign.tiktokcdn-us.example/{me.id}~c5_100x100.jpeg",
        "avatar_large_url": f"https://p19-sign.tiktokcdn-us.example/{me.id}~c5_1080x1080.jpeg",
        "display_name": me.nickname,
        "bio_description": me.signature,
        "profile_deep_link": f"https://vm.tiktok.com/{me.unique_id}/",
        "is_verified": False,
        "username": me.unique_id,
        "follower_count": me.followers,
        "following_count": me.following,
        "likes_count": me.hearts,
        "video_count": len(world.videos_of(ME)),
    }
    return _ok(world, {"user": {f: values[f] for f in _fields(request) if f in values}})


def _video_fields(world: World, video: Video) -> dict[str, Any]:
    return {
        "id": video.id,
        "create_time": video.create_time,
        "cover_image_url": f"https://p16-sign.tiktokcdn.example/{video.id}~tplv-cover.jpeg",
        "share_url": f"https://www.tiktok.com/@{video.author}/video/{video.id}",
        "video_description": video.desc,
        "duration": video.duration,
        "height": 1920,
        "width": 1080,
        "title": video.desc,
        "embed_link": f"https://www.tiktok.com/player/v1/{video.id}",
        "like_count": video.likes,
        "comment_count": sum(1 for c in world.comments.values() if c.aweme_id == video.id and not c.deleted),
        "share_count": video.likes // 10,
        "view_count": video.plays,
    }


async def _video_list(world: World, request: Request, open_id: str) -> Response:
    fields = _fields(request)
    body = await _json(request)
    max_count = body.get("max_count", 20)
    if not isinstance(max_count, int) or not 1 <= max_count <= 20:
        raise ApiError(400, "invalid_params", "max_count must be between 1 and 20.")
    # The cursor is a UTC time in milliseconds: the next page holds older videos.
    cursor = body.get("cursor")
    videos = world.videos_of(ME)
    if cursor:
        videos = [v for v in videos if v.create_time * 1000 < int(cursor)]
    page = videos[:max_count]
    listed = [{f: v for f, v in _video_fields(world, video).items() if f in fields} for video in page]
    next_cursor = page[-1].create_time * 1000 if page else int(cursor or 0)
    return _ok(world, {"videos": listed, "cursor": next_cursor, "has_more": len(page) < len(videos)})


# -- Content Posting API -------------------------------------------------------------------------


def _creator(world: World) -> dict[str, Any]:
    # An unaudited app may only post SELF_ONLY; TikTok's creator info says so.
    options = list(PRIVACY_OPTIONS) if world.config.tiktok_app_audited else ["SELF_ONLY"]
    return {
        "creator_avatar_url": "https://p19-sign.tiktokcdn-us.example/avatar.jpeg",
        "creator_username": ME,
        "creator_nickname": "Tikflow Demo",
        "privacy_level_options": options,
        "comment_disabled": False,
        "duet_disabled": False,
        "stitch_disabled": True,
        "max_video_post_duration_sec": 600,
    }


async def _creator_info(world: World, request: Request, open_id: str) -> Response:
    return _ok(world, _creator(world))


def _positive(source: dict[str, Any], key: str) -> int:
    value = source.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ApiError(400, "invalid_params", f"source_info.{key} must be a positive integer.")
    return value


def _check_chunking(world: World, source: dict[str, Any]) -> tuple[int, int, int]:
    size, chunk, total = (_positive(source, k) for k in ("video_size", "chunk_size", "total_chunk_count"))
    minimum = world.config.tiktok_min_chunk_bytes
    if size < minimum:
        if chunk != size or total != 1:
            raise ApiError(
                400, "invalid_params", "A video under 5 MB is uploaded whole: chunk_size = video_size."
            )
    elif not minimum <= chunk <= MAX_CHUNK or total != size // chunk or total > MAX_CHUNKS:
        raise ApiError(
            400,
            "invalid_params",
            "chunk_size must be 5-64 MB and total_chunk_count floor(video_size / chunk_size), at most 1000.",
        )
    elif size > MAX_CHUNK and total < 2:
        raise ApiError(400, "invalid_params", "A video over 64 MB must be uploaded in several chunks.")
    elif size - (total - 1) * chunk > MAX_LAST_CHUNK:
        raise ApiError(400, "invalid_params", "The last chunk may hold at most 128 MB.")
    return size, chunk, total


def _posted_today(world: World, open_id: str) -> int:
    day = world.now() - 86_400
    return sum(
        1 for p in world.publishes.values() if p.open_id == open_id and not p.inbox and p.created_at > day
    )


def _check_audit(world: World, open_id: str, privacy: Any) -> None:
    """What an unaudited app may not do (TikTok's Direct Post API developer guidelines)."""
    config = world.config
    if config.tiktok_app_audited:
        return
    if privacy != "SELF_ONLY" or not config.tiktok_account_private:
        raise ApiError(
            403,
            "unaudited_client_can_only_post_to_private_accounts",
            "The unaudited client can only post to private accounts.",
        )
    day = world.now() - 86_400
    creators = {p.open_id for p in world.publishes.values() if not p.inbox and p.created_at > day}
    if open_id not in creators and len(creators) >= config.tiktok_unaudited_daily_creators:
        raise ApiError(
            403, "reached_active_user_cap", "The unaudited client reached its daily cap of posting users."
        )


async def _init(world: World, request: Request, open_id: str) -> Response:
    inbox = "/inbox/" in request.url.path
    body = await _json(request)
    source, post = body.get("source_info"), body.get("post_info") or {}
    if not isinstance(source, dict) or not isinstance(post, dict):
        raise ApiError(400, "invalid_params", "source_info is required.")
    privacy = post.get("privacy_level")
    if not inbox:
        _check_audit(world, open_id, privacy)
        if privacy not in _creator(world)["privacy_level_options"]:
            raise ApiError(
                400,
                "privacy_level_option_mismatch",
                "privacy_level is not one of the creator's privacy_level_options.",
            )
        if _posted_today(world, open_id) >= DAILY_POSTS:
            raise ApiError(403, "spam_risk_too_many_posts", "The creator has posted too many times today.")
    elif (
        sum(
            1
            for p in world.publishes.values()
            if p.inbox and p.status == "SEND_TO_USER_INBOX" and p.created_at > world.now() - 86_400
        )
        >= PENDING_DRAFTS
    ):
        raise ApiError(
            403, "spam_risk_too_many_pending_share", "Too many drafts wait in the creator's inbox."
        )
    title = str(post.get("title") or "")
    if len(title) > 2200:
        raise ApiError(400, "invalid_params", "title is longer than 2200 characters.")
    publish = Publish(
        publish_id=f"v_{'inbox' if inbox else 'pub'}_file~v2-1.{world.new_id()}",
        open_id=open_id,
        source=str(source.get("source")),
        inbox=inbox,
        title=title,
        privacy_level=None if inbox else str(privacy),
        status="PROCESSING_UPLOAD",
        created_at=world.now(),
    )
    if publish.source == "FILE_UPLOAD":
        publish.video_size, publish.chunk_size, publish.total_chunk_count = _check_chunking(world, source)
        publish.upload_id, publish.upload_token = world.new_id(), world.token("", 32)
        publish.upload_expires_at = world.now() + UPLOAD_URL_TTL_S
        world.publishes[publish.publish_id] = publish
        query = urlencode({"upload_id": publish.upload_id, "upload_token": publish.upload_token})
        upload_url = f"{str(request.base_url).rstrip('/')}/tiktok/video/?{query}"
        return _ok(world, {"publish_id": publish.publish_id, "upload_url": upload_url})
    if publish.source == "PULL_FROM_URL":
        url = str(source.get("video_url") or "")
        if not url.startswith("https://"):
            raise ApiError(400, "invalid_params", "video_url must be an https URL.")
        publish.video_url, publish.status = url, "PROCESSING_DOWNLOAD"
        world.publishes[publish.publish_id] = publish
        _processing(world, request, publish)
        return _ok(world, {"publish_id": publish.publish_id})
    raise ApiError(400, "invalid_params", "source_info.source must be FILE_UPLOAD or PULL_FROM_URL.")


async def _upload(world: World, request: Request) -> Response:
    """One chunk `PUT` at an `upload_url` (no bearer token: the URL carries its own)."""
    query = request.query_params
    publish = next(
        (p for p in world.publishes.values() if p.upload_id and p.upload_id == query.get("upload_id")), None
    )
    if publish is None or publish.upload_token != query.get("upload_token"):
        raise ApiError(404, "invalid_params", "Unknown upload_id or upload_token.")
    if world.now() > publish.upload_expires_at:
        raise ApiError(403, "invalid_params", "The upload_url has expired: init the publish again.")
    if request.headers.get("content-type", "").split(";")[0].strip() not in _VIDEO_TYPES:
        raise ApiError(400, "invalid_params", f"Content-Type must be one of {', '.join(_VIDEO_TYPES)}.")
    match = _RANGE.match(request.headers.get("content-range", ""))
    if not match:
        raise ApiError(400, "invalid_params", "Content-Range must be 'bytes {first}-{last}/{total}'.")
    first, last, total = (int(g) for g in match.groups())
    data = await request.body()
    final = publish.chunks_received + 1 == publish.total_chunk_count
    expected_last = publish.video_size - 1 if final else publish.uploaded_bytes + publish.chunk_size - 1
    if last - first + 1 != len(data):
        raise ApiError(400, "invalid_params", "Content-Range does not match the body's length.")
    if total != publish.video_size:
        raise ApiError(
            416, "invalid_params", f"Content-Range total must be video_size ({publish.video_size})."
        )
    if last < publish.uploaded_bytes and (first, last) in publish.received_ranges:
        return Response(status_code=201 if last == publish.video_size - 1 else 206)
    if first != publish.uploaded_bytes or last != expected_last:
        raise ApiError(
            416,
            "invalid_params",
            f"Expected the chunk bytes {publish.uploaded_bytes}-{expected_last}/{publish.video_size}.",
        )
    if publish.chunks_received == 0:
        # Only the verdict about the bytes is kept: an MP4 starts with an `ftyp` box at offset 4.
        publish.is_mp4 = data[4:8] == b"ftyp"
    publish.received_ranges.append((first, last))
    publish.chunks_received += 1
    publish.uploaded_bytes = last + 1
    if final:
        _processing(world, request, publish)
    return Response(status_code=201 if final else 206)


async def _status(world: World, request: Request, open_id: str) -> Response:
    body = await _json(request)
    publish = world.publishes.get(str(body.get("publish_id", "")))
    if publish is None or publish.open_id != open_id:
        raise ApiError(400, "invalid_publish_id", "publish_id does not exist.")
    uploading = publish.source == "FILE_UPLOAD" and publish.uploaded_bytes < publish.video_size
    if publish.status in ("PROCESSING_UPLOAD", "PROCESSING_DOWNLOAD") and not uploading:
        publish.polls += 1
        if publish.polls >= world.config.publish_polls:
            _finish(world, publish)
            webhooks.sender(request).publish_progress(world, publish)
    # TikTok hands out the post id only once moderation is over.
    public = webhooks.moderation_left_s(world, publish) == 0
    if public:
        webhooks.sender(request).publish_progress(world, publish)
    data = {
        "status": publish.status,
        "uploaded_bytes": publish.uploaded_bytes,
        "downloaded_bytes": publish.downloaded_bytes,
        "publicaly_available_post_id": [int(publish.post_id)] if public and publish.post_id else [],
    }
    if publish.fail_reason:
        data["fail_reason"] = publish.fail_reason
    return _ok(world, data)


def _processing(world: World, request: Request, publish: Publish) -> None:
    """The bytes are in (or the URL is known): with a webhook callback, processing ends now.

    Without one, it ends after `publish_polls` status fetches; with one, the app learns the
    outcome from the events (`tikflow.emulator.webhooks`) and needs no fetch at all.
    """
    events = webhooks.sender(request)
    if events.enabled:
        _finish(world, publish)
        events.publish_progress(world, publish)


def _finish(world: World, publish: Publish) -> None:
    """The end of processing: the bytes (or the URL) decide between success and failure."""
    if publish.source == "PULL_FROM_URL":
        if not urlsplit(publish.video_url or "").path.lower().endswith(".mp4"):
            publish.status, publish.fail_reason = "FAILED", "video_pull_failed"
            return
        publish.downloaded_bytes = 4 * MB
    elif not publish.is_mp4:
        publish.status, publish.fail_reason = "FAILED", "file_format_check_failed"
        return
    if publish.inbox:
        publish.status = "SEND_TO_USER_INBOX"
        return
    video = Video(
        id=world.new_id(),
        author=ME,
        desc=publish.title,
        create_time=int(world.now()),
        hashtags=re.findall(r"#(\w+)", publish.title.lower()),
        plays=0,
        likes=0,
    )
    world.videos[video.id] = video
    publish.status, publish.post_id = "PUBLISH_COMPLETE", video.id
    publish.completed_at = world.now()


# -- the request pipeline ------------------------------------------------------------------------


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = {} if not raw else json_body(raw)
    except ValueError:
        raise ApiError(400, "invalid_params", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_params", "The request body must be a JSON object.")
    return body


Endpoint = Callable[[World, Request, str], Awaitable[Response]]
ROUTER: Router[Endpoint] = Router()
for _method, _path, _endpoint in (
    ("GET", "/v2/auth/authorize/", _authorize),
    ("POST", "/v2/oauth/token/", _token),
    ("GET", "/v2/user/info/", _user_info),
    ("POST", "/v2/video/list/", _video_list),
    ("POST", "/v2/post/publish/creator_info/query/", _creator_info),
    ("POST", "/v2/post/publish/video/init/", _init),
    ("POST", "/v2/post/publish/inbox/video/init/", _init),
    ("POST", "/v2/post/publish/status/fetch/", _status),
):
    ROUTER.add(_method, _path, _endpoint)
#: Endpoints without a bearer token: the consent page, the token endpoint and the upload URL.
_TOKENLESS = ("/v2/auth/authorize/", "/v2/oauth/token/")


def _rate_limited(retry_after: float | None) -> Response:
    headers = {} if retry_after is None else {"Retry-After": str(max(1, round(retry_after)))}
    body = {
        "data": {},
        "error": {
            "code": "rate_limit_exceeded",
            "message": "The API rate limit was exceeded. Please try again later.",
            "log_id": "",
        },
    }
    return JSONResponse(body, status_code=429, headers=headers)


def _server_error(status: int) -> Response:
    body = {
        "data": {},
        "error": {
            "code": "internal_error",
            "message": "Something went wrong. Please try again later.",
            "log_id": "",
        },
    }
    return JSONResponse(body, status_code=status)


def _session_expired(world: World, request: Request) -> None:
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if token in world.tiktok_access:
        world.tiktok_access[token] = (world.tiktok_access[token][0], world.now() - 1)


async def answer(world: World, quotas: Quotas, request: Request, path: str) -> Response:
    """Answer one TikTok request at `path` (below the `/tiktok` prefix)."""
    try:
        if path == "/video/" and request.method == "PUT":
            return await _upload(world, request)
        route = ROUTER.match(request.method, path)
        if route is not None and path in _TOKENLESS:
            return await route.handler(world, request, "")
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        held = world.tiktok_access.get(token)
        if held is None or held[1] <= world.now():
            raise ApiError(
                401, "access_token_invalid", "The access token is invalid or not found in the request."
            )
        if route is None:
            raise ApiError(404, "invalid_params", f"No endpoint {request.method} {path}.")
        limit = world.config.tiktok_per_minute.get(path, world.config.tiktok_default_per_minute)
        if limit > 0:
            verdict = quotas.sliding("tiktok", f"{token} {path}", limit, 60.0)
            if not verdict.allowed:
                # TikTok's 429 carries no reset header (only a fault rule can add one).
                return _rate_limited(None)
        return await route.handler(world, request, held[0])
    except ApiError as error:
        return _api_error(world, error)


def _template(method: str, path: str) -> str:
    return "/video/" if path == "/video/" else ROUTER.template(method, path)


PROVIDER = Provider(
    name="tiktok",
    prefix="/tiktok",
    answer=answer,
    template=_template,
    server_error=_server_error,
    rate_limited=_rate_limited,
    session_expired=_session_expired,
)
