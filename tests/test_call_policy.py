"""The call policy's non-retryable failure types: the error tree's, as committed histories hold them."""

from __future__ import annotations

import json
from pathlib import Path

from activities.errors import ProviderError
from workflows.policy import NON_RETRYABLE_ERRORS, retry_policy

HISTORIES = sorted((Path(__file__).parent / "histories").rglob("*.json"))


def tree() -> list[type[ProviderError]]:
    classes: list[type[ProviderError]] = []
    pending = list(ProviderError.__subclasses__())
    while pending:
        cls = pending.pop()
        classes.append(cls)
        pending += cls.__subclasses__()
    return classes


def test_non_retryable_errors_are_the_error_trees_permanent_failures_and_invalid_input():
    permanent = {cls.__name__ for cls in tree() if not cls.retryable}
    transient = {cls.__name__ for cls in tree() if cls.retryable}
    assert permanent == {"SessionExpired", "CredentialsRejected", "ProviderRejected"}
    assert set(NON_RETRYABLE_ERRORS) == permanent | {"InvalidActionInput"}
    assert transient.isdisjoint(NON_RETRYABLE_ERRORS)
    assert len(NON_RETRYABLE_ERRORS) == len(set(NON_RETRYABLE_ERRORS))


def test_non_retryable_errors_are_in_the_order_committed_histories_recorded():
    """Every call's retry policy in a committed history lists exactly these, in this order."""
    recorded: set[tuple[str, ...]] = set()
    for path in HISTORIES:
        for event in json.loads(path.read_text())["events"]:
            scheduled = event.get("activityTaskScheduledEventAttributes")
            types = (scheduled or {}).get("retryPolicy", {}).get("nonRetryableErrorTypes")
            if types:
                recorded.add(tuple(types))
    assert recorded == {("ProviderRejected", "CredentialsRejected", "SessionExpired", "InvalidActionInput")}
    assert recorded == {tuple(NON_RETRYABLE_ERRORS)}
    assert retry_policy(None).non_retryable_error_types == NON_RETRYABLE_ERRORS


def test_a_local_calls_retry_delay_is_what_temporal_would_wait():
    from datetime import timedelta

    from temporalio.exceptions import ApplicationError

    from workflows.policy import retry_delay, retry_policy

    policy = retry_policy(None)
    flaky = ApplicationError("HTTP 502", type="ProviderUnavailable")
    assert [retry_delay(flaky, policy, n) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (1, 2, 4)]
    assert retry_delay(flaky, policy, 12) == timedelta(minutes=5)  # capped
    assert retry_delay(flaky, policy, 20) is None  # the last of 20 attempts
    reset = ApplicationError("slow down", type="RateLimited", next_retry_delay=timedelta(seconds=30))
    assert retry_delay(reset, policy, 1) == timedelta(seconds=30)
    assert retry_delay(ApplicationError("gone", type="ProviderRejected"), policy, 1) is None  # by type
    assert retry_delay(ApplicationError("no", type="X", non_retryable=True), policy, 1) is None
