"""TikAPI (api.tikapi.io): the unofficial TikTok API, as registered `tikapi.*` actions.

Request shapes follow the official client (PyPI `tikapi` 3.2.2, see
`shared/reference/tikapi-endpoints.md`): `X-API-KEY` on every request, `X-ACCOUNT-KEY` on
`/user/*` and `/creator/*`, GET parameters in the query string, POST parameters as a JSON body,
only declared parameters sent. Listings are walked the way the client's `next_items()` walks them
(`next_cursor`), up to the action's `pages`.

Results are normalized so recipes see stable snake_case keys whatever TikTok's payload looks like
this month: videos are `video_item`s, comments `comment_item`s, users `user_item`s; listings return
`items`, `cursor` (pass it back to resume) and `has_more`.

Actions that change the world check before they act, so a retried activity (a worker killed after
the POST, before the result was recorded) never does the work twice; each docstring says how.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from pydantic import Field, model_validator

from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    SessionExpired,
)
from activities.http import Reply, send
from activities.ledger import ledger_for
from activities.pagination import Pages, collect_pages
from activities.provider import Provider
from activities.ratelimit import parse_retry_after
from activities.redact import redact
from activities.registry import ActionContext, ActionInput, PagedInput, action

__all__ = [
    "classify",
    "comment_item",
    "conversation_item",
    "message_item",
    "next_cursor",
    "user_item",
    "video_item",
]

NAME = "tikapi"

log = structlog.get_logger()

#: TikTok codes that say "TikTok hiccuped", not "your request is wrong": worth a retry even though
#: TikAPI sends them as 403 (10000 captcha, 10101 TikTok server error, 10111 TikTok network error).
TRANSIENT_TIKTOK_CODES = frozenset({10000, 10101, 10111})
#: TikAPI's HTTP 428 body carries TikTok code 8: the account's session is gone.
SESSION_EXPIRED_CODE = 8

_CREDITS = re.compile(r"credit|subscription|plan\b|upgrade|payment|balance", re.IGNORECASE)
_RATE_LIMIT = re.compile(r"rate.?limit", re.IGNORECASE)
_API_KEY = re.compile(r"api.?key", re.IGNORECASE)
_GONE = re.compile(r"not exist|doesn't exist|does not exist|not found|deleted", re.IGNORECASE)
#: TikTok code for "entity doesn't exist" (seed 004): a comment that is already gone.
_ENTITY_GONE_CODE = 10224

#: How many pages of replies/comments/messages a side effect reads to find its own earlier work.
CHECK_PAGES = 5
#: Idempotency keys remembered per worker (the fast path before the listing check).
_REMEMBERED = 2048
_PAGE_SIZE = 30


# ---------------------------------------------------------------------------------------------
# The HTTP boundary: classify answers, attach credentials.


def classify(reply: Reply, account: str) -> ProviderError | None:
    """Map a TikAPI answer to the error tree (None for a success).

    The mapping follows the design's error table and TikAPI's REST reference: 428 or TikTok code 8
    → `SessionExpired`; 401 → `CredentialsRejected`; 403 about credits or the subscription →
    `CredentialsRejected`; 403 with a TikTok `statusCode` → `ProviderRejected(code)`, except the
    transient TikTok codes (captcha, TikTok server/network error) → `ProviderUnavailable`; 429 →
    `RateLimited` (with `Retry-After`/`X-RateLimit-Reset` when sent); other 4xx →
    `ProviderRejected`; 5xx → `ProviderUnavailable`. A 2xx whose body says `status: "error"` is
    classified by its code and message the same way.
    """
    body = reply.body if isinstance(reply.body, dict) else {}
    status = reply.status
    if status < 400 and body.get("status") != "error":
        return None
    message = _error_message(body, status)
    code = _tiktok_code(body)
    facts: dict[str, Any] = {"provider": NAME, "status": status, "code": code, "account": account}
    if status == 428 or code == SESSION_EXPIRED_CODE:
        return SessionExpired(message, **facts)
    # Rate limit before the key check: TikAPI's limit message names the key ("API Key Rate-Limit").
    if status == 429 or (status < 400 and _RATE_LIMIT.search(message)):
        return RateLimited(message, retry_after=parse_retry_after(reply.headers), **facts)
    if status == 401 or (status < 400 and _API_KEY.search(message)):
        return CredentialsRejected(message, **facts)
    if status >= 500 or code in TRANSIENT_TIKTOK_CODES:
        return ProviderUnavailable(message, **facts)
    if status == 403 and code is None and _CREDITS.search(message):
        return CredentialsRejected(message, **facts)
    return ProviderRejected(message, **facts)


def _error_message(body: Mapping[str, Any], status: int) -> str:
    message = body.get("message")
    text = message if isinstance(message, str) and message else f"HTTP {status}"
    fields = body.get("fields")
    if isinstance(fields, dict) and fields:
        text += " (" + "; ".join(f"{k}: {v}" for k, v in fields.items()) + ")"
    # Provider text ends up in logs and workflow history: strip anything key-like, bound its size.
    return redact(text)[:500]


def _tiktok_code(body: Mapping[str, Any]) -> int | None:
    code = body.get("statusCode")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code or None
    if isinstance(code, str) and code.isdigit():
        return int(code) or None
    return None


def _needs_account_key(path: str) -> bool:
    return path.startswith(("/user/", "/creator/"))


async def _request(
    ctx: ActionContext,
    method: Literal["GET", "POST"],
    path: str,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One TikAPI call with the account's keys; returns the JSON object it answered."""
    user_scoped = _needs_account_key(path)
    creds = ctx.services.credentials.get(
        NAME, ctx.account, required=("api_key", "account_key") if user_scoped else ("api_key",)
    )
    headers = {"X-API-KEY": creds["api_key"]}
    if user_scoped:
        headers["X-ACCOUNT-KEY"] = creds["account_key"]
    declared = {k: v for k, v in (params or {}).items() if v is not None}
    reply = await send(
        ctx,
        NAME,
        method,
        ctx.services.settings.base_url(NAME) + path,
        classify=classify,
        params=declared if method == "GET" else None,
        json_body=declared if method == "POST" else None,
        headers=headers,
    )
    if not isinstance(reply.body, dict):
        raise _malformed(ctx, f"{method} {path} answered {type(reply.body).__name__}, not an object")
    return reply.body


