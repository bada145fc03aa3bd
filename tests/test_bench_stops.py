"""`python -m bench` and its benchmarks stop everything they started on SIGTERM, as on Ctrl-C.

A monitors run is a chain: the benchmark starts one child per variant, and each child its own
Temporal dev server, sandbox and further worker processes. Stopped mid-run, none may be left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from tests.support.waiting import eventually
from tests.test_cli_process import ROOT, alive, children_of


def _descendants(pid: int) -> dict[int, str]:
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child, cmdline in children_of(todo.pop()).items():
            found[child] = cmdline
            todo.append(child)
    return found


@pytest.mark.devserver
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
async def test_a_stopped_monitors_benchmark_leaves_no_process_behind(stop_signal):
    env = {
        **os.environ,
        "BENCH_VARIANTS": "tikflow",
        "BENCH_MONITORS": "3",
        "BENCH_DURATION_S": "600",
        "BENCH_WORKERS": "2",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        "monitors",
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    started: dict[int, str] = {}
    try:

        async def running() -> dict[int, str]:
            assert process.returncode is None, "the benchmark ended early"
            return _descendants(process.pid)

        started = await eventually(
            running,
            within=120,
            what="the variant's dev server and its second worker process",
            until=lambda found: (
                any("start-dev" in c for c in found.values())
                and any("bench.worker_process" in c for c in found.values())
            ),
        )
        process.send_signal(stop_signal)
        output, _ = await asyncio.wait_for(process.communicate(), 120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 130, output.decode()[-2000:]
    assert "stopped: no results written" in output.decode()

    async def left() -> list[str]:
        return [cmdline for pid, cmdline in started.items() if alive(pid)]

    await eventually(
        left, within=30, what="every process the benchmark started to exit", until=lambda x: not x
    )
