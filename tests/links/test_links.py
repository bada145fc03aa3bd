"""Links out without Temporal: signed states, their refusals, and each provider's flow against the sandbox.

Every refusal is one line with a reason code and changes nothing in the credential store; a state
names its account, and nothing in the redirect can point it at another; no key, code or token
reaches a page, a log line or a notification.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from structlog.testing import capture_logs

from activities.credentials import CredentialStore
from activities.links import LinkRefused, LinkSigner, reauth_link_for, signing_key
from activities.registry import ActionContext, Services
from tests.support.emulator import emulator_services, serve_emulator, store_emulator_credentials
from tikflow.authorize.claims import MemoryClaims
from tikflow.authorize.complete import check_state, complete
from tikflow.authorize.flows import app_credential, authorization_url, redirect_uri

KEY = "k" * 40
REDIRECT = "http://127.0.0.1:8500/oauth/{p}/callback"
APPS = {
    "tikapi": {"client_id": "c_sandboxapp0001"},
    "highlevel": {"client_id": "hl-app-client", "client_secret": "hl-app-secret-0123456789"},
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with serve_emulator() as (url, _):
        yield url


@pytest.fixture
async def services(sandbox: str, tmp_path: Path) -> AsyncIterator[Services]:
    async with httpx.AsyncClient(timeout=10) as admin:
        await admin.post(f"{sandbox}/_admin/reset")
    store = store_emulator_credentials(CredentialStore(tmp_path / "credentials.json", env={}), sandbox)
    for provider, fields in APPS.items():
        store.update(provider, "main", fields)
    store.update("links", "main", {"signing_key": KEY})
    services = emulator_services(sandbox, store)
    try:
        yield services
    finally:
        await services.http.aclose()


def snapshot(store: CredentialStore) -> str:
    return store.path.read_text()


async def consent(services: Services, provider: str, account: str, signer: LinkSigner) -> dict[str, str]:
    """Open the consent page (auto-approving sandbox) and return the redirect's query."""
    state = signer.issue("state", provider, account, mode="paste")
    app = app_credential(services.credentials, provider, account)
    url = authorization_url(
        services.settings, provider, app, redirect=REDIRECT.format(p=provider), state=state
    )
    answer = await services.http.get(url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))


# -- the signed state ---------------------------------------------------------------------------


def test_a_state_round_trips_and_names_its_account() -> None:
    signer = LinkSigner(KEY)
    claim = signer.check(signer.issue("state", "tikapi", "brand-a", workflow_id="run-1"), "state")
    assert (claim.provider, claim.account, claim.workflow_id, claim.mode) == (
        "tikapi",
        "brand-a",
        "run-1",
        "ingress",
    )


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda s: LinkSigner("x" * 40).issue("state", "tikapi", "a"), "forged"),
        (lambda s: s.issue("state", "tikapi", "a")[:-2] + "xx", "forged"),
        (lambda s: "not-a-token", "forged"),
        (lambda s: "", "malformed"),
        (lambda s: s.issue("reauth", "tikapi", "a"), "wrong_purpose"),
        (lambda s: s.issue("state", "tikapi", "a", ttl_s=-1), "expired"),
    ],
    ids=["other-key", "altered-signature", "garbage", "empty", "reauth-link-as-state", "expired"],
)
def test_a_bad_state_is_refused_with_one_line(make, reason) -> None:
    signer = LinkSigner(KEY)
    with pytest.raises(LinkRefused) as refused:
        signer.check(make(signer), "state")
    assert refused.value.reason == reason
    assert "\n" not in refused.value.message


def test_altering_the_account_in_a_state_breaks_its_signature() -> None:
    from itsdangerous import URLSafeSerializer

    signer = LinkSigner(KEY)
    token = signer.issue("state", "tikapi", "brand-a")
    _, signature = token.rsplit(".", 1)
    claim = URLSafeSerializer("any").loads_unsafe(token)[1]
    altered = URLSafeSerializer("any").dumps({**claim, "a": "brand-b"}).rsplit(".", 1)[0]
    with pytest.raises(LinkRefused) as refused:
        signer.check(f"{altered}.{signature}", "state")
    assert refused.value.reason == "forged"


