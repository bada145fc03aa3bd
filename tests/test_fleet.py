"""Labels, `tikflow list` and bulk steering on a real dev server: 30 runs, three clients, ten acted on."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import eventually
from tikflow.fleet import label_query, parse_labels
from tikflow.loader import load_recipe
from tikflow.runs import start_recipe
from workflows.recipe import RecipeWorkflow
from workflows.state import LABELS_KEY

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ("acme", "globex", "initech")
RECIPE = """\
recipe: fleet-watch
labels: {team: growth}
trigger:
  poll: {every: 1h}
steps:
  - id: mark
    set: {seen: true}
"""


def test_labels_are_parsed_and_checked():
    assert parse_labels(["client=acme", "team=growth"]) == {"client": "acme", "team": "growth"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_labels(["client"])
    with pytest.raises(ValueError, match="label key"):
        parse_labels(["Client Name=acme"])
    assert label_query(recipe="r", labels={"client": "acme"}, running=True) == (
        "WorkflowType = 'RecipeWorkflow' AND TikflowRecipe = 'r' AND TikflowLabels = 'client=acme' "
        "AND ExecutionStatus = 'Running'"
    )


def _tikflow(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tikflow.cli", *args],
        cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": address, "TIKFLOW_LOG_JSON": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.devserver
async def test_list_and_pause_by_label_act_on_exactly_the_matching_runs(dev_env, workers, tmp_path):
    file = tmp_path / "fleet-watch.yaml"
    file.write_text(RECIPE)
    loaded = load_recipe(file)
    address = dev_env.client.service_client.config.target_host
    # Recipe names are shared by every test on the session server: this test's runs are told
    # apart by a label of its own.
    batch = tmp_path.name.replace("_", "-")[-40:].strip("-").lower()
    ids: dict[str, list[str]] = {client: [] for client in CLIENTS}
    for n in range(30):
        client = CLIENTS[n % 3]
        run_id, handle = await start_recipe(
            dev_env.client,
            loaded,
            {},
            task_queue=workers,
            workflow_id=f"fleet-{batch}-{n}",
            labels={"client": client, "batch": batch},
        )
        assert handle is not None
        ids[client].append(run_id)
    handle = dev_env.client.get_workflow_handle(ids["acme"][0])
    described = await handle.describe()
    assert described.typed_search_attributes.get(LABELS_KEY) == [
        f"batch={batch}",
        "client=acme",
        "team=growth",
    ]

    async def listed() -> list[dict]:
        result = await asyncio.to_thread(
            _tikflow, address, "list", "--label", "client=acme", "--label", f"batch={batch}", "--json"
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    rows = await eventually(listed, within=30, what="ten acme runs listed", until=lambda r: len(r) == 10)
    assert sorted(row["id"] for row in rows) == sorted(ids["acme"])
    assert {row["labels"]["client"] for row in rows} == {"acme"}
    assert {row["recipe"] for row in rows} == {"fleet-watch"}
    table = await asyncio.to_thread(_tikflow, address, "list", "--label", f"batch={batch}", "--running")
    assert table.stdout.splitlines()[0].split() == [
        "ID",
        "RECIPE",
        "PHASE",
        "LAST",
        "POLL",
        "CALLS",
        "EFFECTS",
        "LAST",
        "ERROR",
    ]
    assert len(table.stdout.splitlines()) == 31

    # Without --yes and without a terminal to ask on: nothing is done.
    refused = await asyncio.to_thread(
        _tikflow, address, "pause", "--label", "client=acme", "--label", f"batch={batch}"
    )
    assert refused.returncode == 1
    assert "add --yes" in refused.stderr

    paused = await asyncio.to_thread(
        _tikflow, address, "pause", "--label", "client=acme", "--label", f"batch={batch}", "--yes"
    )
    assert paused.returncode == 0, paused.stderr
    assert "10 running run(s) match" in paused.stdout
    assert "pause: sent to 10 run(s)" in paused.stdout

    async def statuses() -> dict[str, bool]:
        answers = {}
        for run_id in [i for client in CLIENTS for i in ids[client]]:
            status = await dev_env.client.get_workflow_handle(run_id).query(RecipeWorkflow.status)
            answers[run_id] = status.paused
        return answers

    expected = {run_id: client == "acme" for client in CLIENTS for run_id in ids[client]}
    await eventually(statuses, within=30, what="the acme runs paused", until=lambda s: s == expected)

    stopped = await asyncio.to_thread(_tikflow, address, "stop", "--label", f"batch={batch}", "--yes")
    assert stopped.returncode == 0, stopped.stderr
    assert "stop: sent to 30 run(s)" in stopped.stdout
