"""The limiter's local-activity side: a worker's share of a quota, and no long waits in-process."""

from __future__ import annotations

import pytest

from activities.errors import RateLimited
from activities.ratelimit import Quota, RateLimiter


class Clock:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def limiter(clock: Clock, **options: float) -> RateLimiter:
    return RateLimiter({"tikapi": Quota(1, 0.1)}, clock=clock, sleep=clock.sleep, **options)


async def test_local_calls_use_this_workers_share_of_the_quota():
    clock = Clock()
    shared = limiter(clock, local_share=0.5)  # two workers share 10 req/s: 5 req/s each
    for _ in range(5):
        await shared.acquire("tikapi", "main", local=True)
    assert clock.now == pytest.approx(0.8)  # spaced 0.2 s apart
    regular = limiter(Clock(), local_share=0.5)
    for _ in range(5):
        await regular.acquire("tikapi", "main")  # the task-queue limit caps these across workers
    assert regular.wait_time("tikapi", "main") == pytest.approx(0.1)


async def test_a_local_call_raises_a_wait_longer_than_it_may_hold_its_workflow_task():
    clock = Clock()
    paced = limiter(clock, local_max_wait_s=2.0)
    paced.blocked("tikapi", "main", 10.0)
    with pytest.raises(RateLimited) as raised:
        await paced.acquire("tikapi", "main", local=True)
    assert raised.value.retry_after == pytest.approx(10.0)
    assert clock.now == 0.0
    await paced.acquire("tikapi", "main")  # a regular activity waits up to `max_wait_s`
    assert clock.now == pytest.approx(10.0)
