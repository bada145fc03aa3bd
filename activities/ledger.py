"""A small persistent record of side effects already done, so a retried activity does not redo them.

An activity can run twice for one step: the worker dies after the provider accepted a post but
before Temporal recorded the result, and the retry starts from scratch. Actions that change the
world therefore write down what they did (a TikTok `publish_id`, a HighLevel post id) under the
step's idempotency key the moment the provider answers, and look there first on every run.

The ledger is a JSON file next to the credentials file (`effects.json`; `TIKFLOW_LEDGER` names
another path), rewritten atomically (temp file + `os.replace`) under an exclusive `flock`, so
activities in this and other worker processes on the machine see each other's entries.

Keys name the run (`activities.contracts.idempotency_key`), so a new run of the same recipe does
new work while every retry, worker death and reset inside one run finds what it already did. A
monitor restarted after it was terminated mid-poll redoes the items it had not finished under the
old run's keys (`workflows.state.MonitorState.unfinished`), so it finds their entries here too.
The file stays bounded on write: entries older than `keep_s` go (every retry of their step is long
over), entries of a workflow's other run chains go once a chain of the same workflow id records
one and they are older than `SUPERSEDED_KEEP_S` (Temporal keeps at most one run of an id open, so
the older chain is closed; the week is for its restart's unfinished items), and past
`max_entries` the oldest go.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from activities.jsonfile import exclusive_lock, read_json, write_json_atomically

if TYPE_CHECKING:
    from activities.contracts import RunScope
    from activities.registry import Services

__all__ = ["SUPERSEDED_KEEP_S", "EffectLedger", "EffectLedgerError", "default_ledger_path", "ledger_for"]

#: Thirty days: far longer than any activity retry or workflow reset window.
DEFAULT_KEEP_S = 30 * 24 * 3600.0
#: The file is read and rewritten whole: 5,000 entries are about 1.4 MB, a write about 90 ms and a
#: read 45 ms on 2 busy cores (20,000: 380 ms and 170 ms). An entry is needed only while its call
#: can still be retried or reset, so only that many newer effects in between could drop a live one.
DEFAULT_MAX_ENTRIES = 5_000

#: A week: entries of a workflow's closed run chain outlive a newer chain's first write this long,
#: so a monitor terminated on a Friday and started again on Monday still finds what its unfinished
#: items did (before, they went at the newer chain's first write, which could come first).
SUPERSEDED_KEEP_S = 7 * 24 * 3600.0

_FILE_VERSION = 1


class EffectLedgerError(Exception):
    """The ledger file cannot be read or written; acting without it could repeat a side effect."""


def default_ledger_path(credentials_path: Path, env: Mapping[str, str] | None = None) -> Path:
    """Where the ledger lives: `TIKFLOW_LEDGER`, else `effects.json` beside the credentials file.

    Raises:
        activities.config.ConfigError: `TIKFLOW_LEDGER` cannot be used.
    """
    from activities.config import EngineConfig

    override: Path | None = EngineConfig.read("ledger_file", env)
    return override if override is not None else credentials_path.with_name("effects.json")


def ledger_for(services: Services) -> EffectLedger:
    """The worker's ledger, created on first use from the credential store's location."""
    if services.ledger is None:
        services.ledger = EffectLedger(default_ledger_path(services.credentials.path))
    return services.ledger


class EffectLedger:
    """Side effects done so far, keyed by `<action>:<idempotency key>`.

    Args:
        path: The JSON file (created on the first write).
        keep_s: Entries older than this many seconds are dropped when the file is rewritten.
        max_entries: At most this many entries are kept (the oldest go first).
        clock: Wall clock in epoch seconds, injectable for tests.
    """

    def __init__(
        self,
        path: Path,
        *,
        keep_s: float = DEFAULT_KEEP_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.keep_s = keep_s
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        """The value recorded under `key`, or None when nothing was recorded.

        Raises:
            EffectLedgerError: The file exists but cannot be read.
        """
        with self._lock:
            entry = self._read().get(key)
        return dict(entry["value"]) if entry is not None else None

    def put(self, key: str, value: Mapping[str, Any], *, run: RunScope | None = None) -> None:
        """Record `value` (JSON-able) under `key`, replacing what was there, and write atomically.

        Args:
            key: `<action>:<idempotency key>`.
            value: What the action did (or began doing).
            run: The run the key belongs to (`ActionContext.run`); entries of the same workflow's
                other run chains are dropped with this write.

        Raises:
            EffectLedgerError: The file cannot be read or written.
        """
        now = self._clock()
        with self._lock, self._file_lock():
            entries = {
                k: e
                for k, e in self._read().items()
                if now - e["at"] <= self.keep_s
                and not (now - e["at"] > SUPERSEDED_KEEP_S and _superseded(e.get("run"), run))
            }
            entry: dict[str, Any] = {"at": now, "value": dict(value)}
            if run is not None:
                entry["run"] = list(run)
            entries.pop(key, None)
            entries[key] = entry
            if len(entries) > self.max_entries:
                newest = sorted(entries.items(), key=lambda item: item[1]["at"])[-self.max_entries :]
                entries = dict(newest)
            self._write(entries)

    def discard(self, key: str) -> None:
        """Forget what was recorded under `key` (nothing happens when nothing was).

        Raises:
            EffectLedgerError: The file cannot be read or written.
        """
        with self._lock, self._file_lock():
            entries = self._read()
            if entries.pop(key, None) is not None:
                self._write(entries)

    def _read(self) -> dict[str, dict[str, Any]]:
        doc = read_json(self.path, EffectLedgerError, invalid="move it aside only once no run is mid-step")
        if doc is None:
            return {}
        effects = doc.get("effects") if isinstance(doc, dict) else None
        if not isinstance(effects, dict) or not all(
            isinstance(e, dict)
            and isinstance(e.get("at"), int | float)
            and isinstance(e.get("value"), dict)
            and _is_run(e.get("run", []))
            for e in effects.values()
        ):
            raise EffectLedgerError(f"{self.path} does not hold {{'effects': {{key: {{at, value}}}}}}")
        return effects

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        """Replace the file atomically: a reader sees the old or the new content, never half."""
        # The temp file is 0600 too: entries hold pre-signed upload URLs.
        write_json_atomically(
            self.path,
            {"version": _FILE_VERSION, "effects": entries},
            EffectLedgerError,
            temp_prefix=".effects-",
        )

    def _file_lock(self) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock shared with other processes, held across read-merge-write."""
        return exclusive_lock(self.path, EffectLedgerError)


def _is_run(value: Any) -> bool:
    """An entry's `run`: absent (kept as `[]` here), or `[workflow id, first run id]`."""
    return isinstance(value, list) and (
        value == [] or (len(value) == 2 and all(isinstance(part, str) for part in value))
    )


def _superseded(entry_run: list[str] | None, run: RunScope | None) -> bool:
    """Whether an entry belongs to an earlier run chain of the workflow `run` belongs to."""
    if not entry_run or run is None:
        return False
    return entry_run[0] == run[0] and entry_run[1] != run[1]
