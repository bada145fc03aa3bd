"""Issue 16's approval proof with the shipped recipe: a real run asks, a person decides in a real browser.

Against the real Temporal dev server, the sandbox, the ingress and a worker on loopback, with
Debian's chromium headless: `definitions/approve-reply.yaml` drafts a reply to a sandbox comment
and asks; its notification (the webhook) carries the approval link; chromium opens it, the page
shows the video URL, the comment and the draft, and the person approves (the reply is posted once,
the run completes) or rejects with a comment (nothing is posted, the run completes saying so).
While the run waits, forged, altered, expired and foreign links are refused with one line and
change nothing; a decided link is refused after. No key or token is in the page, the
notification, the logs or history. Screenshots: tests/artifacts/screenshots/approve-reply-*.png.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from activities.links import LinkSigner
from tests.links.conftest import LINK_KEY, Deployment
from tests.support.browser import browser
from tests.support.waiting import eventually
from tests.support.webhook import Webhook
from tikflow.authorize.approvals import approval_link
from tikflow.loader import load_recipe
from tikflow.runs import start_recipe
from workflows.recipe import RecipeWorkflow, RunStatus

pytestmark = pytest.mark.devserver

ME = "tikflow_demo"
RECIPE = Path(__file__).resolve().parents[2] / "definitions" / "approve-reply.yaml"
QUESTION = "where can I buy <this> & that?"
REPLY = "Thanks! It's <b>in</b> our bio."


@dataclass
class Asked:
    """A run of approve-reply that asks, and what it answers."""

    handle: WorkflowHandle[Any, Any]
    video: str
    comment: str
    author: str
    notification: dict[str, Any]


async def ask(d: Deployment, webhook: Webhook, workflow_id: str | None = None) -> Asked:
    """A question under our newest video and a run of approve-reply answering it, once it asks."""
    state = (await d.admin.get("/_admin/state")).json()
    video = next(v["id"] for v in state["tikapi"]["videos"] if v["author"] == ME)
    made = await d.admin.post("/_admin/tick", json={"comments": 1, "video_id": video, "text": QUESTION})
    question = made.json()["comments"][0]
    comment = question["cid"]
    _, handle = await start_recipe(
        d.client,
        load_recipe(RECIPE),
        {"video": video, "comment": comment, "reply": REPLY, "webhook": webhook.url},
        task_queue=d.task_queue,
        workflow_id=workflow_id or f"approve-reply-{uuid.uuid4()}",
    )
    assert handle is not None

    async def asked() -> list[dict[str, Any]]:
        return [
            body
            for _, body in webhook.calls
            if body.get("event") == "awaiting_approval"
            and body.get("workflow_id") == handle.id
            and body["approval_url"] not in seen
        ]

    seen = [body.get("approval_url") for _, body in webhook.calls]

    [body] = await eventually(asked, within=60, what="the awaiting_approval notification")
    return Asked(handle, video, comment, question["author"], body)


async def status(handle: WorkflowHandle[Any, Any]) -> RunStatus:
    answer: RunStatus = await handle.query(RecipeWorkflow.status)
    return answer


async def replies(d: Deployment, comment: str) -> list[dict[str, Any]]:
    """Our replies to `comment` in the sandbox."""
    state = (await d.admin.get("/_admin/state")).json()
    return [c for c in state["tikapi"]["comments"] if c["reply_to"] == comment and c["author"] == ME]


async def signals(handle: WorkflowHandle[Any, Any]) -> int:
    count = 0
    async for event in handle.fetch_history_events():
        count += event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    return count


async def history_text(handle: WorkflowHandle[Any, Any]) -> str:
    return "\n".join([json.dumps(str(event)) async for event in handle.fetch_history_events()])


def decide_in_chromium(link: str, button: str, comment: str) -> tuple[str, str, str]:
    """Open the link, write `comment`, click `button`: the page's HTML, the result and its HTML."""
    with browser(f"approve-reply-{button}") as window:
        window.open(link)

        # Read the page once its form is there (seen once under load: an empty page_source
        # right after the load returned).
        def form() -> str:
            page = window.html
            return page if 'id="comment"' in page else ""

        shown = window.until(form, "the approval form")
        window.driver.find_element("id", "comment").send_keys(comment)  # type: ignore[attr-defined]
        window.screenshot("1-page")
        window.click(f"#{button}")
        window.screenshot("2-decided")
        return shown, window.text("#result"), window.html


