"""Read a recipe file into a validated `Recipe`, or report every problem as FILE:LINE:COL: message.

The loader runs outside any event loop and never inside workflow code. It:
1. refuses what is not a recipe before parsing it (not a regular file, over 1 MB, not UTF-8,
   NUL or other characters YAML forbids);
2. composes the YAML into nodes from the parser's events (so every value keeps its line and
   column), refusing nesting deeper than `MAX_DEPTH`, tags other than JSON's types, duplicate
   keys, non-string keys and alias bombs, then builds plain data from the nodes; neither step
   recurses, so no input reaches a stack limit;
3. validates the data against the pydantic models and maps each error back to its node;
4. checks what the models cannot: unique step ids, `steps.X` references to earlier steps,
   `inputs.X` references to declared inputs, expressions (compiled, sandbox-checked), action
   names and their `with:` inputs against the registry, cron expressions and time zones as
   Temporal reads them, account names, webhook URLs, and what a recipe file may ask for
   (a poll every `MIN_POLL_EVERY` at most, steps nested `MAX_STEP_NESTING` deep at most).
All problems are collected, so one run shows them all (a recipe nested too deep, or holding a
NaN, is refused before the models see it).
"""

from __future__ import annotations

import codecs
import difflib
import functools
import math
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from activities.contracts import account_name_problem, http_url_problem
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
    STEP_KINDS,
    WEBHOOK_KINDS,
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
    parse_duration,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INPUT_DEPTH",
    "MAX_STEP_NESTING",
    "MIN_POLL_EVERY",
    "LoadedRecipe",
    "Problem",
    "RecipeError",
    "load_recipe",
    "load_recipe_text",
]

MAX_FILE_BYTES = 1_000_000
MAX_NODES = 100_000
#: Deepest nesting of `for_each`, `if` and `parallel` steps in a recipe file.
MAX_STEP_NESTING = 32
#: Deepest nesting of mappings and lists in a recipe file, or in an input's value. The run's
#: input is JSON that Temporal hands back to pydantic, whose parser stops at 200 levels: a
#: recipe over that starts, then its every workflow task fails to decode it. 32 levels of
#: `parallel` take 98; the rest is room for `with:` values and the run's own wrapping.
MAX_DEPTH = 128
#: The shortest `trigger.poll.every` a recipe file may ask for. Each poll is a workflow task, a
#: timer and at least one provider call on the user's quota (TikAPI counts every request), and
#: its events fill the history: at 10s a monitor uses 8,640 polls a day, enough for anything a
#: person follows on TikTok. (Tests and the demo build faster triggers in code, not in files.)
MIN_POLL_EVERY = timedelta(seconds=10)

# libyaml's composer when PyYAML was built with it (it keeps the same marks), else pure Python.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# One scalar constructor for the process: SafeConstructor resolves ints, floats, bools, nulls.
_SCALARS = yaml.constructor.SafeConstructor()

Path_ = tuple[str | int, ...]

