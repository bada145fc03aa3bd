"""The `tikflow` command line as a user runs it: exit codes, one line per problem, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.test_loader import INVALID, VALID, expectations

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "127.0.0.1:1"


def tikflow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m tikflow.cli ARGS` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "tikflow.cli", *args],
        cwd=ROOT,
        env={**os.environ, "TIKFLOW_LOG_JSON": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def validate_invalid() -> subprocess.CompletedProcess[str]:
    """`tikflow validate` of every invalid fixture, run once for the tests that read its output.

    The files, not the folder: `invalid/sub/` holds the sub-recipes the fixtures call, some of
    them broken on purpose, which a folder's validation would also report.
    """
    return tikflow("validate", *(f"tests/recipes/invalid/{path.name}" for path in INVALID))


def test_validate_prints_one_located_line_per_problem_and_exits_2(validate_invalid):
    result = validate_invalid
    assert result.returncode == 2
    assert_no_traceback(result)
    lines = result.stderr.splitlines()
    assert lines[-1] == f"{len(INVALID)} of {len(INVALID)} recipe(s) invalid"
    problem_lines = lines[:-1]
    expected = [
        (f"tests/recipes/invalid/{path.name}", line, column, message)
        for path in INVALID
        for line, column, message in expectations(path)
    ]
    assert len(problem_lines) == len(expected), result.stderr
    for text, (file, line, column, message) in zip(problem_lines, expected, strict=True):
        assert text.startswith(f"{file}:{line}:{column}: "), text
        assert message in text
    assert result.stdout == ""


def test_validate_reports_every_kind_of_breakage_the_issue_names(validate_invalid):
    stderr = validate_invalid.stderr
    for fragment in (
        "YAML syntax error",
        "a step needs one of the keys",
        "unknown field",
        "Input should be a valid integer",
        "duplicate step id",
        "reference to undefined step",
        "bad expression",
        "missing required input",
    ):
        assert fragment in stderr, fragment


def test_validate_shipped_definitions_exits_0():
    result = tikflow("validate", "definitions/")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    shipped = sorted(p.name for p in (ROOT / "definitions").glob("*.yaml"))
    assert sorted(Path(line.removesuffix(": ok")).name for line in result.stdout.splitlines()) == shipped


def test_validate_valid_fixtures_quietly_prints_nothing():
    result = tikflow("validate", "-q", *(str(p.relative_to(ROOT)) for p in VALID))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_validate_mixed_files_exits_2_and_names_only_the_broken_one():
    result = tikflow(
        "validate", "tests/recipes/valid/minimal.yaml", "tests/recipes/invalid/unknown-field.yaml"
    )
    assert result.returncode == 2
    assert result.stdout == "tests/recipes/valid/minimal.yaml: ok\n"
    assert result.stderr.splitlines() == [
        "tests/recipes/invalid/unknown-field.yaml:5:5: unknown field 'retries' in steps[0]",
        "1 of 2 recipe(s) invalid",
    ]


def test_validate_missing_file_is_a_located_problem():
    result = tikflow("validate", "no/such/recipe.yaml")
    assert result.returncode == 2
    assert result.stderr.startswith("no/such/recipe.yaml:1:1: cannot read file")
    assert_no_traceback(result)


def test_run_refuses_an_invalid_recipe_before_contacting_temporal():
    # Temporal is unreachable: had `run` tried to start anything it would fail with exit 1.
    result = tikflow("run", "tests/recipes/invalid/unknown-step-kind.yaml", TEMPORAL_ADDRESS=UNREACHABLE)
    assert result.returncode == 2
    assert result.stderr.startswith("tests/recipes/invalid/unknown-step-kind.yaml:6:5: a step needs one of")
    assert "cannot reach Temporal" not in result.stderr
    assert result.stdout == ""
    assert_no_traceback(result)


def test_run_without_a_required_input_exits_2_naming_it():
    result = tikflow("run", "tests/recipes/valid/run-once.yaml", TEMPORAL_ADDRESS=UNREACHABLE)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "tests/recipes/valid/run-once.yaml:1:1: missing required input 'who' (give it with --input who=...)"
    ]
    assert_no_traceback(result)


def test_run_with_a_mistyped_input_exits_2():
    result = tikflow(
        "run",
        "tests/recipes/valid/run-once.yaml",
        "--input",
        "who=ann",
        "--input",
        "loud=maybe",
        TEMPORAL_ADDRESS=UNREACHABLE,
    )
    assert result.returncode == 2
    assert "input 'loud': not a boolean: 'maybe'" in result.stderr
    assert_no_traceback(result)


def test_run_with_a_malformed_input_pair_exits_2():
    result = tikflow(
        "run", "tests/recipes/valid/minimal.yaml", "--input", "oops", TEMPORAL_ADDRESS=UNREACHABLE
    )
    assert result.returncode == 2
    assert result.stderr == "tikflow: --input needs NAME=VALUE, got 'oops'\n"


def test_status_against_unreachable_temporal_exits_1_with_one_line():
    result = tikflow("status", "recipe-x", TEMPORAL_ADDRESS=UNREACHABLE)
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"tikflow: cannot reach Temporal at {UNREACHABLE}")
    assert_no_traceback(result)


def test_client_commands_against_unreachable_temporal_exit_1_cleanly_every_time():
    # Several at once: a process that aborts while shutting down Temporal's runtime (SIGABRT,
    # "Fatal Python error") did so in about one run in ten before the CLI ended without finalizing.
    commands = [[command, "recipe-x"] for command in ("pause", "resume", "stop") for _ in range(4)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tikflow.cli", *command],
            cwd=ROOT,
            env={**os.environ, "TEMPORAL_ADDRESS": UNREACHABLE},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    for command, process in zip(commands, processes, strict=True):
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 1, (command, stderr)
        assert stdout == ""
        [line] = stderr.splitlines()
        assert line.startswith(f"tikflow: cannot reach Temporal at {UNREACHABLE}")


def test_run_of_a_valid_recipe_against_unreachable_temporal_exits_1():
    result = tikflow("run", "tests/recipes/valid/minimal.yaml", TEMPORAL_ADDRESS=UNREACHABLE)
    assert result.returncode == 1
    assert "cannot reach Temporal" in result.stderr
    assert_no_traceback(result)


def test_schema_prints_json():
    result = tikflow("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "tikflow recipe"
    assert "steps" in schema["required"]


def test_unknown_command_is_a_usage_error_without_traceback():
    result = tikflow("frobnicate")
    assert result.returncode == 2
    assert "usage: tikflow" in result.stderr
    assert_no_traceback(result)


def test_credentials_sandbox_stores_a_working_main_account_for_every_provider(sandbox_url, tmp_path):
    from activities.credentials import CredentialStore

    path = tmp_path / "credentials.json"
    result = tikflow("credentials", "--file", str(path), "sandbox", sandbox_url)
    assert result.returncode == 0, result.stderr
    store = CredentialStore(path, env={})
    assert {(info.provider, info.account) for info in store.list()} == {
        (p, "main") for p in ("tikapi", "tiktok", "highlevel", "dumpling", "socialapi")
    }
    # The TikTok token was issued by that sandbox: it answers the Display API with it.
    token = store.get("tiktok", "main")["access_token"]
    response = httpx.get(
        f"{sandbox_url}/tiktok/v2/user/info/",
        params={"fields": "open_id"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    # Nothing secret on the terminal.
    assert token not in result.stdout + result.stderr


def test_credentials_sandbox_without_a_sandbox_is_one_line_exit_1(tmp_path):
    path = tmp_path / "credentials.json"
    result = tikflow("credentials", "--file", str(path), "sandbox", "http://127.0.0.1:1")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "no tikflow sandbox answers at http://127.0.0.1:1" in result.stderr
    assert_no_traceback(result)
    assert not path.exists()


@pytest.mark.parametrize("recipe", sorted((ROOT / "definitions").glob("*.yaml")), ids=lambda p: p.stem)
def test_graph_draws_every_step_reachable_from_the_start(recipe):
    import re

    result = tikflow("graph", str(recipe))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    # A sub-recipe's steps are drawn inside a box: `subgraph sN ["name (file)"]` … `end`.
    boxes = [line for line in lines[1:] if re.match(r"\s+(subgraph s\d+ \[|end$)", line)]
    lines = [line for line in lines if line not in boxes]
    assert len(boxes) % 2 == 0
    if re.search(r"^\s*(- )?run: ", recipe.read_text(), re.M):
        assert boxes, "a recipe with a sub-recipe draws it"
    edges = [re.match(r"\s+(n\d+) -->(?:\|.*?\|)? (n\d+)$", line) for line in lines[1:]]
    pairs = [(m.group(1), m.group(2)) for m in edges if m]
    nodes = [
        re.match(r"\s+(n\d+)\W", line).group(1) for line, m in zip(lines[1:], edges, strict=True) if not m
    ]
    reachable, frontier = {"n1"}, ["n1"]
    while frontier:
        here = frontier.pop()
        for src, dst in pairs:
            if src == here and dst not in reachable:
                reachable.add(dst)
                frontier.append(dst)
    assert set(nodes) == reachable, f"unreachable: {sorted(set(nodes) - reachable)}"
    # Every call step of the recipe is drawn.
    calls = re.findall(r"^\s*-?\s*call: ([\w.]+)", recipe.read_text(), re.M)
    for call in calls:
        assert call in result.stdout
