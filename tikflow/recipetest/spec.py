"""The recipe test file: its models, and reading it with every problem located as FILE:LINE:COL.

A test file (`definitions/tests/<recipe>.test.yaml`) names the recipe it tests and holds test
cases; each case gives the inputs, canned results for named steps or actions, optionally an
in-process sandbox seed, and what it expects (the calls and effects made, their count and
arguments, the result). The README's "Recipe tests" section is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from activities.registry import load_actions
from tikflow.loader import LoadedRecipe, RecipeError, load_recipe
from tikflow.loader.files import read_file
from tikflow.loader.load import parse_document
from tikflow.loader.model_errors import report_validation_error
from workflows.models import ApprovalStep, Recipe
from workflows.steps import iter_recipe_steps

__all__ = [
    "TEST_SUFFIXES",
    "AlertExpectation",
    "ApprovalDecision",
    "CannedError",
    "Case",
    "EffectExpectation",
    "Expectations",
    "LoadedTestFile",
    "SandboxSeed",
    "TestFile",
    "is_test_file",
    "load_test_file",
]

#: How a test file's name ends (what `tikflow validate DIR` skips and `tikflow test DIR` picks).
TEST_SUFFIXES = (".test.yaml", ".test.yml")


def is_test_file(path: Path) -> bool:
    """Whether `path` is named as a recipe test file."""
    return path.name.endswith(TEST_SUFFIXES)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SandboxSeed(_Strict):
    """An in-process sandbox answers every call that has no canned result (no network)."""

    seed: int = Field(default=7, description="Seed of the sandbox's generated world.")


class ApprovalDecision(_Strict):
    """The decision a person makes on an `approval:` step, as soon as the run asks."""

    decision: Literal["approve", "reject"] = Field(description="What the person decides.")
    comment: str = Field(default="", max_length=500, description="The comment they write with it.")
    via: Literal["link", "cli"] = Field(
        default="link", description="How it comes: the approval page (`link`) or `tikflow approve` (`cli`)."
    )


class CannedError(_Strict):
    """The error a provider answers a call with, in a canned entry (`error:` instead of `result:`)."""

    type: Literal["ProviderRejected", "CredentialsRejected"] = Field(
        default="ProviderRejected",
        description="The error tree's type (one never retried: the call ends in it at once).",
    )
    code: str | int | None = Field(default=None, description="The provider's error code (`10000`).")
    message: str = Field(default="refused", max_length=500, description="The provider's message.")


class EffectExpectation(_Strict):
    """One side effect the run must make, in order."""

    action: str = Field(description="The action (`tikapi.reply`).")
    step: str | None = Field(default=None, description="The named step it is made at (`replies`).")
    with_: dict[str, Any] = Field(
        default_factory=dict, alias="with", description="Arguments it must have (others may differ)."
    )


class AlertExpectation(_Strict):
    """The one failure alert (`on_failure`) a failing run must send."""

    reason: str | None = Field(default=None, description="Text the alert's reason must contain.")
    message: str | None = Field(default=None, description="Text the alert's message must contain.")


class Expectations(_Strict):
    """What a run must have done."""

    calls: dict[str, int] | None = Field(
        default=None,
        description="Calls made per action, reads and effects (actions not listed: any; a failing "
        "run's failure alert is not counted).",
    )
    effects: list[EffectExpectation] | None = Field(
        default=None,
        description="Exactly these side effects of the steps, in order (absent: not checked; a "
        "failing run's failure alert is not one).",
    )
    any_order: bool = Field(
        default=False, description="The effects may come in any order (parallel branches, concurrency)."
    )
    result: dict[str, Any] | None = Field(
        default=None, description="Parts of the run's result (`outcome`, `polls`, `counters`, `outputs`)."
    )
    error: str | None = Field(default=None, description="The run fails, with a message containing this.")
    alert: AlertExpectation | None = Field(
        default=None, description="The run sends one failure alert, with these parts (absent: not checked)."
    )


class Case(_Strict):
    """One test of a recipe."""

    name: str = Field(min_length=1, description="What the test shows; named in reports.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="The run's inputs.")
    polls: int = Field(default=1, ge=1, le=100, description="Polls of a monitor (other recipes run once).")
    canned: dict[str, dict[str, Any] | list[dict[str, Any]]] = Field(
        default_factory=dict,
        description=(
            "Results by step id or action name (a step id wins; a sub-recipe's step ids "
            "count). A list: entries `{with: {...}, result: {...}}` answer calls with those "
            "arguments (`error: {type: ProviderRejected, code, message}` instead of `result:` "
            "fails them so), the others are used in turn, the last repeating."
        ),
    )
    sandbox: SandboxSeed | None = Field(
        default=None, description="Answer calls without canned results from an in-process sandbox."
    )
    approvals: dict[str, ApprovalDecision] = Field(
        default_factory=dict,
        description=(
            "Decisions by `approval:` step id, delivered when the step asks (as its link would); "
            "an approval step not listed is decided by nobody: it times out."
        ),
    )
    expect: Expectations = Field(default_factory=Expectations, description="What the run must have done.")

    @field_validator("canned")
    @classmethod
    def _lists_not_empty(
        cls, value: dict[str, dict[str, Any] | list[dict[str, Any]]]
    ) -> dict[str, dict[str, Any] | list[dict[str, Any]]]:
        for key, results in value.items():
            if isinstance(results, list) and not results:
                raise ValueError(f"canned results of {key!r} are an empty list")
            for entry in results if isinstance(results, list) else []:
                if "with" in entry and (
                    set(entry) - {"with", "result", "error"}
                    or not isinstance(entry["with"], dict)
                    or {"result", "error"} <= set(entry)
                ):
                    raise ValueError(
                        f"canned results of {key!r}: an entry with `with:` (a mapping of arguments) "
                        "holds only `with:` and `result:` or `error:`"
                    )
                if "with" in entry and "error" in entry:
                    try:
                        CannedError.model_validate(entry["error"])
                    except ValidationError as exc:
                        first = exc.errors(include_url=False)[0]
                        at = ".".join(str(p) for p in first["loc"])
                        raise ValueError(
                            f"canned results of {key!r}: error{'.' + at if at else ''}: {first['msg']}"
                        ) from None
        return value


class TestFile(_Strict):
    """A recipe test file."""

    __test__ = False  # not a pytest class

    recipe: str = Field(description="The recipe file, relative to this file.")
    tests: list[Case] = Field(min_length=1, description="The test cases.")


@dataclass(frozen=True)
class LoadedTestFile:
    """A validated test file, the recipe it tests and where each case starts in the file."""

    __test__ = False

    spec: TestFile
    recipe: LoadedRecipe
    source: str
    lines: tuple[int, ...]


def load_test_file(path: str | Path) -> LoadedTestFile:
    """Read and validate the test file at `path` and the recipe it names.

    Raises:
        RecipeError: every problem of the test file (FILE:LINE:COL), or of the recipe it names.
    """
    name = str(path)
    doc, data = parse_document(read_file(path, name), name)
    if not isinstance(data, dict):
        doc.at((), "a recipe test file is a mapping with `recipe:` and `tests:`")
        raise RecipeError(doc.problems)
    try:
        spec = TestFile.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            report_validation_error(doc, data, error)
        raise RecipeError(doc.problems) from None
    recipe_path = Path(path).parent / spec.recipe
    if not recipe_path.is_file():
        doc.at(("recipe",), f"recipe: no recipe file {str(recipe_path)!r}")
        raise RecipeError(doc.problems)
    loaded = load_recipe(recipe_path)
    names = [case.name for case in spec.tests]
    steps = [step for recipe in _with_subrecipes(loaded.recipe) for _, step in iter_recipe_steps(recipe)]
    step_ids = {step.id for step in steps if step.id}
    approval_ids = {step.id for step in steps if step.id and isinstance(step, ApprovalStep)}
    actions = load_actions()
    for index, case in enumerate(spec.tests):
        if names.index(case.name) != index:
            doc.at(("tests", index, "name"), f"tests[{index}].name: {case.name!r} is used twice")
        unknown = sorted(set(case.inputs) - set(loaded.recipe.inputs))
        for input_name in unknown:
            known = ", ".join(loaded.recipe.inputs) or "none"
            doc.at(
                ("tests", index, "inputs", input_name),
                f"unknown input {input_name!r} (inputs: {known})",
                key=True,
            )
        for key in case.canned:
            if key not in step_ids and key not in actions:
                doc.at(("tests", index, "canned", key), f"canned: {key!r} {_neither(key)}", key=True)
        for key in case.approvals:
            if key not in approval_ids:
                known = ", ".join(sorted(approval_ids)) or "none"
                doc.at(
                    ("tests", index, "approvals", key),
                    f"approvals: {key!r} is not the id of an `approval:` step (approval steps: {known})",
                    key=True,
                )
        for number, effect in enumerate(case.expect.effects or []):
            where = ("tests", index, "expect", "effects", number)
            if effect.action not in actions:
                doc.at((*where, "action"), f"effects[{number}].action: unknown action {effect.action!r}")
            if effect.step is not None and effect.step not in step_ids:
                doc.at((*where, "step"), f"effects[{number}].step: the recipe has no step {effect.step!r}")
        for action_name in case.expect.calls or {}:
            if action_name not in actions:
                doc.at(
                    ("tests", index, "expect", "calls", action_name),
                    f"calls: unknown action {action_name!r}",
                    key=True,
                )
    if doc.problems:
        raise RecipeError(doc.problems)
    lines = tuple(doc.position(("tests", i))[0] for i in range(len(spec.tests)))
    return LoadedTestFile(spec=spec, recipe=loaded, source=name, lines=lines)


def _with_subrecipes(recipe: Recipe) -> list[Recipe]:
    """`recipe` and the sub-recipes in its snapshot, theirs included (their calls are its calls)."""
    found = [recipe]
    for child in recipe.recipes.values():
        found += _with_subrecipes(child)
    return found


def _neither(key: str) -> str:
    if "." in key:
        return "is not an action (see `tikflow actions`)"
    return "is neither a step id of the recipe nor an action"
