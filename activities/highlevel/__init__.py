"""HighLevel (LeadConnector) Social Planner: the connected accounts, TikTok profiles and posts.

Every call sends the location's token as `Authorization: Bearer …` and `Version: 2021-07-28`.
The location and the user a post is created by default to the credential's `location_id` and
`user_id`. HighLevel's five `X-RateLimit-*` headers (burst 100 per 10 s, 200,000 per day) are read
by the shared limiter in `activities.http.send`; `classify` maps the error bodies
(`{statusCode, message, error}`, `message` a list on 422) into the error tree.

`highlevel.create_post` is a side effect HighLevel offers no idempotency key for, so it writes
down in the effect ledger that it is about to post (under the step's idempotency key, which names
the run) and then the post it made. A retry that finds the post recorded returns it; one that finds
only the note reads the location's recent posts, and one with the same summary, media and account
created since that earlier attempt began is taken as ours (the attempt died before it could record
it). Without such a note nothing is looked up: a new run, even with the same text, posts anew.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from activities.http import Reply, listed, malformed, send
from activities.ledger import ledger_for
from activities.pagination import collect_pages
from activities.provider import Provider
from activities.ratelimit import parse_retry_after
from activities.registry import ActionContext, ActionInput, PagedInput, action

__all__ = [
    "API_VERSION",
    "AccountsInput",
    "CreatePostInput",
    "GetPostInput",
    "ListPostsInput",
    "PostMedia",
    "TiktokPostDetails",
    "TiktokProfileInput",
    "classify",
]

NAME = "highlevel"
API_VERSION = "2021-07-28"

#: How much earlier than an unfinished attempt's note HighLevel's clock may date the post it made.
CLOCK_SKEW = timedelta(minutes=5)
_DUPLICATE_SCAN_LIMIT = 50


def _object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (providers omit or null fields)."""
    return value if isinstance(value, dict) else {}


def classify(reply: Reply, account: str) -> ProviderError | None:
    """Map a HighLevel answer to an error (None for a 2xx)."""
    if reply.status < 400:
        return None
    body = _object(reply.body)
    raw_message = body.get("message") or body.get("error") or f"HTTP {reply.status}"
    # 422 answers carry a list of validation messages.
    message = "; ".join(map(str, raw_message)) if isinstance(raw_message, list) else str(raw_message)
    where: dict[str, Any] = {"provider": NAME, "status": reply.status, "code": reply.status}
    if reply.status == 401:
        return CredentialsRejected(
            f"{message}; the location token was refused: set a valid one with "
            f"`tikflow credentials set highlevel {account} token=…`",
            **where,
        )
    if reply.status == 403:
        return CredentialsRejected(f"{message}; the token has no access to this location or scope", **where)
    if reply.status == 429:
        return RateLimited(message, retry_after=_retry_after(reply.headers), **where)
    if reply.status >= 500:
        return ProviderUnavailable(message, **where)
    # 400, 404, 422: the request itself was refused.
    return ProviderRejected(message, **where)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` if sent, else the burst window (`X-RateLimit-Interval-Milliseconds`)."""
    seconds = parse_retry_after(headers)
    if seconds is not None:
        return seconds
    interval_ms = headers.get("x-ratelimit-interval-milliseconds")
    try:
        return float(interval_ms) / 1000 if interval_ms is not None else None
    except ValueError:
        return None


def _auth(ctx: ActionContext, path: str, credential: Mapping[str, str]) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {credential['token']}",
        "Version": API_VERSION,
        "Accept": "application/json",
    }


#: HighLevel as a provider (payloads come in `results`).
PROVIDER = Provider(
    name=NAME,
    base_url="https://services.leadconnectorhq.com",
    fields=("token", "location_id", "user_id"),
    required=("token",),
    classify=classify,
    auth=_auth,
    envelope="results",
    retry_after=_retry_after,
    order=30,
)


def _credential(ctx: ActionContext, location_id: str | None, *, user: bool = False) -> dict[str, str]:
    required = ["token"]
    if not location_id:
        required.append("location_id")
    if user:
        required.append("user_id")
    return ctx.services.credentials.get(NAME, ctx.account, required=required)


async def _call(
    ctx: ActionContext, token: str, method: str, path: str, json_body: Any = None
) -> dict[str, Any]:
    reply = await send(
        ctx,
        NAME,
        method,
        ctx.services.settings.base_url(NAME) + path,
        classify=classify,
        json_body=json_body,
        headers={"Authorization": f"Bearer {token}", "Version": API_VERSION, "Accept": "application/json"},
    )
    results = reply.body.get("results")
    if not isinstance(results, dict):
        raise malformed(NAME, f"{method} {path} has no `results` object", account=ctx.account)
    return results


def _objects(results: dict[str, Any], key: str, ctx: ActionContext) -> list[dict[str, Any]]:
    """The objects listed under `results.<key>` (absent = none); a non-list is a malformed answer."""
    return [
        item
        for item in listed(results.get(key), f"results.{key}", NAME, ctx.account)
        if isinstance(item, dict)
    ]


def _iso(moment: datetime) -> str:
    """HighLevel's timestamp format: UTC with milliseconds and a `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _post(post: dict[str, Any]) -> dict[str, Any]:
    """A post with stable keys (HighLevel's own names vary between camelCase and `_id`).

    Raises:
        ProviderUnavailable: `accountIds` or `media` is not a list.
    """
    account_ids = listed(post.get("accountIds"), "post.accountIds", NAME) or (
        [post["accountId"]] if post.get("accountId") else []
    )
    media = listed(post.get("media"), "post.media", NAME)
    return {
        "post_id": post.get("_id") or post.get("id"),
        "status": post.get("status"),
        "summary": post.get("summary"),
        "platform": post.get("platform"),
        "account_ids": list(account_ids),
        "platform_post_id": post.get("postId"),
        "error": post.get("error") or None,
        "created_at": post.get("createdAt"),
        "published_at": post.get("publishedAt"),
        "schedule_date": post.get("scheduleDate") or post.get("displayDate"),
        "media_urls": [m.get("url") for m in media if isinstance(m, dict)],
    }


