"""Re-authorization as an operator does it from a second shell, against real Temporal and the sandbox.

Issue 13, points 1 and 5: `tikflow dev`'s worker and a second shell's `tikflow credentials` /
`tikflow reauth` use one credential store; `reauth` refuses a run that is not waiting, or waits on
another account, and an incomplete credential, changing nothing; one reauth resumes every run
waiting on the account; the notification suggests the complete command; the worker's first log
line names its credential file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.credentials import CredentialStore
from tests.replay.history import readable
from tests.resilience.conftest import REPLY_ALL, Rig, worker_in
from tests.support.waiting import eventually
from tikflow.commands.reauth import WAITING_QUERY
from tikflow.devstack import DevStack, free_port
from tikflow.emulator.state import DEMO_ACCOUNT_KEY, EmulatorConfig
from tikflow.loader import load_recipe_text
from tikflow.runs import start_recipe
from workflows.recipe import RecipeWorkflow, RunResult, RunStatus

pytestmark = pytest.mark.devserver

TIKFLOW = Path(sys.executable).with_name("tikflow")
#: Every /user/* call with the account key in use answers TikAPI's 428 from the first reply on.
EXPIRE_ON_FIRST_REPLY = {"provider": "tikapi", "kind": "session_expired", "path": "/user/comment"}
#: A monitor that waits for nothing: it logs, then sleeps an hour.
IDLE_MONITOR = """
recipe: idle
trigger: {poll: {every: 1h}}
steps:
  - call: log
    with: {message: idle}
"""


async def shell(*args: str, cwd: Path, env: dict[str, str], stdin: str = "") -> tuple[int, str]:
    """`tikflow ARGS` as a second shell runs it: its own cwd and environment, output merged."""
    process = await asyncio.create_subprocess_exec(
        str(TIKFLOW),
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


def clean_env(**extra: str) -> dict[str, str]:
    """A shell's environment without any tikflow setting (no TIKFLOW_CREDENTIALS among them)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TIKFLOW_", "TEMPORAL_"))}
    return {**base, "TIKFLOW_LOG_JSON": "1", **extra}


async def phase_of(handle: WorkflowHandle[Any, Any]) -> RunStatus:
    status: RunStatus = await handle.query(RecipeWorkflow.status)
    return status


async def awaiting(handle: WorkflowHandle[Any, Any]) -> RunStatus:
    return await eventually(
        lambda: phase_of(handle),
        until=lambda s: s.phase == "awaiting_reauth",
        within=60,
        what=f"{handle.id} in awaiting_reauth",
    )


async def signals(handle: WorkflowHandle[Any, Any]) -> int:
    """How many signals the run received (a refused reauth must send none)."""
    count = 0
    async for event in handle.fetch_history_events():
        count += event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    return count


