"""Sub-recipes: the files a recipe's `run:` steps name, loaded, validated and put in its snapshot.

A `run:` path is relative to the file of the recipe that names it. Each sub-recipe is loaded as
a recipe of its own (its own sub-recipes included), must run once (no trigger), and the step's
literal `with:` values are checked against its inputs. A recipe that reaches itself through its
sub-recipes is refused at the `run:` that closes the cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tikflow.loader.model_errors import label
from tikflow.loader.problems import Document, RecipeError
from workflows.expressions import is_template
from workflows.models import ApprovalStep, Recipe, RunRecipeStep, UntilStep, WaitForStep, WaitStep
from workflows.steps import iter_recipe_steps, step_kind

__all__ = ["ON_FAILURE_REFUSED", "on_failure_problem", "resolve_subrecipes"]

#: Steps that hold a run open: refused in `on_failure` steps (they run after the run failed), and
#: in the sub-recipes those steps run.
ON_FAILURE_REFUSED = (ApprovalStep, WaitForStep, WaitStep, UntilStep)

#: Loads the recipe file at a path, given the files already being loaded above it.
LoadChild = Callable[[Path, tuple[Path, ...]], Recipe]


def resolve_subrecipes(
    doc: Document, recipe: Recipe, file: str, parents: tuple[Path, ...], load_child: LoadChild
) -> Recipe:
    """`recipe` with `recipes` filled from its `run:` steps; problems are recorded in `doc`."""
    here_file = Path(file).resolve() if not file.startswith("<") else None
    above = (*parents, here_file) if here_file is not None else parents
    base = here_file.parent if here_file is not None else Path.cwd()
    recipes: dict[str, Recipe] = {}
    for here, step in iter_recipe_steps(recipe):
        if not isinstance(step, RunRecipeStep):
            continue
        where = (*here, "run")
        child = recipes.get(step.run)
        if child is None:
            target = (base / step.run).resolve()
            if target in above:
                chain = " → ".join(p.name for p in (*above[above.index(target) :], target))
                doc.at(where, f"{label(where)}: sub-recipes form a cycle: {chain}")
                continue
            if not target.is_file():
                doc.at(where, f"{label(where)}: no recipe file {step.run!r} (looked for {target})")
                continue
            try:
                child = load_child(target, above)
            except RecipeError as exc:
                first = exc.problems[0] if exc.problems else "invalid"
                doc.at(where, f"{label(where)}: sub-recipe {step.run!r} is invalid: {first}")
                continue
            if child.trigger is not None:
                doc.at(
                    where, f"{label(where)}: sub-recipe {step.run!r} has a trigger; a sub-recipe runs once"
                )
                continue
            recipes[step.run] = child
        _check_inputs(doc, step, child, here)
        if here[0] == "on_failure":
            problem = on_failure_problem(child)
            if problem is not None:
                doc.at(
                    where,
                    f"{label(where)}: on_failure steps run after the run failed and may not wait: "
                    f"sub-recipe {step.run!r} {problem}",
                )
    return recipe.model_copy(update={"recipes": recipes}) if recipes else recipe


def on_failure_problem(recipe: Recipe, seen: frozenset[str] = frozenset()) -> str | None:
    """Why `recipe` (a sub-recipe run from `on_failure` steps) may not run there, or None.

    It may not wait (`ON_FAILURE_REFUSED`) nor remember items (`new_only`), nor may the
    sub-recipes it runs in turn.
    """
    for here, step in iter_recipe_steps(recipe):
        where = label(here)
        if isinstance(step, ON_FAILURE_REFUSED):
            return f"has `{step_kind(step)}` at its {where}"
        if getattr(step, "new_only", None) is not None:
            return f"has `new_only` at its {where}"
        if isinstance(step, RunRecipeStep) and step.run not in seen:
            child = recipe.recipes.get(step.run)
            inner = on_failure_problem(child, seen | {step.run}) if child is not None else None
            if inner is not None:
                return f"runs {step.run!r}, which {inner}"
    return None


def _check_inputs(doc: Document, step: RunRecipeStep, child: Recipe, here: tuple[str | int, ...]) -> None:
    """The step's `with:` names the child's inputs, gives the required ones, literals of their type."""
    for name, value in step.with_.items():
        where = (*here, "with", name)
        spec = child.inputs.get(name)
        if spec is None:
            known = ", ".join(sorted(child.inputs)) or "none"
            doc.at(
                where, f"{label(where)}: sub-recipe {child.recipe!r} has no input {name!r} (inputs: {known})"
            )
        elif not _varies(value) and value is not None and not spec.accepts(value):
            doc.at(
                where,
                f"{label(where)}: input {name!r} of sub-recipe {child.recipe!r} "
                f"is {spec.type}, not {value!r}",
            )
    for name, spec in child.inputs.items():
        if spec.is_required and name not in step.with_:
            where = (*here, "run")
            doc.at(where, f"{label(where)}: sub-recipe {child.recipe!r} needs the input {name!r} in `with:`")


def _varies(value: Any) -> bool:
    """Whether a `with:` value holds a template (known only when the step runs)."""
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(_varies(v) for v in value.values())
    if isinstance(value, list):
        return any(_varies(v) for v in value)
    return False
