"""A run's inputs: defaults applied, required ones enforced, command-line text converted to types."""

from __future__ import annotations

from typing import Any

from tikflow.loader.problems import Problem, RecipeError
from workflows.models import Recipe, input_value_problem

__all__ = ["resolve_inputs"]


def resolve_inputs(recipe: Recipe, given: dict[str, Any], file: str = "<recipe>") -> dict[str, Any]:
    """Apply defaults, enforce required inputs and types; returns the final inputs.

    Raises:
        RecipeError: an unknown, missing or mistyped input (located at the recipe's `inputs:`).
    """
    problems: list[str] = []
    result: dict[str, Any] = {}
    for name in given:
        if name not in recipe.inputs:
            known = ", ".join(recipe.inputs) or "none"
            problems.append(f"unknown input {name!r} (inputs: {known})")
    for name, spec in recipe.inputs.items():
        if name in given:
            value = given[name]
            if isinstance(value, str) and spec.type != "string":
                try:
                    value = spec.coerce(value)
                except ValueError as exc:
                    problems.append(f"input {name!r}: {exc}")
                    continue
            if not spec.accepts(value):
                problems.append(f"input {name!r} must be a {spec.type}")
                continue
            problem = input_value_problem(value)
            if problem:
                problems.append(f"input {name!r}: {problem}")
                continue
            result[name] = value
        elif spec.is_required:
            problems.append(f"missing required input {name!r} (give it with --input {name}=...)")
        else:
            result[name] = spec.default
    if problems:
        raise RecipeError([Problem(file, 1, 1, p) for p in problems])
    return result
