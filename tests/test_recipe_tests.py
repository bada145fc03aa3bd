"""`tikflow test`: the shipped recipes' tests pass; a broken expectation fails naming the step."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tikflow.cli import main
from tikflow.loader import RecipeError
from tikflow.recipetest import is_test_file, load_test_file, step_name

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "definitions"
SHIPPED = sorted(DEFINITIONS.glob("*.yaml"))
TESTS = DEFINITIONS / "tests"


def test_every_shipped_recipe_ships_with_its_tests():
    assert SHIPPED
    missing = [p.name for p in SHIPPED if not (TESTS / f"{p.stem}.test.yaml").is_file()]
    assert not missing, f"recipes without definitions/tests/<name>.test.yaml: {missing}"
    for recipe in SHIPPED:
        loaded = load_test_file(TESTS / f"{recipe.stem}.test.yaml")
        assert Path(loaded.recipe.source).resolve() == recipe.resolve()


def test_the_shipped_recipes_tests_pass_and_write_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    junit = tmp_path / "junit.xml"
    code = main(["test", "definitions/", "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 0, out
    cases = sum(len(load_test_file(p).spec.tests) for p in sorted(TESTS.glob("*.test.yaml")))
    assert out.splitlines()[-1] == f"{cases} passed, 0 failed"
    assert "FAIL" not in out
    suites = ET.parse(junit).getroot()
    assert sum(int(s.get("tests", "0")) for s in suites) == cases
    assert all(s.get("failures") == "0" for s in suites)


def _broken(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.test.yaml"
    path.write_text(f"recipe: {DEFINITIONS / 'hashtag-reply.yaml'}\n{text}")
    return path


BROKEN = """\
tests:
  - name: a wrong reply text and a wrong count
    canned:
      videos: {items: [{id: "7301"}]}
      comments: {items: [{cid: "7300", aweme_id: "7301", author: fan, text: "price?"}]}
    expect:
      calls: {tikapi.reply: 2}
      effects:
        - action: tikapi.reply
          with: {reply_comment_id: "7300", text: "Hello"}
  - name: a read without a canned result
    canned:
      videos: {items: [{id: "7301"}]}
    expect:
      effects: []
"""


def test_a_broken_expectation_fails_with_a_diff_naming_the_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    junit = tmp_path / "junit.xml"
    code = main(["test", str(_broken(tmp_path, BROKEN)), "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("FAIL ")
    assert lines[0].endswith("hashtag-reply: a wrong reply text and a wrong count")
    # The reply is made by the sub-recipe reply-to-comment.yaml, at its step `posted`.
    assert "    calls tikapi.reply: expected 2 call(s), got 1 (at step posted)" in lines
    assert (
        '    step posted, effect 1 tikapi.reply: with.text: expected "Hello", '
        'got "Thanks for asking! The price is in our bio 💸"'
    ) in lines
    # Nothing is sent: a read without a canned result stops the run, named by its step.
    assert any(line.startswith("    step comments: tikapi.comments has no canned result") for line in lines)
    assert lines[-1] == "0 passed, 2 failed"
    failures = list(ET.parse(junit).getroot().iter("failure"))
    assert len(failures) == 2
    assert "step posted" in (failures[0].text or "")


def test_a_typo_in_a_test_file_is_a_file_line_col_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = _broken(tmp_path, "tests:\n  - name: typo\n    expcet: {effects: []}\n")
    assert main(["test", str(path)]) == 2
    assert capsys.readouterr().err == f"{path}:4:5: unknown field 'expcet' in tests[0]\n"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("tests:\n  - name: x\n    canned: {vidoes: {}}\n", "4:14", "canned: 'vidoes' is neither a step id"),
        ("tests:\n  - name: x\n    inputs: {hashtgs: dogs}\n", "4:14", "unknown input 'hashtgs'"),
        (
            "tests:\n  - name: x\n    expect:\n      effects: [{action: tikapi.repyl}]\n",
            "5:26",
            "effects[0].action: unknown action 'tikapi.repyl'",
        ),
        ("tests:\n  - name: x\n    polls: 0\n", "4:12", "polls"),
        (
            "tests:\n  - name: x\n    approvals: {videos: {decision: approve}}\n",
            "4:17",
            "approvals: 'videos' is not the id of an `approval:` step (approval steps: none)",
        ),
    ],
)
def test_test_file_problems_are_located(tmp_path: Path, text: str, where: str, message: str):
    path = _broken(tmp_path, text)
    with pytest.raises(RecipeError) as caught:
        load_test_file(path)
    (problem,) = caught.value.problems
    assert f"{problem.line}:{problem.column}" == where, problem
    assert message in problem.message


def test_validate_and_test_keep_recipes_and_their_tests_apart():
    assert not any(is_test_file(p) for p in SHIPPED)
    assert all(is_test_file(p) for p in TESTS.glob("*.yaml"))


@pytest.mark.parametrize(
    ("path", "step"),
    [
        ("steps.videos", "videos"),
        ("steps.replies[7300.1].0", "replies"),
        ("steps.scan[7301].comments", "comments"),
        ("steps.status#3", "status"),
        ("steps.0.parallel1.sa_post", "sa_post"),
        ("steps.2.then.0", "steps.2.then.0"),
        ("steps.ask:approval", "ask"),
        ("steps.reply.catch0.0", "reply"),
        # A sub-recipe's call: the `run:` step's path, then the child's own.
        ("steps.replies[7300].answer/steps.reply.try.posted", "posted"),
        ("steps.handle[a/b].0.else.answer/steps.0", "answer"),
    ],
)
def test_a_call_is_named_by_its_innermost_named_step(path: str, step: str):
    assert step_name(path) == step


ALERTED = """\
recipe: report-then-fail
steps:
  - id: started
    notify: "starting"
  - fail: "the report is empty"
"""

ALERTED_TESTS = """\
recipe: report-then-fail.yaml
tests:
  - name: notifies, then fails
    expect:
      calls: {notify.send: 1}
      effects: [{action: notify.send, step: started, with: {message: starting}}]
      error: "the report is empty"
"""


async def test_a_failing_case_compares_its_steps_effects_not_the_failure_alert(tmp_path: Path):
    from tikflow.recipetest import run_test_files

    (tmp_path / "report-then-fail.yaml").write_text(ALERTED)
    (tmp_path / "report-then-fail.test.yaml").write_text(ALERTED_TESTS)
    (report,) = await run_test_files([load_test_file(tmp_path / "report-then-fail.test.yaml")])
    assert report.differences == []
    # The alert was sent all the same (recorded), once, after the step's notification.
    sent = [(c.path, c.params.get("alert")) for c in report.calls if c.action == "notify.send"]
    assert sent == [("steps.started", False), ("on_failure", True)]


async def test_a_case_can_expect_the_failure_alert_and_its_reason(tmp_path: Path):
    from tikflow.recipetest import run_test_files

    (tmp_path / "report-then-fail.yaml").write_text(ALERTED)
    (tmp_path / "report-then-fail.test.yaml").write_text(
        """\
recipe: report-then-fail.yaml
tests:
  - name: alerts with the reason
    expect:
      error: "the report is empty"
      alert: {reason: "the report is empty", message: "report-then-fail failed"}
  - name: expects another reason
    expect:
      error: "the report is empty"
      alert: {reason: "quota"}
"""
    )
    good, bad = await run_test_files([load_test_file(tmp_path / "report-then-fail.test.yaml")])
    assert good.differences == []
    assert [(d.where, d.message) for d in bad.differences] == [
        ("alert", "expected a reason containing 'quota', got 'steps.1: the report is empty'")
    ]
