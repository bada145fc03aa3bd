"""Read a recipe file into a validated `Recipe`, or report every problem as FILE:LINE:COL: message.

The loader runs outside any event loop and never inside workflow code. It:
1. refuses what is not a recipe before parsing it (over 1 MB, not UTF-8);
2. composes the YAML into nodes (so every value keeps its line and column), refusing duplicate
   keys, non-string keys and alias bombs, then builds plain data from the nodes;
3. validates the data against the pydantic models and maps each error back to its node;
4. checks what the models cannot: unique step ids, `steps.X` references to earlier steps,
   `inputs.X` references to declared inputs, expressions (compiled, sandbox-checked), action
   names and their `with:` inputs against the registry, cron expressions.
All problems are collected, so one run shows them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from workflows.expressions import (
    ExpressionError,
    check_constant,
    check_source,
    is_template,
    referenced_names,
    referenced_steps,
)
from workflows.models import (
    STEP_KINDS,
    CallStep,
    FailStep,
    ForEachStep,
    IfStep,
    NotifyStep,
    ParallelStep,
    Recipe,
    SetStep,
    Step,
    UntilStep,
)

__all__ = ["MAX_FILE_BYTES", "LoadedRecipe", "Problem", "RecipeError", "load_recipe", "load_recipe_text"]

MAX_FILE_BYTES = 1_000_000
MAX_NODES = 100_000

# libyaml's composer when PyYAML was built with it (it keeps the same marks), else pure Python.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# One scalar constructor for the process: SafeConstructor resolves ints, floats, bools, nulls.
_SCALARS = yaml.constructor.SafeConstructor()

Path_ = tuple[str | int, ...]

#: Names every expression may read, besides loop variables.
GLOBAL_NAMES = frozenset(
    {"inputs", "steps", "vars", "run", "now", "result", "range", "true", "false", "none"}
)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a recipe, located in its file."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class RecipeError(Exception):
    """A recipe is invalid; `problems` lists every problem found, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe and the file it came from."""

    recipe: Recipe
    source: str


@dataclass
class _Doc:
    """Plain data built from YAML nodes, with the position of every value and key."""

    file: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    nodes_built: int = 0

    def at(self, path: Path_, message: str, *, key: bool = False) -> None:
        """Record a problem at the node of `path` (or the nearest ancestor that has one)."""
        line, col = self.position(path, key=key)
        self.problems.append(Problem(self.file, line, col, message))

    def position(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of the value (or key) at `path`."""
        probe = tuple(path)
        if key and probe in self.key_positions:
            return self.key_positions[probe]
        while probe:
            if probe in self.positions:
                return self.positions[probe]
            probe = probe[:-1]
        return self.positions.get((), (1, 1))


class _TooBig(Exception):
    pass


def load_recipe(path: str | Path) -> LoadedRecipe:
    """Load and validate the recipe at `path`.

    Raises:
        RecipeError: with every problem found (the file unreadable included).
    """
    name = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise RecipeError(
                [Problem(name, 1, 1, f"file is {size} bytes; a recipe may be at most {MAX_FILE_BYTES}")]
            )
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise RecipeError([Problem(name, 1, 1, f"cannot read file: {exc.strerror or exc}")]) from None
    return load_recipe_text(raw, name)


