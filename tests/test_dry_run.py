"""Dry runs: no side effect can leave a dry-run worker, and the plan is what a real run then does.

Two halves. Every side-effecting action, called through the dry-run activities over a transport
that fails the test on any request: recorded, never sent. Every shipped recipe, dry-run against
the sandbox: its world is unchanged afterwards, and a real run of the same poll performs exactly
the effects the plan listed (same actions, same steps, same arguments).
"""

from __future__ import annotations

import json
import re
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.contracts import ActionRequest
from activities.credentials import CredentialStore
from activities.dryrun import DryRun, call_path, describe_effect, step_path
from activities.registry import load_actions
from activities.runner import ProviderActivities
from tests.support.actions import fake_services
from tests.support.emulator import AdminClient, emulator_services, serve_emulator, store_emulator_credentials
from tikflow.devstack import find_binary, running_workers
from tikflow.dryrun import dry_run, dry_run_recipe, format_plan
from tikflow.emulator.state import EmulatorConfig
from tikflow.loader import LoadedRecipe, load_recipe
from tikflow.runs import start_recipe

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "definitions"
KEY = "wf@run-1:0:steps.replies[7300].0"

#: A valid input of every side-effecting action (a new one without a sample fails the test below).
SAMPLES: dict[str, dict[str, Any]] = {
    "tikapi.reply": {"media_id": "7301", "reply_comment_id": "7300", "text": "Thanks! Link in bio."},
    "tikapi.comment": {"media_id": "7301", "text": "Nice"},
    "tikapi.like_comment": {"media_id": "7301", "comment_id": "7300"},
    "tikapi.like_video": {"media_id": "7301"},
    "tikapi.unlike_comment": {"media_id": "7301", "comment_id": "7300"},
    "tikapi.unlike_video": {"media_id": "7301"},
    "tikapi.delete_comment": {"comment_id": "7300"},
    "tikapi.send_message": {
        "conversation_id": "0:1:2",
        "conversation_short_id": "7",
        "ticket": "t",
        "text": "Hi",
    },
    "tikapi.accept_request": {"conversation_id": "0:1:2", "conversation_short_id": "7", "user_id": "42"},
    "notify.send": {"message": "done", "webhook": "https://hooks.example.com/x"},
    "tiktok.publish_video": {
        "source": "PULL_FROM_URL",
        "video_url": "https://cdn.example.com/v.mp4",
        "privacy_level": "SELF_ONLY",
    },
    "tiktok.upload_draft": {"source": "PULL_FROM_URL", "video_url": "https://cdn.example.com/v.mp4"},
    "highlevel.create_post": {"account_ids": ["acc1"], "summary": "New drop"},
    "socialapi.create_post": {"account_ids": ["acc1"], "text": "New drop"},
    "http.request": {"url": "https://api.example.com/things", "method": "POST", "json": {"a": 1}},
}


def _refuse(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a dry run sent {request.method} {request.url}")


def test_every_side_effecting_action_has_a_sample():
    flagged = {name for name, act in load_actions().items() if act.side_effect}
    assert flagged | {"http.request"} == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
async def test_a_dry_run_worker_records_the_side_effect_and_sends_nothing(name, tmp_path):
    act = load_actions()[name]
    plan = DryRun()
    services = fake_services(
        _refuse, CredentialStore(tmp_path / "c.json", env={}), ledger=tmp_path / "l.json"
    )
    activities = ProviderActivities(services, dry_run=plan)
    request = ActionRequest(action=name, params=SAMPLES[name], account="main", idempotency_key=KEY)
    result = await ActivityEnvironment().run(activities._activity(act), request)

    assert result["dry_run"] is True
    assert not result.get("already_done")
    [effect] = plan.effects
    assert (effect.action, effect.path, effect.account) == (name, "steps.replies[7300].0", "main")
    assert effect.description
    assert not effect.description.startswith(name + "(")
    assert not (tmp_path / "l.json").exists(), "the effect ledger was written"
    await services.http.aclose()


async def test_a_read_runs_for_real_and_a_read_of_a_made_up_id_does_not(tmp_path):
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"status": "success", "id": "1", "data": {}})

    plan = DryRun()
    services = fake_services(answer, CredentialStore(tmp_path / "c.json", env={}))
    activities = ProviderActivities(services, dry_run=plan)
    made_up = plan.record(
        load_actions()["tiktok.publish_video"],
        ActionRequest(action="tiktok.publish_video", params={}, idempotency_key=KEY),
        load_actions()["tiktok.publish_video"].input_model.model_validate(SAMPLES["tiktok.publish_video"]),
    )["publish_id"]
    status = await ActivityEnvironment().run(
        activities._activity(load_actions()["tiktok.publish_status"]),
        ActionRequest(action="tiktok.publish_status", params={"publish_id": made_up}, idempotency_key=KEY),
    )
    assert status["status"] == "PUBLISH_COMPLETE"
    assert seen == []
    get = {"url": "https://api.example.com/things"}
    await ActivityEnvironment().run(
        activities._activity(load_actions()["http.request"]),
        ActionRequest(action="http.request", params=get, idempotency_key=KEY),
    )
    assert seen == ["/things"]
    assert plan.reads == Counter({"tiktok.publish_status": 1, "http.request": 1})
    await services.http.aclose()


