"""Serving the sandbox: `tikflow sandbox`, `python -m tikflow.emulator`, and a thread for tests."""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence

import uvicorn
from starlette.applications import Starlette

from tikflow.emulator.app import PROVIDERS, create_app
from tikflow.emulator.state import EmulatorConfig

__all__ = ["main", "provider_base_urls", "running_emulator", "serve"]


def provider_base_urls(base_url: str) -> dict[str, str]:
    """Provider → its base URL on a sandbox served at `base_url`."""
    return {name: base_url.rstrip("/") + provider.prefix for name, provider in PROVIDERS.items()}


def _server(app: Starlette, host: str, port: int) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))


def serve(host: str = "127.0.0.1", port: int = 8400, config: EmulatorConfig | None = None) -> None:
    """Serve until interrupted; prints one `PROVIDER: BASE_URL` line per provider first."""
    for name, url in provider_base_urls(f"http://{host}:{port}").items():
        print(f"{name}: {url}", flush=True)
    _server(create_app(config), host, port).run()


@contextlib.contextmanager
def running_emulator(
    port: int = 0, config: EmulatorConfig | None = None, host: str = "127.0.0.1", app: Starlette | None = None
) -> Iterator[str]:
    """Serve the emulator in a background thread; yields its base URL (port 0 = any free port).

    `app` (from `create_app`) is served instead of a new one from `config`: the caller keeps its
    state at hand (`app.state.emulator`).
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = _server(app or create_app(config), host, bound)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not start")
            # Starting a server in a thread has no awaitable to wait on: poll its flag.
            time.sleep(0.01)
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tikflow.emulator [--host H] [--port N] [--seed N] [--comment-interval S]`."""
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
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.host, args.port, EmulatorConfig(seed=args.seed, comment_interval_s=args.comment_interval))
    return 0
