"""`tikflow sandbox [--port N] [--seed N]`: serve the five provider stand-ins on loopback."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Add `sandbox` to the `tikflow` command line."""
    p = subparsers.add_parser("sandbox", help="serve the provider sandbox (prints one base URL per provider)")
    p.add_argument("--port", type=int, default=8400)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--webhook-url", help="where the TikTok stand-in POSTs its signed webhook events (default: none)"
    )
    p.set_defaults(func=cmd_sandbox)


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Run the sandbox until Ctrl-C."""
    from tikflow.emulator.server import main

    argv = ["--port", str(args.port), "--host", args.host, "--seed", str(args.seed)]
    if args.webhook_url:
        argv += ["--webhook-url", args.webhook_url]
    return main(argv)
