"""A monitor terminated while an effect was out restarts without doing that effect twice
(dev server, the real sandbox, the real effect ledger).

The window: the provider accepted a HighLevel post and the worker wrote it into the effect
ledger, but the run was terminated before Temporal recorded the activity's result. Its restart
(`tikflow run`, same recipe and inputs) acts on the items the old run had not finished, under the
old run's idempotency keys (`MonitorState.unfinished`), so the post is found in the ledger.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_devserver import tikflow

from activities.contracts import ActionRequest
from activities.credentials import CredentialStore
from activities.registry import Action
from activities.runner import ProviderActivities
from tests.support.emulator import AdminClient, emulator_services, store_emulator_credentials
from tests.support.waiting import eventually
from tikflow.devstack import running_workers
from tikflow.kept_memory import kept_memory
from tikflow.loader import load_recipe_text
from tikflow.runs import start_recipe
from workflows.recipe import RecipeWorkflow, RunStatus

pytestmark = pytest.mark.devserver

ME = "tikflow_demo"

CROSSPOST = """
recipe: {name}
inputs:
  video: {{type: string}}
trigger:
  poll: {{every: 1h}}
steps:
  - id: accounts
    call: highlevel.accounts
  - id: comments
    call: tikapi.comments
    with: {{media_id: "{{{{ inputs.video }}}}", count: 30}}
  - id: posts
    for_each: "{{{{ steps.comments.items }}}}"
    as: comment
    if: "{{{{ comment.author != '{me}' }}}}"
    new_only: cid
    steps:
      - call: highlevel.create_post
        with:
          account_ids: "{{{{ steps.accounts.items | map(attribute='id') | list }}}}"
          summary: "a fan asked: {{{{ comment.cid }}}}"
"""


class HoldFirstPost(ProviderActivities):
    """The production activities; the first HighLevel post, once the provider took it, is held."""

    def __init__(self, services: Any) -> None:
        super().__init__(services)
        self.posted = asyncio.Event()
        self.release = asyncio.Event()
        self.held = False

    async def execute(self, act: Action[Any], request: ActionRequest) -> dict[str, Any]:
        result = await super().execute(act, request)
        if act.name == "highlevel.create_post" and not self.held:
            self.held = True
            self.posted.set()
            await self.release.wait()  # the run is terminated meanwhile: this result is never recorded
        return result


async def test_a_monitor_terminated_mid_post_restarts_without_posting_twice(
    dev_env, sandbox_url: str, tmp_path: Path, task_queue: str
):
    admin = AdminClient(sandbox_url, timeout=10)

    def prepare() -> tuple[CredentialStore, str]:
        admin.admin("reset")
        video = next(v["id"] for v in admin.state()["tikapi"]["videos"] if v["author"] != ME)
        admin.admin("tick", {"comments": 3, "video_id": video, "text": "price?"})
        return store_emulator_credentials(CredentialStore(tmp_path / "c.json", env={}), sandbox_url), str(
            video
        )

    store, video = await asyncio.to_thread(prepare)

    def asked() -> set[str]:
        comments = admin.state()["tikapi"]["comments"]
        return {c["cid"] for c in comments if c["aweme_id"] == video and c["author"] != ME}

    services = emulator_services(sandbox_url, store, http=httpx.AsyncClient(timeout=30))
    activities = HoldFirstPost(services)
    loaded = load_recipe_text(CROSSPOST.format(name=f"xpost-{uuid.uuid4().hex[:8]}", me=ME), "xpost.yaml")
    async with running_workers(dev_env.client, services, task_queue, activities=activities):
        run_id, first = await start_recipe(dev_env.client, loaded, {"video": video}, task_queue=task_queue)
        await asyncio.wait_for(activities.posted.wait(), 30)
        await first.terminate("pulled the plug mid-post")
        activities.release.set()

        kept = await kept_memory(dev_env.client, run_id)
        assert kept is not None
        assert kept.status == "terminated"
        [(step, unfinished)] = kept.unfinished.items()
        assert step == "posts#each"
        # The held one and those not started yet: the restart acts on them again.
        assert set(unfinished) == await asyncio.to_thread(asked)
        shown = await tikflow(dev_env.client, "state", run_id)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[-1] == (
            f"posts#each: {len(unfinished)} items not finished: its restart acts on them again "
            "under the same idempotency keys"
        )

        _, second = await start_recipe(dev_env.client, loaded, {"video": video}, task_queue=task_queue)
        assert second.id == run_id

        async def status() -> RunStatus:
            return await second.query(RecipeWorkflow.status)

        await eventually(status, until=lambda s: s.iteration == 1, within=30, what="the restart's first poll")
        await second.signal(RecipeWorkflow.stop)
        await asyncio.wait_for(second.result(), 30)

    def posts() -> Counter[str]:
        return Counter(p["summary"] for p in admin.state()["highlevel"]["posts"])

    posted = await asyncio.to_thread(posts)
    assert posted == Counter({f"a fan asked: {cid}": 1 for cid in await asyncio.to_thread(asked)})
