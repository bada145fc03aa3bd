"""YAML → nodes → plain data, with the line and column of every value and key.

Composed from the parser's events with a stack of our own and built with a work list, so no
input reaches a stack limit; deep nesting, tags other than JSON's types, duplicate and non-text
keys and alias bombs are refused as problems located where they are written.
"""

from __future__ import annotations

from typing import Any

import yaml

from tikflow.loader.problems import DataPath, Document, Problem

__all__ = ["MAX_DEPTH", "MAX_NODES", "parse_yaml"]

MAX_NODES = 100_000
#: Deepest nesting of mappings and lists in a recipe file, or in an input's value. The run's
#: input is JSON that Temporal hands back to pydantic, whose parser stops at 200 levels: a
#: recipe over that starts, then its every workflow task fails to decode it. 32 levels of
#: `parallel` take 98; the rest is room for `with:` values and the run's own wrapping.
MAX_DEPTH = 128

# libyaml's composer when PyYAML was built with it (it keeps the same marks), else pure Python.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# One scalar constructor for the process: SafeConstructor resolves ints, floats, bools, nulls.
_SCALARS = yaml.constructor.SafeConstructor()


class _TooBig(Exception):
    pass


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


def parse_yaml(text: str, doc: Document) -> Any:
    """The data of the file's one document, positions in `doc`; None after recording why not."""
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


def _compose(text: str, doc: Document) -> yaml.Node | None:
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


def _compose_events(loader: Any, doc: Document) -> yaml.Node | None:
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
_Work = tuple[yaml.Node | None, DataPath, Any, Any]


def _build(root: yaml.Node, doc: Document) -> Any:
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


def _scalar(node: yaml.ScalarNode, path: DataPath, doc: Document) -> Any:
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
    node: yaml.MappingNode, doc: Document, path: DataPath, budget: int
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
