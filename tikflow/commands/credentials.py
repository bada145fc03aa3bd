"""`tikflow credentials`: store, list and remove named provider credentials.

`set` takes `FIELD=VALUE` pairs on the command line or, so secrets stay out of shell history and
the process list, one pair per line on stdin (`--from-stdin`). `list` says which file is in use
and shows which fields are set and where from, with at most a masked hint (`…3a9f`) of each
value; nothing here ever prints one, not even in an error about a mistyped argument.

Every command finds the file by the same rule (`activities.credentials.default_path`), so the store
a second shell writes is the one the worker of `tikflow dev` in the same folder reads.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from activities.credentials import (
    ACCOUNT_NAME,
    PROVIDER_FIELDS,
    CredentialStore,
    CredentialStoreError,
    path_origin,
)

__all__ = ["add_parser", "cmd_list", "cmd_remove", "cmd_sandbox", "cmd_set", "parse_pairs"]

EXIT_INVALID = 2


def add_parser(subparsers: Any) -> None:
    """Add `credentials set|list|remove` to the `tikflow` command line."""
    parser = subparsers.add_parser(
        "credentials", help="store, list and remove provider credentials", hide_values=True
    )
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        help="credentials file (default: TIKFLOW_CREDENTIALS, else .tikflow/credentials.json if "
        "this directory has .tikflow/, else the user config dir)",
    )
    parser.set_defaults(hide_values=True)
    sub = parser.add_subparsers(dest="credentials_command", required=True, metavar="ACTION")

    fields_help = "; ".join(f"{p}: {', '.join(f)}" for p, f in PROVIDER_FIELDS.items())
    p = sub.add_parser(
        "set",
        help="set fields of a credential (merged with what is stored)",
        description=f"Fields per provider: {fields_help}.",
        hide_values=True,
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

    p = sub.add_parser(
        "list", help="list credentials (field names and masked hints, never values)", hide_values=True
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "sandbox",
        help="store a running sandbox's demo credentials as account `main` of every provider",
        description="For trying tikflow against `tikflow sandbox` (or the compose `sandbox` profile): "
        "the sandbox's demo keys, and TikTok tokens it issues, stored as each provider's `main`.",
        hide_values=True,
    )
    p.add_argument("url", metavar="URL", help="the sandbox's base URL, e.g. http://127.0.0.1:8400")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("remove", help="delete a stored credential", hide_values=True)
    p.add_argument("provider", choices=sorted(PROVIDER_FIELDS), metavar="PROVIDER")
    p.add_argument("account", metavar="ACCOUNT")
    p.set_defaults(func=cmd_remove)


def _store(args: argparse.Namespace) -> CredentialStore:
    return CredentialStore(args.file)


def _file_line(store: CredentialStore, args: argparse.Namespace) -> str:
    """Which file this command uses, and why (the rule is in `activities.credentials`)."""
    origin = "--file" if args.file is not None else path_origin()
    line = f"credentials file: {store.path} (from {origin})"
    if store.seed is not None:
        line += f", seeded by {store.seed}"
    return line


def parse_pairs(items: Iterable[tuple[str, str]], provider: str) -> dict[str, str]:
    """`(where, "FIELD=VALUE")` items → a mapping, for `provider`'s fields.

    Raises:
        ValueError: naming the bad item by `where` (`pair 2`, `stdin line 3`), never by its text:
            a pair without `=` or with an odd field name is most likely a bare secret.
    """
    known = PROVIDER_FIELDS[provider]
    fields: dict[str, str] = {}
    for where, line in items:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{where} is not FIELD=VALUE (its text is not shown: it may be a secret)")
        if name not in known:
            # A field name is shown only when it looks like one; otherwise it may be a key
            # whose base64 padding (`…==`) made it look like a pair.
            shown = f"{name!r} " if _LOOKS_LIKE_FIELD.fullmatch(name) else ""
            raise ValueError(f"{where}: unknown field {shown}for {provider}; known: {', '.join(known)}")
        fields[name] = value.strip()
    return fields


_LOOKS_LIKE_FIELD = re.compile(r"[a-z][a-z_]{0,23}")


def numbered(pairs: Iterable[str], what: str) -> list[tuple[str, str]]:
    """Label each item with where it came from (`pair 1`, `stdin line 2`) for `parse_pairs`."""
    return [(f"{what} {n}", text) for n, text in enumerate(pairs, 1)]


def check_account(account: str) -> None:
    """Refuse a credential name that cannot be one (without echoing it: it may be a key).

    Raises:
        ValueError: The name is not letters, digits, `-` and `_` (at most 64).
    """
    if not ACCOUNT_NAME.fullmatch(account):
        raise ValueError(
            "ACCOUNT must be a credential name: letters, digits, `-` and `_`, at most 64 "
            "(its text is not shown: it may be a secret)"
        )


def cmd_set(args: argparse.Namespace) -> int:
    """`tikflow credentials set PROVIDER ACCOUNT FIELD=VALUE...`: merge fields into a credential."""
    try:
        check_account(args.account)
        fields = parse_pairs(numbered(args.pairs, "pair"), args.provider)
        if args.from_stdin:
            fields.update(parse_pairs(numbered(sys.stdin.read().splitlines(), "stdin line"), args.provider))
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
        store.update(args.provider, args.account, fields, strict=True)
    except ValueError as exc:
        print(f"tikflow credentials: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except CredentialStoreError as exc:
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
    store = _store(args)
    try:
        infos = store.list()
    except CredentialStoreError as exc:
        print(f"tikflow credentials: {exc}", file=sys.stderr)
        return 1
    if args.json:
        # stdout stays the JSON list; which file it came from goes to the person.
        print(_file_line(store, args), file=sys.stderr)
        print(json.dumps([asdict(info) for info in infos], indent=2, ensure_ascii=False))
        return 0
    print(_file_line(store, args))
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
