"""Serving the ingress with uvicorn: in the foreground (`tikflow ingress`) or in a thread (tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from tikflow.ingress.app import IngressConfig, create_app
from tikflow.serving import running_in_thread, uvicorn_server

__all__ = ["running_ingress", "serve"]


def serve(host: str, port: int, config: IngressConfig | None = None) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn finishes the requests in flight, then returns)."""
    uvicorn_server(create_app(config), host, port, server_header=False).run()


@contextlib.contextmanager
def running_ingress(
    config: IngressConfig | None = None,
    *,
    connect: Callable[[], Any] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[str]:
    """Serve the ingress in a background thread; yields its base URL (port 0 = any free port)."""
    app = create_app(config, connect=connect)
    with running_in_thread(app, what="ingress", host=host, port=port, server_header=False) as url:
        yield url
