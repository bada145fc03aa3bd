"""`tikflow credentials`: store, list and remove named provider credentials.

`set` takes `FIELD=VALUE` pairs on the command line or, so secrets stay out of shell history and
the process list, one pair per line on stdin (`--from-stdin`). `list` shows which fields are set
and where from, with at most a masked hint (`…3a9f`) of each value; nothing here ever prints one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tikflow.credentials import PROVIDER_FIELDS, CredentialStore, CredentialStoreError

__all__ = ["add_parser", "cmd_list", "cmd_remove", "cmd_sandbox", "cmd_set"]

EXIT_INVALID = 2


def add_parser(subparsers: Any) -> None:
    """Add `credentials set|list|remove` to the `tikflow` command line."""
    parser = subparsers.add_parser("credentials", help="store, list and remove provider credentials")
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        help="credentials file (default: TIKFLOW_CREDENTIALS or the user config dir)",
    )
    sub = parser.add_subparsers(dest="credentials_command", required=True, metavar="ACTION")

    fields_help = "; ".join(f"{p}: {', '.join(f)}" for p, f in PROVIDER_FIELDS.items())
    p = sub.add_parser(
        "set",
        help="set fields of a credential (merged with what is stored)",
        description=f"Fields per provider: {fields_help}.",
    )
    p.add_argument("provider", choices=sorted(PROVIDER_FIELDS), metavar="PROVIDER")
    p.add_argument("account", metavar="ACCOUNT", help="credential name, e.g. main")
    p.add_argument("pairs", nargs="*", metavar="FIELD=VALUE")
    p.add_argument(
        "--from-stdin",
        action="store_true",
        help="read FIELD=VALUE lines from stdin (keeps secrets out of ps)",
    )
    p.set_defaults(func=cmd_set)

    p = sub.add_parser("list", help="list credentials (field names and masked hints, never values)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "sandbox",
        help="store a running sandbox's demo credentials as account `main` of every provider",
        description="For trying tikflow against `tikflow sandbox` (or the compose `sandbox` profile): "
        "the sandbox's demo keys, and TikTok tokens it issues, stored as each provider's `main`.",
    )
    p.add_argument("url", metavar="URL", help="the sandbox's base URL, e.g. http://127.0.0.1:8400")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("remove", help="delete a stored credential")
    p.add_argument("provider", choices=sorted(PROVIDER_FIELDS), metavar="PROVIDER")
    p.add_argument("account", metavar="ACCOUNT")
    p.set_defaults(func=cmd_remove)


def _store(args: argparse.Namespace) -> CredentialStore:
    return CredentialStore(args.file)


def _parse_pairs(lines: Iterable[str], provider: str) -> dict[str, str]:
    """`FIELD=VALUE` pairs → a mapping; raises ValueError naming the bad pair (without its value)."""
    known = PROVIDER_FIELDS[provider]
    fields: dict[str, str] = {}
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"expected FIELD=VALUE, got a pair without `=` (field {name or '?'!r})")
        if name not in known:
            raise ValueError(f"unknown field {name!r} for {provider}; known: {', '.join(known)}")
        fields[name] = value.strip()
    return fields


def cmd_set(args: argparse.Namespace) -> int:
    """`tikflow credentials set PROVIDER ACCOUNT FIELD=VALUE...`: merge fields into a credential."""
    try:
        fields = _parse_pairs(args.pairs, args.provider)
        if args.from_stdin:
            fields.update(_parse_pairs(sys.stdin.read().splitlines(), args.provider))
    except ValueError as exc:
        print(f"tikflow credentials: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if not fields:
        print(
            "tikflow credentials: no FIELD=VALUE given (on the command line or --from-stdin)", file=sys.stderr
        )
        return EXIT_INVALID
    store = _store(args)
    try:
        store.update(args.provider, args.account, fields)
    except (CredentialStoreError, ValueError) as exc:
        print(f"tikflow credentials: {exc}", file=sys.stderr)
        return 1
    print(f"{args.provider}/{args.account}: set {', '.join(sorted(fields))} in {store.path}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    """`tikflow credentials sandbox URL`: store a running sandbox's credentials as `main`."""
    import httpx

    from tikflow.devstack import sandbox_credentials

    url = args.url.rstrip("/")
    try:
        credentials = sandbox_credentials(url)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        problem = f"no tikflow sandbox answers at {url} ({type(exc).__name__})"
        print(f"tikflow credentials: {problem}", file=sys.stderr)
        return 1
    store = _store(args)
    try:
        for provider, accounts in credentials.items():
            for account, fields in accounts.items():
                store.update(provider, account, fields)
    except (CredentialStoreError, ValueError) as exc:
        print(f"tikflow credentials: {exc}", file=sys.stderr)
        return 1
    print(f"{', '.join(sorted(credentials))}: account main set from {url} in {store.path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """`tikflow credentials list [--json]`: every credential's fields and source, never a value."""
    try:
        infos = _store(args).list()
    except CredentialStoreError as exc:
        print(f"tikflow credentials: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([asdict(info) for info in infos], indent=2, ensure_ascii=False))
        return 0
    if not infos:
        print("no credentials (add one with `tikflow credentials set PROVIDER ACCOUNT FIELD=VALUE`)")
        return 0
    rows = [
        (info.provider, info.account, info.source, " ".join(f"{f}({info.hints[f]})" for f in info.fields))
        for info in infos
    ]
    widths = [max(len(row[i]) for row in [("PROVIDER", "ACCOUNT", "SOURCE", ""), *rows]) for i in range(3)]
    for row in [("PROVIDER", "ACCOUNT", "SOURCE", "FIELDS"), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    """`tikflow credentials remove PROVIDER ACCOUNT`: delete a stored credential."""
    try:
        removed = _store(args).remove(args.provider, args.account)
    except CredentialStoreError as exc:
        print(f"tikflow credentials: {exc}", file=sys.stderr)
        return 1
    if not removed:
        print(f"tikflow credentials: no stored credential {args.provider}/{args.account}", file=sys.stderr)
        return 1
    print(f"{args.provider}/{args.account}: removed")
    return 0
