"""`tikflow run FILE --dry-run`: run a recipe once with every side effect held back.

The run happens in this process, on Temporal's time-skipping test server (waits and `until`
intervals cost nothing), with a worker whose activities are in dry-run mode
(`activities.dryrun`): reads go to the configured providers (or the sandbox) for real, every
side-effecting call is recorded instead of sent. A monitor does one poll; a scheduled recipe runs
once. What comes back is the plan: each effect in plain words, with the counts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.dryrun import DryRun, PlannedEffect
from activities.registry import Services
from tikflow.devstack import find_binary, running_workers
from tikflow.loader import LoadedRecipe
from tikflow.runs import start_recipe
from workflows.models import PollTrigger, Recipe, Trigger
from workflows.state import RunResult

__all__ = ["DryRunReport", "dry_run", "dry_run_recipe", "format_plan"]


@dataclass
class DryRunReport:
    """What a dry run found.

    Attributes:
        recipe: The recipe's name.
        source: Its file.
        effects: The side effects held back, in the order the run reached them.
        reads: Reads sent for real, per action.
        reads_after_effects: Of those, reads sent after an effect was held back (they saw the
            world without it: a real run may find more to do there).
        result: The run's result, None when it failed.
        error: Why it failed, None when it completed.
    """

    recipe: str
    source: str
    effects: list[PlannedEffect] = field(default_factory=list)
    reads: dict[str, int] = field(default_factory=dict)
    reads_after_effects: int = 0
    result: RunResult | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-able data (`tikflow run --dry-run --json`)."""
        return {
            "recipe": self.recipe,
            "source": self.source,
            "effects": [
                {
                    "action": e.action,
                    "path": e.path,
                    "account": e.account,
                    "params": e.params,
                    "description": e.description,
                }
                for e in self.effects
            ],
            "reads": self.reads,
            "reads_after_effects": self.reads_after_effects,
            "error": self.error,
        }


def dry_run_recipe(recipe: Recipe) -> Recipe:
    """`recipe` as a dry run runs it: a monitor does one poll, any other trigger runs it once."""
    trigger = recipe.trigger
    if trigger is not None and trigger.poll is not None:
        once = Trigger(poll=PollTrigger(every=trigger.poll.every, max_polls=1))
        return recipe.model_copy(update={"trigger": once})
    return recipe.model_copy(update={"trigger": None})


async def dry_run(loaded: LoadedRecipe, given: dict[str, Any], services: Services) -> DryRunReport:
    """Run `loaded` once with every side effect held back; reads go through `services` for real.

    Raises:
        RecipeError: the inputs are wrong.
    """
    plan = DryRun()
    once = LoadedRecipe(recipe=dry_run_recipe(loaded.recipe), source=loaded.source)
    report = DryRunReport(recipe=loaded.recipe.recipe, source=loaded.source)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    queue = f"tikflow-dry-run-{uuid.uuid4()}"
    try:
        async with running_workers(env.client, services, queue, dry_run=plan):
            _, handle = await start_recipe(
                env.client, once, given, task_queue=queue, workflow_id=queue, search_attributes=False
            )
            assert handle is not None  # the trigger is a poll or none: a workflow, not a schedule
            try:
                report.result = await handle.result()
            except WorkflowFailureError as exc:
                report.error = getattr(exc.cause, "message", None) or str(exc.cause)
    finally:
        await env.shutdown()
    report.effects = list(plan.effects)
    report.reads = dict(sorted(plan.reads.items()))
    report.reads_after_effects = plan.reads_after_effects
    return report


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def format_plan(report: DryRunReport) -> list[str]:
    """The plan in plain words, one line each: what the recipe would have done, with the counts."""
    lines = [f"dry run of {report.recipe} ({report.source}): nothing was sent"]
    reads = sum(report.reads.values())
    lines.append(f"  read for real: {reads} call(s)" + (f" ({_counted(report.reads)})" if reads else ""))
    if not report.effects:
        lines.append("  would do nothing that changes the outside world")
    else:
        lines.append(f"  would do {len(report.effects)} thing(s):")
        for number, effect in enumerate(report.effects, 1):
            lines.append(f"    {number}. {effect.description}   [{effect.path}, as {effect.account}]")
        counts: dict[str, int] = {}
        for effect in report.effects:
            counts[effect.action] = counts.get(effect.action, 0) + 1
        lines.append(f"  effects: {len(report.effects)} ({_counted(counts)})")
    if report.reads_after_effects:
        lines.append(
            f"  note: {report.reads_after_effects} read(s) came after a held-back effect and saw the "
            "world without it; a real run may find more to do there"
        )
    if report.error is not None:
        lines.append(f"  the run failed: {report.error}")
    return lines
