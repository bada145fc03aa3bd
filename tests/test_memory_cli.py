"""`tikflow state` / `tikflow upgrade` from a shell; a real Schedule's runs share memory (dev server)."""

from __future__ import annotations

import asyncio
import json

import pytest
from test_devserver import tikflow

from tests.support.waiting import eventually
from tikflow.loader import load_recipe
from tikflow.runs import run_id_for
from workflows.recipe import RecipeWorkflow, RunStatus

pytestmark = pytest.mark.devserver

MONITOR = """
recipe: {name}
trigger: {{poll: {{every: 1h}}}}
steps:
  - id: items
    call: log
    with: {{message: hi}}
  - for_each: "{{{{ ['a', 'b'] }}}}"
    as: item
    new_only: {{key: x, after: "{{{{ item }}}}"}}
    steps:
      - call: log
        with: {{message: "{{{{ item }}}}"}}
"""

SCHEDULED = """
recipe: {name}
trigger: {{schedule: {{cron: "0 9 * * *"}}}}
steps:
  - for_each: "{{{{ ['a', 'b'] }}}}"
    id: each
    as: item
    new_only: x
    steps:
      - call: log
        with: {{message: "{{{{ item }}}}"}}
"""


async def test_state_shows_and_resets_memory_and_upgrade_refuses_bad_input(dev_env, workers, tmp_path):
    client = dev_env.client
    name = f"mem-{workers[3:11]}"
    path = tmp_path / "monitor.yaml"
    path.write_text(MONITOR.format(name=name))
    run_id = run_id_for(load_recipe(path).recipe, {})
    started = await tikflow(client, "run", str(path), "--task-queue", workers)
    assert started.returncode == 0, started.stderr
    handle = client.get_workflow_handle(run_id)

    async def status() -> RunStatus:
        return await handle.query(RecipeWorkflow.status)

    await eventually(status, until=lambda s: s.iteration == 1, within=20, what="the first poll")
    shown = await tikflow(client, "state", run_id)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == 'steps.1#each: 2 keys   oldest: a   newest: b   watermark: "b"\n'

    unknown = await tikflow(client, "state", run_id, "--reset", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr == f"tikflow: run {run_id} has no memory for step 'nope' (steps: steps.1)\n"
    reset = await tikflow(client, "state", run_id, "--reset", "steps.1")
    assert reset.returncode == 0, reset.stderr
    assert (await tikflow(client, "state", run_id)).stdout == f"{run_id}: no new_only memory\n"

    broken = tmp_path / "broken.yaml"
    broken.write_text(MONITOR.format(name=name).replace("call: log\n", "call: lgo\n", 1))
    refused = await tikflow(client, "upgrade", run_id, str(broken))
    assert refused.returncode == 2
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"{broken}:6:11: ")
    missing = await tikflow(client, "upgrade", "no-such-run", str(path))
    assert missing.returncode == 1
    assert missing.stderr.startswith("tikflow: cannot upgrade 'no-such-run': no such run")
    assert "Traceback" not in refused.stderr + missing.stderr

    upgraded = await tikflow(client, "upgrade", run_id, str(path))
    assert upgraded.returncode == 0, upgraded.stderr
    await handle.signal(RecipeWorkflow.stop)
    await asyncio.wait_for(client.get_workflow_handle(run_id).result(), 30)
    again = await tikflow(client, "upgrade", run_id, str(path))
    assert again.returncode == 1
    assert again.stderr == f"tikflow: cannot upgrade {run_id!r}: it is not running (completed)\n"


async def test_a_real_schedules_runs_share_memory(dev_env, workers, tmp_path):
    client = dev_env.client
    path = tmp_path / "scheduled.yaml"
    path.write_text(SCHEDULED.format(name=f"memsched-{workers[3:11]}"))
    schedule_id = run_id_for(load_recipe(path).recipe, {})
    assert (await tikflow(client, "run", str(path), "--task-queue", workers)).returncode == 0
    try:
        results = []
        for _ in range(2):
            ran = await tikflow(client, "trigger", schedule_id, "--wait")
            assert ran.returncode == 0, ran.stderr
            results.append(json.loads("\n".join(ran.stdout.splitlines()[2:])))
        first, second = results
        assert first["counters"]["new_items"] == 2
        # The second run got the first's memory through Temporal's last-completion result.
        assert second["counters"]["new_items"] == 0
        assert second["memory"] == {"each#each": ["a", "b"]}
    finally:
        await client.get_schedule_handle(schedule_id).delete()