#: Names every expression may read, besides loop variables.
GLOBAL_NAMES = EXPRESSION_NAMES


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
        # Aliases can report one problem many times over; it is shown once.
        self.problems = sorted(set(problems))
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
        RecipeError: with every problem found (the file unreadable, not a regular file or too big
            included).
    """
    name = str(path)
    return load_recipe_text(_read_file(path, name), name)


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((kind for test, kind in _FILE_KINDS if test(mode)), "a special file")
    return f"cannot read file: it is {kind}, not a regular file"


def _read_file(path: str | Path, name: str) -> bytes:
    """At most `MAX_FILE_BYTES` of a regular file, checked on the descriptor that is read.

    `stat` alone is not enough: a FIFO or `/dev/zero` says 0 bytes and never ends, and the file
    may be swapped between a check by name and the read.
    """

    def refuse(message: str) -> RecipeError:
        return RecipeError([Problem(name, 1, 1, message)])

    try:
        # Checked by name first so a device or FIFO is never even opened (opening one can block
        # or have side effects), then again on the descriptor against a swap in between.
        problem = _not_regular(os.stat(path).st_mode)
        if problem:
            raise refuse(problem)
        # O_NONBLOCK: should a FIFO take the file's place, opening it does not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise refuse(f"cannot read file: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        problem = _not_regular(info.st_mode)
        if problem:
            raise refuse(problem)
        if info.st_size > MAX_FILE_BYTES:
            raise refuse(f"file is {info.st_size} bytes; a recipe may be at most {MAX_FILE_BYTES}")
        chunks: list[bytes] = []
        total = 0
        # One byte past the limit tells a file that grew (or lied about its size) from one that fits.
        while total <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise refuse(f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if total > MAX_FILE_BYTES:
        raise refuse(f"file is more than {MAX_FILE_BYTES} bytes; a recipe may be at most {MAX_FILE_BYTES}")
    return b"".join(chunks)


_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)

# The characters YAML allows in a stream (YAML 1.1 §5.1, what libyaml enforces); NUL and the
# other control characters are refused with their position before the parser sees them.
_NOT_YAML_CHARACTER = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _decode(raw: bytes, file: str) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise RecipeError(
            [Problem(file, 1, 1, f"file is {len(raw)} bytes; a recipe may be at most {MAX_FILE_BYTES}")]
        )
    for mark, encoding in _BYTE_ORDER_MARKS:
        if raw.startswith(mark):
            raise RecipeError(
                [
                    Problem(
                        file,
                        1,
                        1,
                        f"file is {encoding} text (it starts with a byte order mark); save it as UTF-8",
                    )
                ]
            )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise RecipeError(
            [Problem(file, line, col, f"file is not UTF-8 text (byte 0x{raw[exc.start]:02x})")]
        ) from None


def _check_characters(text: str, file: str) -> None:
    bad = _NOT_YAML_CHARACTER.search(text)
    if bad is None:
        return
    where = bad.start()
    line = text.count("\n", 0, where) + 1
    col = where - (text.rfind("\n", 0, where) + 1) + 1
    code = ord(bad.group())
    what = (
        "file contains a NUL byte (is it binary, or UTF-16?); a recipe is UTF-8 text"
        if code == 0
        else f"character U+{code:04X} is not allowed in YAML"
    )
    raise RecipeError([Problem(file, line, col, what)])


def load_recipe_text(raw: bytes | str, file: str = "<recipe>") -> LoadedRecipe:
    """Validate recipe text (bytes or str) that came from `file`.

    Raises:
        RecipeError: with every problem found.
    """
    text = _decode(raw, file) if isinstance(raw, bytes) else raw
    _check_characters(text, file)
    doc = _Doc(file)
    data = _parse_yaml(text, doc)
    if doc.problems:
        raise RecipeError(doc.problems)
    if not isinstance(data, dict):
        doc.at((), "a recipe is a mapping with at least `recipe:` and `steps:`")
        raise RecipeError(doc.problems)
    said = _check_shape(doc, data)
    if len(doc.problems) > len(said):
        raise RecipeError(doc.problems)  # nested too deep: the models would only fail on it
    said |= _check_poll_every(doc, data)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            if _data_path(data, error["loc"])[1] not in said:
                _report_validation_error(doc, data, error)
        # Semantic checks still run on the parts that validated, so all problems show at once.
        _check_raw_expressions(doc, data)
        raise RecipeError(doc.problems) from None
    _Checker(doc, recipe).check()
    if doc.problems:
        raise RecipeError(doc.problems)
    return LoadedRecipe(recipe=recipe, source=file)


# ---------------------------------------------------------------------------------------------
# YAML → nodes → data with positions

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP, _MERGE = f"{_TAG}seq", f"{_TAG}map", f"{_TAG}merge"
#: Tags a scalar may carry explicitly: JSON's types. Anything else (`!!python/…`, `!!binary`,
#: `!!timestamp`, `!Ref`, `!!set`) would be dropped or turned into something the recipe did not say.
_SCALAR_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL})
_BOOLEANS: dict[str, bool] = yaml.constructor.SafeConstructor.bool_values
# Python refuses to turn an int of more digits into text (int_max_str_digits), so the engine would
# fail on it later (JSON, messages); such a number is refused where it is written.
_MAX_INT_DIGITS = 4300
_INT_LIMIT = 10**_MAX_INT_DIGITS


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
    root = _compose(text, doc)
    if root is None:
        return None
    try:
        return _build(root, doc)
    except _TooBig:
        doc.problems.append(
            Problem(doc.file, 1, 1, f"recipe expands to more than {MAX_NODES} values (an alias bomb?)")
        )
        return None


def _compose(text: str, doc: _Doc) -> yaml.Node | None:
    """The first document's node tree, or None after recording why there is none."""
    loader = _YAML_LOADER(text)
    try:
        return _compose_events(loader, doc)
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
    finally:
        loader.dispose()


