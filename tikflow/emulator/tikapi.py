"""TikAPI stand-in: `X-API-KEY` on everything, `X-ACCOUNT-KEY` on `/user/*` and `/creator/*`.

Paths, parameters, bodies and errors follow TikAPI's REST reference and its official clients
(shared/reference/tikapi-endpoints.md). Cursor JSON types follow what the official Python client
type-checks when it sends them back: a string `cursor` for posts, feed and hashtag listings, a
number `cursor` for comment lists, a number `nextCursor` for followers, following and
conversations, a string `nextCursor` for search and messages; `hasMore`/`has_more` end them.
The last page of a `nextCursor` listing sends a falsy `nextCursor` (0 or ""): the official client
follows a bare truthy `nextCursor` even when `hasMore` is false, and would never stop.

Only the documented demo keys are accepted at first; `GET /account/authorize` (the consent page,
auto-approved) mints new account keys, as does `POST /_admin/reauthorize`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from tikflow.emulator.payloads import json_body
from tikflow.emulator.ratelimit import Quotas
from tikflow.emulator.routing import Provider, Router
from tikflow.emulator.state import Comment, Conversation, Message, User, Video, World

__all__ = ["PROVIDER", "SESSION_EXPIRED", "comment_json", "mint_account_key", "stats_json", "user_json"]

SESSION_EXPIRED = {
    "status": "error",
    "message": "Account session expired, please ask user to re-login and re-authorize.",
    "statusCode": 8,
}
#: TikTok's codes inside TikAPI's 403s (seed 004).
USER_MISSING, VIDEO_MISSING, HASHTAG_MISSING, ENTITY_MISSING, SERVER_ERROR = 10202, 10204, 10205, 10224, 10101
PAGE_MAX = 30


@dataclass(frozen=True)
class Call:
    """One TikAPI request as an endpoint sees it: merged parameters and the acting user."""

    params: dict[str, Any]
    me: User | None

    def text(self, name: str) -> str:
        """A parameter as a string ('' when absent)."""
        value = self.params.get(name)
        return "" if value is None else str(value)

    def number(self, name: str, default: int = 0) -> int:
        """A numeric parameter (cursors, counts); `BadParams` when it is not a number."""
        value = self.params.get(name)
        if value in (None, ""):
            return default
        try:
            return int(str(value))
        except ValueError:
            raise BadParams({name: f"A valid {name} is required."}) from None

    def count(self) -> int:
        """The page size: `count`, at most 30 as documented."""
        return max(1, min(self.number("count", PAGE_MAX), PAGE_MAX))

    def acting(self) -> User:
        """The user behind the account key (only `/user/*` and `/creator/*` have one)."""
        if self.me is None:
            raise BadParams({"X-ACCOUNT-KEY": "A valid Account Key is required."})
        return self.me


class BadParams(Exception):
    """A request with missing or invalid parameters: TikAPI's 400 `Missing fields.`."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(fields)
        self.fields = fields


class TikTokError(Exception):
    """TikTok refused the request: TikAPI's 403 with TikTok's `statusCode`."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


Endpoint = Callable[[World, Call], Response]
ROUTER: Router[Endpoint] = Router()


def _ok(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse({**body, "status": "success", "message": "", "statusCode": 0, "status_code": 0})


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message, **extra}, status_code=status)


def _require(call: Call, *names: str) -> None:
    absent = [n for n in names if call.params.get(n) in (None, "")]
    if absent:
        raise BadParams({n: f"A valid {n} is required." for n in absent})


# -- JSON shapes ---------------------------------------------------------------------------------


def user_json(user: User) -> dict[str, Any]:
    """A user as TikTok's web API shows it (`userInfo.user`, `author`)."""
    return {
        "id": user.id,
        "uniqueId": user.unique_id,
        "nickname": user.nickname,
        "secUid": user.sec_uid,
        "signature": user.signature,
        "avatarLarger": f"https://p16-sign.tiktokcdn.example/{user.id}~c5_1080x1080.jpeg",
        "verified": user.followers > 1_000_000,
        "privateAccount": False,
        "createTime": user.create_time,
        "region": user.region,
    }


