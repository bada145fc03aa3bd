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

__all__ = ["FanoutBaseline", "SequentialBaseline"]

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
