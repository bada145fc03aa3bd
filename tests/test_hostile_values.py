"""Values the models used to accept and Temporal (or the run) then refused, generated at their limits.

Every duration and number field of a recipe is tried at its limits (below and at its minimum, at
and above its maximum, zero, negative, overflowing, NaN, infinity, a boolean, a fraction, text);
time zones and cron expressions as Temporal reads them; nesting depth; for_each names and
constants; account names and webhook URLs. Each refusal must come from the real
`tikflow validate` as exactly one `FILE:LINE:COL: message` line at the value, exit 2, no
traceback, quickly and in bounded memory; each value at a limit that is allowed must load.
"""

from __future__ import annotations

import math
import random
import time
import tracemalloc
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.test_cli import UNREACHABLE, assert_no_traceback, tikflow
from tikflow.loader import (
    MAX_DEPTH,
    MAX_STEP_NESTING,
    RecipeError,
    load_recipe,
    load_recipe_text,
    resolve_inputs,
)

MARK = "@V@"
CALL = "  - call: log\n    with: {message: hi}\n"
INNER_CALL = "      - call: log\n        with: {message: hi}\n"


@dataclass(frozen=True)
class Case:
    """One generated recipe: `template` with `value` at `MARK`; refused (with `fragment`) or not."""

    field: str
    template: str
    value: str
    refused: bool
    fragment: str = ""

    @property
    def text(self) -> str:
        return self.template.replace(MARK, self.value)

    @property
    def position(self) -> tuple[int, int]:
        before = self.template[: self.template.index(MARK)]
        return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1

    @property
    def slug(self) -> str:
        return f"{self.field}={self.value[:20]}"


# ---------------------------------------------------------------------------------------------
# Durations: (template, minimum) per field; every field's maximum is 365d.

DURATION_FIELDS: dict[str, tuple[str, str]] = {
    "timeout": (f"recipe: limits\ntimeout: {MARK}\nsteps:\n{CALL}", "1s"),
    "reauth_deadline": (f"recipe: limits\nreauth_deadline: {MARK}\nsteps:\n{CALL}", "1m"),
    "trigger.poll.every": (f"recipe: limits\ntrigger:\n  poll: {{every: {MARK}}}\nsteps:\n{CALL}", "10s"),
    "steps[0].timeout": (f"recipe: limits\nsteps:\n{CALL}    timeout: {MARK}\n", "1s"),
    "steps[0].wait": (f"recipe: limits\nsteps:\n  - wait: {MARK}\n", "0s"),
    "until.every": (f'recipe: limits\nsteps:\n{CALL}    until: "{{{{ true }}}}"\n    every: {MARK}\n', "1s"),
    "until.deadline": (
        f'recipe: limits\nsteps:\n{CALL}    until: "{{{{ true }}}}"\n    deadline: {MARK}\n',
        "1s",
    ),
    # initial's maximum needs a max_interval at least as long; max_interval's minimum a short initial.
    "retry.initial": (
        f"recipe: limits\nretry: {{max_interval: 365d, initial: {MARK}}}\nsteps:\n{CALL}",
        "100ms",
    ),
    "retry.max_interval": (
        f"recipe: limits\nretry: {{initial: 100ms, max_interval: {MARK}}}\nsteps:\n{CALL}",
        "100ms",
    ),
    "retry.max_duration": (f"recipe: limits\nretry: {{max_duration: {MARK}}}\nsteps:\n{CALL}", "1s"),
}

_JUST_BELOW = {"1s": "999ms", "1m": "59s", "10s": "9.9s", "100ms": "99ms"}


def duration_cases() -> list[Case]:
    cases: list[Case] = []
    for field, (template, minimum) in DURATION_FIELDS.items():
        cases += [Case(field, template, minimum, False), Case(field, template, "365d", False)]
        refused = {
            "366d": "too long",
            "99999999999d": "too long",
            "1" * 400 + "s": "too long",  # a float of infinity seconds
            "8760.5h": "too long",
            "-1s": "not a duration",
            "1e3s": "not a duration",
            "often": "not a duration",
            '""': "not a duration",
            ".nan": "not a number a run can keep",
            ".inf": "not a number a run can keep",
            "true": "valid string",
            "1.5": "valid string",
            "30": "valid string",
        }
        if minimum != "0s":
            refused["0s"] = "too often" if field == "trigger.poll.every" else "too short"
            refused[_JUST_BELOW[minimum]] = "too often" if field == "trigger.poll.every" else "too short"
        cases += [Case(field, template, value, True, fragment) for value, fragment in refused.items()]
    return cases


