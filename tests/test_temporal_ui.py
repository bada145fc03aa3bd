"""Issue 19's proof in a real browser: the Temporal UI filters runs by label and reads like the recipe.

`tikflow dev`'s stack (`DevStack`: the Temporal CLI's dev server with its UI, the sandbox, a worker)
on free ports; runs of two recipes under three `client` labels. Debian's chromium, headless:

- the UI's workflow list, opened with the visibility query `TikflowLabels="client=acme"` in its
  address (what a user types in its filter bar), shows exactly the acme runs, and so for globex;
- the timeline of a shipped recipe's run shows every activity under its step summary
  (`handle[0].0.else.0 tikapi.like_comment → 7300…`), the same text the server recorded, and so
  does its event history's Summary column (its replies are its reply-to-comment children's);
- the run's input pane starts with the input values, before the recipe body.

Screenshots: tests/artifacts/screenshots/temporal-ui-*.png.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from temporalio.client import Client, WorkflowHandle

from tests.support.browser import Browser, browser
from tests.support.waiting import eventually
from tests.test_fleet import RECIPE as WATCH  # a monitor that only sets a value: cheap to keep running
from tikflow.devstack import DevStack, free_port
from tikflow.loader import LoadedRecipe, load_recipe, load_recipe_text
from tikflow.runs import start_recipe
from workflows.models import PollTrigger, Trigger

pytestmark = pytest.mark.devserver

ROOT = Path(__file__).resolve().parent.parent
#: The visible labels of the timeline's rows (the UI hides the rows of its virtual list it does not show).
TIMELINE_LABELS = """
return [...document.querySelectorAll('li span')]
  .filter(e => e.getClientRects().length && e.textContent.includes(' • '))
  .map(e => e.textContent.trim());
"""
#: The workflow ids in the list's rows.
LISTED_IDS = """
return [...document.querySelectorAll('tr[data-testid="workflows-summary-configurable-table-row"]')]
  .map(row => [...row.querySelectorAll('a')].map(a => a.textContent.trim())
    .find(text => arguments[0].includes(text)) || row.textContent.trim());
"""
#: The texts of the event history's Summary cells.
SUMMARY_CELLS = """
return [...document.querySelectorAll('tr[data-testid="event-summary-row"] p')]
  .filter(p => p.textContent.trim() === 'Summary')
  .map(p => p.nextElementSibling && p.nextElementSibling.textContent.trim());
