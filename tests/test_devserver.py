"""A real Temporal dev server: a monitor started as the CLI starts it, steered by the CLI, visible by phase.

Workers are the production ones (`worker.run_workers`); the recipes use only the built-in `log` action.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.support.waiting import eventually
from tikflow.loader import load_recipe_text
from tikflow.runs import AlreadyRunning, describe_schedule, get_status, run_id_for, start_recipe
from workflows.recipe import RECIPE_KEY, RecipeWorkflow, RunResult, RunStatus, workflow_runner

pytestmark = pytest.mark.devserver
ROOT = Path(__file__).resolve().parent.parent

MONITOR = """
recipe: {name}
inputs: {{tag: {{type: string}}}}
trigger: {{poll: {{every: 1h}}}}
steps:
  - id: hello
    call: log
    with: {{message: "poll {{{{ run.iteration }}}} for {{{{ inputs.tag }}}}"}}
"""

SCHEDULED = """
recipe: {name}
trigger: {{schedule: {{cron: "0 9 * * *"}}}}
steps:
  - id: hello
    call: log
    with: {{message: "good morning"}}
"""


async def tikflow(client: Client, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, against the dev server (asynchronously: the workers share this loop)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tikflow.cli",
        *args,
        cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": client.service_client.config.target_host},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return subprocess.CompletedProcess(list(args), process.returncode, stdout.decode(), stderr.decode())


async def until_status(handle: WorkflowHandle[Any, Any], check: Callable[[RunStatus], bool]) -> RunStatus:
    async def status() -> RunStatus:
        return await handle.query(RecipeWorkflow.status)

    return await eventually(status, until=check, within=10, every=0.05, what="the status checked")


async def listed_phase(client: Client, recipe: str, phase: str) -> list[str]:
    """Ids of runs of `recipe` the visibility store shows in `phase` (it is eventually consistent)."""
    query = f'TikflowRecipe = "{recipe}" AND TikflowPhase = "{phase}"'
    for _ in range(200):
        ids = [w.id async for w in client.list_workflows(query)]
        if ids:
            return ids
        await asyncio.sleep(0.05)
    return []


async def test_monitor_is_steered_by_the_cli_and_its_phase_is_searchable(dev_env, workers, tmp_path):
    client = dev_env.client
    name = f"watch-{workers[3:11]}"
    recipe_file = tmp_path / "monitor.yaml"
    recipe_file.write_text(MONITOR.format(name=name))
    loaded = load_recipe_text(recipe_file.read_bytes(), str(recipe_file))
    run_id, handle = await start_recipe(client, loaded, {"tag": "cats"}, task_queue=workers)
    assert handle is not None
    assert run_id == run_id_for(loaded.recipe, {"tag": "cats"})

    status = await until_status(handle, lambda s: s.phase == "sleeping")
    assert (status.recipe, status.iteration, status.counters.calls) == (name, 1, 1)
    assert status.next_poll_at is not None

    with pytest.raises(AlreadyRunning, match="already running"):
        await start_recipe(client, loaded, {"tag": "cats"}, task_queue=workers)
    twice = await tikflow(client, "run", str(recipe_file), "--input", "tag=cats", "--task-queue", workers)
    assert twice.returncode == 1
    assert twice.stderr == (
        f"tikflow: run {run_id!r} is already running (same recipe and inputs); "
        "stop it first, or start another with --id\n"
    )

    shown = await tikflow(client, "status", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["phase"] == "sleeping"
    text = await tikflow(client, "status", run_id)
    assert text.stdout.startswith(f"{run_id}: {name} is sleeping")

    # Between polls the search attribute says `running` (one update per phase change that matters,
    # not two per poll); `status` has the detail.
    assert await listed_phase(client, name, "running") == [run_id]
    description = await handle.describe()
    assert description.typed_search_attributes.get(RECIPE_KEY) == name

    paused = await tikflow(client, "pause", run_id)
    assert (paused.returncode, paused.stdout) == (0, f"pause: sent to {run_id}\n")
    status = await until_status(handle, lambda s: s.paused)
    assert status.phase == "paused"
    assert await listed_phase(client, name, "paused") == [run_id]
    assert (await get_status(client, run_id)).phase == "paused"

    assert (await tikflow(client, "resume", run_id)).returncode == 0
    assert (await until_status(handle, lambda s: not s.paused)).phase == "sleeping"
    assert await listed_phase(client, name, "running") == [run_id]

    assert (await tikflow(client, "stop", run_id)).returncode == 0
    result = await asyncio.wait_for(handle.result(), 30)
    assert (result.outcome, result.polls) == ("stopped", 1)
    assert result.outputs == {"hello": {"logged": "poll 0 for cats"}}
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert await listed_phase(client, name, "stopped") == [run_id]

    # Once it has ended, the same recipe and inputs may start again.
    again_id, again = await start_recipe(client, loaded, {"tag": "cats"}, task_queue=workers)
    assert again_id == run_id
    assert again is not None
    await until_status(again, lambda s: s.phase == "sleeping")
    await again.signal(RecipeWorkflow.stop)
    assert (await asyncio.wait_for(again.result(), 30)).outcome == "stopped"

    history = await handle.fetch_history()
    replayer = Replayer(
        workflows=[RecipeWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner()
    )
    await replayer.replay_workflow(history)


async def test_status_of_a_run_that_does_not_exist_is_one_line_exit_1(dev_env):
    result = await tikflow(dev_env.client, "status", "recipe-nobody-0000000000")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("tikflow: no run 'recipe-nobody-0000000000' to ask")


async def test_cli_run_wait_prints_the_result(dev_env, workers):
    result = await tikflow(
        dev_env.client,
        "run",
        "tests/recipes/valid/minimal.yaml",
        "--task-queue",
        workers,
        "--id",
        f"min-{workers}",
        "--wait",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"started run min-{workers}"
    assert lines[1].endswith(f"/workflows/min-{workers}")
    printed = json.loads("\n".join(lines[2:]))
    assert printed["outcome"] == "completed"
    assert printed["outputs"] == {}
    assert printed["counters"]["calls"] == 1


async def test_schedule_recipe_is_a_temporal_schedule_the_cli_runs_pauses_and_deletes(
    dev_env, workers, tmp_path
):
    client = dev_env.client
    name = f"daily-{workers[3:11]}"
    recipe_file = tmp_path / "daily.yaml"
    recipe_file.write_text(SCHEDULED.format(name=name))
    schedule_id = run_id_for(load_recipe_text(recipe_file.read_bytes(), str(recipe_file)).recipe, {})

    started = await tikflow(client, "run", str(recipe_file), "--task-queue", workers)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith(f"started schedule {schedule_id}\n")
    info = await describe_schedule(client, schedule_id)
    assert info is not None
    assert (info.recipe, info.cron, info.paused) == (name, ["0 9 * * *"], False)
    assert [(t.hour, t.minute) for t in info.next_runs] == [(9, 0)] * 3

    twice = await tikflow(client, "run", str(recipe_file), "--task-queue", workers)
    assert twice.returncode == 1
    assert twice.stderr == f"tikflow: a schedule with id {schedule_id!r} already exists\n"

    # A run the schedule starts executes the recipe on the workers.
    await client.get_schedule_handle(schedule_id).trigger()
    for _ in range(200):
        info = await describe_schedule(client, schedule_id)
        if info is not None and info.recent_runs:
            break
        await asyncio.sleep(0.05)
    assert info is not None
    [run] = info.recent_runs
    result = await asyncio.wait_for(client.get_workflow_handle(run, result_type=RunResult).result(), 30)
    assert result.outputs == {"hello": {"logged": "good morning"}}

    shown = await tikflow(client, "status", schedule_id)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"{schedule_id}: schedule of {name} (0 9 * * *) is active\n")
    assert run in shown.stdout

    paused = await tikflow(client, "pause", schedule_id)
    assert (paused.returncode, paused.stdout) == (0, f"pause: schedule {schedule_id} paused\n")
    assert (await describe_schedule(client, schedule_id)).paused
    assert json.loads((await tikflow(client, "status", schedule_id, "--json")).stdout)["paused"] is True
    assert (await tikflow(client, "resume", schedule_id)).returncode == 0
    assert not (await describe_schedule(client, schedule_id)).paused

    stopped = await tikflow(client, "stop", schedule_id)
    assert (stopped.returncode, stopped.stdout) == (0, f"stop: schedule {schedule_id} deleted\n")
    assert await describe_schedule(client, schedule_id) is None
    gone = await tikflow(client, "status", schedule_id)
    assert gone.returncode == 1
    assert gone.stderr.startswith(f"tikflow: no run {schedule_id!r} to ask")