def load_recipe_text(raw: bytes | str, file: str = "<recipe>") -> LoadedRecipe:
    """Validate recipe text (bytes or str) that came from `file`.

    Raises:
        RecipeError: with every problem found.
    """
    if isinstance(raw, bytes):
        if len(raw) > MAX_FILE_BYTES:
            raise RecipeError(
                [Problem(file, 1, 1, f"file is {len(raw)} bytes; a recipe may be at most {MAX_FILE_BYTES}")]
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            before = raw[: exc.start]
            line = before.count(b"\n") + 1
            col = exc.start - (before.rfind(b"\n") + 1) + 1
            raise RecipeError(
                [Problem(file, line, col, f"file is not UTF-8 text (byte 0x{raw[exc.start]:02x})")]
            ) from None
    else:
        text = raw
    doc = _Doc(file)
    data = _parse_yaml(text, doc)
    if doc.problems:
        raise RecipeError(doc.problems)
    if not isinstance(data, dict):
        doc.at((), "a recipe is a mapping with at least `recipe:` and `steps:`")
        raise RecipeError(doc.problems)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            _report_validation_error(doc, data, error)
        # Semantic checks still run on the parts that validated, so all problems show at once.
        _check_raw_expressions(doc, data)
        raise RecipeError(doc.problems) from None
    _Checker(doc, recipe).check()
    if doc.problems:
        raise RecipeError(doc.problems)
    return LoadedRecipe(recipe=recipe, source=file)


# ---------------------------------------------------------------------------------------------
# YAML → data with positions


def _parse_yaml(text: str, doc: _Doc) -> Any:
    if "\t" in text:
        for number, text_line in enumerate(text.splitlines(), 1):
            indent = text_line[: len(text_line) - len(text_line.lstrip(" \t"))]
            if "\t" in indent:
                doc.problems.append(
                    Problem(
                        doc.file,
                        number,
                        indent.index("\t") + 1,
                        "tab in indentation; YAML indents with spaces",
                    )
                )
        if doc.problems:
            return None
    try:
        documents = list(yaml.compose_all(text, Loader=_YAML_LOADER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what: str = " ".join(str(exc.problem or exc).split())
        if exc.context:
            what = f"{what} ({exc.context})"
        doc.problems.append(Problem(doc.file, line, col, f"YAML syntax error: {what}"))
        return None
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(doc.file, 1, 1, f"YAML error: {' '.join(str(exc).split())}"))
        return None
    if not documents or documents[0] is None:
        doc.problems.append(Problem(doc.file, 1, 1, "file is empty; a recipe needs `recipe:` and `steps:`"))
        return None
    if len(documents) > 1:
        mark = documents[1].start_mark
        doc.problems.append(
            Problem(
                doc.file, mark.line + 1, mark.column + 1, "one recipe per file (found a second YAML document)"
            )
        )
        return None
    try:
        return _build(documents[0], (), doc, set())
    except _TooBig:
        doc.problems.append(
            Problem(doc.file, 1, 1, f"recipe expands to more than {MAX_NODES} values (an alias bomb?)")
        )
        return None


def _build(node: yaml.Node, path: Path_, doc: _Doc, active: set[int]) -> Any:
    doc.nodes_built += 1
    if doc.nodes_built > MAX_NODES:
        raise _TooBig
    doc.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if id(node) in active:
        doc.at(path, "a YAML alias refers to itself")
        return None
    if isinstance(node, yaml.MappingNode):
        active = active | {id(node)}
        result: dict[str, Any] = {}
        for key_node, value_node in _merged_pairs(node, doc, path):
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                doc.problems.append(Problem(doc.file, line, col, "keys must be plain text"))
                continue
            key = key_node.value
            child = (*path, key)
            if key in result:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                doc.problems.append(Problem(doc.file, line, col, f"duplicate key {key!r}"))
                continue
            doc.key_positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = _build(value_node, child, doc, active)
        return result
    if isinstance(node, yaml.SequenceNode):
        active = active | {id(node)}
        return [_build(item, (*path, i), doc, active) for i, item in enumerate(node.value)]
    if node.tag == "tag:yaml.org,2002:str":
        return node.value
    try:
        value = _SCALARS.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        doc.at(path, f"YAML error: {' '.join(str(exc.problem).split())}")
        return None
    # Timestamps and binary become text: recipes carry JSON-compatible values only.
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(node.value)


def _merged_pairs(node: yaml.MappingNode, doc: _Doc, path: Path_) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                if isinstance(source, yaml.MappingNode):
                    yield from source.value
                else:
                    doc.at(path, "`<<` merges only mappings")
            continue
        yield key_node, value_node


# ---------------------------------------------------------------------------------------------
# pydantic errors → positions


def _report_validation_error(doc: _Doc, data: Any, error: Any) -> None:
    loc, node_path = _data_path(data, error["loc"])
    kind = error["type"]
    message = error["msg"]
    if kind == "extra_forbidden":
        doc.at(node_path, f"unknown field {node_path[-1]!r}{_where(node_path[:-1])}", key=True)
        return
    if kind == "missing":
        doc.at(node_path, f"missing required field {loc[-1]!r}{_where(node_path)}")
        return
    if kind == "unknown_step_kind":
        found = (
            ", ".join(sorted(_at(data, node_path) or {}))
            if isinstance(_at(data, node_path), dict)
            else "none"
        )
        doc.at(node_path, f"{message} (found keys: {found})")
        return
    field_name = loc[-1] if loc else "recipe"
    message = message.removeprefix("Value error, ")
    if kind == "too_short" and field_name == "steps":
        message = "needs at least one step"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        if field_name == "recipe":
            message = "recipe name must be lowercase letters, digits and '-'"
        elif "ms|s|m|h|d" in pattern:
            message = f"not a duration: {error['input']!r} (expected a number and a unit: 30s, 5m, 1h, 1d)"
        elif field_name in ("id", "as"):
            message = f"{error['input']!r} is not a valid name (lowercase letters, digits and '_')"
    doc.at(node_path, f"{_label(node_path)}: {message}")


def _data_path(data: Any, loc: Iterable[str | int]) -> tuple[Path_, Path_]:
    """Map a pydantic location onto the data: (the logical path, the longest prefix that exists).

    Union tags (`call`, `if`…) that pydantic inserts are dropped; `with_`-style names become keys.
    """
    clean: list[str | int] = []
    existing: list[str | int] = []
    current = data
    previous: str | int | None = None
    for part in loc:
        tag = isinstance(previous, int) and isinstance(part, str) and part in STEP_KINDS
        previous = part
        if tag:
            continue  # a discriminated-union tag pydantic inserts after a step's index
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and part < len(current)
        ):
            clean.append(part)
            existing.append(part)
            current = current[part]  # type: ignore[index]  # narrowed by the test above
        elif (
            isinstance(current, dict)
            and isinstance(part, str)
            and part.endswith("_")
            and part[:-1] in current
        ):
            clean.append(part[:-1])
            existing.append(part[:-1])
            current = current[part[:-1]]
        else:
            clean.append(part)
            current = None
    return tuple(clean), tuple(existing)


def _at(data: Any, path: Path_) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _label(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "recipe"


def _where(path: Path_) -> str:
    return f" in {_label(path)}" if path else ""


# ---------------------------------------------------------------------------------------------
# Checks beyond the models


def _check_raw_expressions(doc: _Doc, data: Any, path: Path_ = ()) -> None:
    """Expression syntax and sandbox checks over raw data (used when the models already failed)."""
    if isinstance(data, dict):
        for key, value in data.items():
            _check_raw_expressions(doc, value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _check_raw_expressions(doc, value, (*path, index))
    elif is_template(data):
        try:
            check_source(data)
        except ExpressionError as exc:
            doc.at(path, f"bad expression: {exc}")


class _Checker:
    """Walks a validated recipe with its raw positions and reports what the models cannot see."""

    def __init__(self, doc: _Doc, recipe: Recipe) -> None:
        self.doc = doc
        self.recipe = recipe
        self.ids: dict[str, Path_] = {}
        # Every id in the recipe, so a reference to a step that runs later can say so.
        self.all_ids = _step_ids(recipe.steps)
        from activities.registry import load_actions

        self.actions = load_actions()

    def check(self) -> None:
        for name, spec in self.recipe.inputs.items():
            if spec.default is not None and not _type_ok(spec.type, spec.default):
                self.doc.at(
                    ("inputs", name, "default"),
                    f"default of input {name!r} is not {_article(spec.type)} {spec.type}",
                )
        if self.recipe.trigger and self.recipe.trigger.schedule:
            self._check_cron(self.recipe.trigger.schedule.cron)
        if self.recipe.notify and self.recipe.notify.webhook:
            self._expr(self.recipe.notify.webhook, ("notify", "webhook"), set(), set())
        self._steps(self.recipe.steps, ("steps",), set(), set())

    def _check_cron(self, cron: str) -> None:
        from croniter import croniter

        if len(cron.split()) != 5 or not croniter.is_valid(cron):
            self.doc.at(("trigger", "schedule", "cron"), f"not a valid 5-field cron expression: {cron!r}")

    def _steps(self, steps: Sequence[Step], path: Path_, visible: set[str], scope: set[str]) -> set[str]:
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

    def _step(self, step: Step, here: Path_, visible: set[str], scope: set[str]) -> set[str]:
        """Check one step; returns ids it makes visible to later steps (a `parallel`'s branches)."""
        if isinstance(step, ForEachStep):
            self._expr(step.for_each, (*here, "for_each"), visible, scope)
            inner_scope = scope | {step.as_}
            if step.when:
                self._expr(step.when, (*here, "if"), visible, inner_scope)
            if isinstance(step.limit, str):
                self._expr(step.limit, (*here, "limit"), visible, scope)
            inner_visible = self._steps(step.steps, (*here, "steps"), visible, inner_scope)
            if step.collect:
                self._expr(step.collect, (*here, "collect"), inner_visible, inner_scope)
            return set()
        if step.when:
            extra = {"result"} if isinstance(step, UntilStep) else set()
            self._expr(step.when, (*here, "if"), visible, scope | extra)
        if isinstance(step, CallStep | UntilStep):
            self._call(step, here, visible, scope)
        if isinstance(step, UntilStep):
            self._expr(
                step.until, (*here, "until"), visible | ({step.id} if step.id else set()), scope | {"result"}
            )
        elif isinstance(step, IfStep):
            self._steps(step.then, (*here, "then"), visible, scope)
            self._steps(step.else_, (*here, "else"), visible, scope)
        elif isinstance(step, ParallelStep):
            produced: set[str] = set()
            for branch_index, branch in enumerate(step.parallel):
                produced |= self._steps(branch, (*here, "parallel", branch_index), visible, scope)
            return produced
        elif isinstance(step, SetStep):
            self._values(step.set, (*here, "set"), visible, scope)
        elif isinstance(step, FailStep):
            self._expr(step.fail, (*here, "fail"), visible, scope)
        elif isinstance(step, NotifyStep):
            self._expr(step.notify, (*here, "notify"), visible, scope)
            if step.webhook:
                self._expr(step.webhook, (*here, "webhook"), visible, scope)
            self._values(step.data, (*here, "data"), visible, scope)
        return set()

    def _call(self, step: CallStep | UntilStep, here: Path_, visible: set[str], scope: set[str]) -> None:
        if step.account:
            self._expr(step.account, (*here, "account"), visible, scope)
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
            self.doc.at((*here, "call"), f"unknown action {step.call!r}{hint}")
            return
        self._check_with(action.input_model, step.with_, (*here, "with"))

    def _check_with(self, model: type[BaseModel], values: dict[str, Any], path: Path_) -> None:
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

    def _values(self, value: Any, path: Path_, visible: set[str], scope: set[str]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                self._values(item, (*path, key), visible, scope)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._values(item, (*path, index), visible, scope)
        elif is_template(value):
            self._expr(value, path, visible, scope)

    def _expr(self, source: str, path: Path_, visible: set[str], scope: set[str]) -> None:
        try:
            tree = check_source(source)
        except ExpressionError as exc:
            self.doc.at(path, f"bad expression: {exc}")
            return
        names = referenced_names(tree)
        if names <= {"range"}:
            # A constant expression can be run now: `range(10**9)` or `'a' * 10**9` fail at load
            # time, inside the same sandbox and bounds as at run time.
            try:
                check_constant(source)
            except ExpressionError as exc:
                self.doc.at(path, f"bad expression: {exc}")
                return
        for name in sorted(names - GLOBAL_NAMES - scope):
            known = ", ".join(sorted((GLOBAL_NAMES - {"true", "false", "none", "range"}) | scope))
            self.doc.at(path, f"unknown name {name!r} in expression (known: {known})")
        for ref in sorted(referenced_steps(tree)):
            if ref not in visible:
                later = " (it runs later)" if ref in self.all_ids else ""
                self.doc.at(path, f"reference to undefined step {ref!r}{later}")
        for ref in sorted(referenced_steps(tree, root="inputs")):
            if ref not in self.recipe.inputs:
                self.doc.at(path, f"reference to undeclared input {ref!r}")


def _step_ids(steps: Sequence[Step]) -> set[str]:
    ids: set[str] = set()
    for step in steps:
        if step.id is not None:
            ids.add(step.id)
        if isinstance(step, ForEachStep):
            ids |= _step_ids(step.steps)
        elif isinstance(step, IfStep):
            ids |= _step_ids([*step.then, *step.else_])
        elif isinstance(step, ParallelStep):
            for branch in step.parallel:
                ids |= _step_ids(branch)
    return ids


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _has_template(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return is_template(value)


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list,),
    "object": (dict,),
}


def _type_ok(kind: str, value: Any) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def coerce_input(kind: str, text: str) -> Any:
    """Convert a command-line value to an input's declared type.

    Raises:
        ValueError: the text is not a value of that type.
    """
    import json

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
    value = json.loads(text) if text.strip()[:1] in "[{" else text.split(",")
    if not _type_ok(kind, value):
        raise ValueError(f"not a {kind}: {text!r}")
    return value


def resolve_inputs(recipe: Recipe, given: dict[str, Any], file: str = "<recipe>") -> dict[str, Any]:
    """Apply defaults, enforce required inputs and types; returns the final inputs.

    Raises:
        RecipeError: an unknown, missing or mistyped input (located at the recipe's `inputs:`).
    """
    problems: list[str] = []
    result: dict[str, Any] = {}
    for name in given:
        if name not in recipe.inputs:
            known = ", ".join(recipe.inputs) or "none"
            problems.append(f"unknown input {name!r} (inputs: {known})")
    for name, spec in recipe.inputs.items():
        if name in given:
            value = given[name]
            if isinstance(value, str) and spec.type != "string":
                try:
                    value = coerce_input(spec.type, value)
                except ValueError as exc:
                    problems.append(f"input {name!r}: {exc}")
                    continue
            if not _type_ok(spec.type, value):
                problems.append(f"input {name!r} must be a {spec.type}")
                continue
            result[name] = value
        elif spec.is_required:
            problems.append(f"missing required input {name!r} (give it with --input {name}=...)")
        else:
            result[name] = spec.default
    if problems:
        raise RecipeError([Problem(file, 1, 1, p) for p in problems])
    return result
