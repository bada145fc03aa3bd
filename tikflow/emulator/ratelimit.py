"""Request quotas: sliding windows (per second, per 10 s, per minute) and daily quotas.

Time comes from the sandbox clock, so a test crosses a window by moving its clock, not by sleeping.
Each provider module decides its limits (from `EmulatorConfig`) and how a refusal looks.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DAY_S", "Quotas", "Verdict"]

DAY_S = 86_400.0


@dataclass(frozen=True)
class Verdict:
    """The outcome of counting one request against a quota.

    Attributes:
        allowed: Whether the request fits in the quota (refused requests are not counted).
        remaining: Requests left in the current window after this one.
        reset_s: Seconds until a refused request would fit again (0 when allowed).
    """

    allowed: bool
    remaining: int
    reset_s: float


class Quotas:
    """Request counters per (provider, key): sliding windows and UTC-day quotas."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, str, float], deque[float]] = defaultdict(deque)
        self._days: dict[tuple[str, str], tuple[int, int]] = {}

    def sliding(self, provider: str, key: str, limit: int, window_s: float) -> Verdict:
        """Count a request in a sliding window of `window_s` seconds holding at most `limit`."""
        now = self._clock()
        times = self._windows[(provider, key, window_s)]
        while times and times[0] <= now - window_s:
            times.popleft()
        if len(times) >= limit:
            return Verdict(False, 0, times[0] + window_s - now)
        times.append(now)
        return Verdict(True, limit - len(times), 0.0)

    def daily(self, provider: str, key: str, limit: int) -> Verdict:
        """Count a request against a quota that resets at midnight UTC."""
        now = self._clock()
        day = int(now // DAY_S)
        seen_day, used = self._days.get((provider, key), (day, 0))
        if seen_day != day:
            used = 0
        if used >= limit:
            return Verdict(False, 0, (day + 1) * DAY_S - now)
        self._days[(provider, key)] = (day, used + 1)
        return Verdict(True, limit - used - 1, 0.0)
