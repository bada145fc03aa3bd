"""The `tikapi.*` read actions; the plain listings are rows of `LISTINGS`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from activities.pagination import Pages, collect_pages
from activities.provider import obj
from activities.registry import ActionContext, PagedInput, action
from activities.shapes import as_int, as_text, user_item, video_item
from activities.tikapi.client import PROVIDER
from activities.tikapi.identity import whoami
from activities.tikapi.inputs import (
    AnalyticsInput,
    CommentsInput,
    ConversationsInput,
    ExploreInput,
    FeedInput,
    FollowersInput,
    HashtagPostsInput,
    LikedPostsInput,
    MessagesInput,
    NoInput,
    NotificationsInput,
    ProfileInput,
    PublicFollowersInput,
    RelatedPostsInput,
    RepliesInput,
    SearchInput,
    UserPostsInput,
    VideoInput,
)
from activities.tikapi.paging import (
    COMMENTS,
    CONVERSATIONS,
    FEED,
    FOLLOWERS,
    FOLLOWING,
    HASHTAG,
    LIKED,
    MESSAGES,
    MY_COMMENTS,
    POSTS,
    PUBLIC_FOLLOWERS,
    PUBLIC_FOLLOWING,
    REPLIES,
    REQUESTS,
    SEARCH,
    Listing,
    listing_result,
    next_cursor,
    typed_cursor,
    walk,
)
from activities.tikapi.shapes import (
    comment_items,
    conversation_items,
    message_item,
    profile_result,
    search_items,
    strip_envelope,
    user_items,
    video_items,
)

__all__ = ["LISTINGS", "ListingAction"]


@action("tikapi.profile", ProfileInput, endpoint="GET /public/check")
async def profile(ctx: ActionContext, params: ProfileInput) -> dict[str, Any]:
    """A public profile: `user` (id, unique_id, sec_uid, …) and `stats`."""
    body = await PROVIDER.request(
        ctx, "GET", "/public/check", params={"username": params.username, "user_id": params.user_id}
    )
    result = profile_result(body)
    if not result["user"]["id"] and not result["user"]["sec_uid"]:
        raise PROVIDER.malformed(ctx, "/public/check has no userInfo.user")
    return result


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
        first = await PROVIDER.request(
            ctx, "GET", HASHTAG.path, params={"name": params.name, "count": params.count, "cursor": start}
        )
        bodies.append(first)
        pages_left -= 1
        hashtag_id = as_text(obj(obj(first.get("challengeInfo")).get("challenge")).get("id")) or None
        if hashtag_id is None:
            raise PROVIDER.malformed(ctx, "/public/hashtag has no challengeInfo.challenge.id")
        start = typed_cursor(ctx, HASHTAG, next_cursor(first))
    pages: Pages[dict[str, Any], str | int]
    if bodies and (start is None or pages_left == 0):
        pages = Pages(bodies, start, start is not None)
    else:
        more = await walk(
            ctx, HASHTAG, {"id": hashtag_id, "count": params.count}, start=start, pages=pages_left
        )
        pages = Pages(bodies + more.bodies, more.cursor, more.has_more)
    info = obj((first or pages.bodies[0]).get("challengeInfo"))
    challenge, stats = obj(info.get("challenge")), obj(info.get("stats"))
    result = listing_result(video_items(ctx, pages.bodies), pages)
    result["hashtag"] = {
        "id": hashtag_id,
        "title": as_text(challenge.get("title")) or params.name or "",
        "video_count": as_int(stats.get("videoCount")),
        "view_count": as_int(stats.get("viewCount")),
    }
    return result


@action("tikapi.video", VideoInput, endpoint="GET /public/video")
async def video(ctx: ActionContext, params: VideoInput) -> dict[str, Any]:
    """One video's details (`video`), plus the raw `itemStruct` as `raw`."""
    body = await PROVIDER.request(ctx, "GET", "/public/video", params={"id": params.id})
    struct = obj(obj(body.get("itemInfo")).get("itemStruct"))
    if not struct:
        raise PROVIDER.malformed(ctx, "/public/video has no itemInfo.itemStruct")
    return {"video": video_item(struct), "raw": struct}


@action("tikapi.search", SearchInput, endpoint="GET /public/search/{category}")
async def search(ctx: ActionContext, params: SearchInput) -> dict[str, Any]:
    """Search videos, users or everything; items carry a `type` (`video`, `user`, `other`)."""
    pages = await walk(
        ctx,
        SEARCH,
        {"query": params.query},
        start=params.cursor,
        pages=params.pages,
        path=f"/public/search/{params.category}",
    )
    return listing_result(search_items(ctx, pages.bodies), pages)


@action("tikapi.explore", ExploreInput, endpoint="GET /public/explore")
async def explore(ctx: ActionContext, params: ExploreInput) -> dict[str, Any]:
    """Trending videos from the For You feed (each call returns a fresh batch)."""
    body = await PROVIDER.request(ctx, "GET", "/public/explore", params={"count": params.count})
    return {"items": video_items(ctx, [body]), "cursor": None, "has_more": False}


