"""What the emulator tests share: demo credentials as headers, a fake clock, admin helpers."""

from __future__ import annotations

import httpx

from tests.support.emulator import AsyncAdminClient
from tikflow.emulator.state import DEMO_ACCOUNT_KEY, DEMO_API_KEY

#: TikAPI's demo keys as headers: public endpoints, and the account's own.
TIKAPI = {"X-API-KEY": DEMO_API_KEY}
ACCOUNT = {**TIKAPI, "X-ACCOUNT-KEY": DEMO_ACCOUNT_KEY}
#: The docs' example video and comment.
DOC_VIDEO, DOC_COMMENT = "7109178205151464746", "7109185042560680750"


class FakeClock:
    """A clock the test moves: windows, expiries and arrivals follow it, nobody sleeps."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def state(client: httpx.AsyncClient) -> dict:
    return await AsyncAdminClient(client).state()


async def admin(client: httpx.AsyncClient, action: str, body: dict | None = None) -> dict:
    return await AsyncAdminClient(client).admin(action, body if body is not None else {})
