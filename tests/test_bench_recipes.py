"""The benchmarks' recipes load as the benchmarks load them (a broken one costs a whole bench run)."""

from __future__ import annotations

from bench.monitors import EVERY_S, RECIPE_FILE, recipe_text
from tikflow.loader import load_recipe_text


def test_the_monitors_bench_loads_the_shipped_recipe_with_its_sub_recipe() -> None:
    loaded = load_recipe_text(recipe_text(), str(RECIPE_FILE))
    assert loaded.recipe.trigger is not None
    assert loaded.recipe.trigger.poll is not None
    assert loaded.recipe.trigger.poll.every == f"{EVERY_S}s"
    activities = recipe_text().replace(
        f"poll: {{every: {EVERY_S}s}}", f"poll: {{every: {EVERY_S}s, reads: activity}}"
    )
    assert load_recipe_text(activities, str(RECIPE_FILE)).recipe.trigger.poll.reads == "activity"  # type: ignore[union-attr]


def test_the_memory_bench_loads_the_shipped_recipe_hourly() -> None:
    text = recipe_text().replace("every: 30s}", "every: 1h, reads: local}")
    assert load_recipe_text(text, str(RECIPE_FILE)).recipe.trigger.poll.every == "1h"  # type: ignore[union-attr]
