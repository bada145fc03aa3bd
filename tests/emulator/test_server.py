"""Serving the sandbox: in a thread for tests, and as `python -m tikflow.emulator`."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx

from tikflow.emulator.server import provider_base_urls, running_emulator
from tikflow.emulator.state import DEMO_API_KEY


def test_provider_base_urls():
    assert provider_base_urls("http://127.0.0.1:8400/") == {
        "tikapi": "http://127.0.0.1:8400/tikapi",
        "tiktok": "http://127.0.0.1:8400/tiktok",
        "highlevel": "http://127.0.0.1:8400/highlevel",
        "dumpling": "http://127.0.0.1:8400/dumpling",
        "socialapi": "http://127.0.0.1:8400/socialapi/v1",
    }


def test_running_emulator_serves_on_an_ephemeral_port_and_stops():
    with running_emulator() as base:
        assert base.startswith("http://127.0.0.1:")
        response = httpx.get(
            f"{base}/tikapi/public/check",
            params={"username": "lilyachty"},
            headers={"X-API-KEY": DEMO_API_KEY},
        )
        assert response.json()["userInfo"]["user"]["uniqueId"] == "lilyachty"
        # The upload URL TikTok hands out is absolute, on this server.
        pair = httpx.post(f"{base}/_admin/keys", json={"provider": "tiktok"}).json()
        init = httpx.post(
            f"{base}/tiktok/v2/post/publish/inbox/video/init/",
            json={
                "source_info": {
                    "source": "FILE_UPLOAD",
                    "video_size": 10,
                    "chunk_size": 10,
                    "total_chunk_count": 1,
                }
            },
            headers={"Authorization": f"Bearer {pair['access_token']}"},
        ).json()
        assert init["data"]["upload_url"].startswith(f"{base}/tiktok/video/?upload_id=")
    port = int(base.rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_module_entry_point_prints_one_base_url_per_provider():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with subprocess.Popen(
        [sys.executable, "-m", "tikflow.emulator", "--port", str(port), "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline().strip() for _ in range(5)]
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert lines == [f"{name}: {url}" for name, url in provider_base_urls(f"http://127.0.0.1:{port}").items()]
