"""Reading a run's histories back from Temporal, for the recorders."""

from __future__ import annotations

import base64
import json
from typing import Any

from temporalio.client import Client, WorkflowHandle

__all__ = ["chain_histories", "readable"]


async def chain_histories(client: Client, handle: WorkflowHandle[Any, Any], name: str) -> dict[str, str]:
    """Every run of the chain that starts at `handle`: file name → history JSON."""
    files: dict[str, str] = {}
    run_id: str | None = handle.first_execution_run_id or handle.result_run_id
    index = 1
    while run_id is not None:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        suffix = (
            f"-run{index}"
            if index > 1
            or history.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
        files[f"{name}{suffix}.json"] = history.to_json() + "\n"
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else None
        )
        index += 1
    return files


def readable(history_json: str) -> str:
    """A history's JSON with every payload's data decoded: what a search for a secret must read.

    `to_json()` keeps payloads (workflow input, activity inputs and results, memo, search
    attributes, signals) base64-encoded, so a plain search of the file would find nothing in them.
    """
    decoded: list[str] = [history_json]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and isinstance(node.get("metadata"), dict):
                decoded.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return "\n".join(decoded)
