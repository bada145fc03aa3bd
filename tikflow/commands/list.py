"""`tikflow list`: tikflow's runs, filtered by recipe, phase, label and running/closed.

A table (id, recipe, phase, last poll, calls, effects, last error), or `--json`. The filters are
one visibility query (`tikflow.fleet.label_query`), the same one `pause`, `resume` and `stop`
use with `--label` / `--recipe`, and the one to paste into the Temporal UI's search box.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import typing
from typing import Any

__all__ = ["add_filters", "add_parser", "cmd_list", "filters_of", "table"]


def add_filters(p: argparse.ArgumentParser) -> None:
    """The `--recipe` and `--label` filters `list`, `pause`, `resume` and `stop` share."""
    p.add_argument("--recipe", metavar="NAME", help="only runs of this recipe")
    p.add_argument(
        "--label", action="append", default=[], metavar="KEY=VALUE", help="only runs with this label"
    )


def add_parser(subparsers: Any) -> None:
    """Add `list` to the `tikflow` command line."""
    p = subparsers.add_parser("list", help="list runs (filter by recipe, phase, label)")
    add_filters(p)
    p.add_argument("--phase", help="only runs in this phase (as TikflowPhase shows it: running, paused, …)")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--running", action="store_true", help="only runs still going")
    state.add_argument("--closed", action="store_true", help="only runs that ended")
    p.add_argument("--limit", type=int, default=200, help="at most this many runs (default 200)")
    p.add_argument("--json", action="store_true", help="the runs as JSON")
    p.set_defaults(func=cmd_list)


def filters_of(args: argparse.Namespace, *, running: bool | None = None) -> str:
    """The visibility query of the command line's filters."""
    from tikflow.cli import EXIT_INVALID, UserError
    from tikflow.fleet import label_query, parse_labels
    from workflows.state import Phase

    phase = getattr(args, "phase", None)
    phases: tuple[str, ...] = typing.get_args(Phase)
    if phase is not None and phase not in phases:
        raise UserError(f"--phase {phase!r} is not one of {', '.join(phases)}", EXIT_INVALID)

    try:
        labels = parse_labels(args.label)
    except ValueError as exc:
        raise UserError(str(exc), EXIT_INVALID) from None
    if args.recipe is not None and not all(c.isalnum() or c == "-" for c in args.recipe):
        raise UserError(f"--recipe {args.recipe!r} is not a recipe name", EXIT_INVALID)
    return label_query(recipe=args.recipe, phase=phase, labels=labels, running=running)


def table(rows: list[Any]) -> list[str]:
    """`rows` (`tikflow.fleet.RunRow`) as aligned lines under a header."""
    header = ("ID", "RECIPE", "PHASE", "LAST POLL", "CALLS", "EFFECTS", "LAST ERROR")
    cells = [
        (
            row.id,
            row.recipe,
            row.phase,
            row.last_poll.strftime("%Y-%m-%d %H:%M:%S") if row.last_poll else "-",
            "-" if row.calls is None else str(row.calls),
            "-" if row.effects is None else str(row.effects),
            (row.last_error or "-")[:60],
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *cells]
    ]


def cmd_list(args: argparse.Namespace) -> int:
    """Print the matching runs as a table (or JSON)."""
    from tikflow.cli import _client
    from tikflow.fleet import list_runs

    running = True if args.running else False if args.closed else None
    query = filters_of(args, running=running)

    async def go() -> int:
        client = await _client()
        rows = await list_runs(client, query, limit=args.limit)
        if args.json:
            print(json.dumps([row.as_json() for row in rows], indent=2))
        elif not rows:
            print("no runs match")
        else:
            print("\n".join(table(rows)))
        return 0

    return asyncio.run(go())
