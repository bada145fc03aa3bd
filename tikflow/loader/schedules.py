"""Cron expressions and time zones as a Temporal Schedule reads them."""

from __future__ import annotations

import difflib
import functools
import itertools
import re
from datetime import date, timedelta

__all__ = ["cron_problem", "gap_text", "shortest_cron_gap", "time_zone_problem"]

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


#: How many days `shortest_cron_gap` walks: two leap-year cycles, so `0 0 29 2 *` has two days.
_GAP_SPAN_DAYS = 8 * 365 + 2


def _cron_values(text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    """The numbers one field of a valid cron expression matches."""
    values: set[int] = set()
    for item in text.split(","):
        match = _CRON_ITEM.fullmatch(item)
        assert match is not None, "only for expressions cron_problem accepts"
        first, last = low, high
        if match[2] is not None:
            first = int(match[2]) if match[2].isdigit() else names[match[2].lower()]
            # `N/STEP` runs from N to the field's end, `N` alone is just N.
            last = first if match[3] is None and match[4] is None else high
        if match[3] is not None:
            last = int(match[3]) if match[3].isdigit() else names[match[3].lower()]
        values.update(range(first, last + 1, int(match[4] or 1)))
    return values


def shortest_cron_gap(cron: str) -> timedelta | None:
    """The shortest time between two consecutive times of a valid cron expression, on the wall clock.

    None when it matches fewer than two times in eight years. Daylight saving time shifts are
    ignored: the gap is read in the schedule's own (local) clock.
    """
    minutes, hours, days, months, weekdays = (
        _cron_values(text, low, high, names)
        for text, (_, low, high, names) in zip(cron.split(), _CRON_FIELDS, strict=True)
    )
    if 7 in weekdays:
        weekdays.add(0)  # both are Sunday
    times = sorted(hour * 60 + minute for hour in hours for minute in minutes)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    start = date(2024, 1, 1)
    matching = [
        day.toordinal()
        for day in (start + timedelta(days=n) for n in range(_GAP_SPAN_DAYS))
        # Temporal runs on days that match both day fields (the loader refuses restricting both).
        if day.month in months and day.day in days and (day.weekday() + 1) % 7 in weekdays
    ]
    gaps += [
        (later - earlier) * 1440 + times[0] - times[-1] for earlier, later in itertools.pairwise(matching)
    ]
    return timedelta(minutes=min(gaps)) if gaps else None


def gap_text(gap: timedelta) -> str:
    """A whole number of minutes as a recipe would write it: `15m`, `8h`, `1d`, `90m`."""
    minutes = int(gap.total_seconds()) // 60
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


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
