"""TikAPI's pagination, exactly as the official client's `next_items()` walks it, and its listings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from activities.pagination import Pages, collect_pages
from activities.registry import ActionContext
from activities.shapes import as_int
from activities.tikapi.client import PROVIDER

__all__ = ["Listing", "listing_result", "next_cursor", "typed_cursor", "walk"]


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
class Listing:
    """A paginated endpoint: its path and the one cursor parameter it declares, with its type.

    The type matters because the official client type-checks what it sends back: posts, hashtag,
    feed, messages and search take a string cursor; comment lists a number `cursor`; followers and
    conversations a number `nextCursor`.
    """

    path: str
    cursor_param: str
    cursor_type: type[str] | type[int]


async def walk(
    ctx: ActionContext,
    listing: Listing,
    params: Mapping[str, Any],
    *,
    start: str | int | None,
    pages: int,
    path: str | None = None,
) -> Pages[dict[str, Any], str | int]:
    """Read up to `pages` pages of `listing` (at `path` when its template needs filling) from `start`."""

    async def fetch(cursor: str | int | None) -> dict[str, Any]:
        query = dict(params)
        if cursor is not None:
            query[listing.cursor_param] = cursor
        return await PROVIDER.request(ctx, "GET", path or listing.path, params=query)

    def following(body: dict[str, Any]) -> str | int | None:
        return typed_cursor(ctx, listing, next_cursor(body))

    return await collect_pages(fetch, following, start=start, pages=pages)


def typed_cursor(ctx: ActionContext, listing: Listing, cursor: Any) -> str | int | None:
    """The next cursor in the JSON type `listing` declares (None at the end)."""
    if cursor is None:
        return None
    if listing.cursor_type is int:
        number = as_int(cursor)
        if number is None:
            raise PROVIDER.malformed(ctx, f"{listing.path} cursor {cursor!r} is not a number")
        return number
    if isinstance(cursor, str | int) and not isinstance(cursor, bool):
        return str(cursor)
    raise PROVIDER.malformed(ctx, f"{listing.path} cursor of type {type(cursor).__name__}")


def listing_result(items: list[dict[str, Any]], pages: Pages[Any, Any]) -> dict[str, Any]:
    """A listing action's result: `items`, `cursor` (pass it back to resume) and `has_more`."""
    return {"items": items, "cursor": pages.cursor, "has_more": pages.has_more}


POSTS = Listing("/public/posts", "cursor", str)
HASHTAG = Listing("/public/hashtag", "cursor", str)
COMMENTS = Listing("/public/comment/list", "cursor", int)
REPLIES = Listing("/public/comment/reply/list", "cursor", int)
MY_COMMENTS = Listing("/user/comment/list", "cursor", int)
MY_REPLIES = Listing("/user/comment/reply/list", "cursor", int)
FEED = Listing("/user/feed", "cursor", str)
SEARCH = Listing("/public/search/{category}", "nextCursor", str)
FOLLOWERS = Listing("/user/followers", "nextCursor", int)
FOLLOWING = Listing("/user/following", "nextCursor", int)
PUBLIC_FOLLOWERS = Listing("/public/followers", "nextCursor", int)
PUBLIC_FOLLOWING = Listing("/public/following", "nextCursor", int)
LIKED = Listing("/user/likes", "cursor", str)
CONVERSATIONS = Listing("/user/conversations", "nextCursor", int)
REQUESTS = Listing("/user/conversations/requests", "nextCursor", int)
MESSAGES = Listing("/user/messages", "nextCursor", str)
