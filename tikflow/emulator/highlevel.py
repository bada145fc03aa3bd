"""HighLevel (LeadConnector) Social Planner stand-in.

`Authorization: Bearer <token>` and `Version: 2021-07-28` on every request (400 without it), the
five rate-limit headers on every answer (burst 100 per 10 s and 200,000 per day per token), the
docs' example location and TikTok account (seed 000), and NestJS-style error bodies.

Posts are created `in_progress` (or `scheduled` for a future `scheduleDate`, or `draft`) and
move on later reads: after `publish_polls` reads an in-progress post is `published`, or
`failed` with an error when it has no video (TikTok takes videos only). A scheduled post starts
its progress when its date has passed on the sandbox clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tikflow.emulator.payloads import json_body
from tikflow.emulator.ratelimit import Quotas
from tikflow.emulator.routing import Provider, Router
from tikflow.emulator.state import HIGHLEVEL_ACCOUNT, HIGHLEVEL_LOCATION, ME, World

__all__ = ["PROVIDER"]

VERSION = "2021-07-28"
#: Every `Version` HighLevel's API versioning page lists as supported; the official SDKs send
#: `v3` by default.
VERSIONS = ("v3", "2023-02-21", "2021-07-28", "2021-04-15", "legacy")
POST_TYPES = ("post", "story", "reel")
_LIST_TYPES = (
    "all",
    "recent",
    "scheduled",
    "draft",
    "failed",
    "in_review",
    "published",
    "in_progress",
    "deleted",
)


class HttpError(Exception):
    """An error answer in HighLevel's NestJS shape."""

    def __init__(self, status: int, message: str | list[str], error: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.error = status, message, error

    def response(self) -> JSONResponse:
        """The error body."""
        body: dict[str, Any] = {"statusCode": self.status, "message": self.message}
        if self.error:
            body["error"] = self.error
        return JSONResponse(body, status_code=self.status)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise HttpError(
            422, [f"{value} is not a valid ISO 8601 date string"], "Unprocessable Entity"
        ) from None


def _ok(message: str, results: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(
        {"success": True, "statusCode": status, "message": message, "results": results}, status_code=status
    )


def _account() -> dict[str, Any]:
    return {
        "id": HIGHLEVEL_ACCOUNT,
        "oauthId": "w37swmmLbA02zgqKPpxITe",
        "profileId": "w37swmmLbA02zgqKPpxITe",
        "name": "Tikflow Demo",
        "platform": "tiktok",
        "type": "profile",
        "avatar": "https://p16-sign.tiktokcdn.example/avatar.jpeg",
        "expire": "2099-01-01T00:00:00.000Z",
        "isExpired": False,
        "meta": {"username": ME},
    }


async def _accounts(world: World, request: Request, params: dict[str, str]) -> Response:
    return _ok("Fetched Accounts", {"accounts": [_account()], "groups": []})


async def _tiktok_profile(world: World, request: Request, params: dict[str, str]) -> Response:
    if params["accountId"] != HIGHLEVEL_ACCOUNT:
        raise HttpError(404, "Account not found", "Not Found")
    profile = {
        "id": HIGHLEVEL_ACCOUNT,
        "name": "Tikflow Demo",
        "username": ME,
        "avatar": HIGHLEVEL_ACCOUNT,
        "verified": False,
        "isConnected": True,
        "type": "BUSINESS",
    }
    return _ok("Fetched Tiktok Account", {"profile": [profile]})


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = {} if not raw else json_body(raw)
    except ValueError:
        raise HttpError(400, "Unexpected token in JSON body", "Bad Request") from None
    if not isinstance(body, dict):
        raise HttpError(400, "Body must be a JSON object", "Bad Request")
    return body


PRIVACY_LEVELS = ("PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY")


def _validate_post(body: dict[str, Any]) -> None:
    problems = []
    ids = body.get("accountIds")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        problems.append("accountIds should not be empty")
    if not isinstance(body.get("userId"), str) or not body.get("userId"):
        problems.append("userId must be a string")
    if body.get("type") not in POST_TYPES:
        problems.append("type must be one of the following values: post, story, reel")
    media = body.get("media", [])
    if not isinstance(media, list) or not all(isinstance(m, dict) and m.get("url") for m in media):
        problems.append("each value in media must have a url")
    tiktok = body.get("tiktokPostDetails")
    if isinstance(tiktok, dict):
        # The v3 schema: TikTok details name their privacy level; SELF_ONLY cannot be disclosed.
        details = tiktok
        if details.get("privacyLevel") not in PRIVACY_LEVELS:
            problems.append(f"tiktokPostDetails.privacyLevel must be one of {', '.join(PRIVACY_LEVELS)}")
        elif details.get("privacyLevel") == "SELF_ONLY" and details.get("videoDisclosure"):
            problems.append("tiktokPostDetails.videoDisclosure must be false for SELF_ONLY")
    if body.get("status") == "scheduled" and not body.get("scheduleDate"):
        problems.append("scheduleDate is required when status is scheduled")
    if problems:
        raise HttpError(422, problems, "Unprocessable Entity")
    unknown = [i for i in body["accountIds"] if i != HIGHLEVEL_ACCOUNT]
    if unknown:
        raise HttpError(400, f"Social accounts not found: {', '.join(unknown)}", "Bad Request")


async def _create_post(world: World, request: Request, params: dict[str, str]) -> Response:
    body = await _json(request)
    _validate_post(body)
    now = world.now()
    schedule = _epoch(body.get("scheduleDate"))
    if body.get("status") == "draft":
        status = "draft"
    elif schedule is not None and schedule > now:
        status = "scheduled"
    else:
        status = "in_progress"
    post = {
        "_id": world.token("", 24).lower(),
        "locationId": params["locationId"],
        "accountId": body["accountIds"][0],
        "accountIds": body["accountIds"],
        "platform": "tiktok",
        "type": body["type"],
        "userId": body["userId"],
        "summary": body.get("summary", ""),
        "media": body.get("media", []),
        "tags": body.get("tags", []),
        "tiktokPostDetails": body.get("tiktokPostDetails"),
        "status": status,
        "error": "",
        "postId": None,
        "scheduleDate": _iso(schedule) if schedule is not None else None,
        "displayDate": _iso(schedule if schedule is not None else now),
        "publishedAt": None,
        "createdAt": _iso(now),
        "updatedAt": _iso(now),
    }
    world.highlevel_posts[post["_id"]] = post
    return _ok("Created Post", {"post": post}, status=201)


def _has_video(post: dict[str, Any]) -> bool:
    return any(
        str(m.get("type", "")).startswith("video")
        or str(m.get("url", "")).lower().endswith((".mp4", ".mov", ".webm"))
        for m in post["media"]
    )


def _progress(world: World, post: dict[str, Any]) -> None:
    """What happened to a post since the last read."""
    now = world.now()
    due = _epoch(post["scheduleDate"])
    if post["status"] == "scheduled" and due is not None and due <= now:
        post["status"] = "in_progress"
    if post["status"] != "in_progress":
        return
    world.post_reads[post["_id"]] += 1
    if world.post_reads[post["_id"]] < world.config.publish_polls:
        return
    if _has_video(post):
        post.update(status="published", postId=world.new_id(), publishedAt=_iso(now))
    else:
        post.update(status="failed", error="TikTok only accepts video posts: add a video to media.")
    post["updatedAt"] = _iso(now)


def _post(world: World, params: dict[str, str]) -> dict[str, Any]:
    post = world.highlevel_posts.get(params["id"])
    if post is None or post["locationId"] != params["locationId"]:
        raise HttpError(404, "Post not found", "Not Found")
    return post


async def _get_post(world: World, request: Request, params: dict[str, str]) -> Response:
    post = _post(world, params)
    _progress(world, post)
    return _ok("Fetched Post", {"post": post})


async def _delete_post(world: World, request: Request, params: dict[str, str]) -> Response:
    post = _post(world, params)
    post.update(status="deleted", updatedAt=_iso(world.now()))
    return _ok("Post deleted", {"post": post})


async def _list_posts(world: World, request: Request, params: dict[str, str]) -> Response:
    body = await _json(request)
    kind = body.get("type", "all")
    if kind not in _LIST_TYPES:
        raise HttpError(
            422,
            [f"type must be one of the following values: {', '.join(_LIST_TYPES)}"],
            "Unprocessable Entity",
        )
    accounts = body.get("accounts") or []
    wanted = set(accounts.split(",") if isinstance(accounts, str) else accounts) - {""}
    since, until = _epoch(body.get("fromDate")), _epoch(body.get("toDate"))
    posts = []
    for post in world.highlevel_posts.values():
        shown = _epoch(post["displayDate"]) or 0.0
        if (
            post["locationId"] == params["locationId"]
            and (kind in ("all", "recent") or post["status"] == kind)
            and (kind == "deleted" or post["status"] != "deleted")
            and (not wanted or wanted & set(post["accountIds"]))
            and (since is None or shown >= since)
            and (until is None or shown <= until)
            and (not body.get("postType") or post["type"] == body["postType"])
        ):
            posts.append(post)
    posts.sort(key=lambda p: str(p["displayDate"]), reverse=True)
    try:
        skip, limit = int(body.get("skip") or 0), int(body.get("limit") or 10)
    except ValueError:
        raise HttpError(422, ["skip and limit must be numeric strings"], "Unprocessable Entity") from None
    return _ok("Posts fetched", {"posts": posts[skip : skip + limit], "count": len(posts)}, status=201)


Endpoint = Callable[[World, Request, dict[str, str]], Awaitable[Response]]
ROUTER: Router[Endpoint] = Router()
for _method, _path, _endpoint in (
    ("GET", "/social-media-posting/{locationId}/accounts", _accounts),
    ("GET", "/social-media-posting/oauth/{locationId}/tiktok/accounts/{accountId}", _tiktok_profile),
    ("POST", "/social-media-posting/{locationId}/posts", _create_post),
    ("POST", "/social-media-posting/{locationId}/posts/list", _list_posts),
    ("GET", "/social-media-posting/{locationId}/posts/{id}", _get_post),
    ("DELETE", "/social-media-posting/{locationId}/posts/{id}", _delete_post),
):
    ROUTER.add(_method, _path, _endpoint)


def _rate_limited(retry_after: float | None) -> Response:
    headers = {} if retry_after is None else {"Retry-After": str(max(1, round(retry_after)))}
    return JSONResponse(
        {"statusCode": 429, "message": "Too Many Requests", "error": "Too Many Requests"},
        status_code=429,
        headers=headers,
    )


def _server_error(status: int) -> Response:
    messages = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
    return HttpError(status, messages.get(status, "Internal Server Error")).response()


async def answer(world: World, quotas: Quotas, request: Request, path: str) -> Response:
    """Answer one HighLevel request at `path` (below the `/highlevel` prefix)."""
    config = world.config
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    # Both quotas count every request they let through; the headers report what is left.
    burst = quotas.sliding("highlevel", token, config.highlevel_burst, config.highlevel_burst_window_s)
    daily = quotas.daily("highlevel", token, config.highlevel_daily)
    headers = {
        "X-RateLimit-Limit-Daily": str(config.highlevel_daily),
        "X-RateLimit-Daily-Remaining": str(daily.remaining),
        "X-RateLimit-Interval-Milliseconds": str(int(config.highlevel_burst_window_s * 1000)),
        "X-RateLimit-Max": str(config.highlevel_burst),
        "X-RateLimit-Remaining": str(burst.remaining),
    }
    if not (burst.allowed and daily.allowed):
        # HighLevel documents no reset header: the five headers are all a client gets.
        refused = _rate_limited(None)
        refused.headers.update(headers)
        return refused
    try:
        if token not in world.bearer_keys["highlevel"]:
            raise HttpError(401, "Invalid token: access token is invalid", "Unauthorized")
        if request.headers.get("version") not in VERSIONS:
            raise HttpError(400, f"Version header is required: one of {', '.join(VERSIONS)}", "Bad Request")
        route = ROUTER.match(request.method, path)
        if route is None:
            raise HttpError(404, f"Cannot {request.method} {path}", "Not Found")
        location = route.params.get("locationId")
        if location != HIGHLEVEL_LOCATION:
            raise HttpError(403, "The token does not have access to this location.", "Forbidden")
        response = await route.handler(world, request, route.params)
    except HttpError as error:
        response = error.response()
    response.headers.update(headers)
    return response


PROVIDER = Provider(
    name="highlevel",
    prefix="/highlevel",
    answer=answer,
    template=ROUTER.template,
    server_error=_server_error,
    rate_limited=_rate_limited,
)
