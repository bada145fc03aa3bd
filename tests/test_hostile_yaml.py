"""Hostile YAML, by class: what nobody writes by hand is refused like any other bad recipe.

Each class (nesting, tags, scalar construction, alias bombs, file kinds, encodings) is generated
into one directory and checked with one run of the real `tikflow validate` (a subprocess, so a
segfault or a hang shows): exit 2, a `FILE:LINE:COL: message` line for every file, no traceback.
The child runs under an address-space limit and a hard timeout, so a blow-up in memory or time
fails the test instead of the machine. `--input` JSON nested without end gets the same treatment.
"""

from __future__ import annotations

import codecs
import os
import re
import resource
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tikflow.loader import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_INPUT_DEPTH,
    MAX_NODES,
    RecipeError,
    load_recipe_text,
    resolve_inputs,
)

ROOT = Path(__file__).resolve().parent.parent
#: Address space for the child: `tikflow validate` needs about 300 MB; an alias bomb takes GBs.
MEMORY_LIMIT = 512 * 1024 * 1024
#: A guard against hangs, not a speed assertion: each batch takes about a second.
TIMEOUT_S = 60
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")
DEEP = f"nesting deeper than {MAX_DEPTH} levels"
TOO_MANY = f"recipe expands to more than {MAX_NODES} values"
UNSUPPORTED_TAG = re.compile(r"YAML tag '.+' is not supported")

# ---------------------------------------------------------------------------------------------
# Generators: name -> (file content, the message its one problem must contain, or None for any)

Case = tuple[bytes, str | re.Pattern[str] | None]
DEPTHS = (10, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 100, 1_000, 10_000, 100_000)


def _recipe(steps: str) -> bytes:
    return f"recipe: hostile\nsteps: {steps}\n".encode()


