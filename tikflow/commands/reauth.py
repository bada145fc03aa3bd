"""`tikflow reauth [ID] --account NAME`: store a fresh credential, then wake every run waiting on it.

A run whose provider session expired (TikAPI 428, SocialAPI `invalid_token`, a TikTok refresh
that failed) waits in phase `awaiting_reauth`, and its `status` query names the accounts it waits
for and their provider. This command checks before it acts, and does nothing when a check fails:

- the run `ID` (if given) must be waiting for a re-authorization of that very account (else
  exit 1 when it waits for nothing, exit 2 when it waits for another account or provider);
- the credential, with the new fields merged in, must be complete: the provider's required
  fields and those a re-authorization renews (`activities.contracts.REAUTH_FIELDS`) (else exit 2).

It then writes the new fields into the credential store (never into the signal: signals are
stored in history) and sends the `reauthorized` signal, with only the account *name*, to every
run waiting on that account of that provider: the given run, and those the Temporal visibility
search `TikflowPhase = 'awaiting_reauth'` finds whose `status` says so. Each of them runs its
failed step again. Without `ID`, the search alone finds them (a run that began waiting in the last
moment may not be indexed yet; name it to be sure).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from activities.contracts import REAUTH_FIELDS
from activities.credentials import REQUIRED_FIELDS, CredentialStore, CredentialStoreError
from tikflow.commands.credentials import check_account, numbered, parse_pairs

if TYPE_CHECKING:
    from workflows.recipe import RunStatus

__all__ = ["WAITING_QUERY", "Waiting", "add_parser", "cmd_reauth", "find_waiting"]

EXIT_INVALID = 2

#: The visibility search for runs that may wait for a re-authorization (their status says which).
WAITING_QUERY = "TikflowPhase = 'awaiting_reauth' AND ExecutionStatus = 'Running'"
#: Status queries in flight at once while looking for waiting runs.
_QUERIES_AT_ONCE = 16
#: How long a run's worker gets to answer `status`: a run whose worker is down must not hang this.
_QUERY_TIMEOUT = timedelta(seconds=10)


def add_parser(subparsers: Any) -> None:
    """Add `reauth` to the `tikflow` command line."""
    p = subparsers.add_parser(
        "reauth",
        help="store a re-authorized credential and resume the runs waiting for it",
        description="Checks that the run waits for this account and that the credential is complete, "
        "stores the new fields, then resumes every run waiting on the account. Nothing is stored or "
        "signalled when a check fails.",
        hide_values=True,
    )
    p.add_argument(
        "id",
        nargs="?",
        metavar="ID",
        help="a waiting run's workflow id (optional: every run waiting on the account is resumed)",
    )
    p.add_argument("--account", required=True, help="credential name the run waits for")
    p.add_argument(
        "--provider",
        choices=sorted(REAUTH_FIELDS),
        help="provider of the account (default: the one the waiting runs name)",
    )
    p.add_argument(
        "pairs", nargs="*", metavar="FIELD=VALUE", help="new credential fields (e.g. account_key=…)"
    )
    p.add_argument("--from-stdin", action="store_true", help="read FIELD=VALUE lines from stdin")
    p.set_defaults(func=cmd_reauth, hide_values=True)


@dataclass(frozen=True)
class Waiting:
    """A run that waits for a re-authorization of `account` (of `provider`)."""

    workflow_id: str
    account: str
    provider: str


async def find_waiting(client: Any, account: str) -> list[Waiting]:
    """Every running run whose `status` says it waits for `account`, found by visibility search.

    Raises:
        RPCError: The search failed (e.g. the namespace lacks tikflow's search attributes).
    """
    ids = [execution.id async for execution in client.list_workflows(WAITING_QUERY)]
    limit = asyncio.Semaphore(_QUERIES_AT_ONCE)

    async def ask(workflow_id: str) -> Waiting | None:
        from temporalio.client import WorkflowQueryFailedError
        from temporalio.service import RPCError

        async with limit:
            try:
                status = await _status(client, workflow_id)
            except (RPCError, WorkflowQueryFailedError):
                return None  # finished meanwhile, not a recipe run, or no worker answers
        provider = status.awaiting_reauth.get(account)
        return None if provider is None else Waiting(workflow_id, account, provider)

    found = await asyncio.gather(*(ask(workflow_id) for workflow_id in dict.fromkeys(ids)))
    return [waiting for waiting in found if waiting is not None]


async def _status(client: Any, workflow_id: str) -> RunStatus:
    """A run's `status`, or an RPCError once `_QUERY_TIMEOUT` passes (no worker serves it)."""
    from workflows.recipe import RecipeWorkflow

    status: RunStatus = await client.get_workflow_handle(workflow_id).query(
        RecipeWorkflow.status, rpc_timeout=_QUERY_TIMEOUT
    )
    return status


def _read_pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    # Without an ID, argparse hands the first FIELD=VALUE to the optional ID (no id holds `=`).
    if args.id is not None and "=" in args.id:
        args.pairs, args.id = [args.id, *args.pairs], None
    pairs = numbered(args.pairs, "pair")
    if args.from_stdin:
        pairs += numbered(sys.stdin.read().splitlines(), "stdin line")
    return pairs


def cmd_reauth(args: argparse.Namespace) -> int:
    """Check the run(s) and the credential, store the new fields, resume every waiting run."""
    from tikflow.cli import UserError

    try:
        check_account(args.account)
    except ValueError as exc:
        raise UserError(str(exc), EXIT_INVALID) from None
    pairs = _read_pairs(args)
    return asyncio.run(_reauth(args, pairs))


async def _reauth(args: argparse.Namespace, pairs: list[tuple[str, str]]) -> int:
    from temporalio.client import WorkflowQueryFailedError
    from temporalio.service import RPCError, RPCStatusCode

    from tikflow.cli import UserError, _client

    account: str = args.account
    client = await _client()
    waiting: list[Waiting] = []
    if args.id is not None:
        try:
            status = await _status(client, args.id)
        except (RPCError, WorkflowQueryFailedError) as exc:
            raise UserError(f"cannot ask run {args.id!r}: {exc.message}; nothing stored") from None
        if not status.awaiting_reauth:
            raise UserError(
                f"run {args.id!r} is not waiting for a re-authorization (phase {status.phase}); "
                "nothing stored, nothing resumed"
            )
        if account not in status.awaiting_reauth:
            others = ", ".join(f"{p} account {a!r}" for a, p in status.awaiting_reauth.items())
            raise UserError(
                f"run {args.id!r} waits for a re-authorization of {others}, not of account "
                f"{account!r}; nothing stored, nothing resumed",
                EXIT_INVALID,
            )
        waiting.append(Waiting(args.id, account, status.awaiting_reauth[account]))
    try:
        waiting += [w for w in await find_waiting(client, account) if w.workflow_id != args.id]
    except RPCError as exc:
        if args.id is None:
            raise UserError(
                f"cannot search for runs waiting on account {account!r} ({exc.message}); "
                "name the run: tikflow reauth ID --account …"
            ) from None
        print(f"note: only {args.id} is resumed: searching for other waiting runs failed ({exc.message})")

    provider = _provider(args, account, waiting)
    if args.provider is not None:
        waiting = [w for w in waiting if w.provider == args.provider]
    if not waiting:
        which = f"{provider} account" if provider else "account"
        raise UserError(
            f"no run is waiting for a re-authorization of {which} {account!r}; "
            "nothing stored (store a credential with `tikflow credentials set`)"
        )
    assert provider is not None
    _store_fields(provider, account, pairs, args)

    resumed: list[str] = []
    for run in waiting:
        try:
            await client.get_workflow_handle(run.workflow_id).signal("reauthorized", account)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise UserError(f"cannot signal {run.workflow_id!r}: {exc.message}") from None
            print(f"note: {run.workflow_id} ended before it could be resumed")
            continue
        resumed.append(run.workflow_id)
    print(
        f"reauthorized {provider} account {account!r}: resumed {len(resumed)} run(s)"
        + (f": {', '.join(resumed)}" if resumed else "")
    )
    return 0 if resumed else 1


def _provider(args: argparse.Namespace, account: str, waiting: list[Waiting]) -> str | None:
    """The provider to re-authorize: `--provider`, else the one every waiting run names."""
    from tikflow.cli import UserError

    named = {w.provider for w in waiting}
    if args.provider is not None:
        if args.id is not None and waiting and waiting[0].provider != args.provider:
            raise UserError(
                f"run {args.id!r} waits for {waiting[0].provider} account {account!r}, not "
                f"{args.provider}; nothing stored, nothing resumed",
                EXIT_INVALID,
            )
        return str(args.provider)
    if args.id is not None:
        return waiting[0].provider
    if len(named) > 1:
        raise UserError(
            f"runs wait for account {account!r} of {', '.join(sorted(named))}: say which with "
            "--provider; nothing stored, nothing resumed",
            EXIT_INVALID,
        )
    return next(iter(named), None)


def _store_fields(
    provider: str, account: str, pairs: list[tuple[str, str]], args: argparse.Namespace
) -> None:
    """Write the new fields, or check the stored credential; refuse an incomplete one."""
    from tikflow.cli import UserError

    if provider not in REAUTH_FIELDS:
        raise UserError(
            f"the waiting run names provider {provider!r}, which tikflow cannot re-authorize",
            EXIT_INVALID,
        )
    renewed = REAUTH_FIELDS[provider]
    store = CredentialStore()
    try:
        fields = parse_pairs(pairs, provider)
        if fields:
            store.update(provider, account, fields, strict=True, require=renewed)
            print(f"stored {', '.join(sorted(fields))} of {provider} account {account!r} in {store.path}")
            return
        wanted = [*REQUIRED_FIELDS[provider], *renewed]
        missing = store.missing(provider, account, wanted)
    except ValueError as exc:
        raise UserError(f"{exc}; nothing resumed", EXIT_INVALID) from None
    except CredentialStoreError as exc:
        raise UserError(f"{exc}; nothing resumed") from None
    if missing:
        command = " ".join(
            ["tikflow reauth", *([args.id] if args.id else []), "--account", account, "--provider", provider]
            + [f"{name}=…" for name in missing]
        )
        raise UserError(
            f"the {provider} credential {account!r} in {store.path} lacks {', '.join(missing)}; "
            f"give the new value(s): {command}; nothing resumed",
            EXIT_INVALID,
        )