"""
#: The visible lines of the run's input pane.
INPUT_LINES = """
const pane = document.querySelector('[data-testid="input-and-result"] .cm-content[aria-label="Input"]');
return pane ? [...pane.querySelectorAll('.cm-line')].map(line => line.textContent.trim()) : [];
"""


@pytest.fixture
async def dev_stack(tmp_path: Path) -> AsyncIterator[DevStack]:
    """`tikflow dev` as a user starts it (server + UI, sandbox, worker), on free ports of its own."""
    stack = DevStack(
        home=tmp_path / ".tikflow",
        temporal_port=free_port(),
        ui_port=free_port(),
        sandbox_port=0,
        task_queue=f"ui-{uuid.uuid4()}",
    )
    async with stack:
        yield stack


async def scheduled_summaries(client: Client, handle: WorkflowHandle) -> list[str]:
    """`<activity type> • <summary>` of each activity the server recorded for the run (the UI's label)."""
    labels = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            assert event.user_metadata.HasField("summary"), "an activity without a summary"
            [summary] = await client.data_converter.decode([event.user_metadata.summary], [str])
            labels.append(f"{event.activity_task_scheduled_event_attributes.activity_type.name} • {summary}")
    return labels


async def local_calls(handle: WorkflowHandle) -> int:
    """How many calls ran as local activities (a monitor's reads): markers, not scheduled activities."""
    count = 0
    async for event in handle.fetch_history_events():
        if event.HasField("marker_recorded_event_attributes"):
            count += event.marker_recorded_event_attributes.marker_name == "core_local_activity"
    return count


async def children(client: Client, handle: WorkflowHandle) -> list[WorkflowHandle]:
    """The child workflows the run started (its sub-recipes' runs)."""
    found = []
    async for event in handle.fetch_history_events():
        if event.HasField("child_workflow_execution_started_event_attributes"):
            run = event.child_workflow_execution_started_event_attributes.workflow_execution
            found.append(client.get_workflow_handle(run.workflow_id, run_id=run.run_id))
    return found


async def listed(client: Client, label: str) -> set[str]:
    """Ids of the runs the server lists under `client=<label>`."""
    return {w.id async for w in client.list_workflows(f'TikflowLabels = "client={label}"')}


def listed_in_ui(page: Browser, known: list[str]) -> list[str]:
    """The workflow ids of the list's rows, once its count agrees with them."""
    shown: list[str] = page.until(lambda: page.script(LISTED_IDS, known), "the filtered runs")
    page.until(lambda: page.text('[data-testid="workflow-count"]') == str(len(shown)), "the count")
    return shown


async def test_the_temporal_ui_filters_by_label_and_shows_step_summaries(dev_stack: DevStack) -> None:
    client = dev_stack.client
    assert client is not None
    queue = dev_stack.task_queue
    shipped = load_recipe(ROOT / "definitions" / "my-comments-autoreply.yaml")
    once = LoadedRecipe(
        recipe=shipped.recipe.model_copy(
            update={"trigger": Trigger(poll=PollTrigger(every="1s", max_polls=1))}
        ),
        source=shipped.source,
    )
    autoreply_id, autoreply = await start_recipe(
        client,
        once,
        {"recent_videos": 1, "reply_every": "1s"},  # paced per account: 8 s by default
        task_queue=queue,
        workflow_id="ui-autoreply-acme",
        labels={"client": "acme"},
    )
    assert autoreply is not None
    watch = load_recipe_text(WATCH.encode(), "fleet-watch.yaml")
    expected: dict[str, set[str]] = {"acme": {autoreply_id}, "globex": set(), "initech": set()}
    for n, label in enumerate(("acme", "globex", "globex", "initech")):
        run_id, _ = await start_recipe(
            client,
            watch,
            {},
            task_queue=queue,
            workflow_id=f"ui-fleet-watch-{label}-{n}",
            labels={"client": label},
        )
        expected[label].add(run_id)
    result = await autoreply.result()
    assert result.counters.effects > 0, "the autoreply run acted on nothing: no summary to look for"
    summaries = await scheduled_summaries(client, autoreply)
    # A monitor's reads run as local activities (markers in the history); every other call is
    # a scheduled activity with its summary.
    reads = await local_calls(autoreply)
    assert reads > 0
    # Its replies are made by the reply-to-comment sub-recipe, in child workflows whose calls
    # count in the run's counters too.
    replies = await children(client, autoreply)
    assert replies
    child_summaries = [s for child in replies for s in await scheduled_summaries(client, child)]
    child_reads = sum([await local_calls(child) for child in replies])
    assert len(summaries) + len(child_summaries) == result.counters.calls - reads - child_reads
    assert any(
        s.startswith("tikapi.like_comment • handle[") and " tikapi.like_comment → 7300" in s
        for s in summaries
    )
    assert all(s.startswith("tikapi.reply • ") and " tikapi.reply → 7300" in s for s in child_summaries)

    # The visibility store is eventually consistent: the UI is opened once the server lists them all.
    for label, ids in expected.items():
        await eventually(
            functools.partial(listed, client, label), within=20, what=f"{label}'s runs", until=ids.__eq__
        )
    run_id = (await autoreply.describe()).run_id
    every_id = sorted(i for ids in expected.values() for i in ids)

    def look() -> None:
        with browser("temporal-ui") as page:
            for label in ("acme", "globex"):
                query = quote(f'TikflowLabels="client={label}"', safe="")
                page.open(f"{dev_stack.ui_url}/namespaces/default/workflows?query={query}")
                assert sorted(listed_in_ui(page, every_id)) == sorted(expected[label])
                assert f"TikflowLabels = client={label}" in page.text("body")
                page.screenshot(f"list-{label}")

            page.resize(1400, 2600)
            page.open(f"{dev_stack.ui_url}/namespaces/default/workflows/{autoreply_id}/{run_id}/timeline")
            labels = page.until(
                lambda: (found := page.script(TIMELINE_LABELS)) and set(summaries) <= set(found) and found,
                "every step summary in the timeline",
            )
            assert sorted(labels) == sorted(summaries)
            lines = page.until(lambda: page.script(INPUT_LINES), "the input pane")
            assert lines[:3] == ["{", '"inputs": {', '"reply": "Thank you! ❤️",'], lines
            assert '"recent_videos": 1' in lines
            assert lines.index('"recent_videos": 1') < lines.index('"recipe": {')
            page.screenshot("timeline")

            page.open(f"{dev_stack.ui_url}/namespaces/default/workflows/{autoreply_id}/{run_id}/history")
            # One Summary cell per scheduled activity, and one per local read's marker.
            cells = page.until(
                lambda: len(found := page.script(SUMMARY_CELLS)) == len(summaries) + reads and found,
                "a Summary cell for every activity in the event history",
            )
            assert not Counter(s.split(" • ", 1)[1] for s in summaries) - Counter(cells)
            page.screenshot("history")

    await asyncio.to_thread(look)
