"""Routes of a provider stand-in: path templates matched to handlers.

Each provider declares its endpoints with the path templates of its docs
(`/social-media-posting/{locationId}/posts/{id}`), so the request counts in `GET /_admin/state`
read like the docs, and path parameters reach the handler by name.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from tikflow.emulator.ratelimit import Quotas
from tikflow.emulator.state import World

__all__ = ["Match", "Provider", "Router"]

H = TypeVar("H")
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Match(Generic[H]):
    """A request matched to a route: its handler, path parameters and template."""

    handler: H
    params: dict[str, str]
    template: str


@dataclass
class Router(Generic[H]):
    """An ordered table of (method, path template) → handler."""

    _routes: list[tuple[str, re.Pattern[str], str, H]] = field(default_factory=list)

    def add(self, method: str, template: str, handler: H) -> None:
        """Declare that `method template` is answered by `handler`."""
        parts = (
            f"(?P<{m.group(1)}>[^/]+)" if (m := _PARAM.fullmatch(part)) else re.escape(part)
            for part in template.split("/")
        )
        pattern = re.compile("^" + "/".join(parts) + "$")
        self._routes.append((method, pattern, template, handler))

    def match(self, method: str, path: str) -> Match[H] | None:
        """The route answering `method path`, or None when the provider has no such endpoint."""
        for route_method, pattern, template, handler in self._routes:
            found = pattern.match(path)
            if found and route_method == method:
                return Match(handler, found.groupdict(), template)
        return None

    def template(self, method: str, path: str) -> str:
        """The documented template of `path` (the path itself when it is no known endpoint)."""
        for route_method, pattern, template, _ in self._routes:
            if route_method == method and pattern.match(path):
                return template
        return path


Answer = Callable[[World, Quotas, Request, str], Awaitable[Response]]


@dataclass(frozen=True)
class Provider:
    """One provider stand-in as the app mounts it.

    Attributes:
        name: The provider's name (`tikapi`, `tiktok`, …), as in fault rules and request counts.
        prefix: Where it is mounted; the sandbox URL plus this prefix is its base URL.
        answer: Answers a request at a path below the prefix (auth, quotas, then the endpoint).
        template: The documented path template of a method and path below the prefix.
        server_error: The provider's own body for a 5xx status (scripted `status` faults).
        rate_limited: The provider's own 429, with `Retry-After` seconds or no reset header (None).
        session_expired: Makes the credential of a request answer the provider's session error
            from now on (scripted `session_expired` faults); None where the provider has none.
        echoed_headers: Request headers every answer carries back, scripted faults included.
    """

    name: str
    prefix: str
    answer: Answer
    template: Callable[[str, str], str]
    server_error: Callable[[int], Response]
    rate_limited: Callable[[float | None], Response]
    session_expired: Callable[[World, Request], None] | None = None
    echoed_headers: tuple[str, ...] = ()
