"""The CLI as a process (issue 13, point 9): `tikflow dev` stops everything it started on SIGTERM as
on Ctrl-C, and output into a pipe whose reader went away ends quietly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from tikflow.devstack import free_port, port_in_use

ROOT = Path(__file__).resolve().parent.parent


def children_of(pid: int) -> dict[int, str]:
    """Pid → command line of every living process whose parent is `pid` (read from /proc)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it exited meanwhile
            continue
        # `pid (comm) state ppid …`; comm may hold spaces and parentheses, so split after the last `)`.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found[int(entry.name)] = cmdline
    return found


def alive(pid: int) -> bool:
    """Whether `pid` is a process that has not exited (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def _start_dev(tmp_path: Path, ports: dict[str, int], log: IO[bytes]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tikflow.cli",
        "dev",
        "--home",
        str(tmp_path / "home"),
        "--port",
        str(ports["Temporal"]),
        "--ui-port",
        str(ports["Temporal UI"]),
        "--sandbox-port",
        str(ports["sandbox"]),
        cwd=ROOT,
        env={**os.environ, "TIKFLOW_CREDENTIALS": str(tmp_path / "credentials.json")},
        stdout=subprocess.PIPE,
        stderr=log,
    )


@pytest.mark.devserver
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
async def test_dev_stops_its_temporal_server_sandbox_and_worker_on_a_signal(tmp_path, stop_signal):
    ports = {"Temporal": free_port(), "Temporal UI": free_port(), "sandbox": free_port()}
    with (tmp_path / "dev.log").open("wb") as log:
        process = await _start_dev(tmp_path, ports, log)
    children: dict[int, str] = {}
    try:
        printed: list[str] = []
        while not printed or not printed[-1].startswith("worker: running"):
            line = await asyncio.wait_for(process.stdout.readline(), 120)  # type: ignore[union-attr]
            assert line, f"tikflow dev ended early: {printed} {(tmp_path / 'dev.log').read_text()[-2000:]}"
            printed.append(line.decode().rstrip("\n"))
        assert printed[:2] == [
            f"Temporal: localhost:{ports['Temporal']}",
            f"Temporal UI: http://localhost:{ports['Temporal UI']}",
        ]
        assert all(port_in_use(port) for port in ports.values()), ports
        children = children_of(process.pid)
        assert any("server start-dev" in cmdline for cmdline in children.values()), children

        process.send_signal(stop_signal)
        rest, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
        assert rest.decode().splitlines()[-1] == "stopped"
        assert [what for what, port in ports.items() if port_in_use(port)] == []
        assert [cmdline for pid, cmdline in children.items() if alive(pid)] == []
        assert children_of(process.pid) == {}
    finally:
        # Only if the test failed: end what it started, by pid.
        if process.returncode is None:
            process.kill()
            await process.wait()
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def closed_pipe_run(*args: str) -> tuple[int, str]:
    """The CLI with its stdout a pipe whose read end is closed before the CLI writes a byte."""
    read_end, write_end = os.pipe()
    with subprocess.Popen(
        [sys.executable, "-m", "tikflow.cli", *args], cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE
    ) as process:
        os.close(write_end)
        os.close(read_end)
        _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr.decode()


@pytest.mark.parametrize(
    "args", [("actions",), ("actions", "--json"), ("schema",), ("validate", "definitions")], ids=" ".join
)
def test_output_into_a_closed_pipe_ends_quietly_with_sigpipes_status(args):
    # What `tikflow actions | head -1` does once head has read its line; it was a BrokenPipeError.
    assert closed_pipe_run(*args) == (128 + signal.SIGPIPE, "")


def test_output_into_an_open_pipe_is_unchanged():
    done = subprocess.run(
        [sys.executable, "-m", "tikflow.cli", "actions"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stderr == ""
    assert done.stdout.splitlines()[0].startswith("dumpling.profile")


@pytest.mark.devserver
def test_demo_ends_saying_where_the_history_is_not_pointing_at_the_stopped_ui(tmp_path):
    home = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "tikflow.cli", "demo", "--home", str(home), "--polls", "1"],
        cwd=ROOT,
        env={**os.environ, "TIKFLOW_CREDENTIALS": str(tmp_path / "credentials.json")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    ui = next(line for line in lines if line.startswith("Temporal UI: ")).removeprefix("Temporal UI: ")
    assert not port_in_use(int(ui.rpartition(":")[2]))  # the UI is gone, as the last lines say
    assert "See both runs in the Temporal UI" not in done.stdout
    assert lines[-3:] == [
        "stopped everything the demo started (the Temporal UI too)",
        f"Both runs' histories are kept in {home / 'temporal.db'}; to see them in the Temporal UI,",
        f"run `tikflow dev --home {home}` and open http://localhost:8233 (or `tikflow demo --keep`).",
    ]
    assert (home / "temporal.db").stat().st_size > 0
