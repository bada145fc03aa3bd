"""Record `RecipeWorkflow` histories into `tests/histories/` (run: `make replay-record`).

Two sets, both written by this one command:

- `tests/histories/*.json`: representative scenarios in the time-skipping server with mock
  actions (continue-as-new, signals, re-authorization, rate-limit backoff, `until`, `for_each`).
- `tests/histories/recipes/*.json`: every shipped recipe in `definitions/`, end to end, against the
  provider sandbox on a real Temporal dev server (`tikflow.devstack.DevStack`, as `tikflow demo`
  runs it). Each recipe starts from a freshly reset, seeded sandbox world, so its history does not
  depend on the others; monitors run a few polls seconds apart.

Every run of a continue-as-new chain is written as its own file (`<name>-run1.json`, …).
`*-before-patch.json` (and `for-each-fixed-batches.json`) were recorded by the workflow code from
before a `workflow.patched` change, the other side of the patch; they are kept, never re-recorded
(`approval-tag-before-patch.json` is the shipped recipe approve-reply, recorded so).
`<recipe>-before-<change>.json` are shipped recipes as they were before a change to the recipe
itself (`hashtag-reply-before-subrecipe.json`, also of my-comments-autoreply and approve-reply:
replying in the recipe, before it ran the shared reply-to-comment sub-recipe); runs of them may
still be going, so they must replay too.
`python -m tests.replay.record --scenario stop-retrying …` records only the named mock scenarios.
`tests/test_replay.py` replays them all against the current workflow code, so a change that breaks
determinism for running workflows fails the tests. Re-record only when such a break is intended
(and running workflows have been drained or versioned), or when a shipped recipe is added or
changed. Re-recording changes ids, timestamps, ports and temporary paths, nothing else unless the
workflow code, a recipe or the sandbox changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.contracts import ActionRequest
from tests.replay.history import chain_histories
from tests.replay.shipped import record_recipes
from tikflow.devstack import find_binary
from tikflow.loader import load_recipe_text
from tikflow.runs import build_run
from workflows.recipe import POLLS_PER_RUN, RecipeWorkflow, workflow_runner

HISTORIES = Path(__file__).resolve().parent.parent / "histories"

MONITOR = f"""
recipe: replay-monitor
trigger: {{poll: {{every: 1m, max_polls: {POLLS_PER_RUN + 3}}}}}
steps:
  - id: videos
    call: tikapi.hashtag_posts
    with: {{name: cats}}
    new_only: id
  - set: {{last: "{{{{ steps.videos['items'] | length }}}}"}}
  - for_each: "{{{{ steps.videos['items'] }}}}"
    as: video
    steps:
      - call: log
        with: {{message: "{{{{ video.id }}}} after {{{{ vars.last }}}}"}}
"""

FOR_EACH = """
recipe: replay-for-each
steps:
  - id: videos
    call: tikapi.hashtag_posts
    with: {name: cats}
  - id: replies
    for_each: "{{ steps.videos['items'] }}"
    as: video
    concurrency: 3
    if: "{{ video.id != 'v2' }}"
    collect: "{{ steps.sent.ok | default(none) }}"
    steps:
      - id: sent
        call: tikapi.reply
        with: {media_id: "{{ video.id }}", reply_comment_id: "1", text: hi}
        continue_on_error: true
  - parallel:
      - - {call: log, with: {message: left}}
      - - {call: log, with: {message: right}}
  - if: "{{ steps.replies.processed > 3 }}"
    then:
      - {call: log, with: {message: many}}
    else:
      - {wait: 5m}
"""

UNTIL = """
recipe: replay-until
steps:
  - id: publish
    until: "{{ result.status == 'PUBLISH_COMPLETE' }}"
    call: tikapi.hashtag_posts
    with: {name: cats}
    every: 30s
    deadline: 10m
  - call: log
    with: {message: "{{ steps.publish.status }}"}
"""

REAUTH = """
recipe: replay-reauth
steps:
  - id: videos
    call: tikapi.hashtag_posts
    with: {name: cats}
  - id: limited
    call: tikapi.comments
    with: {media_id: "1"}
  - call: log
    with: {message: "{{ steps.videos['items'] | length }}"}
"""


#: `stop` while Temporal retries a call (the provider is down): the run ends stopped at once
#: (STOP_PATCH); before the patch the poll went on until the last attempt failed. Its read is a
#: regular activity (`reads: activity`): the recorder watches it retry as a pending activity.
STOP_RETRYING = """
recipe: replay-stop-retrying
trigger: {poll: {every: 1m, reads: activity}}
retry: {initial: 1s, max_attempts: 3}
steps:
  - id: comments
    call: tikapi.comments
    with: {media_id: "1"}
