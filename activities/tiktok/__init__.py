"""TikTok's official APIs: OAuth v2 tokens, the Display API and the Content Posting API.

Every call carries the account's OAuth access token, kept fresh by `activities.tokens` (refresh
before expiry, refresh once and redo on `access_token_invalid`, rotated refresh tokens stored).
Errors arrive as `{"data": …, "error": {"code", "message", "log_id"}}` (code `ok` on success) from
the API and as a flat `{"error", "error_description", "log_id"}` from the token endpoint, sometimes
with HTTP 200; `classify` and `classify_oauth` map both into the error tree.

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

import asyncio
import contextlib
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    SessionExpired,
    TokenExpired,
)
from activities.http import Reply, listed, malformed, send
from activities.ledger import EffectLedger, ledger_for
from activities.pagination import collect_pages
from activities.provider import Provider, bearer
from activities.ratelimit import parse_retry_after
from activities.registry import ActionContext, ActionInput, PagedInput, Services, action
from activities.tokens import with_access_token

__all__ = [
    "MAX_CHUNK_BYTES",
    "MIN_CHUNK_BYTES",
    "ChunkPlan",
    "CreatorInfoInput",
    "PublishStatusInput",
    "PublishVideoInput",
    "UploadDraftInput",
    "UserInfoInput",
    "VideoListInput",
    "VideoSourceInput",
    "classify",
    "classify_oauth",
    "classify_upload",
    "exchange_code",
    "plan_chunks",
    "refresh_access_token",
]

NAME = "tiktok"
TOKEN_PATH = "/v2/oauth/token/"

#: TikTok's chunk bounds: every chunk but the last is 5-64 MB; a file under 5 MB goes whole.
MIN_CHUNK_BYTES = 5 * 1024 * 1024
MAX_CHUNK_BYTES = 64 * 1024 * 1024
DEFAULT_CHUNK_BYTES = 10 * 1024 * 1024
MAX_CHUNKS = 1000

#: TikTok's upload_url expires an hour after init; past that an unfinished upload cannot finish.
UPLOAD_URL_TTL_S = 3600.0
#: Start over a little before the hour, so the resumed upload does not run into the expiry.
UPLOAD_URL_SAFE_S = UPLOAD_URL_TTL_S - 300.0

DEFAULT_USER_FIELDS = ("open_id", "union_id", "avatar_url", "display_name")
DEFAULT_VIDEO_FIELDS = (
    "id",
    "title",
    "video_description",
    "create_time",
    "duration",
    "cover_image_url",
    "share_url",
    "like_count",
    "comment_count",
    "share_count",
    "view_count",
)

PrivacyLevel = Literal["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"]

#: Statuses after which nothing more will be uploaded for a publish.
_UPLOAD_FINISHED = frozenset({"PROCESSING_DOWNLOAD", "SEND_TO_USER_INBOX", "PUBLISH_COMPLETE"})

_CONTENT_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm"}


# --------------------------------------------------------------------------- errors


def _object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (providers omit or null fields)."""
    return value if isinstance(value, dict) else {}


def _api_message(error: dict[str, Any], status: int) -> str:
    message = str(error.get("message") or f"HTTP {status}")
    log_id = error.get("log_id")
    return f"{message} (log_id {log_id})" if log_id else message