def nesting_cases() -> Iterator[tuple[str, Case]]:
    """Lists and mappings nested `depth` levels (the top-level mapping is level 1), every style."""
    for depth in DEPTHS:
        inner = depth - 1  # levels below the top-level mapping
        expected = DEEP if depth > MAX_DEPTH else None
        yield f"flow-seq-{depth}", (_recipe("[" * inner + "]" * inner), expected)
        yield f"flow-map-{depth}", (_recipe("{a: " * inner + "x" + "}" * inner), expected)
        # `- - - x`: block sequences nest on one line, so any depth fits in the size limit.
        yield f"block-seq-{depth}", (_recipe("\n  " + "- " * inner + "x"), expected)
        yield (
            f"flow-in-block-{depth}",
            (
                _recipe(
                    "\n  " + "- " * (inner // 2) + "[" * (inner - inner // 2) + "]" * (inner - inner // 2)
                ),
                expected,
            ),
        )
        # A deep flow list as a mapping key (YAML caps an implicit key at 1024 characters).
        yield (
            f"flow-key-{depth}",
            (
                b"recipe: hostile\nsteps:\n  - ? " + b"[" * (inner - 2) + b"]" * (inner - 2) + b"\n    : x\n",
                expected,
            ),
        )
        # Block mappings need one more column per level: depth d costs d*d/2 bytes.
        if depth <= 1_000:
            lines = "".join(" " * level + "a:\n" for level in range(1, inner + 1))
            yield f"block-map-{depth}", (_recipe("\n" + lines + " " * (inner + 1) + "x"), expected)
            pairs = (inner + 1) // 2  # `- a:` opens a list and a mapping
            lines = "".join("  " * level + "- a:\n" for level in range(pairs))
            yield (
                f"block-mixed-{depth}",
                (
                    _recipe("\n" + lines + "  " * pairs + "x"),
                    DEEP if 1 + 2 * pairs > MAX_DEPTH else None,
                ),
            )


FOREIGN_TAGS = (
    "!!python/object:os.system",
    "!!python/object/apply:os.system",
    "!!python/object/new:os.system",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/tuple",
    "!!python/str",
    "!!python/bytes",
    "!!python/none",
    "!!binary",
    "!!timestamp",
    "!!set",
    "!!omap",
    "!!pairs",
    "!!merge",
    "!!value",
    "!foo",
    "!Ref",
    "!include",
    "!<tag:example.com,2024:x>",
    "!<!bar>",
    "!e!x",  # a named handle, declared by the %TAG directive below
)
STANDARD_TAGS = ("!!map", "!!seq", "!!str", "!!int", "!!float", "!!bool", "!!null")
#: Where a tag goes, and which of the standard tags belong there (those are not hostile).
PLACEMENTS: dict[str, tuple[str, frozenset[str]]] = {
    "scalar": ("{{message: {tag} hi}}", frozenset(STANDARD_TAGS) - {"!!map", "!!seq"}),
    "flow-map": ("{tag} {{message: hi}}", frozenset({"!!map"})),
    "block-map": ("{tag}\n      message: hi", frozenset({"!!map"})),
    "flow-seq": ("{{message: {tag} [hi]}}", frozenset({"!!seq"})),
    "block-seq": ("\n      message: {tag}\n        - hi", frozenset({"!!seq"})),
    "key": ("{{{tag} message: hi}}", frozenset({"!!str"})),
}


def tag_cases() -> Iterator[tuple[str, Case]]:
    """Every tag that is not JSON's, and every standard tag on the wrong kind of node, everywhere."""
    for number, tag in enumerate((*FOREIGN_TAGS, *STANDARD_TAGS)):
        for placement, (template, allowed) in PLACEMENTS.items():
            if tag in allowed:
                continue
            directive = "%TAG !e! tag:example.com,2024:\n---\n" if tag.startswith("!e!") else ""
            text = f"{directive}recipe: tags\nsteps:\n  - call: log\n    with: {template.format(tag=tag)}\n"
            # A standard scalar tag on a key makes a key that is not text: refused as such.
            scalar_key = placement == "key" and tag in STANDARD_TAGS and tag not in ("!!map", "!!seq")
            yield f"tag-{number:02d}-{placement}", (text.encode(), None if scalar_key else UNSUPPORTED_TAG)


def construction_cases() -> Iterator[tuple[str, Case]]:
    """Scalars the standard tags cannot make, and numbers too large for the engine to carry."""
    bad = {
        "int-empty": ("!!int ''", "not an integer: ''"),
        "int-letters": ("!!int abc", "not an integer: 'abc'"),
        "int-bare-hex": ("!!int 0x", "not an integer"),
        "int-bare-binary": ("!!int 0b", "not an integer"),
        "int-sign": ("!!int -", "not an integer"),
        "int-base60-empty": ("!!int '1:'", "not an integer"),
        "int-octal-9": ("!!int 09", "not an integer"),
        "float-empty": ("!!float ''", "not a number: ''"),
        "float-letters": ("!!float abc", "not a number: 'abc'"),
        "float-sign": ("!!float +", "not a number"),
        "float-base60": ("!!float '1:x'", "not a number"),
        "bool-maybe": ("!!bool maybe", "not a boolean: 'maybe'"),
        "bool-empty": ("!!bool ''", "not a boolean: ''"),
        "int-4301-digits": ("9" * 4301, "integer too large (more than 4300 digits)"),
        "int-negative-4301-digits": ("-" + "9" * 4301, "integer too large"),
        "int-900k-digits": ("9" * 900_000, "integer too large"),
        "int-underscored": ("1" + "_0" * 4400, "integer too large"),
        "int-base60-huge": ("1" + ":00" * 300_000, "integer too large"),
        "int-hex-huge": ("0x" + "f" * 4000, "integer too large"),
        "float-overflow": ("1.0e+999999", None),
    }
    for name, (value, expected) in bad.items():
        yield name, (_recipe(f"[{{call: log, with: {{message: {value}}}}}]"), expected)
    # YAML caps an implicit key at 1024 characters.
    yield "long-key", (_recipe(f"[{{call: log, with: {{{'k' * 900_000}: x}}}}]"), "YAML syntax error")
    # 300,000 literal values are over the budget without any alias.
    yield "flow-list-300k", (_recipe("[" + "1," * 300_000 + "1]"), f"recipe has more than {MAX_NODES} values")


def _fan_out(base: str) -> str:
    """Nine levels of nine aliases over `base`: 9**9 copies of it, in a few hundred bytes."""
    lines = [f"l0: &l0 {base}"]
    for level in range(1, 10):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    return "\n".join(lines)


def alias_bomb_cases() -> Iterator[tuple[str, Case]]:
    """Billion laughs through every branch of the builder: values, refused keys, merges."""
    many_dups = "{" + ", ".join(["k: 1"] * 1000) + "}"
    many_non_text = "{" + ", ".join(["[x]: 1"] * 1000) + "}"
    keys = "{" + ", ".join(f"k{i}: {i}" for i in range(100)) + "}"
    merges = "{<<: [" + ", ".join(["*keys"] * 100) + "]}"
    bombs = {
        "values": "[lol, lol, lol, lol, lol, lol, lol, lol, lol]",
        "duplicate-keys": many_dups,
        "non-text-keys": many_non_text,
        "alias-keys": "{? *keys : 1, ? *keys : 2}",
        "merge": merges,
        "merge-non-mapping": "{<<: [" + ", ".join(["*seq"] * 1000) + "]}",
    }
    for name, base in bombs.items():
        text = f"recipe: bomb\nkeys: &keys {keys}\nseq: &seq [1]\n{_fan_out(base)}\nsteps: [*l9]\n"
        yield f"bomb-{name}", (text.encode(), TOO_MANY)
    # 50,000 aliases in one merge list, 5,000,000 pairs, over the budget without any nesting.
    wide = "{<<: [" + ", ".join(["*keys"] * 50_000) + "]}"
    yield "bomb-merge-wide", (f"recipe: bomb\nkeys: &keys {keys}\nsteps: [{wide}]\n".encode(), TOO_MANY)


def encoding_cases() -> Iterator[tuple[str, Case]]:
    """Text that is not UTF-8 YAML: other encodings, control characters, broken UTF-8."""
    text = "recipe: enc\nsteps:\n  - call: log\n    with: {message: hi}\n"
    yield "utf16-le-bom", (codecs.BOM_UTF16_LE + text.encode("utf-16-le"), "file is UTF-16 text")
    yield "utf16-be-bom", (codecs.BOM_UTF16_BE + text.encode("utf-16-be"), "file is UTF-16 text")
    yield "utf32-le-bom", (codecs.BOM_UTF32_LE + text.encode("utf-32-le"), "file is UTF-32 text")
    yield "utf32-be-bom", (codecs.BOM_UTF32_BE + text.encode("utf-32-be"), "file is UTF-32 text")
    yield "utf16-no-bom", (text.encode("utf-16-le"), "NUL byte")
    yield "latin1", (text.replace("hi", "café").encode("latin-1"), "not UTF-8 text (byte 0xe9)")
    for code in (*range(9), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0x80, 0x9F, 0xFFFE, 0xFFFF):
        bad = text.replace("hi", f"h{chr(code)}i").encode("utf-8")
        yield f"char-{code:04x}", (bad, "NUL byte" if code == 0 else f"U+{code:04X} is not allowed")
    broken = {
        "overlong": b"\xc0\x80",
        "surrogate": b"\xed\xa0\x80",
        "truncated": b"\xe2\x82",
        "continuation": b"\x80",
        "f8": b"\xf8\x88\x80\x80\x80",
    }
    for name, raw in broken.items():
        yield f"utf8-{name}", (text.encode().replace(b"hi", b"h" + raw + b"i"), "not UTF-8 text")


# ---------------------------------------------------------------------------------------------
# Running the real CLI


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def tikflow(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, under an address-space limit, with a hard timeout."""
    return subprocess.run(
        [sys.executable, "-m", "tikflow.cli", *args],
        cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:1"},
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=TIMEOUT_S,
        preexec_fn=_limit_memory,
        check=False,
    )


def validate_batch(directory: Path, expected: dict[str, str | re.Pattern[str] | None]) -> None:
    """`tikflow validate DIRECTORY` refuses every file with located one-line problems only."""
    result = tikflow("validate", str(directory))
    assert result.returncode == 2, result.stderr[-2000:]  # a signal would be negative
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""  # not one file passed
    *lines, summary = result.stderr.splitlines()
    assert summary == f"{len(expected)} of {len(expected)} recipe(s) invalid"
    found: dict[str, list[str]] = {}
    for line in lines:
        match = LOCATED.match(line)
        assert match, f"not FILE:LINE:COL: message: {line[:300]}"
        assert len(line) < 400, line[:300]
        found.setdefault(Path(match["file"]).name, []).append(match["message"])
    assert sorted(found) == sorted(expected)
    for name, want in expected.items():
        messages = found[name]
        if isinstance(want, re.Pattern):
            assert any(want.search(m) for m in messages), (name, messages)
        elif want is not None:
            assert any(want in m for m in messages), (name, messages)
        else:
            assert DEEP not in " ".join(messages), (name, messages)


def write_cases(
    directory: Path, cases: Iterator[tuple[str, Case]]
) -> dict[str, str | re.Pattern[str] | None]:
    expected: dict[str, str | re.Pattern[str] | None] = {}
    for name, (content, want) in cases:
        assert len(content) <= MAX_FILE_BYTES, name
        (directory / f"{name}.yaml").write_bytes(content)
        expected[f"{name}.yaml"] = want
    return expected


CLASSES: dict[str, Callable[[], Iterator[tuple[str, Case]]]] = {
    "nesting": nesting_cases,
    "tags": tag_cases,
    "construction": construction_cases,
    "alias-bombs": alias_bomb_cases,
    "encodings": encoding_cases,
}


@pytest.mark.parametrize("kind", CLASSES)
def test_every_generated_input_of_a_class_is_refused_with_its_position(kind: str, tmp_path: Path):
    validate_batch(tmp_path, write_cases(tmp_path, CLASSES[kind]()))


def test_files_that_are_not_regular_or_too_big_are_refused_without_reading_them(tmp_path: Path):
    os.mkfifo(tmp_path / "fifo.yaml")  # nobody writes: reading it would wait forever
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")  # endless, and stat says 0 bytes
    (tmp_path / "urandom.yaml").symlink_to("/dev/urandom")
    (tmp_path / "null.yaml").symlink_to("/dev/null")
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "nowhere")
    with open(tmp_path / "sparse.yaml", "wb") as sparse:
        sparse.truncate(2**31)  # 2 GB that take no disk
    (tmp_path / "over.yaml").write_bytes(b"recipe: big\n" + b"#" * MAX_FILE_BYTES)
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "sock.yaml"))
        validate_batch(
            tmp_path,
            {
                "fifo.yaml": "cannot read file: it is a FIFO, not a regular file",
                "zero.yaml": "cannot read file: it is a character device, not a regular file",
                "urandom.yaml": "it is a character device",
                "null.yaml": "it is a character device",
                "dir.yaml": "cannot read file: it is a directory, not a regular file",
                "loop.yaml": "cannot read file: Too many levels of symbolic links",
                "dangling.yaml": "cannot read file: No such file or directory",
                "sparse.yaml": f"file is {2**31} bytes; a recipe may be at most {MAX_FILE_BYTES}",
                "over.yaml": f"file is {MAX_FILE_BYTES + 12} bytes",
                "sock.yaml": "cannot read file: it is a socket, not a regular file",
            },
        )


def test_input_json_nested_without_end_is_refused_before_anything_starts():
    deep = "[" * 50_000 + "]" * 50_000  # a command-line argument holds at most 128 KiB
    result = tikflow("run", "tests/recipes/valid/monitor.yaml", "--input", f"keywords={deep}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.splitlines() == [
        "tests/recipes/valid/monitor.yaml:1:1: input 'keywords': "
        f"JSON nested deeper than {MAX_INPUT_DEPTH} levels"
    ]


# ---------------------------------------------------------------------------------------------
# The limits themselves, in process: exactly where they bite, and what stays accepted


def _problems(text: str | bytes) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(text, "f.yaml")
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("style", ["flow", "block"])
def test_nesting_is_refused_one_level_past_the_limit_at_that_level(style: str):
    def text(depth: int) -> str:
        inner = depth - 1
        if style == "flow":
            return f"recipe: x\nsteps: {'[' * inner}{']' * inner}\n"
        return "recipe: x\nsteps:\n  " + "- " * inner + "x\n"

    assert not any(DEEP in p for p in _problems(text(MAX_DEPTH)))
    # The first collection past the limit: flow lists open one column apart, `- ` two.
    column = 8 + MAX_DEPTH - 1 if style == "flow" else 3 + 2 * (MAX_DEPTH - 1)
    line = 2 if style == "flow" else 3
    assert _problems(text(MAX_DEPTH + 1)) == [f"f.yaml:{line}:{column}: {DEEP}"]


def test_json_input_at_the_depth_limit_is_taken_and_one_past_it_refused():
    from tikflow.loader import load_recipe

    recipe = load_recipe(ROOT / "tests/recipes/valid/monitor.yaml").recipe
    at_limit = "[" * MAX_INPUT_DEPTH + "]" * MAX_INPUT_DEPTH
    nested: list[object] = []
    for _ in range(MAX_INPUT_DEPTH - 1):
        nested = [nested]
    assert resolve_inputs(recipe, {"keywords": at_limit})["keywords"] == nested
    # Brackets inside JSON strings are text, not nesting.
    assert resolve_inputs(recipe, {"keywords": '["' + "[" * 100 + '"]'})["keywords"] == ["[" * 100]
    with pytest.raises(RecipeError) as caught:
        resolve_inputs(recipe, {"keywords": "[" + at_limit + "]"}, "m.yaml")
    assert [str(p) for p in caught.value.problems] == [
        f"m.yaml:1:1: input 'keywords': JSON nested deeper than {MAX_INPUT_DEPTH} levels"
    ]


def test_timestamps_stay_the_text_that_was_written_even_impossible_dates():
    for written in ("2024-02-30", "2024-02-29", "2024-13-01 25:00:00", "2001-12-14t21:59:43.10-05:00"):
        loaded = load_recipe_text(f"recipe: t\nsteps: [{{call: log, with: {{message: {written}}}}}]\n")
        assert loaded.recipe.steps[0].with_ == {"message": written}


def test_standard_tags_and_a_utf8_byte_order_mark_are_still_accepted():
    text = (
        "recipe: !!str tagged\n"
        "steps: !!seq\n"
        "  - !!map {call: log, with: {message: !!str 42}}\n"
        "  - {call: tikapi.hashtag_posts, with: {name: cats, count: !!int '30'}}\n"
    )
    for raw in (text.encode(), codecs.BOM_UTF8 + text.encode()):
        steps = load_recipe_text(raw).recipe.steps
        assert steps[0].with_ == {"message": "42"}
        assert steps[1].with_["count"] == 30


def test_merges_still_expand_and_an_alias_bomb_reports_each_problem_once():
    text = (
        "recipe: m\nsteps:\n  - {call: log, with: &base {message: hi}}\n  - {call: log, with: {<<: *base}}\n"
    )
    assert load_recipe_text(text).recipe.steps[1].with_ == {"message": "hi"}
    bomb = b"recipe: b\n" + _fan_out("{k: 1, k: 2}").encode() + b"\nsteps: [*l9]\n"
    problems = _problems(bomb)
    assert problems == [f"f.yaml:1:1: {TOO_MANY} (an alias bomb?)", "f.yaml:2:16: duplicate key 'k'"]


def test_a_tag_is_reported_with_every_other_yaml_problem_at_once():
    text = (
        "recipe: t\n"
        "steps:\n"
        "  - !!python/object:os.system {call: log, with: {message: !!binary aGk=}}\n"
        "  - {a: 1, a: 2}\n"
    )
    assert _problems(text) == [
        "f.yaml:3:5: YAML tag '!!python/object:os.system' is not supported"
        " (a recipe holds text, numbers, true/false, null, lists and mappings)",
        "f.yaml:3:59: YAML tag '!!binary' is not supported"
        " (a recipe holds text, numbers, true/false, null, lists and mappings)",
        "f.yaml:4:12: duplicate key 'a'",
    ]
