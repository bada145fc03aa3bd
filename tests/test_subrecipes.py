"""Sub-recipes: a `run:` step runs another recipe as a Temporal child workflow of the run.

The parent's file names its sub-recipes by path; the loader puts them in the parent's snapshot,
so the run never reads the files again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.credentials import CredentialStore
from tests.support.emulator import AdminClient, emulator_services, store_emulator_credentials
from tests.support.waiting import eventually
from tests.test_recipe_workflow import Actions, failure_message, logged, workers
from tikflow.devstack import running_workers
from tikflow.loader import LoadedRecipe, load_recipe
from tikflow.runs import build_run
from workflows.models import PollTrigger, Trigger
from workflows.recipe import RecipeWorkflow, RunResult, workflow_runner

GREET = """
recipe: greet
inputs:
  who: {type: string}
  loud: {type: boolean, default: false}
steps:
  - id: said
    call: log
    with: {message: "hello {{ inputs.who }}{{ '!' if inputs.loud else '' }}"}
"""

PARENT = """
recipe: parent
inputs: {name: {type: string, default: ana}}
steps:
  - id: first
    run: ./lib/greet.yaml
    with: {who: "{{ inputs.name }}"}
  - id: second
    run: lib/greet.yaml
    with: {who: bo, loud: true}
  - id: both
    call: log
    with: {message: "{{ steps.first.said.logged }} / {{ steps.second.said.logged }}"}
"""


def files(tmp_path: Path, parent: str, **children: str) -> Path:
    """The parent recipe at `tmp_path/parent.yaml`, its children under `tmp_path/lib/`."""
    (tmp_path / "lib").mkdir(exist_ok=True)
    for name, text in children.items():
        (tmp_path / "lib" / f"{name}.yaml").write_text(text)
    (tmp_path / "parent.yaml").write_text(parent)
    return tmp_path / "parent.yaml"


async def start(client: Client, task_queue: str, path: Path, **inputs: Any) -> WorkflowHandle[Any, RunResult]:
    return await client.start_workflow(
        RecipeWorkflow.run,
        build_run(load_recipe(path), inputs),
        id=f"wf-{task_queue}",
        task_queue=task_queue,
        task_timeout=timedelta(seconds=10),
    )


async def test_two_sub_recipe_calls_run_as_child_workflows_of_the_run(time_env, task_queue, tmp_path):
    path = files(tmp_path, PARENT, greet=GREET)
    actions = Actions(log=logged)
    async with workers(time_env.client, task_queue, actions):
        handle = await start(time_env.client, task_queue, path)
        result = await handle.result()
        assert result.outputs["first"] == {"said": {"logged": "hello ana"}}
        assert result.outputs["second"] == {"said": {"logged": "hello bo!"}}
        assert result.outputs["both"] == {"logged": "hello ana / hello bo!"}
        for step in ("first", "second"):
            child = await time_env.client.get_workflow_handle(f"{handle.id}/steps.{step}").describe()
            info = child.raw_description.workflow_execution_info
            assert info.parent_execution.workflow_id == handle.id
            assert child.workflow_type == "RecipeWorkflow"
            assert child.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED
    assert [c.recipe for c in actions.calls] == ["greet", "greet", "parent"]


async def test_children_are_listed_under_their_parent_on_a_real_server(dev_env, task_queue, tmp_path):
    path = files(tmp_path, PARENT, greet=GREET)
    async with workers(dev_env.client, task_queue, Actions(log=logged)):
        handle = await start(dev_env.client, task_queue, path)
        await asyncio.wait_for(handle.result(), 60)

    async def children() -> list[str]:
        query = f'ParentWorkflowId = "{handle.id}"'
        return sorted([w.id async for w in dev_env.client.list_workflows(query)])

    listed = await eventually(children, until=lambda ids: len(ids) == 2, within=10, what="the children")
    assert listed == [f"{handle.id}/steps.first", f"{handle.id}/steps.second"]


async def test_editing_the_sub_recipe_file_does_not_change_a_running_parent(time_env, task_queue, tmp_path):
    parent = """
recipe: parent
steps:
  - wait: 1h
  - id: hello
    run: ./lib/greet.yaml
    with: {who: ana}
"""
    path = files(tmp_path, parent, greet=GREET)
    async with workers(time_env.client, task_queue, Actions(log=logged)):
        handle = await start(time_env.client, task_queue, path)
        (tmp_path / "lib" / "greet.yaml").write_text(GREET.replace("hello", "bye"))
        result = await handle.result()
    assert result.outputs["hello"] == {"said": {"logged": "hello ana"}}


async def test_a_failing_child_fails_the_parent_step_and_continue_on_error_catches_it(
    time_env, task_queue, tmp_path
):
    failing = "recipe: broken\nsteps:\n  - fail: 'no stock for {{ inputs.item }}'\ninputs: {item: {}}\n"
    parent = """
recipe: parent
steps:
  - id: tried
    run: ./lib/broken.yaml
    with: {item: hats}
    continue_on_error: true
  - call: log
    with: {message: "{{ steps.tried.failed }}: {{ steps.tried.error }}"}
  - id: strict
    run: ./lib/broken.yaml
    with: {item: socks}
