"""TikTok's Content Posting API: creator info, direct posts and inbox drafts, publish status.

Posting a video is init → upload → poll:

- `tiktok.publish_video` (direct post; checks `creator_info` first, as TikTok requires) and
  `tiktok.upload_draft` (to the creator's inbox) init the post with `FILE_UPLOAD` (then PUT the
  file in chunks to the returned `upload_url`) or `PULL_FROM_URL` (TikTok fetches it);
- `tiktok.publish_status` reports PROCESSING_UPLOAD → … → PUBLISH_COMPLETE / SEND_TO_USER_INBOX.

Init is not idempotent at TikTok, so the `publish_id` goes into the effect ledger under the step's
idempotency key the moment TikTok answers, and upload progress after every chunk: a retried
activity continues that publish (`already_done: true`) instead of posting the video again.
TikTok offers neither an idempotency key nor a way to list pending publishes, so an init TikTok
accepted whose answer never reached the ledger (a lost response, a worker death in between) cannot
be found again. With FILE_UPLOAD that is harmless: nothing is ever uploaded to it, so it never
publishes, and the retry inits afresh. With PULL_FROM_URL TikTok fetches the video itself, so a
second init could post it twice: such an init is recorded as pending *before* it is sent and
cleared when TikTok answers (its publish_id) or provably did not act (an error answer, a refused
connection). A retry that finds it still pending fails the step with `publish_outcome_unknown`
and what to check, instead of guessing: at most once, never twice.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, model_validator

from activities.errors import ProviderError, ProviderRejected, ProviderUnavailable
from activities.http import listed
from activities.ledger import EffectLedger, ledger_for
from activities.registry import ActionContext, ActionInput, action
from activities.tiktok.chunks import DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES, ChunkPlan, plan_chunks
from activities.tiktok.client import PROVIDER
from activities.tiktok.errors import NAME
from activities.tiktok.oauth import api
from activities.tiktok.upload import UPLOAD_URL_SAFE_S, file_size, upload_chunks

__all__ = [
    "CreatorInfoInput",
    "PrivacyLevel",
    "PublishStatusInput",
    "PublishVideoInput",
    "UploadDraftInput",
    "VideoSourceInput",
]

PrivacyLevel = Literal["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"]

#: Statuses after which nothing more will be uploaded for a publish.
_UPLOAD_FINISHED = frozenset({"PROCESSING_DOWNLOAD", "SEND_TO_USER_INBOX", "PUBLISH_COMPLETE"})


class CreatorInfoInput(ActionInput):
    """Inputs of `tiktok.creator_info` (none: it describes the authorized creator)."""


async def _creator_info(ctx: ActionContext) -> dict[str, Any]:
    data = await api(ctx, "POST", "/v2/post/publish/creator_info/query/", json_body={})
    options = data.get("privacy_level_options")
    # Never empty in TikTok's answer; garbage here must not read as "the creator may post nothing".
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise PROVIDER.malformed(ctx, "creator_info has no `privacy_level_options` list of strings")
    return {
        "creator_username": data.get("creator_username"),
        "creator_nickname": data.get("creator_nickname"),
        "creator_avatar_url": data.get("creator_avatar_url"),
        "privacy_level_options": options,
        "comment_disabled": bool(data.get("comment_disabled")),
        "duet_disabled": bool(data.get("duet_disabled")),
        "stitch_disabled": bool(data.get("stitch_disabled")),
        "max_video_post_duration_sec": data.get("max_video_post_duration_sec"),
    }


@action(
    "tiktok.creator_info",
    CreatorInfoInput,
    endpoint="POST /v2/post/publish/creator_info/query/",
)
async def creator_info(ctx: ActionContext, params: CreatorInfoInput) -> dict[str, Any]:
    """What the creator may post right now: allowed privacy levels, disabled interactions, max duration."""
    return await _creator_info(ctx)


class VideoSourceInput(ActionInput):
    """Where the video comes from: a local file (uploaded in chunks) or a URL TikTok pulls."""

    source: Literal["FILE_UPLOAD", "PULL_FROM_URL"] = Field(
        default="FILE_UPLOAD",
        description="FILE_UPLOAD sends `file_path` in chunks; PULL_FROM_URL lets TikTok fetch `video_url`.",
    )
    file_path: str | None = Field(
        default=None, description="Local video file (mp4, mov or webm) for FILE_UPLOAD."
    )
    video_url: str | None = Field(
        default=None,
        pattern=r"^https://",
        description="Public https URL on a domain verified with TikTok, for PULL_FROM_URL.",
    )
    # Not `ge=MIN_CHUNK_BYTES` on purpose (issue 17, point 4): the input cannot know the file's
    # size, and a file under 5 MB goes whole whatever the chunk size, so a small chunk_size is
    # harmless there and lets the sandbox (whose minimum is configurable) exercise chunking on
    # small files. For a file of 5 MB or more, `plan_chunks` refuses a chunk under 5 MB before any
    # request is sent.
    chunk_size: int = Field(
        default=DEFAULT_CHUNK_BYTES,
        ge=1,
        le=MAX_CHUNK_BYTES,
        description=(
            "Bytes per upload chunk. TikTok accepts 5-64 MB; under 5 MB is refused for files of "
            "5 MB or more (smaller files go whole; smaller chunks are for the sandbox and tests)."
        ),
    )

    @model_validator(mode="after")
    def _source_matches(self) -> VideoSourceInput:
        if self.source == "FILE_UPLOAD" and not self.file_path:
            raise ValueError("source FILE_UPLOAD needs file_path")
        if self.source == "PULL_FROM_URL" and not self.video_url:
            raise ValueError("source PULL_FROM_URL needs video_url")
        return self


class PublishVideoInput(VideoSourceInput):
    """Inputs of `tiktok.publish_video`."""

    title: str = Field(default="", max_length=2200, description="Caption, with #hashtags and @mentions.")
    privacy_level: PrivacyLevel = Field(
        description="Who can see the post; must be one of the creator's `privacy_level_options`."
    )
    disable_comment: bool = Field(
        default=False, description="Turn comments off (forced on if the creator has them off)."
    )
    disable_duet: bool = Field(
        default=False, description="Turn duets off (forced on if the creator has them off)."
    )
    disable_stitch: bool = Field(
        default=False, description="Turn stitches off (forced on if the creator has them off)."
    )
    video_cover_timestamp_ms: int | None = Field(
        default=None, ge=0, description="Frame to use as the cover, in ms from the start."
    )


class UploadDraftInput(VideoSourceInput):
    """Inputs of `tiktok.upload_draft`."""


def _source_info(params: VideoSourceInput, plan: ChunkPlan | None) -> dict[str, Any]:
    if plan is None:
        return {"source": "PULL_FROM_URL", "video_url": params.video_url}
    return {
        "source": "FILE_UPLOAD",
        "video_size": plan.video_size,
        "chunk_size": plan.chunk_size,
        "total_chunk_count": plan.total_chunk_count,
    }


def _result(entry: dict[str, Any], *, already_done: bool) -> dict[str, Any]:
    return {
        "publish_id": entry["publish_id"],
        "mode": entry["mode"],
        "source": entry["source"],
        "video_size": entry.get("video_size"),
        "chunk_count": entry.get("total_chunk_count", 0),
        "already_done": already_done,
    }


async def _publish_status(ctx: ActionContext, publish_id: str) -> dict[str, Any]:
    data = await api(ctx, "POST", "/v2/post/publish/status/fetch/", json_body={"publish_id": publish_id})
    # TikTok's field is spelled `publicaly_available_post_id`; accept the correct spelling too.
    post_ids = listed(
        data.get("publicaly_available_post_id") or data.get("publicly_available_post_id"),
        "data.publicaly_available_post_id",
        NAME,
        ctx.account,
    )
    return {
        "publish_id": publish_id,
        "status": data.get("status"),
        "fail_reason": data.get("fail_reason") or None,
        "post_ids": [str(post_id) for post_id in post_ids],
        "uploaded_bytes": data.get("uploaded_bytes"),
        "downloaded_bytes": data.get("downloaded_bytes"),
    }


async def _continue_recorded(
    ctx: ActionContext, ledger: EffectLedger, key: str, entry: dict[str, Any], params: VideoSourceInput
) -> dict[str, Any] | None:
    """Finish a publish an earlier attempt began; None when it cannot finish and must start over.

    Starting over cannot post twice: an upload that never completed is never published.
    """
    if entry.get("done"):
        return _result(entry, already_done=True)
    path = params.file_path or ""
    if time.time() - float(entry["created_at"]) > UPLOAD_URL_SAFE_S or file_size(path) != entry["video_size"]:
        return None
    status = await _publish_status(ctx, entry["publish_id"])
    if status["status"] == "FAILED":
        return None
    uploaded = status["uploaded_bytes"]
    if status["status"] in _UPLOAD_FINISHED or (
        isinstance(uploaded, int) and uploaded >= entry["video_size"]
    ):
        entry["done"] = True
        ledger.put(key, entry, run=ctx.run)
        return _result(entry, already_done=True)
    if isinstance(uploaded, int) and uploaded % entry["chunk_size"] == 0:
        # What TikTok says it holds beats our record: a chunk may have landed after our last write.
        entry["next_chunk"] = min(uploaded // entry["chunk_size"], entry["total_chunk_count"])
    await upload_chunks(ctx, ledger, key, entry, path)
    return _result(entry, already_done=True)


async def _init_and_upload(
    ctx: ActionContext,
    params: VideoSourceInput,
    *,
    mode: Literal["direct", "inbox"],
    post_info: dict[str, Any] | None,
    plan: ChunkPlan | None,
) -> dict[str, Any]:
    ledger = ledger_for(ctx.services)
    key = f"tiktok.{mode}:{ctx.idempotency_key}"
    path = "/v2/post/publish/video/init/" if mode == "direct" else "/v2/post/publish/inbox/video/init/"
    body: dict[str, Any] = {"source_info": _source_info(params, plan)}
    if post_info is not None:
        body["post_info"] = post_info
    if plan is None:
        # PULL_FROM_URL: TikTok acts on the init alone; see the module docstring.
        ledger.put(
            key,
            {"pending": True, "mode": mode, "source": params.source, "created_at": time.time()},
            run=ctx.run,
        )
    try:
        data = await api(ctx, "POST", path, json_body=body)
    except ProviderError as err:
        unknown = isinstance(err, ProviderUnavailable) and err.outcome_unknown
        if plan is None and not unknown and (err.status is None or err.status >= 400):
            ledger.discard(key)  # TikTok answered with an error, or never got the request
        raise
    publish_id = data.get("publish_id")
    if not publish_id or not isinstance(publish_id, str | int) or isinstance(publish_id, bool):
        raise ProviderUnavailable(f"POST {path} answered without a publish_id", provider=NAME)
    entry: dict[str, Any] = {
        "publish_id": str(publish_id),
        "mode": mode,
        "source": params.source,
        "created_at": time.time(),
        "done": plan is None,
    }
    if plan is not None:
        upload_url = data.get("upload_url")
        if not isinstance(upload_url, str) or not upload_url.startswith(("https://", "http://")):
            raise ProviderUnavailable(f"POST {path} answered without an upload_url", provider=NAME)
        entry.update(
            upload_url=str(upload_url),
            video_size=plan.video_size,
            chunk_size=plan.chunk_size,
            total_chunk_count=plan.total_chunk_count,
            next_chunk=0,
        )
    # Recorded before the first byte is sent: from here on a retry continues this publish.
    ledger.put(key, entry, run=ctx.run)
    if plan is not None:
        await upload_chunks(ctx, ledger, key, entry, params.file_path or "")
    return _result(entry, already_done=False)


async def _recorded(ctx: ActionContext, mode: str, params: VideoSourceInput) -> dict[str, Any] | None:
    ledger = ledger_for(ctx.services)
    key = f"tiktok.{mode}:{ctx.idempotency_key}"
    entry = ledger.get(key)
    if entry is None:
        return None
    if entry.get("pending"):
        raise ProviderRejected(
            f"an earlier attempt of this step sent a {entry.get('source')} {mode} post to TikTok and "
            "never got its answer, so TikTok may already have the video; check the account's "
            "posts (and inbox) before running the step again",
            provider=NAME,
            code="publish_outcome_unknown",
        )
    return await _continue_recorded(ctx, ledger, key, entry, params)


def _plan(params: VideoSourceInput) -> ChunkPlan | None:
    if params.source == "PULL_FROM_URL":
        return None
    return plan_chunks(file_size(params.file_path or ""), params.chunk_size)


@action(
    "tiktok.publish_video",
    PublishVideoInput,
    endpoint="POST /v2/post/publish/video/init/ + PUT upload_url",
    side_effect=True,
)
async def publish_video(ctx: ActionContext, params: PublishVideoInput) -> dict[str, Any]:
    """Post a video straight to the creator's profile; poll `tiktok.publish_status` with the `publish_id`."""
    recorded = await _recorded(ctx, "direct", params)
    if recorded is not None:
        return recorded
    plan = _plan(params)
    creator = await _creator_info(ctx)
    if params.privacy_level not in creator["privacy_level_options"]:
        raise ProviderRejected(
            f"privacy_level {params.privacy_level} is not allowed for @{creator['creator_username']}; "
            f"choose one of {', '.join(creator['privacy_level_options']) or '(none offered)'}",
            provider=NAME,
            code="privacy_level_option_mismatch",
        )
    post_info: dict[str, Any] = {
        "title": params.title,
        "privacy_level": params.privacy_level,
        # A creator who turned an interaction off keeps it off (TikTok's posting guidelines).
        "disable_comment": params.disable_comment or creator["comment_disabled"],
        "disable_duet": params.disable_duet or creator["duet_disabled"],
        "disable_stitch": params.disable_stitch or creator["stitch_disabled"],
    }
    if params.video_cover_timestamp_ms is not None:
        post_info["video_cover_timestamp_ms"] = params.video_cover_timestamp_ms
    return await _init_and_upload(ctx, params, mode="direct", post_info=post_info, plan=plan)


@action(
    "tiktok.upload_draft",
    UploadDraftInput,
    endpoint="POST /v2/post/publish/inbox/video/init/ + PUT upload_url",
    side_effect=True,
)
async def upload_draft(ctx: ActionContext, params: UploadDraftInput) -> dict[str, Any]:
    """Send a video to the creator's TikTok inbox as a draft they finish posting in the app."""
    recorded = await _recorded(ctx, "inbox", params)
    if recorded is not None:
        return recorded
    return await _init_and_upload(ctx, params, mode="inbox", post_info=None, plan=_plan(params))


class PublishStatusInput(ActionInput):
    """Inputs of `tiktok.publish_status`."""

    publish_id: str = Field(min_length=1, description="The `publish_id` from publish_video or upload_draft.")


@action("tiktok.publish_status", PublishStatusInput, endpoint="POST /v2/post/publish/status/fetch/")
async def publish_status(ctx: ActionContext, params: PublishStatusInput) -> dict[str, Any]:
    """Where a publish stands: `status`, `fail_reason`, `post_ids` once public, bytes received."""
    return await _publish_status(ctx, params.publish_id)