def _auth(ctx: ActionContext, path: str, credential: Mapping[str, str]) -> dict[str, str]:
    headers = {"X-API-KEY": credential["api_key"]}
    if _needs_account_key(path):
        headers["X-ACCOUNT-KEY"] = credential["account_key"]
    return headers


def _needs(path: str) -> tuple[str, ...]:
    return ("api_key", "account_key") if _needs_account_key(path) else ("api_key",)


#: TikAPI as a provider: `X-API-KEY` always, `X-ACCOUNT-KEY` on `/user/*` and `/creator/*`.
PROVIDER = Provider(
    name=NAME,
    base_url="https://api.tikapi.io",
    fields=("api_key", "account_key"),
    required=("api_key",),
    classify=classify,
    auth=_auth,
    needs=_needs,
    reauth=("account_key",),
    order=10,
)


def _malformed(ctx: ActionContext, detail: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"malformed answer: {detail}", provider=NAME, account=ctx.account)


# ---------------------------------------------------------------------------------------------
# Normalized shapes.


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def video_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A TikTok video (`itemList[]` / `itemStruct`) as recipes see it.

    Keys: `id`, `desc`, `create_time` (epoch s), `author` (unique id), `author_id`,
    `author_sec_uid`, `stats` {`digg_count`, `play_count`, `comment_count`, `share_count`},
    `duration` (s), `url`.
    """
    author = raw.get("author")
    author_obj = _obj(author)
    # Older payloads give `author` as the bare unique id, with `authorId` beside it.
    unique_id = author if isinstance(author, str) else _str(author_obj.get("uniqueId"))
    stats = _obj(raw.get("stats"))
    video_id = _str(raw.get("id"))
    return {
        "id": video_id,
        "desc": _str(raw.get("desc")),
        "create_time": _int(raw.get("createTime")),
        "author": unique_id,
        "author_id": _str(author_obj.get("id") or raw.get("authorId")),
        "author_sec_uid": _str(author_obj.get("secUid")),
        "stats": {
            "digg_count": _int(stats.get("diggCount")),
            "play_count": _int(stats.get("playCount")),
            "comment_count": _int(stats.get("commentCount")),
            "share_count": _int(stats.get("shareCount")),
        },
        "duration": _int(_obj(raw.get("video")).get("duration")),
        "url": f"https://www.tiktok.com/@{unique_id}/video/{video_id}" if unique_id and video_id else "",
    }


def comment_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A TikTok comment or reply (`comments[]`) as recipes see it.

    Keys: `cid`, `text`, `create_time` (epoch s), `author` (unique id), `user_id`, `aweme_id`
    (the video), `reply_count`, `digg_count`, `reply_to` (parent comment id, None at top level).
    """
    user = _obj(raw.get("user"))
    reply_to = _str(raw.get("reply_id"))
    return {
        "cid": _str(raw.get("cid")),
        "text": _str(raw.get("text")),
        "create_time": _int(raw.get("create_time")),
        "author": _str(user.get("unique_id")),
        "user_id": _str(user.get("uid")),
        "aweme_id": _str(raw.get("aweme_id")),
        "reply_count": _int(raw.get("reply_comment_total")) or 0,
        "digg_count": _int(raw.get("digg_count")) or 0,
        "reply_to": reply_to if reply_to not in ("", "0") else None,
    }


def user_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A TikTok user (web camelCase or app snake_case payload) as recipes see it.

    Keys: `id`, `unique_id`, `sec_uid`, `nickname`, `signature`, `verified`, `private`.
    """
    return {
        "id": _str(raw.get("id") or raw.get("uid")),
        "unique_id": _str(raw.get("uniqueId") or raw.get("unique_id")),
        "sec_uid": _str(raw.get("secUid") or raw.get("sec_uid")),
        "nickname": _str(raw.get("nickname")),
        "signature": _str(raw.get("signature")),
        "verified": bool(raw.get("verified")),
        "private": bool(raw.get("privateAccount") or raw.get("secret")),
    }


def message_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A direct message. Keys: `id`, `text`, `sender_id`, `create_time`.

    TikTok's IM payload keeps the text inside `content`, a JSON string (`{"text": …}`); the exact
    field names of TikAPI's message listing are not documented, so the known variants are read.
    """
    text = _str(raw.get("text"))
    content = raw.get("content")
    if not text and isinstance(content, str):
        try:
            decoded = json.loads(content)
        except ValueError:
            decoded = content
        text = _str(_obj(decoded).get("text")) if isinstance(decoded, dict) else _str(decoded)
    return {
        "id": _str(raw.get("server_message_id") or raw.get("message_id") or raw.get("id")),
        "text": text,
        "sender_id": _str(raw.get("sender") or raw.get("sender_id")),
        "create_time": _int(raw.get("create_time") or raw.get("created_at")),
    }


