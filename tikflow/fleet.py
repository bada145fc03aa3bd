"""Many runs at once: labels, `tikflow list`, and `pause`/`resume`/`stop` of every match.

A run's recipe, phase and labels are search attributes (`workflows.state`), so finding runs is
one visibility query; what each has done (calls, effects, last error) comes from its `status`
query while it runs, and from its result once it completed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError

from workflows.models import LabelKey, LabelValue
from workflows.state import LABELS_KEY, PHASE_KEY, RECIPE_KEY

__all__ = ["RunRow", "find_runs", "label_query", "list_runs", "parse_labels", "signal_runs"]

_LABELS: TypeAdapter[dict[str, str]] = TypeAdapter(dict[LabelKey, LabelValue])
#: How long `list` waits for one run's `status` answer (a run with no worker never answers).
STATUS_TIMEOUT_S = 5.0


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    """`["client=acme", …]` as labels.

    Raises:
        ValueError: a pair is not `key=value`, or its key or value is not a label's.
    """
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--label needs KEY=VALUE, got {pair!r}")
        labels[key.strip()] = value.strip()
    try:
        return _LABELS.validate_python(labels)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ValueError(
            f"--label {where}: a label key is lowercase letters, digits, `_.-`; a value letters, "
            "digits and `_.:/@-`"
        ) from None


def label_query(
    *,
    recipe: str | None = None,
    phase: str | None = None,
    labels: dict[str, str] | None = None,
    running: bool | None = None,
) -> str:
    """The visibility query of tikflow's runs with these properties (None: any)."""
    # Every value here was validated (recipe names, label patterns, the phase's choices): no quotes.
    parts = ["WorkflowType = 'RecipeWorkflow'"]
    if recipe is not None:
        parts.append(f"{RECIPE_KEY.name} = '{recipe}'")
    if phase is not None:
        parts.append(f"{PHASE_KEY.name} = '{phase}'")
    for key, value in sorted((labels or {}).items()):
        parts.append(f"{LABELS_KEY.name} = '{key}={value}'")
    if running is True:
        parts.append("ExecutionStatus = 'Running'")
    elif running is False:
        parts.append("ExecutionStatus != 'Running'")
    return " AND ".join(parts)


@dataclass
class RunRow:
    """One line of `tikflow list`.

    Attributes:
        id: The workflow id.
        recipe: The recipe's name.
        phase: The phase (`status` while it runs; its final phase after).
        status: Temporal's execution status (`running`, `completed`, `failed`, …).
        labels: The run's labels.
        last_poll: When its last poll started (monitors), if known.
        calls: Calls that succeeded, if known.
        effects: Side effects done, if known.
        last_error: The latest error, if any.
    """

    id: str
    recipe: str
    phase: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    last_poll: datetime | None = None
    calls: int | None = None
    effects: int | None = None
    last_error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The row as JSON-able data."""
        row = asdict(self)
        row["last_poll"] = self.last_poll.isoformat() if self.last_poll else None
        return row


async def find_runs(client: Client, query: str, *, limit: int = 1000) -> list[WorkflowExecution]:
    """The executions `query` matches, newest first, at most `limit`."""
    found: list[WorkflowExecution] = []
    async for execution in client.list_workflows(query, limit=limit):
        found.append(execution)
    return found


async def list_runs(client: Client, query: str, *, limit: int = 1000) -> list[RunRow]:
    """`tikflow list`: the runs `query` matches, with what each has done."""
    executions = await find_runs(client, query, limit=limit)
    return list(await asyncio.gather(*(_row(client, e) for e in executions)))


async def _row(client: Client, execution: WorkflowExecution) -> RunRow:
    from tikflow.runs import get_status

    attributes = execution.typed_search_attributes
    status = (execution.status or WorkflowExecutionStatus.RUNNING).name.lower()
    labels = dict(v.split("=", 1) for v in attributes.get(LABELS_KEY) or [] if "=" in v)
    row = RunRow(
        id=execution.id,
        recipe=attributes.get(RECIPE_KEY) or "?",
        phase=attributes.get(PHASE_KEY) or status,
        status=status,
        labels=labels,
    )
    try:
        if execution.status == WorkflowExecutionStatus.RUNNING:
            answer = await asyncio.wait_for(get_status(client, execution.id), STATUS_TIMEOUT_S)
            row.phase, row.last_poll, row.last_error = answer.phase, answer.last_poll_at, answer.last_error
            row.calls, row.effects = answer.counters.calls, answer.counters.effects
        elif execution.status == WorkflowExecutionStatus.COMPLETED:
            result = await asyncio.wait_for(
                client.get_workflow_handle(execution.id, run_id=execution.run_id).result(),
                STATUS_TIMEOUT_S,
            )
            row.calls, row.effects = result.counters.calls, result.counters.effects
    except (RPCError, TimeoutError, AttributeError):
        pass  # no worker to answer, or a run of another shape: the row shows what visibility knows
    return row


async def signal_runs(client: Client, ids: Sequence[str], signal: str) -> dict[str, str | None]:
    """Send `signal` to every run in `ids`; id → None when it was sent, else why not."""

    async def one(workflow_id: str) -> str | None:
        try:
            await client.get_workflow_handle(workflow_id).signal(signal)
        except RPCError as exc:
            return exc.message
        return None

    outcomes = await asyncio.gather(*(one(i) for i in ids))
    return dict(zip(ids, outcomes, strict=True))
