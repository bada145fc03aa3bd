"""What the sandbox accepts as a request body: bounded JSON, and typed admin payloads.

Every JSON body (admin and provider routes) goes through `json_body`: bodies nested deeper than
`MAX_DEPTH` are refused before any handler sees them (Python's parser would raise `RecursionError`
on a 100,000-deep one, which nothing caught). Admin payloads are validated whole by the models
here before anything is stored: a fault rule or config value of the wrong type used to be stored
and then failed every later request, and an unbounded `tick` froze the process.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "KINDS",
    "MAX_DEPTH",
    "ConfigUpdate",
    "ExpireInput",
    "FaultKind",
    "FaultRuleInput",
    "FaultsInput",
    "KeysInput",
    "PayloadError",
    "ReauthorizeInput",
    "TickInput",
    "json_body",
    "problems",
]

#: The deepest nesting a body may have: provider bodies are a few levels deep, admin ones three.
MAX_DEPTH = 32
#: The most rules the sandbox holds at once (each request is checked against all of them).
MAX_RULES = 1000
#: The most items one `tick` makes: a test's worth of new activity, in milliseconds.
MAX_TICK = 1000

FaultKind = Literal["status", "slow", "timeout", "malformed", "html", "session_expired", "rate_limit"]
KINDS: tuple[str, ...] = get_args(FaultKind)

_Count = Annotated[int, Field(ge=0, le=1_000_000_000)]
_Text = Annotated[str, Field(max_length=10_000)]
_Name = Annotated[str, Field(min_length=1, max_length=1_000)]


class PayloadError(ValueError):
    """A body that cannot be parsed; the message is one line."""


def json_body(raw: bytes) -> Any:
    """The parsed JSON of a request body (None when empty).

    Raises:
        PayloadError: Not JSON, or nested deeper than `MAX_DEPTH`.
    """
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except RecursionError:
        raise PayloadError(f"the body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise PayloadError(f"the body is not JSON: {str(exc).splitlines()[0]}") from None
    if _depth(value) > MAX_DEPTH:
        raise PayloadError(f"the body nests deeper than {MAX_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (iteratively: the value may be deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        stack.extend((child, level + 1) for child in children)
    return deepest


def problems(exc: ValidationError, what: str) -> str:
    """A validation error as one line: `what.field: message; …` (the first three problems)."""
    parts = []
    for error in exc.errors(include_url=False)[:3]:
        where = ".".join(str(part) for part in (what, *error["loc"]))
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class _Payload(BaseModel):
    # Strict: "2" is not a number and true is not 1 here; a sandbox test wants its typo refused.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class FaultRuleInput(_Payload):
    """One fault rule as posted (fields as in `tikflow.emulator.faults`)."""

    provider: _Name
    kind: FaultKind
    path: _Text | None = None
    method: Annotated[str, Field(max_length=10)] | None = None
    status: Annotated[int, Field(ge=100, le=599)] = 503
    count: _Count | None = 1
    probability: Annotated[float, Field(ge=0, le=1)] = 1.0
    delay_s: Annotated[float, Field(ge=0, le=600)] | None = None
    retry_after: Annotated[float, Field(ge=0, le=10_000_000)] | None = None
    skip: _Count = 0


class FaultsInput(_Payload):
    """`POST /_admin/faults`."""

    rules: Annotated[list[FaultRuleInput], Field(max_length=MAX_RULES)]


class TickInput(_Payload):
    """`POST /_admin/tick`: new activity, at most `MAX_TICK` items of each kind."""

    comments: Annotated[int, Field(ge=0, le=MAX_TICK)] = 0
    video_id: _Name | None = None
    hashtag: _Name | None = None
    text: _Text | None = None
    messages: Annotated[int, Field(ge=0, le=MAX_TICK)] = 0
    message_requests: Annotated[int, Field(ge=0, le=MAX_TICK)] = 0
    followers: Annotated[
        dict[_Name, Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)]], Field(max_length=100)
    ] = Field(default_factory=dict)


_PerMinute = Annotated[int, Field(ge=0, le=1_000_000)]
_Seconds = Annotated[int, Field(ge=1, le=10 * 365 * 86_400)]


class ConfigUpdate(_Payload):
    """`POST /_admin/config`: any `EmulatorConfig` field but `clock`, typed and bounded.

    Only the fields a request sets are applied (`changes`); the defaults here are never used.
    """

    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    comment_interval_s: Annotated[float, Field(ge=0, le=365 * 86_400)] = 0.0
    publish_polls: Annotated[int, Field(ge=0, le=1_000)] = 0
    tiktok_token_ttl_s: _Seconds = 0
    tiktok_refresh_ttl_s: _Seconds = 0
    tiktok_per_minute: Annotated[dict[_Name, _PerMinute], Field(max_length=100)] = Field(default_factory=dict)
    tiktok_default_per_minute: _PerMinute = 0
    tiktok_min_chunk_bytes: Annotated[int, Field(ge=1, le=2**31)] = 0
    tiktok_app_audited: bool = False
    tiktok_account_private: bool = True
    tiktok_unaudited_daily_creators: _Count = 0
    tiktok_moderation_s: Annotated[float, Field(ge=0, le=30 * 86_400)] = 0.0
    tikapi_per_second: _PerMinute = 0
    tikapi_daily: _Count = 0
    tikapi_retry_after: Annotated[float, Field(ge=0, le=10_000_000)] | None = None
    highlevel_burst: _Count = 0
    highlevel_burst_window_s: Annotated[float, Field(gt=0, le=86_400)] = 0.0
    highlevel_daily: _Count = 0
    dumpling_per_minute: _PerMinute = 0
    dumpling_credits: Annotated[int, Field(ge=0, le=10**12)] = 0
    socialapi_per_minute: _PerMinute = 0
    webhook_url: Annotated[str, Field(max_length=2_000, pattern=r"^https?://[^\s/]+(/\S*)?$")] | None = None
    webhook_retry_delays_s: Annotated[
        tuple[Annotated[float, Field(ge=0, le=72 * 3_600)], ...], Field(max_length=100)
    ] = ()
    webhook_delay_s: Annotated[float, Field(ge=0, le=3_600)] = 0.0
    webhook_duplicates: Annotated[int, Field(ge=0, le=10)] = 0
    webhook_out_of_order: bool = False

    def changes(self) -> dict[str, Any]:
        """The fields the request set (`tikapi_retry_after: null` included: it means no header)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class ReauthorizeInput(_Payload):
    """`POST /_admin/reauthorize`."""

    provider: _Name = "tikapi"
    account_key: _Name | None = None


class KeysInput(_Payload):
    """`POST /_admin/keys`."""

    provider: _Name
    account_key: _Name | None = None
    username: _Name | None = None
    api_key: _Name | None = None
    key: _Name | None = None


class ExpireInput(_Payload):
    """`POST /_admin/expire_token`."""

    provider: _Name
    account_key: _Name | None = None