def classify(reply: Reply, account: str) -> ProviderError | None:
    """Map a TikTok API answer (`{"data", "error": {"code", "message", "log_id"}}`) to an error."""
    body = _object(reply.body)
    error = _object(body.get("error"))
    code = str(error.get("code") or "")
    if reply.status < 400 and code in ("", "ok"):
        return None
    message = _api_message(error, reply.status)
    where: dict[str, Any] = {"provider": NAME, "status": reply.status, "code": code or None}
    if code == "access_token_invalid":
        return TokenExpired(message, **where)
    if code in ("scope_not_authorized", "scope_permission_missed"):
        return CredentialsRejected(
            f"{message}; the account was authorized without the scope this call needs: "
            "re-authorize it with that scope",
            **where,
        )
    if code == "rate_limit_exceeded" or reply.status == 429:
        return RateLimited(message, retry_after=parse_retry_after(reply.headers), **where)
    if code == "internal_error" or reply.status >= 500:
        return ProviderUnavailable(message, **where)
    if reply.status == 401:
        return CredentialsRejected(message, **where)
    # invalid_params, privacy_level_option_mismatch, spam_risk_*, invalid_publish_id,
    # url_ownership_unverified, reached_active_user_cap, …: the request itself was refused.
    return ProviderRejected(message, **where)


def classify_oauth(reply: Reply, account: str) -> ProviderError | None:
    """Map a token endpoint answer (flat `{"error", "error_description", "log_id"}`) to an error."""
    body = _object(reply.body)
    if isinstance(body.get("error"), dict):
        return classify(reply, account)
    code = str(body.get("error") or "")
    if reply.status < 400 and not code:
        if body.get("access_token"):
            return None
        return ProviderUnavailable(
            "the token endpoint answered without an access_token", provider=NAME, status=reply.status
        )
    message = str(body.get("error_description") or code or f"HTTP {reply.status}")
    if body.get("log_id"):
        message += f" (log_id {body['log_id']})"
    where: dict[str, Any] = {"provider": NAME, "status": reply.status, "code": code or None}
    if reply.status >= 500:
        return ProviderUnavailable(message, **where)
    if reply.status == 429 or code == "rate_limit_exceeded":
        return RateLimited(message, retry_after=parse_retry_after(reply.headers), **where)
    if code == "invalid_client":
        return CredentialsRejected(
            f"{message}; check the app's client_key and client_secret in the credential", **where
        )
    # invalid_grant (expired, revoked or already used code/refresh token), invalid_request, …
    return ProviderRejected(message, **where)


def classify_upload(reply: Reply, account: str) -> ProviderError | None:
    """Map the answer to one chunk `PUT` (206 while incomplete, 201 at the end) to an error."""
    if reply.status < 400:
        return None
    body = _object(reply.body)
    error = _object(body.get("error"))
    message = f"chunk upload refused: {_api_message(error, reply.status)}"
    where: dict[str, Any] = {"provider": NAME, "status": reply.status, "code": error.get("code")}
    if reply.status == 429:
        return RateLimited(message, retry_after=parse_retry_after(reply.headers), **where)
    if reply.status >= 500:
        return ProviderUnavailable(message, **where)
    return ProviderRejected(message, **where)


#: TikTok's official APIs as a provider (payloads come in `data`; tokens are kept fresh by
#: `activities.tokens`, so actions pass the access token as the credential).
PROVIDER = Provider(
    name=NAME,
    base_url="https://open.tiktokapis.com",
    fields=("client_key", "client_secret", "access_token", "refresh_token", "expires_at", "open_id"),
    required=("client_key", "client_secret"),
    classify=classify,
    auth=bearer("access_token"),
    reauth=("access_token", "refresh_token"),
    envelope="data",
    order=20,
)


# --------------------------------------------------------------------------- OAuth


def _url(ctx: ActionContext, path: str) -> str:
    return ctx.services.settings.base_url(NAME) + path


def _token_fields(body: dict[str, Any]) -> dict[str, str]:
    """The credential fields a token answer sets; `expires_in` is read, never assumed.

    Raises:
        ProviderUnavailable: `expires_in` is not a number of seconds.
    """
    expires_in = body.get("expires_in") or 0
    seconds = math.nan
    if isinstance(expires_in, int | float | str) and not isinstance(expires_in, bool):
        with contextlib.suppress(ValueError):
            seconds = float(expires_in)
    if not math.isfinite(seconds):
        raise malformed(NAME, f"the token endpoint's expires_in {expires_in!r} is not a number of seconds")
    fields = {
        "access_token": str(body["access_token"]),
        "expires_at": str(int(time.time() + seconds)),
    }
    # The refresh token rotates: always keep the one TikTok just issued.
    if body.get("refresh_token"):
        fields["refresh_token"] = str(body["refresh_token"])
    if body.get("open_id"):
        fields["open_id"] = str(body["open_id"])
    return fields


