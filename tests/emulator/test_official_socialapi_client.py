"""The official SocialAPI SDK (PyPI `socialapi`), unchanged, works against the sandbox (issue 17, 5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from socialapi import SocialAPI
from socialapi._exceptions import AccountNotFoundError, ForbiddenError, NotFoundError, NotSupportedError

from activities.credentials import CredentialStore
from activities.errors import SessionExpired
from tests.support.actions import action_context, run_action
from tests.support.emulator import AdminClient, emulator_services, store_emulator_credentials
from tikflow.emulator.server import running_emulator
from tikflow.emulator.state import SOCIALAPI_ACCOUNT, SOCIALAPI_KEY, EmulatorConfig

VIDEO = "https://cdn.example.com/v.mp4"


@pytest.fixture
def base() -> Iterator[str]:
    with running_emulator(port=0, config=EmulatorConfig(seed=7, publish_polls=1)) as url:
        yield url


@pytest.fixture
def client(base: str) -> Iterator[SocialAPI]:
    sdk = SocialAPI(api_key=SOCIALAPI_KEY, base_url=f"{base}/socialapi", max_retries=0)
    yield sdk
    sdk.close()


def test_accounts_and_creator_info(client):
    accounts = client.accounts.list()
    assert [(a.id, a.platform) for a in accounts.data] == [(SOCIALAPI_ACCOUNT, "tiktok")]
    info = client.accounts.get_creator_info(SOCIALAPI_ACCOUNT)
    assert info.platform == "tiktok"
    assert "SELF_ONLY" in (info.privacy_level_options or [])


def test_create_get_and_list_posts_in_the_sdks_shape(client):
    created = client.publishing.create(
        text="from the official SDK",
        media_ids=[VIDEO],
        publish_now=True,
        targets=[
            {"account_id": SOCIALAPI_ACCOUNT, "platform_data": {"tiktok": {"privacy_level": "SELF_ONLY"}}}
        ],
    )
    assert created.id.startswith("p_")
    assert created.updated_at is not None
    got = client.posts.get(created.id)
    assert got.status == "published"
    assert got.targets
    assert got.targets[0].platform_post_id
    listed = client.posts.list(platform="tiktok")
    assert created.id in [p.id for p in listed.data]


def test_the_sdks_error_map_reads_the_sandboxs_codes(client, base):
    with pytest.raises(AccountNotFoundError):
        client.accounts.get_creator_info("acc_nope")
    with pytest.raises(NotFoundError) as missing:
        client.posts.get("p_nope")
    assert missing.value.code == "post.not_found"
    with pytest.raises(NotSupportedError):
        client.publishing.create(
            text="later",
            media_ids=[VIDEO],
            scheduled_at="2031-01-01T00:00:00Z",
            targets=[{"account_id": SOCIALAPI_ACCOUNT}],
        )
    AdminClient(base).admin(
        "faults", {"rules": [{"provider": "socialapi", "kind": "session_expired", "path": "/posts"}]}
    )
    with pytest.raises(ForbiddenError) as reconnect:
        client.posts.list()
    assert reconnect.value.code == "account.reconnection_required"


async def test_a_reconnection_request_waits_for_reauthorization_instead_of_failing_fast(
    base: str, tmp_path: Path
):
    store = store_emulator_credentials(CredentialStore(tmp_path / "c.json", env={}), base)
    AdminClient(base).admin(
        "faults", {"rules": [{"provider": "socialapi", "kind": "session_expired", "path": "/posts"}]}
    )
    services = emulator_services(base, store)
    try:
        with pytest.raises(SessionExpired, match="reconnect it in SocialAPI"):
            await run_action(
                action_context(services, key="k", action="socialapi.list_posts"), "socialapi.list_posts"
            )
    finally:
        await services.http.aclose()


def test_a_tiktok_privacy_level_creator_info_does_not_offer_is_refused(client):
    from socialapi._exceptions import SocialAPIError

    with pytest.raises(SocialAPIError) as refused:
        client.publishing.create(
            text="to everyone?",
            media_ids=[VIDEO],
            publish_now=True,
            targets=[
                {"account_id": SOCIALAPI_ACCOUNT, "platform_data": {"tiktok": {"privacy_level": "EVERYONE"}}}
            ],
        )
    assert refused.value.code == "validation.invalid_value"
    assert "privacy_level" in str(refused.value)
    assert client.posts.list().data == []