# --------------------------------------------------------------------------- accounts


class AccountsInput(ActionInput):
    """Inputs of `highlevel.accounts`."""

    location_id: str | None = Field(
        default=None, description="Location (sub-account); default: the credential's."
    )


@action("highlevel.accounts", AccountsInput, endpoint="GET /social-media-posting/{locationId}/accounts")
async def accounts(ctx: ActionContext, params: AccountsInput) -> dict[str, Any]:
    """The social accounts connected to the location, in `items` (and the account groups)."""
    credential = _credential(ctx, params.location_id)
    location = params.location_id or credential["location_id"]
    results = await _call(ctx, credential["token"], "GET", f"/social-media-posting/{location}/accounts")
    items = [
        {
            "id": a.get("id"),
            "name": a.get("name"),
            "platform": a.get("platform"),
            "type": a.get("type"),
            "profile_id": a.get("profileId"),
            "oauth_id": a.get("oauthId"),
            "expire": a.get("expire"),
            "is_expired": bool(a.get("isExpired")),
            "meta": a.get("meta") or {},
        }
        for a in _objects(results, "accounts", ctx)
    ]
    return {"items": items, "groups": listed(results.get("groups"), "results.groups", NAME, ctx.account)}


class TiktokProfileInput(ActionInput):
    """Inputs of `highlevel.tiktok_profile`."""

    account_id: str = Field(min_length=1, description="The TikTok account's id (from `highlevel.accounts`).")
    location_id: str | None = Field(
        default=None, description="Location (sub-account); default: the credential's."
    )


@action(
    "highlevel.tiktok_profile",
    TiktokProfileInput,
    endpoint="GET /social-media-posting/oauth/{locationId}/tiktok/accounts/{accountId}",
)
async def tiktok_profile(ctx: ActionContext, params: TiktokProfileInput) -> dict[str, Any]:
    """The TikTok profile(s) behind a connected account, in `items`."""
    credential = _credential(ctx, params.location_id)
    location = params.location_id or credential["location_id"]
    results = await _call(
        ctx,
        credential["token"],
        "GET",
        f"/social-media-posting/oauth/{location}/tiktok/accounts/{params.account_id}",
    )
    items = [
        {
            "id": p.get("id"),
            "name": p.get("name"),
            "username": p.get("username"),
            "avatar": p.get("avatar"),
            "verified": bool(p.get("verified")),
            "is_connected": bool(p.get("isConnected")),
            "type": p.get("type"),
        }
        for p in _objects(results, "profile", ctx)
    ]
    return {"items": items}


# --------------------------------------------------------------------------- posts


