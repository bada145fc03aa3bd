"""The recipe language as pydantic models: pure data, no I/O.

A recipe is a tree of steps; `RecipeWorkflow` walks it. The same models give the loader its
checks (`extra="forbid"` everywhere, a description on every field) and give editors their JSON
Schema (`tikflow schema`, committed as `definitions/recipe.schema.json`). YAML keys that are
Python keywords (`if`, `with`, `as`, `else`) are aliases.

Run `python -m workflows.models` to print the schema.
"""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    Tag,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)

__all__ = [
    "DEFAULT_BACKFILL_OVERLAP",
    "DEFAULT_RETRY_INITIAL",
    "DEFAULT_RETRY_MAX_INTERVAL",
    "ERROR_TYPES",
    "EXPRESSION_NAMES",
    "MAX_APPROVAL_LABELS",
    "MAX_DURATION",
    "MAX_INPUT_DEPTH",
    "MAX_LIMIT",
    "MAX_PACE_PER_DAY",
    "NEW_ONLY_FORMS",
    "RESERVED_NAMES",
    "STEP_KINDS",
    "STEP_MODEL_KINDS",
    "WEBHOOK_KINDS",
    "ApprovalStep",
    "CallStep",
    "CatchClause",
    "ErrorMatch",
    "FailStep",
    "ForEachStep",
    "IfStep",
    "InputSpec",
    "NewOnly",
    "NotifyStep",
    "NotifyTarget",
    "OnFailure",
    "Pace",
    "ParallelStep",
    "PollTrigger",
    "Recipe",
    "RetryPolicy",
    "RunRecipeStep",
    "ScheduleOverlap",
    "ScheduleTrigger",
    "SetStep",
    "Step",
    "Trigger",
    "TryStep",
    "UntilStep",
    "WaitForStep",
    "WaitStep",
    "WebhookCredential",
    "WebhookTrigger",
    "input_value_problem",
    "pace_every",
    "parse_duration",
    "recipe_json_schema",
]

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

#: The longest duration a recipe may give (a wait, a timeout, a deadline, a poll interval).
#: Temporal would take up to ~10,000 years (protobuf's Duration) and Python's timedelta
#: 999,999,999 days; a year is far beyond any automation's need and keeps every sum of
#: durations (a deadline added to now) well inside both.
MAX_DURATION = timedelta(days=365)

#: What `RecipeWorkflow` uses for a `retry:` that leaves these out (see `workflows.policy`).
DEFAULT_RETRY_INITIAL = timedelta(seconds=1)
DEFAULT_RETRY_MAX_INTERVAL = timedelta(minutes=5)

_DURATION_HELP = "A duration: a number and a unit, `ms`, `s`, `m`, `h` or `d` (e.g. `30s`, `5m`)"


def _format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{round(seconds * 1000)}ms"


def _duration_field(minimum: timedelta) -> Any:
    """The schema side of a duration type: its pattern and its range in the description."""
    return Field(
        pattern=_DURATION_RE.pattern,
        description=f"{_DURATION_HELP}; from {_format_duration(minimum) if minimum else '0s'} "
        f"to {_format_duration(MAX_DURATION)}.",
        examples=["30s", "5m", "1h"],
    )


def _at_least(minimum: timedelta) -> AfterValidator:
    """The value side: no shorter than `minimum`, no longer than `MAX_DURATION` (`parse_duration`)."""

    def check(text: str) -> str:
        if parse_duration(text) < minimum:
            raise ValueError(f"{text} is too short: at least {_format_duration(minimum)}")
        return text

    return AfterValidator(check)


_SECOND = timedelta(seconds=1)
_RETRY_FLOOR = timedelta(milliseconds=100)
_MINUTE = timedelta(minutes=1)
_TICK = timedelta(milliseconds=1)

#: Any duration from 0s to a year (a `wait`).
Duration = Annotated[str, _duration_field(timedelta(0)), _at_least(timedelta(0))]
#: A call's timeout, a deadline, a total retry time, the pause between `until` calls: at least 1s
#: (Temporal refuses a zero timeout; less than a second cannot even hold one HTTP round trip).
LongDuration = Annotated[str, _duration_field(_SECOND), _at_least(_SECOND)]
#: A wait between retries: at least 100ms (faster is hammering a provider that is failing).
RetryInterval = Annotated[str, _duration_field(_RETRY_FLOOR), _at_least(_RETRY_FLOOR)]
#: The wait for a re-authorization: at least a minute, time for a person to act.
ReauthDeadline = Annotated[str, _duration_field(_MINUTE), _at_least(_MINUTE)]
#: A poll interval as the model accepts it: positive. Recipe files are held to a longer minimum
#: by the loader (`tikflow.loader.MIN_POLL_EVERY`); tests and the demo poll faster on purpose.
PollInterval = Annotated[str, _duration_field(_TICK), _at_least(_TICK)]

#: The largest `for_each` limit: more items than one run's history could ever hold.
MAX_LIMIT = 1_000_000

#: A whole number written as one: `true` and `2.0` are refused, not read as 1 and 2.
WholeNumber = Annotated[int, Strict()]

Expr = Annotated[
    str,
    Field(description="A template: text with `{{ expressions }}` (sandboxed Jinja2)."),
]
StepId = Annotated[
    str,
    Field(
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Name of the step's result, read later as `steps.<id>` (lowercase, digits, `_`).",
    ),
]


