"""Hostile expressions, by class: refused at load with FILE:LINE:COL, and at run time a failed step.

Each class is generated at growing sizes: compile failures (long literals, deep nesting, long filter
chains), size and CPU bombs (`~` doubling, `tojson(indent=…)`, `replace`/`join`/`wordwrap`/`center`/
`format`/`*` to gigabytes, nested lists, integer squaring, `range`, recursion), and `_`-attributes
hidden in filter arguments. Constant bombs must fail `tikflow validate`; the same bombs sized by an
input must fail the *step* on a real Temporal server, never a workflow task (Temporal's deadlock
detector fails a task that runs 2 s, and a task that raises anything but a step failure retries
forever).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.contracts import ActionRequest
from tikflow.loader import load_recipe_text
from tikflow.runs import build_run
from workflows.expressions import (
    MAX_INT_DIGITS,
    MAX_SOURCE_CHARS,
    ExpressionError,
    check_constant,
    check_source,
    evaluate,
)
from workflows.recipe import RecipeWorkflow, workflow_runner

TOO_LARGE = "result too large"
NESTED = "nested too deeply"
WORK = "does too much work"
DIGITS = "number too large"
PRIVATE = "is not allowed (names starting with _ are private)"

# -- compile failures -----------------------------------------------------------------------------

COMPILE_CASES: list[tuple[str, str]] = [
    *[("{{ 1" + "0" * n + " }}", "number literal too long") for n in (MAX_INT_DIGITS, 5000, 10_000)],
    *[("{{ x" + " | upper" * n + " }}", NESTED) for n in (41, 100, 150, 1000, 2000)],
    *[("{{ 1" + " + 1" * n + " }}", NESTED) for n in (41, 200, 2000)],
    *[("{{ " + "[" * n + "]" * n + " }}", NESTED) for n in (41, 200, 1000)],
    *[("{{ " + "(" * n + "1" + ")" * n + " }}", NESTED) for n in (500, 5000)],
    *[("{% for a in x %}" * n + "{% endfor %}" * n, NESTED) for n in (9, 21, 25, 60)],
    *[("{% if x %}" * n + "{% endif %}" * n, NESTED) for n in (9, 30)],
    *[("{% macro m() %}" * n + "{% endmacro %}" * n, NESTED) for n in (9, 30)],
    ("{{x.a.b}}" * 1100, "too large (over"),
    ("{{ '" + "a" * MAX_SOURCE_CHARS + "' }}", "longer than"),
]


@pytest.mark.parametrize(("source", "message"), COMPILE_CASES, ids=lambda v: str(v)[:40])
def test_every_compile_failure_is_an_expression_error(source: str, message: str):
    with pytest.raises(ExpressionError, match=re.escape(message)) as caught:
        check_source(source)
    assert "\n" not in str(caught.value)


# -- bombs: the same template, sized by a constant at load and by an input at run time -------------

#: (template with `N` for the size, sizes, message). Each runs as a constant and with `inputs.n`.
BOMBS: list[tuple[str, tuple[int, ...], str]] = [
    (
        "{% macro d(s, k) %}{% if k %}{{ d(s ~ s, k - 1) }}{% endif %}{% endmacro %}{{ d('ab', N) }}",
        (20, 30, 60),
        TOO_LARGE,
    ),
    ("{{ [1, 2] | tojson(indent=N) }}", (10**6, 10**9, 10**12), TOO_LARGE),
    ("{{ ([[1, 2, 3] * 100] * 100) | tojson(indent=N) }}", (1000, 10**5), TOO_LARGE),
    ("{{ ('a' * 1000) | replace('a', 'b' * N) }}", (10**4, 10**6, 10**9), TOO_LARGE),
    ("{{ ('ab' * 500000) | replace('a', 'x' * N) }}", (2, 10, 1000), TOO_LARGE),
    ("{{ (['b' * 1000] * N) | join }}", (2000, 10**5, 10**6), TOO_LARGE),
    ("{{ (['b'] * 1000) | join('x' * N) }}", (2000, 10**6), TOO_LARGE),
    ("{{ ('a b ' * 1000) | wordwrap(1, wrapstring='x' * N) }}", (1000, 10**5, 10**6), TOO_LARGE),
    ("{{ 'a' | center(N) }}", (10**7, 10**10), TOO_LARGE),
    ("{{ 'a'.ljust(N) }}", (10**7, 10**10), TOO_LARGE),
    ("{{ ('\\t' * 1000).expandtabs(N) }}", (10**4, 10**7), TOO_LARGE),
    ("{{ ('a\\n' * 1000) | indent(N) }}", (10**4, 10**7), TOO_LARGE),
    ("{{ ('%' ~ N ~ 's') | format('a') }}", (10**7, 10**10), TOO_LARGE),
    ("{{ ('%(a)' ~ N ~ 's') % {'a': 1} }}", (10**7, 999999999), TOO_LARGE),
    ("{{ ('%(a)' ~ N ~ 's') | format(a=1) }}", (10**7, 999999999), TOO_LARGE),
    ("{{ ('{:>' ~ N ~ '}').format(1) }}", (10**7, 10**10), TOO_LARGE),
    ("{{ ('{0}' * 1000).format('x' * N) }}", (10**4, 10**6), TOO_LARGE),
    ("{{ 'a' * N }}", (10**7, 10**10), TOO_LARGE),
    ("{{ ('x' * 1000) ~ ('y' * 1000) * N }}", (10**4, 10**6), TOO_LARGE),
    ("{{ [[[0] * N] * N] * N }}", (200, 1000), TOO_LARGE),
    ("{{ ([[0] * N] * N) | length }}", (3000, 10**5), TOO_LARGE),
    ("{{ (1).to_bytes(N, 'big') }}", (10**7, 10**9), TOO_LARGE),
    ("{{ 'aaaa'.translate({97: 'x' * N}) }}", (10**6,), TOO_LARGE),
    (
        "{% macro sq(x, k) %}{% if k %}{{ sq(x * x, k - 1) }}{% endif %}{% endmacro %}{{ sq(3 ** 900, N) }}",
        (4, 10, 30),
        DIGITS,
    ),
    ("{{ 10 ** N }}", (5000, 10**6), "exponent too large"),
    ("{{ range(N) | list }}", (10**5, 10**9), "range() of more than"),
    ("{{ [1] | slice(N) | list }}", (10**5, 10**9), "more than 10000 groups"),
    (
        "{% for a in range(N) %}{% for b in range(N) %}{% endfor %}{% endfor %}",
        (1001, 10000),
        "loops ran more than",
    ),
    (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(N) }}",
        (20, 25, 40),
        WORK,
    ),
    ("{% for i in range(N) %}{% set y = (' ' * 1000000)[::1] %}{% endfor %}", (1000, 10000), WORK),
    (
        "{% set l = range(10000) | list %}{% for i in range(N) %}{% if l == l[:] %}{% endif %}{% endfor %}",
        (2000, 10000),
        WORK,
    ),
    (
        "{% set s = 'ab ' * 300000 %}{% for i in range(N) %}{% set t = s | title %}{% endfor %}",
        (100, 10000),
        WORK,
    ),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(N) }}", (0,), "recursion too deep"),
]

CONSTANT_BOMBS = [(t.replace("N", str(n)), m) for t, sizes, m in BOMBS for n in sizes]
INPUT_BOMBS = [(t.replace("N", "inputs.n"), n, m) for t, sizes, m in BOMBS for n in sizes]


@pytest.mark.parametrize(("source", "message"), CONSTANT_BOMBS, ids=lambda v: str(v)[:50])
def test_constant_bombs_are_refused_at_load_with_the_run_time_budgets(source: str, message: str):
    check_source(source)
    with pytest.raises(ExpressionError, match=re.escape(message)):
        check_constant(source)


@pytest.mark.parametrize(("source", "n", "message"), INPUT_BOMBS, ids=lambda v: str(v)[:50])
def test_bombs_sized_by_an_input_fail_with_an_expression_error(source: str, n: int, message: str):
    check_source(source)
    with pytest.raises(ExpressionError, match=re.escape(message)):
        evaluate(source, {"inputs": {"n": n}})


def test_within_the_bounds_every_guarded_operation_still_works():
    assert len(evaluate("{{ 'a' * 1000000 }}", {})) == 1_000_000
    rows = [[i] * 10 for i in range(20_000)]
    # `sum(start=[])` joins in one pass (Python's sum copies the list at every item).
    assert evaluate("{{ rows | sum(start=[]) | length }}", {"rows": rows}) == 200_000
    assert evaluate("{{ [1, [2]] | tojson(indent=2) }}", {}) == "[\n  1,\n  [\n    2\n  ]\n]"
    assert evaluate("{{ '%(a)5s|%%5s' % {'a': 1} }}", {}) == "    1|%5s"
    assert evaluate("{{ (['ab'] * 3) | join('-') }}", {}) == "ab-ab-ab"
    assert evaluate("{{ 'a b c' | wordwrap(1, wrapstring='/') }}", {}) == "a/b/c"
    assert evaluate("{{ (3 ** 900 * 3 ** 900) % 10 }}", {}) == (3**1800) % 10
    assert evaluate("{{ [[0] * 3] * 2 }}", {}) == [[0, 0, 0], [0, 0, 0]]
    assert evaluate("{{ 'x' + ' | upper' * 0 }}", {}) == "x"
    assert evaluate("{{ x" + " | upper" * 30 + " }}", {"x": "a"}) == "A"
    assert evaluate("{% for a in x %}" * 8 + "{{ a }}" + "{% endfor %}" * 8, {"x": [1]}) == "1"


def test_native_results_are_plain_data_a_workflow_can_store():
    assert evaluate("{{ [1, 2] | map('string') }}", {}) == ["1", "2"]
    assert evaluate("{{ range(3) }}", {}) == [0, 1, 2]
    assert evaluate("{{ {'a': 1}.keys() }}", {}) == ["a"]
    with pytest.raises(ExpressionError, match="result is a complex"):
        evaluate("{{ (-8) ** 0.5 }}", {})
    with pytest.raises(ExpressionError, match="result is a function"):
        evaluate("{{ [1, range] }}", {})


# -- `_`-attributes in filter arguments ----------------------------------------------------------

PRIVATE_FORMS = [
    "{{{{ x | attr('{name}') }}}}",
    "{{{{ [x] | map(attribute='{name}') | list }}}}",
    "{{{{ [x] | map('attr', '{name}') | list }}}}",
    "{{{{ [x] | selectattr('{name}') | list }}}}",
    "{{{{ [x] | rejectattr('{name}') | list }}}}",
    "{{{{ [x] | groupby('{name}') }}}}",
    "{{{{ [x] | sort(attribute='{name}') }}}}",
    "{{{{ [x] | sort(false, false, '{name}') }}}}",
    "{{{{ [x] | unique(attribute='{name}') | list }}}}",
    "{{{{ [x] | min(attribute='{name}') }}}}",
    "{{{{ [x] | max(attribute='{name}') }}}}",
    "{{{{ [x] | sum(attribute='{name}') }}}}",
    "{{{{ [x] | join(',', attribute='{name}') }}}}",
    "{{{{ [x] | join(',', 'a.{name}') }}}}",
    "{{{{ '{{0.{name}}}'.format(x) }}}}",
    "{{{{ '{{0.a.{name}}}'.format(x) }}}}",
    "{{{{ '{{0[{name}]}}'.format(x) }}}}",
    "{{{{ '{{a.{name}}}'.format_map({{'a': x}}) }}}}",
    "{{{{ x | _{name} }}}}",
]
PRIVATE_NAMES = ["__class__", "__globals__", "__init__", "_private", "__mro__"]


@pytest.mark.parametrize("form", PRIVATE_FORMS)
@pytest.mark.parametrize("name", PRIVATE_NAMES)
def test_underscore_attributes_in_filter_arguments_are_refused_at_load(form: str, name: str):
    with pytest.raises(ExpressionError, match=re.escape(PRIVATE)):
        check_source(form.format(name=name))


@pytest.mark.parametrize("form", PRIVATE_FORMS[:-1])
def test_underscore_attributes_in_filter_arguments_are_refused_at_run_time(form: str):
    # At run time the name can come from an input.
    source = form.format(name="NAME").replace("'NAME'", "inputs.name")
    # A format string built around it: `('{0.' ~ inputs.name ~ '}').format(x)`.
    source = re.sub(r"('[^']*)NAME([^']*')", r"(\1' ~ inputs.name ~ '\2)", source)
    with pytest.raises(ExpressionError, match="unsafe"):
        evaluate(source, {"x": "a", "inputs": {"name": "__class__"}})


# -- `tikflow validate`: one line per bad recipe, FILE:LINE:COL, exit 2 ---------------------------


def _recipe(source: str) -> str:
    quoted = source.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'recipe: hostile\ninputs: {{x: {{type: string, default: a}}}}\nsteps:\n  - set: {{s: "{quoted}"}}\n'
    )


def test_tikflow_validate_refuses_every_generated_expression_in_one_line(tmp_path: Path):
    cases = {
        **{
            f"compile-{i:03d}.yaml": (re.sub(r"\bx\b", "inputs.x", s), m)
            for i, (s, m) in enumerate(COMPILE_CASES)
        },
        **{f"bomb-{i:03d}.yaml": case for i, case in enumerate(CONSTANT_BOMBS)},
        **{
            f"private-{i:03d}.yaml": (re.sub(r"\bx\b", "inputs.x", form.format(name=name)), PRIVATE)
            for i, (form, name) in enumerate((f, n) for f in PRIVATE_FORMS for n in PRIVATE_NAMES[:2])
        },
    }
    for name, (source, _) in cases.items():
        (tmp_path / name).write_text(_recipe(source))
    done = subprocess.run(
        [sys.executable, "-m", "tikflow.cli", "validate", "-q", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,  # a guard against a hang, not a timing assertion
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert lines[-1] == f"{len(cases)} of {len(cases)} recipe(s) invalid"
    problems = {Path(line.split(":", 1)[0]).name: line for line in lines[:-1]}
    assert len(problems) == len(lines) - 1 == len(cases)  # one line per recipe
    for name, (_, message) in cases.items():
        assert problems[name].startswith(f"{tmp_path / name}:4:14: bad expression: "), problems[name]
        assert message in problems[name]


# -- at run time, on a real Temporal server: the step fails, the workflow task never does ----------

RUN_TIME_BOMBS = [
    # One of each kind, at its largest size.
    (t.replace("N", "inputs.n"), sizes[-1], m)
    for t, sizes, m in BOMBS
]


async def test_bombs_sized_by_inputs_fail_the_step_on_a_real_server(dev_env, task_queue):
    async def run(index: int, source: str, n: int) -> str:
        text = _recipe(source).replace("{x: {type: string, default: a}}", "{n: {type: integer}}")
        handle = await dev_env.client.start_workflow(
            RecipeWorkflow.run,
            build_run(load_recipe_text(text, f"bomb-{index}.yaml"), {"n": n}),
            id=f"{task_queue}-{index}",
            task_queue=task_queue,
            # A guard: a stuck run would retry its failing task until this ends it.
            execution_timeout=timedelta(seconds=120),
        )
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
        failed_tasks = [
            e
            async for e in handle.fetch_history_events()
            if e.HasField("workflow_task_failed_event_attributes")
        ]
        assert failed_tasks == [], source
        cause = caught.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.non_retryable
        return cause.message

    alerts: dict[str, list[str]] = {}

    @activity.defn(name="notify.send")
    async def notify(request: ActionRequest) -> dict[str, Any]:
        alerts.setdefault(activity.info().workflow_id or "", []).append(request.params["data"]["reason"])
        return {"sent": True}

    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[RecipeWorkflow],
        workflow_runner=workflow_runner(),
        activities=[notify],
    ):
        messages = []
        for index, (source, n, _) in enumerate(RUN_TIME_BOMBS):
            messages.append(await asyncio.wait_for(run(index, source, n), 150))
    for index, (message, (source, _, expected)) in enumerate(zip(messages, RUN_TIME_BOMBS, strict=True)):
        assert message.startswith("steps.0: expression failed: "), (source, message)
        assert expected in message, (source, message)
        # Each failed run sent its one failure alert, with that reason.
        assert alerts[f"{task_queue}-{index}"] == [message], source
