"""Fixtures of the emulator tests: the app on an in-process transport, driven by a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.emulator.support import FakeClock
from tikflow.emulator.app import create_app
from tikflow.emulator.state import EmulatorConfig


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config(fake_clock: FakeClock) -> EmulatorConfig:
    # An audited TikTok app with instant moderation; the unaudited default has tests of its own.
    return EmulatorConfig(seed=7, clock=fake_clock, tiktok_app_audited=True, tiktok_moderation_s=0)


@pytest.fixture
async def emulator(config: EmulatorConfig) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to a fresh emulator app in-process."""
    transport = httpx.ASGITransport(app=create_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client
