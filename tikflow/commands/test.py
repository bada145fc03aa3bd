"""`tikflow test FILE...`: run recipe tests in this process, with canned results and no network.

FILE is a test file (`*.test.yaml`), a directory (every test file below it), or a recipe (its
tests: `tests/<name>.test.yaml` beside it, or `<name>.test.yaml`). Each case runs on Temporal's
time-skipping test server (`tikflow.recipetest`). Prints PASS/FAIL per case with what differed,
naming the step; `--junit FILE` also writes JUnit XML. Exit 0 when every case passed, 1 when
one failed, 2 when a test file (or the recipe it names) is invalid: FILE:LINE:COL problems.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_test", "test_files"]


def add_parser(subparsers: Any) -> None:
    """Add `test` to the `tikflow` command line."""
    p = subparsers.add_parser("test", help="run recipe tests (canned results, no network)")
    p.add_argument("files", nargs="+", metavar="FILE", help="test files, recipes or directories")
    p.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML here")
    p.add_argument("-k", dest="only", metavar="TEXT", help="only the cases whose name contains TEXT")
    p.set_defaults(func=cmd_test)


def test_files(paths: list[str]) -> list[Path]:
    """The test files `paths` name (see the module docstring).

    Raises:
        tikflow.cli.UserError: a recipe without tests, or a directory without test files (exit 2).
    """
    from tikflow.cli import EXIT_INVALID, UserError
    from tikflow.recipetest import TEST_SUFFIXES, is_test_file

    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if is_test_file(p))
            if not inside:
                raise UserError(f"{raw}: no test files (*{TEST_SUFFIXES[0]}) in this directory", EXIT_INVALID)
            found += inside
        elif is_test_file(path) or not path.exists():
            found.append(path)
        else:
            stem = path.name.rsplit(".", 1)[0]
            candidates = [
                path.parent / "tests" / f"{stem}{TEST_SUFFIXES[0]}",
                path.with_name(stem + TEST_SUFFIXES[0]),
            ]
            match = next((c for c in candidates if c.is_file()), None)
            if match is None:
                raise UserError(f"{raw}: no tests for this recipe (looked for {candidates[0]})", EXIT_INVALID)
            found.append(match)
    return list(dict.fromkeys(found))


test_files.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def cmd_test(args: argparse.Namespace) -> int:
    """Load every test file (all problems first), run the cases, print the results."""
    from tikflow.cli import EXIT_INVALID, UserError
    from tikflow.loader import RecipeError
    from tikflow.recipetest import format_reports, junit_xml, load_test_file, run_test_files

    loaded = []
    bad = False
    for file in test_files(args.files):
        try:
            loaded.append(load_test_file(file))
        except RecipeError as exc:
            bad = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
    if bad:
        return EXIT_INVALID
    import tikflow.cli
    from tikflow.logging import configure_logging

    configure_logging(level="ERROR")  # what failed is in the report
    tikflow.cli._made_temporal_client = True  # the in-process test server's client
    try:
        reports = asyncio.run(run_test_files(loaded, only=args.only))
    except FileNotFoundError as exc:  # no test server binary
        raise UserError(str(exc)) from None
    for line in format_reports(reports):
        print(line)
    if args.junit:
        Path(args.junit).write_text(junit_xml(reports), encoding="utf-8")
    return 0 if all(r.passed for r in reports) else 1