def stats_json(world: World, user: User) -> dict[str, Any]:
    """A user's statistics (`userInfo.stats`)."""
    return {
        "followerCount": user.followers,
        "followingCount": user.following,
        "heart": user.hearts,
        "heartCount": user.hearts,
        "videoCount": len(world.videos_of(user.unique_id)),
        "diggCount": user.hearts // 3,
        "friendCount": len(set(world.followers_of[user.unique_id]) & set(_following(world, user))),
    }


def _video_json(world: World, video: Video) -> dict[str, Any]:
    author = world.users[video.author]
    comments = sum(1 for c in world.comments.values() if c.aweme_id == video.id and not c.deleted)
    return {
        "id": video.id,
        "desc": video.desc,
        "createTime": video.create_time,
        "author": user_json(author),
        "stats": {
            "diggCount": video.likes,
            "playCount": video.plays,
            "commentCount": comments,
            "shareCount": video.likes // 10,
        },
        "video": {"duration": video.duration},
        "challenges": [{"title": t} for t in video.hashtags],
    }


def comment_json(world: World, comment: Comment) -> dict[str, Any]:
    """A comment or reply as TikTok's comment lists show it."""
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
        "reply_to_reply_id": comment.reply_to_reply or "0",
        "status": 1,
        "user": {
            "uid": user.id,
            "unique_id": user.unique_id,
            "nickname": user.nickname,
            "sec_uid": user.sec_uid,
        },
    }


def _conversation_json(world: World, conv: Conversation) -> dict[str, Any]:
    peer = world.users[conv.peer]
    last = max(
        (m for m in world.messages if m.conversation_id == conv.conversation_id), key=lambda m: m.create_time
    )
    return {
        "conversation_id": conv.conversation_id,
        "conversation_short_id": conv.short_id,
        "ticket": conv.ticket,
        "user_id": peer.id,
        "unread": not conv.read,
        "participants": [user_json(peer)],
        "last_message": _message_json(world, last),
    }


def _message_json(world: World, msg: Message) -> dict[str, Any]:
    # TikTok's IM message body, as TikAPI passes it on: `sender` is the numeric user id of whoever
    # wrote it (our own account for what we sent), `sec_sender` that user's secUid.
    sender = world.users[msg.sender]
    return {
        "server_message_id": msg.id,
        "conversation_id": msg.conversation_id,
        "conversation_short_id": world.conversations[msg.conversation_id].short_id,
        "sender": sender.id,
        "sec_sender": sender.sec_uid,
        "create_time": msg.create_time,
        "content": json.dumps({"text": msg.text}),
        "type": 7,
    }


def _offset_page(
    items: list[Any], call: Call, cursor_name: str, size: int | None = None
) -> tuple[list[Any], int, bool]:
    start = call.number(cursor_name)
    chunk = items[start : start + (size or call.count())]
    end = start + len(chunk)
    return chunk, end, end < len(items)


def _videos_page(world: World, videos: list[Video], call: Call) -> dict[str, Any]:
    chunk, end, more = _offset_page(videos, call, "cursor")
    return {"itemList": [_video_json(world, v) for v in chunk], "cursor": str(end), "hasMore": more}


def _following(world: World, user: User) -> list[str]:
    return [u for u, fans in world.followers_of.items() if user.unique_id in fans]


def _user_by(world: World, call: Call, *, default: User | None = None) -> User:
    """The user a request is about: `secUid`, `username` or `user_id`, else `default`."""
    sec_uid, username, user_id = call.text("secUid"), call.text("username"), call.text("user_id")
    if not (sec_uid or username or user_id):
        if default is None:
            raise BadParams({"secUid": "A valid TikTok secUid is required."})
        return default
    for user in world.users.values():
        if sec_uid == user.sec_uid or username.lstrip("@") == user.unique_id or user_id == user.id:
            return user
    raise TikTokError("User doesn't exist", USER_MISSING)


def _video(world: World, video_id: str) -> Video:
    video = world.videos.get(video_id)
    if video is None:
        raise TikTokError("Video doesn't exist", VIDEO_MISSING)
    return video


def _comment(world: World, comment_id: str) -> Comment:
    comment = world.comments.get(comment_id)
    if comment is None or comment.deleted:
        raise TikTokError("Entity doesn't exist", ENTITY_MISSING)
    return comment