def test_effects_read_in_plain_words():
    assert (
        describe_effect("tikapi.reply", SAMPLES["tikapi.reply"])
        == "reply to comment 7300 under video 7301: 'Thanks! Link in bio.'"
    )
    assert describe_effect("notify.send", {"message": "hi", "webhook": None}) == "notify the log: 'hi'"
    assert step_path("wf@run:3:steps.a[1].0") == "steps.a[1].0"
    assert step_path("wf:3:steps.a") == "steps.a"
    # A sub-recipe's call: after the `run:` step's path, which its workflow id ends with.
    assert call_path("wf/steps.r[7300].answer@run:0:steps.reply.try.posted") == (
        "steps.r[7300].answer/steps.reply.try.posted"
    )
    assert call_path("wf@run:3:steps.a") == "steps.a"


# -- every shipped recipe against the sandbox ---------------------------------------------------

ME = "tikflow_demo"
#: Sandbox traffic counters: reads count there, so they are the one part of the state that moves
#: (with DumplingAI's credits, which its reads spend).
TRAFFIC = ("requests", "statuses", "rate_limited")


def _mp4(path: Path) -> Path:
    path.write_bytes(struct.pack(">I4s4s", 16, b"ftyp", b"isom") + bytes(64 * 1024))
    return path


def _scene(admin: AdminClient, recipe: str, tmp_path: Path) -> dict[str, Any]:
    """Set the sandbox up so the recipe has work to do; the recipe's inputs."""
    state = admin.state()
    if recipe == "hashtag-reply":
        cats = [v["id"] for v in state["tikapi"]["videos"] if "cats" in v["hashtags"]]
        admin.admin("tick", {"comments": 3, "video_id": cats[0], "text": "what's the PRICE of this?"})
    if recipe == "my-comments-autoreply":
        mine = [v["id"] for v in state["tikapi"]["videos"] if v["author"] == ME]
        admin.admin("tick", {"comments": 1, "video_id": mine[0], "text": "FREE FOLLOWERS here"})
        admin.admin("tick", {"comments": 2, "video_id": mine[0], "text": "love it"})
    if recipe == "approve-reply":
        # Nobody decides in a dry run (time is skipped): the approval times out, nothing is posted.
        mine = [v["id"] for v in state["tikapi"]["videos"] if v["author"] == ME]
        made = admin.admin("tick", {"comments": 1, "video_id": mine[0], "text": "where can I buy it?"})
        return {"video": mine[0], "comment": made["comments"][0]["cid"]}
    if recipe == "reply-to-comment":
        mine = [v["id"] for v in state["tikapi"]["videos"] if v["author"] == ME]
        made = admin.admin("tick", {"comments": 1, "video_id": mine[0], "text": "love it"})
        return {"media_id": mine[0], "comment_id": made["comments"][0]["cid"], "text": "Thank you!"}
    if recipe == "upload-and-confirm":
        return {"file": str(_mp4(tmp_path / "clip.mp4"))}
    if recipe == "upload-from-url":
        return {"url": "https://cdn.example.com/v/launch.mp4"}
    if recipe == "form-to-tiktok":
        # What the webhook trigger maps from a form's event; `tikflow run --dry-run` takes it as inputs.
        return {"video_url": "https://cdn.example.com/v/form.mp4", "caption": "From the form"}
    return {}


def _world(admin: AdminClient) -> str:
    state = admin.state()
    for key in TRAFFIC:
        state.pop(key)
    state["dumpling"].pop("credits")
    return json.dumps(state, sort_keys=True)