@functools.lru_cache(maxsize=1024)
def parse_duration(text: str) -> timedelta:
    """Turn a recipe duration (`30s`, `5m`, `1.5h`, `500ms`, `1d`) into a timedelta.

    Remembered per text (a call step parses its timeout every poll); a timedelta is immutable.

    Raises:
        ValueError: `text` is not a duration, or one longer than `MAX_DURATION`.
    """
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30s, 5m, 1h)")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    # Checked before timedelta sees it: `99999999999d` overflows it, 400 digits are infinity.
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text} is too long: at most {_format_duration(MAX_DURATION)}")
    return timedelta(seconds=seconds)


#: Names every expression can read (besides loop variables): what `RecipeWorkflow` puts in scope.
EXPRESSION_NAMES = frozenset(
    {"inputs", "steps", "vars", "run", "now", "result", "range", "true", "false", "none"}
)
#: Names a `for_each` item may not take: the scope's own names (hiding `steps` or `inputs` from
#: the nested steps), Jinja's operators and its names inside templates (`loop`, macro internals).
RESERVED_NAMES = (
    EXPRESSION_NAMES
    | frozenset({"and", "or", "not", "in", "is", "if", "else", "loop", "self", "caller", "varargs", "kwargs"})
    | frozenset({"error"})
)  # `error`: what a `try` step's `catch` steps read (`TryStep`); `failure` is refused by the loader
# in `on_failure` steps only (a model check would refuse a running run's snapshot when it replays)


class _Strict(BaseModel):
    """Unknown keys are errors; aliases are how YAML spells keyword fields."""

    model_config = ConfigDict(
        extra="forbid",
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
    )


class RetryPolicy(_Strict):
    """How a failing call is retried (transient failures only; rejections are never retried)."""

    max_attempts: WholeNumber | None = Field(
        default=None, ge=1, le=10_000, description="Give up after this many attempts (default 20)."
    )
    initial: RetryInterval | None = Field(
        default=None, description="First wait between attempts (default 1s)."
    )
    backoff: Annotated[float, Strict(), Field(allow_inf_nan=False)] | None = Field(
        default=None, ge=1, le=100, description="Each wait is the previous one times this (default 2)."
    )
    max_interval: RetryInterval | None = Field(
        default=None, description="Longest wait between attempts (default 5m)."
    )
    max_duration: LongDuration | None = Field(
        default=None, description="Give up when retrying has taken this long in total."
    )
    rate_limit_deadline: LongDuration | None = Field(
        default=None,
        description="Give up waiting out rate limits once the limit would reset this long after the "
        "call started: the step fails with type `RateLimited` (a `try` step's `catch` can take it). "
        "Default: wait as long as the provider asks.",
    )

    @model_serializer(mode="wrap")
    def _without_unset_deadline(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A policy without the deadline serializes as it did before it existed (the workflow
        # input in history and the committed replay histories keep their shape).
        data: dict[str, Any] = handler(self)
        if self.rate_limit_deadline is None:
            data.pop("rate_limit_deadline", None)
        return data

    @model_validator(mode="after")
    def _max_interval_not_below_initial(self) -> RetryPolicy:
        # Temporal refuses a policy whose longest wait is shorter than its first one; the
        # defaults count, as the run applies them (`initial: 10m` alone is over the 5m default).
        initial = parse_duration(self.initial) if self.initial else DEFAULT_RETRY_INITIAL
        longest = parse_duration(self.max_interval) if self.max_interval else DEFAULT_RETRY_MAX_INTERVAL
        if longest < initial:
            raise ValueError(
                f"max_interval ({self.max_interval or _format_duration(longest) + ' by default'}) "
                f"is shorter than initial ({self.initial or _format_duration(initial) + ' by default'})"
            )
        return self


class InputSpec(_Strict):
    """A typed recipe input, set with `tikflow run --input name=value`."""

    type: Literal["string", "integer", "number", "boolean", "list", "object"] = Field(
        default="string", description="The value's type; command-line values are converted to it."
    )
    default: Any = Field(default=None, description="Value used when none is given.")
    required: bool | None = Field(
        default=None, description="Must be given at start (default: required when there is no default)."
    )
    description: str = Field(default="", description="What the input is for.")
    secret: Literal[False] = Field(
        default=False,
        description="Inputs are stored in Temporal history, so they can never be secrets: "
        "put keys in `tikflow credentials` and name the credential instead.",
    )

    @property
    def is_required(self) -> bool:
        """Whether a value must be supplied at start."""
        return self.required if self.required is not None else self.default is None

    def accepts(self, value: Any) -> bool:
        """Whether `value` is of the input's type (`true` is not an integer, nor a number)."""
        if self.type in ("integer", "number") and isinstance(value, bool):
            return False
        return isinstance(value, _INPUT_TYPES[self.type])

    def coerce(self, text: str) -> Any:
        """Convert a command-line value (`--input name=TEXT`) to the input's type.

        A list or object is JSON when it starts with `[` or `{`, else comma-separated text.

        Raises:
            ValueError: the text is not a value of that type.
        """
        kind = self.type
        if kind == "string":
            return text
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
        if kind == "boolean":
            lowered = text.strip().lower()
            if lowered in ("true", "yes", "1", "on"):
                return True
            if lowered in ("false", "no", "0", "off"):
                return False
            raise ValueError(f"not a boolean: {text!r}")
        if text.strip()[:1] in "[{":
            _check_json_depth(text)
            value = json.loads(text)
        else:
            value = text.split(",")
        if not self.accepts(value):
            raise ValueError(f"not a {kind}: {text!r}")
        return value


_INPUT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list,),
    "object": (dict,),
}