def test_a_state_expires_on_the_clock_without_sleeping() -> None:
    now = [1_000_000.0]
    signer = LinkSigner(KEY, clock=lambda: now[0])
    token = signer.issue("state", "tiktok", "main")
    signer.check(token, "state")
    now[0] += 15 * 60 + 1
    with pytest.raises(LinkRefused, match="expired"):
        signer.check(token, "state")


def test_the_signing_key_is_made_once_and_kept_in_the_store(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "c.json", env={})
    assert signing_key(store) is None
    key = signing_key(store, create=True)
    assert key
    assert len(key) >= 32
    assert signing_key(store, create=True) == key
    assert (tmp_path / "c.json").stat().st_mode & 0o777 == 0o600


# -- each provider's flow against the sandbox ------------------------------------------------------


async def test_tikapi_implicit_flow_stores_the_account_key_under_the_states_account(
    services: Services,
) -> None:
    signer = LinkSigner(KEY)
    query = await consent(services, "tikapi", "brand-a", signer)
    claim = check_state(signer, query, "tikapi", "paste")
    app = app_credential(services.credentials, "tikapi", "brand-a")
    await complete(
        services, claim, query, app=app, redirect=REDIRECT.format(p="tikapi"), spender=MemoryClaims()
    )
    stored = services.credentials.get("tikapi", "brand-a")
    assert stored["account_key"] == query["access_token"]
    assert stored["api_key"]
    assert stored["client_id"] == APPS["tikapi"]["client_id"]
    with pytest.raises(Exception, match="no credential"):
        services.credentials.get("tikapi", "brand-b")


async def test_a_replayed_state_is_refused_and_changes_nothing(services: Services) -> None:
    signer = LinkSigner(KEY)
    query = await consent(services, "tikapi", "brand-a", signer)
    claim = check_state(signer, query, "tikapi", "paste")
    app = app_credential(services.credentials, "tikapi", "brand-a")
    spender = MemoryClaims()
    await complete(services, claim, query, app=app, redirect="r", spender=spender)
    before = snapshot(services.credentials)
    again = {**query, "access_token": "AnotherAccountKey0123456789"}
    with pytest.raises(LinkRefused) as refused:
        await complete(services, claim, again, app=app, redirect="r", spender=spender)
    assert refused.value.reason == "replayed"
    assert snapshot(services.credentials) == before


async def test_a_state_for_one_provider_or_completer_is_refused_by_another(services: Services) -> None:
    signer = LinkSigner(KEY)
    query = await consent(services, "tikapi", "main", signer)
    before = snapshot(services.credentials)
    with pytest.raises(LinkRefused, match="for tikapi, not tiktok"):
        check_state(signer, query, "tiktok", "paste")
    with pytest.raises(LinkRefused) as refused:
        check_state(signer, query, "tikapi", "ingress")
    assert refused.value.reason == "wrong_mode"
    assert snapshot(services.credentials) == before


async def test_a_declined_consent_is_refused(services: Services, sandbox: str) -> None:
    signer = LinkSigner(KEY)
    state = signer.issue("state", "tikapi", "main", mode="paste")
    with pytest.raises(LinkRefused, match=r"did not authorize the account \(access_denied\)"):
        check_state(signer, {"state": state, "error": "access_denied"}, "tikapi", "paste")


async def test_tiktok_code_is_exchanged_and_the_pair_stored_with_the_app(services: Services) -> None:
    signer = LinkSigner(KEY)
    query = await consent(services, "tiktok", "brand-t", signer)
    assert "code" in query
    assert "access_token" not in query
    claim = check_state(signer, query, "tiktok", "paste")
    app = app_credential(services.credentials, "tiktok", "brand-t")
    await complete(
        services, claim, query, app=app, redirect=REDIRECT.format(p="tiktok"), spender=MemoryClaims()
    )
    stored = services.credentials.get("tiktok", "brand-t")
    assert {"access_token", "refresh_token", "expires_at", "client_key", "client_secret"} <= set(stored)
    # The code is spent at the provider: exchanging it twice fails there too (and stores nothing).
    before = snapshot(services.credentials)
    with pytest.raises(LinkRefused) as refused:
        await complete(services, claim, query, app=app, redirect="r", spender=MemoryClaims())
    assert refused.value.reason == "exchange_failed"
    assert snapshot(services.credentials) == before


