"""Scriptable faults and quotas: what makes the sandbox a hostile, realistic outside world.

Rules are appended with `POST /_admin/faults` and matched per request in order. Quotas follow
each provider's documented limits (configurable in `SandboxConfig`).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tikflow.sandbox.state import World

__all__ = ["FaultRule", "Faults", "Quotas"]

KINDS = ("status", "slow", "timeout", "malformed", "html", "session_expired", "rate_limit")


@dataclass
class FaultRule:
    """One scripted fault (see the module docstring of `tikflow.sandbox.app` for the fields)."""

    provider: str
    kind: str
    path: str | None = None
    method: str | None = None
    status: int = 503
    count: int | None = 1
    probability: float = 1.0
    delay_s: float = 30.0
    retry_after: float | None = None
    skip: int = 0
    seen: int = 0
    fired: int = 0

    def matches(self, provider: str, request: Request) -> bool:
        """Whether this rule is about `request`."""
        if provider != self.provider:
            return False
        if self.path and self.path not in request.url.path:
            return False
        return not (self.method and self.method.upper() != request.method)


@dataclass
class Faults:
    """The active fault rules."""

    rules: list[FaultRule] = field(default_factory=list)

    def add(self, raw: dict[str, Any]) -> FaultRule:
        """Validate and append a rule."""
        if raw.get("kind") not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        known = set(FaultRule.__dataclass_fields__) - {"seen", "fired"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        rule = FaultRule(**raw)
        self.rules.append(rule)
        return rule

    async def apply(self, world: World, provider: str, request: Request) -> Response | None:
        """The faulty answer for this request, or None to answer normally."""
        for rule in self.rules:
            if not rule.matches(provider, request):
                continue
            rule.seen += 1
            if rule.seen <= rule.skip:
                continue
            if rule.count is not None and rule.fired >= rule.count:
                continue
            if rule.probability < 1.0 and world.rng.random() >= rule.probability:
                continue
            rule.fired += 1
            return await _fault_response(world, provider, rule, request)
        return None


async def _fault_response(world: World, provider: str, rule: FaultRule, request: Request) -> Response | None:
    if rule.kind == "status":
        body = (
            {"status": "error", "message": "Internal server error"}
            if provider == "tikapi"
            else {"error": "internal"}
        )
        return JSONResponse(body, status_code=rule.status)
    if rule.kind in ("slow", "timeout"):
        await asyncio.sleep(rule.delay_s)
        return None if rule.kind == "slow" else JSONResponse({"error": "gateway timeout"}, status_code=504)
    if rule.kind == "malformed":
        return Response('{"status":"success","itemList":[{"id":', media_type="application/json")
    if rule.kind == "html":
        return Response(
            "<html><body><h1>502 Bad Gateway</h1></body></html>", status_code=502, media_type="text/html"
        )
    if rule.kind == "session_expired":
        if provider == "tikapi":
            key = request.headers.get("x-account-key")
            if key:
                world.expired_account_keys.add(key)
        elif provider == "socialapi":
            world.socialapi_expired = True
        return None  # the provider module answers the real session error from now on
    if rule.kind == "rate_limit":
        headers = {"Retry-After": str(int(rule.retry_after))} if rule.retry_after is not None else {}
        return rate_limited(provider, headers)
    return None


def rate_limited(provider: str, headers: dict[str, str] | None = None) -> Response:
    """The provider's real 429 body."""
    bodies: dict[str, Any] = {
        "tikapi": {"status": "error", "message": "API Key Rate-Limit reached."},
        "tiktok": {
            "error": {"code": "rate_limit_exceeded", "message": "Too many requests.", "log_id": "sandbox"}
        },
        "highlevel": {"statusCode": 429, "message": "Too Many Requests"},
        "dumpling": {"error": "Rate limit exceeded"},
        "socialapi": {"error": {"code": "rate_limit_exceeded", "message": "Plan quota exceeded"}},
    }
    return Response(
        json.dumps(bodies[provider]), status_code=429, headers=headers or {}, media_type="application/json"
    )


class Quotas:
    """Sliding-window request counters per (provider, key, window)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.windows: dict[tuple[str, str, float], deque[float]] = defaultdict(deque)

    def take(self, provider: str, key: str, limit: float, window_s: float) -> tuple[bool, int, float]:
        """Count one request; returns (allowed, remaining, seconds until a slot frees)."""
        if limit <= 0:
            return True, -1, 0.0
        now = self.world.now()
        times = self.windows[(provider, key, window_s)]
        while times and times[0] <= now - window_s:
            times.popleft()
        if len(times) >= limit:
            return False, 0, max(times[0] + window_s - now, 0.0)
        times.append(now)
        return True, int(limit - len(times)), 0.0
