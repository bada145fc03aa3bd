"""Issue 16's proof, in a real browser: a 428, the notification's link, the consent page, the run goes on.

Against the real Temporal dev server, the sandbox, the ingress and a worker on loopback, with
Debian's chromium headless: the recipe's reply hits TikAPI's 428; its notification (webhook and
`tikflow status`) carries a re-authorization link; chromium opens it, the sandbox's consent page is
approved, the ingress stores the new Account Key and signals the run, which completes with every
reply posted exactly once. Nothing secret is in the page, the notification, the logs or history.
Screenshots: tests/artifacts/screenshots/reauth-tikapi-*.png.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from temporalio.client import WorkflowHandle

from activities.links import LinkSigner
from tests.links.conftest import LINK_KEY, Deployment
from tests.support.browser import browser
from tests.support.waiting import eventually
from tests.support.webhook import Webhook
from tikflow.loader import load_recipe_text
from tikflow.runs import start_recipe
from workflows.recipe import RecipeWorkflow, RunStatus

pytestmark = pytest.mark.devserver

ME = "tikflow_demo"
EXPIRE_ON_FIRST_REPLY = {"provider": "tikapi", "kind": "session_expired", "path": "/user/comment"}
RECIPE = """
recipe: reply-all-notified
inputs:
  video: {type: string, required: true}
  hook: {type: string, required: true}
notify: {webhook: "{{ inputs.hook }}"}
timeout: 5s
retry: {initial: 200ms, max_interval: 2s, max_attempts: 100}
steps:
  - id: listing
    call: tikapi.comments
    with: {media_id: "{{ inputs.video }}", count: 30}
  - for_each: "{{ steps.listing.items }}"
    as: comment
    if: "{{ comment.author != 'tikflow_demo' }}"
    concurrency: 5
    steps:
      - call: tikapi.reply
        with: {media_id: "{{ comment.aweme_id }}", reply_comment_id: "{{ comment.cid }}", text: "Thanks!"}
"""


async def replies(d: Deployment, parents: list[str]) -> Counter[str]:
    state = (await d.admin.get("/_admin/state")).json()
    return Counter(
        c["reply_to"] for c in state["tikapi"]["comments"] if c["reply_to"] in parents and c["author"] == ME
    )


async def history_text(handle: WorkflowHandle[Any, Any]) -> str:
    events = [json.dumps(str(event)) async for event in handle.fetch_history_events()]
    return "\n".join(events)


async def status_links(d: Deployment, workflow_id: str) -> list[str]:
    """The re-authorization lines `tikflow status ID` prints."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TIKFLOW_", "TEMPORAL_"))},
        "TIKFLOW_CREDENTIALS": str(d.store.path),
        "TIKFLOW_PUBLIC_URL": d.ingress,
        "TEMPORAL_ADDRESS": d.client.service_client.config.target_host,
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("tikflow")),
        "status",
        workflow_id,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode()
    return [line for line in out.decode().splitlines() if line.startswith("  re-authorize ")]


def approve_in_chromium(link: str) -> tuple[str, str, str]:
    """Open the link, approve at the consent page; the consent page's and the result's HTML."""
    with browser("reauth-tikapi") as window:
        window.open(link)
        consent = window.html
        window.screenshot("1-consent")
        window.click("#approve")
        window.screenshot("2-connected")
        return consent, window.text("#result"), window.html


async def test_a_428_link_opened_in_chromium_resumes_the_run_and_every_reply_is_posted_once(
    deployment: Deployment, webhook: Webhook
) -> None:
    d = deployment
    state = (await d.admin.get("/_admin/state")).json()
    video = next(v["id"] for v in state["tikapi"]["videos"] if v["author"] == "nina_art")
    (await d.admin.post("/_admin/tick", json={"comments": 3, "video_id": video})).raise_for_status()
    state = (await d.admin.get("/_admin/state")).json()
    parents = [
        c["cid"]
        for c in state["tikapi"]["comments"]
        if c["aweme_id"] == video and c["reply_to"] is None and c["author"] != ME and not c["deleted"]
    ]
    assert parents
    (await d.admin.post("/_admin/faults", json={"rules": [EXPIRE_ON_FIRST_REPLY]})).raise_for_status()
    (await d.admin.post("/_consent/mode", json={"mode": "page"})).raise_for_status()
    old_key = d.store.get("tikapi", "main")["account_key"]

    with capture_logs() as logs:
        _, handle = await start_recipe(
            d.client,
            load_recipe_text(RECIPE, "<test recipe>"),
            {"video": video, "hook": webhook.url},
            task_queue=d.task_queue,
            workflow_id=f"links-{uuid.uuid4()}",
        )
        assert handle is not None

        async def status() -> RunStatus:
            answer: RunStatus = await handle.query(RecipeWorkflow.status)
            return answer

        waiting = await eventually(
            status, until=lambda s: s.phase == "awaiting_reauth", within=60, what="428"
        )
        assert waiting.awaiting_reauth == {"main": "tikapi"}

        async def notified() -> list[dict[str, Any]]:
            return [body for _, body in webhook.calls if body.get("event") == "awaiting_reauth"]

        bodies = await eventually(notified, within=30, what="the awaiting_reauth notification")
        assert len(bodies) == 1
        link = bodies[0]["reauth_url"]
        assert link.startswith(f"{d.ingress}/reauth/")
        assert link in bodies[0]["message"]
        claim = LinkSigner(LINK_KEY).check(link.rsplit("/", 1)[1], "reauth")
        assert (claim.provider, claim.account, claim.workflow_id) == ("tikapi", "main", handle.id)

        # `tikflow status` shows a link of its own (fresh, for the same provider, account and run).
        shown = await status_links(d, handle.id)
        assert len(shown) == 1
        assert shown[0].startswith(f"  re-authorize tikapi account 'main': {d.ingress}/reauth/")
        mine = LinkSigner(LINK_KEY).check(shown[0].rsplit("/", 1)[1], "reauth")
        assert (mine.provider, mine.account, mine.workflow_id) == ("tikapi", "main", handle.id)

        consent, result, page = await asyncio.to_thread(approve_in_chromium, link)
        assert "Approve" in consent
        assert result == "Connected"
        assert "1 waiting run(s) resumed." in page

        done = await asyncio.wait_for(handle.result(), 90)
    assert done.outcome == "completed"
    assert await replies(d, parents) == Counter({cid: 1 for cid in parents})

    new_key = d.store.get("tikapi", "main")["account_key"]
    assert new_key != old_key
    secrets = [new_key, old_key, d.store.get("tikapi", "main")["api_key"], LINK_KEY]
    history = await history_text(handle)
    logged = json.dumps(logs, default=str)
    for secret in secrets:
        assert secret not in consent
        assert secret not in page
        assert secret not in json.dumps(bodies)
        assert secret not in history
        assert secret not in logged
    assert "reauthorized" in history