"""
    path = files(tmp_path, parent, broken=failing)
    actions = Actions(log=logged)
    async with workers(time_env.client, task_queue, actions):
        message = await failure_message(await start(time_env.client, task_queue, path))
    assert message == "steps.strict: sub-recipe 'broken' failed: steps.0: no stock for socks"
    assert [c.params["message"] for c in actions.of("log")] == [
        "True: steps.tried: sub-recipe 'broken' failed: steps.0: no stock for hats"
    ]


@pytest.mark.devserver
async def test_stopping_the_parent_cancels_its_running_child(dev_env, task_queue, tmp_path):
    # On the real dev server: nothing here needs skipped time, and the time-skipping test server
    # sometimes refuses the stop's workflow task under load ("ACTIVITY_UNKNOWN" when cancelling),
    # leaving the run hung until the test's timeout.
    slow = "recipe: slow\nsteps:\n  - wait: 2h\n  - call: log\n    with: {message: late}\n"
    parent = "recipe: parent\nsteps:\n  - id: long\n    run: ./lib/slow.yaml\n"
    path = files(tmp_path, parent, slow=slow)
    actions = Actions(log=logged)
    async with workers(dev_env.client, task_queue, actions):
        handle = await start(dev_env.client, task_queue, path)
        child = dev_env.client.get_workflow_handle(f"{handle.id}/steps.long")

        async def running() -> Any:
            try:
                return (await child.describe()).status
            except Exception:  # not started yet
                return None

        await eventually(
            running,
            until=lambda s: s == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING,
            within=10,
            what="the child running",
        )
        await handle.signal(RecipeWorkflow.stop)
        result = await handle.result()
        assert result.outcome == "stopped"
        assert (await child.describe()).status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED
    assert actions.of("log") == []


def test_graph_draws_the_sub_recipe_steps_inside_a_box(tmp_path):
    from tikflow.commands.graph import mermaid

    drawn = mermaid(load_recipe(files(tmp_path, PARENT, greet=GREET)).recipe)
    lines = drawn.splitlines()
    assert '  n2[["first: run greet"]]' in lines
    assert '  subgraph s3 ["greet (./lib/greet.yaml)"]' in lines
    assert '  n4["said: log"]' in lines
    assert lines[lines.index('  n4["said: log"]') + 2] == "  end"


async def test_the_shipped_auto_reply_replies_once_per_comment_through_one_child_each(
    time_env, sandbox_url, tmp_path, task_queue
):
    """hashtag-reply runs reply-to-comment per comment it answers: child ids name the comment,
    a second poll answers none again, the parent counts the children's replies, and the run's
    history replays (the same child ids)."""
    me = "tikflow_demo"

    def prepare() -> tuple[CredentialStore, list[str]]:
        admin = AdminClient(sandbox_url, timeout=10)
        admin.admin("reset")
        cats = [v["id"] for v in admin.state()["tikapi"]["videos"] if "cats" in v["hashtags"]]
        made = admin.admin("tick", {"comments": 3, "video_id": cats[0], "text": "what's the PRICE?"})
        store = store_emulator_credentials(CredentialStore(tmp_path / "c.json", env={}), sandbox_url)
        return store, [c["cid"] for c in made["comments"]]

    store, asked = await asyncio.to_thread(prepare)
    shipped = load_recipe(Path(__file__).parent.parent / "definitions" / "hashtag-reply.yaml")
    loaded = LoadedRecipe(
        recipe=shipped.recipe.model_copy(
            update={"trigger": Trigger(poll=PollTrigger(every="1m", max_polls=2))}
        ),
        source=shipped.source,
    )
    services = emulator_services(sandbox_url, store, http=httpx.AsyncClient(timeout=30))
    async with running_workers(time_env.client, services, task_queue):
        handle = await time_env.client.start_workflow(
            RecipeWorkflow.run,
            build_run(loaded, {"max_replies": 20}),
            id=f"wf-{task_queue}",
            task_queue=task_queue,
        )
        result = await asyncio.wait_for(handle.result(), 120)
        history = await handle.fetch_history()
        children = [
            e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
            for e in history.events
            if e.HasField("child_workflow_execution_started_event_attributes")
        ]
        for child in children:
            described = await time_env.client.get_workflow_handle(child).describe()
            assert described.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED

    state = await asyncio.to_thread(AdminClient(sandbox_url).state)
    ours = [c["reply_to"] for c in state["tikapi"]["comments"] if c["author"] == me and c["reply_to"]]
    assert result.polls == 2
    assert set(asked) <= set(ours), "a price question got no reply"
    assert len(ours) == len(set(ours)), "a comment got two replies"
    assert sorted(children) == sorted(f"{handle.id}/steps.replies[{cid}].answer" for cid in ours)
    assert result.counters.effects == len(ours)
    replayer = Replayer(
        workflows=[RecipeWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner()
    )
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None
