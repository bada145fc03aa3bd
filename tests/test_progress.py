"""Progress: `run --wait` lines when piped, activity summaries in history, inputs before the recipe."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.policy import activity_summary
from workflows.recipe import RecipeWorkflow, workflow_runner
from workflows.state import Counters, RunStatus

ROOT = Path(__file__).resolve().parent.parent
RECIPE = """\
recipe: progress-demo
inputs:
  who: {type: string, default: world}
steps:
  - id: greet
    for_each: "{{ [1, 2] }}"
    as: n
    steps:
      - call: log
        with: {message: "hello {{ inputs.who }} {{ n }}"}
"""


def test_summaries_name_the_step_the_action_and_the_subject():
    assert (
        activity_summary("steps.comments[3].0", "tikapi.reply", {"reply_comment_id": "7300", "media_id": "1"})
        == "comments[3].0 tikapi.reply → 7300"
    )
    assert activity_summary("steps.me", "tikapi.me", {}) == "me tikapi.me"


def test_progress_reads_like_a_status_line():
    from tikflow.progress import describe_progress

    status = RunStatus(
        recipe="r",
        phase="backing_off",
        iteration=2,
        paused=False,
        stop_requested=False,
        waiting_for="a rate limit",
        counters=Counters(calls=12, effects=3),
    )
    assert (
        describe_progress(status) == "backing_off · 12 calls, 3 effects · poll 2 · waiting for a rate limit"
    )


@pytest.mark.devserver
async def test_run_wait_prints_progress_and_the_history_reads_like_the_recipe(dev_env, workers, tmp_path):
    file = tmp_path / "progress-demo.yaml"
    file.write_text(RECIPE)
    address = dev_env.client.service_client.config.target_host
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "tikflow.cli",
            "run",
            str(file),
            "--wait",
            "--task-queue",
            workers,
            "--id",
            f"progress-{workers}",
            "--input",
            "who=ada",
        ],
        cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": address, "TIKFLOW_LOG_JSON": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout[done.stdout.index("{") :])
    assert result["outcome"] == "completed"
    assert "\r" not in done.stderr  # piped: plain lines
    assert any("calls" in line and "effects" in line for line in done.stderr.splitlines())

    handle = dev_env.client.get_workflow_handle(f"progress-{workers}")
    history = await handle.fetch_history()
    summaries = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            [summary] = await pydantic_data_converter.decode([event.user_metadata.summary], [str])
            summaries.append(summary)
    assert sorted(summaries) == ["greet[0].0 log", "greet[1].0 log"]
    started = history.events[0].workflow_execution_started_event_attributes
    raw = started.input.payloads[0].data.decode()
    assert raw.index('"inputs"') < raw.index('"recipe"')
    # The summaries are recorded commands: the history replays with today's code.
    replayer = Replayer(
        workflows=[RecipeWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner()
    )
    await replayer.replay_workflow(WorkflowHistory.from_json(history.workflow_id, history.to_json()))
