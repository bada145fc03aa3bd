"""Cron expressions and time zones as a Temporal Schedule reads them."""

from __future__ import annotations

import difflib
import functools
import re

__all__ = ["cron_problem", "time_zone_problem"]

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


def cron_problem(cron: str) -> str | None:
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


def time_zone_problem(name: str) -> str | None:
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