def _compose_events(loader: Any, doc: _Doc) -> yaml.Node | None:
    """Build nodes from the parser's events with a stack of our own, not recursion.

    libyaml's composer (and PyYAML's) recurses once per nesting level: `[[[[…` 100,000 deep
    overflows the C stack (a segfault) or Python's recursion limit. The event stream is flat, so
    composing here bounds the depth before it costs anything; tags are checked on the way.
    """

    def problem(mark: yaml.Mark, message: str) -> None:
        doc.problems.append(Problem(doc.file, mark.line + 1, mark.column + 1, message))

    resolve = loader.resolve
    get_event = loader.get_event
    scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
    mapping_start, sequence_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
    scalar_node, mapping_node, sequence_node = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode
    anchors: dict[str, yaml.Node] = {}
    root: yaml.Node | None = None
    documents = 0
    open_nodes: list[yaml.Node] = []
    # Per open collection, the key node whose value comes next (None while a key is expected).
    keys: list[yaml.Node | None] = []
    composed = 0
    while True:
        event = get_event()
        kind = type(event)
        node: yaml.Node
        if kind is scalar_event or kind is mapping_start or kind is sequence_start or kind is alias_event:
            composed += 1
            if composed > MAX_NODES:
                # Composing is the slow part of a huge file; `_build` would refuse it anyway.
                doc.problems.append(Problem(doc.file, 1, 1, f"recipe has more than {MAX_NODES} values"))
                return None
        if kind is scalar_event:
            tag = event.tag
            if tag is None or tag == "!":
                tag = resolve(scalar_node, event.value, event.implicit)
            elif tag not in _SCALAR_TAGS:
                problem(event.start_mark, _tag_message(tag))
                tag = _STR
            node = scalar_node(tag, event.value, event.start_mark, event.end_mark, event.style)
        elif kind is mapping_start or kind is sequence_start:
            if len(open_nodes) >= MAX_DEPTH:
                problem(event.start_mark, f"nesting deeper than {MAX_DEPTH} levels")
                return None
            default = _MAP if kind is mapping_start else _SEQ
            tag = event.tag
            if tag is not None and tag != "!" and tag != default:
                problem(event.start_mark, _tag_message(tag))
            node_class = mapping_node if kind is mapping_start else sequence_node
            node = node_class(default, [], event.start_mark, event.end_mark, event.flow_style)
        elif kind is alias_event:
            if event.anchor not in anchors:
                problem(event.start_mark, f"YAML syntax error: found undefined alias {event.anchor!r}")
                return None
            node = anchors[event.anchor]
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            open_nodes.pop().end_mark = event.end_mark
            keys.pop()
            continue
        elif kind is yaml.DocumentStartEvent:
            documents += 1
            continue
        elif kind is yaml.StreamEndEvent or event is None:
            break
        else:
            continue  # stream start, document end
        if documents > 1:
            problem(node.start_mark, "one recipe per file (found a second YAML document)")
            return None
        if kind is not alias_event and event.anchor is not None:
            if event.anchor in anchors:
                first = anchors[event.anchor].start_mark.line + 1
                problem(
                    event.start_mark,
                    f"YAML syntax error: duplicate anchor {event.anchor!r} (first defined at line {first})",
                )
                return None
            anchors[event.anchor] = node
        if not open_nodes:
            root = node
        elif type(parent := open_nodes[-1]) is sequence_node:
            parent.value.append(node)
        elif (key := keys[-1]) is None:
            keys[-1] = node
        else:
            parent.value.append((key, node))
            keys[-1] = None
        if kind is mapping_start or kind is sequence_start:
            open_nodes.append(node)
            keys.append(None)
    if root is None:
        doc.problems.append(Problem(doc.file, 1, 1, "file is empty; a recipe needs `recipe:` and `steps:`"))
    return root


def _tag_message(tag: str) -> str:
    shown = f"!!{tag.removeprefix(_TAG)}" if tag.startswith(_TAG) else tag
    if len(shown) > 60:
        shown = f"{shown[:60]}…"
    return (
        f"YAML tag {shown!r} is not supported "
        "(a recipe holds text, numbers, true/false, null, lists and mappings)"
    )


# A work item of `_build`: a node to build at a path into container[slot], or (None, (), None,
# id) to leave the collection with that id.
_Work = tuple[yaml.Node | None, Path_, Any, Any]


