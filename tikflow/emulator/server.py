"""Serving the sandbox: `tikflow sandbox`, `python -m tikflow.emulator`, and a thread for tests."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence

from starlette.applications import Starlette

from tikflow.emulator.app import PROVIDERS, create_app
from tikflow.emulator.state import EmulatorConfig
from tikflow.serving import running_in_thread, uvicorn_server

__all__ = ["main", "provider_base_urls", "running_emulator", "serve"]


def provider_base_urls(base_url: str) -> dict[str, str]:
    """Provider → its base URL on a sandbox served at `base_url`."""
    return {name: base_url.rstrip("/") + provider.prefix for name, provider in PROVIDERS.items()}


def serve(host: str = "127.0.0.1", port: int = 8400, config: EmulatorConfig | None = None) -> None:
    """Serve until interrupted; prints one `PROVIDER: BASE_URL` line per provider first."""
    for name, url in provider_base_urls(f"http://{host}:{port}").items():
        print(f"{name}: {url}", flush=True)
    uvicorn_server(create_app(config), host, port).run()


@contextlib.contextmanager
def running_emulator(
    port: int = 0, config: EmulatorConfig | None = None, host: str = "127.0.0.1", app: Starlette | None = None
) -> Iterator[str]:
    """Serve the emulator in a background thread; yields its base URL (port 0 = any free port).

    `app` (from `create_app`) is served instead of a new one from `config`: the caller keeps its
    state at hand (`app.state.emulator`).
    """
    with running_in_thread(app or create_app(config), what="sandbox", host=host, port=port) as url:
        yield url


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tikflow.emulator [--host H] [--port N] [--seed N] [--comment-interval S] [--webhook-url U]`.

    The options are `EmulatorConfig` fields; the rest of it is set through `POST /_admin/config`.
    """
    parser = argparse.ArgumentParser(
        prog="tikflow sandbox", description="Local stand-ins of the five provider APIs."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--comment-interval",
        type=float,
        default=20.0,
        help="seconds between new comments on listed videos (0 = only through POST /_admin/tick)",
    )
    parser.add_argument(
        "--webhook-url",
        help="TikTok's webhook callback URL: signed publish and authorization events are POSTed there "
        "(e.g. http://127.0.0.1:8500/events/tiktok; default: none)",
    )
    args = parser.parse_args(argv)
    config = EmulatorConfig(
        seed=args.seed, comment_interval_s=args.comment_interval, webhook_url=args.webhook_url
    )
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.host, args.port, config)
    return 0