async def _token_request(ctx: ActionContext, form: dict[str, str]) -> dict[str, Any]:
    reply = await send(
        ctx,
        NAME,
        "POST",
        _url(ctx, TOKEN_PATH),
        classify=classify_oauth,
        form=form,
        headers={"Cache-Control": "no-cache"},
    )
    body: dict[str, Any] = reply.body
    return body


async def refresh_access_token(ctx: ActionContext, credential: dict[str, str]) -> dict[str, str]:
    """Trade the stored refresh token for a new token pair (the `Refresher` for TikTok).

    Raises:
        CredentialsRejected: The credential lacks `client_key`/`client_secret`, or TikTok refused them.
        SessionExpired: No refresh token is stored (the account was never authorized here).
        ProviderRejected: TikTok refused the refresh token (`invalid_grant`).
    """
    missing = [name for name in ("client_key", "client_secret") if not credential.get(name)]
    if missing:
        raise CredentialsRejected(
            f"the tiktok credential {ctx.account!r} lacks {', '.join(missing)}, needed to refresh "
            f"its access token; set it with `tikflow credentials set tiktok {ctx.account} "
            f"{' '.join(name + '=…' for name in missing)}`",
            provider=NAME,
            account=ctx.account,
        )
    if not credential.get("refresh_token"):
        raise SessionExpired(
            f"the tiktok credential {ctx.account!r} has no usable access token and no refresh token; "
            "authorize the account and store its tokens",
            provider=NAME,
            account=ctx.account,
        )
    body = await _token_request(
        ctx,
        {
            "client_key": credential["client_key"],
            "client_secret": credential["client_secret"],
            "grant_type": "refresh_token",
            "refresh_token": credential["refresh_token"],
        },
    )
    return _token_fields(body)


async def exchange_code(
    services: Services,
    account: str,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str | None = None,
) -> dict[str, str]:
    """Trade an authorization code for the account's first token pair and store it.

    Not an action: the code is a one-time secret and must not pass through workflow history; the
    CLI's authorization flow calls this directly. The credential must already hold `client_key`
    and `client_secret`.

    Args:
        services: The shared services (HTTP client, credential store, settings, limiter).
        account: Credential name to store the tokens under.
        code: The `code` TikTok redirected back with.
        redirect_uri: The redirect URI used in the authorization request.
        code_verifier: The PKCE verifier, for desktop and mobile authorization flows.

    Returns:
        The non-secret facts: `open_id`, `scope` and `expires_at`.
    """
    ctx = ActionContext(services=services, account=account, idempotency_key="", action="tiktok.oauth")
    credential = services.credentials.get(NAME, account, required=("client_key", "client_secret"))
    form = {
        "client_key": credential["client_key"],
        "client_secret": credential["client_secret"],
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": redirect_uri,
    }
    if code_verifier:
        form["code_verifier"] = code_verifier
    body = await _token_request(ctx, form)
    fields = _token_fields(body)
    services.credentials.update(NAME, account, fields)
    return {
        "open_id": fields.get("open_id", ""),
        "scope": str(body.get("scope", "")),
        "expires_at": fields["expires_at"],
    }


async def _api(
    ctx: ActionContext,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    json_body: Any = None,
) -> dict[str, Any]:
    """One authorized API call; returns the answer's `data` object."""

    async def call(token: str) -> Reply:
        return await send(
            ctx,
            NAME,
            method,
            _url(ctx, path),
            classify=classify,
            params=params,
            json_body=json_body,
            headers={"Authorization": f"Bearer {token}"},
        )

    reply = await with_access_token(ctx, NAME, refresh_access_token, call)
    data = reply.body.get("data")
    if not isinstance(data, dict):
        raise malformed(NAME, f"{method} {path} has no `data` object", account=ctx.account)
    return data


