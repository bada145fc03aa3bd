"""How a video file is cut for TikTok's chunked upload (pure arithmetic, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from activities.errors import ProviderRejected
from activities.tiktok.errors import NAME

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "MAX_CHUNKS",
    "MAX_CHUNK_BYTES",
    "MIN_CHUNK_BYTES",
    "ChunkPlan",
    "plan_chunks",
]

#: TikTok's chunk bounds: every chunk but the last is 5-64 MB; a file under 5 MB goes whole.
MIN_CHUNK_BYTES = 5 * 1024 * 1024
MAX_CHUNK_BYTES = 64 * 1024 * 1024
DEFAULT_CHUNK_BYTES = 10 * 1024 * 1024
MAX_CHUNKS = 1000


@dataclass(frozen=True)
class ChunkPlan:
    """How a file is cut for TikTok's chunked upload.

    Attributes:
        video_size: File size in bytes.
        chunk_size: Size of every chunk but the last (which also carries the remainder).
        total_chunk_count: Number of chunks.
    """

    video_size: int
    chunk_size: int
    total_chunk_count: int

    def byte_range(self, index: int) -> tuple[int, int]:
        """First and last byte (inclusive) of chunk `index`."""
        first = index * self.chunk_size
        last = self.video_size - 1 if index == self.total_chunk_count - 1 else first + self.chunk_size - 1
        return first, last


def plan_chunks(video_size: int, chunk_size: int) -> ChunkPlan:
    """Cut `video_size` bytes per TikTok's Media Transfer Guide.

    One chunk if it fits, else floor(size / chunk) chunks; the remainder joins the last chunk (so
    it can be up to twice `chunk_size`, at most 128 MB). A file over 64 MB always goes in two or
    more chunks: a `chunk_size` over half of such a file is halved.

    Chunks under 5 MB are refused for files of 5 MB or more, as TikTok refuses them; for smaller
    files they are allowed on purpose (TikTok sends those whole), so that the sandbox, whose
    minimum is configurable, can exercise chunking with small files.

    Raises:
        ProviderRejected: The file is empty, the chunks are under 5 MB for a file of 5 MB or
            more, or the file would need more than 1000 chunks.
    """
    if video_size <= 0:
        raise ProviderRejected("the video file is empty", provider=NAME)
    if video_size <= chunk_size:
        return ChunkPlan(video_size, video_size, 1)
    if video_size >= MIN_CHUNK_BYTES and chunk_size < MIN_CHUNK_BYTES:
        raise ProviderRejected(
            f"chunk_size {chunk_size} is under TikTok's 5 MB minimum for a {video_size} byte file; "
            f"use 5-64 MB chunks",
            provider=NAME,
        )
    count = video_size // chunk_size
    if count == 1 and video_size > MAX_CHUNK_BYTES:
        chunk_size, count = video_size // 2, 2
    if count > MAX_CHUNKS:
        raise ProviderRejected(
            f"a {video_size} byte file in {chunk_size} byte chunks needs {count} chunks; "
            f"TikTok takes at most {MAX_CHUNKS}: raise chunk_size",
            provider=NAME,
        )
    return ChunkPlan(video_size, chunk_size, count)
