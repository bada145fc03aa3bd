"""`tikflow state ID [--reset STEP]` and `tikflow upgrade ID FILE`: a run's `new_only` memory.

How the memory survives stops, upgrades and schedules: `workflows.memory`.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

__all__ = ["add_parser", "cmd_state", "cmd_upgrade"]


def add_parser(subparsers: Any) -> None:
    """Add `state` and `upgrade` to the `tikflow` command line."""
    p = subparsers.add_parser(
        "state", help="show (or reset) a run's new_only memory; of a closed run, what its restart starts from"
    )
    p.add_argument("id", help="the run's workflow id")
    p.add_argument(
        "--reset",
        metavar="STEP",
        help="forget this step's memory (its id, else its path); a running run's only: "
        "restart a closed one, then reset",
    )
    p.set_defaults(func=cmd_state)
    p = subparsers.add_parser("upgrade", help="continue a running monitor as a new version of its recipe")
    p.add_argument("id", help="the monitor's workflow id")
    p.add_argument("file", metavar="FILE", help="the new version of the recipe")
    p.set_defaults(func=cmd_upgrade)


async def _running(client: Any, workflow_id: str, what: str) -> Any:
    """The handle of the running workflow `workflow_id`; a one-line `UserError` if there is none."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    from tikflow.cli import UserError

    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
    except RPCError:
        raise UserError(
            f"cannot {what} {workflow_id!r}: no such run (`tikflow list` shows the runs)"
        ) from None
    if described.status != WorkflowExecutionStatus.RUNNING:
        name = described.status.name.lower() if described.status else "closed"
        raise UserError(f"cannot {what} {workflow_id!r}: it is not running ({name})")
    return handle


def cmd_state(args: argparse.Namespace) -> int:
    """Print the memory per step (count, oldest, newest, watermark); `--reset STEP` forgets one step's.

    A closed run (completed, failed, terminated, ...) shows the memory it kept, which its restart
    with the same recipe and inputs starts from (`tikflow.kept_memory`). Its memory cannot be
    reset: the closed run's record is Temporal's history, which nothing rewrites, and a reset kept
    beside it would be a store outside Temporal; restart it, then reset the running run.
    """
    from tikflow.cli import UserError, _client
    from tikflow.kept_memory import kept_memory
    from workflows.memory import StepMemory, step_of, summary
    from workflows.recipe import RecipeWorkflow

    async def go() -> int:
        client = await _client()
        kept = await kept_memory(client, args.id)
        if kept is None:
            what = "reset" if args.reset else "show the state of"
            raise UserError(f"cannot {what} {args.id!r}: no such run (`tikflow list` shows the runs)")
        if kept.closed:
            if args.reset:
                raise UserError(
                    f"cannot reset {args.id!r}: it is not running ({kept.status}); its restart starts "
                    "from the memory `tikflow state` shows: start it again, then reset"
                )
            if kept.lost is not None:
                raise UserError(f"{args.id} ended {kept.status} and {kept.lost}: its restart starts empty")
            shown: list[StepMemory] = summary(kept.memory)
            print(f"{args.id} is closed ({kept.status}): its restart starts from this memory")
        else:
            handle = client.get_workflow_handle(args.id)
            shown = await handle.query(RecipeWorkflow.memory)
        if args.reset:
            steps = sorted({step_of(entry.step) for entry in shown})
            if args.reset not in steps:
                raise UserError(
                    f"run {args.id} has no memory for step {args.reset!r} "
                    f"(steps: {', '.join(steps) or 'none'})"
                )
            await handle.signal(RecipeWorkflow.forget, args.reset)
            print(f"reset: {args.id} forgets the memory of step {args.reset}")
            return 0
        if not shown:
            print(f"{args.id}: no new_only memory")
        for entry in shown:
            mark = f"   watermark: {entry.watermark}" if entry.watermark is not None else ""
            print(
                f"{entry.step}: {entry.count} keys   oldest: {entry.oldest or '-'}"
                f"   newest: {entry.newest or '-'}{mark}"
            )
        if kept.closed:
            for step, items in sorted(kept.unfinished.items()):
                print(
                    f"{step}: {len(items)} items not finished: its restart acts on them again "
                    "under the same idempotency keys"
                )
        return 0

    return asyncio.run(go())


def cmd_upgrade(args: argparse.Namespace) -> int:
    """Validate FILE, then send it to the running monitor ID, which continues as that version."""
    from tikflow.cli import EXIT_INVALID, UserError, _client
    from tikflow.loader import RecipeError, load_recipe, resolve_inputs
    from tikflow.runs import build_run
    from workflows.recipe import RecipeRun, RecipeWorkflow

    loaded = load_recipe(args.file)  # a RecipeError is reported by `tikflow.cli.main`
    if loaded.recipe.trigger is None or loaded.recipe.trigger.poll is None:
        raise UserError(
            f"{args.file}: not a monitor (no `trigger: poll`); only a monitor is upgraded", EXIT_INVALID
        )

    async def go() -> int:
        client = await _client()
        handle = await _running(client, args.id, "upgrade")
        current = await _current_run(client, args.id)
        if current.recipe.trigger is None or current.recipe.trigger.poll is None:
            raise UserError(f"cannot upgrade {args.id!r}: it is not a monitor")
        if current.recipe.recipe != loaded.recipe.recipe:
            raise UserError(
                f"cannot upgrade {args.id!r} ({current.recipe.recipe}) to recipe {loaded.recipe.recipe!r}"
            )
        try:
            resolve_inputs(loaded.recipe, current.inputs, loaded.source)
        except RecipeError as exc:
            raise UserError(f"{exc.problems[0]} (the run's inputs)", EXIT_INVALID) from None
        new: RecipeRun = build_run(loaded, current.inputs)
        new.pacer_queue = current.pacer_queue
        await handle.signal(RecipeWorkflow.upgrade, new)
        print(f"upgrade: {args.id} continues as {loaded.source} after its current poll")
        return 0

    return asyncio.run(go())


async def _current_run(client: Any, workflow_id: str) -> Any:
    """The input (`RecipeRun`) of the latest execution of `workflow_id`: its recipe and inputs."""
    from workflows.recipe import RecipeRun

    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        [run] = await client.data_converter.decode(payloads, [RecipeRun])
        return run
    raise RuntimeError(f"{workflow_id} has no history")
