"""The `new_only` memory a closed run kept: what `tikflow run` starts its successor from.

Where it is depends on how the run ended:

- **completed** (a stopped monitor, or one past `max_polls`): its result, `RunResult.memory`;
- **failed** (a monitor that gave up after its failed polls): its failure's details
  (`FAILURE_MEMORY_PATCH`);
- **terminated, timed out, cancelled**, or failed without those details (a run started before the
  patch, or one that failed another way): the run said nothing as it ended, so its history is
  fetched and replayed here, in this process, with the workflow code the worker runs, and the
  memory is read from the replayed workflow after its last workflow task. Items are remembered
  before their steps run (`workflows.interpreter`), so that memory holds every item the run acted
  on, or had started to; those it had started and not finished are left out of it, and given
  with the run and poll their idempotency keys name (`unfinished`), so the new run acts on them
  again under the same keys and finds in the effect ledger what the old one's calls did. A
  replay costs the run's workflow code again, bounded by
  `POLLS_PER_RUN`: about 4 s for a run of 49 polls and 980 replies (2,032 events) on 2 cores.

Why a local replay rather than a query of the closed run (which the server answers by replaying
it on a worker): a query needs a worker polling the closed run's task queue, and waits until its
deadline when none is, or when the queue was a test's or a renamed one; the replay needs only the
history, which Temporal keeps for the namespace's retention. The failure's details come first
because they need no replay at all: the commonest loss (a monitor that gave up) does not depend
on the history replaying with today's code.

When nothing can be recovered (the history does not replay, or is gone) the result says why in
`lost`, and the new run starts empty: the caller prints one warning line, never a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from workflows.recipe import RecipeWorkflow, RunResult, workflow_runner

__all__ = ["KeptMemory", "kept_memory"]


@dataclass(frozen=True)
class KeptMemory:
    """The memory of the latest run of a workflow id, and how that run stands."""

    status: str
    """How the run stands: running, completed, failed, terminated, timed_out, canceled."""
    memory: dict[str, list[str]] = field(default_factory=dict)
    """The keys remembered per step (as `RunResult.memory`)."""
    unfinished: dict[str, dict[str, str]] = field(default_factory=dict)
    """Items it had started and not finished, per step, with the run and poll their idempotency
    keys name (`RecipeWorkflow.unfinished`): a terminated or timed-out run's only."""
    lost: str | None = None
    """Why a closed run's memory could not be recovered (None: it was, or the run is running)."""

    @property
    def closed(self) -> bool:
        """Whether the run has ended (its memory is what its next start begins with)."""
        return self.status != "running"


async def kept_memory(client: Client, workflow_id: str) -> KeptMemory | None:
    """The memory the latest run of `workflow_id` kept (empty for a running one); None: no such run.

    Raises:
        RPCError: Temporal could not be asked (other than: no such run).
    """
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    status = described.status
    name = status.name.lower() if status is not None else "closed"
    if status == WorkflowExecutionStatus.RUNNING:
        return KeptMemory(name)
    run = client.get_workflow_handle(workflow_id, run_id=described.run_id, result_type=RunResult)
    try:
        if status == WorkflowExecutionStatus.COMPLETED:
            result = await run.result(follow_runs=False)
            return KeptMemory(name, result.memory if isinstance(result, RunResult) else {})
        if status == WorkflowExecutionStatus.FAILED:
            try:
                await run.result(follow_runs=False)
            except WorkflowFailureError as exc:
                memory = _failure_memory(exc.cause)
                if memory is not None:
                    return KeptMemory(name, memory)
        history = await run.fetch_history()
    except RPCError as exc:
        # Between `describe` and now the history passed the namespace's retention, or the server went.
        return KeptMemory(name, lost=f"its history could not be read ({_one_line(exc.message)})")
    replayed: list[Any] = []
    replayer = Replayer(
        workflows=[RecipeWorkflow],
        data_converter=client.data_converter,
        workflow_runner=workflow_runner(),
        interceptors=[_KeepInstance(replayed)],
        # The SDK core logs a replay that fails to the console; the caller says it in one line.
        runtime=Runtime(telemetry=TelemetryConfig(logging=None)),
    )
    outcome = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if outcome.replay_failure is not None or not replayed:
        why = _failure_message(outcome.replay_failure) if outcome.replay_failure else "no workflow ran"
        return KeptMemory(name, lost=f"its history did not replay with this version ({why})")
    return KeptMemory(name, replayed[0].remembered(), replayed[0].unfinished())


def _failure_memory(cause: BaseException | None) -> dict[str, list[str]] | None:
    """The memory a failed monitor put in its failure's details (`FAILURE_MEMORY_PATCH`), if any."""
    if not isinstance(cause, ApplicationError) or not cause.details:
        return None
    detail = cause.details[0]
    memory = detail.get("memory") if isinstance(detail, dict) else None
    if not isinstance(memory, dict):
        return None
    return {str(key): [str(value) for value in values] for key, values in memory.items()}


def _failure_message(failure: Exception) -> str:
    """The message of a replay failure (the core wraps it in a dump of its failure record)."""
    text = str(failure)
    inner = re.search(r'message: "((?:[^"\\]|\\.)*)"', text)
    return _one_line(inner.group(1) if inner else text)


def _one_line(text: str, limit: int = 200) -> str:
    words = " ".join(text.split())
    return words if len(words) <= limit else words[: limit - 1] + "…"


class _KeepInstance(Interceptor):
    """Hands the replayed workflow object out of the replay, to read its memory once it is done.

    `workflow.instance()` is the SDK's own way to reach it; the object stays whole after the replay
    (the replayer only evicts it from its cache).
    """

    def __init__(self, into: list[Any]) -> None:
        self.into = into

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        """The inbound interceptor that records the workflow object as its run starts."""
        into = self.into

        class Keep(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                into.append(workflow.instance())
                return await super().execute_workflow(input)

        return Keep
