"""Walking a recipe's step tree: each step's kind, the step lists it holds, every step in order.

The loader (ids, checks), the interpreter (what a step's `if` means) and `tikflow graph` read the
tree through these, so a new step kind that holds steps is taught to them here, once. What a kind
*does* differs per reader and stays a `match` there.

Paths are the YAML's own: `("steps", 1, "then", 0)` is the first step of the `then` of the
recipe's second step, `("steps", 0, "parallel", 1, 0)` the first step of a `parallel`'s second
branch (the paths the loader reports problems at).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from workflows.models import STEP_MODEL_KINDS, ForEachStep, IfStep, ParallelStep, Recipe, Step, TryStep

__all__ = ["StepPath", "iter_recipe_steps", "iter_steps", "nested_steps", "run_condition", "step_kind"]

#: Where a step (or a list of steps) sits in the recipe: keys and indexes from the top.
StepPath = tuple[str | int, ...]


def step_kind(step: Step) -> str:
    """The key that names the step's kind in YAML (`call`, `until`, `for_each`, `if`, …)."""
    return STEP_MODEL_KINDS[type(step)]


def nested_steps(step: Step) -> list[tuple[StepPath, list[Step]]]:
    """The step lists `step` holds, each with its path below the step, in file order.

    `for_each` holds `steps`; `if` its `then` and `else`; `parallel` one list per branch; `try`
    its `try`, each `catch`'s `steps` and its `finally`; the other kinds hold none.
    """
    if isinstance(step, TryStep):
        return [
            (("try",), step.try_),
            *((("catch", index, "steps"), clause.steps) for index, clause in enumerate(step.catch)),
            (("finally",), step.finally_),
        ]
    if isinstance(step, ForEachStep):
        return [(("steps",), step.steps)]
    if isinstance(step, IfStep):
        return [(("then",), step.then), (("else",), step.else_)]
    if isinstance(step, ParallelStep):
        return [(("parallel", index), branch) for index, branch in enumerate(step.parallel)]
    return []


def iter_steps(steps: Sequence[Step], path: StepPath = ("steps",)) -> Iterator[tuple[StepPath, Step]]:
    """Every step of `steps` and of the lists they hold, depth first in file order, with its path.

    Iterative: a recipe nested as deep as its file allows costs no stack.
    """
    pending: list[tuple[StepPath, Step]] = [((*path, i), s) for i, s in enumerate(steps)]
    pending.reverse()
    while pending:
        here, step = pending.pop()
        yield here, step
        children = [
            ((*here, *below, index), child)
            for below, body in nested_steps(step)
            for index, child in enumerate(body)
        ]
        pending.extend(reversed(children))


def iter_recipe_steps(recipe: Recipe) -> Iterator[tuple[StepPath, Step]]:
    """Every step of the recipe: its `steps`, then its `on_failure.steps`, each with its path."""
    yield from iter_steps(recipe.steps)
    if recipe.on_failure is not None:
        yield from iter_steps(recipe.on_failure.steps, ("on_failure", "steps"))


def run_condition(step: Step) -> str | None:
    """The `if` that decides whether `step` runs at all, or None.

    A `for_each`'s `if` is tested per item, and an `if` step's picks its branch: neither skips the
    step itself.
    """
    if isinstance(step, ForEachStep | IfStep):
        return None
    return step.when