def _conversation(world: World, call: Call, *, request: bool) -> Conversation:
    _require(call, "conversation_id", "conversation_short_id")
    conv = world.conversations.get(call.text("conversation_id"))
    if (
        conv is None
        or conv.deleted
        or conv.request != request
        or conv.short_id != call.text("conversation_short_id")
    ):
        raise TikTokError("Entity doesn't exist", ENTITY_MISSING)
    return conv


# -- public endpoints ----------------------------------------------------------------------------


def _profile(world: World, call: Call) -> Response:
    user = _user_by(world, call, default=call.me)
    return _ok({"userInfo": {"user": user_json(user), "stats": stats_json(world, user)}})


def _posts(world: World, call: Call) -> Response:
    owner = _user_by(world, call, default=call.me)
    return _ok(_videos_page(world, world.videos_of(owner.unique_id), call))


def _hashtag(world: World, call: Call) -> Response:
    tag_id, name = call.text("id"), call.text("name").lstrip("#").lower()
    if tag_id:
        tag = next((t for t in world.hashtags.values() if t["id"] == tag_id), None)
    elif name:
        tag = world.hashtags.get(name)
    else:
        raise BadParams({"id": "A valid hashtag id or name is required."})
    if tag is None:
        raise TikTokError("Hashtag doesn't exist", HASHTAG_MISSING)
    ids = [v.id for v in world.videos.values() if tag["title"] in v.hashtags]
    world.arrive(ids)
    videos = sorted((world.videos[i] for i in ids), key=lambda v: (-v.create_time, v.id))
    info = {
        "challenge": dict(tag),
        "stats": {"videoCount": len(videos), "viewCount": sum(v.plays for v in videos)},
    }
    return _ok({"challengeInfo": info, **_videos_page(world, videos, call)})


def _video_info(world: World, call: Call) -> Response:
    _require(call, "id")
    return _ok({"itemInfo": {"itemStruct": _video_json(world, _video(world, call.text("id")))}})


def _liked_posts(world: World, call: Call) -> Response:
    """The videos a user liked (ours by default), newest first."""
    user = _user_by(world, call, default=call.me)
    liked = [v for v in world.videos.values() if user.unique_id in v.liked_by]
    return _ok(_videos_page(world, sorted(liked, key=lambda v: (-v.create_time, v.id)), call))


def _related_posts(world: World, call: Call) -> Response:
    """Videos like `video_id`: those sharing a hashtag with it, most played first (one batch)."""
    _require(call, "video_id")
    video = _video(world, call.text("video_id"))
    related = [v for v in world.videos.values() if v.id != video.id and set(v.hashtags) & set(video.hashtags)]
    related.sort(key=lambda v: (-v.plays, v.id))
    return _ok({"itemList": [_video_json(world, v) for v in related[:PAGE_MAX]]})


def _explore(world: World, call: Call) -> Response:
    videos = sorted(world.videos.values(), key=lambda v: (-v.plays, v.id))[: call.count()]
    return _ok({"itemList": [_video_json(world, v) for v in videos]})


def _search(world: World, call: Call) -> Response:
    _require(call, "query")
    query = call.text("query").lower().lstrip("#@")
    category = call.params["category"]
    if category == "autocomplete":
        words = sorted({t for t in world.hashtags if query in t} | {u for u in world.users if query in u})
        return _ok({"sug_list": [{"content": w} for w in words]})
    if category == "users":
        users = [u for u in world.users.values() if query in u.unique_id or query in u.nickname.lower()]
        chunk, end, more = _offset_page(users, call, "nextCursor", 10)
        found = [
            {
                "user_info": {
                    "uid": u.id,
                    "unique_id": u.unique_id,
                    "nickname": u.nickname,
                    "sec_uid": u.sec_uid,
                    "follower_count": u.followers,
                }
            }
            for u in chunk
        ]
        return _ok({"user_list": found, "nextCursor": str(end) if more else "", "has_more": 1 if more else 0})
    videos = [v for v in world.videos.values() if query in v.desc.lower() or query in v.author]
    chunk, end, more = _offset_page(videos, call, "nextCursor", 10)
    items = [_video_json(world, v) for v in chunk]
    if category == "videos":
        return _ok({"item_list": items, "nextCursor": str(end) if more else "", "has_more": 1 if more else 0})
    return _ok(
        {
            "data": [{"type": 1, "item": i} for i in items],
            "nextCursor": str(end) if more else "",
            "has_more": 1 if more else 0,
        }
    )