def conversation_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A direct-message conversation as recipes see it.

    Keys: `conversation_id`, `conversation_short_id`, `ticket`, and `raw` (the provider's item, since
    TikAPI documents no schema for it).
    """
    return {
        "conversation_id": _str(raw.get("conversation_id") or raw.get("id")),
        "conversation_short_id": _str(raw.get("conversation_short_id") or raw.get("short_id")),
        "ticket": _str(raw.get("ticket")),
        "raw": dict(raw),
    }


def _items(ctx: ActionContext, body: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """The list under `key` (absent = empty page); a non-list or non-object entry is malformed."""
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _malformed(ctx, f"`{key}` is not a list of objects")
    return value


def _videos(ctx: ActionContext, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = [video_item(raw) for body in bodies for raw in _items(ctx, body, "itemList")]
    kept = [item for item in items if item["id"]]
    if len(kept) < len(items):
        log.warning("tikapi.items_without_id", dropped=len(items) - len(kept))
    return kept


def _comments(ctx: ActionContext, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = [comment_item(raw) for body in bodies for raw in _items(ctx, body, "comments")]
    return [item for item in items if item["cid"]]


# ---------------------------------------------------------------------------------------------
# Pagination, exactly as the official client's `next_items()`.


def next_cursor(body: Mapping[str, Any]) -> Any:
    """The cursor the official client would send for the page after `body`, or None at the end.

    `hasMore`/`has_more` truthy → the first of `offset`, `cursor`, `nextCursor` that is present
    (a falsy one ends the listing); otherwise a bare truthy `nextCursor` continues; else the end.
    """
    if body.get("hasMore") or body.get("has_more"):
        cursor = body.get("offset", body.get("cursor", body.get("nextCursor")))
        return cursor or None
    return body.get("nextCursor") or None


@dataclass(frozen=True)
class _Listing:
    """A paginated endpoint: its path and the one cursor parameter it declares, with its type.

    The type matters because the official client type-checks what it sends back: posts, hashtag,
    feed, messages and search take a string cursor; comment lists a number `cursor`; followers and
    conversations a number `nextCursor`.
    """

    path: str
    cursor_param: str
    cursor_type: type[str] | type[int]


async def _walk(
    ctx: ActionContext,
    listing: _Listing,
    params: Mapping[str, Any],
    *,
    start: str | int | None,
    pages: int,
    path: str | None = None,
) -> Pages[dict[str, Any], str | int]:
    async def fetch(cursor: str | int | None) -> dict[str, Any]:
        query = dict(params)
        if cursor is not None:
            query[listing.cursor_param] = cursor
        return await _request(ctx, "GET", path or listing.path, query)

    def following(body: dict[str, Any]) -> str | int | None:
        return _typed_cursor(ctx, listing, next_cursor(body))

    return await collect_pages(fetch, following, start=start, pages=pages)


def _typed_cursor(ctx: ActionContext, listing: _Listing, cursor: Any) -> str | int | None:
    """The next cursor in the JSON type `listing` declares (None at the end)."""
    if cursor is None:
        return None
    if listing.cursor_type is int:
        number = _int(cursor)
        if number is None:
            raise _malformed(ctx, f"{listing.path} cursor {cursor!r} is not a number")
        return number
    if isinstance(cursor, str | int) and not isinstance(cursor, bool):
        return str(cursor)
    raise _malformed(ctx, f"{listing.path} cursor of type {type(cursor).__name__}")


def _listing_result(items: list[dict[str, Any]], pages: Pages[Any, Any]) -> dict[str, Any]:
    return {"items": items, "cursor": pages.cursor, "has_more": pages.has_more}


_POSTS = _Listing("/public/posts", "cursor", str)
_HASHTAG = _Listing("/public/hashtag", "cursor", str)
_COMMENTS = _Listing("/public/comment/list", "cursor", int)
_REPLIES = _Listing("/public/comment/reply/list", "cursor", int)
_MY_COMMENTS = _Listing("/user/comment/list", "cursor", int)
_MY_REPLIES = _Listing("/user/comment/reply/list", "cursor", int)
_FEED = _Listing("/user/feed", "cursor", str)
_SEARCH = _Listing("/public/search/{category}", "nextCursor", str)
_FOLLOWERS = _Listing("/user/followers", "nextCursor", int)
_CONVERSATIONS = _Listing("/user/conversations", "nextCursor", int)
_REQUESTS = _Listing("/user/conversations/requests", "nextCursor", int)
_MESSAGES = _Listing("/user/messages", "nextCursor", str)


# ---------------------------------------------------------------------------------------------
# Who "we" are, and what this worker already did: the two halves of the idempotency checks.


@dataclass(frozen=True)
class _Me:
    user_id: str
    unique_id: str

    def wrote(self, author_id: str, author: str) -> bool:
        return bool(author_id and author_id == self.user_id) or bool(author and author == self.unique_id)


async def _me(ctx: ActionContext) -> _Me:
    """The TikTok user behind the account key, learned once per account and worker.

    Cached by account name and a fingerprint of the key, so re-authorizing the name as a
    different TikTok user is noticed.
    """
    creds = ctx.services.credentials.get(NAME, ctx.account, required=("api_key", "account_key"))
    fingerprint = hashlib.sha256(creds["account_key"].encode()).hexdigest()[:16]
    cache: dict[tuple[str, str], _Me] = ctx.services.state.setdefault("tikapi.me", {})
    key = (ctx.account, fingerprint)
    if key not in cache:
        body = await _request(ctx, "GET", "/user/info")
        user = user_item(_obj(_obj(body.get("userInfo")).get("user")))
        if not user["id"] and not user["unique_id"]:
            raise _malformed(ctx, "/user/info has no userInfo.user")
        cache[key] = _Me(user_id=user["id"], unique_id=user["unique_id"])
    return cache[key]


def _done_before(ctx: ActionContext) -> dict[str, Any] | None:
    """The result this worker already returned for this idempotency key, if any."""
    done: OrderedDict[str, dict[str, Any]] = ctx.services.state.setdefault("tikapi.done", OrderedDict())
    result = done.get(ctx.idempotency_key)
    return None if result is None else {**result, "already_done": True}


def _remember(ctx: ActionContext, result: dict[str, Any]) -> dict[str, Any]:
    done: OrderedDict[str, dict[str, Any]] = ctx.services.state.setdefault("tikapi.done", OrderedDict())
    done[ctx.idempotency_key] = result
    while len(done) > _REMEMBERED:
        done.popitem(last=False)
    return result


async def _find_own(
    ctx: ActionContext,
    listing: _Listing,
    params: Mapping[str, Any],
    text: str,
) -> dict[str, Any] | None:
    """Our comment with `text` among the first `CHECK_PAGES` pages of a comment listing."""
    me = await _me(ctx)
    wanted = text.strip()
    pages = await _walk(ctx, listing, {**params, "count": _PAGE_SIZE}, start=None, pages=CHECK_PAGES)
    for comment in _comments(ctx, pages.bodies):
        if comment["text"].strip() == wanted and me.wrote(comment["user_id"], comment["author"]):
            return comment
    return None


def _posted(body: Mapping[str, Any]) -> dict[str, Any] | None:
    comment = body.get("comment")
    return comment_item(comment) if isinstance(comment, dict) else None


# ---------------------------------------------------------------------------------------------
# Input models.


class _CountMixin(ActionInput):
    count: int = Field(default=_PAGE_SIZE, ge=1, le=30, description="Items per page (TikAPI allows 30).")


class NoInput(ActionInput):
    """An action without parameters."""


class ProfileInput(ActionInput):
    """Which public profile to read."""

    username: str | None = Field(default=None, description="TikTok username (without @).")
    user_id: str | None = Field(default=None, description="TikTok numeric user id, instead of username.")

    @model_validator(mode="after")
    def _one_of(self) -> ProfileInput:
        if not self.username and not self.user_id:
            raise ValueError("give `username` or `user_id`")
        return self


class UserPostsInput(_CountMixin, PagedInput):
    """A user's public posts."""

    sec_uid: str = Field(min_length=1, description="The user's secUid (from `tikapi.profile`).")
    cursor: str | None = Field(default=None, description="Resume from this cursor (a previous result's).")


