"""What a real TikTok account hits that the sandbox used to hide (issue 17, points 1-4).

The sandbox is served over HTTP on loopback; actions run as the worker runs them, their rate
limiter on the same fake clock as the sandbox, so a minute passes without anyone sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.credentials import CredentialStore
from activities.errors import ProviderRejected, RateLimited
from activities.ledger import EffectLedger
from activities.ratelimit import RateLimiter
from activities.registry import ActionContext
from activities.tiktok import MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, plan_chunks
from tests.emulator.support import FakeClock
from tests.support.actions import action_context, run_action
from tests.support.emulator import AdminClient, emulator_services, serve_emulator, store_emulator_credentials
from tikflow.emulator.app import Emulator
from tikflow.emulator.state import EmulatorConfig

MB = 1024 * 1024
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000
VIDEO_URL = "https://media.example/clip.mp4"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def served(clock: FakeClock) -> Iterator[tuple[str, Emulator]]:
    # The sandbox's defaults: a new, unaudited TikTok app, moderation that takes a while.
    with serve_emulator(EmulatorConfig(seed=7, clock=clock, publish_polls=1)) as found:
        yield found


@pytest.fixture
def admin(served: tuple[str, Emulator]) -> AdminClient:
    return AdminClient(served[0])


@pytest.fixture
async def make_ctx(served: tuple[str, Emulator], clock: FakeClock, tmp_path: Path) -> AsyncIterator[Any]:
    base, _ = served
    store = store_emulator_credentials(CredentialStore(tmp_path / "credentials.json", env={}), base)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    # One worker's limiter on the sandbox clock; waits up to a window in-process for the burst test.
    limiter = RateLimiter(clock=clock, sleep=advance, max_wait_s=120)
    services = emulator_services(base, store, limiter=limiter)
    services.ledger = EffectLedger(tmp_path / "effects.json")

    def build(key: str, action: str = "tiktok.publish_video") -> ActionContext:
        return action_context(services, key=key, action=action)

    try:
        yield build
    finally:
        await services.http.aclose()


async def _post_self_only(ctx: ActionContext) -> dict[str, Any]:
    return await run_action(
        ctx, "tiktok.publish_video", source="PULL_FROM_URL", video_url=VIDEO_URL, privacy_level="SELF_ONLY"
    )


def _statuses(admin: AdminClient) -> dict[str, int]:
    return dict(admin.admin("state", method="GET")["statuses"])


# -- 1. unaudited apps ---------------------------------------------------------------------------


async def test_an_unaudited_app_offers_self_only_and_refuses_public_posts_saying_what_to_do(make_ctx):
    creator = await run_action(make_ctx("c", "tiktok.creator_info"), "tiktok.creator_info")
    assert creator["privacy_level_options"] == ["SELF_ONLY"]

    # Straight at the API (the action checks creator info first): TikTok's own refusal.
    with pytest.raises(ProviderRejected) as refused:
        await run_action(
            make_ctx("c2"),
            "tiktok.publish_video",
            source="PULL_FROM_URL",
            video_url=VIDEO_URL,
            privacy_level="PUBLIC_TO_EVERYONE",
        )
    assert refused.value.code == "privacy_level_option_mismatch"


async def test_an_unaudited_app_posting_from_a_public_account_gets_tiktoks_403_with_advice(make_ctx, admin):
    admin.admin("config", {"tiktok_account_private": False})
    with pytest.raises(ProviderRejected) as refused:
        await _post_self_only(make_ctx("p"))
    assert (refused.value.status, refused.value.code) == (
        403,
        "unaudited_client_can_only_post_to_private_accounts",
    )
    assert "set the account to private" in str(refused.value)
    assert "audited" in str(refused.value)


async def test_an_unaudited_app_caps_the_creators_posting_per_day(make_ctx, admin):
    admin.admin("config", {"tiktok_unaudited_daily_creators": 0})
    with pytest.raises(ProviderRejected) as refused:
        await _post_self_only(make_ctx("cap"))
    assert (refused.value.status, refused.value.code) == (403, "reached_active_user_cap")
    assert "5 creators" in str(refused.value)


async def test_an_unaudited_app_may_post_self_only_from_a_private_account(make_ctx):
    posted = await _post_self_only(make_ctx("ok"))
    assert posted["publish_id"]


# -- 2. 429s without a reset header, paced by the documented windows ------------------------------


def test_the_sandbox_answers_tiktoks_429_with_no_reset_header(served, admin):
    base, _ = served
    token = admin.admin("keys", {"provider": "tiktok"})["access_token"]
    init = f"{base}/tiktok/v2/post/publish/video/init/"
    body = {"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "PULL_FROM_URL"}}
    headers = {"Authorization": f"Bearer {token}"}
    answers = [httpx.post(init, json=body, headers=headers) for _ in range(7)]
    assert answers[-1].status_code == 429
    assert answers[-1].json()["error"]["code"] == "rate_limit_exceeded"
    assert "retry-after" not in answers[-1].headers


async def test_a_burst_of_posts_against_the_init_window_completes_without_a_429(make_ctx, admin, clock):
    start = clock.now
    # One after another: the fake clock jumps when the limiter waits, which would leave requests
    # sent concurrently before the jump arriving after it.
    posted = [await _post_self_only(make_ctx(f"burst-{i}")) for i in range(10)]

    assert len({p["publish_id"] for p in posted}) == 10
    assert _statuses(admin).get("tiktok 429", 0) == 0
    # Six inits fit in the first minute; the other four waited for the window to slide.
    assert clock.now - start >= 60


async def test_a_429_from_a_window_spent_elsewhere_is_answered_once_then_waited_out(
    make_ctx, served, admin, clock
):
    base, _ = served
    # Another worker spent this token's init window.
    token = admin.admin("keys", {"provider": "tiktok"})["access_token"]
    ctx = make_ctx("elsewhere")
    store = ctx.services.credentials
    store.update("tiktok", "main", {"access_token": token})
    init = f"{base}/tiktok/v2/post/publish/video/init/"
    body = {"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "PULL_FROM_URL"}}
    for _ in range(6):
        await ctx.services.http.post(init, json=body, headers={"Authorization": f"Bearer {token}"})

    with pytest.raises(RateLimited) as limited:
        await _post_self_only(ctx)
    assert limited.value.retry_after == pytest.approx(61)
    # The retry is held back here until the window slid, not sent for a second 429.
    before = clock.now
    posted = await _post_self_only(make_ctx("elsewhere-2"))
    assert posted["publish_id"]
    assert clock.now - before >= 60
    assert _statuses(admin)["tiktok 429"] == 1


# -- 3. post ids arrive after moderation ---------------------------------------------------------


def test_a_public_posts_id_arrives_only_after_moderation(served, admin, clock):
    base, _ = served
    admin.admin("config", {"tiktok_app_audited": True, "tiktok_moderation_s": 600})
    token = admin.admin("keys", {"provider": "tiktok"})["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    init = httpx.post(
        f"{base}/tiktok/v2/post/publish/video/init/",
        json={
            "post_info": {"privacy_level": "PUBLIC_TO_EVERYONE"},
            "source_info": {"source": "PULL_FROM_URL", "video_url": VIDEO_URL},
        },
        headers=headers,
    ).json()["data"]

    def status() -> dict[str, Any]:
        answer = httpx.post(
            f"{base}/tiktok/v2/post/publish/status/fetch/",
            json={"publish_id": init["publish_id"]},
            headers=headers,
        )
        return answer.json()["data"]

    done = status()
    assert done["status"] == "PUBLISH_COMPLETE"
    assert done["publicaly_available_post_id"] == []
    clock.advance(600)
    assert len(status()["publicaly_available_post_id"]) == 1


# -- 4. chunk rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [65 * MB, 100 * MB, 128 * MB])
def test_a_file_over_64_mb_is_planned_in_several_chunks_whatever_the_chunk_size(size):
    plan = plan_chunks(size, MAX_CHUNK_BYTES)
    assert plan.total_chunk_count >= 2
    for index in range(plan.total_chunk_count):
        first, last = plan.byte_range(index)
        length = last - first + 1
        assert length <= (128 * MB if index == plan.total_chunk_count - 1 else MAX_CHUNK_BYTES)
        assert length >= MIN_CHUNK_BYTES


def test_chunks_under_5_mb_are_refused_for_a_file_of_5_mb_or_more():
    with pytest.raises(ProviderRejected, match="5 MB minimum"):
        plan_chunks(20 * MB, 1 * MB)


def test_the_sandbox_refuses_a_file_over_64_mb_sent_as_one_chunk(served, admin):
    base, _ = served
    token = admin.admin("keys", {"provider": "tiktok"})["access_token"]
    refused = httpx.post(
        f"{base}/tiktok/v2/post/publish/video/init/",
        json={
            "post_info": {"privacy_level": "SELF_ONLY"},
            "source_info": {
                "source": "FILE_UPLOAD",
                "video_size": 100 * MB,
                "chunk_size": 64 * MB,
                "total_chunk_count": 1,
            },
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 400
    assert "several chunks" in refused.json()["error"]["message"]
