"""The official HighLevel SDK (PyPI `gohighlevel-api-client`), unchanged, against the sandbox.

Issue 17, points 6 and 8."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from highlevel import HighLevel

from activities.credentials import CredentialStore
from activities.errors import RateLimited
from tests.support.actions import action_context, run_action
from tests.support.emulator import AdminClient, emulator_services, store_emulator_credentials
from tikflow.emulator.server import running_emulator
from tikflow.emulator.state import HIGHLEVEL_ACCOUNT, HIGHLEVEL_LOCATION, HIGHLEVEL_TOKEN, EmulatorConfig


@pytest.fixture
def base() -> Iterator[str]:
    with running_emulator(port=0, config=EmulatorConfig(seed=7, publish_polls=1)) as url:
        yield url


async def test_the_sdk_with_its_default_version_reads_accounts_profile_and_posts(base):
    sdk = HighLevel(private_integration_token=HIGHLEVEL_TOKEN)
    sdk.http_client.base_url = httpx.URL(f"{base}/highlevel")
    try:
        accounts = await sdk.social_planner.get_account(HIGHLEVEL_LOCATION)
        assert HIGHLEVEL_ACCOUNT in [a["id"] for a in accounts["results"]["accounts"]]
        profile = await sdk.social_planner.get_oauth_accounts(HIGHLEVEL_LOCATION, "tiktok", HIGHLEVEL_ACCOUNT)
        assert profile["results"]["profile"]
        body = {
            "accountIds": [HIGHLEVEL_ACCOUNT],
            "userId": "user-1",
            "type": "post",
            "summary": "from the official SDK",
            "media": [{"url": "https://cdn.example.com/v.mp4", "type": "video/mp4"}],
            "tiktokPostDetails": {"privacyLevel": "SELF_ONLY", "videoDisclosure": False},
        }
        created = await sdk.social_planner.create_post(HIGHLEVEL_LOCATION, body)
        post_id = created["results"]["post"]["_id"]
        got = await sdk.social_planner.get_post(HIGHLEVEL_LOCATION, post_id)
        assert got["results"]["post"]["_id"] == post_id
        listed = await sdk.social_planner.get_posts(
            HIGHLEVEL_LOCATION, {"type": "all", "skip": "0", "limit": "10"}
        )
        assert post_id in [p["_id"] for p in listed["results"]["posts"]]
    finally:
        await sdk.http_client.aclose()


def test_the_sandbox_checks_tiktok_post_details_as_the_v3_schema_does(base):
    headers = {"Authorization": f"Bearer {HIGHLEVEL_TOKEN}", "Version": "v3"}
    url = f"{base}/highlevel/social-media-posting/{HIGHLEVEL_LOCATION}/posts"
    post = {"accountIds": [HIGHLEVEL_ACCOUNT], "userId": "u", "type": "post", "summary": "x"}
    for details, status in (
        ({}, 422),
        ({"privacyLevel": "SELF_ONLY", "videoDisclosure": True}, 422),
        ({"privacyLevel": "SELF_ONLY"}, 201),
    ):
        answer = httpx.post(url, json={**post, "tiktokPostDetails": details}, headers=headers)
        assert answer.status_code == status, answer.text
    scheduled = httpx.post(url, json={**post, "status": "scheduled"}, headers=headers)
    assert scheduled.status_code == 422


async def test_a_spent_daily_quota_is_waited_until_the_day_turns(base: str, tmp_path: Path):
    AdminClient(base).admin("config", {"highlevel_daily": 1})
    store = store_emulator_credentials(CredentialStore(tmp_path / "c.json", env={}), base)
    first, second = emulator_services(base, store), emulator_services(base, store)
    try:
        await run_action(action_context(first, key="k", action="highlevel.accounts"), "highlevel.accounts")
        with pytest.raises(RateLimited) as limited:
            await run_action(
                action_context(second, key="k2", action="highlevel.accounts"), "highlevel.accounts"
            )
    finally:
        await first.http.aclose()
        await second.http.aclose()
    # Not the 10 s burst window: the rest of the UTC day (a durable wait in the workflow).
    assert limited.value.retry_after is not None
    assert limited.value.retry_after > 60