class HashtagPostsInput(_CountMixin, PagedInput):
    """A hashtag's posts, by name or id."""

    name: str | None = Field(default=None, description="Hashtag name without `#` (first call).")
    id: str | None = Field(default=None, description="Hashtag id (known from an earlier result).")
    cursor: str | None = Field(default=None, description="Resume from this cursor (a previous result's).")

    @model_validator(mode="after")
    def _one_of(self) -> HashtagPostsInput:
        if not self.name and not self.id:
            raise ValueError("give `name` or `id`")
        return self


class VideoInput(ActionInput):
    """One video."""

    id: str = Field(min_length=1, description="Video id (or a vm.tiktok.com short link).")


class SearchInput(PagedInput):
    """A search query."""

    category: Literal["general", "users", "videos", "autocomplete"] = Field(
        default="videos", description="What to search for."
    )
    query: str = Field(min_length=1, description="Search text.")
    cursor: str | None = Field(default=None, description="Resume from this `nextCursor`.")


class ExploreInput(_CountMixin):
    """The For You (trending) feed."""


class CommentsInput(_CountMixin, PagedInput):
    """A video's comments."""

    media_id: str = Field(min_length=1, description="Video id.")
    cursor: int | None = Field(default=None, ge=0, description="Resume from this cursor.")


class RepliesInput(_CountMixin, PagedInput):
    """The replies to one comment."""

    media_id: str = Field(min_length=1, description="Video id.")
    comment_id: str = Field(min_length=1, description="The parent comment's `cid`.")
    cursor: int | None = Field(default=None, ge=0, description="Resume from this cursor.")


class ReplyInput(ActionInput):
    """A reply to post under a comment."""

    media_id: str = Field(min_length=1, description="Video id.")
    reply_comment_id: str = Field(pattern=r"^[0-9]+$", description="The `cid` of the comment to answer.")
    text: str = Field(min_length=1, max_length=150, description="Reply text.")


class CommentInput(ActionInput):
    """A top-level comment to post on a video."""

    media_id: str = Field(min_length=1, description="Video id.")
    text: str = Field(min_length=1, max_length=150, description="Comment text.")


class CommentRefInput(ActionInput):
    """One comment on one video."""

    media_id: str = Field(min_length=1, description="Video id.")
    comment_id: str = Field(pattern=r"^[0-9]+$", description="Comment `cid`.")


class DeleteCommentInput(ActionInput):
    """A comment of ours to delete."""

    comment_id: str = Field(pattern=r"^[0-9]+$", description="Comment `cid`.")


class LikeVideoInput(ActionInput):
    """A video to like."""

    media_id: str = Field(min_length=1, description="Video id.")


class FeedInput(_CountMixin, PagedInput):
    """The account's own posts (or another user's, by secUid)."""

    sec_uid: str | None = Field(default=None, description="Another user's secUid; default: our own.")
    cursor: str | None = Field(default=None, description="Resume from this cursor.")


class FollowersInput(_CountMixin, PagedInput):
    """The account's followers (or another user's, by secUid)."""

    sec_uid: str | None = Field(default=None, description="Another user's secUid; default: our own.")
    cursor: int | None = Field(default=None, ge=0, description="Resume from this `nextCursor`.")


class ConversationsInput(PagedInput):
    """The account's conversations (inbox or requests)."""

    cursor: int | None = Field(default=None, ge=0, description="Resume from this `nextCursor`.")


class ConversationRef(ActionInput):
    """One conversation (TikTok uses two ids for it)."""

    conversation_id: str = Field(min_length=1, description="Conversation id (`0:1:…`).")
    conversation_short_id: str = Field(min_length=1, description="Conversation short id.")


class MessagesInput(ConversationRef, PagedInput):
    """The messages of one conversation."""

    limit: int | None = Field(default=None, ge=1, le=99, description="Messages per page.")
    cursor: str | None = Field(default=None, description="Resume from this `nextCursor`.")
    exclude_own: bool = Field(
        default=True,
        description=(
            "Leave out the messages the account itself sent (so an auto-reply never answers its "
            "own reply); false lists both sides of the conversation."
        ),
    )


