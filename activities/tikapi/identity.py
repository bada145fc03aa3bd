"""Who "we" are, and what this worker already did: the two halves of the idempotency checks."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from activities.provider import obj
from activities.registry import ActionContext
from activities.shapes import user_item
from activities.tikapi.client import CHECK_PAGES, PAGE_SIZE, PROVIDER
from activities.tikapi.paging import Listing, walk
from activities.tikapi.shapes import comment_items

__all__ = ["Me", "Memory", "done_before", "find_own", "remember", "whoami"]

#: Idempotency keys remembered per worker (the fast path before the listing check).
_REMEMBERED = 2048


@dataclass
class Memory:
    """What this worker remembers for TikAPI (`Services.local(Memory)`).

    Attributes:
        me: Who each account is, by (account name, key fingerprint).
        done: Results already returned, by idempotency key (the newest `_REMEMBERED`).
    """

    me: dict[tuple[str, str], Me] = field(default_factory=dict)
    done: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)


@dataclass(frozen=True)
class Me:
    """The TikTok user behind an account key."""

    user_id: str
    unique_id: str

    def wrote(self, author_id: str, author: str) -> bool:
        """Whether an item by `author_id` / `author` (unique id) is ours."""
        return bool(author_id and author_id == self.user_id) or bool(author and author == self.unique_id)


async def whoami(ctx: ActionContext) -> Me:
    """The TikTok user behind the account key, learned once per account and worker.

    Cached by account name and a fingerprint of the key, so re-authorizing the name as a
    different TikTok user is noticed.
    """
    creds = PROVIDER.credential(ctx, "/user/info")
    fingerprint = hashlib.sha256(creds["account_key"].encode()).hexdigest()[:16]
    cache = ctx.services.local(Memory).me
    key = (ctx.account, fingerprint)
    if key not in cache:
        body = await PROVIDER.request(ctx, "GET", "/user/info")
        user = user_item(obj(obj(body.get("userInfo")).get("user")))
        if not user["id"] and not user["unique_id"]:
            raise PROVIDER.malformed(ctx, "/user/info has no userInfo.user")
        cache[key] = Me(user_id=user["id"], unique_id=user["unique_id"])
    return cache[key]


def done_before(ctx: ActionContext) -> dict[str, Any] | None:
    """The result this worker already returned for this idempotency key, if any."""
    done = ctx.services.local(Memory).done
    result = done.get(ctx.idempotency_key)
    return None if result is None else {**result, "already_done": True}


def remember(ctx: ActionContext, result: dict[str, Any]) -> dict[str, Any]:
    """Remember `result` under this call's idempotency key (for a retry on this worker)."""
    done = ctx.services.local(Memory).done
    done[ctx.idempotency_key] = result
    while len(done) > _REMEMBERED:
        done.popitem(last=False)
    return result


async def find_own(
    ctx: ActionContext,
    listing: Listing,
    params: Mapping[str, Any],
    text: str,
) -> dict[str, Any] | None:
    """Our comment with `text` among the first `CHECK_PAGES` pages of a comment listing."""
    me = await whoami(ctx)
    wanted = text.strip()
    pages = await walk(ctx, listing, {**params, "count": PAGE_SIZE}, start=None, pages=CHECK_PAGES)
    for comment in comment_items(ctx, pages.bodies):
        if comment["text"].strip() == wanted and me.wrote(comment["user_id"], comment["author"]):
            return comment
    return None
