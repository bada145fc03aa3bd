"""`tikflow run --wait`'s progress: one live line on a terminal, plain lines when piped.

The run's `status` query is asked every `every` seconds until the run ends: its phase, the step
it is at, its calls and effects, and what it waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TextIO

from temporalio.client import Client
from temporalio.service import RPCError

from workflows.state import RunStatus

__all__ = ["describe_progress", "show_progress"]


def describe_progress(status: RunStatus) -> str:
    """One line: `running · steps.replies[7300].0 (tikapi.reply) · 12 calls, 3 effects · waiting for …`."""
    parts = [status.phase + (" (paused)" if status.paused and status.phase != "paused" else "")]
    if status.calls:
        call = status.calls[0]
        more = f" +{len(status.calls) - 1}" if len(status.calls) > 1 else ""
        parts.append(f"{call.path} ({call.action}){more}")
    counters = status.counters
    parts.append(f"{counters.calls} calls, {counters.effects} effects")
    if status.iteration:
        parts.append(f"poll {status.iteration}")
    if status.waiting_for:
        parts.append(f"waiting for {status.waiting_for}")
    return " · ".join(parts)


async def show_progress(client: Client, handle: Any, stream: TextIO, *, every: float = 1.0) -> None:
    """Write the run's progress to `stream` until the run ends (the caller then reads its result)."""
    from tikflow.runs import get_status

    live = stream.isatty()
    done = asyncio.ensure_future(handle.result())
    last = ""
    try:
        while not done.done():
            with contextlib.suppress(RPCError):
                line = describe_progress(await get_status(client, handle.id))
                if line != last:
                    if live:
                        stream.write("\r\x1b[2K" + line[:200])
                    else:
                        stream.write(line + "\n")
                    stream.flush()
                    last = line
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), every)
    finally:
        if live and last:
            stream.write("\n")
            stream.flush()
        if not done.done():
            done.cancel()
        with contextlib.suppress(BaseException):
            await done
