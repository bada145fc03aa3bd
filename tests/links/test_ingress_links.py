"""The ingress's link routes and `tikflow connect`, against real Temporal, the sandbox and HTTP on loopback.

Security: a forged, altered, expired or replayed state, or a forged re-authorization link, is
refused with a one-line reason and changes nothing (no credential written, no signal sent); a
callback for account A cannot write account B; the pages hold no key, code or token.
`tikflow connect` works with the ingress (callback) and without one (paste-back).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from activities.links import LinkSigner
from tests.links.conftest import LINK_KEY, Deployment
from tikflow.authorize.flows import app_credential, authorization_url, redirect_uri
from tikflow.emulator.server import provider_base_urls

pytestmark = pytest.mark.devserver

TIKFLOW = Path(sys.executable).with_name("tikflow")


def store_text(d: Deployment) -> str:
    return d.store.path.read_text()


async def consent_redirect(d: Deployment, provider: str, state: str) -> str:
    """The callback address the (auto-approving) sandbox consent page sends the browser to."""
    from activities.settings import Settings

    settings = Settings(base_urls=provider_base_urls(d.sandbox))
    app = app_credential(d.store, provider, "main")
    url = authorization_url(settings, provider, app, redirect=redirect_uri(d.ingress, provider), state=state)
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(url)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.get(url)


def one_line_refusal(answer: httpx.Response, reason_text: str) -> None:
    assert answer.status_code == 400, answer.text
    assert "Not connected" in answer.text
    assert reason_text in answer.text


async def test_a_callback_stores_the_key_under_the_states_account_once(deployment: Deployment) -> None:
    d = deployment
    state = LinkSigner(LINK_KEY).issue("state", "tikapi", "brand-a")
    back = await consent_redirect(d, "tikapi", state)
    key = dict(parse_qsl(urlsplit(back).query))["access_token"]
    first = await get(back)
    assert first.status_code == 200, first.text
    assert "The tikapi account &#x27;brand-a&#x27; is connected." in first.text
    assert key not in first.text
    assert first.headers["cache-control"] == "no-store"
    assert d.store.get("tikapi", "brand-a")["account_key"] == key
    # The same redirect again (a replay, a second ingress replica): refused, nothing changes.
    before = store_text(d)
    one_line_refusal(await get(back), "this link was already used")
    assert store_text(d) == before


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (LinkSigner("another-key-0123456789abcdef0123456789").issue("state", "tikapi", "main"), "signature"),
        ("garbage.not-signed", "signature"),
        (LinkSigner(LINK_KEY).issue("state", "tikapi", "main", ttl_s=-5), "expired"),
        (LinkSigner(LINK_KEY).issue("reauth", "tikapi", "main"), "not a state link"),
        (LinkSigner(LINK_KEY).issue("state", "tikapi", "main", mode="paste"), "command line"),
        (LinkSigner(LINK_KEY).issue("state", "tiktok", "main"), "for tiktok, not tikapi"),
    ],
    ids=["forged", "garbage", "expired", "wrong-purpose", "paste-state", "other-provider"],
)
async def test_a_bad_state_is_refused_and_changes_nothing(
    deployment: Deployment, state: str, reason: str
) -> None:
    d = deployment
    before = store_text(d)
    answer = await get(
        f"{d.ingress}/oauth/tikapi/callback?state={state}&access_token=NewAccountKey0123456789"
    )
    one_line_refusal(answer, reason)
    assert "NewAccountKey0123456789" not in answer.text
    assert store_text(d) == before


async def test_an_altered_state_cannot_point_a_callback_at_another_account(deployment: Deployment) -> None:
    from itsdangerous import URLSafeSerializer

    d = deployment
    state = LinkSigner(LINK_KEY).issue("state", "tikapi", "brand-a")
    back = await consent_redirect(d, "tikapi", state)
    claim = URLSafeSerializer("x").loads_unsafe(state)[1]
    altered = (
        URLSafeSerializer("x").dumps({**claim, "a": "brand-b"}).rsplit(".", 1)[0]
        + "."
        + state.rsplit(".", 1)[1]
    )
    before = store_text(d)
    one_line_refusal(await get(back.replace(state, altered)), "signature")
    # An extra `account=` in the query is not read either: the state alone names the account.
    answer = await get(back + "&account=brand-b")
    assert answer.status_code == 200
    assert "brand-b" not in store_text(d)
    assert before != store_text(d)


async def test_a_forged_or_expired_reauth_link_is_refused(deployment: Deployment) -> None:
    d = deployment
    forged = LinkSigner("another-key-0123456789abcdef0123456789").issue("reauth", "tikapi", "main")
    one_line_refusal(await get(f"{d.ingress}/reauth/{forged}"), "signature")
    expired = LinkSigner(LINK_KEY).issue("reauth", "tikapi", "main", ttl_s=-1)
    one_line_refusal(await get(f"{d.ingress}/reauth/{expired}"), "expired")
    good = LinkSigner(LINK_KEY).issue("reauth", "tikapi", "main")
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(f"{d.ingress}/reauth/{good}")
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(f"{d.sandbox}/tikapi/account/authorize?")


async def test_tiktok_and_highlevel_codes_are_exchanged_by_the_callback(deployment: Deployment) -> None:
    d = deployment
    d.store.update(
        "highlevel", "main", {"client_id": "hl-app", "client_secret": "hl-secret-0123456789abcdef"}
    )
    for provider, account in (("tiktok", "brand-t"), ("highlevel", "agency-1")):
        back = await consent_redirect(d, provider, LinkSigner(LINK_KEY).issue("state", provider, account))
        code = dict(parse_qsl(urlsplit(back).query))["code"]
        answer = await get(back)
        assert answer.status_code == 200, answer.text
        stored = d.store.get(provider, account)
        token = stored["access_token" if provider == "tiktok" else "token"]
        for secret in (code, token, stored["refresh_token"], stored["client_secret"]):
            assert secret not in answer.text


# -- tikflow connect ---------------------------------------------------------------------------------


async def connect_command(d: Deployment, *args: str, stdin: str = "", public: bool = True) -> tuple[int, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TIKFLOW_", "TEMPORAL_"))},
        "TIKFLOW_CREDENTIALS": str(d.store.path),
        "TEMPORAL_ADDRESS": "127.0.0.1:1",  # paste-back's wake-up finds no Temporal: a note, not a failure
        **{f"TIKFLOW_{p.upper()}_URL": url for p, url in provider_base_urls(d.sandbox).items()},
        **({"TIKFLOW_PUBLIC_URL": d.ingress} if public else {}),
    }
    process = await asyncio.create_subprocess_exec(
        str(TIKFLOW),
        "connect",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


def printed_url(out: str) -> str:
    return next(line.strip() for line in out.splitlines() if line.strip().startswith("http"))


async def test_connect_with_the_ingress_prints_the_consent_page_and_the_callback_stores(
    deployment: Deployment,
) -> None:
    d = deployment
    code, out = await connect_command(d, "tikapi", "--account", "brand-c", "--no-browser")
    assert code == 0, out
    url = printed_url(out)
    assert url.startswith(f"{d.sandbox}/tikapi/account/authorize?")
    async with httpx.AsyncClient(timeout=20, follow_redirects=True) as http:
        answer = await http.get(url)
    assert answer.status_code == 200, answer.text
    assert "connected" in answer.text
    assert d.store.get("tikapi", "brand-c")["account_key"]


async def test_connect_without_a_public_url_takes_the_pasted_address(deployment: Deployment) -> None:
    d = deployment
    # A paste that is not the answer to this command's own state is refused; nothing is stored.
    before = store_text(d)
    code, out = await connect_command(
        d, "tiktok", "--account", "brand-p", "--no-browser", public=False, stdin="\n"
    )
    assert code == 2, out
    assert (
        out.splitlines()[-1]
        == "tikflow: not connected: the pasted address is not the answer to this authorization"
    )
    assert store_text(d) == before

    # A real paste: run the command, open its URL, paste the redirect.
    async def run() -> tuple[int, str]:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TIKFLOW_", "TEMPORAL_"))},
            "TIKFLOW_CREDENTIALS": str(d.store.path),
            "TEMPORAL_ADDRESS": "127.0.0.1:1",
            **{f"TIKFLOW_{p.upper()}_URL": url for p, url in provider_base_urls(d.sandbox).items()},
        }
        process = await asyncio.create_subprocess_exec(
            str(TIKFLOW),
            "connect",
            "tiktok",
            "--account",
            "brand-p",
            "--no-browser",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdout is not None
        assert process.stdin is not None
        lines: list[str] = []
        while not any(line.strip().startswith("http") for line in lines):
            lines.append((await asyncio.wait_for(process.stdout.readline(), 30)).decode())
        async with httpx.AsyncClient(timeout=10) as http:
            back = (await http.get(printed_url("".join(lines)))).headers["location"]
        assert back.startswith("http://127.0.0.1:8500/oauth/tiktok/callback?")
        process.stdin.write(back.encode() + b"\n")
        await process.stdin.drain()
        rest, _ = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, "".join(lines) + rest.decode()

    code, out = await run()
    assert code == 0, out
    assert "connected tiktok account 'brand-p'" in out
    stored = d.store.get("tiktok", "brand-p")
    assert stored["refresh_token"]
    for secret in (stored["access_token"], stored["refresh_token"], stored["client_secret"]):
        assert secret not in out