def _build(root: yaml.Node, doc: _Doc) -> Any:
    """Plain data from the node tree, with the position of every value and key.

    Iterative (an explicit work stack, so depth costs no frames). Every node, key and merge
    source visited counts toward `MAX_NODES`, refused and merged ones too: aliases can make a
    small file name the same node a billion times, whichever branch handles it.

    Raises:
        _TooBig: past the budget.
    """
    holder: list[Any] = [None]
    # Collections being built around the current node: an alias to one of them is a cycle.
    around: set[int] = set()
    work: list[_Work] = [(root, (), holder, 0)]
    positions = doc.positions
    visited = 0
    while work:
        node, path, container, slot = work.pop()
        if node is None:
            around.discard(slot)
            continue
        visited += 1
        if visited > MAX_NODES:
            raise _TooBig
        if path not in positions:
            positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if type(node) is yaml.ScalarNode:
            container[slot] = node.value if node.tag == _STR else _scalar(node, path, doc)
            continue
        if id(node) in around:
            doc.at(path, "a YAML alias refers to itself")
            continue
        around.add(id(node))
        work.append((None, (), None, id(node)))
        if isinstance(node, yaml.SequenceNode):
            items: list[Any] = [None] * len(node.value)
            container[slot] = items
            work.extend((node.value[i], (*path, i), items, i) for i in reversed(range(len(items))))
        elif isinstance(node, yaml.MappingNode):
            mapping: dict[str, Any] = {}
            container[slot] = mapping
            children: list[_Work] = []
            pairs = node.value
            if any(key_node.tag == _MERGE for key_node, _ in pairs):
                pairs, merged = _merged_pairs(node, doc, path, MAX_NODES - visited)
                visited += merged
            for key_node, value_node in pairs:
                visited += 1
                if visited > MAX_NODES:
                    raise _TooBig
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                if type(key_node) is not yaml.ScalarNode or key_node.tag != _STR:
                    doc.problems.append(Problem(doc.file, line, col, "keys must be plain text"))
                    continue
                key = key_node.value
                if key in mapping:
                    doc.problems.append(Problem(doc.file, line, col, f"duplicate key {key!r}"))
                    continue
                child = (*path, key)
                doc.key_positions[child] = (line, col)
                mapping[key] = None
                children.append((value_node, child, mapping, key))
            work.extend(reversed(children))
    return holder[0]


def _scalar(node: yaml.ScalarNode, path: Path_, doc: _Doc) -> Any:
    """A scalar's value: text, a number, a boolean or None, or None after recording a problem."""
    tag, text = node.tag, node.value
    if tag == _STR:
        return text
    if tag == _NULL:
        return None
    if tag == _BOOL:
        if text.lower() not in _BOOLEANS:
            doc.at(path, f"YAML error: not a boolean: {_preview(text)}")
            return None
        return _BOOLEANS[text.lower()]
    if tag == _INT:
        too_large = f"YAML error: integer too large (more than {_MAX_INT_DIGITS} digits)"
        # Checked on the text first: base-60 integers (`1:00:00…`) cost quadratic time to build.
        if len(text.lstrip("+-")) - text.count("_") > _MAX_INT_DIGITS:
            doc.at(path, too_large)
            return None
        try:
            number: int = _SCALARS.construct_yaml_int(node)
        except (ValueError, IndexError):
            doc.at(path, f"YAML error: not an integer: {_preview(text)}")
            return None
        if abs(number) >= _INT_LIMIT:
            doc.at(path, too_large)
            return None
        return number
    if tag == _FLOAT:
        try:
            real: float = _SCALARS.construct_yaml_float(node)
        except (ValueError, IndexError):
            doc.at(path, f"YAML error: not a number: {_preview(text)}")
            return None
        return real
    # Implicit timestamps (`2024-02-30` too), `=` and a `<<` that is not a key: YAML 1.1 types
    # that recipes do not have, so they stay the text that was written.
    return text


def _preview(text: str) -> str:
    return repr(text if len(text) <= 40 else f"{text[:40]}…")


