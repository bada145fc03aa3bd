"""Reading a recipe file: a regular file, at most `MAX_FILE_BYTES`, UTF-8 text YAML may hold."""

from __future__ import annotations

import codecs
import os
import re
import stat
from pathlib import Path

from tikflow.loader.problems import Problem, RecipeError

__all__ = ["MAX_FILE_BYTES", "check_characters", "decode", "read_file"]

MAX_FILE_BYTES = 1_000_000

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


def read_file(path: str | Path, name: str) -> bytes:
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


def decode(raw: bytes, file: str) -> str:
    """The file's text, refused when it is too big, UTF-16/32 or not UTF-8 (`RecipeError`)."""
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


def check_characters(text: str, file: str) -> None:
    """Refuse (`RecipeError`, located) the first character a YAML stream may not hold."""
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