def one_line(answer: httpx.Response) -> str:
    """The refusal page's one line of text (fails when there is not exactly one)."""
    lines = re.findall(r"<p>(.*?)</p>", answer.text)
    assert len(lines) == 1, answer.text
    return html.unescape(lines[0])


@pytest.mark.parametrize(
    ("button", "verb", "comment"), [("approve", "Approved", "ship it"), ("reject", "Rejected", "too salesy")]
)
async def test_the_shipped_recipe_asks_and_a_person_decides_in_chromium(
    deployment: Deployment, webhook: Webhook, button: str, verb: str, comment: str
) -> None:
    d = deployment
    with capture_logs() as logs:
        run = await ask(d, webhook)
        handle, video, cid, author, asked = run.handle, run.video, run.comment, run.author, run.notification
        waiting = await eventually(
            lambda: status(handle), until=lambda s: s.phase == "awaiting_approval", within=30, what="waiting"
        )
        [approval_id] = waiting.approvals
        link = asked["approval_url"]
        assert link.startswith(f"{d.ingress}/approve/")
        assert link in asked["message"]
        assert asked["message"].startswith(
            f"tikflow (approve-reply): Reply to @{author} under video {video}?"
        )
        claim = LinkSigner(LINK_KEY).check(link.rsplit("/", 1)[1], "approval")
        assert (claim.workflow_id, claim.subject) == (handle.id, approval_id)
        # The link expires with the step's timeout (1d), when the run stops waiting.
        assert claim.expires_at == pytest.approx(asked["expires_at"], abs=5)
        assert asked["approval"]["reply"] == f"@{author} {REPLY}"

        shown, result, decided = await asyncio.to_thread(decide_in_chromium, link, button, comment)
        # The labels, rendered from the run and escaped.
        assert asked["approval"]["video"].endswith(f"/video/{video}")
        assert asked["approval"]["video"] in shown
        assert "where can I buy &lt;this&gt; &amp; that?" in shown
        assert f"@{author} Thanks! It's &lt;b&gt;in&lt;/b&gt; our bio." in shown
        assert "<b>in</b>" not in shown
        assert result == verb
        assert f"{verb}: the run {handle.id} goes on." in decided

        done = await asyncio.wait_for(handle.result(), 60)
    assert done.outcome == "completed"
    assert done.outputs["ask"]["decision"] == button
    assert done.outputs["ask"]["comment"] == comment
    assert done.outputs["ask"]["via"] == "link"
    posted = await replies(d, cid)
    outcomes = [body for _, body in webhook.calls if body.get("data", body).get("decision") == button]
    if button == "approve":
        assert [r["text"] for r in posted] == [f"@{author} {REPLY}"]
        assert done.outputs["outcome"]["posted"] is True
        assert [o["message"] for o in outcomes] == [
            f"Posted the approved reply to @{author}: @{author} {REPLY}"
        ]
    else:
        assert posted == []
        assert done.outputs["outcome"] == {"posted": False, "decision": "reject", "comment": comment}
        assert [o["message"] for o in outcomes] == [
            f"Rejected: the reply to @{author} was not posted ({comment})"
        ]

    # The link again, by GET or POST: refused with one line; the run got one decision only.
    async with httpx.AsyncClient(timeout=10) as http:
        for answer in (await http.get(link), await http.post(link, data={"decision": "approve"})):
            assert answer.status_code == 400
            assert one_line(answer) in (
                "this approval was already decided",
                "this approval is no longer waiting for a decision",
            )
    assert await signals(handle) == 1
    assert await replies(d, cid) == posted

    secrets = [
        LINK_KEY,
        d.store.get("tikapi", "main")["account_key"],
        d.store.get("tikapi", "main")["api_key"],
    ]
    token = link.rsplit("/", 1)[1]
    history = await history_text(handle)
    logged = json.dumps(logs, default=str)
    notifications = json.dumps([body for _, body in webhook.calls])
    for secret in secrets:
        for where, text in (("page", shown), ("result page", decided), ("notifications", notifications)):
            assert secret not in text, where
        assert secret not in history
        assert secret not in logged
    # The link is made in the notification's activity: it is in the webhook body, never in history.
    assert token not in history


