"""Twenty concurrent TikTok calls on one account whose token just expired: one refresh, not twenty.

TikTok rotates the refresh token on every refresh, so a second refresh with the old one would be
refused (`invalid_grant`) and park the run for a human. The sandbox counts refresh requests.
"""

from __future__ import annotations

import asyncio
import time

from activities.credentials import CredentialStore
from tests.resilience.conftest import Rig, worker_in
from tests.resilience.report import record
from workflows.recipe import RunResult

TWENTY_AT_ONCE = """
recipe: twenty-at-once
inputs:
  calls: {type: list, default: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}
timeout: 20s
steps:
  - id: reads
    for_each: "{{ inputs.calls }}"
    as: n
    concurrency: 20
    steps:
      - id: me
        call: tiktok.user_info
    collect: "{{ [steps.me] }}"
"""


async def test_twenty_concurrent_calls_on_an_expired_token_refresh_it_once(rig: Rig) -> None:
    started = time.monotonic()
    store = CredentialStore(rig.credentials_path, env={})
    before = store.get("tiktok", "main")
    # The sandbox expires every access token now; the stored `expires_at` still looks fresh, so
    # all twenty calls go out with the dead token and meet TikTok's 401 at about the same time.
    expired = await rig.emulator.admin("expire_token", {"provider": "tiktok"})
    assert expired["expired"] >= 1
    # A slow token endpoint keeps the refresh going until every call has met its 401, so all
    # twenty really want a refresh at the same time (and nineteen must wait for the first).
    await rig.emulator.faults({"provider": "tiktok", "kind": "slow", "path": "/oauth/token", "delay_s": 1.5})

    async with worker_in(rig):
        handle = await rig.start(TWENTY_AT_ONCE)
        result: RunResult = await asyncio.wait_for(handle.result(), 60)

    state = await rig.emulator.state()
    after = store.get("tiktok", "main")
    record(
        "token_refresh_20_concurrent",
        faults=1,
        expected=20,
        actual=result.counters.calls,
        refresh_calls=state["tiktok"]["refresh_calls"],
        seconds=round(time.monotonic() - started, 1),
    )
    reads = result.outputs["reads"]
    assert reads["processed"] == 20
    assert reads["failed"] == 0
    assert len(reads["items"]) == 20
    assert {item["open_id"] for item in reads["items"]} == {before["open_id"]}
    assert state["tiktok"]["refresh_calls"] == 1
    # The twenty 401s, then twenty good answers with the one new token.
    assert state["statuses"]["tiktok 401"] == 20
    # The rotated pair is what the store holds now (and the old refresh token is spent).
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]
    assert float(after["expires_at"]) > time.time()
