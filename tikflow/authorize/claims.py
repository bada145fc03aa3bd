"""The single-use record of spent states: in Temporal (`TemporalClaims`), or in memory for paste-back.

See `workflows.links` for why a workflow id is the record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from activities.links import LinkClaim

__all__ = ["MemoryClaims", "TemporalClaims"]


class TemporalClaims:
    """Spends a state by starting its `TikflowLinkUsed` record (refused by Temporal the second time).

    Args:
        client: Gives the Temporal client.
        task_queue: Where the record's workflow runs (the workers' base queue).
    """

    def __init__(self, client: Callable[[], Awaitable[Any]], task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    async def spend(self, claim: LinkClaim) -> bool:
        """True the first time `claim`'s state is spent, False ever after."""
        from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
        from temporalio.exceptions import WorkflowAlreadyStartedError

        from workflows.links import LinkUsed, LinkUsedWorkflow, link_workflow_id

        client = await self._client()
        try:
            await client.start_workflow(
                LinkUsedWorkflow.run,
                LinkUsed(provider=claim.provider, account=claim.account, workflow_id=claim.workflow_id),
                id=link_workflow_id(claim.nonce),
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                # Closed even where no worker runs it: a closed record still refuses the id.
                execution_timeout=timedelta(hours=1),
            )
        except WorkflowAlreadyStartedError:
            return False
        return True


class MemoryClaims:
    """Spent states of one process: a paste-back state is completed only by the command that made it."""

    def __init__(self) -> None:
        self._spent: set[str] = set()

    async def spend(self, claim: LinkClaim) -> bool:
        """True the first time `claim`'s state is spent in this process."""
        if claim.nonce in self._spent:
            return False
        self._spent.add(claim.nonce)
        return True