# ---------------------------------------------------------------------------------------------
# Numbers: (template, minimum, maximum, whole) per field.

EACH = '  - for_each: "{{ [1, 2] }}"\n'
NUMBER_FIELDS: dict[str, tuple[str, int, int, bool]] = {
    "retry.max_attempts": (
        f"recipe: limits\nsteps:\n{CALL}    retry: {{max_attempts: {MARK}}}\n",
        1,
        10_000,
        True,
    ),
    "retry.backoff": (f"recipe: limits\nsteps:\n{CALL}    retry: {{backoff: {MARK}}}\n", 1, 100, False),
    "trigger.poll.max_polls": (
        f"recipe: limits\ntrigger:\n  poll: {{every: 1m, max_polls: {MARK}}}\nsteps:\n{CALL}",
        1,
        1_000_000_000,
        True,
    ),
    "dedupe_limit": (f"recipe: limits\ndedupe_limit: {MARK}\nsteps:\n{CALL}", 10, 100_000, True),
    "concurrency": (
        f"recipe: limits\nsteps:\n{EACH}    concurrency: {MARK}\n    steps:\n{INNER_CALL}",
        1,
        100,
        True,
    ),
    "limit": (
        f"recipe: limits\nsteps:\n{EACH}    limit: {MARK}\n    steps:\n{INNER_CALL}",
        0,
        1_000_000,
        True,
    ),
}


def number_cases() -> list[Case]:
    cases: list[Case] = []
    for field, (template, low, high, whole) in NUMBER_FIELDS.items():
        cases += [Case(field, template, str(low), False), Case(field, template, str(high), False)]
        refused = [
            str(low - 1),
            str(high + 1),
            "-1",
            str(2**63),  # beyond int64
            str(10**30),
            ".nan",
            ".inf",
            "-.inf",
            "true",
            "false",
            "'3'",
            "[2]",
        ]
        if whole:
            refused += ["2.5", "2.0"]
        else:
            cases.append(Case(field, template, "1.5", False))
        cases += [Case(field, template, value, True) for value in dict.fromkeys(refused)]
    # An expression is a limit too, checked when it is constant.
    template = NUMBER_FIELDS["limit"][0]
    cases += [
        Case("limit", template, '"{{ 2 }}"', False),
        Case("limit", template, '"{{ -2 }}"', True, "whole number"),
        Case("limit", template, '"five"', True, "whole number"),
    ]
    return cases


def run_validate(tmp_path: Path, cases: list[Case]) -> tuple[dict[Case, Path], str, str, int]:
    """Write every case to its own file and run the real `tikflow validate` over the folder once."""
    files: dict[Case, Path] = {}
    for index, case in enumerate(cases):
        path = tmp_path / f"{index:03d}.yaml"
        path.write_text(case.text)
        files[case] = path
    result = tikflow("validate", str(tmp_path))
    assert_no_traceback(result)
    return files, result.stdout, result.stderr, result.returncode


def check_cases(tmp_path: Path, cases: list[Case]) -> None:
    files, stdout, stderr, code = run_validate(tmp_path, cases)
    assert code == 2
    lines = stderr.splitlines()
    refused = [case for case in cases if case.refused]
    assert lines[-1] == f"{len(refused)} of {len(cases)} recipe(s) invalid"
    wrong: list[str] = []
    for case, path in files.items():
        mine = [line for line in lines if line.startswith(f"{path}:")]
        if not case.refused:
            if mine or f"{path}: ok" not in stdout:
                wrong.append(f"{case.slug}: should load, got {mine}")
            continue
        line, column = case.position
        if len(mine) != 1 or not mine[0].startswith(f"{path}:{line}:{column}: "):
            wrong.append(f"{case.slug}: expected one problem at {line}:{column}, got {mine}")
        elif case.fragment not in mine[0]:
            wrong.append(f"{case.slug}: {case.fragment!r} not in {mine[0]!r}")
    assert not wrong, "\n".join(wrong)


def test_every_duration_field_at_its_limits_through_tikflow_validate(tmp_path):
    cases = duration_cases()
    assert len(cases) >= 150  # 10 fields, 15-17 values each
    check_cases(tmp_path, cases)


def test_every_number_field_at_its_limits_through_tikflow_validate(tmp_path):
    cases = number_cases()
    assert len(cases) >= 80  # 6 fields, 14-16 values each
    check_cases(tmp_path, cases)


