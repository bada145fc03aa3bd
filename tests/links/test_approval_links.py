"""Approval links (issue 16, item 4's link, page and route) in a real browser, against real Temporal.

A stand-in workflow here keeps the contract `tikflow.authorize.approvals` documents (query
`approval_request`, signal `approval`); `test_approval_recipe_in_browser.py` does the same with
the `approval:` step of a real run of the shipped recipe approve-reply. Approve and
reject in headless chromium (screenshots: tests/artifacts/screenshots/approval-*.png); a decision
is delivered exactly once, whichever link carries the second one; a forged, altered or expired link,
or one whose run no longer waits, is refused with one line; a link decides only its own run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.links import LinkSigner
from tests.links.conftest import LINK_KEY, Deployment
from tests.support.browser import browser
from tikflow.authorize.approvals import approval_link

pytestmark = pytest.mark.devserver

CAPTION = "New drop <b>Friday</b> & more"


@workflow.defn(name="ApprovalStandIn")
class ApprovalStandIn:
    """Waits for one decision on approval `reply-1`, as the `wait_for` step will."""

    def __init__(self) -> None:
        self.decision: dict[str, str] | None = None

    @workflow.run
    async def run(self) -> dict[str, str]:
        await workflow.wait_condition(lambda: self.decision is not None)
        assert self.decision is not None
        return self.decision

    @workflow.query(name="approval_request")
    def approval_request(self, approval_id: str) -> dict[str, str]:
        if self.decision is not None or approval_id != "reply-1":
            raise ValueError("not pending")
        return {"caption": CAPTION, "video": "https://www.tiktok.com/@nina_art/video/1", "reply": "Thanks!"}

    @workflow.signal(name="approval")
    def approval(self, decision: dict[str, str]) -> None:
        if self.decision is None:
            self.decision = decision


@pytest.fixture
async def runs(deployment: Deployment) -> AsyncIterator[str]:
    queue = f"approvals-{uuid.uuid4()}"
    # The stand-in lives in a test module that imports httpx: it runs outside Temporal's sandbox.
    async with Worker(
        deployment.client,
        task_queue=queue,
        workflows=[ApprovalStandIn],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield queue


async def start(d: Deployment, queue: str) -> WorkflowHandle[Any, Any]:
    return await d.client.start_workflow(ApprovalStandIn.run, id=f"approval-{uuid.uuid4()}", task_queue=queue)


def link_for(d: Deployment, run: str, ttl_s: float = 600) -> str:
    return approval_link(LinkSigner(LINK_KEY), d.ingress, run, "reply-1", ttl_s)


def decide_in_chromium(link: str, button: str, comment: str) -> tuple[str, str]:
    with browser(f"approval-{button}") as window:
        window.open(link)
        shown = window.html
        window.driver.find_element("id", "comment").send_keys(comment)  # type: ignore[attr-defined]
        window.screenshot("1-page")
        window.click(f"#{button}")
        window.screenshot("2-decided")
        return shown, window.text("#result")


async def signals(handle: WorkflowHandle[Any, Any]) -> int:
    count = 0
    async for event in handle.fetch_history_events():
        count += event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    return count


@pytest.mark.parametrize(("button", "verb"), [("approve", "Approved"), ("reject", "Rejected")])
async def test_a_person_decides_in_chromium_and_the_run_gets_it_once(
    deployment: Deployment, runs: str, button: str, verb: str
) -> None:
    d = deployment
    handle = await start(d, runs)
    link = link_for(d, handle.id)
    shown, result = await asyncio.to_thread(decide_in_chromium, link, button, "looks good")
    assert "New drop &lt;b&gt;Friday&lt;/b&gt; &amp; more" in shown  # rendered from the run, escaped
    assert "https://www.tiktok.com/@nina_art/video/1" in shown
    assert result == verb
    decision = await asyncio.wait_for(handle.result(), 30)
    assert decision == {"id": "reply-1", "decision": button, "comment": "looks good", "via": "link"}
    # The same link again, and another link to the same approval: refused, nothing delivered.
    async with httpx.AsyncClient(timeout=10) as http:
        for again in (link, link_for(d, handle.id)):
            answer = await http.post(again, data={"decision": "approve"})
            assert answer.status_code == 400
            assert "Not decided" in answer.text
    assert await signals(handle) == 1


async def test_a_second_decision_is_refused_while_the_run_still_answers(
    deployment: Deployment, runs: str
) -> None:
    d = deployment
    handle = await start(d, runs)
    link = link_for(d, handle.id)
    async with httpx.AsyncClient(timeout=10) as http:
        first, second = await asyncio.gather(
            http.post(link, data={"decision": "approve"}), http.post(link, data={"decision": "reject"})
        )
    assert sorted([first.status_code, second.status_code]) == [200, 400]
    await asyncio.wait_for(handle.result(), 30)
    assert await signals(handle) == 1


async def test_forged_altered_expired_and_other_runs_links_are_refused(
    deployment: Deployment, runs: str
) -> None:
    from itsdangerous import URLSafeSerializer

    d = deployment
    mine, other = await start(d, runs), await start(d, runs)
    token = link_for(d, mine.id).rsplit("/", 1)[1]
    claim = URLSafeSerializer("x").loads_unsafe(token)[1]
    altered = (
        URLSafeSerializer("x").dumps({**claim, "w": other.id}).rsplit(".", 1)[0]
        + "."
        + token.rsplit(".", 1)[1]
    )
    forged = approval_link(
        LinkSigner("another-key-0123456789abcdef0123456789"), d.ingress, mine.id, "reply-1", 60
    )
    reauth = LinkSigner(LINK_KEY).issue("reauth", "tikapi", "main")
    cases = {
        f"{d.ingress}/approve/{altered}": "signature",
        forged: "signature",
        link_for(d, mine.id, ttl_s=-1): "expired",
        f"{d.ingress}/approve/{reauth}": "not an approval link",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for url, reason in cases.items():
            for answer in (await http.get(url), await http.post(url, data={"decision": "approve"})):
                assert answer.status_code == 400, (url, answer.text)
                assert reason in answer.text
        # Decided and finished: the page says the approval no longer waits.
        assert (await http.post(link_for(d, mine.id), data={"decision": "reject"})).status_code == 200
        await asyncio.wait_for(mine.result(), 30)
        late = await http.get(link_for(d, mine.id))
        assert late.status_code == 400
        assert "no longer waiting" in late.text
    assert await signals(other) == 0
    await other.terminate()