@action("tikapi.related_posts", RelatedPostsInput, endpoint="GET /public/related_posts")
async def related_posts(ctx: ActionContext, params: RelatedPostsInput) -> dict[str, Any]:
    """Videos TikTok relates to one video (one batch, as `tikapi.explore`)."""
    body = await PROVIDER.request(ctx, "GET", "/public/related_posts", params={"video_id": params.video_id})
    return {"items": video_items(ctx, [body]), "cursor": None, "has_more": False}


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
    pages = await walk(ctx, MESSAGES, query, start=params.cursor, pages=params.pages)
    items = [message_item(raw) for body in pages.bodies for raw in PROVIDER.items(ctx, body, "messages")]
    if params.exclude_own:
        me_ = await whoami(ctx)
        items = [item for item in items if not me_.wrote(item["sender_id"], "")]
    return listing_result(items, pages)


@action("tikapi.notifications", NotificationsInput, endpoint="GET /user/notifications")
async def notifications(ctx: ActionContext, params: NotificationsInput) -> dict[str, Any]:
    """Recent notifications; `cursor` is `{min_time, max_time}` (pass both back to resume).

    TikAPI pages notifications differently from everything else: `notice_lists[0]` carries
    `has_more`, `min_time` and `max_time`, and the next request sends both times.
    """

    async def fetch(cursor: _NoticeCursor | None) -> dict[str, Any]:
        min_time, max_time = cursor if cursor is not None else (params.min_time, params.max_time)
        query = {"filter": params.filter, "count": params.count, "min_time": min_time, "max_time": max_time}
        return await PROVIDER.request(ctx, "GET", "/user/notifications", params=query)

    def following(body: dict[str, Any]) -> _NoticeCursor | None:
        notice = _notice_list(ctx, body)
        if not notice.get("has_more") or not notice.get("min_time") or not notice.get("max_time"):
            return None
        return notice["min_time"], notice["max_time"]

    start = (params.min_time, params.max_time) if params.min_time or params.max_time else None
    pages = await collect_pages(fetch, following, start=start, pages=params.pages)
    items = [
        item for body in pages.bodies for item in PROVIDER.items(ctx, _notice_list(ctx, body), "notice_list")
    ]
    cursor = None if pages.cursor is None else {"min_time": pages.cursor[0], "max_time": pages.cursor[1]}
    return {"items": items, "cursor": cursor, "has_more": pages.has_more}


#: Notifications resume from a (min_time, max_time) pair.
_NoticeCursor = tuple[Any, Any]


def _notice_list(ctx: ActionContext, body: Mapping[str, Any]) -> dict[str, Any]:
    lists = PROVIDER.items(ctx, body, "notice_lists")
    return lists[0] if lists else {}


@action("tikapi.analytics", AnalyticsInput, endpoint="GET /creator/analytics/{type}")
async def analytics(ctx: ActionContext, params: AnalyticsInput) -> dict[str, Any]:
    """Creator analytics of one type, as TikTok reports them (`data`)."""
    body = await PROVIDER.request(
        ctx,
        "GET",
        f"/creator/analytics/{params.type}",
        params={"days": params.days, "media_id": params.media_id},
    )
    return {"type": params.type, "data": strip_envelope(body)}


@action("tikapi.session_check", NoInput, endpoint="GET /user/session/check")
async def session_check(ctx: ActionContext, params: NoInput) -> dict[str, Any]:
    """Check the account's TikTok session (`valid: true`); TikAPI removes an account whose session is invalid.

    Careful: when the session is invalid, TikAPI also removes the user ("Auto-removes the user if
    it's invalid", TikAPI's reference): the Account Key then stops working for every endpoint
    until the user authorizes again. TikAPI checks sessions on its own, so call this only to learn
    now rather than on the next call. An expired session raises `SessionExpired`, which pauses
    the run for re-authorization (a new Account Key).
    """
    body = await PROVIDER.request(ctx, "GET", "/user/session/check")
    return {"valid": True, "message": as_text(body.get("message"))}


@action("tikapi.key_info", NoInput, endpoint="GET /key/info")
async def key_info(ctx: ActionContext, params: NoInput) -> dict[str, Any]:
    """The API key's subscription: credits, whether it is active, when it expires.

    Only these fields are returned: the raw answer lists the authorized accounts (and the owner's
    e-mail), which must not reach workflow history.
    """
    body = await PROVIDER.request(ctx, "GET", "/key/info")
    accounts = body.get("accounts")
    return {
        "credits": as_int(body.get("credits")),
        "active": bool(body.get("active")),
        "subscription_active": bool(body.get("subscription_active")),
        "has_expired": bool(body.get("has_expired")),
        "date_expiry": as_int(body.get("date_expiry")),
        "plan_id": as_int(body.get("plan_id")),
        "accounts": len(accounts) if isinstance(accounts, list) else 0,
    }


