"""`Webhook`: a webhook receiver on loopback that records what it is sent."""

from __future__ import annotations

import http.server
import json
import threading


class Webhook:
    """Records every POSTed JSON body with its Idempotency-Key and answers `status` (204: taken).

    Attributes:
        calls: `(Idempotency-Key or None, body)` per POST, in arrival order.
        url: Where to send them.
    """

    def __init__(self, status: int = 204) -> None:
        self.calls: list[tuple[str | None, dict]] = []
        calls = self.calls

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                calls.append(
                    (self.headers.get("idempotency-key"), json.loads(self.rfile.read(length) or b"{}"))
                )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def posts(self) -> int:
        """How many POSTs arrived."""
        return len(self.calls)

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
