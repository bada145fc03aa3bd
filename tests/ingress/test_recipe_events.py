"""Recipes and the ingress end to end: real HTTP, the real ingress, a real dev server, the sandbox.

The events are signed and POSTed here, as TikTok and a form would send them (the sandbox's own
sender is another branch's); everything after the POST is the production path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.service import RPCError

from activities.credentials import CredentialStore
from tests.conftest import Stack
from tests.ingress.conftest import (
    STANDARD_SECRET,
    connect_to,
    ingress_config,
    standard_headers,
    tiktok_signature,
)
from tests.support.waiting import eventually
from tests.test_recipe_workflow import status_when
from tikflow.ingress import running_ingress
from tikflow.loader import load_recipe, load_recipe_text
from tikflow.runs import start_recipe
from workflows.events import route_child_id, route_workflow_id
from workflows.recipe import RECIPE_KEY, RecipeWorkflow, RunResult

pytestmark = pytest.mark.devserver

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"


@pytest.fixture(autouse=True)
async def no_mailbox_left(stack: Stack) -> AsyncIterator[None]:
    """End the mailboxes of other tests before and this test's after it.

    Every test has its own task queue, but the seeded sandbox hands out the same publish_ids (and
    every run watches `account:main`): a mailbox an earlier test started on its queue, which no
    worker polls any more, would take this test's subscriptions and never forward them. In a
    deployment all of them share one task queue.
    """

    async def end(query: str) -> None:
        running = "WorkflowType = 'TikflowEventMailbox' AND ExecutionStatus = 'Running'"
        async for listed in stack.client.list_workflows(f"{running} AND {query}"):
            with contextlib.suppress(RPCError):
                await stack.client.get_workflow_handle(listed.id).terminate("left by another test")

    await end(f"TaskQueue != '{stack.task_queue}'")
    yield
    await end(f"TaskQueue = '{stack.task_queue}'")


@pytest.fixture
def ingress(stack: Stack) -> Iterator[str]:
    """The ingress on loopback, reading the stack's credentials (plus the form's signing secret)."""
    data = json.loads(stack.credentials.read_text())
    data["credentials"]["ingress"] = {"crm": {"signing_secret": STANDARD_SECRET}}
    stack.credentials.write_text(json.dumps(data))
    target = stack.client.service_client.config.target_host
    with running_ingress(
        ingress_config(stack.credentials, stack.task_queue), connect=connect_to(target)
    ) as url:
        yield url


def tiktok_event(
    stack: Stack, publish_id: str, event: str = "post.publish.complete", user: str = "act.sandbox-user"
) -> tuple[bytes, dict]:
    """A TikTok posting event, signed with the sandbox app's client secret."""
    app = CredentialStore(stack.credentials, env={}).get("tiktok", "main")
    body = json.dumps(
        {
            "client_key": app["client_key"],
            "event": event,
            "create_time": int(time.time()),
            "user_openid": user,
            "content": json.dumps({"publish_id": publish_id, "publish_type": "PULL_FROM_URL"}),
        }
    ).encode()
    headers = {
        "content-type": "application/json",
        "tiktok-signature": tiktok_signature(body, secret=app["client_secret"]),
    }
    return body, headers


async def post(url: str, path: str, body: bytes, headers: dict) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await http.post(path, content=body, headers=headers)


async def activity_names(handle: Any) -> list[str]:
    history = await handle.fetch_history()
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


async def waiting_for_event(handle: Any) -> None:
    async def status() -> Any:
        return await handle.query(RecipeWorkflow.status)

    await eventually(
        status, until=lambda s: bool(s.waiting_for), within=30, what="the run to wait for its event"
    )


def publish_id_of(stack: Stack) -> str:
    publishes = stack.state()["tiktok"]["publishes"]
    assert len(publishes) == 1
    return str(publishes[0]["publish_id"])


async def test_publish_confirmed_by_the_event_three_deliveries_one_continuation(stack: Stack, ingress: str):
    handle = await stack.run(
        DEFINITIONS / "upload-from-url.yaml", {"url": "https://cdn.example.com/v/a.mp4", "event_wait": "10m"}
    )
    await waiting_for_event(handle)
    body, headers = tiktok_event(stack, publish_id_of(stack))
    sent = time.monotonic()
    answers = [(await post(ingress, "/events/tiktok", body, headers)).json()["status"] for _ in range(3)]
    result: RunResult = await handle.result()
    assert time.monotonic() - sent < 5
    assert answers == ["accepted", "duplicate", "duplicate"]
    assert result.outputs["status"]["status"] == "PUBLISH_COMPLETE"
    assert result.outputs["status"]["confirmed_by"] == "event"
    names = await activity_names(handle)
    assert "tiktok.publish_status" not in names
    assert names.count("tiktok.publish_video") == 1


async def test_an_event_posted_before_the_run_waits_is_not_lost(stack: Stack, ingress: str):
    text = """
recipe: early-bird
inputs: {key: {type: string}}
steps:
  - id: got
    wait_for: tiktok
    key: "{{ inputs.key }}"
    timeout: 10m
"""
    body, headers = tiktok_event(stack, "v_pub_early_bird", "post.publish.failed")
    assert (await post(ingress, "/events/tiktok", body, headers)).status_code == 200
    _, handle = await start_recipe(
        stack.client,
        load_recipe_text(text, "early.yaml"),
        {"key": "v_pub_early_bird"},
        task_queue=stack.task_queue,
        workflow_id=f"early-{stack.task_queue}",
    )
    assert handle is not None
    result = await handle.result()
    assert result.outputs["got"]["type"] == "post.publish.failed"


