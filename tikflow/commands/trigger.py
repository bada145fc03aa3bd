"""`tikflow trigger ID [--wait]`: run a recipe's Schedule now, outside its cron times.

A recipe with a `schedule:` trigger is a Temporal Schedule (`tikflow run` creates it). This asks
the schedule to start one run now (`ScheduleHandle.trigger()`), exactly as a cron time would: same
workflow input, task queue and search attributes, a workflow id of `<ID>-run-<time>`. It prints
the run's id and its Temporal UI page; `--wait` waits for the run and prints its result, which is
what `tikflow run --wait` cannot do for a schedule (a schedule never finishes).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

__all__ = ["add_parser", "cmd_trigger"]


def add_parser(subparsers: Any) -> None:
    """Add `trigger` to the `tikflow` command line."""
    p = subparsers.add_parser("trigger", help="run a recipe's schedule now")
    p.add_argument("id", help="the schedule's id (`tikflow run` printed it)")
    p.add_argument("--wait", action="store_true", help="wait for the run to finish and print its result")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for the schedule to start the run (default 60)",
    )
    p.set_defaults(func=cmd_trigger)


def cmd_trigger(args: argparse.Namespace) -> int:
    """Start a run of the schedule now; with --wait, wait for it (exit 1 if it failed)."""
    from tikflow.cli import UserError, _client, print_result, ui_link
    from tikflow.runs import TRIGGER_TIMEOUT_S, AlreadyRunning, trigger_schedule
    from workflows.recipe import RunResult

    async def go() -> int:
        client = await _client()
        try:
            timeout_s = TRIGGER_TIMEOUT_S if args.timeout is None else args.timeout
            run_id = await trigger_schedule(client, args.id, timeout_s=timeout_s)
        except (AlreadyRunning, TimeoutError) as exc:
            raise UserError(str(exc)) from None
        if run_id is None:
            raise UserError(f"no schedule {args.id!r} (`tikflow status {args.id}` shows what it is)")
        print(f"triggered schedule {args.id}: run {run_id}")
        print(f"watch it: {ui_link(run_id)}")
        if not args.wait:
            return 0
        return await print_result(client.get_workflow_handle(run_id, result_type=RunResult), run_id)

    return asyncio.run(go())
