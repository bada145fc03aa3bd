"""SocialAPI (social-api.ai) stand-in: connected accounts and posts, TikTok only.

`Authorization: Bearer <key>`; `X-Request-ID` is echoed (or made up) on every answer, and
errors are `{"error": {"code", "message"}, "request_id"}` with the namespaced codes of the
official SDK (`socialapi` on PyPI: `account.not_found`, `post.not_found`,
`resource.not_supported`, `account.reconnection_required`). TikTok through SocialAPI lists and
creates posts only: deleting a post or reading comments answers 501 `resource.not_supported`, and
so does `scheduled_at` on a TikTok post (SocialAPI's TikTok page: scheduling is not supported).

A post is created with `account_ids` (older docs) or `targets[{account_id, platform_data}]` and
`publish_now` (the SDK's shape); it is `publishing` at once and `published` after
`publish_polls` reads (or `failed` when it has no media: TikTok takes videos only). Posts carry
`created_at` and `updated_at` (the SDK requires both). `GET /accounts/{id}/creator-info` answers
what TikTok's creator info says. When the connected account's platform token lapses (a
`session_expired` fault), every posts request answers 403 `account.reconnection_required`
until the account is reconnected: `POST /accounts/connect` gives an `auth_url` on the sandbox's
TikTok consent page, whose `code` `POST /oauth/exchange` takes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tikflow.emulator.payloads import json_body
from tikflow.emulator.ratelimit import Quotas
from tikflow.emulator.routing import Provider, Router
from tikflow.emulator.state import ME, SOCIALAPI_ACCOUNT, SOCIALAPI_TIKTOK_CLIENT_KEY, World
from tikflow.emulator.tiktok import redeem_code

__all__ = ["PROVIDER"]

_REQUEST_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_STATUSES = ("draft", "scheduled", "publishing", "published", "partial", "failed", "cancelled")


class ApiError(Exception):
    """An error answer with SocialAPI's error object."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _account(world: World) -> dict[str, Any]:
    me = world.users[ME]
    return {
        "id": SOCIALAPI_ACCOUNT,
        "platform": "tiktok",
        "name": me.nickname,
        "username": me.unique_id,
        "status": "expired" if world.socialapi_expired else "active",
        "metadata": {
            "avatar_url": f"https://p16.tiktokcdn.example/{me.id}.jpeg",
            "follower_count": me.followers,
            "following_count": me.following,
            "video_count": len(world.videos_of(ME)),
            "likes_count": me.hearts,
        },
    }


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = {} if not raw else json_body(raw)
    except ValueError:
        raise ApiError(400, "validation.invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "validation.invalid_json", "The request body must be a JSON object.")
    return body


def _page(items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    """A page after the opaque `cursor` (the id of the last item of the previous page)."""
    try:
        limit = max(1, min(int(request.query_params.get("limit") or 25), 100))
    except ValueError:
        raise ApiError(400, "validation.invalid_limit", "limit must be a number.") from None
    cursor = request.query_params.get("cursor")
    start = 0
    if cursor:
        ids = [i["id"] for i in items]
        if cursor not in ids:
            raise ApiError(400, "validation.invalid_cursor", "cursor is not valid.")
        start = ids.index(cursor) + 1
    page = items[start : start + limit]
    more = start + len(page) < len(items)
    return {"data": page, "pagination": {"has_more": more, "next_cursor": page[-1]["id"] if more else None}}


async def _accounts(world: World, request: Request, params: dict[str, str]) -> Response:
    platform = request.query_params.get("platform")
    accounts = [a for a in [_account(world)] if not platform or a["platform"] == platform]
    return JSONResponse(_page(accounts, request))


async def _connect(world: World, request: Request, params: dict[str, str]) -> Response:
    body = await _json(request)
    if body.get("platform") != "tiktok":
        raise ApiError(400, "validation.unsupported_platform", "The sandbox connects tiktok accounts only.")
    redirect = (body.get("metadata") or {}).get("redirect_uri")
    if not redirect:
        raise ApiError(400, "validation.missing_field", "metadata.redirect_uri is required.")
    state = world.token("", 32).lower()
    world.socialapi_states[state] = str(redirect)
    query = urlencode(
        {
            "client_key": SOCIALAPI_TIKTOK_CLIENT_KEY,
            "scope": "user.info.basic,video.publish,video.upload",
            "response_type": "code",
            "redirect_uri": redirect,
            "state": state,
        }
    )
    return JSONResponse(
        {"auth_url": f"{str(request.base_url).rstrip('/')}/tiktok/v2/auth/authorize/?{query}", "state": state}
    )


async def _exchange(world: World, request: Request, params: dict[str, str]) -> Response:
    body = await _json(request)
    state = str((body.get("metadata") or {}).get("state") or "")
    if world.socialapi_states.pop(state, None) is None:
        raise ApiError(400, "oauth.invalid_state", "state is unknown or was already used.")
    if redeem_code(world, SOCIALAPI_TIKTOK_CLIENT_KEY, str(body.get("code") or "")) is None:
        raise ApiError(400, "oauth.invalid_code", "The authorization code is invalid or expired.")
    world.socialapi_expired = False
    return JSONResponse(_account(world))


def _check_session(world: World) -> None:
    if world.socialapi_expired:
        raise ApiError(
            403,
            "account.reconnection_required",
            "The connected account's TikTok authorization expired: reconnect the account.",
        )


def _targets(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The post's targets, from `targets` (the SDK's shape) or `account_ids` (older docs)."""
    targets = body.get("targets")
    if targets is not None:
        if not isinstance(targets, list) or not all(
            isinstance(t, dict) and isinstance(t.get("account_id"), str) for t in targets
        ):
            raise ApiError(400, "validation.field_required", "targets[].account_id is required.")
        return targets
    account_ids = body.get("account_ids")
    if not isinstance(account_ids, list) or not account_ids:
        raise ApiError(400, "validation.field_required", "account_ids or targets is required.")
    return [{"account_id": a, "platform_data": body.get("platform_data") or {}} for a in account_ids]


#: What creator info offers; a TikTok post's `platform_data.tiktok.privacy_level` must be one of
#: them (SocialAPI's TikTok page lists the field, as TikTok's own Direct Post does).
PRIVACY_LEVELS = ("PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY")


def _check_privacy(target: dict[str, Any]) -> None:
    tiktok = (target.get("platform_data") or {}).get("tiktok")
    level = tiktok.get("privacy_level") if isinstance(tiktok, dict) else None
    if level is not None and level not in PRIVACY_LEVELS:
        raise ApiError(
            400,
            "validation.invalid_value",
            f"platform_data.tiktok.privacy_level must be one of {', '.join(PRIVACY_LEVELS)}.",
        )


async def _creator_info(world: World, request: Request, params: dict[str, str]) -> Response:
    if params["id"] != SOCIALAPI_ACCOUNT:
        raise ApiError(404, "account.not_found", f"Account not found: {params['id']}")
    _check_session(world)
    return JSONResponse(
        {
            "platform": "tiktok",
            "nickname": world.users[ME].nickname,
            "avatar_url": f"https://p16.tiktokcdn.example/{world.users[ME].id}.jpeg",
            "can_post": True,
            "max_video_duration_sec": 600,
            "privacy_level_options": list(PRIVACY_LEVELS),
            "interaction_settings": {"comment_disabled": False, "duet_disabled": False},
        }
    )


async def _create_post(world: World, request: Request, params: dict[str, str]) -> Response:
    _check_session(world)
    body = await _json(request)
    targets = _targets(body)
    for target in targets:
        _check_privacy(target)
    account_ids = [t["account_id"] for t in targets]
    unknown = [a for a in account_ids if a != SOCIALAPI_ACCOUNT]
    if unknown:
        raise ApiError(404, "account.not_found", f"Account not found: {unknown[0]}")
    media = body.get("media_ids") or []
    if not body.get("text") and not media:
        raise ApiError(400, "validation.field_required", "text or media_ids is required.")
    if body.get("scheduled_at"):
        # Every sandbox account is a TikTok one, and SocialAPI cannot schedule TikTok posts.
        raise ApiError(501, "resource.not_supported", "Scheduling is not supported for TikTok.")
    now = world.now()
    status = "publishing"
    platform_data = targets[0].get("platform_data") or {}
    post = {
        "id": "p_" + world.token("", 24),
        "status": status,
        "text": body.get("text", ""),
        "media_ids": media,
        "platform_data": platform_data,
        "scheduled_at": None,
        "created_at": _iso(now),
        "updated_at": _iso(now),
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
            for a in account_ids
        ],
    }
    world.socialapi_posts[post["id"]] = post
    return JSONResponse(post, status_code=201)


def _progress(world: World, post: dict[str, Any]) -> None:
    """What happened to a post since the last read."""
    now = world.now()
    if post["status"] != "publishing":
        return
    world.post_reads[post["id"]] += 1
    if world.post_reads[post["id"]] < world.config.publish_polls:
        return
    for target in post["targets"]:
        if post["media_ids"]:
            video_id = world.new_id()
            target.update(
                status="published",
                platform_post_id=video_id,
                permalink=f"https://www.tiktok.com/@{ME}/video/{video_id}",
                published_at=_iso(now),
            )
        else:
            target.update(
                status="failed", error={"code": "media_required", "message": "TikTok posts need a video."}
            )
    post["status"] = "published" if post["media_ids"] else "failed"
    post["updated_at"] = _iso(now)


def _post(world: World, params: dict[str, str]) -> dict[str, Any]:
    post = world.socialapi_posts.get(params["id"])
    if post is None:
        raise ApiError(404, "post.not_found", f"Post not found: {params['id']}")
    return post


async def _get_post(world: World, request: Request, params: dict[str, str]) -> Response:
    _check_session(world)
    post = _post(world, params)
    _progress(world, post)
    return JSONResponse(post)


async def _list_posts(world: World, request: Request, params: dict[str, str]) -> Response:
    _check_session(world)
    status, platform = request.query_params.get("status"), request.query_params.get("platform")
    if status and status not in _STATUSES:
        raise ApiError(400, "validation.invalid_status", f"status must be one of {', '.join(_STATUSES)}.")
    posts = sorted(world.socialapi_posts.values(), key=lambda p: str(p["created_at"]), reverse=True)
    posts = [
        p
        for p in posts
        if (not status or p["status"] == status)
        and (not platform or any(t["platform"] == platform for t in p["targets"]))
    ]
    return JSONResponse(_page(posts, request))


async def _not_supported(world: World, request: Request, params: dict[str, str]) -> Response:
    _post(world, params)
    raise ApiError(501, "resource.not_supported", "TikTok does not support this through its API.")


Endpoint = Callable[[World, Request, dict[str, str]], Awaitable[Response]]
ROUTER: Router[Endpoint] = Router()
for _method, _path, _endpoint in (
    ("GET", "/accounts", _accounts),
    ("GET", "/accounts/{id}/creator-info", _creator_info),
    ("POST", "/accounts/connect", _connect),
    ("POST", "/oauth/exchange", _exchange),
    ("POST", "/posts", _create_post),
    ("GET", "/posts", _list_posts),
    ("GET", "/posts/{id}", _get_post),
    ("DELETE", "/posts/{id}", _not_supported),
    ("GET", "/posts/{id}/comments", _not_supported),
):
    ROUTER.add(_method, _path, _endpoint)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # The request id is added by `answer`, which knows it.
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _rate_limited(retry_after: float | None) -> Response:
    headers = {} if retry_after is None else {"Retry-After": str(max(1, round(retry_after)))}
    return _error(429, "rate_limit_exceeded", "Your plan's request quota is exhausted.", headers)


def _server_error(status: int) -> Response:
    return _error(status, "internal_error", "Something went wrong on our side. Please retry.")


def _session_expired(world: World, request: Request) -> None:
    world.socialapi_expired = True


async def answer(world: World, quotas: Quotas, request: Request, path: str) -> Response:
    """Answer one SocialAPI request at `path` (below the `/socialapi/v1` prefix)."""
    given = request.headers.get("x-request-id", "")
    request_id = given if _REQUEST_ID.match(given) else "req_" + world.token("", 20)
    try:
        if given and given != request_id:
            raise ApiError(
                400, "validation.invalid_request_id", "X-Request-ID must match ^[a-zA-Z0-9_-]{1,64}$."
            )
        key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if key not in world.bearer_keys["socialapi"]:
            raise ApiError(401, "auth.unauthorized", "Invalid or missing API key.")
        limit = world.config.socialapi_per_minute
        if limit > 0:
            verdict = quotas.sliding("socialapi", key, limit, 60.0)
            if not verdict.allowed:
                response = _rate_limited(verdict.reset_s)
                response.headers["X-Request-ID"] = request_id
                return response
        route = ROUTER.match(request.method, path)
        if route is None:
            raise ApiError(404, "resource.not_found", f"No endpoint {request.method} {path}.")
        response = await route.handler(world, request, route.params)
    except ApiError as error:
        response = JSONResponse(
            {"error": {"code": error.code, "message": error.message}, "request_id": request_id},
            status_code=error.status,
        )
    response.headers["X-Request-ID"] = request_id
    return response


PROVIDER = Provider(
    name="socialapi",
    prefix="/socialapi/v1",
    answer=answer,
    template=ROUTER.template,
    server_error=_server_error,
    rate_limited=_rate_limited,
    session_expired=_session_expired,
    echoed_headers=("x-request-id",),
)