def test_refusals_take_under_a_second_and_little_memory():
    slowest, largest = 0.0, 0
    for case in [c for c in duration_cases() + number_cases() if c.refused]:
        tracemalloc.start()
        started = time.perf_counter()
        with pytest.raises(RecipeError):
            load_recipe_text(case.text, "case.yaml")
        slowest = max(slowest, time.perf_counter() - started)
        largest = max(largest, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert slowest < 1.0
    assert largest < 20_000_000


# ---------------------------------------------------------------------------------------------
# Nesting


def nested(kind: str, containers: int) -> tuple[str, list[tuple[int, int]]]:
    """`containers` steps of `kind` inside each other around a call; every step's position."""
    lines = ["recipe: deep", "steps:"]
    indent = "  "
    positions: list[tuple[int, int]] = []
    for _ in range(containers):
        positions.append((len(lines) + 1, len(indent) + 3))
        if kind == "for_each":
            lines += [f'{indent}- for_each: "{{{{ [1] }}}}"', f"{indent}  steps:"]
        elif kind == "if":
            lines += [f'{indent}- if: "{{{{ true }}}}"', f"{indent}  then:"]
        else:
            lines += [f"{indent}- parallel:", f"{indent}  -"]
        indent += "    "
    positions.append((len(lines) + 1, len(indent) + 3))
    lines += [f"{indent}- call: log", f"{indent}  with: {{message: hi}}"]
    return "\n".join(lines) + "\n", positions


@pytest.mark.parametrize("kind", ["for_each", "if", "parallel"])
def test_steps_nest_32_deep_at_most_with_the_position_of_the_first_too_deep(kind):
    # 31 steps of `kind` around a call: 32 levels of steps.
    load_recipe_text(nested(kind, MAX_STEP_NESTING - 1)[0], "deep.yaml")
    # (100 containers nest the YAML past MAX_DEPTH first: the parser refuses those, see below.)
    for containers in (MAX_STEP_NESTING, MAX_STEP_NESTING + 1):
        text, positions = nested(kind, containers)
        with pytest.raises(RecipeError) as caught:
            load_recipe_text(text, "deep.yaml")
        [problem] = caught.value.problems
        # Reported at the first step at level 33, not at the bottom.
        assert (problem.line, problem.column) == positions[MAX_STEP_NESTING], problem
        assert f"a step nested {MAX_STEP_NESTING + 1} levels deep" in problem.message


def deep_value(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


def test_a_value_nested_past_the_limit_is_refused_at_its_position():
    head = "recipe: deep\nsteps:\n  - call: log\n    with: {message: hi, fields: {v: "
    # The recipe, its steps list, the step, `with`, `fields`: five levels above the value.
    allowed = deep_value(MAX_DEPTH - 5)
    load_recipe_text(head + allowed + "}}\n", "deep.yaml")
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(head + deep_value(MAX_DEPTH - 4) + "}}\n", "deep.yaml")
    [problem] = caught.value.problems
    assert problem.line == 4
    assert f"nesting deeper than {MAX_DEPTH} levels" in problem.message


def test_the_deepest_recipe_allowed_still_decodes_as_a_run_input():
    """The cap is below what Temporal hands back: the run's input decodes in the worker."""
    from temporalio.contrib.pydantic import pydantic_data_converter

    from tikflow.runs import build_run
    from workflows.recipe import RecipeRun

    text, _ = nested("parallel", MAX_STEP_NESTING - 1)
    bottom = text.rsplit("with: {message: hi}", 1)
    # Levels above the value: the recipe, 31 x (steps list, step, branch) + the call's list,
    # the call, `with`, `fields`.
    fields = 1 + 3 * (MAX_STEP_NESTING - 1) + 4
    value = deep_value(MAX_DEPTH - fields)
    text = bottom[0] + "with: {message: hi, fields: {v: " + value + "}}" + bottom[1]
    loaded = load_recipe_text(text, "deep.yaml")
    run = build_run(loaded, {})
    converter = pydantic_data_converter.payload_converter
    [payload] = converter.to_payloads([run])
    [back] = converter.from_payloads([payload], [RecipeRun])
    assert back == run
    # And one level more is refused at load, so no recipe reaches a run it cannot decode.
    with pytest.raises(RecipeError):
        load_recipe_text(text.replace(value, f"[{value}]"), "deep.yaml")


def test_the_issue_s_100_nested_for_each_is_refused_by_validate(tmp_path):
    path = tmp_path / "hundred.yaml"
    path.write_text(nested("for_each", 100)[0])
    result = tikflow("validate", str(path))
    assert result.returncode == 2
    assert_no_traceback(result)
    [line, summary] = result.stderr.splitlines()
    # The YAML is nested past MAX_DEPTH before the 33rd step: the parser stops there.
    assert line.startswith(f"{path}:129:257: nesting deeper than {MAX_DEPTH} levels")
    assert summary == "1 of 1 recipe(s) invalid"


# ---------------------------------------------------------------------------------------------
# Time zones and cron, as Temporal reads them

SCHEDULE = 'recipe: sched\ntrigger:\n  schedule: {cron: "@C@", timezone: "@Z@"}\nsteps:\n' + CALL
REFUSED_ZONES = [
    "Mars/Olympus",
    "../../etc/passwd",
    "/etc/localtime",
    "Europe/../Europe/Paris",
    "Local",  # the server's own zone: not the same on every host
    "localtime",
    "posixrules",
    "",
    "utc",
    "europe/paris",
    "Europe/Paris ",
    "UTC\\n",
    "Europe/Paris/../../../../proc/self/environ",
]


def schedule(cron: str = "0 9 * * *", zone: str = "UTC") -> str:
    return SCHEDULE.replace("@C@", cron).replace("@Z@", zone)


def test_every_time_zone_of_the_database_loads():
    import zoneinfo

    # `localtime` and `posixrules` are the host's choice of zone: refused (see REFUSED_ZONES).
    zones = sorted(zoneinfo.available_timezones() - {"localtime", "posixrules"})
    assert len(zones) > 400
    for zone in zones:
        load_recipe_text(schedule(zone=zone), "tz.yaml")


@pytest.mark.parametrize("zone", REFUSED_ZONES)
def test_a_time_zone_outside_the_database_is_refused_at_its_position(zone):
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(schedule(zone=zone), "tz.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (3, 43)
    assert "trigger.schedule.timezone: unknown time zone" in problem.message


def test_a_wrongly_cased_time_zone_gets_the_right_name_suggested():
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(schedule(zone="america/new_york"), "tz.yaml")
    assert "did you mean 'America/New_York'?" in caught.value.problems[0].message


def test_run_with_a_bad_time_zone_exits_2_in_one_line_before_reaching_temporal(tmp_path):
    path = tmp_path / "mars.yaml"
    path.write_text(schedule(zone="Mars/Olympus"))
    # Temporal is unreachable: reaching it would be exit 1 "cannot reach Temporal".
    result = tikflow("run", str(path), TEMPORAL_ADDRESS=UNREACHABLE)
    assert result.returncode == 2
    assert_no_traceback(result)
    assert result.stderr.splitlines() == [
        f"{path}:3:43: trigger.schedule.timezone: unknown time zone 'Mars/Olympus' "
        "(e.g. UTC, Europe/Berlin, America/New_York)"
    ]


_MONTH_NAMES = ["jan", "FEB", "Mar", "aug", "dec"]
_DAY_NAMES = ["sun", "MON", "Wed", "fri", "sat"]
_CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def generated_crons(count: int, seed: int = 13) -> list[str]:
    """Cron expressions in the grammar the loader accepts: values, names, ranges, steps, lists."""
    rng = random.Random(seed)

    def value(field: int) -> tuple[int, str]:
        low, high = _CRON_RANGES[field]
        names = {3: _MONTH_NAMES, 4: _DAY_NAMES}.get(field)
        if names and rng.random() < 0.4:
            name = rng.choice(names)
            table = [n.lower() for n in (_MONTH_NAMES if field == 3 else _DAY_NAMES)]
            number = {3: [1, 2, 3, 8, 12], 4: [0, 1, 3, 5, 6]}[field][table.index(name.lower())]
            return number, name
        number = rng.randint(low, high)
        return number, str(number)

    def item(field: int) -> str:
        roll = rng.random()
        if roll < 0.25:
            text = "*"
        elif roll < 0.6:
            text = value(field)[1]
        else:
            (_, a_text), (_, b_text) = sorted([value(field), value(field)])
            text = f"{a_text}-{b_text}"
        if rng.random() < 0.3:
            text += f"/{rng.randint(1, 40)}"
        return text

    crons: list[str] = []
    while len(crons) < count:
        fields = [",".join(item(f) for _ in range(rng.choice([1, 1, 2, 3]))) for f in range(5)]
        if rng.random() < 0.5:
            fields[2] = "*"
        else:
            fields[4] = "*"
        crons.append(" ".join(fields))
    return crons


def _crontab_field(text: str, field: int) -> set[int]:
    """The values one field of a 5-field expression stands for in crontab(5) (Vixie cron)."""
    low, high = _CRON_RANGES[field]
    names = {3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 4: []}
    days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    def number(part: str) -> int:
        if part.isdigit():
            return int(part)
        return (names[3].index(part.lower()) + 1) if field == 3 else days.index(part.lower())

    values: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            start, end = (number(p) for p in base.split("-"))
        else:
            start = number(base)
            end = high if step else start  # `N/S` runs from N to the end of the range
        values |= set(range(start, end + 1, int(step) if step else 1))
    if field == 4 and 7 in values:
        values = (values - {7}) | {0}  # 7 is Sunday too
    return values


def crontab_times(cron: str, after: datetime, count: int = 5) -> list[datetime]:
    """The next `count` times at or after `after` (UTC) that a crontab line fires, by brute force."""
    minute, hour, day, month, weekday = (_crontab_field(t, f) for f, t in enumerate(cron.split()))
    found: list[datetime] = []
    date = after.replace(hour=0, minute=0, second=0, microsecond=0)
    while len(found) < count:
        # The generator restricts at most one of day-of-month and day-of-week (see the loader).
        if date.month in month and date.day in day and (date.weekday() + 1) % 7 in weekday:
            for h in sorted(hour):
                for m in sorted(minute):
                    moment = date.replace(hour=h, minute=m)
                    if moment >= after and len(found) < count:
                        found.append(moment)
        date += timedelta(days=1)
    return found


#: Cron expressions other cron dialects (croniter among them) accept that a Temporal schedule
#: refuses, or reads differently.
REFUSED_CRONS = [
    "0 9 L * *",
    "0 9 15W * *",
    "0 9 ? * *",
    "0 9 * * 1#2",
    "0 9 * * SUN#1",
    "0 9 1,L * *",
    "R * * * *",
    "50-10 * * * *",
    "0 9 13 * 5",
    "0 9 1 * mon",
    "0 9 * * * *",
    "@daily",
]


def test_generated_crons_load_and_refused_ones_are_located():
    for cron in generated_crons(300):
        load_recipe_text(schedule(cron=cron), "cron.yaml")
    for cron in REFUSED_CRONS:
        with pytest.raises(RecipeError) as caught:
            load_recipe_text(schedule(cron=cron), "cron.yaml")
        [problem] = caught.value.problems
        assert (problem.line, problem.column) == (3, 20)
        assert problem.message.startswith(f"not a valid 5-field cron expression: {cron!r}")


@pytest.mark.devserver
async def test_temporal_reads_every_cron_the_loader_accepts_as_crontab_does(dev_env):
    """On the real server: each accepted expression makes a schedule whose next times are crontab's.

    croniter, which the loader used before, is no oracle: it fires `25-25 11-12 * dec *` at 11:26.
    The refused ones Temporal refuses itself, or reads other than crontab does.
    """
    from temporalio.client import Schedule, ScheduleActionStartWorkflow, ScheduleSpec
    from temporalio.service import RPCError

    async def next_times(cron: str, zone: str = "UTC") -> list | None:
        schedule_id = f"cron-probe-{random.random()}"
        try:
            handle = await dev_env.client.create_schedule(
                schedule_id,
                Schedule(
                    action=ScheduleActionStartWorkflow("NoSuchWorkflow", id=schedule_id, task_queue="nobody"),
                    spec=ScheduleSpec(cron_expressions=[cron], time_zone_name=zone),
                ),
            )
        except RPCError:
            return None
        try:
            return list((await handle.describe()).info.next_action_times[:5])
        finally:
            await handle.delete()

    mismatched = []
    for cron in generated_crons(120):
        times = await next_times(cron)
        if times is None or times != crontab_times(cron, times[0]):
            mismatched.append((cron, times))
    assert not mismatched
    misread = {
        "0 9 * * 1#2": "0 9 * * 1",  # `#` starts a comment: every Monday, not the second one
        "0 9 * * SUN#1": "0 9 * * 0",
        "0 9 13 * 5": None,  # Friday the 13th only (crontab: every 13th and every Friday)
        "0 9 1 * mon": None,
    }
    for cron in REFUSED_CRONS:
        times = await next_times(cron)
        if cron in ("0 9 * * * *", "@daily"):
            assert times is not None  # Temporal's extensions: refused only for not being 5 fields
        elif cron in misread:
            assert times is not None, cron
            if misread[cron]:
                assert times == crontab_times(str(misread[cron]), times[0]), cron
            else:
                friday_13th = cron.endswith("5")
                assert all((t.day, t.weekday()) == ((13, 4) if friday_13th else (1, 0)) for t in times)
        else:
            assert times is None, cron
    for zone in ["Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "Asia/Kathmandu"]:
        assert await next_times("0 9 * * *", zone) is not None
    for zone in REFUSED_ZONES:
        if zone in ("Local", "localtime", "posixrules", ""):
            continue  # Temporal takes these as the server's zone or UTC; a recipe names its zone
        assert await next_times("0 9 * * *", zone) is None, zone


# ---------------------------------------------------------------------------------------------
# for_each, names, accounts, webhooks, actions, inputs


@pytest.mark.parametrize(
    ("value", "kind"),
    [("cats", "str"), ('"{{ 3 }}"', "int"), ("\"{{ 'abc' }}\"", "str"), ('"{{ true }}"', "bool")],
)
def test_for_each_over_a_constant_that_is_not_a_list_is_refused(value, kind):
    text = f"recipe: x\nsteps:\n  - for_each: {value}\n    steps:\n{INNER_CALL}"
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(text, "each.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (3, 15)
    assert (
        f"for_each needs a list, and this is always {'an' if kind == 'int' else 'a'} {kind}"
        in problem.message
    )


@pytest.mark.parametrize(
    "name",
    ["steps", "vars", "inputs", "run", "now", "result", "range", "loop", "in", "not", "_private", "none"],
)
def test_a_for_each_name_that_would_hide_another_is_refused(name):
    text = f'recipe: x\nsteps:\n  - for_each: "{{{{ [1] }}}}"\n    as: {name}\n    steps:\n{INNER_CALL}'
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(text, "as.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (4, 9)
    assert f"{name!r} cannot name the item" in problem.message


@pytest.mark.parametrize("name", ["main", "brand2", "Brand-2", "shop_eu", "7", "x" * 64])
def test_account_names_in_the_charset_load(name):
    load_recipe_text(f'recipe: x\naccount: "{name}"\nsteps:\n{CALL}', "acct.yaml")
    load_recipe_text(f'recipe: x\nsteps:\n{CALL}    account: "{name}"\n', "acct.yaml")


@pytest.mark.parametrize(
    "name", ["Brand 2!", "", "b.c", "../main", "x" * 65, "-x", "_x", "a\\nb", "ünï", "a/b", "a__b\\t"]
)
def test_account_names_outside_the_charset_are_refused_where_written(name):
    written = [(f'recipe: x\naccount: "{name}"\nsteps:\n{CALL}', (2, 10))]
    if name:  # a step's empty `account:` means the recipe's account
        written.append((f'recipe: x\nsteps:\n{CALL}    account: "{name}"\n', (5, 14)))
    for text, position in written:
        with pytest.raises(RecipeError) as caught:
            load_recipe_text(text, "acct.yaml")
        [problem] = caught.value.problems
        assert (problem.line, problem.column) == position
        assert "is not valid: letters, digits, `_` and `-`" in problem.message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "https://hooks.example.com/T0/B0/secret?x=1", "HTTPS://EXAMPLE.COM"]
)
def test_http_webhooks_load(url):
    load_recipe_text(f'recipe: x\nnotify: {{webhook: "{url}"}}\nsteps:\n{CALL}', "hook.yaml")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook-token",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://example.com/hook-token",
        "https:///hook-token",
        "example.com/hook-token",
        "http://example.com:99999/hook-token",
        "http://[::1/hook-token",
        "http://exa mple.com/hook-token",
    ],
)
def test_webhooks_that_are_not_http_urls_are_refused_without_echoing_them(url):
    for text, position in (
        (f'recipe: x\nnotify: {{webhook: "{url}"}}\nsteps:\n{CALL}', (2, 19)),
        (f'recipe: x\nsteps:\n  - notify: done\n    webhook: "{url}"\n', (4, 14)),
    ):
        with pytest.raises(RecipeError) as caught:
            load_recipe_text(text, "hook.yaml")
        [problem] = caught.value.problems
        assert (problem.line, problem.column) == position
        assert "hook-token" not in problem.message  # a webhook URL often carries a secret


def test_a_rendered_webhook_is_checked_by_the_notify_action():
    from pydantic import ValidationError

    from activities.builtin import NotifyInput

    with pytest.raises(ValidationError) as caught:
        NotifyInput.model_validate({"message": "m", "webhook": "ftp://example.com/hook-token"})
    assert "must start with http:// or https://" in str(caught.value.errors()[0]["msg"])
    assert NotifyInput.model_validate({"message": "m", "webhook": "https://example.com/h"}).webhook


def _typos(name: str, rng: random.Random) -> list[str]:
    provider, operation = name.split(".", 1)
    i = rng.randrange(len(operation) - 1)
    swapped = operation[:i] + operation[i + 1] + operation[i] + operation[i + 2 :]
    return [
        f"{provider}.{operation[:-1]}",
        f"{provider}.{operation}s" if not operation.endswith("s") else f"{provider}.{operation[:-1]}",
        f"{provider}.{swapped}",
    ]


def test_an_unknown_action_suggests_the_one_meant():
    from activities.registry import load_actions

    rng = random.Random(5)
    actions = sorted(load_actions())
    tried = wrong = 0
    for name in actions:
        if "." not in name or len(name.split(".", 1)[1]) < 5:
            continue
        for typo in _typos(name, rng):
            if typo in actions:
                continue
            tried += 1
            text = f"recipe: x\nsteps:\n  - call: {typo}\n"
            with pytest.raises(RecipeError) as caught:
                load_recipe_text(text, "typo.yaml")
            [problem] = caught.value.problems
            assert (problem.line, problem.column) == (3, 11)
            if not problem.message.endswith(f"; did you mean {name!r}?"):
                wrong += 1
    assert tried > 100
    # A typo can be closer to another action (`tikapi.comment` + `s` is `tikapi.comments`).
    assert wrong / tried < 0.1


def test_a_whole_number_where_an_action_wants_text_is_taken_as_its_digits():
    from activities.registry import load_actions

    loaded = load_recipe_text(
        "recipe: x\nsteps:\n  - call: tikapi.reply\n"
        "    with: {media_id: 7109178205151464746, reply_comment_id: 7109185042560680750, text: 42}\n"
        "  - call: highlevel.create_post\n"
        "    with: {location_id: 123, user_id: 9, account_ids: [1, 2], summary: hi}\n",
        "ids.yaml",
    )
    reply = load_actions()["tikapi.reply"].input_model.model_validate(loaded.recipe.steps[0].with_)
    assert reply.model_dump() == {
        "media_id": "7109178205151464746",
        "reply_comment_id": "7109185042560680750",
        "text": "42",
    }
    post = load_actions()["highlevel.create_post"].input_model.model_validate(loaded.recipe.steps[1].with_)
    assert (post.location_id, post.account_ids) == ("123", ["1", "2"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(("value", "column"), [("true", 22), ("1.5", 22), ("1.0e+21", 22), ("[123]", 22)])
def test_booleans_and_fractions_stay_refused_where_text_is_wanted(value, column):
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(
            f"recipe: x\nsteps:\n  - call: tikapi.comments\n    with: {{media_id: {value}}}\n", "id.yaml"
        )
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (4, column)
    assert "with.media_id: Input should be a valid string" in problem.message


NUMBER_INPUTS = (
    "recipe: x\ninputs:\n  n: {type: number, default: 1}\n  l: {type: list, default: []}\nsteps:\n" + CALL
)


@pytest.mark.parametrize("given", ["nan", "NaN", "inf", "-Infinity", "1e999", "-1e999"])
def test_nan_and_infinite_number_inputs_are_refused(given):
    recipe = load_recipe_text(NUMBER_INPUTS, "in.yaml").recipe
    with pytest.raises(RecipeError) as caught:
        resolve_inputs(recipe, {"n": given}, "in.yaml")
    assert "is not a number a run can keep" in caught.value.problems[0].message
    assert not math.isnan(resolve_inputs(recipe, {"n": "2.5"})["n"])


def test_list_inputs_refuse_nan_inside_and_nesting_past_64():
    recipe = load_recipe_text(NUMBER_INPUTS, "in.yaml").recipe
    for given, fragment in (
        ("[1, NaN]", "not a number a run can keep"),
        ("[" * 70 + "]" * 70, "nested deeper than 64 levels"),
    ):
        with pytest.raises(RecipeError) as caught:
            resolve_inputs(recipe, {"l": given}, "in.yaml")
        assert fragment in caught.value.problems[0].message
    assert resolve_inputs(recipe, {"l": "[" * 60 + "]" * 60})["l"]


def test_run_with_a_nan_input_exits_2_in_one_line(tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text(NUMBER_INPUTS)
    result = tikflow("run", str(path), "--input", "n=nan", TEMPORAL_ADDRESS=UNREACHABLE)
    assert result.returncode == 2
    assert_no_traceback(result)
    assert result.stderr.splitlines() == [
        f"{path}:1:1: input 'n': nan is not a number a run can keep "
        "(NaN and infinity become null in its history)"
    ]


def test_the_shipped_definitions_and_valid_fixtures_still_load():
    root = Path(__file__).resolve().parent.parent
    for path in [
        *sorted((root / "definitions").glob("*.yaml")),
        *sorted((root / "tests/recipes/valid").glob("*.yaml")),
    ]:
        load_recipe(path)


# ---------------------------------------------------------------------------------------------
# At run time, on a real dev server: values only an input decides


async def _failure_of(handle) -> str:
    import asyncio

    from temporalio.client import WorkflowFailureError

    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), 60)
    return str(failed.value.cause)


async def _scheduled_activities(handle) -> list[str]:
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        async for event in handle.fetch_history_events()
        if event.HasField("activity_task_scheduled_event_attributes")
    ]


@pytest.mark.devserver
async def test_for_each_over_a_string_input_fails_the_step_instead_of_iterating_letters(stack, tmp_path):
    path = tmp_path / "each-text.yaml"
    path.write_text(
        "recipe: each-text\ninputs:\n  tags: {type: string}\nsteps:\n  - id: each\n"
        '    for_each: "{{ inputs.tags }}"\n    as: tag\n    steps:\n'
        '      - call: log\n        with: {message: "{{ tag }}"}\n'
    )
    handle = await stack.run(path, {"tags": "cats"})
    assert "steps.each: for_each needs a list, got str" in await _failure_of(handle)
    # Not one `log` per letter: the only activity is the run's failure alert.
    assert await _scheduled_activities(handle) == ["notify.send"]


@pytest.mark.devserver
async def test_a_numeric_media_id_is_taken_as_the_video_id_against_the_sandbox(stack, tmp_path):
    video = stack.state()["tikapi"]["comments"][0]["aweme_id"]
    path = tmp_path / "numeric-id.yaml"
    path.write_text(
        f"recipe: numeric-id\nsteps:\n  - id: c\n    call: tikapi.comments\n    with: {{media_id: {video}}}\n"
    )
    loaded = load_recipe(path)
    assert loaded.recipe.steps[0].with_ == {"media_id": int(video)}  # YAML made it a number
    result = await (await stack.run(path)).result()
    items = result.outputs["c"]["items"]
    assert items
    assert {item["cid"] for item in items} <= {
        c["cid"] for c in stack.state()["tikapi"]["comments"] if c["aweme_id"] == video
    }


@pytest.mark.devserver
async def test_a_rendered_webhook_that_is_not_http_fails_the_step_without_echoing_it(stack, tmp_path):
    path = tmp_path / "hook.yaml"
    path.write_text(
        "recipe: hook\ninputs:\n  hook: {type: string}\nsteps:\n"
        '  - notify: done\n    webhook: "{{ inputs.hook }}"\n'
    )
    import asyncio

    handle = await stack.run(path, {"hook": "ftp://example.com/hook-token"})
    result = await asyncio.wait_for(handle.result(), 60)
    # An undeliverable notification is counted and the run goes on (it never fails the run);
    # the refusal says why, and neither the result nor the history repeats the URL.
    assert result.counters.notifications_failed == 1
    [failure] = [
        event.activity_task_failed_event_attributes.failure.message
        async for event in handle.fetch_history_events()
        if event.HasField("activity_task_failed_event_attributes")
    ]
    assert "webhook URL must start with http:// or https://" in failure
    assert "hook-token" not in failure


@pytest.mark.devserver
@pytest.mark.parametrize("recipe", ["tests/recipes/valid/scheduled.yaml", "tests/recipes/valid/minimal.yaml"])
def test_run_prints_temporal_s_refusal_in_one_line_and_exits_2(dev_env, recipe):
    """What only the server knows (here: its id length limit) is a user error too, not a traceback."""
    address = dev_env.client.service_client.config.target_host
    result = tikflow("run", recipe, "--id", "x" * 2000, TEMPORAL_ADDRESS=address)
    assert result.returncode == 2, result.stderr
    assert_no_traceback(result)
    [line] = result.stderr.splitlines()
    assert line.startswith(f"tikflow: {recipe}: Temporal refused to start it: ")