"""

#: `stop` while the run waits for a re-authorization: stopped (STOP_PATCH); before the patch the
#: run kept waiting, here until its deadline.
STOP_REAUTH = """
recipe: replay-stop-reauth
reauth_deadline: 1d
steps:
  - id: videos
    call: tikapi.hashtag_posts
    with: {name: cats}
"""

#: A monitor's reads as local activities (LOCAL_READS_PATCH): markers with summaries, a rate limit
#: waited in a timer, side effects (one rejected: a failed poll) as regular activities.
#: `monitor-reads-before-patch.json` is the other side (a copy of the `monitor` run from before it).
LOCAL_READS = """
recipe: replay-local-reads
trigger: {poll: {every: 1m, max_polls: 3}}
steps:
  - id: videos
    call: tikapi.hashtag_posts
    with: {name: cats}
    new_only: id
  - for_each: "{{ steps.videos['items'] }}"
    as: video
    limit: 2
    steps:
      - call: tikapi.comments
        with: {media_id: "{{ video.id }}"}
      - call: tikapi.reply
        with: {media_id: "{{ video.id }}", reply_comment_id: "7301", text: hi}
"""

#: A `notify` step whose webhook refuses it: the run goes on (NOTIFY_PATCH); before, it failed.
NOTIFY_FAILED = """
recipe: replay-notify-failed
steps:
  - id: alert
    notify: "followers jumped"
    webhook: "http://hooks.invalid/alert"
  - call: log
    with: {message: "after the alert"}
