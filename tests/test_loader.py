"""The loader: every valid fixture loads; every invalid fixture fails with exactly the problems it declares.

Each file in `tests/recipes/invalid/` starts with one or more `# expect: LINE:COL: message` lines; the
loader must report exactly that many problems, at those positions, each message containing the text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tikflow.loader import MAX_FILE_BYTES, Problem, RecipeError, load_recipe, load_recipe_text, resolve_inputs
from workflows.models import (
    CallStep,
    FailStep,
    ForEachStep,
    IfStep,
    NotifyStep,
    ParallelStep,
    RunRecipeStep,
    SetStep,
    TryStep,
    UntilStep,
    WaitStep,
)

RECIPES = Path(__file__).parent / "recipes"
VALID = sorted((RECIPES / "valid").glob("*.yaml"))
INVALID = sorted((RECIPES / "invalid").glob("*.yaml"))
EXPECT = re.compile(rb"^# expect: (\d+):(\d+): (.+)$")


def expectations(path: Path) -> list[tuple[int, int, str]]:
    """The `# expect:` lines at the top of a fixture (read as bytes: some fixtures are not UTF-8)."""
    found = []
    for line in path.read_bytes().splitlines():
        match = EXPECT.match(line)
        if not match:
            break
        found.append((int(match[1]), int(match[2]), match[3].decode()))
    return found


def _step_kinds(steps, kinds: set[type]) -> set[type]:
    for step in steps:
        kinds.add(type(step))
        if isinstance(step, ForEachStep):
            _step_kinds(step.steps, kinds)
        elif isinstance(step, IfStep):
            _step_kinds(step.then + step.else_, kinds)
        elif isinstance(step, ParallelStep):
            for branch in step.parallel:
                _step_kinds(branch, kinds)
    return kinds


def test_fixture_directories_are_not_empty():
    assert len(VALID) >= 4
    assert len(INVALID) >= 20
    for path in INVALID:
        assert expectations(path), f"{path.name} has no `# expect: LINE:COL: message` line"


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_recipe_loads(path: Path):
    loaded = load_recipe(path)
    assert loaded.source == str(path)
    assert loaded.recipe.steps


def test_valid_fixtures_cover_every_step_kind_and_trigger():
    recipes = [load_recipe(path).recipe for path in VALID]
    kinds: set[type] = set()
    for recipe in recipes:
        _step_kinds(recipe.steps, kinds)
    assert kinds == {
        CallStep,
        UntilStep,
        ForEachStep,
        IfStep,
        WaitStep,
        SetStep,
        ParallelStep,
        FailStep,
        NotifyStep,
        TryStep,
        RunRecipeStep,
    }
    triggers = {"none" if r.trigger is None else "poll" if r.trigger.poll else "schedule" for r in recipes}
    assert triggers == {"none", "poll", "schedule"}


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_recipe_reports_exactly_its_expected_problems(path: Path):
    expected = expectations(path)
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    problems = caught.value.problems
    rendered = "\n".join(map(str, problems))
    assert len(problems) == len(expected), rendered
    for problem, (line, column, message) in zip(problems, expected, strict=True):
        assert problem.file == str(path)
        assert (problem.line, problem.column) == (line, column), rendered
        assert message in problem.message, rendered
        assert str(problem) == f"{path}:{problem.line}:{problem.column}: {problem.message}"


def test_file_over_one_megabyte_is_refused_before_parsing(tmp_path: Path):
    path = tmp_path / "huge.yaml"
    filler = "# padding\n" * (MAX_FILE_BYTES // 10 + 1)
    path.write_text("recipe: huge\nsteps:\n  - call: log\n    with: {message: hi}\n" + filler)
    assert path.stat().st_size > MAX_FILE_BYTES
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.column) == (str(path), 1, 1)
    assert f"a recipe may be at most {MAX_FILE_BYTES}" in problem.message


def test_oversized_text_is_refused_too():
    raw = b"recipe: huge\n" + b"#" * (MAX_FILE_BYTES + 1)
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(raw, "big.yaml")
    assert "a recipe may be at most" in caught.value.problems[0].message


def test_missing_file_is_a_problem_not_an_exception(tmp_path: Path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    [problem] = caught.value.problems
    assert problem.file == str(path)
    assert "cannot read file" in problem.message


def test_self_referencing_alias_is_rejected():
    text = "recipe: loop\nsteps: &s\n  - parallel: [*s]\n"
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(text, "loop.yaml")
    assert any("refers to itself" in p.message for p in caught.value.problems)


def test_second_yaml_document_is_rejected_at_its_start():
    text = "recipe: a\nsteps: [{call: log, with: {message: hi}}]\n---\nrecipe: b\n"
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(text, "two.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.message) == (4, "one recipe per file (found a second YAML document)")


def test_top_level_list_is_not_a_recipe():
    with pytest.raises(RecipeError) as caught:
        load_recipe_text("- call: log\n", "list.yaml")
    assert "a recipe is a mapping" in caught.value.problems[0].message


def test_expression_problems_are_reported_alongside_model_errors():
    text = 'recipe: BadName\nsteps:\n  - call: log\n    with: {message: "{{ x.__class__ }}"}\n'
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(text, "two-kinds.yaml")
    messages = [(p.line, p.message) for p in caught.value.problems]
    assert messages[0] == (1, "recipe: recipe name must be lowercase letters, digits and '-'")
    assert messages[1][0] == 4
    assert "access to '__class__' is not allowed" in messages[1][1]


def test_step_ids_are_visible_inside_later_nested_steps_and_after_parallel():
    text = """
