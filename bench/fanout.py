"""Fan-out: reply to 1,000 comments with `for_each` (concurrency 50), against a hand-written workflow.

Figures (replies per second, wall clock from start to result):
- recipe: `RecipeWorkflow` running one `for_each` over 1,000 comments with `concurrency: 50`, one
  `tikapi.reply` per comment (the reply text and ids rendered from the item by expressions);
- baseline: `bench.baseline.FanoutBaseline`, the same 1,000 `tikapi.reply` activities with the same
  requests, at most 50 at once (`asyncio.gather` behind a semaphore), on the same worker.

Every run replies to 1,000 fresh comments (made through `/_admin/tick`), so neither side finds its
replies already posted. Runs alternate and the median of each side is reported.

Goal (issue 6): the recipe's replies per second within 1.15x of the baseline's.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from bench.baseline import FanoutBaseline
from bench.common import Engine, engine, machine, run_main

COMMENTS = 1000
CONCURRENCY = 50
TEXT = "Thanks! The price is in our bio."
GOAL = 1.15

RECIPE = f"""\
recipe: bench-fanout
description: Reply to every given comment, {CONCURRENCY} at a time.
inputs:
  comments: {{type: list, description: The comments to answer.}}
steps:
  - id: replies
    for_each: "{{{{ inputs.comments }}}}"
    as: comment
    concurrency: {CONCURRENCY}
    steps:
      - call: tikapi.reply
        with:
          media_id: "{{{{ comment.aweme_id }}}}"
          reply_comment_id: "{{{{ comment.cid }}}}"
          text: "{TEXT}"
"""


def fresh_comments(eng: Engine, count: int) -> list[dict[str, Any]]:
    """`count` new comments on the sandbox's videos, as the recipe's items (id, video, text)."""
    made = eng.emulator.admin("tick", {"comments": count})["comments"]
    return [{"cid": c["cid"], "aweme_id": c["aweme_id"], "text": c["text"]} for c in made]


async def run_recipe(eng: Engine, comments: list[dict[str, Any]]) -> tuple[float, int]:
    """Seconds from start to result, and the history length."""
    from tikflow.loader import load_recipe_text
    from tikflow.runs import start_recipe

    loaded = load_recipe_text(RECIPE, "bench-fanout.yaml")
    start = time.perf_counter()
    _, handle = await start_recipe(
        eng.client,
        loaded,
        {"comments": comments},
        task_queue=eng.task_queue,
        workflow_id=f"fo-{uuid.uuid4().hex[:8]}",
    )
    assert handle is not None
    result = await handle.result()
    elapsed = time.perf_counter() - start
    assert result.counters.calls == len(comments), result.counters
    assert result.counters.effects == len(comments), "every reply must be posted, not found done"
    history = await handle.fetch_history()
    return elapsed, len(history.events)


async def run_baseline(eng: Engine, comments: list[dict[str, Any]]) -> tuple[float, int]:
    items = [{"media_id": c["aweme_id"], "reply_comment_id": c["cid"], "text": TEXT} for c in comments]
    start = time.perf_counter()
    handle = await eng.client.start_workflow(
        FanoutBaseline.run,
        args=["tikapi.reply", items, CONCURRENCY],
        id=f"fo-base-{uuid.uuid4().hex[:8]}",
        task_queue=eng.task_queue,
    )
    assert await handle.result() == len(items)
    elapsed = time.perf_counter() - start
    history = await handle.fetch_history()
    return elapsed, len(history.events)


async def main(quick: bool = False) -> dict[str, Any]:
    rounds = 1 if quick else 3
    async with engine(extra_workflows=[FanoutBaseline]) as eng:
        # Warm-up: imports, the sandbox's first requests, the workflow caches.
        await run_recipe(eng, fresh_comments(eng, CONCURRENCY))
        await run_baseline(eng, fresh_comments(eng, CONCURRENCY))
        recipe_s: list[float] = []
        baseline_s: list[float] = []
        events: dict[str, int] = {}
        for i in range(rounds):
            # Alternate which side goes first, so neither always meets a busier sandbox.
            order = ("recipe", "baseline") if i % 2 == 0 else ("baseline", "recipe")
            for side in order:
                comments = fresh_comments(eng, COMMENTS)
                if side == "recipe":
                    seconds, events["recipe"] = await run_recipe(eng, comments)
                    recipe_s.append(seconds)
                else:
                    seconds, events["baseline"] = await run_baseline(eng, comments)
                    baseline_s.append(seconds)
        posted = eng.emulator.state()["requests"].get("tikapi POST /user/comment", 0)

    recipe_rps = round(COMMENTS / statistics.median(recipe_s), 1)
    baseline_rps = round(COMMENTS / statistics.median(baseline_s), 1)
    ratio = round(baseline_rps / recipe_rps, 3)
    return {
        "benchmark": "fanout",
        "quick": quick,
        "comments": COMMENTS,
        "concurrency": CONCURRENCY,
        "rounds": rounds,
        "recipe_replies_per_s": recipe_rps,
        "baseline_replies_per_s": baseline_rps,
        "ratio_baseline_vs_recipe": ratio,
        "replies_posted": posted,
        "history_events": events,
        "runs_s": {
            "recipe": [round(s, 2) for s in recipe_s],
            "baseline": [round(s, 2) for s in baseline_s],
        },
        "goal": f"baseline/recipe replies per second <= {GOAL}",
        "goal_met": ratio <= GOAL,
        "machine": machine(),
    }


if __name__ == "__main__":
    run_main(main)
