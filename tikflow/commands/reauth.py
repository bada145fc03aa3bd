"""`tikflow reauth ID --account NAME`: store a fresh credential, then let the waiting run go on.

A run whose provider session expired (TikAPI 428, SocialAPI `invalid_token`, a TikTok refresh
that failed) waits in phase `awaiting_reauth`. This command writes the new key into the
credential store (never into the signal: signals are stored in history) and sends the
`reauthorized` signal with only the account *name*; the step that failed then runs again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from tikflow.commands.credentials import _parse_pairs
from tikflow.credentials import PROVIDER_FIELDS, CredentialStore, CredentialStoreError

__all__ = ["add_parser", "cmd_reauth"]


def add_parser(subparsers: Any) -> None:
    """Add `reauth` to the `tikflow` command line."""
    p = subparsers.add_parser("reauth", help="store a re-authorized credential and resume a waiting run")
    p.add_argument("id", help="the waiting run's workflow id")
    p.add_argument("--account", required=True, help="credential name the run waits for")
    p.add_argument("--provider", choices=sorted(PROVIDER_FIELDS), help="provider of the new fields")
    p.add_argument(
        "pairs", nargs="*", metavar="FIELD=VALUE", help="new credential fields (e.g. account_key=…)"
    )
    p.add_argument("--from-stdin", action="store_true", help="read FIELD=VALUE lines from stdin")
    p.set_defaults(func=cmd_reauth)


def cmd_reauth(args: argparse.Namespace) -> int:
    """Store the new fields (if any) and signal the run."""
    from temporalio.service import RPCError

    from tikflow.cli import UserError, _client

    pairs = list(args.pairs)
    if args.from_stdin:
        pairs += [line for line in sys.stdin.read().splitlines() if line.strip()]
    if pairs:
        if not args.provider:
            raise UserError("--provider is needed to store new credential fields", 2)
        try:
            CredentialStore().update(args.provider, args.account, _parse_pairs(pairs, args.provider))
        except (CredentialStoreError, ValueError) as exc:
            raise UserError(str(exc), 2) from None
        print(f"stored new {args.provider} credential for account {args.account!r}")

    async def go() -> int:
        client = await _client()
        try:
            await client.get_workflow_handle(args.id).signal("reauthorized", args.account)
        except RPCError as exc:
            raise UserError(f"cannot signal {args.id!r}: {exc.message}") from None
        print(f"reauthorized: {args.id} resumes with account {args.account!r}")
        return 0

    return asyncio.run(go())
