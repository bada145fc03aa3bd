"""`new_only` memory that survives: stop → run, upgrade in place, a schedule's runs, state/--reset."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from test_recipe_workflow import Actions, polls_of, recipe, status_when, workers

from activities.contracts import ActionRequest
from tikflow.runs import build_run, start_recipe
from workflows.recipe import RecipeWorkflow, RunResult

MONITOR = """
recipe: answer
trigger: {{poll: {{every: 1m}}}}
steps:
  - id: {step}
    call: tikapi.comments
    with: {{media_id: v1}}
    new_only: {{key: cid, after: "{{{{ item.t }}}}"}}
  - for_each: "{{{{ steps.{step}.items }}}}"
    as: comment
    steps:
      - call: tikapi.reply
        with: {{media_id: v1, reply_comment_id: "{{{{ comment.cid }}}}", text: hi}}
"""


def replied(actions: Actions) -> list[str]:
    return [c.params["reply_comment_id"] for c in actions.of("tikapi.reply")]


def answered(request: ActionRequest) -> dict[str, Any]:
    return {"replied": True}


async def test_stop_then_run_keeps_the_memory_no_comment_answered_twice(time_env, task_queue):
    listing = polls_of(
        [{"cid": "a", "t": 1}, {"cid": "b", "t": 2}],
        [{"cid": "a", "t": 1}, {"cid": "b", "t": 2}, {"cid": "c", "t": 3}],
    )
    actions = Actions(tikapi__comments=listing, tikapi__reply=answered)
    loaded = recipe(MONITOR.format(step="comments"))
    async with workers(time_env.client, task_queue, actions):
        run_id, first = await start_recipe(
            time_env.client, loaded, {}, task_queue=task_queue, search_attributes=False
        )
        assert first is not None
        await status_when(first, lambda s: s.iteration == 1)
        await first.signal(RecipeWorkflow.stop)
        ended: RunResult = await first.result()
        assert ended.memory["comments"] == ["a", "b"]
        assert ended.memory["comments#after"] == ["2"]
        again_id, again = await start_recipe(
            time_env.client, loaded, {}, task_queue=task_queue, search_attributes=False
        )
        assert again_id == run_id
        assert again is not None
        await status_when(again, lambda s: s.iteration == 1)
        shown = await again.query(RecipeWorkflow.memory)
        await again.signal(RecipeWorkflow.stop)
        await again.result()
    assert replied(actions) == ["a", "b", "c"]
    by_step = {m.step: m for m in shown}
    assert (by_step["comments"].count, by_step["comments"].oldest, by_step["comments"].newest) == (
        3,
        "a",
        "c",
    )
    assert by_step["comments"].watermark == "3"


async def test_upgrade_keeps_the_memory_of_kept_steps_and_drops_a_removed_steps(time_env, task_queue):
    listing = polls_of(
        [{"cid": "a", "t": 1}],
        [{"cid": "a", "t": 1}, {"cid": "b", "t": 2}],
        [{"cid": "a", "t": 1}, {"cid": "b", "t": 2}, {"cid": "c", "t": 3}],
    )
    actions = Actions(
        tikapi__comments=listing, tikapi__reply=answered, tikapi__hashtag_posts=polls_of([{"id": "x"}])
    )
    extra = "  - id: extra\n    call: tikapi.hashtag_posts\n    with: {name: cats}\n    new_only: id\n"
    two_steps = MONITOR.format(step="comments").replace("steps:\n", "steps:\n" + extra, 1)
    async with workers(time_env.client, task_queue, actions):
        handle = await time_env.client.start_workflow(
            RecipeWorkflow.run,
            build_run(recipe(two_steps), {}),
            id=f"wf-{task_queue}",
            task_queue=task_queue,
            task_timeout=timedelta(seconds=10),
        )
        await status_when(handle, lambda s: s.iteration == 1)
        assert {m.step for m in await handle.query(RecipeWorkflow.memory)} == {"comments", "extra"}
        # The new version lists under another step id too: `comments` is kept, `extra` dropped.
        await handle.signal(RecipeWorkflow.upgrade, build_run(recipe(MONITOR.format(step="comments")), {}))
        latest = time_env.client.get_workflow_handle_for(
            RecipeWorkflow.run, handle.id
        )  # the run it continued as
        await time_env.sleep(61)
        await status_when(latest, lambda s: s.iteration == 2)
        kept = {m.step: m for m in await latest.query(RecipeWorkflow.memory)}
        await latest.signal(RecipeWorkflow.stop)
        result = await asyncio.wait_for(latest.result(), 60)
    assert set(kept) == {"comments"}
    assert replied(actions) == ["a", "b"]
    assert len(actions.of("tikapi.hashtag_posts")) == 1
    assert result.polls == 2


async def test_a_schedules_runs_share_the_memory(time_env, task_queue):
    # The time-skipping server has no Schedules; a cron workflow gets the last-completion result the
    # same way (tests/test_memory_cli.py checks a real Schedule on the dev server).
    listing = polls_of(
        [{"cid": "a", "t": 1}],
        [{"cid": "a", "t": 1}, {"cid": "b", "t": 2}],
    )
    actions = Actions(tikapi__comments=listing, tikapi__reply=answered)
    text = MONITOR.format(step="comments").replace(
        "trigger: {poll: {every: 1m}}", 'trigger: {schedule: {cron: "0 9 * * *"}}'
    )
    async with workers(time_env.client, task_queue, actions):
        handle = await time_env.client.start_workflow(
            RecipeWorkflow.run,
            build_run(recipe(text), {}),
            id=f"wf-{task_queue}",
            task_queue=task_queue,
            cron_schedule="* * * * *",
        )
        while len(actions.of("tikapi.comments")) < 3:
            await time_env.sleep(60)
        await handle.terminate()
    assert replied(actions) == ["a", "b"]


async def test_reset_forgets_one_steps_memory(time_env, task_queue):
    listing = polls_of([{"cid": "a", "t": 1}])
    actions = Actions(tikapi__comments=listing, tikapi__reply=answered)
    async with workers(time_env.client, task_queue, actions):
        handle = await time_env.client.start_workflow(
            RecipeWorkflow.run,
            build_run(recipe(MONITOR.format(step="comments")), {}),
            id=f"wf-{task_queue}",
            task_queue=task_queue,
        )
        await status_when(handle, lambda s: s.iteration == 1)
        await handle.signal(RecipeWorkflow.forget, "comments")
        assert await handle.query(RecipeWorkflow.memory) == []
        await time_env.sleep(61)
        await status_when(handle, lambda s: s.iteration == 2)
        await handle.signal(RecipeWorkflow.stop)
        await handle.result()
    assert replied(actions) == ["a", "a"]
