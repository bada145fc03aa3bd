"""A new run does new work; one run's retries do not (issue 13, points 2 and 3).

A real Temporal dev server, a worker, the sandbox over HTTP; the assertions read the sandbox's own
state (which posts, publishes and messages exist), not only what the runs returned.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.devserver
ME = "tikflow_demo"

DIGEST = """\
recipe: follower-digest
description: Post the account's follower count to both planners and TikTok.
inputs:
  handle: {type: string, default: tikflow_demo}
steps:
  - id: profile
    call: tikapi.profile
    with: {username: "{{ inputs.handle }}"}
  - id: hl_accounts
    call: highlevel.accounts
  - id: hl_post
    call: highlevel.create_post
    with:
      account_ids: "{{ steps.hl_accounts.items | map(attribute='id') | list }}"
      summary: "@{{ inputs.handle }} has {{ steps.profile.stats.follower_count }} followers"
  - id: sa_accounts
    call: socialapi.accounts
  - id: sa_post
    call: socialapi.create_post
    with:
      account_ids: "{{ steps.sa_accounts.items | map(attribute='id') | list }}"
      text: "Weekly digest is out"
  - id: publish
    call: tiktok.publish_video
    with:
      source: PULL_FROM_URL
      video_url: https://cdn.example.com/v/digest.mp4
      title: Weekly digest
      privacy_level: SELF_ONLY
"""

DIGEST_MONITOR = """\
recipe: follower-digest-monitor
description: Post the follower count every poll.
trigger:
  poll: {every: 1h}
steps:
  - id: profile
    call: tikapi.profile
    with: {username: tikflow_demo}
  - id: accounts
    call: highlevel.accounts
  - id: post
    call: highlevel.create_post
    with:
      account_ids: "{{ steps.accounts.items | map(attribute='id') | list }}"
      summary: "{{ steps.profile.stats.follower_count }} followers"
"""

# Answers every new message of the first conversation with one template, each poll.
AUTOREPLY = """\
recipe: template-autoreply
description: Answer every new direct message of the first conversation.
inputs:
  reply: {type: string, default: "Thanks, the price is in our bio!"}
trigger:
  poll: {every: 1m}
steps:
  - id: conversations
    call: tikapi.conversations
  - id: messages
    call: tikapi.messages
    with:
      conversation_id: "{{ steps.conversations.items[0].conversation_id }}"
      conversation_short_id: "{{ steps.conversations.items[0].conversation_short_id }}"
    new_only: id
  - for_each: "{{ steps.messages.items }}"
    as: message
    if: "{{ 'price' in message.text | lower }}"
    steps:
      - call: tikapi.send_message
        with:
          conversation_id: "{{ steps.conversations.items[0].conversation_id }}"
          conversation_short_id: "{{ steps.conversations.items[0].conversation_short_id }}"
          ticket: "{{ steps.conversations.items[0].ticket }}"
          text: "{{ inputs.reply }}"