async def test_bad_links_change_nothing_and_a_link_decides_only_its_own_run(
    deployment: Deployment, webhook: Webhook
) -> None:
    from itsdangerous import URLSafeSerializer

    d = deployment
    first, second = await ask(d, webhook), await ask(d, webhook)
    mine, mine_cid, other, other_cid = first.handle, first.comment, second.handle, second.comment
    link = first.notification["approval_url"]
    token = link.rsplit("/", 1)[1]
    [approval_id] = (await status(mine)).approvals
    [other_approval] = (await status(other)).approvals
    claim = URLSafeSerializer("x").loads_unsafe(token)[1]
    # The same approval id in another run's name: the signature no longer holds.
    altered = (
        URLSafeSerializer("x").dumps({**claim, "w": other.id}).rsplit(".", 1)[0]
        + "."
        + token.rsplit(".", 1)[1]
    )
    forged = approval_link(
        LinkSigner("another-key-0123456789abcdef0123456789"), d.ingress, mine.id, approval_id, 60
    )
    expired = approval_link(LinkSigner(LINK_KEY), d.ingress, mine.id, approval_id, -1)
    # Signed, but for an approval this run does not wait for (the other run's id).
    foreign = approval_link(LinkSigner(LINK_KEY), d.ingress, mine.id, other_approval, 600)
    cases = {
        f"{d.ingress}/approve/{altered}": "the link's signature does not match",
        forged: "the link's signature does not match",
        expired: "expired",
        foreign: "this approval is no longer waiting for a decision",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for url, reason in cases.items():
            for answer in (await http.get(url), await http.post(url, data={"decision": "approve"})):
                assert answer.status_code == 400, (url, answer.text)
                assert reason in one_line(answer), (url, answer.text)
        # Nor does the approval link do anything on the re-authorization route.
        answer = await http.get(f"{d.ingress}/reauth/{token}")
        assert answer.status_code == 400
        assert one_line(answer) == "this is not a reauth link"
        for handle in (mine, other):
            still = await status(handle)
            assert still.phase == "awaiting_approval"
            assert len(still.approvals) == 1
            assert await signals(handle) == 0
        assert await replies(d, mine_cid) == []

        # Run A's own link decides run A, and nothing of run B.
        answer = await http.post(link, data={"decision": "approve", "comment": ""})
        assert answer.status_code == 200, answer.text
        done = await asyncio.wait_for(mine.result(), 60)
        assert done.outputs["outcome"]["posted"] is True
        assert len(await replies(d, mine_cid)) == 1
        assert (await status(other)).approvals == [other_approval]
        assert await signals(other) == 0
        assert await replies(d, other_cid) == []

        # The other run's link decides it, once.
        assert (
            await http.post(second.notification["approval_url"], data={"decision": "reject"})
        ).status_code == 200
        assert (await asyncio.wait_for(other.result(), 60)).outputs["outcome"]["posted"] is False
    assert await signals(mine) == 1
    assert await signals(other) == 1
    assert await replies(d, other_cid) == []


async def test_a_second_run_under_the_same_id_asks_anew(deployment: Deployment, webhook: Webhook) -> None:
    """`tikflow run` again with the same inputs (the same workflow id), within the minute: the first
    run's decision is spent, the second run's approval is its own and its link decides it."""
    d = deployment
    workflow_id = f"approve-reply-{uuid.uuid4()}"
    first = await ask(d, webhook, workflow_id)
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(first.notification["approval_url"], data={"decision": "reject"})
        assert answer.status_code == 200, answer.text
        await asyncio.wait_for(first.handle.result(), 60)
        second = await ask(d, webhook, workflow_id)
        assert second.notification["approval_id"] != first.notification["approval_id"]
        answer = await http.post(second.notification["approval_url"], data={"decision": "approve"})
        assert answer.status_code == 200, answer.text
    done = await asyncio.wait_for(second.handle.result(), 60)
    assert done.outputs["outcome"]["posted"] is True
    assert len(await replies(d, second.comment)) == 1
