"""No secret ever reaches Temporal or the logs.

Every shipped recipe runs with recognizable fake keys (accepted by the sandbox); then every
history, search attribute and memo of every run, and every line the process logged, is searched
for them. A recipe names a credential (`account: main`); the key stays in the credential store.
"""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import pytest

from activities.credentials import CredentialStore

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "definitions"
pytestmark = pytest.mark.devserver

FAKE = {
    "tikapi": {
        "api_key": "TFSECRETtikapiApiKey0123456789abcdef",
        "account_key": "TFSECRETtikapiAccountKey0123456789",
    },
    "dumpling": {"api_key": "TFSECRETdumplingKey0123456789abcdef"},
    "socialapi": {"api_key": "TFSECRETsocialapiKey0123456789abcdef"},
    "highlevel": {"token": "TFSECREThighlevelToken0123456789abcd"},
}


def _recipes(video: Path, hook: str) -> list[tuple[str, dict, bool]]:
    return [
        # Replies are paced per account (8 s by default); 1 s keeps real time short, still paced.
        ("hashtag-reply.yaml", {"max_replies": 2, "reply_every": "1s"}, True),
        ("my-comments-autoreply.yaml", {"reply_every": "1s"}, True),
        ("upload-and-confirm.yaml", {"file": str(video), "webhook": hook, "event_wait": "1s"}, False),
        (
            "upload-from-url.yaml",
            {"url": "https://cdn.example.com/v/a.mp4", "webhook": hook, "event_wait": "1s"},
            False,
        ),
        ("crosspost-and-track.yaml", {"webhook": hook}, False),
        ("profile-watch.yaml", {"webhook": hook}, True),
        ("dm-autoreply.yaml", {}, True),
    ]


async def test_no_secret_in_history_search_attributes_memo_or_logs(stack, tmp_path, webhook, capfd):
    from tikflow.devstack import sandbox_credentials  # noqa: F401  (the fixture stored demo keys)

    for provider, fields in FAKE.items():
        for name, value in fields.items():
            body = (
                {"provider": provider, "account_key": value}
                if name == "account_key"
                else {"provider": provider, "key": value}
            )
            stack.admin("keys", body)
    store = CredentialStore(stack.credentials, env={})
    for provider, fields in FAKE.items():
        store.update(provider, "main", fields)
    tiktok = store.get("tiktok", "main")
    secrets = [v for fields in FAKE.values() for v in fields.values()]
    secrets += [tiktok["access_token"], tiktok["refresh_token"], tiktok["client_secret"]]

    video = tmp_path / "clip.mp4"
    video.write_bytes(struct.pack(">I4s4s", 16, b"ftyp", b"isom") + bytes(4096))
    handles = []
    for name, inputs, monitor in _recipes(video, webhook.url):
        extra = {"poll_every": "1s", "max_polls": 2} if monitor else {}
        handles.append(await stack.run(DEFINITIONS / name, inputs, **extra))
    await asyncio.gather(*(h.result() for h in handles))

    # The keys were really used: the sandbox accepted them and nothing else.
    assert store.get("tikapi", "main")["api_key"] == FAKE["tikapi"]["api_key"]
    # Tokens may have rotated during the runs: search for the new ones as well.
    rotated = store.get("tiktok", "main")
    secrets += [rotated["access_token"], rotated["refresh_token"]]

    stored: list[str] = []
    for handle in handles:
        history = await handle.fetch_history()
        stored.append(history.to_json())
        description = await handle.describe()
        stored.append(
            json.dumps({k.name: v for k, v in description.typed_search_attributes.__iter__()}, default=str)
        )
        stored.append(json.dumps(await description.memo(), default=str))
    out, err = capfd.readouterr()
    stored += [out, err]
    stored += [json.dumps(body) for _, body in webhook.calls]

    everything = "\n".join(stored)
    assert "recipe-" in everything or "e2e-" in everything  # the search did read the histories
    leaked = [s for s in secrets if s in everything]
    assert leaked == [], f"secrets found in Temporal or the logs: {[s[:12] + '…' for s in leaked]}"
