"""Scripted faults: what makes the sandbox a hostile, realistic outside world.

Rules are appended with `POST /_admin/faults` and checked in order for every provider request;
the first rule that fires decides the answer. A rule:

- `provider` (required) and `kind` (required): `status` (a 5xx in the provider's own error body),
  `slow` (answer normally after `delay_s`), `timeout` (wait `delay_s`, default 30, then a 504),
  `malformed` (a truncated JSON body with status 200), `html` (an HTML error page with a 502),
  `session_expired` (the request's credential answers the provider's real session error on every
  request from now on, until re-authorized), `rate_limit` (the provider's real 429).
- `path` (substring of the path below the provider's prefix) and `method`: which requests match.
- `status`: the status of a `status` fault (default 503).
- `count`: how many requests the rule affects (default 1; null = unlimited).
- `probability`: the chance that a matching request is affected, drawn from an RNG seeded with
  the sandbox seed, so a run is reproducible (default 1).
- `delay_s`: the wait of `slow` (default 2 s) and `timeout` (default 30 s).
- `retry_after`: seconds in the `Retry-After` header of a `rate_limit` fault; null sends no reset
  header at all.
- `skip`: let the first N matching requests through before the rule starts firing.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from tikflow.emulator.payloads import KINDS, MAX_RULES, FaultRuleInput, PayloadError
from tikflow.emulator.routing import Provider
from tikflow.emulator.state import World

__all__ = ["KINDS", "FaultRule", "Faults"]
#: A body cut off mid-way, as a dropped connection behind a proxy leaves it.
_TRUNCATED = '{"status":"success","statusCode":0,"data":{"items":[{"id":"7'
_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass
class FaultRule:
    """One scripted fault (fields as in this module's docstring); `seen`/`fired` count use."""

    provider: str
    kind: str
    path: str | None = None
    method: str | None = None
    status: int = 503
    count: int | None = 1
    probability: float = 1.0
    delay_s: float | None = None
    retry_after: float | None = None
    skip: int = 0
    seen: int = 0
    fired: int = 0

    def matches(self, provider: str, method: str, path: str) -> bool:
        """Whether this rule is about a request (`path` below the provider's prefix)."""
        if provider != self.provider:
            return False
        if self.path and self.path not in path:
            return False
        return not (self.method and self.method.upper() != method)


@dataclass
class Faults:
    """The active fault rules, and the seeded RNG their probabilities draw from."""

    seed: int
    rules: list[FaultRule] = field(default_factory=list)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def add(self, rules: list[FaultRuleInput]) -> None:
        """Append validated rules, all or none.

        Raises:
            PayloadError: They would take the sandbox past `MAX_RULES` rules.
        """
        if len(self.rules) + len(rules) > MAX_RULES:
            raise PayloadError(f"at most {MAX_RULES} fault rules at once; DELETE /_admin/faults first")
        self.rules.extend(FaultRule(**rule.model_dump()) for rule in rules)

    def clear(self) -> None:
        """Drop every rule."""
        self.rules.clear()

    def fire(self, provider: str, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, if any (counting the request against rules)."""
        for rule in self.rules:
            if not rule.matches(provider, method, path):
                continue
            rule.seen += 1
            if rule.seen <= rule.skip:
                continue
            if rule.count is not None and rule.fired >= rule.count:
                continue
            if rule.probability < 1.0 and self.rng.random() >= rule.probability:
                continue
            rule.fired += 1
            return rule
        return None


async def faulty_answer(
    rule: FaultRule, provider: Provider, world: World, request: Request
) -> Response | None:
    """The answer a fired rule gives, or None when the provider should answer (maybe later)."""
    if rule.kind == "status":
        return provider.server_error(rule.status)
    if rule.kind == "slow":
        await asyncio.sleep(rule.delay_s if rule.delay_s is not None else 2.0)
        return None
    if rule.kind == "timeout":
        await asyncio.sleep(rule.delay_s if rule.delay_s is not None else 30.0)
        return provider.server_error(504)
    if rule.kind == "malformed":
        return Response(_TRUNCATED, status_code=200, media_type="application/json")
    if rule.kind == "html":
        return Response(_HTML, status_code=502, media_type="text/html")
    if rule.kind == "session_expired":
        if provider.session_expired is not None:
            provider.session_expired(world, request)
        # The provider module answers the real session error, now and until re-authorized.
        return None
    return provider.rate_limited(rule.retry_after)
