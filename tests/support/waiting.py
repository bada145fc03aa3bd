"""`eventually`: poll until a probe's result passes a check, or fail saying what never came."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    within: float,
    what: str,
    every: float = 0.1,
    until: Callable[[T], bool] = bool,
) -> T:
    """The first result of `probe()` that satisfies `until`, polled for at most `within` seconds.

    A probe that raises is polled again; on timeout the assertion message shows the last result
    or exception (a run's whole status, say).
    """
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        try:
            last = await probe()
            if until(last):
                return last
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(every)
