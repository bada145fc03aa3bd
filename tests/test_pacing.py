"""`pace:` per account across recipes: three monitors, one TikAPI account, the real sandbox.

The runs, the account's pacer and the reply activities run in the time-skipping server, the
replies go over HTTP to the sandbox (the real `tikapi.reply` activity of the production worker).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.contracts import ActionRequest
from activities.credentials import CredentialStore
from activities.registry import Action
from activities.runner import ProviderActivities
from tests.support.emulator import AdminClient, emulator_services, store_emulator_credentials
from tests.support.waiting import eventually
from tikflow.devstack import running_workers
from tikflow.loader import load_recipe_text
from tikflow.runs import build_run
from workflows.pacing import AccountPacerWorkflow, PacerState, pacer_id
from workflows.recipe import RecipeWorkflow, RunStatus

ME = "tikflow_demo"
EVERY = timedelta(seconds=8)

PACED = """
recipe: pace-{n}
inputs:
  video: {{type: string}}
trigger:
  poll: {{every: 1m, max_polls: 4}}
steps:
  - id: comments
    call: tikapi.comments
    with: {{media_id: "{{{{ inputs.video }}}}", count: 30}}
  - id: replies
    for_each: "{{{{ steps.comments.items }}}}"
    as: comment
    if: "{{{{ comment.author != '{me}' }}}}"
    new_only: cid
    concurrency: 4
    steps:
      - call: tikapi.reply
        pace: {{every: 8s}}
        with:
          media_id: "{{{{ comment.aweme_id }}}}"
          reply_comment_id: "{{{{ comment.cid }}}}"
          text: "thanks from recipe {n}"
"""


class TimedReplies(ProviderActivities):
    """The production activities, with the test server's clock read around each reply.

    `get_current_time` is the time-skipping server's clock, the one every workflow timer (and so
    every pacing slot) runs on. The sandbox received each reply between the two readings, on that
    clock, so `before` of one reply minus `after` of the previous is a lower bound of the gap the
    sandbox saw. (The sandbox's own wall clock is no witness: skipped time never passes on it.)
    It also counts the activities running, so the test skips time only when none is (a skip
    during one would fire its timeout and retry it while the first attempt still posts).
    """

    def __init__(self, services: Any, env: WorkflowEnvironment) -> None:
        super().__init__(services)
        self.env = env
        self.replies: list[tuple[datetime, datetime, str]] = []
        self.running = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def execute(self, act: Action[Any], request: ActionRequest) -> dict[str, Any]:
        self.running += 1
        self.idle.clear()
        try:
            if act.name != "tikapi.reply":
                return await super().execute(act, request)
            before = await self.env.get_current_time()
            result = await super().execute(act, request)
            after = await self.env.get_current_time()
            self.replies.append((before, after, activity.info().workflow_id))
            return result
        finally:
            self.running -= 1
            if not self.running:
                self.idle.set()


async def _start(client: Client, task_queue: str, n: int, video: str) -> Any:
    loaded = load_recipe_text(PACED.format(n=n, me=ME), f"pace-{n}.yaml")
    return await client.start_workflow(
        RecipeWorkflow.run,
        build_run(loaded, {"video": video}),
        id=f"pace-{n}-{uuid.uuid4()}",
        task_queue=task_queue,
    )


async def test_three_recipes_on_one_account_reply_8s_apart_each_once(time_env, sandbox_url, tmp_path, task_queue):
    def prepare() -> tuple[CredentialStore, list[str]]:
        admin = AdminClient(sandbox_url, timeout=10)
        admin.admin("reset")
        videos = [v["id"] for v in admin.state()["tikapi"]["videos"] if v["author"] != ME][:3]
        for video in videos:
            admin.admin("tick", {"comments": 12, "video_id": video, "text": "love it"})
        return store_emulator_credentials(CredentialStore(tmp_path / "c.json", env={}), sandbox_url), videos

    store, videos = await asyncio.to_thread(prepare)
    services = emulator_services(sandbox_url, store, http=httpx.AsyncClient(timeout=30))
    timed = TimedReplies(services, time_env)
    async with running_workers(time_env.client, services, task_queue, activities=timed):
        started = await time_env.get_current_time()
        handles = [await _start(time_env.client, task_queue, n, video) for n, video in enumerate(videos)]

        # While they run, a waiting run says so: phase `pacing` and until when.
        async def status() -> RunStatus:
            return await handles[0].query(RecipeWorkflow.status)

        waiting = await eventually(
            status, until=lambda s: s.phase == "pacing", within=30, every=0.01, what="a run pacing"
        )
        assert waiting.waiting_for and "tikapi account 'main'" in waiting.waiting_for

        # Time moves a second at a time, each step once no activity runs (see `TimedReplies`).
        with time_env.auto_time_skipping_disabled():
            done = asyncio.gather(*(h.result() for h in handles))
            for _ in range(15 * 60):
                if done.done():
                    break
                await asyncio.wait_for(timed.idle.wait(), 30)
                await time_env.sleep(timedelta(seconds=1))
            results = await asyncio.wait_for(done, 30)
        ended = await time_env.get_current_time()
        pacer: PacerState = await time_env.client.get_workflow_handle(pacer_id("tikapi", "main")).query(
            AccountPacerWorkflow.pacing
        )

    state = await asyncio.to_thread(AdminClient(sandbox_url).state)
    comments = state["tikapi"]["comments"]
    asked = {c["cid"] for c in comments if c["aweme_id"] in videos and not c["reply_to"] and c["author"] != ME}
    replies = [c["reply_to"] for c in comments if c["author"] == ME and c["reply_to"] in asked]
    assert len(asked) >= 36
    assert sorted(replies) == sorted(asked), "a comment got no reply or two"
    assert sum(r.polls for r in results) == 12
    assert EVERY * (len(asked) - 1) <= ended - started <= timedelta(minutes=10)  # simulated

    timed.replies.sort()
    assert len(timed.replies) == len(asked)  # each posted once: no activity posted a second time
    assert {wf for _, _, wf in timed.replies} == {h.id for h in handles}  # all three recipes replied
    gaps = [nxt[0] - prev[1] for prev, nxt in zip(timed.replies, timed.replies[1:], strict=False)]
    assert min(gaps) >= EVERY, f"two replies {min(gaps)} apart"
    # Paced, not serialised far beyond the pace: the slots follow each other closely.
    assert max(gaps) < EVERY + timedelta(seconds=2) or len(timed.replies) < 3
    assert pacer.granted == len(asked) and pacer.holder is None and not pacer.queue
    assert sum(r.counters.pacing_s for r in results) > 0
