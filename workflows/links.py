"""The used-link record: one tiny workflow per spent OAuth state or decided approval.

No database beside Temporal. A state is single use. Its nonce becomes the id of a `TikflowLinkUsed` workflow
(`tikflow-link-<nonce>`), started with `REJECT_DUPLICATE` reuse and `FAIL` on a conflict: the first
callback's start succeeds, every later one (another ingress replica, a replayed redirect) is refused
by Temporal itself, atomically, while the record is kept. A state expires long before a namespace's
retention drops the record (`activities.links.STATE_TTL_S` against days), and an expired state is
refused on its own. An approval's decision is recorded the same way, under one id per (run,
approval) (`tikflow.authorize.approvals`). The record holds names only (provider, account, the
waiting run): no code, token or key.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow

__all__ = [
    "APPROVAL_QUERY",
    "APPROVAL_SIGNAL",
    "LINK_WORKFLOW_PREFIX",
    "LinkUsed",
    "LinkUsedWorkflow",
    "approval_nonce",
    "link_workflow_id",
]

#: The id prefix of the used-link records.
LINK_WORKFLOW_PREFIX = "tikflow-link-"
#: The run's query that tells what a pending approval shows (label → text; raises once decided).
APPROVAL_QUERY = "approval_request"
#: The signal a decision reaches the run with: `{id, decision: approve | reject, comment, via}`.
APPROVAL_SIGNAL = "approval"


def approval_nonce(workflow_id: str, approval_id: str) -> str:
    """The record nonce of one approval of one run: every way of deciding it (links, shell) shares it."""
    digest = hashlib.sha256(f"{workflow_id}\0{approval_id}".encode()).hexdigest()[:32]
    return f"approval-{digest}"


class LinkUsed(BaseModel):
    """What a spent state named (names only)."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(description="Provider key.")
    account: str = Field(description="Credential name the result was stored under.")
    workflow_id: str = Field(default="", description="The run that asked for the link, if any.")


def link_workflow_id(nonce: str) -> str:
    """The id of the record of the state with `nonce`."""
    return f"{LINK_WORKFLOW_PREFIX}{nonce}"


@workflow.defn(name="TikflowLinkUsed")
class LinkUsedWorkflow:
    """Completes at once: its id, kept by Temporal, is the record that a state was spent."""

    @workflow.run
    async def run(self, used: LinkUsed) -> LinkUsed:
        """Return the record (it is in the workflow's input already; this closes the workflow)."""
        return used
