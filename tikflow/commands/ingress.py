"""`tikflow ingress [--host H] [--port N]`: serve the webhook ingress until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Add `ingress` to the `tikflow` command line."""
    p = subparsers.add_parser(
        "ingress", help="serve the webhook ingress (TEMPORAL_ADDRESS, default localhost:7233)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8500, help="port to listen on (default 8500)")
    p.add_argument("--max-body", type=int, default=256 * 1024, help="largest body in bytes (default 256 KiB)")
    p.add_argument(
        "--window", type=float, default=300.0, help="accepted signature clock skew in seconds (default 300)"
    )
    p.add_argument(
        "--task-queue", help="task queue of event mailboxes (default: TIKFLOW_TASK_QUEUE or tikflow)"
    )
    p.set_defaults(func=cmd_ingress)


def cmd_ingress(args: argparse.Namespace) -> int:
    """Run the ingress in the foreground; SIGTERM stops it as Ctrl-C does (exit status 0)."""
    import contextlib
    import signal

    from activities.credentials import CredentialStore, resolve_path
    from tikflow.cli import engine_config
    from tikflow.ingress import IngressConfig, serve
    from tikflow.logging import configure_logging

    engine = engine_config()
    configure_logging(json=engine.log_json)
    # The workers' store: the TikTok app's client secret and the generic routes' `ingress` credentials.
    path, _ = resolve_path(engine.credentials_file)
    config = IngressConfig(
        max_body=args.max_body,
        window_s=args.window,
        task_queue=args.task_queue or engine.task_queue,
        settings=engine.settings(),
        credentials=CredentialStore(path, seed=engine.credentials_seed),
    )
    base = engine.public_url or "<public https base>"
    print(f"ingress: http://{args.host}:{args.port}", flush=True)
    print(f"  TikTok callback URL: {base}/events/tiktok   generic: /hooks/<route>", flush=True)
    print(f"  OAuth redirect URIs: {base}/oauth/<tikapi|tiktok|highlevel>/callback", flush=True)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # uvicorn drains the requests in flight on SIGTERM and then re-raises the signal to the handler
    # it found: this one, so SIGTERM ends the command like Ctrl-C, with status 0.
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            serve(args.host, args.port, config)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