async def test_no_event_falls_back_to_polling(stack: Stack):
    handle = await stack.run(
        DEFINITIONS / "upload-from-url.yaml", {"url": "https://cdn.example.com/v/a.mp4", "event_wait": "1s"}
    )
    result = await handle.result()
    assert result.outputs["status"] == {
        "status": "PUBLISH_COMPLETE",
        "fail_reason": result.outputs["status"]["fail_reason"],
        "post_ids": result.outputs["status"]["post_ids"],
        "confirmed_by": "polling",
    }
    assert "tiktok.publish_status" in await activity_names(handle)


async def test_form_posts_start_the_shipped_webhook_recipe(stack: Stack, ingress: str):
    loaded = load_recipe(DEFINITIONS / "form-to-tiktok.yaml")
    route_id, none = await start_recipe(
        stack.client, loaded, {"event_wait": "10m"}, task_queue=stack.task_queue
    )
    assert (route_id, none) == (route_workflow_id("new-video"), None)
    try:
        form = json.dumps(
            {
                "submission_id": "sub-1",
                "video_url": "https://cdn.example.com/v/form.mp4",
                "caption": "From the form #tikflow",
            }
        ).encode()
        # The sender retries (a lost answer): two deliveries, each with its own webhook-id.
        for msg_id in ("msg_1", "msg_2"):
            answer = await post(ingress, "/hooks/new-video", form, standard_headers(form, msg_id))
            assert answer.status_code == 200, answer.text
        not_a_video = json.dumps({"submission_id": "sub-2", "caption": "no url"}).encode()
        assert (
            await post(ingress, "/hooks/new-video", not_a_video, standard_headers(not_a_video, "msg_3"))
        ).status_code == 200

        run = stack.client.get_workflow_handle(route_child_id("new-video", "sub-1"), result_type=RunResult)
        await waiting_for_event(run)
        body, headers = tiktok_event(stack, publish_id_of(stack))
        assert (await post(ingress, "/events/tiktok", body, headers)).status_code == 200
        try:
            result = await asyncio.wait_for(run.result(), 30)
        except TimeoutError:
            raise AssertionError(await run.query(RecipeWorkflow.status)) from None
    finally:
        await stack.client.get_workflow_handle(route_id).signal("stop")
    state = await stack.client.get_workflow_handle(route_id).result()
    assert (state["accepted"], state["duplicates"], state["filtered"]) == (1, 1, 1)
    assert result.outputs["tiktok"]["confirmed_by"] == "event"
    # Found in the Temporal UI like any run: the recipe's search attribute and memo.
    described = await run.describe()
    assert described.typed_search_attributes.get(RECIPE_KEY) == "form-to-tiktok"
    assert (await described.memo())["recipe"] == "form-to-tiktok"
    posts = stack.state()["highlevel"]["posts"]
    assert len(posts) == 1
    assert posts[0]["summary"] == "From the form #tikflow"
    publishes = stack.state()["tiktok"]["publishes"]
    assert [(p["source"], p["title"]) for p in publishes] == [("PULL_FROM_URL", "From the form #tikflow")]


async def test_a_route_signed_like_tiktok_starts_its_recipe_once(stack: Stack, ingress: str):
    route = f"tt-{stack.task_queue[-8:]}"
    text = f"""
recipe: tiktok-hook
inputs: {{publish_id: {{type: string}}}}
trigger:
  webhook:
    route: {route}
    auth: tiktok
    credential: main
    filter: "{{{{ event.type == 'post.publish.publicly_available' }}}}"
    inputs: {{publish_id: "{{{{ event.body.content.publish_id }}}}"}}
steps:
  - id: got
    set: {{publish_id: "{{{{ inputs.publish_id }}}}"}}
"""
    route_id, _ = await start_recipe(
        stack.client, load_recipe_text(text, "tt.yaml"), {}, task_queue=stack.task_queue
    )
    try:
        body, headers = tiktok_event(stack, "v_pub_public", "post.publish.publicly_available")
        other, other_headers = tiktok_event(stack, "v_pub_other", "post.publish.complete")
        forged = {**headers, "tiktok-signature": tiktok_signature(body, secret="not-the-app-secret")}
        assert (await post(ingress, f"/hooks/{route}", body, forged)).status_code == 401
        for _ in range(3):
            assert (await post(ingress, f"/hooks/{route}", body, headers)).status_code == 200
        assert (await post(ingress, f"/hooks/{route}", other, other_headers)).status_code == 200
    finally:
        await stack.client.get_workflow_handle(route_id).signal("stop")
    state = await stack.client.get_workflow_handle(route_id).result()
    assert (state["accepted"], state["filtered"]) == (1, 1)
    listed = [w async for w in stack.client.list_workflows(f"WorkflowId STARTS_WITH '{route_id}-'")]
    assert len(listed) == 1
    result = await stack.client.get_workflow_handle(listed[0].id, result_type=RunResult).result()
    assert result.outputs["got"] == {"publish_id": "v_pub_public"}


async def test_authorization_removed_moves_a_run_using_the_account_to_awaiting_reauth(
    stack: Stack, ingress: str
):
    open_id = CredentialStore(stack.credentials, env={}).get("tiktok", "main").get("open_id")
    assert open_id, "the sandbox's TikTok credential names its user"
    handle = await stack.run(
        DEFINITIONS / "upload-from-url.yaml", {"url": "https://cdn.example.com/v/a.mp4", "event_wait": "10m"}
    )
    await waiting_for_event(handle)
    body, headers = tiktok_event(stack, "", "authorization.removed", user=open_id)
    answer = await post(ingress, "/events/tiktok", body, headers)
    assert answer.status_code == 200, answer.text
    status = await status_when(handle, lambda s: s.phase == "awaiting_reauth")
    assert status.awaiting_reauth == {"main": "tiktok"}
    await handle.signal(RecipeWorkflow.stop)
    assert (await handle.result()).outcome == "stopped"