def _merged_pairs(
    node: yaml.MappingNode, doc: _Doc, path: Path_, budget: int
) -> tuple[list[tuple[yaml.Node, yaml.Node]], int]:
    """The mapping's pairs with each `<<` replaced by the pairs of the mappings it names.

    Returns the pairs and how many sources and pairs were visited (they count toward the budget).

    Raises:
        _TooBig: more than `budget` sources and pairs (`<<: [*a, *a, …]` multiplies them).
    """
    pairs: list[tuple[yaml.Node, yaml.Node]] = []
    visited = 0
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE:
            pairs.append((key_node, value_node))
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            visited += 1 + (len(source.value) if isinstance(source, yaml.MappingNode) else 0)
            if visited > budget:
                raise _TooBig
            if isinstance(source, yaml.MappingNode):
                pairs.extend(source.value)
            else:
                doc.at(path, "`<<` merges only mappings")
    return pairs, visited


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

    Union tags (`call`, `if`…, a webhook's `url`/`credential`) that pydantic inserts are dropped;
    `with_`-style names become keys.
    """
    clean: list[str | int] = []
    existing: list[str | int] = []
    current = data
    previous: str | int | None = None
    for part in loc:
        tag = (isinstance(previous, int) and isinstance(part, str) and part in STEP_KINDS) or (
            previous == "webhook" and part in WEBHOOK_KINDS and isinstance(current, dict | str)
        )
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

#: Keys whose list value holds steps (`parallel` holds a list of such lists).
_STEP_LISTS = ("steps", "then", "else")


def _check_shape(doc: _Doc, data: dict[str, Any]) -> set[Path_]:
    """Refuse what Temporal cannot carry before the models see it: nesting and non-finite numbers.

    Iterative, so a deep recipe cannot exhaust Python's stack here. Steps are the mappings in a
    `steps`/`then`/`else` list (or a `parallel` branch) of the recipe or of another step; the
    recipe's own steps are at level 1.

    Returns:
        The paths of the NaN and infinite numbers it reported.
    """
    not_finite: set[Path_] = set()
    # (value, path, depth, level of the steps it holds or is, what it is)
    pending: list[tuple[Any, Path_, int, int, str]] = [(data, (), 0, 0, "step")]
    reported: set[str] = set()
    while pending:
        value, path, depth, level, role = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            doc.at(
                path,
                f"{_label(path)}: {value} is not a number a run can keep "
                "(NaN and infinity become null in Temporal's history)",
            )
            not_finite.add(path)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_DEPTH:
            if "depth" not in reported:
                doc.at(path, f"{_label(path)}: nested more than {MAX_DEPTH} levels deep")
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
            else:
                pending.append((child, (*path, key), depth + 1, level, "data"))
    return not_finite


def _check_poll_every(doc: _Doc, data: dict[str, Any]) -> set[Path_]:
    """A recipe file's poll interval is at least `MIN_POLL_EVERY`; returns the path it reported."""
    path: Path_ = ("trigger", "poll", "every")
    every = _at(data, path)
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
        trigger = self.recipe.trigger
        if trigger and trigger.schedule:
            self._check_cron(trigger.schedule.cron)
            problem = _time_zone_problem(trigger.schedule.timezone)
            if problem:
                self.doc.at(("trigger", "schedule", "timezone"), f"trigger.schedule.timezone: {problem}")
        problem = account_name_problem(self.recipe.account)
        if problem:
            self.doc.at(("account",), f"account: {problem}")
        if self.recipe.notify and isinstance(self.recipe.notify.webhook, str):
            self._webhook(self.recipe.notify.webhook, ("notify", "webhook"), set(), set())
        self._steps(self.recipe.steps, ("steps",), set(), set())

    def _check_cron(self, cron: str) -> None:
        problem = _cron_problem(cron)
        if problem:
            self.doc.at(
                ("trigger", "schedule", "cron"), f"not a valid 5-field cron expression: {cron!r} ({problem})"
            )

    def _webhook(self, source: str, path: Path_, visible: set[str], scope: set[str]) -> None:
        value = self._expr(source, path, visible, scope)
        if isinstance(value, str):
            problem = http_url_problem(value)
            if problem:
                self.doc.at(path, f"{_label(path)}: {problem}")

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
            items = self._expr(step.for_each, (*here, "for_each"), visible, scope)
            if items is not _VARIES and not isinstance(items, list | dict) and items is not None:
                self.doc.at(
                    (*here, "for_each"),
                    f"{_label((*here, 'for_each'))}: for_each needs a list, and this is always "
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
                        f"{_label((*here, 'limit'))}: limit must be a whole number from 0 to "
                        f"{MAX_LIMIT:,}, and this is always {_short(limit)}",
                    )
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
            if isinstance(step.webhook, str):
                self._webhook(step.webhook, (*here, "webhook"), visible, scope)
            self._values(step.data, (*here, "data"), visible, scope)
        return set()

    def _call(self, step: CallStep | UntilStep, here: Path_, visible: set[str], scope: set[str]) -> None:
        if step.account:
            account = self._expr(step.account, (*here, "account"), visible, scope)
            if isinstance(account, str):
                problem = account_name_problem(account)
                if problem:
                    self.doc.at((*here, "account"), f"{_label((*here, 'account'))}: {problem}")
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

    def _expr(self, source: str, path: Path_, visible: set[str], scope: set[str]) -> Any:
        """Check one expression; returns its value when it is constant, else `_VARIES`."""
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
        return value


#: What `_Checker._expr` returns for an expression whose value is known only at run time.
_VARIES: Any = object()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# Cron as Temporal's schedule spec reads it, and meaning what it means in crontab(5): items `*`,
# `N`, `N-M`, each with an optional `/STEP`, and 3-letter month and weekday names. Temporal
# refuses the `L`, `W`, `?`, `H` and `R` of other cron dialects, and reads `#` as the start of a
# comment (`1#2`, elsewhere the second Monday, would fire every Monday): all refused here.
_CRON_ITEM = re.compile(r"(\*|([0-9]+|[a-z]{3})(?:-([0-9]+|[a-z]{3}))?)(?:/([0-9]+))?", re.IGNORECASE)
_MONTHS = {
    name: n
    for n, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_WEEKDAYS = {name: n for n, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _WEEKDAYS),
)


def _cron_problem(cron: str) -> str | None:
    """Why Temporal would refuse (or misread) a 5-field cron expression, or None."""
    fields = cron.split()
    if len(fields) != 5:
        return f"{len(fields)} fields; it needs 5: minute hour day-of-month month day-of-week"
    for text, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            problem = _cron_item_problem(item, low, high, names)
            if problem:
                return f"{what} {text!r}: {problem}"
    if fields[2] != "*" and fields[4] != "*":
        # crontab runs on days matching either field; a Temporal schedule only on days matching
        # both (`0 0 13 * 5` is every Friday the 13th there, every 13th and every Friday in cron).
        return (
            "it restricts both the day of month and the day of week, which Temporal reads as "
            "days matching both (cron: either); restrict one and leave the other `*`"
        )
    return None


def _cron_item_problem(item: str, low: int, high: int, names: dict[str, int]) -> str | None:
    match = _CRON_ITEM.fullmatch(item)
    if not match:
        if not item:
            return "an empty item in a list"
        if re.search(r"[LW?#HR]", item):
            return "Temporal schedules do not support L, W, ?, #, H or R"
        return f"{item!r} is not a value, a range or a step"
    values: list[int] = []
    for part in (match[2], match[3]):
        if part is None:
            continue
        if part.isdigit():
            number = int(part)
        elif part.lower() in names:
            number = names[part.lower()]
        else:
            return f"unknown name {part!r}"
        if not low <= number <= high:
            return f"{number} is not in {low}-{high}"
        values.append(number)
    if len(values) == 2 and values[1] < values[0]:
        return f"range {item!r} ends before it starts"
    if match[4] is not None and int(match[4]) < 1:
        return "a step must be 1 or more"
    return None


#: Entries of the time zone database that are whatever the host makes them: a recipe's schedule
#: must mean the same on every server.
_HOST_ZONES = frozenset({"localtime", "posixrules", "Local"})


@functools.cache
def _time_zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones()) - _HOST_ZONES