class SendMessageInput(ConversationRef):
    """A direct message to send."""

    text: str = Field(min_length=1, description="Message text.")
    ticket: str = Field(min_length=1, description="The conversation's ticket (from `tikapi.conversations`).")


class AcceptRequestInput(ConversationRef):
    """A message request to accept."""

    user_id: str = Field(pattern=r"^[0-9]+$", description="The requesting user's id.")


class NotificationsInput(_CountMixin, PagedInput):
    """The account's notifications."""

    filter: Literal["all", "likes", "comments", "mentions", "followers"] = Field(
        default="all", description="Which notifications."
    )
    max_time: int | None = Field(default=None, description="Resume: `cursor.max_time` of a previous result.")
    min_time: int | None = Field(default=None, description="Resume: `cursor.min_time` of a previous result.")


class AnalyticsInput(ActionInput):
    """Creator analytics."""

    type: Literal["overview", "content", "video", "followers", "live"] = Field(
        default="overview", description="Which analytics."
    )
    days: int = Field(default=7, ge=1, le=365, description="Time frame in days.")
    media_id: str | None = Field(default=None, description="Video id (only for type `video`).")


# ---------------------------------------------------------------------------------------------
# Read actions.


def _profile(body: Mapping[str, Any]) -> dict[str, Any]:
    info = _obj(body.get("userInfo"))
    stats = _obj(info.get("stats"))
    return {
        "user": user_item(_obj(info.get("user"))),
        "stats": {
            "follower_count": _int(stats.get("followerCount")),
            "following_count": _int(stats.get("followingCount")),
            "heart_count": _int(stats.get("heartCount") or stats.get("heart")),
            "video_count": _int(stats.get("videoCount")),
            "digg_count": _int(stats.get("diggCount")),
        },
    }


@action("tikapi.profile", ProfileInput, endpoint="GET /public/check")
async def profile(ctx: ActionContext, params: ProfileInput) -> dict[str, Any]:
    """A public profile: `user` (id, unique_id, sec_uid, …) and `stats`."""
    body = await _request(
        ctx, "GET", "/public/check", {"username": params.username, "user_id": params.user_id}
    )
    result = _profile(body)
    if not result["user"]["id"] and not result["user"]["sec_uid"]:
        raise _malformed(ctx, "/public/check has no userInfo.user")
    return result


@action("tikapi.user_posts", UserPostsInput, endpoint="GET /public/posts")
async def user_posts(ctx: ActionContext, params: UserPostsInput) -> dict[str, Any]:
    """A user's public videos, newest first."""
    query = {"secUid": params.sec_uid, "count": params.count}
    pages = await _walk(ctx, _POSTS, query, start=params.cursor, pages=params.pages)
    return _listing_result(_videos(ctx, pages.bodies), pages)


@action("tikapi.hashtag_posts", HashtagPostsInput, endpoint="GET /public/hashtag")
async def hashtag_posts(ctx: ActionContext, params: HashtagPostsInput) -> dict[str, Any]:
    """A hashtag's videos; `hashtag` gives its id (reuse it), title and counts.

    As TikAPI asks: the first request names the hashtag, the following ones use the id from
    `challengeInfo.challenge.id`.
    """
    hashtag_id = params.id
    first: dict[str, Any] = {}
    bodies: list[dict[str, Any]] = []
    pages_left = params.pages
    start: str | int | None = params.cursor
    if hashtag_id is None:
        first = await _request(
            ctx, "GET", _HASHTAG.path, {"name": params.name, "count": params.count, "cursor": start}
        )
        bodies.append(first)
        pages_left -= 1
        hashtag_id = _str(_obj(_obj(first.get("challengeInfo")).get("challenge")).get("id")) or None
        if hashtag_id is None:
            raise _malformed(ctx, "/public/hashtag has no challengeInfo.challenge.id")
        start = _typed_cursor(ctx, _HASHTAG, next_cursor(first))
    pages: Pages[dict[str, Any], str | int]
    if bodies and (start is None or pages_left == 0):
        pages = Pages(bodies, start, start is not None)
    else:
        more = await _walk(
            ctx, _HASHTAG, {"id": hashtag_id, "count": params.count}, start=start, pages=pages_left
        )
        pages = Pages(bodies + more.bodies, more.cursor, more.has_more)
    info = _obj((first or pages.bodies[0]).get("challengeInfo"))
    challenge, stats = _obj(info.get("challenge")), _obj(info.get("stats"))
    result = _listing_result(_videos(ctx, pages.bodies), pages)
    result["hashtag"] = {
        "id": hashtag_id,
        "title": _str(challenge.get("title")) or params.name or "",
        "video_count": _int(stats.get("videoCount")),
        "view_count": _int(stats.get("viewCount")),
    }
    return result


@action("tikapi.video", VideoInput, endpoint="GET /public/video")
async def video(ctx: ActionContext, params: VideoInput) -> dict[str, Any]:
    """One video's details (`video`), plus the raw `itemStruct` as `raw`."""
    body = await _request(ctx, "GET", "/public/video", {"id": params.id})
    struct = _obj(_obj(body.get("itemInfo")).get("itemStruct"))
    if not struct:
        raise _malformed(ctx, "/public/video has no itemInfo.itemStruct")
    return {"video": video_item(struct), "raw": struct}