async def _real_effects(loaded: LoadedRecipe, inputs: dict[str, Any], services: Any) -> list[tuple]:
    """The side-effecting calls a real run of one poll scheduled, from its history."""
    actions = load_actions()
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    try:
        async with running_workers(env.client, services, "real"):
            _, handle = await start_recipe(
                env.client, loaded, inputs, task_queue="real", workflow_id="real", search_attributes=False
            )
            assert handle is not None
            await handle.result()
            histories = [await handle.fetch_history()]
            # A sub-recipe's calls are in its own (child workflow's) history.
            for history in histories:
                for event in history.events:
                    if event.HasField("child_workflow_execution_started_event_attributes"):
                        child = event.child_workflow_execution_started_event_attributes.workflow_execution
                        found = env.client.get_workflow_handle(child.workflow_id, run_id=child.run_id)
                        histories.append(await found.fetch_history())
    finally:
        await env.shutdown()
    effects = []
    for event in (event for history in histories for event in history.events):
        if not event.HasField("activity_task_scheduled_event_attributes"):
            continue
        attrs = event.activity_task_scheduled_event_attributes
        [request] = await pydantic_data_converter.decode(attrs.input.payloads, [ActionRequest])
        act = actions[request.action]
        if not act.side_effect:
            continue
        params = act.input_model.model_validate(request.params).model_dump(mode="json", by_alias=True)
        effects.append(
            (request.action, call_path(request.idempotency_key), json.dumps(params, sort_keys=True))
        )
    return effects


def _comparable(effect: tuple) -> tuple:
    """An effect without what only names the run (`workflow_id`) or what the run created before it.

    A dry run made up the ids of posts it did not create; the real run has the provider's ids.
    """
    action, path, params = effect
    values = json.loads(params)
    values.pop("workflow_id", None)
    values.pop("data", None)  # notify.send's data: the ids and statuses of what was created
    if isinstance(values.get("message"), str):  # form-to-tiktok's message names the post it created
        values["message"] = re.sub(r"HighLevel post \S+", "HighLevel post <created>", values["message"])
    return action, path, json.dumps(values, sort_keys=True)


@pytest.mark.parametrize("file", sorted(DEFINITIONS.glob("*.yaml")), ids=lambda p: p.stem)
async def test_a_dry_run_changes_nothing_and_lists_what_a_real_run_does(file, tmp_path):
    with serve_emulator(EmulatorConfig(seed=7)) as (url, _):
        admin = AdminClient(url)
        inputs = _scene(admin, file.stem, tmp_path)
        store = store_emulator_credentials(CredentialStore(tmp_path / "credentials.json", env={}), url)
        loaded = load_recipe(file)
        before = _world(admin)

        report = await dry_run(loaded, inputs, emulator_services(url, store))

        assert report.error is None, format_plan(report)
        assert _world(admin) == before, "the dry run changed the sandbox"
        once = LoadedRecipe(recipe=dry_run_recipe(loaded.recipe), source=loaded.source)
        real = await _real_effects(once, inputs, emulator_services(url, store))
    planned = [(e.action, e.path, json.dumps(e.params, sort_keys=True)) for e in report.effects]
    extra = Counter(map(_comparable, real)) - Counter(map(_comparable, planned))
    assert not Counter(map(_comparable, planned)) - Counter(map(_comparable, real))
    if file.stem == "dm-autoreply":
        # The one read that sees a held-back effect: conversations listed after requests were
        # accepted. The real run answers the accepted ones too, and the plan says it may.
        accepted = {
            e.params["conversation_id"] for e in report.effects if e.action == "tikapi.accept_request"
        }
        assert accepted
        assert report.reads_after_effects
        assert {json.loads(params)["conversation_id"] for _, _, params in extra} <= accepted
        assert {action for action, _, _ in extra} == {"tikapi.send_message"}
        assert "a real run may find more to do" in format_plan(report)[-1]
    else:
        assert not extra
    lines = format_plan(report)
    assert lines[0].endswith("nothing was sent")
    if planned:
        assert any(line.startswith(f"  effects: {len(planned)} (") for line in lines)


def test_the_command_line_prints_the_plan_and_sends_nothing(tmp_path):
    import os
    import subprocess
    import sys

    from tikflow.emulator.server import provider_base_urls

    with serve_emulator(EmulatorConfig(seed=7)) as (url, _):
        admin = AdminClient(url)
        _scene(admin, "hashtag-reply", tmp_path)
        store_emulator_credentials(CredentialStore(tmp_path / "credentials.json", env={}), url)
        before = _world(admin)
        env = {
            **os.environ,
            "TIKFLOW_CREDENTIALS": str(tmp_path / "credentials.json"),
            "TIKFLOW_LOG_JSON": "1",
            **{f"TIKFLOW_{p.upper()}_URL": u for p, u in provider_base_urls(url).items()},
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tikflow.cli",
                "run",
                str(DEFINITIONS / "hashtag-reply.yaml"),
                "--dry-run",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert _world(admin) == before
    assert done.returncode == 0, done.stderr
    plan = [line for line in done.stdout.splitlines() if line.startswith("  ")]
    replies = [line for line in plan if line.strip()[0].isdigit() and "reply to comment" in line]
    assert replies
    assert f"  effects: {len(replies)} ({len(replies)} tikapi.reply)" in plan