"""


class Mocks:
    """Mock actions with a call count per action."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def count(self, name: str) -> int:
        self.counts[name] = self.counts.get(name, 0) + 1
        return self.counts[name]

    def activities(self, scenario: str) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]:
        """(built-in activities, tikapi activities) for a scenario."""

        @activity.defn(name="log")
        async def log(request: ActionRequest) -> dict[str, Any]:
            return {"logged": request.params["message"]}

        @activity.defn(name="notify.send")
        async def notify(request: ActionRequest) -> dict[str, Any]:
            if scenario == "notify-failed":
                raise ApplicationError("http HTTP 404: HTTP 404", type="ProviderRejected", non_retryable=True)
            return {"sent": True}

        @activity.defn(name="tikapi.hashtag_posts")
        async def posts(request: ActionRequest) -> dict[str, Any]:
            n = self.count("posts")
            if scenario == "until":
                return {"status": "PUBLISH_COMPLETE" if n >= 3 else "PROCESSING"}
            if scenario in ("reauth", "stop-reauth") and n == 1:
                raise ApplicationError(
                    "session expired", {"provider": "tikapi"}, type="SessionExpired", non_retryable=True
                )
            return {"items": [{"id": f"v{i}"} for i in range(n // 2, n // 2 + 4)]}

        @activity.defn(name="tikapi.comments")
        async def comments(request: ActionRequest) -> dict[str, Any]:
            if scenario == "stop-retrying":
                raise ApplicationError("tikapi: GET 127.0.0.1:9/public/comments failed: ConnectError")
            if self.count("comments") == 1:
                raise ApplicationError(
                    "quota",
                    {"provider": "tikapi", "retry_after": 600},
                    type="RateLimited",
                    non_retryable=True,
                )
            return {"items": []}

        @activity.defn(name="tikapi.reply")
        async def reply(request: ActionRequest) -> dict[str, Any]:
            if request.params["media_id"] == "v3":
                raise ApplicationError("gone", type="ProviderRejected", non_retryable=True)
            return {"ok": request.params["media_id"]}

        return [log, notify], [posts, comments, reply]


@contextlib.asynccontextmanager
async def workers(client: Client, task_queue: str, scenario: str) -> AsyncIterator[None]:
    builtins, tikapi = Mocks().activities(scenario)
    async with (
        Worker(
            client,
            task_queue=task_queue,
            workflows=[RecipeWorkflow],
            workflow_runner=workflow_runner(),
            activities=[*builtins, *tikapi],  # a monitor's reads run here as local activities
        ),
        Worker(client, task_queue=f"{task_queue}.tikapi", activities=tikapi),
    ):
        yield


async def _start(client: Client, task_queue: str, text: str, name: str) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        RecipeWorkflow.run,
        build_run(load_recipe_text(text, f"{name}.yaml"), {}),
        id=f"replay-{name}",
        task_queue=task_queue,
    )


async def _phase(handle: WorkflowHandle[Any, Any], phase: str) -> None:
    for _ in range(400):
        if (await handle.query(RecipeWorkflow.status)).phase == phase:
            return
        await asyncio.sleep(0.025)
    raise RuntimeError(f"{handle.id} never reached phase {phase}")


async def _save_chain(client: Client, handle: WorkflowHandle[Any, Any], name: str) -> list[Path]:
    written = []
    for file, text in (await chain_histories(client, handle, name)).items():
        path = HISTORIES / file
        path.write_text(text)
        written.append(path)
    return written


async def record() -> list[Path]:
    """Record the scenarios and every shipped recipe; returns the files written."""
    return [*await record_scenarios(), *await record_recipes()]


async def _attempt(handle: WorkflowHandle[Any, Any], attempt: int) -> None:
    """Wait until Temporal is on `attempt` of the run's pending activity."""
    for _ in range(400):
        pending = (await handle.describe()).raw_description.pending_activities
        if pending and pending[0].attempt >= attempt:
            return
        await asyncio.sleep(0.025)
    raise RuntimeError(f"{handle.id} never reached attempt {attempt}")


async def record_stop_scenarios(env: WorkflowEnvironment, only: set[str] | None = None) -> list[Path]:
    """`stop` while a call is retried or a re-authorization awaited, a failed `notify` step, and
    a monitor whose reads run as local activities.

    The recorders end the run whichever side of the patches the workflow code is on (see the
    recipes' comments), so they also record the `-before-patch` histories from older code.
    """
    written: list[Path] = []
    for name, text in (
        ("stop-retrying", STOP_RETRYING),
        ("stop-reauth", STOP_REAUTH),
        ("notify-failed", NOTIFY_FAILED),
        ("monitor-local-reads", LOCAL_READS),
    ):
        if only is not None and name not in only:
            continue
        task_queue = f"replay-{uuid.uuid4()}"
        async with workers(env.client, task_queue, name):
            handle = await _start(env.client, task_queue, text, name)
            if name == "stop-retrying":
                await _attempt(handle, 2)
                await handle.signal(RecipeWorkflow.stop)
            elif name == "stop-reauth":
                await _phase(handle, "awaiting_reauth")
                await handle.signal(RecipeWorkflow.stop)
            with contextlib.suppress(WorkflowFailureError):
                await handle.result()
            written += await _save_chain(env.client, handle, name)
    return written


async def record_scenarios(only: set[str] | None = None) -> list[Path]:
    """Run every mock scenario (or those in `only`) and write its histories; the files written."""
    HISTORIES.mkdir(exist_ok=True)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    written: list[Path] = []
    try:
        written += await record_stop_scenarios(env, only)
        if only is not None:
            return written
        for name, text in (
            ("monitor", MONITOR),
            ("for-each", FOR_EACH),
            ("until", UNTIL),
            ("reauth", REAUTH),
        ):
            task_queue = f"replay-{uuid.uuid4()}"
            async with workers(env.client, task_queue, name):
                handle = await _start(env.client, task_queue, text, name)
                if name == "reauth":
                    await _phase(handle, "awaiting_reauth")
                    await handle.signal(RecipeWorkflow.pause)
                    await handle.signal(RecipeWorkflow.reauthorized, "main")
                    await handle.signal(RecipeWorkflow.resume)
                await handle.result()
                written += await _save_chain(env.client, handle, name)
        # A stopped monitor: signals while sleeping.
        task_queue = f"replay-{uuid.uuid4()}"
        async with workers(env.client, task_queue, "stopped"):
            handle = await _start(env.client, task_queue, MONITOR.replace("1m", "1h"), "stopped")
            await _phase(handle, "sleeping")
            await handle.signal(RecipeWorkflow.pause)
            await env.sleep(timedelta(hours=2))
            await handle.signal(RecipeWorkflow.resume)
            await handle.signal(RecipeWorkflow.stop)
            await handle.result()
            written += await _save_chain(env.client, handle, "stopped")
    finally:
        await env.shutdown()
    return written


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.replay.record [RECIPE ...]`: everything, or only the named shipped recipes."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.replay.record", description=__doc__)
    parser.add_argument(
        "recipes", nargs="*", help="re-record only these shipped recipes (default: everything)"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        help="record only this scenario (stop-retrying, stop-reauth, notify-failed, monitor-local-reads)",
    )
    args = parser.parse_args(argv)
    if args.scenario:
        paths = asyncio.run(record_scenarios(set(args.scenario)))
    else:
        paths = asyncio.run(record_recipes(set(args.recipes)) if args.recipes else record())
    for path in paths:
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


if __name__ == "__main__":
    main()
