"""`tikflow approve RUN_ID` / `tikflow reject RUN_ID`: decide a run's `approval:` step from a shell.

The same one decision per approval as the page behind the approval link
(`tikflow.authorize.approvals.decide_once`): whichever comes first decides, the other is refused.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, Literal

__all__ = ["add_parser", "cmd_decide"]


def add_parser(subparsers: Any) -> None:
    """Add `approve` and `reject` to the `tikflow` command line."""
    for verb in ("approve", "reject"):
        p = subparsers.add_parser(verb, help=f"{verb} what a run's approval step waits for")
        p.add_argument("id", help="the run's workflow id")
        p.add_argument(
            "--approval",
            metavar="ID",
            help="which approval, when the run waits for several (`tikflow status ID` lists them)",
        )
        p.add_argument("--comment", default="", help="a comment the run receives with the decision")
        p.set_defaults(func=cmd_decide, decision=verb)


def cmd_decide(args: argparse.Namespace) -> int:
    """Deliver the decision once; exit 1 with one line when the run waits for no such approval."""
    from tikflow.authorize.approvals import Decision, decide_once
    from tikflow.authorize.claims import TemporalClaims
    from tikflow.cli import UserError, _client, engine_config
    from tikflow.runs import get_status

    decision: Literal["approve", "reject"] = "approve" if args.decision == "approve" else "reject"

    async def go() -> int:
        from temporalio.service import RPCError

        client = await _client()
        try:
            status = await get_status(client, args.id)
        except RPCError:
            raise UserError(
                f"no running run {args.id!r} to {decision} (`tikflow list` shows the runs)"
            ) from None
        pending = list(status.approvals)
        chosen = [a for a in pending if args.approval in (None, a, a.split("@")[0])]
        if not chosen:
            what = f"approval {args.approval!r}" if args.approval else "an approval"
            raise UserError(
                f"run {args.id} is not waiting for {what} (pending: {', '.join(pending) or 'none'})"
            )
        if len(chosen) > 1:
            raise UserError(
                f"run {args.id} waits for {len(chosen)} approvals: "
                f"name one with --approval ({', '.join(chosen)})"
            )
        comment = " ".join(args.comment.split())[:500]

        async def give() -> Any:
            return client

        claims = TemporalClaims(give, engine_config().task_queue)
        if not await decide_once(client, claims, args.id, Decision(chosen[0], decision, comment, via="cli")):
            raise UserError(f"approval {chosen[0]!r} of run {args.id} was already decided")
        done = "approved" if decision == "approve" else "rejected"
        print(f"{done} approval {chosen[0]} of run {args.id}")
        return 0

    return asyncio.run(go())
