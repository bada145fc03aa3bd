"""pydantic's validation errors, mapped back onto the recipe's data and worded for a recipe's author."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tikflow.loader.problems import DataPath, Document
from workflows.models import NEW_ONLY_FORMS, STEP_KINDS, WEBHOOK_KINDS

__all__ = ["data_path", "label", "report_validation_error", "value_at"]


def report_validation_error(doc: Document, data: Any, error: Any) -> None:
    """Record one pydantic error at the node it is about, in a recipe author's words."""
    loc, node_path = data_path(data, error["loc"])
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
            ", ".join(sorted(value_at(data, node_path) or {}))
            if isinstance(value_at(data, node_path), dict)
            else "none"
        )
        doc.at(node_path, f"{message} (found keys: {found})")
        return
    field_name = loc[-1] if loc else "recipe"
    message = message.removeprefix("Value error, ")
    if kind == "too_short" and field_name in ("steps", "try"):
        message = "needs at least one step"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        if field_name == "recipe":
            message = "recipe name must be lowercase letters, digits and '-'"
        elif "ms|s|m|h|d" in pattern:
            message = f"not a duration: {error['input']!r} (expected a number and a unit: 30s, 5m, 1h, 1d)"
        elif field_name in ("id", "as"):
            message = f"{error['input']!r} is not a valid name (lowercase letters, digits and '_')"
    doc.at(node_path, f"{label(node_path)}: {message}")


def data_path(data: Any, loc: Iterable[str | int]) -> tuple[DataPath, DataPath]:
    """Map a pydantic location onto the data: (the logical path, the longest prefix that exists).

    Union tags (`call`, `if`…, a webhook's `url`/`credential`) that pydantic inserts are dropped;
    `with_`-style names become keys.
    """
    clean: list[str | int] = []
    existing: list[str | int] = []
    current = data
    previous: str | int | None = None
    for part in loc:
        tag = (
            (isinstance(previous, int) and isinstance(part, str) and part in STEP_KINDS)
            or (
                previous == "webhook"
                and part in WEBHOOK_KINDS
                and isinstance(current, dict | str)
                # `trigger.webhook.credential` is a field, not a notification webhook's tag.
                and clean[-2:-1] != ["trigger"]
            )
            or (previous == "new_only" and part in NEW_ONLY_FORMS)
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


def value_at(data: Any, path: DataPath) -> Any:
    """The value at `path` in the data, or None where there is none."""
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def label(path: DataPath) -> str:
    """`path` as a recipe author reads it: `steps[0].with.name`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "recipe"


def _where(path: DataPath) -> str:
    return f" in {label(path)}" if path else ""
