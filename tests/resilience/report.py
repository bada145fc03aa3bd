"""The reliability figures the resilience and chaos tests leave behind, for the README's table.

Every test records one entry (kills survived, restarts survived, faults injected, effects expected,
actual and doubled) under its own name in `.tikflow/reliability.json`; a rerun replaces its entry.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REPORT = Path(os.environ.get("TIKFLOW_RELIABILITY_REPORT", ROOT / ".tikflow" / "reliability.json"))


def record(test: str, **figures: Any) -> None:
    """Store `figures` as the entry of `test` (atomically: a crash never leaves half a file)."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(REPORT.read_text())
    except (FileNotFoundError, ValueError):
        data = {}
    entries = data.setdefault("tests", {})
    entries[test] = {**figures, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    fd, tmp = tempfile.mkstemp(dir=REPORT.parent, prefix=".reliability-")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(tmp, REPORT)


def table(path: Path = REPORT) -> str:
    """The recorded figures as a Markdown table (what the README's Reliability section shows)."""
    entries: dict[str, dict[str, Any]] = json.loads(path.read_text()).get("tests", {})
    columns = ["kills", "restarts", "faults", "expected", "actual", "duplicates", "missing", "recovered"]
    columns.append("seconds")
    lines = [
        "| test | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, figures in sorted(entries.items()):
        lines.append(f"| {name} | " + " | ".join(str(figures.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