recipe: scopes
steps:
  - parallel:
      - - {id: a, call: log, with: {message: a}}
      - - {id: b, call: log, with: {message: b}}
  - for_each: "{{ [steps.a.logged, steps.b.logged] }}"
    as: word
    steps:
      - {id: inner, call: log, with: {message: "{{ word }}"}}
      - {call: log, with: {message: "{{ steps.inner.logged }} {{ word }}"}}
"""
    loaded = load_recipe_text(text, "scopes.yaml")
    assert isinstance(loaded.recipe.steps[1], ForEachStep)


def test_loop_variable_is_unknown_outside_its_loop():
    text = """
recipe: scopes
steps:
  - for_each: "{{ [1, 2] }}"
    as: word
    steps: [{call: log, with: {message: "{{ word }}"}}]
  - {call: log, with: {message: "{{ word }}"}}
"""
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(text, "scopes.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (7, 33)
    assert "unknown name 'word'" in problem.message


def test_templated_action_input_is_checked_after_rendering_not_at_load():
    text = 'recipe: t\nsteps:\n  - {call: tikapi.hashtag_posts, with: {name: cats, count: "{{ 3 }}"}}\n'
    assert load_recipe_text(text).recipe.steps[0].with_ == {"name": "cats", "count": "{{ 3 }}"}


def test_literal_action_input_of_wrong_type_is_rejected():
    text = "recipe: t\nsteps:\n  - {call: tikapi.hashtag_posts, with: {name: cats, count: many}}\n"
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(text, "t.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (3, 60)
    assert problem.message.startswith("with.count:")


def test_input_default_of_wrong_type_is_rejected():
    text = (
        "recipe: t\ninputs:\n  n: {type: integer, default: ten}\nsteps: [{call: log, with: {message: hi}}]\n"
    )
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(text, "t.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.message) == (3, "default of input 'n' is not an integer")


def test_secret_inputs_are_refused():
    text = "recipe: t\ninputs:\n  key: {secret: true}\nsteps: [{call: log, with: {message: hi}}]\n"
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(text, "t.yaml")
    assert caught.value.problems[0].line == 3


def test_resolve_inputs_applies_defaults_and_converts_command_line_text():
    recipe = load_recipe(RECIPES / "valid" / "run-once.yaml").recipe
    assert resolve_inputs(recipe, {"who": "ann"}) == {"who": "ann", "loud": False}
    assert resolve_inputs(recipe, {"who": "ann", "loud": "yes"}) == {"who": "ann", "loud": True}


def test_resolve_inputs_reports_missing_unknown_and_mistyped_inputs_together():
    recipe = load_recipe(RECIPES / "valid" / "run-once.yaml").recipe
    with pytest.raises(RecipeError) as caught:
        resolve_inputs(recipe, {"loud": "perhaps", "colour": "red"}, "run-once.yaml")
    messages = sorted(p.message for p in caught.value.problems)
    assert messages == [
        "input 'loud': not a boolean: 'perhaps'",
        "missing required input 'who' (give it with --input who=...)",
        "unknown input 'colour' (inputs: who, loud)",
    ]
    assert all(p.file == "run-once.yaml" for p in caught.value.problems)


def test_resolve_inputs_parses_lists_from_commas_or_json():
    recipe = load_recipe(RECIPES / "valid" / "monitor.yaml").recipe
    assert resolve_inputs(recipe, {"keywords": "a,b"})["keywords"] == ["a", "b"]
    assert resolve_inputs(recipe, {"keywords": '["x y"]'})["keywords"] == ["x y"]


def test_problems_sort_in_file_order():
    problems = [Problem("f", 3, 1, "c"), Problem("f", 1, 5, "a"), Problem("f", 1, 2, "b")]
    assert [p.message for p in RecipeError(problems).problems] == ["b", "a", "c"]
