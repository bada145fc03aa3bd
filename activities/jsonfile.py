"""A JSON file that several processes on one machine read and rewrite safely.

The credential store and the side-effect ledger keep their state this way: the whole file is
rewritten to a temp file beside it (created 0600: both hold secrets), flushed, fsynced and renamed
over the old one, so a reader sees the old or the new content and never half of it; writers take
an exclusive `flock` on a lock file beside it across read-merge-write, so two processes updating
at once both land. Directories are created 0700.

Every failure is raised as the caller's own exception type with a one-line message naming the
path and the OS's reason, never a traceback's worth of `OSError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["exclusive_lock", "open_lock_file", "read_json", "write_json_atomically"]


def read_json(path: Path, error: type[Exception], *, invalid: str) -> Any:
    """The parsed content of `path`, or None when the file does not exist.

    Args:
        path: The file.
        error: The exception type raised on failure.
        invalid: What to tell the user after `<path> is not valid JSON; ` when the file is corrupt.

    Raises:
        error: The file cannot be read or is not JSON.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise error(f"{path} is not valid JSON; {invalid}") from None


def write_json_atomically(
    path: Path, doc: Any, error: type[Exception], *, temp_prefix: str, indent: int | None = None
) -> None:
    """Replace `path` with `doc` as JSON (sorted keys), atomically and durably, mode 0600.

    Args:
        path: The file (its directory is created 0700 when missing).
        doc: JSON-able content.
        error: The exception type raised on failure.
        temp_prefix: Name prefix of the temp file written beside `path`.
        indent: `json.dumps` indentation (None: one line).

    Raises:
        error: The directory or the file cannot be written.
    """
    text = json.dumps(doc, indent=indent, sort_keys=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # mkstemp creates the file with mode 0600, so its content is never world-readable.
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror}") from None


def open_lock_file(lock_path: Path, error: type[Exception]) -> int:
    """Open (creating it 0600, its directory 0700) a lock file; the caller flocks and closes the fd.

    Raises:
        error: The lock file cannot be created.
    """
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise error(f"cannot lock {lock_path}: {exc.strerror}") from None


@contextlib.contextmanager
def exclusive_lock(path: Path, error: type[Exception]) -> Iterator[None]:
    """Hold an exclusive lock on `<path>.lock`, shared with other processes, for the block.

    Raises:
        error: The lock file cannot be created.
    """
    fd = open_lock_file(path.with_name(path.name + ".lock"), error)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