def _comments(world: World, call: Call) -> Response:
    _require(call, "media_id")
    video = _video(world, call.text("media_id"))
    world.arrive([video.id])
    items = world.visible_comments(video.id, None)
    chunk, end, more = _offset_page(items, call, "cursor")
    return _ok(
        {
            "comments": [comment_json(world, c) for c in chunk],
            "cursor": end,
            "has_more": 1 if more else 0,
            "total": len(items),
        }
    )


def _replies(world: World, call: Call) -> Response:
    _require(call, "media_id", "comment_id")
    video = _video(world, call.text("media_id"))
    parent = _comment(world, call.text("comment_id"))
    items = world.visible_comments(video.id, parent.cid)
    chunk, end, more = _offset_page(items, call, "cursor")
    return _ok(
        {
            "comments": [comment_json(world, c) for c in chunk],
            "cursor": end,
            "has_more": 1 if more else 0,
            "total": len(items),
        }
    )


def _user_list(world: World, call: Call, names: list[str], key: str) -> Response:
    chunk, end, more = _offset_page(sorted(names), call, "nextCursor")
    users = [world.users[n] for n in chunk]
    if call.me is None:
        # The public (web) listing: `userList` of {user, stats}; the account's own (app) listing
        # names the list after what it holds.
        listed: list[dict[str, Any]] = [{"user": user_json(u), "stats": stats_json(world, u)} for u in users]
        key = "userList"
    else:
        listed = [user_json(u) for u in users]
    return _ok({key: listed, "nextCursor": end if more else 0, "hasMore": more, "total": len(names)})


def _followers(world: World, call: Call) -> Response:
    user = _user_by(world, call, default=call.me)
    return _user_list(world, call, world.followers_of[user.unique_id], "followers")


def _following_list(world: World, call: Call) -> Response:
    user = _user_by(world, call, default=call.me)
    return _user_list(world, call, _following(world, user), "followings")


# -- the account's own actions -------------------------------------------------------------------


def _post_comment(world: World, call: Call) -> Response:
    me = call.acting()
    _require(call, "media_id", "text")
    video = _video(world, call.text("media_id"))
    top: str | None = None
    answered: str | None = None
    if call.text("reply_comment_id"):
        # TikTok threads a reply to a reply under the top-level comment.
        parent = _comment(world, call.text("reply_comment_id"))
        top, answered = (parent.reply_to, parent.cid) if parent.reply_to else (parent.cid, None)
    comment = world.add_comment(
        video.id, text=call.text("text"), author=me.unique_id, reply_to=top, reply_to_reply=answered
    )
    return _ok({"comment": comment_json(world, comment)})


def _like_comment(world: World, call: Call) -> Response:
    me = call.acting()
    _require(call, "media_id", "comment_id")
    comment = _comment(world, call.text("comment_id"))
    if me.unique_id not in comment.liked_by:
        comment.liked_by.append(me.unique_id)
    return _ok({"is_digg": 0})


def _unlike_comment(world: World, call: Call) -> Response:
    me = call.acting()
    _require(call, "media_id", "comment_id")
    comment = _comment(world, call.text("comment_id"))
    if me.unique_id in comment.liked_by:
        comment.liked_by.remove(me.unique_id)
    return _ok({"is_digg": 1})


def _delete_comment(world: World, call: Call) -> Response:
    me = call.acting()
    _require(call, "comment_id")
    comment = _comment(world, call.text("comment_id"))
    # Only the comment's author or the video's owner may delete it.
    if me.unique_id not in (comment.author, world.videos[comment.aweme_id].author):
        raise TikTokError("You can't delete this comment", ENTITY_MISSING)
    comment.deleted = True
    return _ok({})


def _like_video(world: World, call: Call) -> Response:
    me = call.acting()
    _require(call, "media_id")
    video = _video(world, call.text("media_id"))
    if me.unique_id not in video.liked_by:
        video.liked_by.append(me.unique_id)
        video.likes += 1
    return _ok({"is_digg": 0})


