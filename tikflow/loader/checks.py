"""Checks beyond the models: what a recipe file may ask for, and what only the whole recipe shows.

Before the models: nesting and non-finite numbers Temporal cannot carry, the poll interval. After
them (`Checker`): unique step ids, `steps.X` references to earlier steps, `inputs.X` references to
declared inputs, expressions (compiled, sandbox-checked, run when constant), action names and
their `with:` inputs against the registry, cron expressions and time zones, account names and
webhook URLs.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from activities.contracts import account_name_problem, http_url_problem
from tikflow.loader.model_errors import label, value_at
from tikflow.loader.problems import DataPath, Document
from tikflow.loader.schedules import cron_problem, gap_text, shortest_cron_gap, time_zone_problem
from tikflow.loader.subrecipes import ON_FAILURE_REFUSED
from tikflow.loader.yaml_positions import MAX_DEPTH
from workflows.expressions import (
    ExpressionError,
    check_constant,
    check_source,
    evaluate,
    is_template,
    referenced_names,
    referenced_steps,
)
from workflows.models import (
    EXPRESSION_NAMES,
    MAX_LIMIT,
    ApprovalStep,
    CallStep,
    ErrorMatch,
    FailStep,
    ForEachStep,
    IfStep,
    NewOnly,
    NotifyStep,
    ParallelStep,
    Recipe,
    RunRecipeStep,
    SetStep,
    Step,
    TryStep,
    UntilStep,
    WaitForStep,
    parse_duration,
)
from workflows.steps import iter_recipe_steps, iter_steps, nested_steps, step_kind

__all__ = [
    "MAX_STEP_NESTING",
    "MIN_POLL_EVERY",
    "Checker",
    "check_poll_every",
    "check_raw_expressions",
    "check_shape",
]

#: Deepest nesting of `for_each`, `if` and `parallel` steps in a recipe file.
MAX_STEP_NESTING = 32
#: The shortest `trigger.poll.every` a recipe file may ask for. Each poll is a workflow task, a
#: timer and at least one provider call on the user's quota (TikAPI counts every request), and
#: its events fill the history: at 10s a monitor uses 8,640 polls a day, enough for anything a
#: person follows on TikTok. (Tests and the demo build faster triggers in code, not in files.)
MIN_POLL_EVERY = timedelta(seconds=10)

#: Names every expression may read, besides loop variables.
GLOBAL_NAMES = EXPRESSION_NAMES

#: Keys whose list value holds steps (`parallel` holds a list of such lists).
_STEP_LISTS = ("steps", "then", "else", "try", "finally")


def check_shape(doc: Document, data: dict[str, Any]) -> set[DataPath]:
    """Refuse what Temporal cannot carry before the models see it: nesting and non-finite numbers.

    Iterative, so a deep recipe cannot exhaust Python's stack here. Steps are the mappings in a
    `steps`/`then`/`else` list (or a `parallel` branch) of the recipe or of another step; the
    recipe's own steps are at level 1.

    Returns:
        The paths of the NaN and infinite numbers it reported.
    """
    not_finite: set[DataPath] = set()
    # (value, path, depth, level of the steps it holds or is, what it is)
    pending: list[tuple[Any, DataPath, int, int, str]] = [(data, (), 0, 0, "step")]
    reported: set[str] = set()
    while pending:
        value, path, depth, level, role = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            doc.at(
                path,
                f"{label(path)}: {value} is not a number a run can keep "
                "(NaN and infinity become null in Temporal's history)",
            )
            not_finite.add(path)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_DEPTH:
            if "depth" not in reported:
                doc.at(path, f"{label(path)}: nested more than {MAX_DEPTH} levels deep")
                reported.add("depth")
            continue
        if role == "step" and level > MAX_STEP_NESTING:
            if "nesting" not in reported:
                doc.at(
                    path,
                    f"a step nested {level} levels deep; at most {MAX_STEP_NESTING} "
                    "(for_each, if and parallel inside each other)",
                )
                reported.add("nesting")
            continue
        if isinstance(value, list):
            inner = {"steps": "step", "branches": "steps"}.get(role, "data")
            pending.extend((item, (*path, i), depth + 1, level, inner) for i, item in enumerate(value))
            continue
        for key, child in value.items():
            if role == "step" and isinstance(child, list) and key in _STEP_LISTS:
                pending.append((child, (*path, key), depth + 1, level + 1, "steps"))
            elif role == "step" and isinstance(child, list) and key == "parallel":
                pending.append((child, (*path, key), depth + 1, level + 1, "branches"))
            elif role == "step" and level == 0 and key == "on_failure" and isinstance(child, dict):
                # The recipe's `on_failure` holds its own `steps`, at the level of the recipe's.
                pending.append((child, (*path, key), depth + 1, 0, "step"))
            elif role == "step" and isinstance(child, list) and key == "catch":
                # A `try`'s catches: each holds its `steps`, one level below the `try`.
                pending.extend(
                    (clause, (*path, key, i), depth + 2, level, "step") for i, clause in enumerate(child)
                )
            else:
                pending.append((child, (*path, key), depth + 1, level, "data"))
    return not_finite


def check_poll_every(doc: Document, data: dict[str, Any]) -> set[DataPath]:
    """A recipe file's poll interval is at least `MIN_POLL_EVERY`; returns the path it reported."""
    path: DataPath = ("trigger", "poll", "every")
    every = value_at(data, path)
    try:
        too_often = isinstance(every, str) and parse_duration(every) < MIN_POLL_EVERY
    except ValueError:
        return set()  # not a duration: the model says so
    if not too_often:
        return set()
    doc.at(
        path,
        f"trigger.poll.every: {every} is too often: a recipe may poll every "
        f"{int(MIN_POLL_EVERY.total_seconds())}s at the most (each poll spends provider quota)",
    )
    return {path}