def _search_items(ctx: ActionContext, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Search pages mix shapes: `item_list`/`data[].item` are videos, `user_list[].user_info` users."""
    items: list[dict[str, Any]] = []
    for body in bodies:
        for raw in _items(ctx, body, "item_list"):
            items.append({"type": "video", **video_item(raw)})
        for entry in _items(ctx, body, "data"):
            if isinstance(entry.get("item"), dict):
                items.append({"type": "video", **video_item(entry["item"])})
            elif isinstance(entry.get("user_info"), dict):
                items.append({"type": "user", **user_item(entry["user_info"])})
            else:
                items.append({"type": "other", "raw": entry})
        for entry in _items(ctx, body, "user_list"):
            items.append({"type": "user", **user_item(_obj(entry.get("user_info")) or entry)})
    return items


@action("tikapi.search", SearchInput, endpoint="GET /public/search/{category}")
async def search(ctx: ActionContext, params: SearchInput) -> dict[str, Any]:
    """Search videos, users or everything; items carry a `type` (`video`, `user`, `other`)."""
    pages = await _walk(
        ctx,
        _SEARCH,
        {"query": params.query},
        start=params.cursor,
        pages=params.pages,
        path=f"/public/search/{params.category}",
    )
    return _listing_result(_search_items(ctx, pages.bodies), pages)


@action("tikapi.explore", ExploreInput, endpoint="GET /public/explore")
async def explore(ctx: ActionContext, params: ExploreInput) -> dict[str, Any]:
    """Trending videos from the For You feed (each call returns a fresh batch)."""
    body = await _request(ctx, "GET", "/public/explore", {"count": params.count})
    return {"items": _videos(ctx, [body]), "cursor": None, "has_more": False}


@action("tikapi.comments", CommentsInput, endpoint="GET /public/comment/list")
async def comments(ctx: ActionContext, params: CommentsInput) -> dict[str, Any]:
    """A video's comments (public listing)."""
    pages = await _walk(
        ctx,
        _COMMENTS,
        {"media_id": params.media_id, "count": params.count},
        start=params.cursor,
        pages=params.pages,
    )
    return _listing_result(_comments(ctx, pages.bodies), pages)


@action("tikapi.my_comments", CommentsInput, endpoint="GET /user/comment/list")
async def my_comments(ctx: ActionContext, params: CommentsInput) -> dict[str, Any]:
    """A video's comments as the account sees them (for its own videos: includes fresh ones)."""
    pages = await _walk(
        ctx,
        _MY_COMMENTS,
        {"media_id": params.media_id, "count": params.count},
        start=params.cursor,
        pages=params.pages,
    )
    return _listing_result(_comments(ctx, pages.bodies), pages)


@action("tikapi.replies", RepliesInput, endpoint="GET /public/comment/reply/list")
async def replies(ctx: ActionContext, params: RepliesInput) -> dict[str, Any]:
    """The replies under one comment."""
    query = {"media_id": params.media_id, "comment_id": params.comment_id, "count": params.count}
    pages = await _walk(ctx, _REPLIES, query, start=params.cursor, pages=params.pages)
    return _listing_result(_comments(ctx, pages.bodies), pages)


@action("tikapi.feed", FeedInput, endpoint="GET /user/feed")
async def feed(ctx: ActionContext, params: FeedInput) -> dict[str, Any]:
    """The account's own videos (or another user's, by `sec_uid`)."""
    query = {"count": params.count, "secUid": params.sec_uid}
    pages = await _walk(ctx, _FEED, query, start=params.cursor, pages=params.pages)
    return _listing_result(_videos(ctx, pages.bodies), pages)


@action("tikapi.followers", FollowersInput, endpoint="GET /user/followers")
async def followers(ctx: ActionContext, params: FollowersInput) -> dict[str, Any]:
    """The account's followers (or another user's, by `sec_uid`) as user items."""
    query = {"count": params.count, "secUid": params.sec_uid}
    pages = await _walk(ctx, _FOLLOWERS, query, start=params.cursor, pages=params.pages)
    items = [user_item(raw) for body in pages.bodies for raw in _items(ctx, body, "followers")]
    return _listing_result(items, pages)


async def _conversations(ctx: ActionContext, listing: _Listing, params: ConversationsInput) -> dict[str, Any]:
    pages = await _walk(ctx, listing, {}, start=params.cursor, pages=params.pages)
    items = [conversation_item(raw) for body in pages.bodies for raw in _items(ctx, body, "conversations")]
    return _listing_result(items, pages)


@action("tikapi.conversations", ConversationsInput, endpoint="GET /user/conversations")
async def conversations(ctx: ActionContext, params: ConversationsInput) -> dict[str, Any]:
    """The account's conversations with their ids and tickets (what `tikapi.send_message` needs)."""
    return await _conversations(ctx, _CONVERSATIONS, params)


@action("tikapi.message_requests", ConversationsInput, endpoint="GET /user/conversations/requests")
async def message_requests(ctx: ActionContext, params: ConversationsInput) -> dict[str, Any]:
    """Conversations waiting in the message-requests tab (accept with `tikapi.accept_request`)."""
    return await _conversations(ctx, _REQUESTS, params)


@action("tikapi.messages", MessagesInput, endpoint="GET /user/messages")
async def messages(ctx: ActionContext, params: MessagesInput) -> dict[str, Any]:
    """The messages of one conversation, newest first; by default only those the other side sent.

    `exclude_own: false` also lists the account's own messages (`sender_id` is then the account's
    user id, as `tikapi.me` reports it). Filtering happens after paging, so a page may hold fewer
    items than `limit`.
    """
    query = {
        "conversation_id": params.conversation_id,
        "conversation_short_id": params.conversation_short_id,
        "limit": params.limit,
    }
    pages = await _walk(ctx, _MESSAGES, query, start=params.cursor, pages=params.pages)
    items = [message_item(raw) for body in pages.bodies for raw in _items(ctx, body, "messages")]
    if params.exclude_own:
        me_ = await _me(ctx)
        items = [item for item in items if not me_.wrote(item["sender_id"], "")]
    return _listing_result(items, pages)


@action("tikapi.notifications", NotificationsInput, endpoint="GET /user/notifications")
async def notifications(ctx: ActionContext, params: NotificationsInput) -> dict[str, Any]:
    """Recent notifications; `cursor` is `{min_time, max_time}` (pass both back to resume).

    TikAPI pages notifications differently from everything else: `notice_lists[0]` carries
    `has_more`, `min_time` and `max_time`, and the next request sends both times.
    """

    async def fetch(cursor: _NoticeCursor | None) -> dict[str, Any]:
        min_time, max_time = cursor if cursor is not None else (params.min_time, params.max_time)
        query = {"filter": params.filter, "count": params.count, "min_time": min_time, "max_time": max_time}
        return await _request(ctx, "GET", "/user/notifications", query)

    def following(body: dict[str, Any]) -> _NoticeCursor | None:
        notice = _notice_list(ctx, body)
        if not notice.get("has_more") or not notice.get("min_time") or not notice.get("max_time"):
            return None
        return notice["min_time"], notice["max_time"]

    start = (params.min_time, params.max_time) if params.min_time or params.max_time else None
    pages = await collect_pages(fetch, following, start=start, pages=params.pages)
    items = [item for body in pages.bodies for item in _items(ctx, _notice_list(ctx, body), "notice_list")]
    cursor = None if pages.cursor is None else {"min_time": pages.cursor[0], "max_time": pages.cursor[1]}
    return {"items": items, "cursor": cursor, "has_more": pages.has_more}


#: Notifications resume from a (min_time, max_time) pair.
_NoticeCursor = tuple[Any, Any]


def _notice_list(ctx: ActionContext, body: Mapping[str, Any]) -> dict[str, Any]:
    lists = _items(ctx, body, "notice_lists")
    return lists[0] if lists else {}


@action("tikapi.analytics", AnalyticsInput, endpoint="GET /creator/analytics/{type}")
async def analytics(ctx: ActionContext, params: AnalyticsInput) -> dict[str, Any]:
    """Creator analytics of one type, as TikTok reports them (`data`)."""
    body = await _request(
        ctx, "GET", f"/creator/analytics/{params.type}", {"days": params.days, "media_id": params.media_id}
    )
    return {"type": params.type, "data": _strip_envelope(body)}


def _strip_envelope(body: Mapping[str, Any]) -> dict[str, Any]:
    envelope = {"status", "message", "statusCode", "status_code", "status_msg", "extra", "log_pb", "$other"}
    return {k: v for k, v in body.items() if k not in envelope}


@action("tikapi.session_check", NoInput, endpoint="GET /user/session/check")
async def session_check(ctx: ActionContext, params: NoInput) -> dict[str, Any]:
    """Check that the account's TikTok session is alive (`valid: true`).

    An expired session raises `SessionExpired`, which pauses the run for re-authorization.
    """
    body = await _request(ctx, "GET", "/user/session/check")
    return {"valid": True, "message": _str(body.get("message"))}


@action("tikapi.key_info", NoInput, endpoint="GET /key/info")
async def key_info(ctx: ActionContext, params: NoInput) -> dict[str, Any]:
    """The API key's subscription: credits, whether it is active, when it expires.

    Only these fields are returned: the raw answer lists the authorized accounts (and the owner's
    e-mail), which must not reach workflow history.
    """
    body = await _request(ctx, "GET", "/key/info")
    accounts = body.get("accounts")
    return {
        "credits": _int(body.get("credits")),
        "active": bool(body.get("active")),
        "subscription_active": bool(body.get("subscription_active")),
        "has_expired": bool(body.get("has_expired")),
        "date_expiry": _int(body.get("date_expiry")),
        "plan_id": _int(body.get("plan_id")),
        "accounts": len(accounts) if isinstance(accounts, list) else 0,
    }


@action("tikapi.me", NoInput, endpoint="GET /user/info")
async def me(ctx: ActionContext, params: NoInput) -> dict[str, Any]:
    """The authorized account's own profile: `user` and `stats`."""
    body = await _request(ctx, "GET", "/user/info")
    result = _profile(body)
    if not result["user"]["id"] and not result["user"]["unique_id"]:
        raise _malformed(ctx, "/user/info has no userInfo.user")
    return result


# ---------------------------------------------------------------------------------------------
# Side effects, each safe to run twice.


@action("tikapi.reply", ReplyInput, endpoint="POST /user/comment", side_effect=True)
async def reply(ctx: ActionContext, params: ReplyInput) -> dict[str, Any]:
    """Reply to a comment; `comment` is the reply, `already_done` says it existed before this call.

    Idempotent: before posting, the replies under the parent comment (first `CHECK_PAGES` pages,
    read with the account's session) are searched for one by our own user with the same text; if
    found it is returned instead of posting again. The worker also remembers the idempotency key
    of every reply it posted, for retries whose listing lags behind.
    """
    if (earlier := _done_before(ctx)) is not None:
        return earlier
    ref = {"media_id": params.media_id, "comment_id": params.reply_comment_id}
    existing = await _find_own(ctx, _MY_REPLIES, ref, params.text)
    if existing is not None:
        log.info("tikapi.reply.already_done", media_id=params.media_id, cid=existing["cid"])
        return {"comment": existing, "already_done": True}
    body = await _request(
        ctx,
        "POST",
        "/user/comment",
        {"media_id": params.media_id, "text": params.text, "reply_comment_id": params.reply_comment_id},
    )
    return _remember(ctx, {"comment": _posted(body), "already_done": False})


@action("tikapi.comment", CommentInput, endpoint="POST /user/comment", side_effect=True)
async def comment(ctx: ActionContext, params: CommentInput) -> dict[str, Any]:
    """Post a top-level comment on a video; `comment` is it, `already_done` as for `tikapi.reply`.

    Idempotent: the video's comments (first `CHECK_PAGES` pages, with the account's session) are
    searched for a top-level comment by our own user with the same text first, and this worker's
    earlier results are remembered by idempotency key. On a video with thousands of comments our
    earlier one may lie beyond the pages read: that window is the memory's to cover.
    """
    if (earlier := _done_before(ctx)) is not None:
        return earlier
    existing = await _find_own(ctx, _MY_COMMENTS, {"media_id": params.media_id}, params.text)
    if existing is not None:
        log.info("tikapi.comment.already_done", media_id=params.media_id, cid=existing["cid"])
        return {"comment": existing, "already_done": True}
    body = await _request(ctx, "POST", "/user/comment", {"media_id": params.media_id, "text": params.text})
    return _remember(ctx, {"comment": _posted(body), "already_done": False})


@action("tikapi.like_comment", CommentRefInput, endpoint="POST /user/comment/like", side_effect=True)
async def like_comment(ctx: ActionContext, params: CommentRefInput) -> dict[str, Any]:
    """Like a comment.

    Idempotent by nature: like and unlike are separate set-state endpoints (not a toggle), so
    liking an already-liked comment leaves it liked; no check is spent on it.
    """
    await _request(
        ctx, "POST", "/user/comment/like", {"media_id": params.media_id, "comment_id": params.comment_id}
    )
    return {"liked": True}


@action("tikapi.like_video", LikeVideoInput, endpoint="POST /user/like", side_effect=True)
async def like_video(ctx: ActionContext, params: LikeVideoInput) -> dict[str, Any]:
    """Like a video.

    Idempotent by nature, as `tikapi.like_comment`: a second like leaves the video liked.
    """
    await _request(ctx, "POST", "/user/like", {"media_id": params.media_id})
    return {"liked": True}


@action("tikapi.delete_comment", DeleteCommentInput, endpoint="POST /user/comment/delete", side_effect=True)
async def delete_comment(ctx: ActionContext, params: DeleteCommentInput) -> dict[str, Any]:
    """Delete one of our comments; `already_done` when it was already gone.

    Idempotent: a comment that no longer exists (404, TikTok "entity doesn't exist", or a message
    saying so) is the state we wanted, so a retry after the first delete succeeds.
    """
    try:
        await _request(ctx, "POST", "/user/comment/delete", {"comment_id": params.comment_id})
    except ProviderRejected as err:
        if err.status == 404 or err.code == _ENTITY_GONE_CODE or _GONE.search(err.message):
            log.info("tikapi.delete_comment.already_done", cid=params.comment_id)
            return {"deleted": True, "already_done": True}
        raise
    return {"deleted": True, "already_done": False}


@action("tikapi.send_message", SendMessageInput, endpoint="POST /user/message/send", side_effect=True)
async def send_message(ctx: ActionContext, params: SendMessageInput) -> dict[str, Any]:
    """Send a direct message, once per step however often retried; `already_done` on a retry.

    Idempotent by the step's idempotency key, not by the text: the same template sent for two
    messages of one conversation is two messages. Before sending, the ids of our messages with this
    text on the conversation's latest page go into the effect ledger with a note that a send is
    under way; a retry that finds the note and a new message of ours with the text there takes it
    as the one the earlier attempt sent (it died before it could record it). A retry that finds the
    send recorded (in the ledger, or in this worker's memory) returns it without a request.
    """
    if (earlier := _done_before(ctx)) is not None:
        return earlier
    ledger = ledger_for(ctx.services)
    key = f"tikapi.send_message:{ctx.idempotency_key}"
    recorded = ledger.get(key)
    if recorded is not None and not recorded.get("pending"):
        return {"message": recorded.get("message"), "already_done": True}
    me_ = await _me(ctx)
    ref = {"conversation_id": params.conversation_id, "conversation_short_id": params.conversation_short_id}
    latest = await _request(ctx, "GET", "/user/messages", ref)
    wanted = params.text.strip()
    ours = [
        message
        for message in (message_item(raw) for raw in _items(ctx, latest, "messages"))
        if message["text"].strip() == wanted and me_.wrote(message["sender_id"], "")
    ]
    if recorded is not None:
        before = set(recorded.get("before") or [])
        sent = next((message for message in ours if message["id"] not in before), None)
        if sent is not None:
            log.info("tikapi.send_message.already_done", message_id=sent["id"])
            ledger.put(key, {"message": sent}, run=ctx.run)
            _remember(ctx, {"message": sent, "already_done": False})
            return {"message": sent, "already_done": True}
    else:
        ledger.put(key, {"pending": True, "before": [m["id"] for m in ours]}, run=ctx.run)
    body = await _request(
        ctx, "POST", "/user/message/send", {**ref, "text": params.text, "ticket": params.ticket}
    )
    message = {"id": _sent_message_id(body), "text": params.text, "sender_id": me_.user_id}
    ledger.put(key, {"message": message}, run=ctx.run)
    return _remember(ctx, {"message": message, "already_done": False})


def _sent_message_id(body: Mapping[str, Any]) -> str:
    """The new message's id in a send answer, else ''.

    TikAPI documents the answer only as TikTok's IM envelope (`cmd` 100, `body`, `sequence_id`);
    the id inside `body` follows TikTok's IM `send_message_body` (not verified against TikAPI).
    """
    sent = _obj(_obj(body.get("body")).get("send_message_body"))
    return _str(sent.get("server_message_id"))


@action(
    "tikapi.accept_request",
    AcceptRequestInput,
    endpoint="GET /user/conversations/requests/accept",
    side_effect=True,
)
async def accept_request(ctx: ActionContext, params: AcceptRequestInput) -> dict[str, Any]:
    """Accept a message request; `already_done` when it had been accepted before.

    Idempotent: when TikTok refuses the accept, the account's conversations are read and, if the
    conversation is already there (accepted earlier, e.g. by the attempt this one retries), that
    counts as success.
    """
    query = {
        "conversation_id": params.conversation_id,
        "conversation_short_id": params.conversation_short_id,
        "user_id": params.user_id,
    }
    try:
        await _request(ctx, "GET", "/user/conversations/requests/accept", query)
    except ProviderRejected:
        inbox = await _request(ctx, "GET", _CONVERSATIONS.path)
        ids = {conversation_item(raw)["conversation_id"] for raw in _items(ctx, inbox, "conversations")}
        if params.conversation_id in ids:
            log.info("tikapi.accept_request.already_done")
            return {"accepted": True, "already_done": True}
        raise
    return {"accepted": True, "already_done": False}