def _unlike_video(world: World, call: Call) -> Response:
    me = call.acting()
    _require(call, "media_id")
    video = _video(world, call.text("media_id"))
    if me.unique_id in video.liked_by:
        video.liked_by.remove(me.unique_id)
        video.likes -= 1
    return _ok({"is_digg": 1})


def _conversations(world: World, call: Call, *, requests: bool) -> Response:
    convs = [c for c in world.conversations.values() if c.request == requests and not c.deleted]
    chunk, end, more = _offset_page(convs, call, "nextCursor", 20)
    return _ok(
        {
            "conversations": [_conversation_json(world, c) for c in chunk],
            "nextCursor": end if more else 0,
            "hasMore": more,
        }
    )


def _messages(world: World, call: Call, *, requests: bool) -> Response:
    conv = _conversation(world, call, request=requests)
    found = sorted(
        (m for m in world.messages if m.conversation_id == conv.conversation_id),
        key=lambda m: (-m.create_time, -int(m.id)),
    )
    chunk, end, more = _offset_page(found, call, "nextCursor", max(1, min(call.number("limit", 20), 50)))
    return _ok(
        {
            "messages": [_message_json(world, m) for m in chunk],
            "nextCursor": str(end) if more else "",
            "hasMore": more,
        }
    )


def _send_message(world: World, call: Call) -> Response:
    me = call.acting()
    _require(call, "text", "conversation_id", "conversation_short_id", "ticket")
    conv = _conversation(world, call, request=False)
    if conv.ticket != call.text("ticket"):
        raise TikTokError("Invalid ticket", SERVER_ERROR)
    arrived_ms = int(world.now() * 1000)
    msg = Message(world.new_id(), conv.conversation_id, me.unique_id, call.text("text"), int(world.now()))
    world.messages.append(msg)
    # TikAPI answers with TikTok's IM envelope (seed 004: `body`, `cmd` 100, `sequence_id`, the
    # two server times); what `body` holds is not documented [NF], TikTok's IM `send_message_body`
    # with the new message's id is the nearest known shape.
    return _ok(
        {
            "body": {
                "send_message_body": {
                    "server_message_id": msg.id,
                    "conversation_id": conv.conversation_id,
                    "status": 0,
                    "check_code": 0,
                    "check_message": "",
                }
            },
            "cmd": 100,
            "error_desc": "OK",
            "inbox_type": 0,
            "sequence_id": 10000 + len(world.messages),
            "request_arrived_time": arrived_ms,
            "server_execution_end_time": arrived_ms,
        }
    )


def _accept_request(world: World, call: Call) -> Response:
    _require(call, "user_id")
    conv = _conversation(world, call, request=True)
    if world.users[conv.peer].id != call.text("user_id"):
        raise TikTokError("User doesn't exist", USER_MISSING)
    conv.request = False
    return _ok({})


def _mark_request_read(world: World, call: Call) -> Response:
    _conversation(world, call, request=True).read = True
    return _ok({})


def _delete_request(world: World, call: Call) -> Response:
    _conversation(world, call, request=True).deleted = True
    return _ok({})


def _notifications(world: World, call: Call) -> Response:
    me = call.acting()
    # Comments by others on our videos, newest first, paged by time as TikTok does.
    found = sorted(
        (
            c
            for c in world.comments.values()
            if not c.deleted and c.author != me.unique_id and world.videos[c.aweme_id].author == me.unique_id
        ),
        key=lambda c: (-c.create_time, -int(c.cid)),
    )
    max_time, min_time = call.number("max_time"), call.number("min_time")
    if max_time:
        found = [c for c in found if c.create_time < max_time]
    elif min_time:
        found = [c for c in found if c.create_time > min_time]
    size = call.count()
    # A page never splits comments of the same second: its oldest time is where the next starts.
    while size < len(found) and found[size].create_time == found[size - 1].create_time:
        size += 1
    page = found[:size]
    listing = {
        "notice_list": [
            {"nid": c.cid, "type": 31, "create_time": c.create_time, "comment": comment_json(world, c)}
            for c in page
        ],
        "has_more": len(page) < len(found),
        "min_time": page[0].create_time if page else 0,
        "max_time": page[-1].create_time if page else 0,
        "total": len(page),
    }
    return _ok({"notice_lists": [listing]})