@action("tikapi.me", NoInput, endpoint="GET /user/info")
async def me(ctx: ActionContext, params: NoInput) -> dict[str, Any]:
    """The authorized account's own profile: `user` and `stats`."""
    body = await PROVIDER.request(ctx, "GET", "/user/info")
    result = profile_result(body)
    if not result["user"]["id"] and not result["user"]["unique_id"]:
        raise PROVIDER.malformed(ctx, "/user/info has no userInfo.user")
    return result


@dataclass(frozen=True)
class ListingAction:
    """A listing action as a table row: walk `listing` with `query(params)`, read its `items`.

    Attributes:
        name: The action's name.
        input_model: Its inputs (paged, with a `cursor` in the listing's cursor type).
        listing: The endpoint it walks (its `GET` path is the documented endpoint).
        query: The declared parameters of one request, from the inputs (the cursor is added).
        items: Reads the normalized items of the pages read.
        description: What the action returns (its docstring).
    """

    name: str
    input_model: type[PagedInput]
    listing: Listing
    query: Callable[[Any], dict[str, Any]]
    items: Callable[[ActionContext, list[dict[str, Any]]], list[dict[str, Any]]]
    description: str

    def register(self) -> None:
        """Register the action that walks this listing."""

        async def run(ctx: ActionContext, params: Any) -> dict[str, Any]:
            pages = await walk(ctx, self.listing, self.query(params), start=params.cursor, pages=params.pages)
            return listing_result(self.items(ctx, pages.bodies), pages)

        run.__doc__ = self.description
        action(self.name, self.input_model, endpoint=f"GET {self.listing.path}")(run)


def _listed_users(key: str) -> Callable[[ActionContext, list[dict[str, Any]]], list[dict[str, Any]]]:
    """User items of pages that list users under `key`.

    The public web listing (`userList`) holds `{user, stats}` entries; the account's own (app)
    listing holds bare users.
    """

    def read(ctx: ActionContext, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        listed = [raw for body in bodies for raw in PROVIDER.items(ctx, body, key)]
        return [user_item(obj(raw.get("user")) if "user" in raw else raw) for raw in listed]

    return read


def _on_video(params: CommentsInput) -> dict[str, Any]:
    return {"media_id": params.media_id, "count": params.count}


def _of_user(params: FeedInput | FollowersInput | LikedPostsInput | PublicFollowersInput) -> dict[str, Any]:
    return {"count": params.count, "secUid": params.sec_uid}


#: The listings that are nothing but a walk over one endpoint.
LISTINGS = (
    ListingAction(
        "tikapi.user_posts",
        UserPostsInput,
        POSTS,
        lambda p: {"secUid": p.sec_uid, "count": p.count},
        video_items,
        "A user's public videos, newest first.",
    ),
    ListingAction(
        "tikapi.comments",
        CommentsInput,
        COMMENTS,
        _on_video,
        comment_items,
        "A video's comments (public listing).",
    ),
    ListingAction(
        "tikapi.my_comments",
        CommentsInput,
        MY_COMMENTS,
        _on_video,
        comment_items,
        "A video's comments as the account sees them (for its own videos: includes fresh ones).",
    ),
    ListingAction(
        "tikapi.replies",
        RepliesInput,
        REPLIES,
        lambda p: {"media_id": p.media_id, "comment_id": p.comment_id, "count": p.count},
        comment_items,
        "The replies under one comment.",
    ),
    ListingAction(
        "tikapi.feed",
        FeedInput,
        FEED,
        _of_user,
        video_items,
        "The account's own videos (or another user's, by `sec_uid`).",
    ),
    ListingAction(
        "tikapi.followers",
        FollowersInput,
        FOLLOWERS,
        _of_user,
        user_items,
        "The account's followers (or another user's, by `sec_uid`) as user items.",
    ),
    ListingAction(
        "tikapi.following",
        FollowersInput,
        FOLLOWING,
        _of_user,
        _listed_users("followings"),
        "The accounts the account follows (or another user follows, by `sec_uid`) as user items.",
    ),
    ListingAction(
        "tikapi.public_followers",
        PublicFollowersInput,
        PUBLIC_FOLLOWERS,
        _of_user,
        _listed_users("userList"),
        "Any user's followers, from TikTok's public listing (no account needed), as user items.",
    ),
    ListingAction(
        "tikapi.public_following",
        PublicFollowersInput,
        PUBLIC_FOLLOWING,
        _of_user,
        _listed_users("userList"),
        "The accounts any user follows, from TikTok's public listing, as user items.",
    ),
    ListingAction(
        "tikapi.liked_posts",
        LikedPostsInput,
        LIKED,
        _of_user,
        video_items,
        "The videos the account liked (or another user liked, by `sec_uid`), newest first.",
    ),
    ListingAction(
        "tikapi.conversations",
        ConversationsInput,
        CONVERSATIONS,
        lambda p: {},
        conversation_items,
        "The account's conversations with their ids and tickets (what `tikapi.send_message` needs).",
    ),
    ListingAction(
        "tikapi.message_requests",
        ConversationsInput,
        REQUESTS,
        lambda p: {},
        conversation_items,
        "Conversations waiting in the message-requests tab (accept with `tikapi.accept_request`).",
    ),
)

for _row in LISTINGS:
    _row.register()