"""


def _recipe(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _first_conversation(state: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in state["tikapi"]["conversations"] if not c["request"])


def _messages_in(state: dict[str, Any], conversation_id: str) -> list[dict[str, Any]]:
    return [m for m in state["tikapi"]["messages"] if m["conversation_id"] == conversation_id]


async def test_a_second_run_with_the_same_inputs_posts_again(stack, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "digest", DIGEST)
    workflow_id = f"e2e-digest-{uuid.uuid4()}"  # the same inputs give the same id: both runs use it
    first = await (await stack.run(recipe, workflow_id=workflow_id)).result()
    stack.admin("tick", {"followers": {ME: 5}})
    second = await (await stack.run(recipe, workflow_id=workflow_id)).result()

    state = stack.state()
    followers = first.outputs["profile"]["stats"]["follower_count"]
    assert [p["summary"] for p in state["highlevel"]["posts"]] == [
        f"@{ME} has {followers} followers",
        f"@{ME} has {followers + 5} followers",
    ]
    # The same text twice is two posts too: the second run is new work, not a retry.
    assert [p["text"] for p in state["socialapi"]["posts"]] == ["Weekly digest is out"] * 2
    assert [p["source"] for p in state["tiktok"]["publishes"]] == ["PULL_FROM_URL"] * 2
    for step in ("hl_post", "sa_post", "publish"):
        assert first.outputs[step]["already_done"] is False
        assert second.outputs[step]["already_done"] is False
    assert second.outputs["hl_post"]["post_id"] != first.outputs["hl_post"]["post_id"]
    assert second.outputs["publish"]["publish_id"] != first.outputs["publish"]["publish_id"]
    assert second.counters.effects == first.counters.effects == 3


async def test_two_messages_in_one_conversation_get_two_template_replies(stack, tmp_path: Path) -> None:
    conversation = _first_conversation(stack.state())
    for text in ("what's the price?", "and the price for two?"):
        stack.admin("tick", {"messages": 1, "text": text})
    handle = await stack.run(_recipe(tmp_path, "autoreply", AUTOREPLY), poll_every="1s", max_polls=1)
    result = await handle.result()

    messages = _messages_in(stack.state(), conversation["conversation_id"])
    ours = [m["text"] for m in messages if m["sender"] == ME]
    assert ours == ["Thanks, the price is in our bio!"] * 2
    assert result.counters.effects == 2


async def test_an_auto_reply_does_not_answer_its_own_reply(stack, tmp_path: Path) -> None:
    # The reply quotes the question and says "price": were our own messages listed, each poll
    # would answer the previous poll's reply, forever.
    quoting = AUTOREPLY.replace('text: "{{ inputs.reply }}"', 'text: "Re {{ message.text }}: see our bio"')
    stack.admin("tick", {"messages": 1, "text": "price?"})
    conversation = _first_conversation(stack.state())
    handle = await stack.run(_recipe(tmp_path, "quoting", quoting), poll_every="1s", max_polls=3)
    result = await handle.result()

    messages = _messages_in(stack.state(), conversation["conversation_id"])
    assert [m["text"] for m in messages if m["sender"] == ME] == ["Re price?: see our bio"]
    assert result.counters.effects == 1
    assert result.polls == 3


async def test_a_monitor_stopped_and_started_again_posts_anew(stack, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "digest-monitor", DIGEST_MONITOR)
    workflow_id = f"e2e-digest-monitor-{uuid.uuid4()}"
    first = await (await stack.run(recipe, workflow_id=workflow_id, poll_every="1s", max_polls=1)).result()
    stack.admin("tick", {"followers": {ME: 3}})
    # Started again under the same id: its first poll is poll 0 again, with the same step paths.
    again = await (await stack.run(recipe, workflow_id=workflow_id, poll_every="1s", max_polls=1)).result()

    followers = first.outputs["profile"]["stats"]["follower_count"]
    assert [p["summary"] for p in stack.state()["highlevel"]["posts"]] == [
        f"{followers} followers",
        f"{followers + 3} followers",
    ]
    assert again.outputs["post"]["already_done"] is False


async def test_a_reset_run_does_not_post_again(stack, tmp_path: Path) -> None:
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.enums.v1 import EventType
    from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest

    from workflows.recipe import RunResult

    recipe = _recipe(tmp_path, "digest-once", DIGEST_MONITOR.replace("trigger:\n  poll: {every: 1h}\n", ""))
    handle = await stack.run(recipe)
    first = await handle.result()
    history = await handle.fetch_history()
    first_task = next(
        e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    # An operator's reset replays the same run from its start: what it did is not done again.
    reset = await stack.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=stack.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id, run_id=handle.result_run_id),
            reason="test",
            workflow_task_finish_event_id=first_task,
            request_id=str(uuid.uuid4()),
        )
    )
    again = await stack.client.get_workflow_handle(
        handle.id, run_id=reset.run_id, result_type=RunResult
    ).result()

    assert len(stack.state()["highlevel"]["posts"]) == 1
    assert again.outputs["post"] == {**first.outputs["post"], "already_done": True}
