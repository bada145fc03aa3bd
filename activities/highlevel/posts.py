"""Social Planner posts: create (once per step however often retried), read one, list.

`highlevel.create_post` is a side effect HighLevel offers no idempotency key for, so it writes
down in the effect ledger that it is about to post (under the step's idempotency key, which names
the run) and then the post it made. A retry that finds the post recorded returns it; one that finds
only the note reads the location's recent posts, and one with the same summary, media and account
created since that earlier attempt began is taken as ours (the attempt died before it could record
it). Without such a note nothing is looked up: a new run, even with the same text, posts anew.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from activities.errors import ProviderUnavailable
from activities.highlevel.client import PROVIDER, LocationId, location_credential
from activities.highlevel.errors import NAME
from activities.highlevel.oauth import request
from activities.http import listed
from activities.ledger import ledger_for
from activities.pagination import collect_pages
from activities.provider import obj
from activities.registry import ActionContext, ActionInput, PagedInput, action

__all__ = [
    "CLOCK_SKEW",
    "CreatePostInput",
    "GetPostInput",
    "ListPostsInput",
    "PostMedia",
    "TiktokPostDetails",
]

#: How much earlier than an unfinished attempt's note HighLevel's clock may date the post it made.
CLOCK_SKEW = timedelta(minutes=5)
_DUPLICATE_SCAN_LIMIT = 50


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
    location_id: LocationId = None
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


async def _posts_page(
    ctx: ActionContext, credential: dict[str, str], location: str, query: dict[str, Any]
) -> dict[str, Any]:
    """One page of the location's post list (HighLevel takes the query as a JSON body)."""
    return await request(
        ctx, "POST", f"/social-media-posting/{location}/posts/list", credential=credential, json_body=query
    )


def _listed_posts(ctx: ActionContext, results: dict[str, Any]) -> list[dict[str, Any]]:
    return PROVIDER.items(ctx, results, "posts", what="results.posts", strict=False)


async def _find_created(
    ctx: ActionContext, credential: dict[str, str], location: str, params: CreatePostInput, since: datetime
) -> dict[str, Any] | None:
    """A post matching `params` created since `since`, if any."""
    now = datetime.now(UTC)
    # The list filters on the post's display date, which for a scheduled post lies ahead.
    until = max(now, params.schedule_date or now) + timedelta(days=1)
    results = await _posts_page(
        ctx,
        credential,
        location,
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
    for raw in _listed_posts(ctx, results):
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
    credential, location = location_credential(ctx, params.location_id, user=params.user_id is None)
    ledger = ledger_for(ctx.services)
    key = f"highlevel.create_post:{ctx.idempotency_key}"
    recorded = ledger.get(key)
    if recorded is not None and not recorded.get("pending"):
        return {**recorded, "already_done": True}
    if recorded is not None:
        # An earlier attempt of this very step was about to post and never recorded the outcome.
        began = datetime.fromtimestamp(float(recorded.get("started_at", 0)), UTC) - CLOCK_SKEW
        found = await _find_created(ctx, credential, location, params, began)
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
    results = await request(
        ctx, "POST", f"/social-media-posting/{location}/posts", credential=credential, json_body=body
    )
    post = obj(results.get("post"))
    result = {"post_id": _post(post)["post_id"], "status": post.get("status")}
    if not result["post_id"]:
        raise ProviderUnavailable("HighLevel created a post but answered without its id", provider=NAME)
    ledger.put(key, result, run=ctx.run)
    return {**result, "already_done": False}


class GetPostInput(ActionInput):
    """Inputs of `highlevel.get_post`."""

    post_id: str = Field(min_length=1, description="The post's id (from `highlevel.create_post`).")
    location_id: LocationId = None


@action("highlevel.get_post", GetPostInput, endpoint="GET /social-media-posting/{locationId}/posts/{id}")
async def get_post(ctx: ActionContext, params: GetPostInput) -> dict[str, Any]:
    """One post: `status` (published, failed, scheduled, …), `error`, `platform_post_id` and `raw`."""
    credential, location = location_credential(ctx, params.location_id)
    results = await request(
        ctx, "GET", f"/social-media-posting/{location}/posts/{params.post_id}", credential=credential
    )
    post = results.get("post")
    if not isinstance(post, dict):
        raise PROVIDER.malformed(ctx, f"the answer about post {params.post_id} has no `results.post` object")
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
    location_id: LocationId = None


@action("highlevel.list_posts", ListPostsInput, endpoint="POST /social-media-posting/{locationId}/posts/list")
async def list_posts(ctx: ActionContext, params: ListPostsInput) -> dict[str, Any]:
    """The location's posts in `items`, paged by skip/limit; `next_skip` resumes."""
    credential, location = location_credential(ctx, params.location_id)
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
        return start, await _posts_page(ctx, credential, location, {**query, "skip": str(start)})

    def next_skip(page: tuple[int, dict[str, Any]]) -> int | None:
        start, results = page
        posts = listed(results.get("posts"), "results.posts", NAME, ctx.account)
        count = results.get("count")
        following = start + len(posts)
        ends = len(posts) < params.limit or (isinstance(count, int | float) and following >= count)
        return None if ends else following

    pages = await collect_pages(fetch, next_skip, start=params.skip or None, pages=params.pages)
    items = [_post(p) for _, results in pages.bodies for p in _listed_posts(ctx, results)]
    count = pages.bodies[-1][1].get("count")
    return {
        "items": items,
        "count": int(count) if isinstance(count, int | float) else None,
        "next_skip": pages.cursor,
        "has_more": pages.has_more,
    }
