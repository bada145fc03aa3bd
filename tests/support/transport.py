"""`FakeProvider`: a provider API stand-in behind `httpx.MockTransport`, the tests' only HTTP seam."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

#: Builds the response to one request.
Responder = Callable[[httpx.Request], httpx.Response]
#: What a route answers: a responder, a ready response, or a JSON body (see `FakeProvider.ok`).
Answer = Responder | httpx.Response | dict[str, Any]


def json_ok(body: dict[str, Any]) -> httpx.Response:
    """A 200 answer with `body` as JSON (the default for answers given as dicts)."""
    return httpx.Response(200, json=body)


class FakeProvider:
    """Answers `(method, path)` routes and records every request it saw, in order.

    A route holds one or more answers, used in turn; the last one repeats. A request no route
    matches gets the `otherwise` answers (same rule), or fails the test with `LookupError`.

    Args:
        routes: Initial routes, one answer each.
        ok: How an answer given as a dict becomes a response (a provider's success envelope).
    """

    def __init__(
        self,
        routes: Mapping[tuple[str, str], Answer] | None = None,
        *,
        ok: Callable[[dict[str, Any]], httpx.Response] = json_ok,
    ) -> None:
        self.ok = ok
        self.routes: dict[tuple[str, str], list[Responder]] = {}
        self.fallback: list[Responder] = []
        self.requests: list[httpx.Request] = []
        for (method, path), answer in (routes or {}).items():
            self.on(method, path, answer)

    def on(self, method: str, path: str, *answers: Answer) -> None:
        """Answer the next requests to (method, path) with `answers` in order; the last repeats."""
        self.routes[(method, path)] = [self._responder(a) for a in answers]

    def otherwise(self, *answers: Answer) -> None:
        """Answer requests that match no route with `answers` in order; the last repeats."""
        self.fallback = [self._responder(a) for a in answers]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        responders = self.routes.get((request.method, request.url.path)) or self.fallback
        if not responders:
            raise LookupError(f"no route {request.method} {request.url.path}")
        responder = responders.pop(0) if len(responders) > 1 else responders[0]
        return responder(request)

    def transport(self) -> httpx.MockTransport:
        """A transport that sends every request to this fake."""
        return httpx.MockTransport(self)

    def calls(self, method: str, path: str) -> list[httpx.Request]:
        """The requests seen to (method, path)."""
        return [r for r in self.requests if (r.method, r.url.path) == (method, path)]

    @property
    def trail(self) -> list[str]:
        """Every request seen as `METHOD /path`."""
        return [f"{r.method} {r.url.path}" for r in self.requests]

    def bodies(self) -> list[Any]:
        """The JSON body of every request seen."""
        return [json.loads(r.content) for r in self.requests]

    def _responder(self, answer: Answer) -> Responder:
        if isinstance(answer, httpx.Response):
            return lambda _request: answer
        if isinstance(answer, dict):
            response = self.ok
            return lambda _request: response(answer)
        return answer
