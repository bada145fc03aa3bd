"""`workflows.steps`: the one walk over a recipe's step tree (loader, interpreter, graph)."""

from __future__ import annotations

from tikflow.loader import load_recipe_text
from workflows.models import STEP_KINDS, RunRecipeStep
from workflows.steps import iter_steps, nested_steps, run_condition, step_kind

NESTED = """
recipe: nested
steps:
  - id: a
    call: log
    with: {message: a}
  - id: loop
    for_each: "{{ [1, 2] }}"
    if: "{{ item > 1 }}"
    steps:
      - id: b
        if: "{{ item > 1 }}"
        then:
          - {id: c, wait: 1s}
        else:
          - {id: d, set: {x: 1}}
  - id: both
    parallel:
      - - {id: e, fail: stop}
      - - {id: f, notify: hi}
        - {id: g, until: "{{ true }}", call: log, with: {message: g}}
        - {id: h, wait_for: tiktok, key: k}
        - {id: ok, approval: {reply: "hi"}}
  - id: guard
    try:
      - {id: i, fail: stop}
    catch:
      - steps:
          - {id: j, set: {y: 1}}
    finally:
      - {id: k, wait: 1s}
"""


def recipe():
    return load_recipe_text(NESTED, "nested.yaml").recipe


def test_iter_steps_walks_every_step_depth_first_in_file_order_with_its_yaml_path():
    walked = [(path, step.id) for path, step in iter_steps(recipe().steps)]
    assert walked == [
        (("steps", 0), "a"),
        (("steps", 1), "loop"),
        (("steps", 1, "steps", 0), "b"),
        (("steps", 1, "steps", 0, "then", 0), "c"),
        (("steps", 1, "steps", 0, "else", 0), "d"),
        (("steps", 2), "both"),
        (("steps", 2, "parallel", 0, 0), "e"),
        (("steps", 2, "parallel", 1, 0), "f"),
        (("steps", 2, "parallel", 1, 1), "g"),
        (("steps", 2, "parallel", 1, 2), "h"),
        (("steps", 2, "parallel", 1, 3), "ok"),
        (("steps", 3), "guard"),
        (("steps", 3, "try", 0), "i"),
        (("steps", 3, "catch", 0, "steps", 0), "j"),
        (("steps", 3, "finally", 0), "k"),
    ]


def test_nested_steps_and_kinds():
    steps = {step.id: step for _, step in iter_steps(recipe().steps)}
    assert [below for below, _ in nested_steps(steps["b"])] == [("then",), ("else",)]
    assert [below for below, _ in nested_steps(steps["both"])] == [("parallel", 0), ("parallel", 1)]
    assert [below for below, _ in nested_steps(steps["loop"])] == [("steps",)]
    assert [below for below, _ in nested_steps(steps["guard"])] == [
        ("try",),
        ("catch", 0, "steps"),
        ("finally",),
    ]
    assert nested_steps(steps["a"]) == []
    kinds = {step_kind(step) for step in steps.values()}
    # A `run:` step needs a sub-recipe file to load, so it is built here rather than in NESTED.
    sub = RunRecipeStep.model_validate({"run": "./lib/policy.yaml"})
    assert step_kind(sub) == "run"
    assert nested_steps(sub) == []
    assert kinds | {"run"} == set(STEP_KINDS)


def test_run_condition_is_the_if_that_skips_the_step_itself():
    steps = {step.id: step for _, step in iter_steps(recipe().steps)}
    assert run_condition(steps["loop"]) is None  # per item
    assert run_condition(steps["b"]) is None  # picks a branch
    assert run_condition(steps["a"]) is None
    guarded = load_recipe_text(
        'recipe: g\nsteps:\n  - {call: log, with: {message: x}, if: "{{ true }}"}\n', "g.yaml"
    ).recipe.steps[0]
    assert run_condition(guarded) == "{{ true }}"
