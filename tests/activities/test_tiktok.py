"""TikTok official API actions (`activities.tiktok`) against a MockTransport."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from activities.credentials import CredentialStore
from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from activities.tiktok import (
    MIN_CHUNK_BYTES,
    ChunkPlan,
    CreatorInfoInput,
    PublishStatusInput,
    PublishVideoInput,
    UploadDraftInput,
    UserInfoInput,
    VideoListInput,
    exchange_code,
    plan_chunks,
)
from tests.support.actions import ContextFactory, contexts, run_action
from tests.support.transport import FakeProvider

BASE = "https://open.tiktokapis.com"
UPLOAD_URL = "https://open-upload.tiktokapis.com/upload/?upload_id=U1&upload_token=T1"
CREDENTIAL = {
    "client_key": "ck_test",
    "client_secret": "cs_test",
    "access_token": "act.valid",
    "refresh_token": "rft.valid",
    "open_id": "open-1",
}

Responder = Callable[[httpx.Request], httpx.Response]


def api_ok(data: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"data": data, "error": {"code": "ok", "message": "", "log_id": "L1"}})


def api_error(status: int, code: str, message: str = "refused", **headers: str) -> httpx.Response:
    body = {"data": {}, "error": {"code": code, "message": message, "log_id": "L2"}}
    return httpx.Response(status, json=body, headers=headers)


CREATOR = {
    "creator_avatar_url": "https://p16.example/avatar.jpg",
    "creator_username": "catlover",
    "creator_nickname": "Cat Lover",
    "privacy_level_options": ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"],
    "comment_disabled": False,
    "duet_disabled": True,
    "stitch_disabled": False,
    "max_video_post_duration_sec": 600,
}


def posting_routes(
    upload: Responder | None = None, status: Responder | None = None
) -> dict[tuple[str, str], Responder]:
    init = api_ok({"publish_id": "v_pub_file~v2.123", "upload_url": UPLOAD_URL})
    return {
        ("POST", "/v2/post/publish/creator_info/query/"): lambda r: api_ok(CREATOR),
        ("POST", "/v2/post/publish/video/init/"): lambda r: init,
        ("POST", "/v2/post/publish/inbox/video/init/"): lambda r: init,
        ("PUT", "/upload/"): upload or (lambda r: httpx.Response(201)),
        ("POST", "/v2/post/publish/status/fetch/"): status
        or (lambda r: api_ok({"status": "PROCESSING_UPLOAD", "uploaded_bytes": 0})),
    }


@pytest.fixture
def store(tmp_path: Path) -> CredentialStore:
    store = CredentialStore(tmp_path / "credentials.json", env={})
    store.update("tiktok", "main", {**CREDENTIAL, "expires_at": str(int(time.time()) + 3600)})
    return store


@pytest.fixture
async def make_ctx(tmp_path: Path, store: CredentialStore) -> AsyncIterator[ContextFactory]:
    async with contexts(
        store, ledger=tmp_path / "effects.json", action="tiktok", key="wf-1/steps/0"
    ) as build:
        yield build


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(bytes(range(25)))
    return path


# --------------------------------------------------------------------------- Display API


async def test_user_info_sends_the_fields_and_bearer_token(make_ctx: ContextFactory) -> None:
    fake = FakeProvider(
        {("GET", "/v2/user/info/"): lambda r: api_ok({"user": {"open_id": "open-1", "display_name": "Cat"}})}
    )
    result = await run_action(
        make_ctx(fake),
        "tiktok.user_info",
        UserInfoInput(fields=["open_id", "display_name", "bio_description"]),
    )

    request = fake.requests[0]
    assert str(request.url).startswith(BASE + "/v2/user/info/")
    assert request.url.params["fields"] == "open_id,display_name,bio_description"
    assert request.headers["authorization"] == "Bearer act.valid"
    assert result == {"open_id": "open-1", "display_name": "Cat", "bio_description": None}


async def test_videos_follow_the_cursor_while_has_more(make_ctx: ContextFactory) -> None:
    pages = {
        None: api_ok(
            {
                "videos": [{"id": "1", "title": "a"}, {"id": "2", "title": "b"}],
                "cursor": 1700000000000,
                "has_more": True,
            }
        ),
        1700000000000: api_ok(
            {"videos": [{"id": "3", "title": "c"}], "cursor": 1690000000000, "has_more": False}
        ),
    }
    fake = FakeProvider({("POST", "/v2/video/list/"): lambda r: pages[json.loads(r.content).get("cursor")]})

    result = await run_action(
        make_ctx(fake), "tiktok.videos", VideoListInput(fields=["id", "title"], max_count=2, pages=5)
    )

    assert [json.loads(r.content) for r in fake.requests] == [
        {"max_count": 2},
        {"max_count": 2, "cursor": 1700000000000},
    ]
    assert fake.requests[0].url.params["fields"] == "id,title"
    assert result == {
        "items": [{"id": "1", "title": "a"}, {"id": "2", "title": "b"}, {"id": "3", "title": "c"}],
        "cursor": None,
        "has_more": False,
    }


async def test_videos_stop_at_the_page_budget_and_return_the_cursor(
    make_ctx: ContextFactory,
) -> None:
    fake = FakeProvider(
        {
            ("POST", "/v2/video/list/"): lambda r: api_ok(
                {"videos": [{"id": "1"}], "cursor": 99, "has_more": True}
            )
        }
    )
    result = await run_action(
        make_ctx(fake), "tiktok.videos", VideoListInput(fields=["id"], pages=1, cursor=7)
    )
    assert json.loads(fake.requests[0].content) == {"max_count": 20, "cursor": 7}
    assert result["cursor"] == 99
    assert result["has_more"] is True


def test_video_list_max_count_is_bounded_by_tiktok() -> None:
    with pytest.raises(ValueError, match="less than or equal to 20"):
        VideoListInput(max_count=21)


# --------------------------------------------------------------------------- Content Posting API


async def test_creator_info_is_normalized(make_ctx: ContextFactory) -> None:
    fake = FakeProvider(posting_routes())
    result = await run_action(make_ctx(fake), "tiktok.creator_info", CreatorInfoInput())
    assert fake.trail == ["POST /v2/post/publish/creator_info/query/"]
    assert fake.requests[0].headers["authorization"] == "Bearer act.valid"
    assert result["privacy_level_options"] == CREATOR["privacy_level_options"]
    assert result["duet_disabled"] is True
    assert result["max_video_post_duration_sec"] == 600


@pytest.mark.parametrize(
    ("size", "chunk", "expected"),
    [
        (4 * 1024 * 1024, 10 * 1024 * 1024, ChunkPlan(4 * 1024 * 1024, 4 * 1024 * 1024, 1)),
        (MIN_CHUNK_BYTES - 1, MIN_CHUNK_BYTES, ChunkPlan(MIN_CHUNK_BYTES - 1, MIN_CHUNK_BYTES - 1, 1)),
        (50_000_123, 10_000_000, ChunkPlan(50_000_123, 10_000_000, 5)),
        (25, 10, ChunkPlan(25, 10, 2)),
        (30, 10, ChunkPlan(30, 10, 3)),
        (10, 10, ChunkPlan(10, 10, 1)),
    ],
)
def test_chunk_plan_follows_tiktoks_rules(size: int, chunk: int, expected: ChunkPlan) -> None:
    plan = plan_chunks(size, chunk)
    assert plan == expected
    ranges = [plan.byte_range(i) for i in range(plan.total_chunk_count)]
    assert ranges[0][0] == 0
    assert ranges[-1][1] == size - 1
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))


def test_chunk_plan_refuses_empty_files_and_too_many_chunks() -> None:
    with pytest.raises(ProviderRejected, match="empty"):
        plan_chunks(0, 10)
    with pytest.raises(ProviderRejected, match="at most 1000"):
        plan_chunks(10_010, 10)


async def test_publish_video_file_upload_checks_the_creator_then_inits_and_puts_every_chunk(
    make_ctx: ContextFactory, video: Path
) -> None:
    fake = FakeProvider(
        posting_routes(upload=lambda r: httpx.Response(206 if "0-9" in r.headers["content-range"] else 201))
    )
    params = PublishVideoInput(
        file_path=str(video),
        chunk_size=10,
        title="Cats #cats",
        privacy_level="SELF_ONLY",
        video_cover_timestamp_ms=500,
    )

    result = await run_action(make_ctx(fake), "tiktok.publish_video", params)

    assert fake.trail == [
        "POST /v2/post/publish/creator_info/query/",
        "POST /v2/post/publish/video/init/",
        "PUT /upload/",
        "PUT /upload/",
    ]
    init = fake.requests[1]
    assert init.headers["authorization"] == "Bearer act.valid"
    assert json.loads(init.content) == {
        "post_info": {
            "title": "Cats #cats",
            "privacy_level": "SELF_ONLY",
            "disable_comment": False,
            "disable_duet": True,  # the creator has duets off
            "disable_stitch": False,
            "video_cover_timestamp_ms": 500,
        },
        "source_info": {"source": "FILE_UPLOAD", "video_size": 25, "chunk_size": 10, "total_chunk_count": 2},
    }
    puts = fake.calls("PUT", "/upload/")
    assert [str(p.url) for p in puts] == [UPLOAD_URL, UPLOAD_URL]
    assert [p.headers["content-range"] for p in puts] == ["bytes 0-9/25", "bytes 10-24/25"]
    assert [p.headers["content-length"] for p in puts] == ["10", "15"]
    assert {p.headers["content-type"] for p in puts} == {"video/mp4"}
    assert b"".join(p.content for p in puts) == bytes(range(25))
    assert "authorization" not in puts[0].headers
    assert result == {
        "publish_id": "v_pub_file~v2.123",
        "mode": "direct",
        "source": "FILE_UPLOAD",
        "video_size": 25,
        "chunk_count": 2,
        "already_done": False,
    }


async def test_publish_video_refuses_a_privacy_level_the_creator_does_not_offer_before_init(
    make_ctx: ContextFactory, video: Path
) -> None:
    fake = FakeProvider(posting_routes())
    params = PublishVideoInput(file_path=str(video), privacy_level="FOLLOWER_OF_CREATOR")

    with pytest.raises(ProviderRejected) as caught:
        await run_action(make_ctx(fake), "tiktok.publish_video", params)

    assert caught.value.code == "privacy_level_option_mismatch"
    assert "PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, SELF_ONLY" in str(caught.value)
    assert fake.trail == ["POST /v2/post/publish/creator_info/query/"]


async def test_publish_video_pull_from_url_sends_the_url_and_uploads_nothing(
    make_ctx: ContextFactory,
) -> None:
    fake = FakeProvider(posting_routes())
    params = PublishVideoInput(
        source="PULL_FROM_URL",
        video_url="https://cdn.example.com/cat.mp4",
        privacy_level="PUBLIC_TO_EVERYONE",
    )

    result = await run_action(make_ctx(fake), "tiktok.publish_video", params)

    assert fake.trail == ["POST /v2/post/publish/creator_info/query/", "POST /v2/post/publish/video/init/"]
    assert json.loads(fake.requests[1].content)["source_info"] == {
        "source": "PULL_FROM_URL",
        "video_url": "https://cdn.example.com/cat.mp4",
    }
    assert result["publish_id"] == "v_pub_file~v2.123"
    assert result["chunk_count"] == 0


def test_the_source_must_come_with_its_file_or_url() -> None:
    with pytest.raises(ValueError, match="needs file_path"):
        UploadDraftInput()
    with pytest.raises(ValueError, match="needs video_url"):
        UploadDraftInput(source="PULL_FROM_URL")


async def test_upload_draft_inits_in_the_inbox_without_post_info(
    make_ctx: ContextFactory, video: Path
) -> None:
    fake = FakeProvider(posting_routes())
    result = await run_action(make_ctx(fake), "tiktok.upload_draft", UploadDraftInput(file_path=str(video)))

    assert fake.trail == ["POST /v2/post/publish/inbox/video/init/", "PUT /upload/"]
    assert json.loads(fake.requests[0].content) == {
        "source_info": {"source": "FILE_UPLOAD", "video_size": 25, "chunk_size": 25, "total_chunk_count": 1}
    }
    assert fake.requests[1].headers["content-range"] == "bytes 0-24/25"
    assert result["mode"] == "inbox"


async def test_publish_status_is_normalized(make_ctx: ContextFactory) -> None:
    fake = FakeProvider(
        {
            ("POST", "/v2/post/publish/status/fetch/"): lambda r: api_ok(
                {
                    "status": "PUBLISH_COMPLETE",
                    "publicaly_available_post_id": [7291234567890123456],
                    "uploaded_bytes": 25,
                    "fail_reason": "",
                }
            )
        }
    )
    result = await run_action(
        make_ctx(fake), "tiktok.publish_status", PublishStatusInput(publish_id="v_pub_file~v2.123")
    )

    assert json.loads(fake.requests[0].content) == {"publish_id": "v_pub_file~v2.123"}
    assert result == {
        "publish_id": "v_pub_file~v2.123",
        "status": "PUBLISH_COMPLETE",
        "fail_reason": None,
        "post_ids": ["7291234567890123456"],
        "uploaded_bytes": 25,
        "downloaded_bytes": None,
    }


# --------------------------------------------------------------------------- idempotent reruns


async def test_a_rerun_of_a_finished_publish_makes_no_second_init(
    make_ctx: ContextFactory, video: Path
) -> None:
    fake = FakeProvider(posting_routes())
    params = PublishVideoInput(file_path=str(video), chunk_size=10, privacy_level="SELF_ONLY")
    first = await run_action(make_ctx(fake), "tiktok.publish_video", params)
    requests_after_first = len(fake.requests)

    second = await run_action(make_ctx(fake), "tiktok.publish_video", params)

    assert len(fake.requests) == requests_after_first
    assert second == {**first, "already_done": True}


async def test_a_rerun_after_a_failed_chunk_resumes_the_same_publish(
    make_ctx: ContextFactory, video: Path
) -> None:
    attempts: list[str] = []

    def upload(request: httpx.Request) -> httpx.Response:
        attempts.append(request.headers["content-range"])
        if len(attempts) == 2:
            return httpx.Response(502, text="<html>bad gateway</html>")
        return httpx.Response(206)

    fake = FakeProvider(
        posting_routes(
            upload=upload, status=lambda r: api_ok({"status": "PROCESSING_UPLOAD", "uploaded_bytes": 10})
        )
    )
    params = UploadDraftInput(file_path=str(video), chunk_size=10)
    with pytest.raises(ProviderUnavailable):
        await run_action(make_ctx(fake), "tiktok.upload_draft", params)

    result = await run_action(make_ctx(fake), "tiktok.upload_draft", params)

    assert len(fake.calls("POST", "/v2/post/publish/inbox/video/init/")) == 1
    assert attempts == ["bytes 0-9/25", "bytes 10-24/25", "bytes 10-24/25"]
    assert result["already_done"] is True
    assert result["publish_id"] == "v_pub_file~v2.123"


async def test_a_rerun_trusts_tiktoks_byte_count_over_the_ledger(
    make_ctx: ContextFactory, video: Path
) -> None:
    # The first attempt died after TikTok took chunk 2 but before the ledger said so.
    fake = FakeProvider(
        posting_routes(
            upload=lambda r: (
                httpx.Response(502) if r.headers["content-range"] == "bytes 10-19/30" else httpx.Response(206)
            ),
            status=lambda r: api_ok({"status": "PROCESSING_UPLOAD", "uploaded_bytes": 20}),
        )
    )
    path = video.with_name("thirty.mp4")
    path.write_bytes(bytes(30))
    params = UploadDraftInput(file_path=str(path), chunk_size=10)
    with pytest.raises(ProviderUnavailable):
        await run_action(make_ctx(fake), "tiktok.upload_draft", params)
    fake.on("PUT", "/upload/", lambda r: httpx.Response(201))

    await run_action(make_ctx(fake), "tiktok.upload_draft", params)

    assert [p.headers["content-range"] for p in fake.calls("PUT", "/upload/")] == [
        "bytes 0-9/30",
        "bytes 10-19/30",
        "bytes 20-29/30",
    ]


async def test_a_rerun_whose_earlier_publish_failed_starts_a_new_one(
    make_ctx: ContextFactory, video: Path
) -> None:
    fake = FakeProvider(
        posting_routes(
            upload=lambda r: httpx.Response(500),
            status=lambda r: api_ok({"status": "FAILED", "fail_reason": "internal"}),
        )
    )
    params = UploadDraftInput(file_path=str(video))
    with pytest.raises(ProviderUnavailable):
        await run_action(make_ctx(fake), "tiktok.upload_draft", params)
    fake.on("PUT", "/upload/", lambda r: httpx.Response(201))

    result = await run_action(make_ctx(fake), "tiktok.upload_draft", params)

    assert len(fake.calls("POST", "/v2/post/publish/inbox/video/init/")) == 2
    assert result["already_done"] is False


async def test_another_step_publishes_its_own_video(make_ctx: ContextFactory, video: Path) -> None:
    fake = FakeProvider(posting_routes())
    params = UploadDraftInput(file_path=str(video))
    await run_action(make_ctx(fake, key="wf-1/steps/0"), "tiktok.upload_draft", params)
    await run_action(make_ctx(fake, key="wf-1/steps/1"), "tiktok.upload_draft", params)
    assert len(fake.calls("POST", "/v2/post/publish/inbox/video/init/")) == 2


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("response", "error", "code"),
    [
        (api_error(401, "scope_not_authorized"), CredentialsRejected, "scope_not_authorized"),
        (api_error(429, "rate_limit_exceeded", **{"Retry-After": "7"}), RateLimited, "rate_limit_exceeded"),
        (api_error(400, "invalid_params"), ProviderRejected, "invalid_params"),
        (api_error(403, "spam_risk_too_many_posts"), ProviderRejected, "spam_risk_too_many_posts"),
        (api_error(400, "privacy_level_option_mismatch"), ProviderRejected, "privacy_level_option_mismatch"),
        (api_error(400, "invalid_publish_id"), ProviderRejected, "invalid_publish_id"),
        (api_error(500, "internal_error"), ProviderUnavailable, "internal_error"),
        (httpx.Response(503, text="<html>unavailable</html>"), ProviderUnavailable, None),
    ],
)
async def test_api_errors_map_into_the_error_tree(
    make_ctx: ContextFactory,
    response: httpx.Response,
    error: type[ProviderError],
    code: str | None,
) -> None:
    fake = FakeProvider({("POST", "/v2/post/publish/status/fetch/"): lambda r: response})
    with pytest.raises(error) as caught:
        await run_action(make_ctx(fake), "tiktok.publish_status", PublishStatusInput(publish_id="p1"))
    assert type(caught.value) is error
    assert caught.value.code == code
    assert caught.value.provider == "tiktok"
    assert caught.value.account == "main"
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 7.0
    if code:
        assert "log_id L2" in str(caught.value)


async def test_a_refused_chunk_is_rejected(make_ctx: ContextFactory, video: Path) -> None:
    fake = FakeProvider(posting_routes(upload=lambda r: httpx.Response(416)))
    with pytest.raises(ProviderRejected, match="chunk upload refused"):
        await run_action(make_ctx(fake), "tiktok.upload_draft", UploadDraftInput(file_path=str(video)))


async def test_a_missing_video_file_is_rejected_before_any_request(
    make_ctx: ContextFactory, tmp_path: Path
) -> None:
    fake = FakeProvider(posting_routes())
    with pytest.raises(ProviderRejected, match="cannot read the video file"):
        await run_action(
            make_ctx(fake), "tiktok.upload_draft", UploadDraftInput(file_path=str(tmp_path / "nope.mp4"))
        )
    assert fake.requests == []


# --------------------------------------------------------------------------- OAuth code exchange


async def test_exchange_code_stores_the_first_token_pair(
    make_ctx: ContextFactory, store: CredentialStore
) -> None:
    fake = FakeProvider(
        {
            ("POST", "/v2/oauth/token/"): lambda r: httpx.Response(
                200,
                json={
                    "access_token": "act.first",
                    "expires_in": 7200,
                    "open_id": "open-9",
                    "refresh_expires_in": 15552000,
                    "refresh_token": "rft.first",
                    "scope": "user.info.basic,video.publish",
                    "token_type": "Bearer",
                },
            )
        }
    )
    ctx = make_ctx(fake)

    facts = await exchange_code(
        ctx.services, "main", code="C0DE", redirect_uri="https://app.example/cb", code_verifier="v" * 43
    )

    assert parse_qs(fake.requests[0].content.decode()) == {
        "client_key": ["ck_test"],
        "client_secret": ["cs_test"],
        "code": ["C0DE"],
        "grant_type": ["authorization_code"],
        "redirect_uri": ["https://app.example/cb"],
        "code_verifier": ["v" * 43],
    }
    stored = store.get("tiktok", "main")
    assert (stored["access_token"], stored["refresh_token"], stored["open_id"]) == (
        "act.first",
        "rft.first",
        "open-9",
    )
    assert facts == {
        "open_id": "open-9",
        "scope": "user.info.basic,video.publish",
        "expires_at": stored["expires_at"],
    }
    assert "act.first" not in json.dumps(facts)


async def test_exchange_code_refused_with_http_200_is_rejected(
    make_ctx: ContextFactory,
) -> None:
    fake = FakeProvider(
        {
            ("POST", "/v2/oauth/token/"): lambda r: httpx.Response(
                200,
                json={
                    "error": "invalid_grant",
                    "error_description": "Authorization code is expired.",
                    "log_id": "L7",
                },
            )
        }
    )
    with pytest.raises(ProviderRejected, match="Authorization code is expired") as caught:
        await exchange_code(
            make_ctx(fake).services, "main", code="old", redirect_uri="https://app.example/cb"
        )
    assert caught.value.code == "invalid_grant"


PULL = PublishVideoInput(
    source="PULL_FROM_URL", video_url="https://cdn.example.com/cat.mp4", privacy_level="SELF_ONLY"
)
INIT = ("POST", "/v2/post/publish/video/init/")


def init_failing_once(error: Exception | httpx.Response, **ok: str) -> Responder:
    """The init route: `error` the first time (raised, or answered), a publish_id after that."""
    answers = iter([error])

    def answer(request: httpx.Request) -> httpx.Response:
        first = next(answers, None)
        if isinstance(first, Exception):
            raise first
        return first or api_ok({"publish_id": "v_pub_url~v2.9", **ok})

    return answer


async def test_a_pull_from_url_init_whose_answer_was_lost_is_never_sent_again(
    make_ctx: ContextFactory,
) -> None:
    """TikTok may have accepted it and will fetch the video itself: the retry refuses, clearly."""
    fake = FakeProvider({**posting_routes(), INIT: init_failing_once(httpx.ReadTimeout("lost"))})
    ctx = make_ctx(fake)

    with pytest.raises(ProviderUnavailable) as first:
        await run_action(ctx, "tiktok.publish_video", PULL)
    assert first.value.outcome_unknown
    with pytest.raises(ProviderRejected) as retry:
        await run_action(ctx, "tiktok.publish_video", PULL)

    assert retry.value.code == "publish_outcome_unknown"
    assert "check the account's posts" in str(retry.value)
    assert len(fake.calls(*INIT)) == 1


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), api_error(500, "internal_error"), api_error(429, "rate_limit_exceeded")],
    ids=["connection refused", "500 answered", "429 answered"],
)
async def test_a_pull_from_url_init_tiktok_provably_did_not_act_on_is_retried(
    make_ctx: ContextFactory, error: Exception | httpx.Response
) -> None:
    fake = FakeProvider({**posting_routes(), INIT: init_failing_once(error)})
    ctx = make_ctx(fake)

    with pytest.raises(ProviderError):
        await run_action(ctx, "tiktok.publish_video", PULL)
    # The retry comes after the wait (a 429 holds this limiter back for a whole window).
    retry = make_ctx(fake)
    result = await run_action(retry, "tiktok.publish_video", PULL)
    again = await run_action(retry, "tiktok.publish_video", PULL)

    assert result["publish_id"] == "v_pub_url~v2.9"
    assert again == {**result, "already_done": True}
    assert len(fake.calls(*INIT)) == 2


async def test_a_file_upload_init_whose_answer_was_lost_is_simply_redone(
    make_ctx: ContextFactory, video: Path
) -> None:
    """Nothing was uploaded to the lost init, so it never publishes: a fresh init is safe."""
    lost = init_failing_once(httpx.ReadTimeout("lost"), upload_url=UPLOAD_URL)
    fake = FakeProvider({**posting_routes(), INIT: lost})
    ctx = make_ctx(fake)
    params = PublishVideoInput(file_path=str(video), privacy_level="SELF_ONLY")

    with pytest.raises(ProviderUnavailable):
        await run_action(ctx, "tiktok.publish_video", params)
    await run_action(ctx, "tiktok.publish_video", params)

    assert len(fake.calls(*INIT)) == 2


@pytest.mark.parametrize(
    "garbage",
    [
        api_ok({}),  # no publish_id
        httpx.Response(200, json={"error": {"code": "ok"}}),  # no data object
        httpx.Response(200, text="<html>ok</html>", headers={"content-type": "text/html"}),
        httpx.Response(200),  # empty
    ],
    ids=["no publish_id", "no data", "html", "empty"],
)
async def test_a_pull_from_url_init_answered_with_garbage_is_not_sent_again(
    make_ctx: ContextFactory, garbage: httpx.Response
) -> None:
    """A success status means TikTok may have taken the post, whatever came with it."""
    fake = FakeProvider({**posting_routes(), INIT: init_failing_once(garbage)})
    ctx = make_ctx(fake)

    with pytest.raises(ProviderUnavailable):
        await run_action(ctx, "tiktok.publish_video", PULL)
    with pytest.raises(ProviderRejected, match="check the account"):
        await run_action(ctx, "tiktok.publish_video", PULL)
    assert len(fake.calls(*INIT)) == 1
