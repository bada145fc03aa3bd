"""Committed histories replay against the current `RecipeWorkflow` (record them: `make replay-record`).

A change to the interpreter that would break running workflows (different commands for the same
history) fails here, not in production. Two sets: representative scenarios with mock actions
(`tests/histories/*.json`) and a real run of every shipped recipe against the sandbox
(`tests/histories/recipes/*.json`); a shipped recipe without a history, or with one recorded from
an older version of the recipe, fails too.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.replay.history import readable
from tikflow import emulator
from tikflow.emulator import state as sandbox_state
from tikflow.loader import load_recipe
from workflows.models import Recipe
from workflows.recipe import RecipeRun, RecipeWorkflow, RunResult, workflow_runner

ROOT = Path(__file__).parent.parent  # no resolve(): the workflow sandbox re-imports this module
HISTORIES = sorted((ROOT / "tests" / "histories").glob("*.json"))
RECIPE_HISTORIES = sorted((ROOT / "tests" / "histories" / "recipes").glob("*.json"))
SHIPPED = sorted((ROOT / "definitions").glob("*.yaml"))


def history(path: Path) -> WorkflowHistory:
    # A shipped recipe's run replays under the id it was recorded with (`tests.replay.shipped`):
    # the ids of its sub-recipes' child workflows start with it.
    workflow_id = (
        f"replay-recipe-{recipe_of(path)}" if path.parent.name == "recipes" else f"replay-{path.stem}"
    )
    return WorkflowHistory.from_json(workflow_id, path.read_text())


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


def test_both_sides_of_the_local_reads_patch_are_recorded():
    """`read-calls-as-local-activities`: a monitor's reads as markers, and as activities before it."""

    def markers_and_activities(stem: str) -> tuple[list[str], list[str]]:
        events = json.loads(HISTORIES[names_index(stem)].read_text())["events"]
        markers = [
            e["markerRecordedEventAttributes"]["markerName"]
            for e in events
            if "markerRecordedEventAttributes" in e
        ]
        activities = [
            e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
            for e in events
            if "activityTaskScheduledEventAttributes" in e
        ]
        return markers, activities

    markers, activities = markers_and_activities("monitor-local-reads")
    assert markers.count("core_local_activity") >= 6
    assert set(activities) == {"tikapi.reply"}  # side effects stay activities
    markers, activities = markers_and_activities("monitor-reads-before-patch")
    assert "core_local_activity" not in markers
    assert "tikapi.hashtag_posts" in activities


@pytest.mark.parametrize("name", ["hashtag-reply", "my-comments-autoreply", "approve-reply"])
def test_the_auto_reply_recipes_are_recorded_before_and_after_the_shared_reply_policy(name: str):
    """Runs that reply in the recipe itself may still be going: both versions replay (above)."""
    child = "startChildWorkflowExecutionInitiatedEventAttributes"
    before = HISTORIES[names_index(f"{name}-before-subrecipe")]
    [after] = [p for p in RECIPE_HISTORIES if p.stem == name]
    assert child not in event_kinds(before)
    scheduled = "activityTaskScheduledEventAttributes"
    replied = [e for e in json.loads(before.read_text())["events"] if scheduled in e]
    assert any(e[scheduled]["activityType"]["name"] == "tikapi.reply" for e in replied)
    started = [e[child]["workflowId"] for e in json.loads(after.read_text())["events"] if child in e]
    assert started, "no reply-to-comment child workflow in the new recording"
    assert all(s.startswith(f"replay-recipe-{name}/steps.") for s in started)
    assert len(set(started)) == len(started)  # one child per answered comment


def names_index(stem: str) -> int:
    return [path.stem for path in HISTORIES].index(stem)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_committed_history_replays(path: Path):
    result = await replayer().replay_workflow(history(path))
    assert result.replay_failure is None


async def test_all_histories_replay_together():
    async def all_histories():
        for path in HISTORIES + RECIPE_HISTORIES:
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


@pytest.mark.parametrize(
    "path",
    [HISTORIES[names_index("for-each")], HISTORIES[names_index("until")]]
    + [p for p in RECIPE_HISTORIES if p.stem == "provider-tour"],
    ids=lambda p: p.stem,
)
async def test_altered_workflow_fails_replay_with_nondeterminism(path: Path):
    with pytest.raises(NondeterminismError):
        await replayer(AlteredRecipeWorkflow).replay_workflow(history(path))


