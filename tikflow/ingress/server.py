"""Serving the ingress with uvicorn: in the foreground (`tikflow ingress`) or in a thread (tests)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from tikflow.ingress.app import IngressConfig, create_app

__all__ = ["running_ingress", "serve"]


def _server(app: Any, host: str, port: int) -> uvicorn.Server:
    # lifespan off: the app needs no startup (it connects to Temporal lazily, on the first event).
    return uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", server_header=False)
    )


def serve(host: str, port: int, config: IngressConfig | None = None) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn finishes the requests in flight, then returns)."""
    _server(create_app(config), host, port).run()


@contextlib.contextmanager
def running_ingress(
    config: IngressConfig | None = None,
    *,
    connect: Callable[[], Any] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[str]:
    """Serve the ingress in a background thread; yields its base URL (port 0 = any free port)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = _server(create_app(config, connect=connect), host, bound)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the ingress did not start")
            # A server started in a thread has nothing to await: poll its flag.
            time.sleep(0.01)
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
