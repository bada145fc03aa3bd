"""SocialAPI (social-api.ai): connected accounts and posts, TikTok included (list and create only).

Every call sends the key as `Authorization: Bearer …` and an `X-Request-ID` derived from the
step's idempotency key, so a SocialAPI support trace and a Temporal activity can be matched up.
Errors come in two shapes, the current `{"error": {"code": "namespace.code", "message"},
"request_id"}` and the older `{"error": "<message>", "code": "<code>"}`; `classify` reads both.
`account.reconnection_required` (older: `invalid_token`) means the *connected account's*
platform authorization lapsed (SocialAPI refreshes TikTok tokens itself until it cannot): the
account must be reconnected, so the run waits for that.

`socialapi.create_post` records the created post in the effect ledger under the step's
idempotency key and looks there before creating, and sends the key (hashed to SocialAPI's request-
id alphabet) as `Idempotency-Key` as well, for a server that deduplicates by it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    SessionExpired,
)
from activities.http import Reply
from activities.ledger import ledger_for
from activities.pagination import collect_pages
from activities.provider import Provider
from activities.ratelimit import parse_retry_after
from activities.registry import ActionContext, ActionInput, PagedInput, action

__all__ = [
    "AccountsInput",
    "CreatePostInput",
    "GetPostInput",
    "ListPostsInput",
    "TiktokOptions",
    "classify",
    "request_id",
]

NAME = "socialapi"

PostStatus = Literal["draft", "scheduled", "publishing", "published", "partial", "failed", "cancelled"]


def request_id(idempotency_key: str) -> str:
    """A stable id in SocialAPI's `^[a-zA-Z0-9_-]{1,64}$` alphabet for an idempotency key."""
    return "tf_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


def _error_fields(body: Any) -> tuple[str, str, str | None]:
    """(code, message, request_id) from either error shape."""
    if not isinstance(body, dict):
        return "", "", None
    error = body.get("error")
    rid = body.get("request_id")
    if isinstance(error, dict):
        return str(error.get("code") or ""), str(error.get("message") or ""), rid
    return str(body.get("code") or ""), str(error or body.get("message") or ""), rid


def classify(reply: Reply, account: str) -> ProviderError | None:
    """Map a SocialAPI answer (either error shape) to an error (None for a 2xx)."""
    if reply.status < 400:
        return None
    code, message, rid = _error_fields(reply.body)
    message = message or f"HTTP {reply.status}"
    if rid:
        message += f" (request_id {rid})"
    # `account.reconnection_required` (403) is the current code (the official SDK's error map);
    # `invalid_token` and `auth.invalid_token` are older names of the same condition.
    short = code.rsplit(".", 1)[-1]
    where: dict[str, Any] = {"provider": NAME, "status": reply.status, "code": code or None}
    if code == "account.reconnection_required" or short == "invalid_token":
        return SessionExpired(
            f"{message}; the connected account's platform authorization expired: reconnect it in "
            "SocialAPI (POST /accounts/connect), then resume the run",
            **where,
        )
    if reply.status in (401, 403):
        return CredentialsRejected(
            f"{message}; check the SocialAPI key (`tikflow credentials set socialapi {account} api_key=…`)",
            **where,
        )
    if reply.status == 429:
        return RateLimited(message, retry_after=parse_retry_after(reply.headers), **where)
    if reply.status == 501:
        # not_supported: the platform cannot do this at all; retrying will not change that.
        return ProviderRejected(message, **where)
    if reply.status >= 500:
        return ProviderUnavailable(message, **where)
    return ProviderRejected(message, **where)


def _auth(ctx: ActionContext, path: str, credential: Mapping[str, str]) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {credential['api_key']}",
        "X-Request-ID": request_id(ctx.idempotency_key),
    }


#: SocialAPI as a provider: the key as a bearer token, the step's request id on every call.
PROVIDER = Provider(
    name=NAME,
    base_url="https://api.social-api.ai/v1",
    fields=("api_key",),
    required=("api_key",),
    classify=classify,
    auth=_auth,
    reauth=(),
    order=50,
)


def _next_cursor(body: Any) -> str | None:
    pagination = body.get("pagination") if isinstance(body, dict) else None
    if not isinstance(pagination, dict) or not pagination.get("has_more"):
        return None
    cursor = pagination.get("next_cursor")
    return str(cursor) if cursor else None


def _target(target: dict[str, Any]) -> dict[str, Any]:
    error = target.get("error") if isinstance(target.get("error"), dict) else None
    return {
        "account_id": target.get("account_id"),
        "platform": target.get("platform"),
        "status": target.get("status"),
        "platform_post_id": target.get("platform_post_id"),
        "permalink": target.get("permalink"),
        "published_at": target.get("published_at"),
        "error": {"code": error.get("code"), "message": error.get("message")} if error else None,
    }


def _post(post: dict[str, Any]) -> dict[str, Any]:
    return {
        "post_id": post.get("id"),
        "status": post.get("status"),
        "text": post.get("text"),
        "created_at": post.get("created_at"),
        "scheduled_at": post.get("scheduled_at"),
        "published_at": post.get("published_at"),
        "targets": [_target(t) for t in PROVIDER.items(None, post, "targets", strict=False)],
    }


# --------------------------------------------------------------------------- accounts


class AccountsInput(PagedInput):
    """Inputs of `socialapi.accounts`."""

    platform: str | None = Field(default=None, description="Only accounts of this platform (e.g. `tiktok`).")
    limit: int = Field(default=25, ge=1, le=100, description="Accounts per page.")
    cursor: str | None = Field(
        default=None, description="Resume from this cursor (a previous result's `cursor`)."
    )