def _analytics(world: World, call: Call) -> Response:
    me = call.acting()
    kind, days = call.params["type"], max(1, min(call.number("days", 7), 60))
    videos = world.videos_of(me.unique_id)
    if kind not in ("overview", "content", "video", "followers", "live"):
        raise BadParams({"type": "A valid analytics type is required."})
    if kind == "video":
        _require(call, "media_id")
        video = _video(world, call.text("media_id"))
        return _ok({"type": kind, "media_id": video.id, "video_views": video.plays, "likes": video.likes})
    return _ok(
        {
            "type": kind,
            "days": days,
            "video_views": sum(v.plays for v in videos),
            "profile_views": len(world.followers_of[me.unique_id]) * 37,
            "likes": sum(v.likes for v in videos),
            "followers": me.followers,
        }
    )


def _session_check(world: World, call: Call) -> Response:
    me = call.acting()
    return _ok({"user": user_json(me)})


def _remove_user(world: World, account_key: str) -> None:
    """Forget an account key whose session is gone, as `session/check` does.

    Seed 004: it "auto-removes the user if it's invalid". From then on the key is unknown (401,
    "A valid Account Key is required."), not expired (428), until the user authorizes again.
    """
    world.expired_account_keys.discard(account_key)
    owner = world.tikapi_account_keys.pop(account_key, None)
    if owner is not None:
        world.removed_account_keys[account_key] = owner


def _key_info(world: World, call: Call) -> Response:
    accounts = sorted({world.users[u].unique_id for u in world.tikapi_account_keys.values()})
    return _ok(
        {
            "credits": 100_000,
            "active": True,
            "subscription_active": True,
            "has_expired": False,
            "date_expiry": 4_070_908_800,
            "plan_id": 1,
            "accounts": [{"username": a} for a in accounts],
        }
    )


def _authorize(world: World, call: Call) -> Response:
    """The consent page (on tikapi.io), auto-approved: a new account key for the same user."""
    redirect = call.text("redirect_uri")
    if not (call.text("client_id") and redirect):
        raise BadParams(
            {n: f"A valid {n} is required." for n in ("client_id", "redirect_uri") if not call.text(n)}
        )
    key = mint_account_key(world, call.text("username") or None)
    query = urlencode(
        {"access_token": key, "scope": call.text("scope") or "view_profile", "state": call.text("state")}
    )
    return RedirectResponse(f"{redirect}{'&' if '?' in redirect else '?'}{query}", status_code=302)


def mint_account_key(world: World, username: str | None, *, replacing: str | None = None) -> str:
    """A new account key for a TikTok user (the one behind `replacing`, else `username`, else ours).

    `replacing` may be a key `session/check` removed: the user behind it authorizes again.
    """
    old = replacing or ""
    owner = world.tikapi_account_keys.get(old) or world.removed_account_keys.get(old) or username
    owner = owner or "tikflow_demo"
    if owner not in world.users:
        raise ValueError(f"no TikTok user {owner}")
    key = world.token("", 40)
    world.tikapi_account_keys[key] = owner
    return key


def _session_expired(world: World, request: Request) -> None:
    key = request.headers.get("x-account-key")
    if key:
        world.expired_account_keys.add(key)


