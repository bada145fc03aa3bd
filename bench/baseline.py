"""Hand-written Temporal workflows doing exactly the activity calls a recipe makes: the baselines.

They schedule the same activities (named after the action, on the provider's task queue) with the
same `ActionRequest`, timeout and retry policy as `RecipeWorkflow._call`, so the difference
between a recipe and its baseline is the interpreter alone.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import ActionRequest, task_queue_for
    from workflows.recipe import NON_RETRYABLE_ERRORS

__all__ = ["FanoutBaseline", "MonitorBaseline", "SequentialBaseline"]

#: `RecipeWorkflow`'s policy for a call step without `retry:` (see `workflows.recipe._retry_policy`).
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=20,
    non_retryable_error_types=NON_RETRYABLE_ERRORS,
)
TIMEOUT = timedelta(minutes=2)


async def _call(action: str, params: dict[str, Any], key: str) -> Any:
    return await workflow.execute_activity(
        action,
        ActionRequest(action=action, params=params, account="main", idempotency_key=key, recipe="baseline"),
        task_queue=task_queue_for(action, workflow.info().task_queue),
        start_to_close_timeout=TIMEOUT,
        retry_policy=RETRY,
        result_type=dict,
    )


@workflow.defn(name="BenchSequential")
class SequentialBaseline:
    """`count` calls of one action, one after the other."""

    @workflow.run
    async def run(self, action: str, params: dict[str, Any], count: int) -> int:
        wid = workflow.info().workflow_id
        for i in range(count):
            await _call(action, params, f"{wid}:{i}")
        return count


@workflow.defn(name="BenchFanout")
class FanoutBaseline:
    """One call per item, at most `concurrency` at once (a semaphore: a sliding window)."""

    @workflow.run
    async def run(self, action: str, items: list[dict[str, Any]], concurrency: int) -> int:
        wid = workflow.info().workflow_id
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int, params: dict[str, Any]) -> None:
            async with gate:
                await _call(action, params, f"{wid}:{i}")

        await asyncio.gather(*(one(i, p) for i, p in enumerate(items)))
        return len(items)


@workflow.defn(name="BenchMonitor")
class MonitorBaseline:
    """`hashtag-reply` as a Temporal user would write it by hand: the same poll, no interpreter.

    Every `every_s` it lists the hashtag, lists the comments of the first `videos` videos and
    keeps those that contain a keyword (none do in the benchmark: nothing to answer), then
    sleeps until the next poll is due; it continues-as-new after `polls_per_run` polls, as a
    tikflow monitor does. `local`: the two reads as local activities instead of activities.
    """

    @workflow.run
    async def run(
        self, hashtag: str, keywords: list[str], every_s: float, polls_per_run: int, local: bool
    ) -> None:
        wid = workflow.info().workflow_id
        for poll in range(polls_per_run):
            started = workflow.now()
            posts = await _read(
                local, "tikapi.hashtag_posts", {"name": hashtag, "count": 30}, f"{wid}:{poll}:v"
            )
            matches = []
            for video in posts.get("items", [])[:1]:
                comments = await _read(local, "tikapi.comments", {"media_id": video["id"]}, f"{wid}:{poll}:c")
                matches += [
                    c
                    for c in comments.get("items", [])
                    if any(k in str(c.get("text", "")).lower() for k in keywords)
                ]
            assert not matches, "the benchmark's keywords match no comment"
            remaining = (started + timedelta(seconds=every_s) - workflow.now()).total_seconds()
            if remaining > 0:
                await workflow.sleep(remaining)
        workflow.continue_as_new(args=[hashtag, keywords, every_s, polls_per_run, local])


async def _read(local: bool, action: str, params: dict[str, Any], key: str) -> Any:
    request = ActionRequest(
        action=action, params=params, account="main", idempotency_key=key, recipe="baseline"
    )
    if local:
        return await workflow.execute_local_activity(
            action, request, start_to_close_timeout=TIMEOUT, retry_policy=RETRY, result_type=dict
        )
    return await _call(action, params, key)