@action("socialapi.accounts", AccountsInput, endpoint="GET /accounts")
async def accounts(ctx: ActionContext, params: AccountsInput) -> dict[str, Any]:
    """The connected social accounts, in `items` (TikTok ones carry follower and video counts)."""

    async def fetch(cursor: str | None) -> dict[str, Any]:
        query = {"platform": params.platform, "limit": params.limit, "cursor": cursor}
        return await PROVIDER.request(ctx, "GET", "/accounts", params=query)

    pages = await collect_pages(fetch, _next_cursor, start=params.cursor, pages=params.pages)
    items = [
        {
            "id": a.get("id"),
            "platform": a.get("platform"),
            "name": a.get("name"),
            "username": a.get("username"),
            "metadata": a.get("metadata") or {},
        }
        for body in pages.bodies
        for a in PROVIDER.items(None, body, "data", strict=False)
    ]
    return {"items": items, "cursor": pages.cursor, "has_more": pages.has_more}


# --------------------------------------------------------------------------- posts


class TiktokOptions(BaseModel):
    """TikTok settings of a post (`platform_data.tiktok`)."""

    model_config = ConfigDict(extra="forbid")

    media_type: Literal["video", "photo"] | None = Field(
        default=None, description="Kind of post; SocialAPI's default is video."
    )
    privacy_level: str | None = Field(
        default=None,
        description="Who can see it; SocialAPI's default is the most private level the creator allows.",
    )


class CreatePostInput(ActionInput):
    """Inputs of `socialapi.create_post`."""

    account_ids: list[str] = Field(min_length=1, description="Connected account ids (`acc_…`) to post to.")
    text: str = Field(default="", description="The post's text.")
    media_ids: list[str] = Field(default_factory=list, description="Uploaded media ids or public media URLs.")
    tiktok: TiktokOptions | None = Field(default=None, description="TikTok settings, for TikTok accounts.")
    scheduled_at: AwareDatetime | None = Field(
        default=None, description="Publish at this time (with a time zone); default: publish now."
    )


@action("socialapi.create_post", CreatePostInput, endpoint="POST /posts", side_effect=True)
async def create_post(ctx: ActionContext, params: CreatePostInput) -> dict[str, Any]:
    """Publish (or schedule) a post to connected accounts, once per step however often retried."""
    ledger = ledger_for(ctx.services)
    key = f"socialapi.create_post:{ctx.idempotency_key}"
    recorded = ledger.get(key)
    if recorded is not None:
        return {**recorded, "already_done": True}
    body: dict[str, Any] = {
        "account_ids": params.account_ids,
        "text": params.text,
        "media_ids": params.media_ids,
    }
    if params.tiktok is not None:
        body["platform_data"] = {"tiktok": params.tiktok.model_dump(exclude_none=True)}
    if params.scheduled_at is not None:
        body["scheduled_at"] = params.scheduled_at.isoformat()
    answer = await PROVIDER.request(
        ctx, "POST", "/posts", json_body=body, headers={"Idempotency-Key": request_id(ctx.idempotency_key)}
    )
    post = answer.get("data", answer)
    normalized = _post(post if isinstance(post, dict) else {})
    if not normalized["post_id"]:
        raise ProviderUnavailable("SocialAPI created a post but answered without its id", provider=NAME)
    ledger.put(key, normalized, run=ctx.run)
    return {**normalized, "already_done": False}


class GetPostInput(ActionInput):
    """Inputs of `socialapi.get_post`."""

    post_id: str = Field(min_length=1, description="The post's id (`p_…`).")


@action("socialapi.get_post", GetPostInput, endpoint="GET /posts/{id}")
async def get_post(ctx: ActionContext, params: GetPostInput) -> dict[str, Any]:
    """One post: its overall `status` and each target's status, platform post id and error."""
    answer = await PROVIDER.request(ctx, "GET", f"/posts/{params.post_id}")
    post = answer.get("data", answer)
    if not isinstance(post, dict) or not post.get("id"):
        raise PROVIDER.malformed(ctx, f"GET /posts/{params.post_id} answered no post")
    return {**_post(post), "raw": post}


class ListPostsInput(PagedInput):
    """Inputs of `socialapi.list_posts`."""

    status: PostStatus | None = Field(default=None, description="Only posts in this status.")
    platform: str | None = Field(default=None, description="Only posts to this platform (e.g. `tiktok`).")
    account_ids: list[str] = Field(default_factory=list, description="Only posts to these accounts.")
    limit: int = Field(default=25, ge=1, le=100, description="Posts per page.")
    cursor: str | None = Field(
        default=None, description="Resume from this cursor (a previous result's `cursor`)."
    )


@action("socialapi.list_posts", ListPostsInput, endpoint="GET /posts")
async def list_posts(ctx: ActionContext, params: ListPostsInput) -> dict[str, Any]:
    """Posts, newest first, in `items`; `cursor` resumes where this call stopped."""

    async def fetch(cursor: str | None) -> dict[str, Any]:
        query = {
            "status": params.status,
            "platform": params.platform,
            "account_ids": ",".join(params.account_ids) or None,
            "limit": params.limit,
            "cursor": cursor,
        }
        return await PROVIDER.request(ctx, "GET", "/posts", params=query)

    pages = await collect_pages(fetch, _next_cursor, start=params.cursor, pages=params.pages)
    items = [_post(p) for body in pages.bodies for p in PROVIDER.items(None, body, "data", strict=False)]
    return {"items": items, "cursor": pages.cursor, "has_more": pages.has_more}