# -- every shipped recipe --------------------------------------------------------------------


def recipe_of(path: Path) -> str:
    """The shipped recipe a history file belongs to (`name.json`, or `name-runN.json` of a chain)."""
    return re.sub(r"-run\d+$", "", path.stem)


def workflow_input(path: Path) -> dict[str, Any]:
    """The `RecipeRun` a history started with, as JSON."""
    started = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
    data: dict[str, Any] = json.loads(base64.b64decode(started["input"]["payloads"][0]["data"]))
    return data


def test_every_shipped_recipe_has_a_recorded_history():
    """A new (or renamed) recipe in `definitions/` needs `make replay-record`; a removed one, too."""
    shipped = {path.stem for path in SHIPPED}
    recorded = {recipe_of(path) for path in RECIPE_HISTORIES}
    assert shipped, "no shipped recipes found"
    assert shipped - recorded == set(), "shipped recipes without a history: run `make replay-record`"
    assert recorded - shipped == set(), "histories of recipes no longer shipped: run `make replay-record`"


@pytest.mark.parametrize("path", RECIPE_HISTORIES, ids=lambda p: p.stem)
def test_recipe_history_was_recorded_from_the_shipped_version(path: Path):
    """The recorded run executed the recipe as shipped today (only a monitor's trigger is shortened)."""
    run = workflow_input(path)
    current = load_recipe(ROOT / "definitions" / f"{recipe_of(path)}.yaml").recipe.model_dump(mode="json")
    assert run["source"] == f"definitions/{recipe_of(path)}.yaml"
    # Read through today's model, as the worker decodes it on replay: a field added since (with
    # its default) is not a difference; a changed step or value still is.
    run["recipe"] = Recipe.model_validate(run["recipe"]).model_dump(mode="json")
    assert {k: v for k, v in run["recipe"].items() if k != "trigger"} == {
        k: v for k, v in current.items() if k != "trigger"
    }, f"{path.name} was recorded from an older {run['source']}: run `make replay-record`"
    assert (run["recipe"]["trigger"] is None) == (current["trigger"] is None)
    events = json.loads(path.read_text())["events"]
    assert "workflowExecutionCompletedEventAttributes" in events[-1] or (
        "workflowExecutionContinuedAsNewEventAttributes" in events[-1]
    ), f"{path.name}: the recorded run did not finish"