async def test_a_second_shell_in_the_dev_folder_reauthorizes_the_run_the_dev_worker_waits_on(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    home = tmp_path / "home"  # the second shell's $HOME: nothing may be written there
    home.mkdir()
    stack = DevStack(
        home=project / ".tikflow",
        temporal_port=free_port(),
        ui_port=free_port(),
        sandbox_port=0,
        task_queue=f"dev-{uuid.uuid4().hex[:8]}",
        sandbox_config=EmulatorConfig(seed=7),
    )
    environment = dict(os.environ)
    async with stack, httpx.AsyncClient(base_url=stack.sandbox_url, timeout=10) as emulator:
        assert stack.client is not None
        # The stack configures its worker with a config of its own, not through this process's environment.
        assert dict(os.environ) == environment
        state = (await emulator.get("/_admin/state")).json()
        video = next(v["id"] for v in state["tikapi"]["videos"] if v["author"] == "nina_art")
        (await emulator.post("/_admin/tick", json={"comments": 3, "video_id": video})).raise_for_status()
        comments = [
            c
            for c in (await emulator.get("/_admin/state")).json()["tikapi"]["comments"]
            if c["aweme_id"] == video and c["reply_to"] is None and c["author"] != "tikflow_demo"
        ]
        (await emulator.post("/_admin/faults", json={"rules": [EXPIRE_ON_FIRST_REPLY]})).raise_for_status()
        _, handle = await start_recipe(
            stack.client, load_recipe_text(REPLY_ALL), {"video": video}, task_queue=stack.task_queue
        )
        assert handle is not None
        status = await awaiting(handle)
        assert status.awaiting_reauth == {"main": "tikapi"}

        env = clean_env(HOME=str(home), TEMPORAL_ADDRESS=stack.address)
        code, out = await shell("credentials", "list", cwd=project, env=env)
        assert code == 0, out
        store_path = project / ".tikflow" / "credentials.json"
        assert stack.credentials_path == store_path  # what `tikflow dev` prints
        assert out.splitlines()[0] == (
            f"credentials file: {store_path} (from .tikflow/credentials.json in the current directory)"
        )
        assert "tikapi" in out

        fresh = (
            await emulator.post(
                "/_admin/reauthorize", json={"provider": "tikapi", "account_key": DEMO_ACCOUNT_KEY}
            )
        ).json()["account_key"]
        # From another folder the shell finds another (empty) store: the reauth wrote half
        # a credential there and reported success. Now it is refused and writes nothing.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        args = ("reauth", handle.id, "--account", "main", "--provider", "tikapi", f"account_key={fresh}")
        code, out = await shell(*args, cwd=elsewhere, env=env)
        assert code == 2, out
        assert "would lack api_key" in out
        assert fresh not in out
        assert (await phase_of(handle)).phase == "awaiting_reauth"
        assert await signals(handle) == 0

        code, out = await shell(*args, cwd=project, env=env)
        assert code == 0, out
        assert f"resumed 1 run(s): {handle.id}" in out
        assert fresh not in out
        result: RunResult = await asyncio.wait_for(handle.result(), 60)
        history = readable((await handle.fetch_history()).to_json())

    assert result.outcome == "completed"
    assert result.counters.reauths == 1
    assert result.counters.effects == len(comments)  # every comment answered, with the new key
    assert CredentialStore(store_path, env={}).get("tikapi", "main")["account_key"] == fresh
    assert list(home.rglob("*")) == []
    # The notification said what to run, completely, and the new key is nowhere in history.
    assert f"tikflow reauth {handle.id} --account main --provider tikapi account_key=…" in history
    assert fresh not in history


async def test_reauth_refuses_what_does_not_wait_for_it_and_changes_nothing(rig: Rig, tmp_path: Path) -> None:
    video, _ = await rig.emulator.comments_to_answer(2)
    await rig.emulator.faults(EXPIRE_ON_FIRST_REPLY)
    env = clean_env(TEMPORAL_ADDRESS=rig.address, TIKFLOW_CREDENTIALS=str(rig.credentials_path))
    async with worker_in(rig):
        waiting = await rig.start(REPLY_ALL, {"video": video})
        idle = await rig.start(IDLE_MONITOR)
        await awaiting(waiting)
        await eventually(lambda: phase_of(idle), until=lambda s: s.iteration >= 1, within=30, what="a poll")
        before = rig.credentials_path.read_bytes()

        async def reauth(*args: str) -> tuple[int, str]:
            return await shell("reauth", *args, cwd=tmp_path, env=env)

        code, out = await reauth(idle.id, "--account", "main", "--provider", "tikapi", "account_key=ak-x1")
        assert code == 1, out
        assert f"run {idle.id!r} is not waiting for a re-authorization" in out
        assert "nothing stored, nothing resumed" in out
        code, out = await reauth(
            waiting.id, "--account", "brand2", "--provider", "tikapi", "account_key=ak-x2"
        )
        assert code == 2, out
        assert "waits for a re-authorization of tikapi account 'main', not of account 'brand2'" in out
        code, out = await reauth(waiting.id, "--account", "main", "--provider", "socialapi")
        assert code == 2, out
        assert "waits for tikapi account 'main', not socialapi" in out
        code, out = await reauth(waiting.id, "--account", "main", "--provider", "tikapi", "account_key=")
        assert code == 2, out
        assert "account_key is empty" in out
        # A store whose credential lacks what a re-authorization renews: refused, not resumed.
        partial = tmp_path / "partial.json"
        CredentialStore(partial, env={}).update("tikapi", "main", {"api_key": "ak-only"}, strict=True)
        code, out = await shell(
            "reauth",
            waiting.id,
            "--account",
            "main",
            cwd=tmp_path,
            env={**env, "TIKFLOW_CREDENTIALS": str(partial)},
        )
        assert code == 2, out
        assert f"the tikapi credential 'main' in {partial} lacks account_key" in out
        code, out = await reauth("no-such-run", "--account", "main")
        assert code == 1, out
        assert "no-such-run" in out
        code, out = await reauth("--account", "nobody", "--provider", "tikapi", "account_key=ak-x3")
        assert code == 1, out
        assert "no run is waiting for a re-authorization of tikapi account 'nobody'" in out

        assert "Traceback" not in out
        assert rig.credentials_path.read_bytes() == before
        assert (await phase_of(waiting)).phase == "awaiting_reauth"
        assert await signals(waiting) == 0
        assert await signals(idle) == 0
        for handle in (waiting, idle):
            await handle.terminate("test over")


async def _listed(client: Client, ids: set[str]) -> set[str]:
    return {execution.id async for execution in client.list_workflows(WAITING_QUERY)} & ids


async def test_one_reauth_resumes_every_run_waiting_on_the_account(rig: Rig, tmp_path: Path) -> None:
    first, first_parents = await rig.emulator.comments_to_answer(2, author="nina_art")
    second, second_parents = await rig.emulator.comments_to_answer(2, author=await _other_author(rig))
    await rig.emulator.faults(EXPIRE_ON_FIRST_REPLY)
    async with worker_in(rig):
        runs = [await rig.start(REPLY_ALL, {"video": video}) for video in (first, second)]
        for handle in runs:
            await awaiting(handle)
        ids = {handle.id for handle in runs}
        # Visibility is how the command finds them; wait until the server has indexed both.
        await eventually(
            lambda: _listed(rig.client, ids), until=lambda found: found == ids, within=30, what="both listed"
        )

        fresh = (
            await rig.emulator.admin("reauthorize", {"provider": "tikapi", "account_key": DEMO_ACCOUNT_KEY})
        )["account_key"]
        env = clean_env(TEMPORAL_ADDRESS=rig.address, TIKFLOW_CREDENTIALS=str(rig.credentials_path))
        code, out = await shell(
            "reauth",
            "--account",
            "main",
            "--provider",
            "tikapi",
            "--from-stdin",
            cwd=tmp_path,
            env=env,
            # The key on stdin, as the README suggests: out of the process list and shell history.
            stdin=f"account_key={fresh}\n",
        )
        assert code == 0, out
        assert "resumed 2 run(s)" in out
        results: list[RunResult] = await asyncio.wait_for(asyncio.gather(*(h.result() for h in runs)), 60)

    assert [r.outcome for r in results] == ["completed", "completed"]
    assert [r.counters.reauths for r in results] == [1, 1]
    replies = await rig.emulator.replies(first_parents + second_parents)
    assert all(replies[cid] == 1 for cid in first_parents + second_parents), replies


async def _other_author(rig: Rig) -> str:
    state = await rig.emulator.state()
    return next(
        v["author"] for v in state["tikapi"]["videos"] if v["author"] not in ("nina_art", "tikflow_demo")
    )


async def test_the_worker_first_log_line_names_the_credential_file(
    dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A short folder name: the log redactor masks long letter-and-digit runs (as pytest's
    # per-test folder names are), which is another matter than which file is named.
    tmp_path = tmp_path_factory.mktemp("worker")
    project = tmp_path / "project"
    (project / ".tikflow").mkdir(parents=True)
    (project / ".tikflow" / "credentials.json").write_text('{"credentials": {}}')
    env = clean_env(
        TEMPORAL_ADDRESS=str(dev_env.client.service_client.config.target_host),
        TIKFLOW_TASK_QUEUE=f"creds-{uuid.uuid4().hex[:8]}",
        HOME=str(tmp_path / "home"),
    )
    process = await asyncio.create_subprocess_exec(
        str(TIKFLOW),
        "worker",
        cwd=project,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[dict[str, Any]] = []
    try:
        while not any(line.get("event") == "worker started" for line in lines):
            raw = await asyncio.wait_for(process.stdout.readline(), 30)
            assert raw, f"the worker ended early: {lines}"
            lines.append(json.loads(raw))
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 60)
    store = str(project / ".tikflow" / "credentials.json")
    assert lines[0]["event"] == "worker starting"
    assert lines[0]["credentials_file"] == store
    assert lines[0]["credentials_file_from"] == ".tikflow/credentials.json in the current directory"
    started = next(line for line in lines if line["event"] == "worker started")
    assert started["credentials_file"] == store
    assert process.returncode == 0
