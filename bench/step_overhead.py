"""Step overhead: a recipe of 200 sequential `call` steps, against the same calls without tikflow.

Figures (ms per step, wall clock from start to result):
- recipe: `RecipeWorkflow` running 200 `tikapi.key_info` steps;
- baseline (a): a hand-written workflow making the same 200 activity calls (`bench.baseline`),
  on the same worker, same activity, same sandbox;
- floor (b): a plain asyncio loop of 200 httpx GETs of the same endpoint (no Temporal at all);
- action: the same loop through the action handler (credentials, rate-limit tracker, decoding),
  which shows what the action layer costs apart from Temporal.

Where a step's time goes (`phases_ms`, medians from the last run's history, server timestamps):
workflow task dispatch (scheduled to started), workflow task (started to completed: the worker
running the workflow code), activity dispatch (scheduled to started, through the provider's task
queue) and the activity itself (started to completed: the HTTP call and the action around it).

Goal (issue 6): recipe / baseline (a) <= 1.10. Runs alternate (recipe, baseline, recipe, ...) and
the median of each is reported, so a slow moment of the machine does not land on one side only.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import httpx

from bench.baseline import SequentialBaseline
from bench.common import Engine, engine, machine, run_main

STEPS = 200
ACTION = "tikapi.key_info"
GOAL = 1.10


def recipe_text(steps: int) -> str:
    lines = [
        "recipe: bench-step-overhead",
        f"description: {steps} sequential calls of {ACTION}.",
        "steps:",
    ]
    for i in range(steps):
        lines += [f"  - id: s{i}", f"    call: {ACTION}"]
    return "\n".join(lines) + "\n"


PHASES = {
    ("workflow_task_scheduled", "workflow_task_started"): "workflow_task_dispatch",
    ("workflow_task_started", "workflow_task_completed"): "workflow_task",
    ("activity_task_scheduled", "activity_task_started"): "activity_dispatch",
    ("activity_task_started", "activity_task_completed"): "activity",
}


def phases_ms(history: Any) -> dict[str, float]:
    """Median milliseconds of each phase of a step, from consecutive events of a history."""
    spans: dict[str, list[float]] = {name: [] for name in PHASES.values()}
    previous: tuple[str, float] | None = None
    for event in history.events:
        kind = str(event.WhichOneof("attributes")).removesuffix("_event_attributes")
        at = event.event_time.ToDatetime().timestamp()
        if previous is not None and (previous[0], kind) in PHASES:
            spans[PHASES[previous[0], kind]].append((at - previous[1]) * 1000)
        previous = (kind, at)
    return {name: round(statistics.median(v), 2) if v else 0.0 for name, v in spans.items()}


#: The last history of each kind, for `phases_ms`.
LAST_HISTORY: dict[str, Any] = {}


async def run_recipe(eng: Engine, steps: int) -> tuple[float, int]:
    """Seconds from start to result, and the history length."""
    from tikflow.loader import load_recipe_text
    from tikflow.runs import start_recipe

    loaded = load_recipe_text(recipe_text(steps), "bench-step-overhead.yaml")
    start = time.perf_counter()
    _, handle = await start_recipe(
        eng.client, loaded, {}, task_queue=eng.task_queue, workflow_id=f"so-{uuid.uuid4().hex[:8]}"
    )
    assert handle is not None
    result = await handle.result()
    elapsed = time.perf_counter() - start
    assert result.counters.calls == steps, result.counters
    history = await handle.fetch_history()
    LAST_HISTORY["recipe"] = history
    return elapsed, len(history.events)


async def run_baseline(eng: Engine, steps: int) -> tuple[float, int]:
    start = time.perf_counter()
    handle = await eng.client.start_workflow(
        SequentialBaseline.run,
        args=[ACTION, {}, steps],
        id=f"so-base-{uuid.uuid4().hex[:8]}",
        task_queue=eng.task_queue,
    )
    assert await handle.result() == steps
    elapsed = time.perf_counter() - start
    history = await handle.fetch_history()
    LAST_HISTORY["baseline"] = history
    return elapsed, len(history.events)


async def run_floor(eng: Engine, steps: int) -> float:
    """Plain httpx, one pooled client, the same request the action sends."""
    creds = eng.services.credentials.get("tikapi", "main", required=("api_key",))
    url = eng.services.settings.base_url("tikapi") + "/key/info"
    async with httpx.AsyncClient(headers={"X-API-KEY": creds["api_key"]}) as client:
        await client.get(url)  # connect outside the timing, as the worker's pool is warm too
        start = time.perf_counter()
        for _ in range(steps):
            response = await client.get(url)
            response.raise_for_status()
            response.json()
        return time.perf_counter() - start


async def run_action(eng: Engine, steps: int) -> float:
    """The action handler in a loop: tikflow's provider layer without Temporal."""
    from activities.registry import ActionContext, load_actions

    act = load_actions()[ACTION]
    params = act.input_model.model_validate({})
    start = time.perf_counter()
    for i in range(steps):
        ctx = ActionContext(services=eng.services, account="main", idempotency_key=f"a{i}", action=ACTION)
        await act.handler(ctx, params)
    return time.perf_counter() - start


async def main(quick: bool = False) -> dict[str, Any]:
    rounds = 2 if quick else 5
    async with engine(extra_workflows=[SequentialBaseline]) as eng:
        # Warm-up: the first run of each pays for imports and the sandbox's first requests.
        await run_recipe(eng, 5)
        await run_baseline(eng, 5)
        recipe_s, baseline_s, floor_s, action_s = [], [], [], []
        events: dict[str, int] = {}
        for _ in range(rounds):
            seconds, events["recipe"] = await run_recipe(eng, STEPS)
            recipe_s.append(seconds)
            seconds, events["baseline"] = await run_baseline(eng, STEPS)
            baseline_s.append(seconds)
            floor_s.append(await run_floor(eng, STEPS))
            action_s.append(await run_action(eng, STEPS))

    def ms_per_step(values: list[float]) -> float:
        return round(statistics.median(values) / STEPS * 1000, 2)

    recipe_ms, baseline_ms = ms_per_step(recipe_s), ms_per_step(baseline_s)
    ratio = round(recipe_ms / baseline_ms, 3)
    return {
        "benchmark": "step_overhead",
        "quick": quick,
        "steps": STEPS,
        "rounds": rounds,
        "action": ACTION,
        "recipe_ms_per_step": recipe_ms,
        "baseline_workflow_ms_per_step": baseline_ms,
        "floor_httpx_ms_per_step": ms_per_step(floor_s),
        "action_handler_ms_per_step": ms_per_step(action_s),
        "ratio_recipe_vs_workflow": ratio,
        "ratio_recipe_vs_httpx": round(recipe_ms / ms_per_step(floor_s), 1),
        "history_events": events,
        "phases_ms": {kind: phases_ms(history) for kind, history in LAST_HISTORY.items()},
        "runs_s": {
            "recipe": [round(s, 3) for s in recipe_s],
            "baseline": [round(s, 3) for s in baseline_s],
        },
        "goal": f"recipe/workflow <= {GOAL}",
        "goal_met": ratio <= GOAL,
        "machine": machine(),
    }


if __name__ == "__main__":
    run_main(main)