def _time_zone_problem(name: str) -> str | None:
    """Why `name` is not an IANA time zone key Temporal will take, or None.

    Only names from the time zone database count: no paths (`../etc/passwd`, which Temporal
    refuses only when the schedule is created), no `Local` (whatever the server's zone is).
    """
    zones = _time_zones()
    if name in zones:
        return None
    close = [z for z in zones if z.lower() == name.lower()] or difflib.get_close_matches(name, zones, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else " (e.g. UTC, Europe/Berlin, America/New_York)"
    return f"unknown time zone {name!r}{hint}"


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
    if text.strip()[:1] in "[{":
        _check_json_depth(text)
        value = json.loads(text)
    else:
        value = text.split(",")
    if not _type_ok(kind, value):
        raise ValueError(f"not a {kind}: {text!r}")
    return value


#: Deepest nesting of an input's value (a list or object input); the recipe takes the rest of
#: what Temporal's decoder allows (see `MAX_DEPTH`).
MAX_INPUT_DEPTH = 64


def _input_value_problem(value: Any) -> str | None:
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
            problem = _input_value_problem(value)
            if problem:
                problems.append(f"input {name!r}: {problem}")
                continue
            result[name] = value
        elif spec.is_required:
            problems.append(f"missing required input {name!r} (give it with --input {name}=...)")
        else:
            result[name] = spec.default
    if problems:
        raise RecipeError([Problem(file, 1, 1, p) for p in problems])
    return result