def check_raw_expressions(doc: Document, data: Any, path: DataPath = ()) -> None:
    """Expression syntax and sandbox checks over raw data (used when the models already failed)."""
    if isinstance(data, dict):
        for key, value in data.items():
            check_raw_expressions(doc, value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            check_raw_expressions(doc, value, (*path, index))
    elif is_template(data):
        try:
            check_source(data)
        except ExpressionError as exc:
            doc.at(path, f"bad expression: {exc}")


class Checker:
    """Walks a validated recipe with its raw positions and reports what the models cannot see."""

    def __init__(self, doc: Document, recipe: Recipe) -> None:
        self.doc = doc
        self.recipe = recipe
        self.ids: dict[str, DataPath] = {}
        # Every id in the recipe, so a reference to a step that runs later can say so.
        self.all_ids = {step.id for _, step in iter_recipe_steps(recipe) if step.id is not None}
        # Ids inside the `try` and `catch` steps checked so far: not visible after their `try`.
        self.tried_ids: set[str] = set()
        # The ids of the recipe's own steps, and whether `on_failure` steps are being checked.
        self.main_ids = _step_ids(recipe.steps)
        self.in_on_failure = False
        from activities.registry import load_actions

        self.actions = load_actions()

    def check(self) -> None:
        """Record every problem of the recipe in the document."""
        for name, spec in self.recipe.inputs.items():
            if spec.default is not None and not spec.accepts(spec.default):
                self.doc.at(
                    ("inputs", name, "default"),
                    f"default of input {name!r} is not {_article(spec.type)} {spec.type}",
                )
        trigger = self.recipe.trigger
        if trigger and trigger.schedule:
            self._check_cron(trigger.schedule.cron)
            self._check_jitter(trigger.schedule.cron, trigger.schedule.jitter)
            problem = time_zone_problem(trigger.schedule.timezone)
            if problem:
                self.doc.at(("trigger", "schedule", "timezone"), f"trigger.schedule.timezone: {problem}")
        if trigger and trigger.webhook:
            self._check_webhook_trigger()
        problem = account_name_problem(self.recipe.account)
        if problem:
            self.doc.at(("account",), f"account: {problem}")
        if self.recipe.notify and isinstance(self.recipe.notify.webhook, str):
            self._webhook(self.recipe.notify.webhook, ("notify", "webhook"), set(), set())
        if self.recipe.on_failure and isinstance(self.recipe.on_failure.webhook, str):
            self._webhook(self.recipe.on_failure.webhook, ("on_failure", "webhook"), set(), set())
        self._steps(self.recipe.steps, ("steps",), set(), set())
        if self.recipe.on_failure and self.recipe.on_failure.steps:
            self._on_failure(self.recipe.on_failure.steps)

    def _on_failure(self, steps: Sequence[Step]) -> None:
        """`on_failure.steps` run once, after the run failed: they read `error` and `failure`.

        They may not hold the failed run open (an approval, a `wait_for`, a `wait`, an `until`: also
        checked in the sub-recipes they run, `subrecipes.on_failure_problem`), nor remember items
        (`new_only`: there is no next poll); the recipe's own steps' results are not theirs to read.
        """
        for here, step in iter_steps(steps, ("on_failure", "steps")):
            kind = step_kind(step)
            if isinstance(step, ON_FAILURE_REFUSED):
                self.doc.at(
                    (*here, kind),
                    f"{label((*here, kind))}: on_failure steps run after the run failed and may not "
                    f"wait (`{kind}` holds the failed run open); send a `notify` instead",
                )
            if isinstance(step, ForEachStep) and step.as_ == "failure":
                self.doc.at(
                    (*here, "as"),
                    f"{label((*here, 'as'))}: 'failure' cannot name the item in on_failure steps: "
                    "it would hide `failure` from the nested steps",
                )
            new_only = getattr(step, "new_only", None)
            if new_only is not None:
                self.doc.at(
                    (*here, "new_only"),
                    f"{label((*here, 'new_only'))}: on_failure steps run once per failure; "
                    "`new_only` has no next poll to remember items for",
                )
        self.in_on_failure = True
        self._steps(steps, ("on_failure", "steps"), set(), {"error", "failure"})
        self.in_on_failure = False

    def _check_webhook_trigger(self) -> None:
        """The trigger's expressions read `event` (and nothing a run has yet); inputs are declared."""
        trigger = self.recipe.trigger
        assert trigger is not None
        webhook = trigger.webhook
        assert webhook is not None
        here: DataPath = ("trigger", "webhook")
        for name in ("filter", "event_id"):
            source = getattr(webhook, name)
            if source is not None:
                self._expr(source, (*here, name), set(), {"event"}, event_only=True)
        for name, value in webhook.inputs.items():
            if name not in self.recipe.inputs:
                known = ", ".join(self.recipe.inputs) or "none"
                self.doc.at(
                    (*here, "inputs", name),
                    f"trigger.webhook.inputs: {name!r} is not an input of the recipe (inputs: {known})",
                    key=True,
                )
                continue
            self._values(value, (*here, "inputs", name), set(), {"event"}, event_only=True)

    def _check_cron(self, cron: str) -> None:
        problem = cron_problem(cron)
        if problem:
            self.doc.at(
                ("trigger", "schedule", "cron"), f"not a valid 5-field cron expression: {cron!r} ({problem})"
            )

    def _check_jitter(self, cron: str, jitter: str | None) -> None:
        """A jitter as long as the time between two cron times would blur one run into the next.

        (Temporal cuts such a jitter to the time until the next cron time without a word.)
        """
        if jitter is None or cron_problem(cron) is not None:
            return
        gap = shortest_cron_gap(cron)
        if gap is not None and parse_duration(jitter) >= gap:
            self.doc.at(
                ("trigger", "schedule", "jitter"),
                f"trigger.schedule.jitter: {jitter} is not shorter than the time between two runs "
                f"of {cron!r} ({gap_text(gap)})",
            )

    def _webhook(self, source: str, path: DataPath, visible: set[str], scope: set[str]) -> None:
        value = self._expr(source, path, visible, scope)
        if isinstance(value, str):
            problem = http_url_problem(value)
            if problem:
                self.doc.at(path, f"{label(path)}: {problem}")

    def _steps(self, steps: Sequence[Step], path: DataPath, visible: set[str], scope: set[str]) -> set[str]:
        """Check steps in order; `visible` are ids of earlier steps, `scope` loop variable names."""
        visible = set(visible)
        for index, step in enumerate(steps):
            here = (*path, index)
            if step.id is not None:
                if step.id in self.ids:
                    first = self.doc.position(self.ids[step.id])
                    self.doc.at(
                        (*here, "id"), f"duplicate step id {step.id!r} (first used at line {first[0]})"
                    )
                else:
                    self.ids[step.id] = (*here, "id")
            visible |= self._step(step, here, visible, scope)
            if step.id is not None:
                visible.add(step.id)
        return visible

    def _step(self, step: Step, here: DataPath, visible: set[str], scope: set[str]) -> set[str]:
        """Check one step; returns ids it makes visible to later steps (a `parallel`'s branches)."""
        if isinstance(step, ForEachStep):
            self._for_each(step, here, visible, scope)
            return set()
        if step.when:
            extra = {"result"} if isinstance(step, UntilStep) else set()
            self._expr(step.when, (*here, "if"), visible, scope | extra)
        match step:
            case CallStep():
                self._call(step, here, visible, scope)
                self._new_only(step.new_only, here, visible, scope | {"item"})
            case UntilStep():
                self._call(step, here, visible, scope)
                self._expr(
                    step.until,
                    (*here, "until"),
                    visible | ({step.id} if step.id else set()),
                    scope | {"result"},
                )
            case IfStep():
                # Ids set in a branch are not visible after the `if`: the other branch may have run.
                for below, body in nested_steps(step):
                    self._steps(body, (*here, *below), visible, scope)
            case TryStep():
                # Ids of `try` and `catch` are not visible after the step (either may stop short),
                # nor in `finally`; `catch` steps read the error as `error`.
                self._steps(step.try_, (*here, "try"), visible, scope)
                for index, clause in enumerate(step.catch):
                    self._catch_match(clause.match, (*here, "catch", index, "match"))
                    self._steps(clause.steps, (*here, "catch", index, "steps"), visible, scope | {"error"})
                self.tried_ids |= _step_ids(step.try_) | _step_ids(
                    [inner for clause in step.catch for inner in clause.steps]
                )
                return self._steps(step.finally_, (*here, "finally"), visible, scope) - visible
            case ParallelStep():
                produced: set[str] = set()
                for below, body in nested_steps(step):
                    produced |= self._steps(body, (*here, *below), visible, scope)
                return produced
            case SetStep():
                self._values(step.set, (*here, "set"), visible, scope)
            case FailStep():
                self._expr(step.fail, (*here, "fail"), visible, scope)
            case WaitForStep():
                self._expr(step.key, (*here, "key"), visible, scope)
                if step.match:
                    self._expr(step.match, (*here, "match"), visible, scope | {"event"})
                if is_template(step.timeout):
                    self._expr(step.timeout, (*here, "timeout"), visible, scope)
            case NotifyStep():
                self._expr(step.notify, (*here, "notify"), visible, scope)
                if isinstance(step.webhook, str):
                    self._webhook(step.webhook, (*here, "webhook"), visible, scope)
                self._values(step.data, (*here, "data"), visible, scope)
            case ApprovalStep():
                self._values(step.approval, (*here, "approval"), visible, scope)
                if step.message is not None:
                    self._expr(step.message, (*here, "message"), visible, scope)
                if isinstance(step.webhook, str):
                    self._webhook(step.webhook, (*here, "webhook"), visible, scope)
            case RunRecipeStep():
                self._values(step.with_, (*here, "with"), visible, scope)
        return set()

    def _catch_match(self, match: ErrorMatch, path: DataPath) -> None:
        """Refuse a `catch` that can never match: a provider no action belongs to."""
        # An error's provider is the one its action belongs to (`http` for `http.request`).
        providers = {name.split(".", 1)[0] for name in self.actions}
        if match.provider is not None and match.provider not in providers:
            known = ", ".join(sorted(providers))
            self.doc.at((*path, "provider"), f"unknown provider {match.provider!r} (known: {known})")

    def _for_each(self, step: ForEachStep, here: DataPath, visible: set[str], scope: set[str]) -> None:
        """Check a `for_each`: its list, its per-item `if`, its limit, its steps and `collect`."""
        items = self._expr(step.for_each, (*here, "for_each"), visible, scope)
        if items is not _VARIES and not isinstance(items, list | dict) and items is not None:
            self.doc.at(
                (*here, "for_each"),
                f"{label((*here, 'for_each'))}: for_each needs a list, and this is always "
                f"{_article(type(items).__name__)} {type(items).__name__} ({_short(items)}); "
                "write it as an expression, e.g. `{{ steps.videos.items }}`",
            )
        inner_scope = scope | {step.as_}
        if step.when:
            self._expr(step.when, (*here, "if"), visible, inner_scope)
        if isinstance(step.limit, str):
            limit = self._expr(step.limit, (*here, "limit"), visible, scope)
            if limit is not _VARIES and (
                not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_LIMIT
            ):
                self.doc.at(
                    (*here, "limit"),
                    f"{label((*here, 'limit'))}: limit must be a whole number from 0 to "
                    f"{MAX_LIMIT:,}, and this is always {_short(limit)}",
                )
        self._new_only(step.new_only, here, visible, inner_scope)
        inner_visible = self._steps(step.steps, (*here, "steps"), visible, inner_scope)
        if step.collect:
            self._expr(step.collect, (*here, "collect"), inner_visible, inner_scope)

    def _new_only(
        self, new_only: str | NewOnly | None, here: DataPath, visible: set[str], scope: set[str]
    ) -> None:
        """Check `new_only`'s object form: a key that is a field name, an `after` that is a template."""
        if not isinstance(new_only, NewOnly):
            return
        if not new_only.key.strip():
            self.doc.at((*here, "new_only", "key"), f"{label((*here, 'new_only', 'key'))}: key is blank")
        if new_only.after is None:
            return
        where = (*here, "new_only", "after")
        if not is_template(new_only.after):
            self.doc.at(
                where,
                f"{label(where)}: after must be a template giving each item's value, "
                "e.g. `{{ item.create_time }}`",
            )
            return
        self._expr(new_only.after, where, visible, scope)

    def _call(self, step: CallStep | UntilStep, here: DataPath, visible: set[str], scope: set[str]) -> None:
        if step.account:
            account = self._expr(step.account, (*here, "account"), visible, scope)
            if isinstance(account, str):
                problem = account_name_problem(account)
                if problem:
                    self.doc.at((*here, "account"), f"{label((*here, 'account'))}: {problem}")
        self._values(step.with_, (*here, "with"), visible, scope)
        action = self.actions.get(step.call)
        if action is None:
            known = ", ".join(
                sorted(a for a in self.actions if a.split(".")[0] == step.call.split(".")[0])[:8]
            )
            hint = (
                f" (known {step.call.split('.')[0]} actions: {known})"
                if known
                else " (see `tikflow actions`)"
            )
            close = difflib.get_close_matches(step.call, list(self.actions), n=1)
            guess = f"; did you mean {close[0]!r}?" if close else ""
            self.doc.at((*here, "call"), f"unknown action {step.call!r}{hint}{guess}")
            return
        if isinstance(step, CallStep) and step.pace is not None and not action.side_effect:
            # Pacing exists against spam detection of an account's writes; spacing reads would
            # only slow a poll down (and a monitor's reads run as local activities, unpaced).
            self.doc.at(
                (*here, "pace"),
                f"{label((*here, 'pace'))}: {step.call} changes nothing; pace is for side-effecting calls "
                "(replies, comments, likes, messages, posts)",
            )
        self._check_with(action.input_model, step.with_, (*here, "with"))

    def _check_with(self, model: type[BaseModel], values: dict[str, Any], path: DataPath) -> None:
        """Validate `with:` against the action's model; templated values are checked after rendering."""
        try:
            model.model_validate(values)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = tuple(error["loc"])
                top = loc[0] if loc else None
                raw = values.get(top) if isinstance(top, str) else None
                if error["type"] != "extra_forbidden" and error["type"] != "missing" and _has_template(raw):
                    continue
                target = (*path, *loc)
                if error["type"] == "extra_forbidden":
                    allowed = ", ".join(model.model_fields)
                    self.doc.at(
                        target, f"unknown input {loc[-1]!r} for this action (inputs: {allowed})", key=True
                    )
                elif error["type"] == "missing":
                    self.doc.at(path, f"missing required input {loc[-1]!r} in `with`")
                else:
                    self.doc.at(target, f"with.{'.'.join(map(str, loc))}: {error['msg']}")

    def _values(
        self, value: Any, path: DataPath, visible: set[str], scope: set[str], *, event_only: bool = False
    ) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                self._values(item, (*path, key), visible, scope, event_only=event_only)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._values(item, (*path, index), visible, scope, event_only=event_only)
        elif is_template(value):
            self._expr(value, path, visible, scope, event_only=event_only)

    def _expr(
        self, source: str, path: DataPath, visible: set[str], scope: set[str], *, event_only: bool = False
    ) -> Any:
        """Check one expression; returns its value when it is constant, else `_VARIES`.

        `event_only`: a webhook trigger's expression, evaluated before any run exists, so it may
        read `event` (and loop variables of its own) but not `inputs`, `steps`, `vars` or `run`.
        """
        try:
            tree = check_source(source)
        except ExpressionError as exc:
            self.doc.at(path, f"bad expression: {exc}")
            return _VARIES
        names = referenced_names(tree)
        value: Any = _VARIES
        if names <= {"range"}:
            # A constant expression can be run now: `range(10**9)` or `'a' * 10**9` fail at load
            # time, inside the same sandbox and bounds as at run time.
            try:
                check_constant(source)
                value = evaluate(source, {})
            except ExpressionError as exc:
                self.doc.at(path, f"bad expression: {exc}")
                return _VARIES
        allowed = (GLOBAL_NAMES & _CONSTANT_NAMES) if event_only else GLOBAL_NAMES
        for name in sorted(names - allowed - scope):
            known = ", ".join(sorted((allowed - _CONSTANT_NAMES) | scope))
            only_event = event_only and name in GLOBAL_NAMES
            where = " (a trigger's expression reads only `event`)" if only_event else ""
            if name == "error" and not event_only:
                where = " (`error` is read only in a `try` step's `catch` and in `on_failure` steps)"
            if name == "failure" and not event_only:
                where = " (`failure` is read only in `on_failure` steps)"
            self.doc.at(path, f"unknown name {name!r} in expression{where} (known: {known})")
        if event_only:
            return value  # `steps` and `inputs` were refused above, as names
        for ref in sorted(referenced_steps(tree)):
            if ref not in visible:
                later = " (it runs later)" if ref in self.all_ids else ""
                if ref in self.tried_ids:
                    later = " (it is inside a `try` or `catch`, which may stop before it)"
                if self.in_on_failure and ref in self.main_ids:
                    later = (
                        " (on_failure steps read the failure as `error` and `failure`,"
                        " not the results of the recipe's steps)"
                    )
                self.doc.at(path, f"reference to undefined step {ref!r}{later}")
        for ref in sorted(referenced_steps(tree, root="inputs")):
            if ref not in self.recipe.inputs:
                self.doc.at(path, f"reference to undeclared input {ref!r}")
        return value


#: Names every expression may read that are not data (`range` and the constants).
_CONSTANT_NAMES = frozenset({"true", "false", "none", "range"})

#: What `Checker._expr` returns for an expression whose value is known only at run time.
_VARIES: Any = object()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _step_ids(steps: Sequence[Step]) -> set[str]:
    return {step.id for _, step in iter_steps(steps) if step.id is not None}


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _has_template(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return is_template(value)
