"""`tikflow backfill ID --from TIME --to TIME [--overlap POLICY]`: run a schedule's missed times.

A schedule whose worker or server was down past its catch-up window, or that was paused, has cron
times that never ran. This starts, now, one run for each cron time from `--from` (included) to
`--to` (excluded), as the schedule would have started it then (Temporal's
`ScheduleHandle.backfill`). By default they run one after another (`buffer_all`), so all of them
run even on a `skip` schedule, and never two at once; `--overlap allow_all` starts them together.
"""

from __future__ import annotations

import argparse
import asyncio
import typing
from datetime import UTC, datetime
from typing import Any

__all__ = ["add_parser", "cmd_backfill", "parse_time"]

#: How many of the backfilled cron times are printed one per line.
_SHOWN_TIMES = 10


def add_parser(subparsers: Any) -> None:
    """Add `backfill` to the `tikflow` command line."""
    # Not from tikflow.runs: every command builds this parser, and that module imports the client.
    from workflows.models import DEFAULT_BACKFILL_OVERLAP, ScheduleOverlap

    p = subparsers.add_parser("backfill", help="run a schedule's missed cron times now")
    p.add_argument("id", help="the schedule's id (`tikflow run` printed it)")
    p.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="TIME",
        help="first cron time to run, ISO 8601 (`2026-11-20T09:00`; no offset: UTC)",
    )
    p.add_argument(
        "--to", dest="end", required=True, metavar="TIME", help="run cron times before this, ISO 8601"
    )
    p.add_argument(
        "--overlap",
        choices=typing.get_args(ScheduleOverlap),
        default=DEFAULT_BACKFILL_OVERLAP,
        help=f"how the runs may overlap (default {DEFAULT_BACKFILL_OVERLAP}: one after another)",
    )
    p.set_defaults(func=cmd_backfill)


def parse_time(option: str, text: str) -> datetime:
    """An ISO 8601 time of the command line, in UTC when it names no offset.

    Raises:
        ValueError: not an ISO 8601 date or time (the message names the option).
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{option} {text!r} is not an ISO 8601 time (e.g. 2026-11-20T09:00 or 2026-11-20T09:00+01:00)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def cmd_backfill(args: argparse.Namespace) -> int:
    """Start the runs of the schedule's cron times in the range; print how many and which."""
    from tikflow.cli import EXIT_INVALID, UserError, _client, ui_link
    from tikflow.runs import BackfillRefused, backfill_schedule

    try:
        start = parse_time("--from", args.start)
        end = parse_time("--to", args.end)
    except ValueError as exc:
        raise UserError(str(exc), EXIT_INVALID) from None

    async def go() -> int:
        client = await _client()
        try:
            times = await backfill_schedule(client, args.id, start, end, overlap=args.overlap)
        except BackfillRefused as exc:
            raise UserError(str(exc)) from None
        print(f"backfill of schedule {args.id}: {len(times)} run(s), overlap {args.overlap}")
        for time in times[:_SHOWN_TIMES]:
            print(f"  {time.isoformat()}")
        if len(times) > _SHOWN_TIMES:
            print(f"  … and {len(times) - _SHOWN_TIMES} more, up to {times[-1].isoformat()}")
        print(f"watch them: {ui_link(args.id, schedule=True)}")
        return 0

    return asyncio.run(go())