@pytest.mark.parametrize("path", RECIPE_HISTORIES, ids=lambda p: p.stem)
async def test_recipe_history_replays(path: Path):
    result = await replayer().replay_workflow(history(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"


def sandbox_keys() -> set[str]:
    """The sandbox's fixed credentials: its demo keys, tokens and client secrets."""
    keys = {
        value
        for accounts in emulator.demo_credentials().values()
        for fields in accounts.values()
        for name, value in fields.items()
        if name not in ("location_id", "user_id")  # identifiers, not secrets
    }
    keys |= {
        value
        for name, value in vars(sandbox_state).items()
        if name.isupper() and isinstance(value, str) and re.search("KEY|TOKEN|SECRET", name)
    }
    return keys | {"socialapi-internal-secret"}


#: Credentials the sandbox issues while running (TikTok access/refresh tokens, upload URL tokens).
ISSUED = re.compile(r"\b(?:act|rft)\.[A-Za-z0-9]{60}\b|upload_token=")


@pytest.mark.parametrize("path", HISTORIES + RECIPE_HISTORIES, ids=lambda p: p.stem)
def test_no_secret_in_a_committed_history(path: Path):
    """Workflow inputs, activity inputs and results carry credential names, never credentials.

    Payloads are searched decoded (the file keeps them base64-encoded).
    """
    keys = sandbox_keys()
    assert len(keys) >= 8
    assert all(len(key) >= 16 for key in keys)
    raw = path.read_text()
    text = readable(raw)
    assert len(text) > len(raw)  # the payloads were decoded and searched too
    assert [key[:8] + "…" for key in keys if key in text] == []
    assert ISSUED.findall(text) == []


def test_the_secret_search_reads_decoded_payloads():
    """A key inside a payload is found, although the file holds it base64-encoded."""
    payload = base64.b64encode(json.dumps({"api_key": sandbox_state.DEMO_API_KEY}).encode()).decode()
    raw = json.dumps({"events": [{"input": {"payloads": [{"metadata": {}, "data": payload}]}}]})
    assert sandbox_state.DEMO_API_KEY not in raw
    assert sandbox_state.DEMO_API_KEY in readable(raw)


def test_both_sides_of_the_sliding_window_patch_are_guarded():
    """`for_each` changed from fixed batches to a sliding window behind `workflow.patched`: a
    history from before the change (no marker) and one from after (with it) both replay above."""
    from workflows.recipe import SLIDING_WINDOW_PATCH

    before = readable(HISTORIES[names_index("for-each-fixed-batches")].read_text())
    after = readable(HISTORIES[names_index("for-each")].read_text())
    assert SLIDING_WINDOW_PATCH not in before
    assert SLIDING_WINDOW_PATCH in after


def recipe_history(stem: str) -> str:
    return readable(next(p for p in RECIPE_HISTORIES if p.stem == stem).read_text())


def test_both_sides_of_the_quiet_phase_patch_are_guarded():
    """A monitor's `TikflowPhase` stopped flipping to `sleeping` between polls behind
    `workflow.patched`: a monitor history from before (upserts `sleeping`, no marker) and one from
    after (the marker, no `sleeping` upsert) both replay above."""
    from workflows.recipe import QUIET_PHASE_PATCH

    before = recipe_history("profile-watch")
    after = recipe_history("hashtag-reply")
    assert QUIET_PHASE_PATCH not in before
    assert "sleeping" in before
    assert QUIET_PHASE_PATCH in after
    assert "sleeping" not in after


@pytest.mark.parametrize(
    ("stem", "before_did", "after_did"),
    [
        # `stop` while a call was retried: the last attempt failed, vs. cancelled between attempts.
        ("stop-retrying", "activityTaskFailedEventAttributes", "activityTaskCanceledEventAttributes"),
        # `stop` while awaiting a re-authorization: the deadline's timer fired, vs. cancelled.
        ("stop-reauth", "timerFiredEventAttributes", "timerCanceledEventAttributes"),
        # A `notify` step that was not delivered: the run failed, vs. it went on to the next step.
        (
            "notify-failed",
            "workflowExecutionFailedEventAttributes",
            "workflowExecutionCompletedEventAttributes",
        ),
    ],
)
def test_both_sides_of_the_stop_and_notify_patches_are_guarded(stem: str, before_did: str, after_did: str):
    """`stop` ending a run at once and a failed `notify` letting it go on changed the commands a
    run records, behind `workflow.patched`: a history from before each change (no marker) and one
    from after (the marker) both replay above, and each shows its side's behaviour."""
    from workflows.recipe import NOTIFY_PATCH, STOP_PATCH

    patch = NOTIFY_PATCH if stem == "notify-failed" else STOP_PATCH
    before_path = HISTORIES[names_index(f"{stem}-before-patch")]
    after_path = HISTORIES[names_index(stem)]
    assert patch not in readable(before_path.read_text())
    assert patch in readable(after_path.read_text())
    assert before_did in event_kinds(before_path)
    assert before_did not in event_kinds(after_path)
    assert after_did in event_kinds(after_path)


def test_both_sides_of_the_approval_tag_patch_are_guarded():
    """An approval's id took the random end of the run id instead of its timestamp start behind
    `workflow.patched`: approve-reply from before (no marker; the signal carries the old id) and
    from after (the marker, the new id) both replay above."""
    from workflows.patches import APPROVAL_TAG_PATCH

    before = readable(HISTORIES[names_index("approval-tag-before-patch")].read_text())
    after = recipe_history("approve-reply")
    for text, tag in ((before, lambda run_id: run_id[:8]), (after, lambda run_id: run_id[-8:])):
        run_id = re.search(r'"firstExecutionRunId": "([0-9a-f-]+)"', text)
        assert run_id is not None
        assert f"steps.ask@{tag(run_id.group(1))}.0" in text
    assert APPROVAL_TAG_PATCH not in before
    assert APPROVAL_TAG_PATCH in after