def _number(ctx: ActionContext, value: Any, what: str) -> int | None:
    """An integer field that TikTok may send as a number or a digit string (None when absent)."""
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise malformed(NAME, f"`{what}` {value!r} is not a number", account=ctx.account)
    return value


# --------------------------------------------------------------------------- Display API


class UserInfoInput(ActionInput):
    """Inputs of `tiktok.user_info`."""

    fields: list[str] = Field(
        default_factory=lambda: list(DEFAULT_USER_FIELDS),
        min_length=1,
        description="User fields to ask for (stats fields need the user.info.stats scope).",
    )


@action("tiktok.user_info", UserInfoInput, endpoint="GET /v2/user/info/")
async def user_info(ctx: ActionContext, params: UserInfoInput) -> dict[str, Any]:
    """The authorized TikTok user's profile: each requested field at the top level (None if absent)."""
    data = await _api(ctx, "GET", "/v2/user/info/", params={"fields": ",".join(params.fields)})
    user = _object(data.get("user"))
    return {name: user.get(name) for name in params.fields}


class VideoListInput(PagedInput):
    """Inputs of `tiktok.videos`."""

    fields: list[str] = Field(
        default_factory=lambda: list(DEFAULT_VIDEO_FIELDS),
        min_length=1,
        description="Video fields to ask for; each becomes a key of every item.",
    )
    max_count: int = Field(default=20, ge=1, le=20, description="Videos per page (TikTok allows 20).")
    cursor: int | None = Field(
        default=None, description="Resume from this cursor (a previous result's `cursor`)."
    )


@action("tiktok.videos", VideoListInput, endpoint="POST /v2/video/list/")
async def videos(ctx: ActionContext, params: VideoListInput) -> dict[str, Any]:
    """The authorized user's public videos, newest first, in `items`."""
    query = {"fields": ",".join(params.fields)}

    async def fetch(cursor: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"max_count": params.max_count}
        if cursor is not None:
            body["cursor"] = cursor
        return await _api(ctx, "POST", "/v2/video/list/", params=query, json_body=body)

    def next_cursor(data: dict[str, Any]) -> int | None:
        return _number(ctx, data.get("cursor"), "data.cursor") if data.get("has_more") else None

    pages = await collect_pages(fetch, next_cursor, start=params.cursor, pages=params.pages)
    items = [
        {name: video.get(name) for name in params.fields}
        for data in pages.bodies
        for video in listed(data.get("videos"), "data.videos", NAME, ctx.account)
        if isinstance(video, dict)
    ]
    return {"items": items, "cursor": pages.cursor, "has_more": pages.has_more}


# --------------------------------------------------------------------------- Content Posting API


class CreatorInfoInput(ActionInput):
    """Inputs of `tiktok.creator_info` (none: it describes the authorized creator)."""


async def _creator_info(ctx: ActionContext) -> dict[str, Any]:
    data = await _api(ctx, "POST", "/v2/post/publish/creator_info/query/", json_body={})
    options = data.get("privacy_level_options")
    # Never empty in TikTok's answer; garbage here must not read as "the creator may post nothing".
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise malformed(
            NAME, "creator_info has no `privacy_level_options` list of strings", account=ctx.account
        )
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


@dataclass(frozen=True)
class ChunkPlan:
    """How a file is cut for TikTok's chunked upload.

    Attributes:
        video_size: File size in bytes.
        chunk_size: Size of every chunk but the last (which also carries the remainder).
        total_chunk_count: Number of chunks.
    """

    video_size: int
    chunk_size: int
    total_chunk_count: int

    def byte_range(self, index: int) -> tuple[int, int]:
        """First and last byte (inclusive) of chunk `index`."""
        first = index * self.chunk_size
        last = self.video_size - 1 if index == self.total_chunk_count - 1 else first + self.chunk_size - 1
        return first, last


