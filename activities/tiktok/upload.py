"""Sending a video file to TikTok's `upload_url` chunk by chunk, progress recorded after each."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from activities.errors import ProviderRejected
from activities.ledger import EffectLedger
from activities.registry import ActionContext
from activities.tiktok.chunks import ChunkPlan
from activities.tiktok.client import PROVIDER
from activities.tiktok.errors import NAME, classify_upload

__all__ = ["UPLOAD_URL_SAFE_S", "UPLOAD_URL_TTL_S", "file_size", "upload_chunks"]

#: TikTok's upload_url expires an hour after init; past that an unfinished upload cannot finish.
UPLOAD_URL_TTL_S = 3600.0
#: Start over a little before the hour, so the resumed upload does not run into the expiry.
UPLOAD_URL_SAFE_S = UPLOAD_URL_TTL_S - 300.0

_CONTENT_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm"}


def file_size(path: str) -> int:
    """The video file's size in bytes.

    Raises:
        ProviderRejected: The file cannot be read.
    """
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise ProviderRejected(f"cannot read the video file {path}: {exc.strerror}", provider=NAME) from None


def _read_range(path: str, first: int, length: int) -> bytes:
    with open(path, "rb") as video:
        video.seek(first)
        return video.read(length)


async def upload_chunks(
    ctx: ActionContext, ledger: EffectLedger, key: str, entry: dict[str, Any], path: str
) -> None:
    """PUT the chunks from `entry["next_chunk"]` on, recording progress after each one."""
    plan = ChunkPlan(entry["video_size"], entry["chunk_size"], entry["total_chunk_count"])
    content_type = _CONTENT_TYPES.get(Path(path).suffix.lower(), "video/mp4")
    for index in range(entry["next_chunk"], plan.total_chunk_count):
        first, last = plan.byte_range(index)
        chunk = await asyncio.to_thread(_read_range, path, first, last - first + 1)
        if len(chunk) != last - first + 1:
            raise ProviderRejected(f"the video file {path} changed during the upload", provider=NAME)
        await PROVIDER.send(
            ctx,
            "PUT",
            "",
            url=entry["upload_url"],
            signed=False,
            classify=classify_upload,
            content=chunk,
            headers={
                "Content-Type": content_type,
                "Content-Length": str(len(chunk)),
                "Content-Range": f"bytes {first}-{last}/{plan.video_size}",
            },
            expect_json=False,
        )
        entry["next_chunk"] = index + 1
        ledger.put(key, entry, run=ctx.run)
    entry["done"] = True
    ledger.put(key, entry, run=ctx.run)