#: Deepest nesting of an input's value (a list or object input); the recipe takes the rest of
#: what Temporal's decoder allows (see `tikflow.loader.MAX_DEPTH`).
MAX_INPUT_DEPTH = 64


def input_value_problem(value: Any) -> str | None:
    """Why a run cannot carry `value` as an input (NaN, infinity, nested too deep), or None."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"{item} is not a number a run can keep (NaN and infinity become null in its history)"
        if isinstance(item, dict | list):
            if depth >= MAX_INPUT_DEPTH:
                return f"nested more than {MAX_INPUT_DEPTH} levels deep"
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return None


_JSON_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _check_json_depth(text: str) -> None:
    """Refuse JSON nested deeper than `MAX_INPUT_DEPTH` before `json.loads` recurses into it.

    Raises:
        ValueError: too deep.
    """
    depth = 0
    for match in _JSON_STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_INPUT_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_INPUT_DEPTH} levels")
        elif token in "]}":
            depth -= 1


class PollTrigger(_Strict):
    """Run the steps, sleep `every`, repeat: a long-running monitor."""

    every: PollInterval = Field(
        description="Time between the starts of two polls (in a recipe file: at least 10s)."
    )
    max_polls: WholeNumber | None = Field(
        default=None,
        ge=1,
        le=1_000_000_000,
        description="Stop after this many polls (default: run until stopped).",
    )
    reads: Literal["local", "activity"] = Field(
        default="local",
        description="How the provider reads of a poll run: `local` (default) as Temporal local "
        "activities inside the workflow task, an idle poll costing one workflow task and a timer; "
        "`activity` as regular activities on the provider's queue (each shown as a pending "
        "activity while it runs). Side effects are always regular activities.",
    )


#: `schedule.overlap`: Temporal's `ScheduleOverlapPolicy`, named as a recipe writes it.
ScheduleOverlap = Literal["skip", "buffer_one", "buffer_all", "allow_all", "cancel_other", "terminate_other"]
#: A backfill's overlap policy unless told: each missed time runs, one after another, so even a
#: `skip` schedule gets all of them and never two runs at once. (The schedule's own `skip` would
#: drop every missed time but the first, since Temporal starts them all at the same moment.)
DEFAULT_BACKFILL_OVERLAP: ScheduleOverlap = "buffer_all"
#: Temporal's floor for a schedule's catch-up window (a shorter one is read as 10s).
_CATCHUP_FLOOR = timedelta(seconds=10)
#: `schedule.catchup_window`: 10s to a year.
CatchupWindow = Annotated[str, _duration_field(_CATCHUP_FLOOR), _at_least(_CATCHUP_FLOOR)]


class ScheduleTrigger(_Strict):
    """Run the steps once per cron tick, as a Temporal Schedule."""

    cron: str = Field(description="Cron expression, 5 fields (`*/15 * * * *`).")
    timezone: str = Field(default="UTC", description="IANA time zone the cron expression is read in.")
    overlap: ScheduleOverlap = Field(
        default="skip",
        description="What a cron time does while a run it started earlier is still going: `skip` "
        "(default, Temporal's: no run starts), `buffer_one` (start once the going run ends; at most "
        "one waits), `buffer_all` (start each in turn), `allow_all` (start now, beside it), "
        "`cancel_other` (cancel the going run, then start), `terminate_other` (terminate it, no "
        "cleanup, then start).",
    )
    catchup_window: CatchupWindow | None = Field(
        default=None,
        description="After an outage of the Temporal server, cron times missed by no more than this "
        "still start a run; older ones are dropped (default: Temporal's, 365 days).",
    )
    jitter: Duration | None = Field(
        default=None,
        description="Start each run up to this much later than its cron time, a random amount "
        "(spreads schedules that share a time); shorter than the time between two cron times "
        "(default: none).",
    )


#: A credential's name, as `tikflow credentials set` accepts it.
_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: A webhook route's name: the last part of its URL, `/hooks/<route>` (the ingress's rule).
_ROUTE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class WebhookTrigger(_Strict):
    """Start one run per event a sender POSTs to the ingress at `/hooks/<route>`.

    Expressions here read `event`: `event.body` (the JSON body), `event.headers` (the non-secret
    headers, lowercase names), `event.id` (the sender's delivery id), `event.received_at`.
    """

    route: str = Field(
        pattern=_ROUTE_NAME,
        description="The route's name: senders POST to `/hooks/<route>` on the ingress.",
    )
    auth: Literal["tiktok", "standard", "token"] = Field(
        description="How senders authenticate: `tiktok` (TikTok-Signature, the `tiktok` credential's "
        "client_secret), `standard` (Standard Webhooks, an `ingress` credential's signing_secret) or "
        "`token` (`Authorization: Bearer`, an `ingress` credential's token)."
    )
    credential: str = Field(
        pattern=_CREDENTIAL_NAME.pattern,
        description="Name of the credential holding the secret or token (never the secret itself).",
    )
    filter: Expr | None = Field(
        default=None, description="Start a run only for events where this is true (default: every event)."
    )
    event_id: Expr | None = Field(
        default=None,
        description="The id that de-duplicates events (default: the sender's delivery id, "
        "`{{ event.id }}`): an event whose id was seen starts nothing new.",
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description='Recipe inputs taken from the event, e.g. `caption: "{{ event.body.caption }}"`.',
    )


class Trigger(_Strict):
    """When the recipe runs: omit for once; `poll` for a monitor; `schedule` for cron; `webhook` per event."""

    poll: PollTrigger | None = Field(default=None, description="Loop forever with a sleep between polls.")
    schedule: ScheduleTrigger | None = Field(default=None, description="Start a run on a cron schedule.")
    webhook: WebhookTrigger | None = Field(
        default=None, description="Start a run per event POSTed to the ingress's `/hooks/<route>`."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        if sum(kind is not None for kind in (self.poll, self.schedule, self.webhook)) != 1:
            raise ValueError("a trigger has exactly one of `poll`, `schedule` or `webhook`")
        return self


class WebhookCredential(_Strict):
    """A webhook whose URL is a stored credential, so its token never enters a run's history."""

    credential: str = Field(
        description="Name of the `webhook` credential holding the URL "
        "(`tikflow credentials set webhook NAME url=…`); resolved by the worker when it sends.",
        json_schema_extra={"pattern": _CREDENTIAL_NAME.pattern},
    )

    @field_validator("credential")
    @classmethod
    def _a_name(cls, name: str) -> str:
        if not _CREDENTIAL_NAME.fullmatch(name):
            raise ValueError(
                "not a credential name (letters, digits, `-` and `_`, at most 64); the URL itself "
                "goes in the store: tikflow credentials set webhook NAME url=…"
            )
        return name


#: The tags of a `webhook:` value's two forms (pydantic puts them in error locations).
WEBHOOK_KINDS = ("url", "credential")


def _webhook_kind(value: Any) -> str:
    return "credential" if isinstance(value, dict | WebhookCredential) else "url"


#: A notification target: a URL template, or `{credential: NAME}` (only that branch's errors show).
Webhook = Annotated[
    Annotated[Expr, Tag("url")] | Annotated[WebhookCredential, Tag("credential")],
    Discriminator(_webhook_kind),
]


class NotifyTarget(_Strict):
    """Where notifications go: the log always, a webhook when given."""

    webhook: Webhook | None = Field(
        default=None,
        description="URL that receives a JSON POST per notification, or `{credential: NAME}` to "
        "use a stored `webhook` credential's URL (for URLs that carry a token).",
    )


class NewOnly(_Strict):
    """`new_only` as an object: the item key, where memory starts, and an optional watermark."""

    key: str = Field(min_length=1, description="The item field whose value identifies an item, e.g. `cid`.")
    from_: Literal["all", "now"] = Field(
        default="all",
        alias="from",
        description="`all`: the first poll acts on every item listed (as the string form does). "
        "`now`: the first poll of the step only records what is there and acts on none.",
    )
    after: Expr | None = Field(
        default=None,
        description="A watermark, e.g. `{{ item.create_time }}` (the item is `item`, or a "
        "`for_each`'s `as` name): only items whose value is greater than the greatest seen by "
        "this step are kept (numbers compared as numbers, else as text; an empty value is "
        "never past it).",
    )


def _new_only_form(value: Any) -> str:
    # One form's errors, not both: `{key: cid, from: later}` is told about `from`, not that it
    # is not a string either.
    return "object" if isinstance(value, dict | NewOnly) else "string"


#: The union tags of `new_only`'s two forms (the loader drops them from error locations).
NEW_ONLY_FORMS = ("string", "object")

#: `new_only`: a key field (the form recipes had first, serialized unchanged) or a `NewOnly`.
NewOnlySpec = Annotated[
    Annotated[str, Tag("string")] | Annotated[NewOnly, Tag("object")], Discriminator(_new_only_form)
]


class _StepBase(_Strict):
    id: StepId | None = Field(default=None, description="Name of the result, read later as `steps.<id>`.")
    name: str | None = Field(
        default=None, description="A human label for the step, shown in logs and graphs."
    )
    when: Expr | None = Field(
        default=None,
        alias="if",
        description="Run the step only when this expression is true (for `for_each`: per item).",
    )
    retry: RetryPolicy | None = Field(default=None, description="Retry policy for calls in this step.")
    timeout: LongDuration | None = Field(default=None, description="Longest one attempt of a call may take.")
    continue_on_error: bool = Field(
        default=False, description="On failure, record the error as the result and go on."
    )


#: The most calls a day `pace.per_day` may allow: each paced call of the last day is one
#: timestamp in the account's pacer workflow (`workflows.pacing`), carried across its
#: continue-as-new, so the bound keeps that state under ~250 kB.
MAX_PACE_PER_DAY = 10_000
#: The longest `pace.every`: a longer spacing is a schedule, not pacing.
MAX_PACE_EVERY = timedelta(days=1)


def pace_every(text: str) -> timedelta:
    """`pace.every` as a duration, from 1s to 1d; ValueError saying what is wrong otherwise."""
    every = parse_duration(text)
    if every < _SECOND:
        raise ValueError(f"{text} is too short: at least {_format_duration(_SECOND)}")
    if every > MAX_PACE_EVERY:
        raise ValueError(f"{text} is too long: at most {_format_duration(MAX_PACE_EVERY)}")
    return every


def _pace_every(text: str) -> str:
    if "{{" in text:
        return text  # a template (e.g. `{{ inputs.reply_every }}`): rendered when the call runs
    pace_every(text)
    return text


class Pace(_Strict):
    """How far apart one account's calls go out, counted across every recipe and worker using it.

    Counted per (provider, account) by that account's pacer workflow, so three recipes replying as
    the same TikTok account share one spacing and one daily budget; the waits are durable timers.
    """

    every: Annotated[str, AfterValidator(_pace_every)] | None = Field(
        default=None,
        description="At least this long between two paced calls of the account (from 1s to 1d), e.g. "
        "`8s`, or a template read when the call runs (e.g. `{{ inputs.reply_every }}`).",
    )
    per_day: WholeNumber | None = Field(
        default=None,
        ge=1,
        le=MAX_PACE_PER_DAY,
        description=f"At most this many paced calls of the account in any 24 hours "
        f"(1 to {MAX_PACE_PER_DAY}).",
    )

    @model_validator(mode="after")
    def _something_paced(self) -> Pace:
        if self.every is None and self.per_day is None:
            raise ValueError("pace needs `every`, `per_day` or both")
        return self


class CallStep(_StepBase):
    """Call a registered action (`tikflow actions` lists them) as a durable activity."""

    pace: Pace | None = Field(
        default=None,
        description="Space this side effect's calls per (provider, account) across every recipe and "
        "worker: `{every: 8s, per_day: 200}`; the run waits (phase `pacing`) for its slot.",
    )

    call: str = Field(description="Action name, e.g. `tikapi.hashtag_posts`.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="The action's inputs.")
    account: Expr | None = Field(default=None, description="Credential name to act as (default: `main`).")
    new_only: NewOnlySpec | None = Field(
        default=None,
        description="Keep only result items whose value at this key was not seen in an earlier call "
        "(kept across polls and continue-as-new); or an object with `key`, `from` and `after`.",
    )


class UntilStep(_StepBase):
    """Call an action every `every` until `until` is true or `deadline` passes."""

    until: Expr = Field(description="Stop when true; `result` is the latest call's result.")
    call: str = Field(description="Action name.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="The action's inputs.")
    account: Expr | None = Field(default=None, description="Credential name to act as (default: `main`).")
    every: LongDuration = Field(default="10s", description="Time between two calls.")
    deadline: LongDuration = Field(default="1h", description="Fail (or continue on error) after this long.")


class ForEachStep(_StepBase):
    """Run nested steps for every item of a list, up to `concurrency` at once."""

    for_each: Expr = Field(description="Expression giving a list, e.g. `{{ steps.videos.items }}`.")
    as_: str = Field(
        default="item",
        alias="as",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Name of the current item in the nested steps.",
    )
    concurrency: WholeNumber = Field(default=1, ge=1, le=100, description="Items processed at the same time.")
    limit: Annotated[int, Field(ge=0, le=MAX_LIMIT)] | Expr | None = Field(
        default=None, description="Process at most this many items (a number or an expression)."
    )
    steps: list[Step] = Field(min_length=1, description="Steps run per item.")
    new_only: NewOnlySpec | None = Field(
        default=None,
        description="Skip items whose value at this key was processed in an earlier run of this step "
        "(only processed items are remembered, so items cut by `limit` come back next poll); or an "
        "object with `key`, `from` and `after`.",
    )
    collect: Expr | None = Field(
        default=None,
        description="Evaluated after each item's steps; the values (lists concatenated) become "
        "`steps.<id>.items`, in item order.",
    )

    @field_validator("as_")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in EXPRESSION_NAMES:
            raise ValueError(f"{name!r} cannot name the item: it would hide `{name}` from the nested steps")
        if name in RESERVED_NAMES:
            raise ValueError(f"{name!r} cannot name the item: it is a word of the expression language")
        if name.startswith("_"):
            raise ValueError(f"{name!r} cannot name the item: names starting with _ are private")
        return name

    @field_validator("limit", mode="before")
    @classmethod
    def _whole_limit(cls, value: Any) -> Any:
        # One clear message instead of the int and the str branch's two; `true` and `2.5`
        # are not limits (lax ints would read `true` as 1).
        whole = isinstance(value, int) and not isinstance(value, bool)
        if (whole and not 0 <= value <= MAX_LIMIT) or not (whole or isinstance(value, str) or value is None):
            raise ValueError(
                f"limit must be a whole number from 0 to {MAX_LIMIT:,}, or an expression; got {value!r}"
            )
        return value


class IfStep(_StepBase):
    """Run `then` when the condition is true, else `else`."""

    when: Expr = Field(alias="if", description="The condition.")
    then: list[Step] = Field(min_length=1, description="Steps run when the condition is true.")
    else_: list[Step] = Field(default_factory=list, alias="else", description="Steps run otherwise.")


class WaitStep(_StepBase):
    """Sleep durably (a Temporal timer)."""

    wait: Duration = Field(description="How long to wait.")


def _wait_timeout(text: str) -> str:
    if "{{" in text:
        return text  # a template: rendered (and read as a duration) when the step runs
    parse_duration(text)
    return text


class WaitForStep(_StepBase):
    """Wait for a provider event routed to this run by its correlation key; the result is the event.

    Events are kept from the moment they reach the ingress, so one that comes before the step
    starts waiting is not lost. The result: the event (`id`, `type`, `key`, `received_at`,
    `headers`, `body`; TikTok's `content` decoded into `body.content`) and `timed_out: false`.
    """

    wait_for: Literal["tiktok"] = Field(
        description="Whose events: `tiktok` (the TikTok app's webhook, `/events/tiktok`)."
    )
    key: Expr = Field(
        description="The correlation key the provider's events carry (TikTok: the `publish_id` of "
        "posting events, `user:<open_id>` for `authorization.removed`)."
    )
    match: Expr | None = Field(
        default=None,
        description="Take only events for which this is true, e.g. "
        "`{{ event.type == 'post.publish.complete' }}` (default: the first event for the key).",
    )
    timeout: Annotated[str, AfterValidator(_wait_timeout)] = Field(
        default="1h",
        description=f"How long to wait: {_DURATION_HELP}, up to {_format_duration(MAX_DURATION)}, "
        "or a template giving one (`{{ inputs.event_wait }}`); `0s` does not wait at all.",
    )
    on_timeout: Literal["fail", "continue"] = Field(
        default="fail",
        description="When no event came in time: `fail` the step, or `continue` with the result "
        "`{timed_out: true}` (e.g. to poll the status instead).",
    )


class SetStep(_StepBase):
    """Compute values once and keep them as `vars.<name>`."""

    set: dict[str, Any] = Field(description="Names and values (templates allowed).")


class ParallelStep(_StepBase):
    """Run branches at the same time; each branch is a list of steps."""

    parallel: list[list[Step]] = Field(min_length=1, description="The branches.")


class FailStep(_StepBase):
    """Stop the run with an error message."""

    fail: Expr = Field(description="The error message.")


class NotifyStep(_StepBase):
    """Send a notification to the log and, when set, a webhook."""

    notify: Expr = Field(description="The message.")
    webhook: Webhook | None = Field(
        default=None,
        description="URL to POST to, or `{credential: NAME}` for a stored `webhook` credential's URL "
        "(default: the recipe's `notify.webhook`).",
    )
    data: dict[str, Any] = Field(default_factory=dict, description="Extra JSON fields sent with the message.")


#: The error types a `catch` matches and `error.type` names: the provider error tree's classes
#: (`activities.errors`), and `StepFailed` for a recipe's own failures (`fail:`, an expression, a
#: deadline). A call's type is the error it ended in after its retries.
ERROR_TYPES = (
    "ProviderError",
    "ProviderUnavailable",
    "RateLimited",
    "SessionExpired",
    "TokenExpired",
    "CredentialsRejected",
    "ProviderRejected",
    "StepFailed",
)


def _known_error_type(name: str) -> str:
    if name not in ERROR_TYPES:
        raise ValueError(f"unknown error type {name!r} (known: {', '.join(ERROR_TYPES)})")
    return name


# A checked name rather than a Literal: one message that lists the types, at the name itself.
ErrorType = Annotated[
    str,
    AfterValidator(_known_error_type),
    WithJsonSchema({"type": "string", "enum": list(ERROR_TYPES)}),
]


class ErrorMatch(_Strict):
    """Which errors a `catch` takes: every key given must match (none given: every error)."""

    type: list[ErrorType] | None = Field(
        default=None,
        description="The error's type, or a list of types (`ProviderError` matches every provider "
        "error; `StepFailed` a recipe's own failures: `fail:`, expressions, deadlines).",
        json_schema_extra={
            "anyOf": [
                {"type": "string", "enum": list(ERROR_TYPES)},
                {"type": "array", "items": {"type": "string", "enum": list(ERROR_TYPES)}},
                {"type": "null"},
            ]
        },
    )
    provider: str | None = Field(
        default=None, description="The provider whose call failed (`tikapi`, `tiktok`, …)."
    )
    code: str | int | None = Field(
        default=None, description="The provider's own error code (compared as text: `10202`)."
    )

    @field_validator("type", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        # `type: ProviderRejected` is a list of one; a list's bad name is reported at the name.
        return [value] if isinstance(value, str) else value

    def matches(self, error: dict[str, Any]) -> bool:
        """Whether `error` (`{type, provider, code, …}`, as `StepFailed.fields`) is taken."""
        if self.type is not None and not any(
            error.get("type") == t or (t == "ProviderError" and error.get("type") not in (None, "StepFailed"))
            for t in self.type
        ):
            return False
        if self.provider is not None and error.get("provider") != self.provider:
            return False
        return self.code is None or str(error.get("code")) == str(self.code)


class CatchClause(_Strict):
    """One `catch` of a `try` step: the errors it takes and the steps it runs for them."""

    match: ErrorMatch = Field(
        default_factory=ErrorMatch, description="Which errors it takes (default: every error)."
    )
    steps: list[Step] = Field(
        min_length=1,
        description="Steps run for the error; they read it as `error` (`type`, `code`, `provider`, "
        "`message`, `step`).",
    )


class TryStep(_StepBase):
    """Run `try`; a failure goes to the first `catch` that matches it; `finally` runs after both.

    An error no `catch` matches fails the step once `finally` has run; a `stop` is not an error
    (neither `catch` nor `finally` runs). The result: `{failed, caught, error}` (`caught`: the
    index of the `catch` that ran, or null).
    """

    try_: list[Step] = Field(alias="try", min_length=1, description="The steps tried, in order.")
    catch: list[CatchClause] = Field(
        default_factory=list, description="What to do on an error, tested in order; the first match runs."
    )
    finally_: list[Step] = Field(
        default_factory=list,
        alias="finally",
        description="Steps run after `try` (and the `catch` that ran), whether it failed or not.",
    )

    @model_validator(mode="after")
    def _handles_something(self) -> TryStep:
        if not self.catch and not self.finally_:
            raise ValueError("a try step needs `catch` or `finally`")
        return self


# -- approval (issue 16, item 4) ------------------------------------------------------------

#: A label of what an approval shows (`caption`, `video URL`): the page's row titles.
ApprovalLabel = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9 _.-]{0,39}$")]
#: The most rows an approval page shows.
MAX_APPROVAL_LABELS = 20
#: A person needs time to act: an approval waits at least a minute.
ApprovalTimeout = Annotated[str, _duration_field(_MINUTE), _at_least(_MINUTE)]


class ApprovalStep(_StepBase):
    """Ask a person to approve or reject, then go on with their decision.

    The run sends a notification (the log and the webhook) with a signed link to a page that
    shows the `approval` labels rendered, with Approve and Reject buttons and a comment;
    `tikflow approve RUN_ID` / `tikflow reject RUN_ID` decide from a shell. The first decision
    counts, every later one is refused. The result: `decision` (`approve` or `reject`, `none`
    when the wait timed out), `comment`, `via` (`link` or `cli`) and `timed_out`.
    """

    approval: dict[ApprovalLabel, Expr] = Field(
        min_length=1,
        max_length=MAX_APPROVAL_LABELS,
        description="What the person decides on: labels and templates, e.g. "
        '`{caption: "{{ steps.draft.text }}", video: "{{ video.url }}"}`, shown on the page.',
    )
    message: Expr | None = Field(
        default=None,
        description="The notification's text (default: `Approval needed: <step>`); the link is added.",
    )
    webhook: Webhook | None = Field(
        default=None,
        description="URL the notification is POSTed to, or `{credential: NAME}` "
        "(default: the recipe's `notify.webhook`).",
    )
    timeout: ApprovalTimeout = Field(
        default="1d",
        description="How long to wait for a decision (at least 1m); the link expires with it.",
    )
    on_timeout: Literal["fail", "continue"] = Field(
        default="fail",
        description="When nobody decided in time: `fail` the step, or `continue` with "
        "`{decision: none, timed_out: true}`.",
    )


# --- sub-recipes (issue 18 item 5) ---
class RunRecipeStep(_StepBase):
    """Run another recipe (one-shot) as a Temporal child workflow; its outputs become the result.

    The loader resolves the file, validates it and puts it in the parent's `recipes`, so the
    child travels inside the parent's snapshot: editing the file never changes a running parent.
    """

    run: str = Field(
        min_length=1,
        max_length=500,
        description="The sub-recipe's file, relative to this recipe's file (e.g. `./reply-policy.yaml`).",
    )
    with_: dict[str, Any] = Field(
        default_factory=dict, alias="with", description="The sub-recipe's inputs (templates allowed)."
    )


#: Step kinds, in the order a mapping's keys are tested (`until` steps also have `call`).
STEP_KINDS = (
    "until",
    "call",
    "for_each",
    "parallel",
    "wait_for",
    "wait",
    "set",
    "fail",
    "notify",
    "try",  # before `if`: a `try` step may have an `if` of its own
    "approval",
    "run",
    "if",
)


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in STEP_KINDS:
            if kind in value or (kind == "if" and "when" in value):
                return kind
        return None
    return STEP_MODEL_KINDS.get(type(value))


Step = Annotated[
    Annotated[CallStep, Tag("call")]
    | Annotated[UntilStep, Tag("until")]
    | Annotated[ForEachStep, Tag("for_each")]
    | Annotated[IfStep, Tag("if")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[WaitForStep, Tag("wait_for")]
    | Annotated[SetStep, Tag("set")]
    | Annotated[ParallelStep, Tag("parallel")]
    | Annotated[FailStep, Tag("fail")]
    | Annotated[NotifyStep, Tag("notify")]
    | Annotated[TryStep, Tag("try")]
    | Annotated[ApprovalStep, Tag("approval")]
    | Annotated[RunRecipeStep, Tag("run")],
    Discriminator(
        _step_kind,
        custom_error_type="unknown_step_kind",
        custom_error_message="a step needs one of the keys call, for_each, if, until, wait, set, "
        "parallel, fail, notify, wait_for, try, approval, run",
    ),
]


class OnFailure(NotifyTarget):
    """`on_failure`: where a failing run's one alert goes, and steps of the recipe's own to run then.

    With `steps`, they run when a run fails or a monitor gives up, reading the failure as `error`
    (as a `catch` does), `failure` (`reason`, `restart`: the command that starts it again) and the
    failing run's `vars`; the alert is then sent only to a `webhook` named here. Steps that fail
    in turn (or a `notify` among them that is not delivered) send the alert with both reasons to
    that webhook, else to the default target (`notify`'s webhook, else the worker's
    `TIKFLOW_NOTIFY_WEBHOOK`). Their calls retry under the recipe's `retry:`.
    """

    steps: list[Step] = Field(
        default_factory=list,
        description="Steps run once when a run fails or a monitor gives up (read `error` and "
        "`failure.reason`/`failure.restart`); they may not wait (`approval`, `wait_for`, `wait`, "
        "`until`, also in a sub-recipe they run), nor use `new_only`.",
    )

    @model_serializer(mode="wrap")
    def _without_empty_steps(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # An `on_failure` with only a webhook serializes as before steps existed (history shape).
        data: dict[str, Any] = handler(self)
        if not self.steps:
            data.pop("steps", None)
        return data


#: A label's key (`client`) and value (`acme`): stored as `key=value` in `TikflowLabels`.
LabelKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
LabelValue = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$")]


class Recipe(_Strict):
    """A tikflow recipe: inputs, an optional trigger, and the steps to run."""

    recipe: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="The recipe's name (lowercase, digits, `-`); part of the workflow id.",
    )
    description: str = Field(default="", description="What the recipe does, for people.")
    inputs: dict[str, InputSpec] = Field(
        default_factory=dict, description="Typed inputs, read as `inputs.<name>`."
    )
    trigger: Trigger | None = Field(
        default=None, description="When it runs (omit to run once; `webhook` for once per event)."
    )
    account: str = Field(default="main", description="Default credential name for calls.")
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        description="Labels of its runs (`client: acme`): searchable in the Temporal UI as "
        "`TikflowLabels = 'client=acme'`, and by `tikflow list --label client=acme`.",
    )
    retry: RetryPolicy | None = Field(default=None, description="Default retry policy for every call.")
    timeout: LongDuration | None = Field(
        default=None, description="Default limit on one call attempt (default 2m)."
    )
    notify: NotifyTarget | None = Field(
        default=None, description="Where notifications go (re-authorization requests, notify steps)."
    )
    on_failure: OnFailure | None = Field(
        default=None,
        description="What happens when a run fails or a monitor gives up: one alert (with the reason "
        "and the command that restarts it) to its `webhook`, default `notify`'s webhook, else the "
        "worker's `TIKFLOW_NOTIFY_WEBHOOK`; or its `steps`, run with the failure as `error` and `failure`.",
    )
    dedupe_limit: WholeNumber = Field(
        default=5000, ge=10, le=100_000, description="How many seen ids `new_only` remembers per step."
    )
    reauth_deadline: ReauthDeadline = Field(
        default="7d", description="How long a run waits for an expired account to be re-authorized."
    )
    steps: list[Step] = Field(min_length=1, description="The steps, run in order.")
    recipes: dict[str, Recipe] = Field(
        default_factory=dict,
        description="Filled by the loader, not written by hand: the sub-recipes its `run:` steps "
        "name, validated, by their `run:` value (the snapshot a run carries).",
    )

    @model_serializer(mode="wrap")
    def _without_empty_labels(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A recipe without labels serializes as it did before labels existed: the workflow input
        # in history (and the committed replay histories) keeps its shape.
        data: dict[str, Any] = handler(self)
        if not self.labels:
            data.pop("labels", None)
        if not self.recipes:
            data.pop("recipes", None)
        if self.on_failure is None:
            data.pop("on_failure", None)
        return data


#: The kind of each step model: the key that names it in YAML (`workflows.steps.step_kind`).
STEP_MODEL_KINDS: dict[type, str] = {
    CallStep: "call",
    UntilStep: "until",
    ForEachStep: "for_each",
    IfStep: "if",
    WaitStep: "wait",
    WaitForStep: "wait_for",
    SetStep: "set",
    ParallelStep: "parallel",
    FailStep: "fail",
    NotifyStep: "notify",
    TryStep: "try",
    ApprovalStep: "approval",
    RunRecipeStep: "run",
}

for _model in (ForEachStep, IfStep, ParallelStep, CatchClause, TryStep, OnFailure, Recipe):
    _model.model_rebuild()

RECIPE_ADAPTER: TypeAdapter[Recipe] = TypeAdapter(Recipe)


def recipe_json_schema() -> dict[str, Any]:
    """The JSON Schema of a recipe file, as committed in `definitions/recipe.schema.json`."""
    schema = Recipe.model_json_schema(by_alias=True)
    if "$ref" in schema:
        # A recipe holds its sub-recipes (`recipes`), so pydantic puts `Recipe` itself in `$defs`
        # and the top is a bare `$ref`; inlined, editors show the recipe's own fields at the top.
        defs = schema["$defs"]
        schema = {**defs[schema["$ref"].rsplit("/", 1)[-1]], "$defs": defs}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tikflow recipe"
    return schema


if __name__ == "__main__":
    print(json.dumps(recipe_json_schema(), indent=2, sort_keys=True))