def plan_chunks(video_size: int, chunk_size: int) -> ChunkPlan:
    """Cut `video_size` bytes per TikTok's rules: one chunk if it fits, else floor(size / chunk) chunks.

    The remainder joins the last chunk (so it can be up to twice `chunk_size`).

    Raises:
        ProviderRejected: The file is empty or would need more than 1000 chunks.
    """
    if video_size <= 0:
        raise ProviderRejected("the video file is empty", provider=NAME)
    if video_size <= chunk_size:
        return ChunkPlan(video_size, video_size, 1)
    count = video_size // chunk_size
    if count > MAX_CHUNKS:
        raise ProviderRejected(
            f"a {video_size} byte file in {chunk_size} byte chunks needs {count} chunks; "
            f"TikTok takes at most {MAX_CHUNKS}: raise chunk_size",
            provider=NAME,
        )
    return ChunkPlan(video_size, chunk_size, count)


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
    chunk_size: int = Field(
        default=DEFAULT_CHUNK_BYTES,
        ge=1,
        le=MAX_CHUNK_BYTES,
        description=(
            "Bytes per upload chunk. TikTok accepts 5-64 MB; smaller sizes are for the sandbox and tests."
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


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise ProviderRejected(f"cannot read the video file {path}: {exc.strerror}", provider=NAME) from None


def _read_range(path: str, first: int, length: int) -> bytes:
    with open(path, "rb") as video:
        video.seek(first)
        return video.read(length)


def _result(entry: dict[str, Any], *, already_done: bool) -> dict[str, Any]:
    return {
        "publish_id": entry["publish_id"],
        "mode": entry["mode"],
        "source": entry["source"],
        "video_size": entry.get("video_size"),
        "chunk_count": entry.get("total_chunk_count", 0),
        "already_done": already_done,
    }


async def _upload_chunks(
    ctx: ActionContext, ledger: EffectLedger, key: str, entry: dict[str, Any], path: str
) -> None:
    """PUT the chunks from `entry["next_chunk"]` on, recording progress after each one."""
    plan = ChunkPlan(entry["video_size"], entry["chunk_size"], entry["total_chunk_count"])
    content_type = _CONTENT_TYPES.get(Path(path).suffix.lower(), "video/mp4")
    for index in range(entry["next_chunk"], plan.total_chunk_count):
        first, last = plan.byte_range(index)
        chunk = await asyncio.to_thread(_read_range, path, first, last - first + 1)
        if len(chunk) != last - first + 1:
            raise ProviderRejected(f"the video file {path} changed during the upload", provider=NAME)
        await send(
            ctx,
            NAME,
            "PUT",
            entry["upload_url"],
            classify=classify_upload,
            content=chunk,
            headers={
                "Content-Type": content_type,
                "Content-Length": str(len(chunk)),
                "Content-Range": f"bytes {first}-{last}/{plan.video_size}",
            },
            expect_json=False,
        )
        entry["next_chunk"] = index + 1
        ledger.put(key, entry, run=ctx.run)
    entry["done"] = True
    ledger.put(key, entry, run=ctx.run)


async def _publish_status(ctx: ActionContext, publish_id: str) -> dict[str, Any]:
    data = await _api(ctx, "POST", "/v2/post/publish/status/fetch/", json_body={"publish_id": publish_id})
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
    if (
        time.time() - float(entry["created_at"]) > UPLOAD_URL_SAFE_S
        or _file_size(path) != entry["video_size"]
    ):
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
    await _upload_chunks(ctx, ledger, key, entry, path)
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
        data = await _api(ctx, "POST", path, json_body=body)
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
        await _upload_chunks(ctx, ledger, key, entry, params.file_path or "")
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
    return plan_chunks(_file_size(params.file_path or ""), params.chunk_size)


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