class PostMedia(BaseModel):
    """One media item of a post."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Public URL of the image or video.")
    type: str | None = Field(default=None, description="MIME type, e.g. `video/mp4`.")
    caption: str | None = Field(default=None, description="Caption of this item.")
    thumbnail: str | None = Field(default=None, description="Thumbnail URL (videos).")


class TiktokPostDetails(BaseModel):
    """TikTok settings of a post (HighLevel's `tiktokPostDetails`)."""

    model_config = ConfigDict(extra="forbid")

    privacy_level: Literal["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"] = Field(
        description="Who can see the post."
    )
    enable_comment: bool = Field(default=True, description="Allow comments.")
    enable_duet: bool = Field(default=True, description="Allow duets.")
    enable_stitch: bool = Field(default=True, description="Allow stitches.")
    video_disclosure: bool = Field(default=False, description="Disclose the video as commercial content.")
    promote_your_brand: bool = Field(default=False, description="The video promotes your own brand.")
    promote_other_brand: bool = Field(
        default=False, description="The video promotes another brand (paid partnership)."
    )

    def as_api(self) -> dict[str, Any]:
        """The camelCase body HighLevel expects."""
        return {
            "privacyLevel": self.privacy_level,
            "enableComment": self.enable_comment,
            "enableDuet": self.enable_duet,
            "enableStitch": self.enable_stitch,
            "videoDisclosure": self.video_disclosure,
            "promoteYourBrand": self.promote_your_brand,
            "promoteOtherBrand": self.promote_other_brand,
        }


class CreatePostInput(ActionInput):
    """Inputs of `highlevel.create_post`."""

    account_ids: list[str] = Field(min_length=1, description="Connected account ids to post to.")
    summary: str = Field(
        default="", description="The post's text (trimmed by HighLevel to each platform's limit)."
    )
    media: list[PostMedia] = Field(default_factory=list, description="Images or videos to attach.")
    type: Literal["post", "story", "reel"] = Field(default="post", description="Kind of post.")
    status: Literal["draft", "scheduled", "published"] | None = Field(
        default=None, description="Initial status; default: HighLevel's (publish now, or schedule)."
    )
    schedule_date: AwareDatetime | None = Field(
        default=None, description="When to publish (with a time zone)."
    )
    tags: list[str] = Field(default_factory=list, description="Tag values.")
    tiktok: TiktokPostDetails | None = Field(
        default=None, description="TikTok settings, for TikTok accounts."
    )
    location_id: str | None = Field(
        default=None, description="Location (sub-account); default: the credential's."
    )
    user_id: str | None = Field(
        default=None, description="HighLevel user the post is created by; default: the credential's."
    )


def _same_post(post: dict[str, Any], params: CreatePostInput, since: datetime) -> bool:
    """Whether a listed post is the one these inputs would create (made since `since`)."""
    if (post["summary"] or "") != params.summary:
        return False
    if sorted(post["media_urls"]) != sorted(m.url for m in params.media):
        return False
    if not set(post["account_ids"]) & set(params.account_ids):
        return False
    created = _parse_time(post["created_at"])
    return created is None or created >= since


async def _find_created(
    ctx: ActionContext, token: str, location: str, params: CreatePostInput, since: datetime
) -> dict[str, Any] | None:
    """A post matching `params` created since `since`, if any."""
    now = datetime.now(UTC)
    # The list filters on the post's display date, which for a scheduled post lies ahead.
    until = max(now, params.schedule_date or now) + timedelta(days=1)
    results = await _call(
        ctx,
        token,
        "POST",
        f"/social-media-posting/{location}/posts/list",
        {
            "type": "all",
            "accounts": ",".join(params.account_ids),
            "skip": "0",
            "limit": str(_DUPLICATE_SCAN_LIMIT),
            "fromDate": _iso(since),
            "toDate": _iso(until),
            "includeUsers": "false",
        },
    )
    for raw in _objects(results, "posts", ctx):
        if _same_post(_post(raw), params, since):
            return _post(raw)
    return None


@action(
    "highlevel.create_post",
    CreatePostInput,
    endpoint="POST /social-media-posting/{locationId}/posts",
    side_effect=True,
)
async def create_post(ctx: ActionContext, params: CreatePostInput) -> dict[str, Any]:
    """Create (publish, schedule or draft) a Social Planner post, once per step however often retried."""
    credential = _credential(ctx, params.location_id, user=params.user_id is None)
    location = params.location_id or credential["location_id"]
    ledger = ledger_for(ctx.services)
    key = f"highlevel.create_post:{ctx.idempotency_key}"
    recorded = ledger.get(key)
    if recorded is not None and not recorded.get("pending"):
        return {**recorded, "already_done": True}
    if recorded is not None:
        # An earlier attempt of this very step was about to post and never recorded the outcome.
        began = datetime.fromtimestamp(float(recorded.get("started_at", 0)), UTC) - CLOCK_SKEW
        found = await _find_created(ctx, credential["token"], location, params, began)
        if found is not None:
            result = {"post_id": found["post_id"], "status": found["status"]}
            ledger.put(key, result, run=ctx.run)
            return {**result, "already_done": True}
    else:
        ledger.put(key, {"pending": True, "started_at": time.time()}, run=ctx.run)
    body: dict[str, Any] = {
        "accountIds": params.account_ids,
        "userId": params.user_id or credential["user_id"],
        "type": params.type,
        "summary": params.summary,
        "media": [m.model_dump(exclude_none=True) for m in params.media],
        "tags": params.tags,
    }
    if params.status is not None:
        body["status"] = params.status
    if params.schedule_date is not None:
        body["scheduleDate"] = _iso(params.schedule_date)
    if params.tiktok is not None:
        body["tiktokPostDetails"] = params.tiktok.as_api()
    results = await _call(ctx, credential["token"], "POST", f"/social-media-posting/{location}/posts", body)
    post = _object(results.get("post"))
    result = {"post_id": _post(post)["post_id"], "status": post.get("status")}
    if not result["post_id"]:
        raise ProviderUnavailable("HighLevel created a post but answered without its id", provider=NAME)
    ledger.put(key, result, run=ctx.run)
    return {**result, "already_done": False}


class GetPostInput(ActionInput):
    """Inputs of `highlevel.get_post`."""

    post_id: str = Field(min_length=1, description="The post's id (from `highlevel.create_post`).")
    location_id: str | None = Field(
        default=None, description="Location (sub-account); default: the credential's."
    )


@action("highlevel.get_post", GetPostInput, endpoint="GET /social-media-posting/{locationId}/posts/{id}")
async def get_post(ctx: ActionContext, params: GetPostInput) -> dict[str, Any]:
    """One post: `status` (published, failed, scheduled, …), `error`, `platform_post_id` and `raw`."""
    credential = _credential(ctx, params.location_id)
    location = params.location_id or credential["location_id"]
    results = await _call(
        ctx, credential["token"], "GET", f"/social-media-posting/{location}/posts/{params.post_id}"
    )
    post = results.get("post")
    if not isinstance(post, dict):
        raise malformed(
            NAME,
            f"the answer about post {params.post_id} has no `results.post` object",
            account=ctx.account,
        )
    return {**_post(post), "raw": post}


class ListPostsInput(PagedInput):
    """Inputs of `highlevel.list_posts`."""

    type: Literal[
        "all", "recent", "scheduled", "draft", "failed", "in_review", "published", "in_progress", "deleted"
    ] = Field(default="all", description="Which posts to list.")
    account_ids: list[str] = Field(
        default_factory=list, description="Only posts of these accounts (default: all)."
    )
    from_date: AwareDatetime | None = Field(
        default=None, description="From this date (default: 30 days ago)."
    )
    to_date: AwareDatetime | None = Field(
        default=None, description="Until this date (default: 30 days ahead)."
    )
    post_type: Literal["post", "story", "reel"] | None = Field(
        default=None, description="Only this kind of post."
    )
    limit: int = Field(default=20, ge=1, le=100, description="Posts per page.")
    skip: int = Field(
        default=0, ge=0, description="Start after this many posts (a previous result's `next_skip`)."
    )
    location_id: str | None = Field(
        default=None, description="Location (sub-account); default: the credential's."
    )


@action("highlevel.list_posts", ListPostsInput, endpoint="POST /social-media-posting/{locationId}/posts/list")
async def list_posts(ctx: ActionContext, params: ListPostsInput) -> dict[str, Any]:
    """The location's posts in `items`, paged by skip/limit; `next_skip` resumes."""
    credential = _credential(ctx, params.location_id)
    location = params.location_id or credential["location_id"]
    now = datetime.now(UTC)
    query: dict[str, Any] = {
        "type": params.type,
        "limit": str(params.limit),
        "fromDate": _iso(params.from_date or now - timedelta(days=30)),
        "toDate": _iso(params.to_date or now + timedelta(days=30)),
        "includeUsers": "false",
    }
    if params.account_ids:
        query["accounts"] = ",".join(params.account_ids)
    if params.post_type is not None:
        query["postType"] = params.post_type

    async def fetch(skip: int | None) -> tuple[int, dict[str, Any]]:
        start = skip or 0
        results = await _call(
            ctx,
            credential["token"],
            "POST",
            f"/social-media-posting/{location}/posts/list",
            {**query, "skip": str(start)},
        )
        return start, results

    def next_skip(page: tuple[int, dict[str, Any]]) -> int | None:
        start, results = page
        posts = listed(results.get("posts"), "results.posts", NAME, ctx.account)
        count = results.get("count")
        following = start + len(posts)
        ends = len(posts) < params.limit or (isinstance(count, int | float) and following >= count)
        return None if ends else following

    pages = await collect_pages(fetch, next_skip, start=params.skip or None, pages=params.pages)
    items = [_post(p) for _, results in pages.bodies for p in _objects(results, "posts", ctx)]
    count = pages.bodies[-1][1].get("count")
    return {
        "items": items,
        "count": int(count) if isinstance(count, int | float) else None,
        "next_skip": pages.cursor,
        "has_more": pages.has_more,
    }
