"""TikAPI stand-in: `X-API-KEY` (+ `X-ACCOUNT-KEY` on /user/*, /creator/*), real bodies and cursors.

Cursor JSON types follow the official client's checks: string cursors for posts and hashtags,
number cursors for comment lists, number `nextCursor` for followers and conversations.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from tikflow.sandbox.faults import Quotas, rate_limited
from tikflow.sandbox.state import Comment, User, Video, World

__all__ = ["handle"]

SESSION_EXPIRED = {
    "status": "error",
    "message": "Account session expired, please ask user to re-login and re-authorize.",
    "statusCode": 8,
}


def _ok(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"status": "success", "statusCode": 0, "status_code": 0, **body})


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message, **extra}, status_code=status)


def _user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "uniqueId": user.unique_id,
        "nickname": user.nickname,
        "secUid": user.sec_uid,
        "verified": user.followers > 1_000_000,
        "privateAccount": False,
        "region": user.region,
    }


def _stats_json(world: World, user: User) -> dict[str, Any]:
    videos = sum(1 for v in world.videos.values() if v.author == user.unique_id)
    return {
        "followerCount": user.followers,
        "followingCount": user.following,
        "heart": user.hearts,
        "heartCount": user.hearts,
        "videoCount": videos,
        "diggCount": user.hearts // 3,
    }


def _video_json(world: World, video: Video) -> dict[str, Any]:
    author = world.users[video.author]
    comments = sum(1 for c in world.comments.values() if c.aweme_id == video.id and not c.deleted)
    return {
        "id": video.id,
        "desc": video.desc,
        "createTime": video.create_time,
        "author": _user_json(author),
        "stats": {
            "diggCount": video.likes,
            "playCount": video.plays,
            "commentCount": comments,
            "shareCount": video.likes // 10,
        },
        "video": {"duration": 15},
        "challenges": [{"title": t} for t in video.hashtags],
    }


def _comment_json(world: World, comment: Comment) -> dict[str, Any]:
    user = world.users[comment.author]
    replies = sum(1 for c in world.comments.values() if c.reply_to == comment.cid and not c.deleted)
    return {
        "cid": comment.cid,
        "text": comment.text,
        "create_time": comment.create_time,
        "digg_count": len(comment.liked_by),
        "reply_comment_total": replies,
        "aweme_id": comment.aweme_id,
        "reply_id": comment.reply_to or "0",
        "user": {"uid": user.id, "unique_id": user.unique_id, "nickname": user.nickname},
    }


def _page(items: list[Any], cursor: Any, count: Any) -> tuple[list[Any], int, bool]:
    start = int(cursor or 0)
    size = max(1, min(int(count or 30), 30))
    chunk = items[start : start + size]
    return chunk, start + len(chunk), start + len(chunk) < len(items)


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = {}
        if isinstance(body, dict):
            params.update(body)
    return params


def _missing(params: dict[str, Any], *names: str) -> JSONResponse | None:
    absent = [n for n in names if params.get(n) in (None, "")]
    if absent:
        return _error(400, "Missing fields.", fields={n: "This field is required." for n in absent})
    return None


async def handle(world: World, quotas: Quotas, request: Request, path: str) -> Response:
    """Answer one TikAPI request at `path` (below the `/tikapi` prefix)."""
    if path == "/account/authorize":
        return _authorize(world, request)
    api_key = request.headers.get("x-api-key", "")
    if api_key not in world.tikapi_api_keys:
        return _error(401, "A valid API Key is required.")
    config = world.config
    if config.tikapi_per_second > 0 or config.tikapi_daily > 0:
        headers = (
            {"Retry-After": str(int(config.tikapi_retry_after))}
            if config.tikapi_retry_after is not None
            else {}
        )
        if config.tikapi_per_second > 0:
            allowed, _, _ = quotas.take("tikapi", api_key, config.tikapi_per_second, 1.0)
            if not allowed:
                return rate_limited("tikapi", headers)
        if config.tikapi_daily > 0:
            allowed, _, _ = quotas.take("tikapi", api_key + ":day", config.tikapi_daily, 86400.0)
            if not allowed:
                return rate_limited("tikapi", headers)
    me: User | None = None
    if path.startswith(("/user/", "/creator/")):
        account_key = request.headers.get("x-account-key", "")
        if account_key in world.expired_account_keys:
            return JSONResponse(SESSION_EXPIRED, status_code=428)
        username = world.tikapi_account_keys.get(account_key)
        if username is None:
            return _error(401, "A valid Account Key is required.")
        me = world.users[username]
    params = await _params(request)
    route = ROUTES.get((request.method, path))
    if route is None and path.startswith("/creator/analytics/"):
        route = _analytics
    if route is None:
        return _error(404, f"No route for {request.method} {path}")
    return await route(world, params, me)


def _authorize(world: World, request: Request) -> Response:
    """The consent screen, auto-approved: a new account key for the same TikTok user."""
    redirect = request.query_params.get("redirect_uri")
    if not redirect:
        return _error(400, "Missing fields.", fields={"redirect_uri": "This field is required."})
    username = request.query_params.get("username", "tikflow_demo")
    key = world.token("AccountKey", 30)
    world.tikapi_account_keys[key] = username
    query = urlencode(
        {
            "access_token": key,
            "scope": request.query_params.get("scope", "view_profile"),
            "state": request.query_params.get("state", ""),
        }
    )
    return RedirectResponse(f"{redirect}{'&' if '?' in redirect else '?'}{query}", status_code=302)


Route = Callable[[World, dict[str, Any], User | None], Awaitable[Response]]


async def _check(world: World, p: dict[str, Any], me: User | None) -> Response:
    user = world.users.get(str(p.get("username", ""))) or next(
        (u for u in world.users.values() if u.id == str(p.get("user_id", ""))), None
    )
    if user is None:
        return _error(403, "User doesn't exist", statusCode=10202)
    return _ok({"userInfo": {"user": _user_json(user), "stats": _stats_json(world, user)}})


async def _user_info(world: World, p: dict[str, Any], me: User | None) -> Response:
    assert me is not None
    user = world.users.get(str(p.get("username") or me.unique_id), me)
    return _ok({"userInfo": {"user": _user_json(user), "stats": _stats_json(world, user)}})


def _videos_page(world: World, videos: list[Video], p: dict[str, Any]) -> dict[str, Any]:
    videos = sorted(videos, key=lambda v: (-v.create_time, v.id))
    chunk, nxt, more = _page(videos, p.get("cursor"), p.get("count"))
    return {"itemList": [_video_json(world, v) for v in chunk], "cursor": str(nxt), "hasMore": more}


async def _posts(world: World, p: dict[str, Any], me: User | None) -> Response:
    sec_uid = p.get("secUid")
    owner = next((u for u in world.users.values() if u.sec_uid == sec_uid), None) if sec_uid else me
    if owner is None:
        return _missing(p, "secUid") or _error(403, "User doesn't exist", statusCode=10202)
    return _ok(_videos_page(world, [v for v in world.videos.values() if v.author == owner.unique_id], p))


async def _hashtag(world: World, p: dict[str, Any], me: User | None) -> Response:
    name, tag_id = p.get("name"), p.get("id")
    tag = None
    if tag_id:
        tag = next((t for t in world.hashtags.values() if t["id"] == str(tag_id)), None)
    elif name:
        tag = world.hashtags.get(str(name).lstrip("#").lower())
    else:
        return _error(400, "Missing fields.", fields={"id": "id or name is required."})
    if tag is None:
        return _error(403, "Hashtag doesn't exist", statusCode=10205)
    videos = [v for v in world.videos.values() if tag["title"] in v.hashtags]
    world.arrive([v.id for v in videos])
    body = {
        "challengeInfo": {
            "challenge": tag,
            "stats": {"videoCount": len(videos), "viewCount": sum(v.plays for v in videos)},
        }
    }
    return _ok({**body, **_videos_page(world, videos, p)})


async def _video(world: World, p: dict[str, Any], me: User | None) -> Response:
    video = world.videos.get(str(p.get("id", "")))
    if video is None:
        return _missing(p, "id") or _error(403, "Video doesn't exist", statusCode=10204)
    return _ok({"itemInfo": {"itemStruct": _video_json(world, video)}})


async def _explore(world: World, p: dict[str, Any], me: User | None) -> Response:
    videos = sorted(world.videos.values(), key=lambda v: -v.plays)[: int(p.get("count") or 30)]
    return _ok({"itemList": [_video_json(world, v) for v in videos]})


async def _search(world: World, p: dict[str, Any], me: User | None) -> Response:
    query = str(p.get("query", "")).lower()
    videos = [v for v in world.videos.values() if query in v.desc.lower()]
    chunk, nxt, more = _page(videos, p.get("nextCursor"), 20)
    return _ok({"item_list": [_video_json(world, v) for v in chunk], "nextCursor": nxt, "has_more": more})


async def _comments(
    world: World, p: dict[str, Any], me: User | None, parent_key: str | None = None
) -> Response:
    problem = _missing(p, "media_id", *([parent_key] if parent_key else []))
    if problem:
        return problem
    video_id = str(p["media_id"])
    if video_id not in world.videos:
        return _error(403, "Video doesn't exist", statusCode=10204)
    world.arrive([video_id])
    parent = str(p[parent_key]) if parent_key else None
    items = world.visible_comments(video_id, parent)
    chunk, nxt, more = _page(items, p.get("cursor"), p.get("count"))
    return _ok(
        {
            "comments": [_comment_json(world, c) for c in chunk],
            "cursor": nxt,
            "has_more": 1 if more else 0,
            "total": len(items),
        }
    )


async def _replies(world: World, p: dict[str, Any], me: User | None) -> Response:
    return await _comments(world, p, me, parent_key="comment_id")


async def _post_comment(world: World, p: dict[str, Any], me: User | None) -> Response:
    assert me is not None
    problem = _missing(p, "media_id", "text")
    if problem:
        return problem
    video_id = str(p["media_id"])
    if video_id not in world.videos:
        return _error(403, "Video doesn't exist", statusCode=10204)
    parent = str(p["reply_comment_id"]) if p.get("reply_comment_id") else None
    if parent is not None and (parent not in world.comments or world.comments[parent].deleted):
        return _error(403, "Comment doesn't exist", statusCode=10224)
    comment = world.add_comment(video_id, text=str(p["text"]), author=me.unique_id, reply_to=parent)
    return _ok({"comment": _comment_json(world, comment)})


async def _like_comment(world: World, p: dict[str, Any], me: User | None) -> Response:
    assert me is not None
    problem = _missing(p, "media_id", "comment_id")
    if problem:
        return problem
    comment = world.comments.get(str(p["comment_id"]))
    if comment is None or comment.deleted:
        return _error(403, "Comment doesn't exist", statusCode=10224)
    if me.unique_id not in comment.liked_by:
        comment.liked_by.append(me.unique_id)
    return _ok({"is_digg": 1})


async def _delete_comment(world: World, p: dict[str, Any], me: User | None) -> Response:
    assert me is not None
    problem = _missing(p, "comment_id")
    if problem:
        return problem
    comment = world.comments.get(str(p["comment_id"]))
    if comment is None or comment.deleted:
        return _error(403, "Comment doesn't exist", statusCode=10224)
    video = world.videos[comment.aweme_id]
    if me.unique_id not in (comment.author, video.author):
        return _error(403, "You can't delete this comment", statusCode=10225)
    comment.deleted = True
    return _ok({})


async def _like_video(world: World, p: dict[str, Any], me: User | None) -> Response:
    assert me is not None
    video = world.videos.get(str(p.get("media_id", "")))
    if video is None:
        return _missing(p, "media_id") or _error(403, "Video doesn't exist", statusCode=10204)
    if me.unique_id not in video.liked_by:
        video.liked_by.append(me.unique_id)
        video.likes += 1
    return _ok({"is_digg": 1})


async def _followers(world: World, p: dict[str, Any], me: User | None) -> Response:
    fans = sorted(u for u in world.users if u not in ("lilyachty", "stoolpresidente"))
    chunk, nxt, more = _page(fans, p.get("nextCursor"), p.get("count"))
    return _ok(
        {
            "followers": [_user_json(world.users[u]) for u in chunk],
            "nextCursor": nxt,
            "hasMore": more,
            "total": len(fans),
        }
    )


def _conversation_json(world: World, conv: Any) -> dict[str, Any]:
    peer = world.users[conv.peer]
    return {
        "conversation_id": conv.conversation_id,
        "conversation_short_id": conv.short_id,
        "ticket": conv.ticket,
        "user_id": peer.id,
        "participants": [_user_json(peer)],
    }


async def _conversations(
    world: World, p: dict[str, Any], me: User | None, requests: bool = False
) -> Response:
    convs = [c for c in world.conversations.values() if c.request == requests]
    chunk, nxt, more = _page(convs, p.get("nextCursor"), 20)
    return _ok(
        {"conversations": [_conversation_json(world, c) for c in chunk], "nextCursor": nxt, "hasMore": more}
    )


async def _requests(world: World, p: dict[str, Any], me: User | None) -> Response:
    return await _conversations(world, p, me, requests=True)


def _conv(world: World, p: dict[str, Any]) -> Any:
    return world.conversations.get(str(p.get("conversation_id", "")))


async def _messages(world: World, p: dict[str, Any], me: User | None) -> Response:
    problem = _missing(p, "conversation_id", "conversation_short_id")
    if problem:
        return problem
    conv = _conv(world, p)
    if conv is None:
        return _error(403, "Conversation doesn't exist", statusCode=10101)
    messages = sorted(
        (m for m in world.messages if m.conversation_id == conv.conversation_id),
        key=lambda m: (-m.create_time, m.id),
    )
    chunk, nxt, more = _page(messages, p.get("nextCursor"), p.get("limit") or 20)
    items = [
        {
            "server_message_id": m.id,
            "sender": world.users[m.sender].id,
            "create_time": m.create_time,
            "content": json.dumps({"text": m.text}),
        }
        for m in chunk
    ]
    return _ok({"messages": items, "nextCursor": str(nxt) if more else "", "hasMore": more})


async def _send_message(world: World, p: dict[str, Any], me: User | None) -> Response:
    assert me is not None
    problem = _missing(p, "text", "conversation_id", "conversation_short_id", "ticket")
    if problem:
        return problem
    conv = _conv(world, p)
    if conv is None or conv.ticket != p.get("ticket"):
        return _error(403, "Conversation doesn't exist", statusCode=10101)
    from tikflow.sandbox.state import Message

    msg = Message(world.new_id(), conv.conversation_id, me.unique_id, str(p["text"]), int(world.now()))
    world.messages.append(msg)
    return _ok({"message": {"server_message_id": msg.id}})


async def _accept(world: World, p: dict[str, Any], me: User | None) -> Response:
    problem = _missing(p, "conversation_id", "conversation_short_id", "user_id")
    if problem:
        return problem
    conv = _conv(world, p)
    if conv is None or not conv.request:
        return _error(403, "Request doesn't exist", statusCode=10101)
    conv.request = False
    return _ok({})


async def _notifications(world: World, p: dict[str, Any], me: User | None) -> Response:
    assert me is not None
    mine = [
        c
        for c in world.comments.values()
        if world.videos[c.aweme_id].author == me.unique_id and c.author != me.unique_id
    ]
    notices = [
        {"nid": c.cid, "type": 31, "create_time": c.create_time, "comment": _comment_json(world, c)}
        for c in mine[-20:]
    ]
    return _ok(
        {
            "notice_lists": [
                {"notice_list": notices, "has_more": False, "min_time": 0, "max_time": int(world.now())}
            ]
        }
    )


async def _analytics(world: World, p: dict[str, Any], me: User | None) -> Response:
    assert me is not None
    return _ok(
        {
            "data": {
                "video_views": 12345,
                "profile_views": 678,
                "followers": me.followers,
                "days": int(p.get("days") or 7),
            }
        }
    )


async def _session_check(world: World, p: dict[str, Any], me: User | None) -> Response:
    return _ok({"message": "Session is valid."})


async def _key_info(world: World, p: dict[str, Any], me: User | None) -> Response:
    return _ok(
        {
            "credits": 100000,
            "active": True,
            "subscription_active": True,
            "has_expired": False,
            "date_expiry": 4070908800,
            "plan_id": 1,
            "accounts": [{"username": "tikflow_demo"}],
        }
    )


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/public/check"): _check,
    ("GET", "/public/posts"): _posts,
    ("GET", "/public/hashtag"): _hashtag,
    ("GET", "/public/video"): _video,
    ("GET", "/public/explore"): _explore,
    ("GET", "/public/search/general"): _search,
    ("GET", "/public/search/videos"): _search,
    ("GET", "/public/search/users"): _search,
    ("GET", "/public/comment/list"): _comments,
    ("GET", "/public/comment/reply/list"): _replies,
    ("GET", "/public/followers"): _followers,
    ("GET", "/user/info"): _user_info,
    ("GET", "/user/feed"): _posts,
    ("GET", "/user/video"): _video,
    ("GET", "/user/comment/list"): _comments,
    ("GET", "/user/comment/reply/list"): _replies,
    ("POST", "/user/comment"): _post_comment,
    ("POST", "/user/comment/like"): _like_comment,
    ("POST", "/user/comment/delete"): _delete_comment,
    ("POST", "/user/like"): _like_video,
    ("GET", "/user/followers"): _followers,
    ("GET", "/user/conversations"): _conversations,
    ("GET", "/user/messages"): _messages,
    ("POST", "/user/message/send"): _send_message,
    ("GET", "/user/conversations/requests"): _requests,
    ("GET", "/user/conversations/requests/accept"): _accept,
    ("GET", "/user/notifications"): _notifications,
    ("GET", "/user/session/check"): _session_check,
    ("GET", "/key/info"): _key_info,
}