async def test_highlevel_oauth_tokens_are_stored_then_refreshed_and_rotated_once(services: Services) -> None:
    import asyncio

    from activities.highlevel.accounts import AccountsInput, accounts

    signer = LinkSigner(KEY)
    query = await consent(services, "highlevel", "agency-1", signer)
    claim = check_state(signer, query, "highlevel", "paste")
    app = app_credential(services.credentials, "highlevel", "agency-1")
    await complete(
        services, claim, query, app=app, redirect=REDIRECT.format(p="highlevel"), spender=MemoryClaims()
    )
    first = services.credentials.get("highlevel", "agency-1")
    assert first["location_id"]
    assert first["refresh_token"]
    assert first["client_secret"] == APPS["highlevel"]["client_secret"]
    # The token is about to expire: many calls at once refresh it once, and the rotation is kept.
    services.credentials.update("highlevel", "agency-1", {"expires_at": str(int(time.time()))})
    ctx = ActionContext(
        services=services, account="agency-1", idempotency_key="k", action="highlevel.accounts"
    )
    results = await asyncio.gather(*(accounts(ctx, AccountsInput()) for _ in range(5)))
    assert all(r["items"] for r in results)
    second = services.credentials.get("highlevel", "agency-1")
    assert second["token"] != first["token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert float(second["expires_at"]) > time.time() + 3600


async def test_a_private_integration_token_is_used_as_it_is(services: Services) -> None:
    from activities.highlevel.accounts import AccountsInput, accounts

    before = services.credentials.get("highlevel", "main")
    assert "refresh_token" not in before
    ctx = ActionContext(services=services, account="main", idempotency_key="k", action="highlevel.accounts")
    assert (await accounts(ctx, AccountsInput()))["items"]
    assert services.credentials.get("highlevel", "main")["token"] == before["token"]


# -- the notification's link -----------------------------------------------------------------------


async def test_the_reauth_notification_carries_a_link_and_no_secret(services: Services) -> None:
    from dataclasses import replace

    from activities.builtin import NotifyInput, notify

    services = replace(services, settings=replace(services.settings, public_url="https://hooks.example"))
    assert services.http is not None
    params = NotifyInput(
        message="tikflow: the tikapi session of account 'main' expired (r).",
        data={"event": "awaiting_reauth", "account": "main", "provider": "tikapi"},
        workflow_id="run-1",
    )
    ctx = ActionContext(services=services, account="main", idempotency_key="k", action="notify.send")
    with capture_logs() as logs:
        await notify(ctx, params)
    line = next(entry for entry in logs if entry["event"] == "notification")["message"]
    link = line.rsplit(" ", 1)[-1]
    assert link.startswith("https://hooks.example/reauth/")
    claim = LinkSigner(KEY).check(link.rsplit("/", 1)[-1], "reauth")
    assert (claim.provider, claim.account, claim.workflow_id) == ("tikapi", "main", "run-1")
    secrets = [
        v for p in ("tikapi", "links") for v in services.credentials.get(p, "main").values() if len(v) > 12
    ]
    assert not any(secret in line for secret in secrets)


def test_no_link_without_a_public_url_or_a_key(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "c.json", env={})
    assert reauth_link_for(store, "https://hooks.example", "tikapi", "main") is None
    store.update("links", "main", {"signing_key": KEY})
    assert reauth_link_for(store, None, "tikapi", "main") is None
    assert reauth_link_for(store, "https://hooks.example", "socialapi", "main") is None
    assert reauth_link_for(store, "https://hooks.example", "tikapi", "main")


def test_redirect_uris_are_the_ingress_callbacks() -> None:
    assert redirect_uri("https://hooks.example/", "tiktok") == "https://hooks.example/oauth/tiktok/callback"
