"""A run's `new_only` memory: what survives a stop, an upgrade, and the runs of a schedule.

The memory is `SeenIds.ids`: per step, the keys its `new_only` saw (item ids, never secrets),
with a watermark under `<key>#after`. A call step's key is its id (else its static path), a
`for_each`'s is that plus `#each`. How it outlives one run:

- **stop, then run.** A stopped monitor ends with its memory in its result
  (`RunResult.memory`). `tikflow run` of the same recipe and inputs gets the same workflow id
  (`tikflow.runs.run_id_for`); before it starts the new run it reads the result of the last
  closed run of that id (Temporal keeps it for the namespace's retention) and seeds the new run
  with the memory of the steps the (perhaps edited) recipe still has (`carried`). No store beside
  Temporal, and nothing in a running workflow changes: the seed is the new run's input.
  A monitor that gave up carries its memory in its failure's details; one terminated, timed out
  or cancelled has its memory read back from its replayed history (`tikflow.kept_memory`).
- **upgrade.** `tikflow upgrade ID FILE` validates FILE, then signals `upgrade` with the new
  snapshot; the monitor finishes its current poll (or wakes from its sleep), and continues as new
  as the new version with `carried(memory, new recipe)`, its counters and its next poll time.
- **schedules.** Each run a Temporal Schedule starts receives the previous run's result as
  Temporal's last-completion result (`workflow.get_last_completion_result`): a scheduled run
  starts with its memory (behind `SCHEDULE_MEMORY_PATCH`).
- `tikflow state ID` shows it (`summary`), of a closed run what its restart starts from;
  `--reset STEP` forgets one step's (`forget`) of a running run.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from workflows.models import CallStep, ForEachStep, Recipe, Step
from workflows.steps import nested_steps

__all__ = ["StepMemory", "carried", "forget", "memory_keys", "step_of", "summary"]


class StepMemory(BaseModel):
    """What `tikflow state` shows of one step's memory."""

    step: str = Field(description="The step's memory key (its id, else its path; `#each` for a for_each).")
    count: int = Field(description="Keys remembered.")
    oldest: str | None = Field(default=None, description="The oldest key remembered (forgotten first).")
    newest: str | None = Field(default=None, description="The newest key remembered.")
    watermark: str | None = Field(default=None, description="The greatest `after:` value seen (JSON).")


def memory_keys(recipe: Recipe) -> set[str]:
    """The memory keys the interpreter uses for `recipe`'s `new_only` steps (watermarks included)."""
    keys: set[str] = set()
    _walk(recipe.steps, "steps", keys)
    return keys


def _walk(steps: Sequence[Step], path: str, keys: set[str]) -> None:
    # The interpreter's paths: `steps.<id or index>`, `.then`/`.else`, `.parallel<i>`; a for_each's
    # items add only an item key, which a static path drops.
    for index, step in enumerate(steps):
        here = f"{path}.{step.id or index}"
        if isinstance(step, CallStep | ForEachStep) and step.new_only:
            base = (step.id or here) + ("#each" if isinstance(step, ForEachStep) else "")
            keys.update({base, f"{base}#after"})
        for below, body in nested_steps(step):
            if below == ("steps",):
                _walk(body, here, keys)
            else:
                _walk(body, f"{here}.{''.join(str(part) for part in below)}", keys)


def carried(memory: dict[str, list[str]], recipe: Recipe) -> dict[str, list[str]]:
    """The part of `memory` that `recipe` still has steps for (the rest is dropped)."""
    keep = memory_keys(recipe)
    return {key: list(values) for key, values in memory.items() if key in keep}


def step_of(key: str) -> str:
    """The step a memory key belongs to (`comments#each#after` → `comments`)."""
    return key.split("#")[0]


def forget(memory: dict[str, dict[str, None]], step: str) -> list[str]:
    """Drop every memory key of `step` (by id or path) from `memory`; the keys dropped."""
    gone = [key for key in memory if step_of(key) == step]
    for key in gone:
        del memory[key]
    return gone


def summary(memory: dict[str, dict[str, None]] | dict[str, list[str]]) -> list[StepMemory]:
    """Per step: how many keys, the oldest and newest, and its watermark."""
    shown: dict[str, StepMemory] = {}
    for key in sorted(memory):
        values = list(memory[key])
        if key.endswith("#after"):
            base = key.removesuffix("#after")
            entry = shown.setdefault(base, StepMemory(step=base, count=0))
            entry.watermark = values[0] if values else None
            continue
        entry = shown.setdefault(key, StepMemory(step=key, count=0))
        entry.count = len(values)
        entry.oldest = values[0] if values else None
        entry.newest = values[-1] if values else None
    # A for_each without `new_only` leaves an empty entry: nothing to show.
    return [entry for entry in shown.values() if entry.count or entry.watermark is not None]
