"""The sandbox: faithful, stateful local stand-ins for TikAPI, TikTok, HighLevel, DumplingAI, SocialAPI.

It imports nothing from the engine: it is the outside world, on this machine.
"""

from __future__ import annotations

from tikflow.emulator.state import (
    DEMO_ACCOUNT_KEY,
    DEMO_API_KEY,
    DUMPLING_KEY,
    HIGHLEVEL_LOCATION,
    HIGHLEVEL_TOKEN,
    HIGHLEVEL_USER,
    SOCIALAPI_KEY,
    TIKTOK_CLIENT_KEY,
    TIKTOK_CLIENT_SECRET,
    EmulatorConfig,
)

__all__ = ["EmulatorConfig", "demo_credentials"]


def demo_credentials() -> dict[str, dict[str, dict[str, str]]]:
    """The sandbox's keys as credential fields of the account `main` of each provider.

    TikTok's access and refresh tokens are not here: they are issued by the running sandbox
    (`POST /_admin/keys {"provider": "tiktok"}`), since they expire and rotate.
    """
    return {
        "tikapi": {"main": {"api_key": DEMO_API_KEY, "account_key": DEMO_ACCOUNT_KEY}},
        "tiktok": {"main": {"client_key": TIKTOK_CLIENT_KEY, "client_secret": TIKTOK_CLIENT_SECRET}},
        "highlevel": {
            "main": {"token": HIGHLEVEL_TOKEN, "location_id": HIGHLEVEL_LOCATION, "user_id": HIGHLEVEL_USER}
        },
        "dumpling": {"main": {"api_key": DUMPLING_KEY}},
        "socialapi": {"main": {"api_key": SOCIALAPI_KEY}},
    }