for _method, _path, _endpoint in (
    ("GET", "/account/authorize", _authorize),
    ("GET", "/public/check", _profile),
    ("GET", "/public/posts", _posts),
    ("GET", "/public/hashtag", _hashtag),
    ("GET", "/public/video", _video_info),
    ("GET", "/public/explore", _explore),
    ("GET", "/public/search/{category}", _search),
    ("GET", "/public/comment/list", _comments),
    ("GET", "/public/comment/reply/list", _replies),
    ("GET", "/public/followers", _followers),
    ("GET", "/public/related_posts", _related_posts),
    ("GET", "/public/following", _following_list),
    ("GET", "/user/info", _profile),
    ("GET", "/user/feed", _posts),
    ("GET", "/user/likes", _liked_posts),
    ("GET", "/user/explore", _explore),
    ("GET", "/user/video", _video_info),
    ("GET", "/user/search/{category}", _search),
    ("GET", "/user/comment/list", _comments),
    ("GET", "/user/comment/reply/list", _replies),
    ("POST", "/user/comment", _post_comment),
    ("POST", "/user/comment/like", _like_comment),
    ("POST", "/user/comment/unlike", _unlike_comment),
    ("POST", "/user/comment/delete", _delete_comment),
    ("POST", "/user/like", _like_video),
    ("POST", "/user/unlike", _unlike_video),
    ("GET", "/user/followers", _followers),
    ("GET", "/user/following", _following_list),
    ("GET", "/user/conversations", lambda w, c: _conversations(w, c, requests=False)),
    ("GET", "/user/messages", lambda w, c: _messages(w, c, requests=False)),
    ("POST", "/user/message/send", _send_message),
    ("GET", "/user/conversations/requests", lambda w, c: _conversations(w, c, requests=True)),
    ("GET", "/user/messages/requests", lambda w, c: _messages(w, c, requests=True)),
    ("GET", "/user/conversations/requests/accept", _accept_request),
    ("GET", "/user/conversations/requests/mark_read", _mark_request_read),
    ("GET", "/user/conversations/requests/delete", _delete_request),
    ("GET", "/user/notifications", _notifications),
    ("GET", "/user/session/check", _session_check),
    ("GET", "/creator/analytics/{type}", _analytics),
    ("GET", "/key/info", _key_info),
):
    ROUTER.add(_method, _path, _endpoint)


# -- the request pipeline ------------------------------------------------------------------------


def _rate_limited(retry_after: float | None) -> Response:
    headers = {} if retry_after is None else {"Retry-After": str(max(1, round(retry_after)))}
    return JSONResponse(
        {"status": "error", "message": "API Key Rate-Limit reached."}, status_code=429, headers=headers
    )


def _server_error(status: int) -> Response:
    return _error(
        status, "TikTok Server Error" if status < 504 else "Gateway Timeout", statusCode=SERVER_ERROR
    )


def _over_quota(world: World, quotas: Quotas, api_key: str) -> bool:
    """Whether the key is over a configured quota (counting this request if it is not)."""
    config = world.config
    if config.tikapi_per_second > 0:
        verdict = quotas.sliding("tikapi", api_key, config.tikapi_per_second, 1.0)
        if not verdict.allowed:
            return True
    return config.tikapi_daily > 0 and not quotas.daily("tikapi", api_key, config.tikapi_daily).allowed


async def _params(request: Request, path_params: dict[str, str]) -> dict[str, Any]:
    """Query parameters, then a JSON body (POST), then path parameters."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        raw = await request.body()
        try:
            body = {} if not raw else json_body(raw)
        except ValueError:
            raise BadParams({"body": "The request body must be JSON."}) from None
        if isinstance(body, dict):
            params.update(body)
    params.update(path_params)
    return params


async def answer(world: World, quotas: Quotas, request: Request, path: str) -> Response:
    """Answer one TikAPI request at `path` (below the `/tikapi` prefix)."""
    route = ROUTER.match(request.method, path)
    try:
        if route is not None and route.handler is _authorize:
            return _authorize(world, Call(await _params(request, {}), None))
        api_key = request.headers.get("x-api-key", "")
        if api_key not in world.tikapi_api_keys:
            return _error(401, "A valid API Key is required.")
        if _over_quota(world, quotas, api_key):
            return _rate_limited(world.config.tikapi_retry_after)
        me: User | None = None
        if path.startswith(("/user/", "/creator/")):
            account_key = request.headers.get("x-account-key", "")
            if account_key in world.expired_account_keys:
                if route is not None and route.handler is _session_check:
                    _remove_user(world, account_key)
                return JSONResponse(SESSION_EXPIRED, status_code=428)
            username = world.tikapi_account_keys.get(account_key)
            if username is None:
                return _error(401, "A valid Account Key is required.")
            me = world.users[username]
        if route is None:
            return _error(404, "The requested endpoint was not found.")
        return route.handler(world, Call(await _params(request, route.params), me))
    except BadParams as bad:
        return _error(400, "Missing fields.", fields=bad.fields)
    except TikTokError as refused:
        return _error(403, refused.message, statusCode=refused.code)


PROVIDER = Provider(
    name="tikapi",
    prefix="/tikapi",
    answer=answer,
    template=ROUTER.template,
    server_error=_server_error,
    rate_limited=_rate_limited,
    session_expired=_session_expired,
)
