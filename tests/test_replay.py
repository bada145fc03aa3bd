"""Committed histories replay against the current `RecipeWorkflow` (record them: `make replay-record`).

A change to the interpreter that would break running workflows (different commands for the same
history) fails here, not in production.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from workflows.recipe import RecipeRun, RecipeWorkflow, RunResult, workflow_runner

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())


def replayer(*workflows: type) -> Replayer:
    return Replayer(
        workflows=list(workflows) or [RecipeWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )


def event_kinds(path: Path) -> set[str]:
    return {
        next(iter(k for k in event if k.endswith("EventAttributes")))
        for event in json.loads(path.read_text())["events"]
    }


def test_histories_cover_the_representative_runs():
    names = {path.stem for path in HISTORIES}
    assert {"monitor-run1", "monitor-run2", "for-each", "until", "reauth", "stopped"} <= names
    assert "workflowExecutionContinuedAsNewEventAttributes" in event_kinds(
        HISTORIES[names_index("monitor-run1")]
    )
    reauth = event_kinds(HISTORIES[names_index("reauth")])
    assert "workflowExecutionSignaledEventAttributes" in reauth
    assert "timerStartedEventAttributes" in reauth  # the rate-limit backoff


def names_index(stem: str) -> int:
    return [path.stem for path in HISTORIES].index(stem)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_committed_history_replays(path: Path):
    result = await replayer().replay_workflow(history(path))
    assert result.replay_failure is None


async def test_all_histories_replay_together():
    async def all_histories():
        for path in HISTORIES:
            yield history(path)

    results = await replayer().replay_workflows(all_histories())
    assert results.replay_failures == {}


@workflow.defn(name="RecipeWorkflow")
class AlteredRecipeWorkflow:
    """A workflow of the same name that issues different commands: replay must notice."""

    @workflow.run
    async def run(self, run: RecipeRun) -> RunResult:
        await workflow.sleep(timedelta(seconds=1))
        raise NotImplementedError


@pytest.mark.parametrize("stem", ["for-each", "until"])
async def test_altered_workflow_fails_replay_with_nondeterminism(stem: str):
    with pytest.raises(NondeterminismError):
        await replayer(AlteredRecipeWorkflow).replay_workflow(history(HISTORIES[names_index(stem)]))
