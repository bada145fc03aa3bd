"""An account's pacer lives on the namespace's pacer queue, so it outlives the workers of the
queue whose run first paced the account (dev server, the real sandbox)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from activities.contracts import DEFAULT_PACER_QUEUE
from activities.credentials import CredentialStore
from tests.support.emulator import emulator_services
from tikflow.devstack import running_workers
from tikflow.loader import load_recipe_text
from tikflow.runs import start_recipe
from workflows.pacing import pacer_id

pytestmark = pytest.mark.devserver

ME = "tikflow_demo"

REPLY = """
recipe: {name}
inputs:
  video: {{type: string}}
  comment: {{type: string}}
steps:
  - call: tikapi.reply
    pace: {{every: 1s}}
    with:
      media_id: "{{{{ inputs.video }}}}"
      reply_comment_id: "{{{{ inputs.comment }}}}"
      text: thanks from {name}
"""


async def _start(stack: Any, name: str, queue: str, video: str, comment: str) -> Any:
    loaded = load_recipe_text(REPLY.format(name=name), f"{name}.yaml")
    _, handle = await start_recipe(
        stack.client,
        loaded,
        {"video": video, "comment": comment},
        task_queue=queue,
        workflow_id=f"{name}-{uuid.uuid4()}",
    )
    return handle


async def test_a_recipe_on_another_queue_is_paced_after_the_first_queues_workers_are_gone(stack):
    def prepare() -> tuple[str, list[str]]:
        video = next(v["id"] for v in stack.state()["tikapi"]["videos"] if v["author"] != ME)
        stack.admin("tick", {"comments": 2, "video_id": video, "text": "price?"})
        comments = stack.state()["tikapi"]["comments"]
        return str(video), [c["cid"] for c in comments if c["aweme_id"] == video and c["author"] != ME][-2:]

    video, (first_comment, second_comment) = await asyncio.to_thread(prepare)
    pacer = stack.client.get_workflow_handle(pacer_id("tikapi", "main"))
    try:  # one an earlier test left: this test's first run must start it
        if (await pacer.describe()).status == WorkflowExecutionStatus.RUNNING:
            await pacer.terminate("a fresh pacer for this test")
    except RPCError:
        pass

    # Queue A: its own workers; the first recipe paces the account, then A's workers are gone.
    queue_a = f"tq-a-{uuid.uuid4()}"
    services = emulator_services(
        stack.sandbox_url, CredentialStore(stack.credentials, env={}), http=httpx.AsyncClient(timeout=30)
    )
    # A client of its own, as another worker process has: one client serves a queue once.
    other = await Client.connect(
        stack.client.service_client.config.target_host, data_converter=stack.client.data_converter
    )
    async with running_workers(other, services, queue_a):
        first = await _start(stack, "first", queue_a, video, first_comment)
        assert (await asyncio.wait_for(first.result(), 60)).outcome == "completed"
    described = await pacer.describe()
    assert described.task_queue == DEFAULT_PACER_QUEUE
    assert described.status == WorkflowExecutionStatus.RUNNING  # it holds the account's last call

    # Queue B (the stack's): its recipe of the same account still gets its slot.
    second = await _start(stack, "second", stack.task_queue, video, second_comment)
    assert (await asyncio.wait_for(second.result(), 60)).outcome == "completed"

    def replies() -> Counter[str]:
        comments = stack.state()["tikapi"]["comments"]
        return Counter(c["reply_to"] for c in comments if c["author"] == ME and c["aweme_id"] == video)

    assert await asyncio.to_thread(replies) == Counter({first_comment: 1, second_comment: 1})
