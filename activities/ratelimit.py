"""Rate-limit tracking per (provider, credential), shared by every activity in one worker.

Providers tell us where we stand in different ways (HighLevel's five `X-RateLimit-*` headers,
DumplingAI's `X-RateLimit-Limit/Remaining`, `Retry-After` on a 429); some tell us nothing and have
documented quotas instead. The tracker keeps, per key, the earliest time the next call may go out:
calls are spaced evenly over the current window when a quota is nearly spent, and held back
entirely until the reset after a 429. Waiting happens here, before the request, so the provider
is never hammered.

Some providers answer a 429 with no reset time at all and document their limits instead (TikTok:
6 video inits a minute per token, sliding). `window` books each call in such a documented sliding
window per (provider, credential, endpoint) and waits for room before sending, so the provider's
429 is the exception, not the way the limit is found. A wait longer than `max_wait_s` is never
done in-process nor skipped: it is raised as `RateLimited` with the wait as `retry_after`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Quota", "RateLimiter"]


@dataclass(frozen=True)
class Quota:
    """A documented request quota: at most `requests` per `per_seconds`."""

    requests: int
    per_seconds: float


@dataclass
class _Bucket:
    next_at: float = 0.0
    blocked_until: float = 0.0
    remaining: int | None = None
    window_s: float | None = None


class RateLimiter:
    """Spaces calls per (provider, credential) from quotas and the providers' own headers.

    Args:
        quotas: Provider key → a quota to pace calls by even before any header arrives.
        clock: Monotonic clock, injectable for tests.
        sleep: Async sleep, injectable for tests.
        max_wait_s: Longest wait done in-process; a longer one is the caller's (raised as a
            rate limit so the workflow can wait durably instead of pinning an activity slot).
        local_share: This worker's share of each quota for calls run as local activities, which
            Temporal's task-queue limit does not see (1 / the workers sharing the quota).
        local_max_wait_s: Longest wait a local activity does in-process: it holds its workflow
            task open, so a longer one is raised and becomes a retry or a workflow timer.
    """

    def __init__(
        self,
        quotas: Mapping[str, Quota] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
        max_wait_s: float = 30.0,
        local_share: float = 1.0,
        local_max_wait_s: float = 2.0,
    ) -> None:
        self._quotas = dict(quotas or {})
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}
        self._windows: dict[tuple[str, str, str], deque[float]] = {}
        self.max_wait_s = max_wait_s
        self.local_share = local_share
        self.local_max_wait_s = local_max_wait_s
        self.waited_s = 0.0

    def _bucket(self, key: tuple[str, str]) -> _Bucket:
        return self._buckets.setdefault(key, _Bucket())

    def wait_time(self, provider: str, account: str) -> float:
        """Seconds until a call for this key may go out (0 when it may go now)."""
        bucket = self._bucket((provider, account))
        now = self._clock()
        return max(max(bucket.next_at, bucket.blocked_until) - now, 0.0)

    async def acquire(self, provider: str, account: str, *, local: bool = False) -> None:
        """Wait (up to `max_wait_s`) until a call for (provider, account) may go out, then book it.

        A `local` call (a local activity) waits at most `local_max_wait_s` and books this
        worker's share of the quota only: it is spaced by the quota's interval / `local_share`.
        """
        key = (provider, account)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            bucket = self._bucket(key)
            delay = max(bucket.next_at, bucket.blocked_until) - self._clock()
            if delay > (self.local_max_wait_s if local else self.max_wait_s):
                # Sending before the reset would only earn another 429: the caller waits instead.
                raise _paced(provider, account, "its quota", delay)
            if delay > 0:
                self.waited_s += delay
                await self._sleep(delay)  # type: ignore[misc]
            now = self._clock()
            bucket.next_at = now + self._spacing(provider, bucket, self.local_share if local else 1.0)

    async def window(self, provider: str, account: str, name: str, quota: Quota) -> None:
        """Book one call in the documented sliding window `name`, waiting for room first.

        Args:
            provider: Provider key.
            account: Credential name (the provider counts per credential).
            name: The window (an endpoint path): each is counted on its own.
            quota: At most `requests` calls in any `per_seconds`.

        Raises:
            RateLimited: Room comes later than `max_wait_s` from now (`retry_after` says when).
        """
        key = (provider, account, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            times = self._windows.setdefault(key, deque())
            now = self._clock()
            while times and times[0] <= now - quota.per_seconds:
                times.popleft()
            if len(times) >= quota.requests:
                delay = times[0] + quota.per_seconds - now
                if delay > self.max_wait_s:
                    raise _paced(provider, account, name, delay)
                self.waited_s += delay
                await self._sleep(delay)  # type: ignore[misc]
                now = self._clock()
                while times and times[0] <= now - quota.per_seconds:
                    times.popleft()
            times.append(now)

    def _spacing(self, provider: str, bucket: _Bucket, share: float = 1.0) -> float:
        quota = self._quotas.get(provider)
        spacing = quota.per_seconds / quota.requests / share if quota else 0.0
        if bucket.remaining is not None and bucket.window_s:
            # Spread what is left of the window over the calls still allowed in it.
            spacing = (
                max(spacing, bucket.window_s / max(bucket.remaining, 1)) if bucket.remaining < 5 else spacing
            )
        return spacing

    def observe(self, provider: str, account: str, headers: Mapping[str, str], status: int) -> None:
        """Learn from a response's rate-limit headers (whatever the provider sends)."""
        bucket = self._bucket((provider, account))
        # HighLevel sends both a burst and a daily remaining count: the smaller one binds.
        counts = [
            _first_int(headers, name) for name in ("x-ratelimit-remaining", "x-ratelimit-daily-remaining")
        ]
        remaining = min((c for c in counts if c is not None), default=None)
        if remaining is not None:
            bucket.remaining = remaining
        interval_ms = _first_int(headers, "x-ratelimit-interval-milliseconds")
        if interval_ms is not None:
            bucket.window_s = interval_ms / 1000
        retry_after = parse_retry_after(headers)
        if status == 429 or remaining == 0:
            # A spent quota holds calls back even without a reset time (DumplingAI sends only
            # Limit/Remaining): until the reset if known, else for the current window if known.
            self.blocked(provider, account, retry_after if retry_after is not None else bucket.window_s)

    def blocked(self, provider: str, account: str, retry_after: float | None) -> None:
        """Hold every call for this key back until the limit resets (a short pause if unknown)."""
        bucket = self._bucket((provider, account))
        pause = retry_after if retry_after is not None else 1.0
        bucket.blocked_until = max(bucket.blocked_until, self._clock() + pause)


def _paced(provider: str, account: str, what: str, delay: float) -> Exception:
    from activities.errors import RateLimited

    return RateLimited(
        f"paced: {what} has room again in {delay:.0f} s",
        provider=provider,
        account=account,
        code="paced",
        retry_after=delay,
    )


def _first_int(headers: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            try:
                return int(float(value))
            except ValueError:
                continue
    return None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait according to `Retry-After` (delta seconds) or `X-RateLimit-Reset`."""
    value = headers.get("retry-after")
    if value is not None:
        try:
            return max(float(value), 0.0)
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            return max(when.timestamp() - time.time(), 0.0)
    reset = headers.get("x-ratelimit-reset")
    if reset is not None:
        try:
            seconds = float(reset)
        except ValueError:
            return None
        # Some providers send an epoch timestamp, others a delta; an epoch is far in the future.
        return max(seconds - time.time(), 0.0) if seconds > 1e9 else seconds
    return None
