"""Serving an ASGI app with uvicorn in a background thread (the sandbox and the ingress, in tests and dev)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

__all__ = ["running_in_thread", "uvicorn_server"]


def uvicorn_server(app: Any, host: str, port: int, *, server_header: bool = True) -> uvicorn.Server:
    """A quiet uvicorn server for `app` (lifespan off: neither app needs a startup)."""
    return uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", server_header=server_header
        )
    )


@contextlib.contextmanager
def running_in_thread(
    app: Any, *, what: str, host: str = "127.0.0.1", port: int = 0, server_header: bool = True
) -> Iterator[str]:
    """Serve `app` in a daemon thread; yields its base URL (port 0 = any free port).

    Leaving the block asks uvicorn to exit (requests in flight finish) and joins the thread.

    Raises:
        RuntimeError: The server did not start within 10 s (`what` names it).
    """
    # IPPROTO_TCP named, not the default 0: asyncio turns Nagle's algorithm off only on sockets
    # whose proto says TCP, and connections accepted from a proto-0 socket kept it on. A response
    # then went out as headers, then body after the client's delayed ACK: 40 ms per request on a
    # kept-alive connection (each provider call against the sandbox of `tikflow dev`, the demo
    # and the tests; each webhook into `tikflow dev`'s ingress). `tikflow sandbox` and `tikflow
    # ingress` let uvicorn open their sockets, which say TCP. TCP_NODELAY is also set here, for
    # the accepted sockets to inherit.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = uvicorn_server(app, host, bound, server_header=server_header)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {what} did not start")
            # A server started in a thread has nothing to await: poll its flag.
            time.sleep(0.01)
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
