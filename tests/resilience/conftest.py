"""Shared fixtures of the resilience tests: a live sandbox, its credentials, workers and polling.

Everything is real: the Temporal dev server of `dev_env`, HTTP on loopback to the sandbox served
by uvicorn in a thread, and workers either in this process (an asyncio task) or as subprocesses
(`python -m tests.resilience.worker_process`) that a test may SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.credentials import CredentialStore
from activities.registry import Services
from tests.support.emulator import (
    AsyncAdminClient,
    emulator_services,
    serve_emulator,
    store_emulator_credentials,
)
from tests.support.waiting import eventually
from tikflow.devstack import running_workers
from tikflow.emulator.app import Emulator
from tikflow.loader import load_recipe_text
from tikflow.runs import start_recipe
from workflows.recipe import RecipeWorkflow, RunStatus

ROOT = Path(__file__).resolve().parents[2]
#: Our own account in the sandbox: every reply the engine posts is written by it.
ME = "tikflow_demo"
T = TypeVar("T")


#: Replies to every comment of one video that is not ours. Short timeouts and retry intervals
#: keep the tests fast (a killed worker's calls time out after 5 s); the engine's behaviour does
#: not depend on them.
REPLY_ALL = """
recipe: reply-all
inputs:
  video: {type: string, required: true}
  text: {type: string, default: "Thanks for watching!"}
timeout: 5s
retry: {initial: 200ms, max_interval: 2s, max_attempts: 100}
steps:
  - id: listing
    call: tikapi.comments
    with: {media_id: "{{ inputs.video }}", count: 30, pages: 50}
  - id: replies
    for_each: "{{ steps.listing.items }}"
    as: comment
    if: "{{ comment.author != 'tikflow_demo' }}"
    concurrency: 10
    steps:
      - call: tikapi.reply
        with:
          media_id: "{{ comment.aweme_id }}"
          reply_comment_id: "{{ comment.cid }}"
          text: "{{ inputs.text }}"
"""


# -- the sandbox ------------------------------------------------------------------------------


@dataclass
class LiveEmulator(AsyncAdminClient):
    """The emulator served on loopback, with its admin API and (same process) its fault counters."""

    base: str
    app_state: Emulator
    http: httpx.AsyncClient

    async def faults(self, *rules: dict[str, Any]) -> None:
        await self.admin("faults", {"rules": list(rules)})

    async def clear_faults(self) -> None:
        await self.admin("faults", method="DELETE")

    def faults_fired(self) -> int:
        """How many requests met a scripted fault so far (read from the sandbox's own rules)."""
        return sum(rule.fired for rule in self.app_state.faults.rules)

    async def seed_comments(self, count: int, video_id: str) -> list[str]:
        """`count` new top-level comments on `video_id`; their cids."""
        made = await self.admin("tick", {"comments": count, "video_id": video_id})
        return [c["cid"] for c in made["comments"]]

    async def video_of(self, author: str) -> str:
        """The id of a seeded video posted by someone other than us."""
        state = await self.state()
        return next(v["id"] for v in state["tikapi"]["videos"] if v["author"] == author)

    async def comments_to_answer(self, count: int, author: str = "nina_art") -> tuple[str, list[str]]:
        """A video by `author` with `count` fresh comments: its id and every comment not by us."""
        video = await self.video_of(author)
        await self.seed_comments(count, video)
        state = await self.state()
        parents = [
            c["cid"]
            for c in state["tikapi"]["comments"]
            if c["aweme_id"] == video and c["reply_to"] is None and c["author"] != ME and not c["deleted"]
        ]
        return video, parents

    async def replies(self, parents: list[str], author: str = ME) -> Counter[str]:
        """Replies by `author` per parent cid (only the parents asked about)."""
        wanted = set(parents)
        state = await self.state()
        return Counter(
            c["reply_to"]
            for c in state["tikapi"]["comments"]
            if c["reply_to"] in wanted and c["author"] == author and not c["deleted"]
        )


@pytest.fixture
async def emulator() -> AsyncIterator[LiveEmulator]:
    with serve_emulator() as (base, state):
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            yield LiveEmulator(base, state, http)


@pytest.fixture
def credentials_path(emulator: LiveEmulator, tmp_path: Path) -> Path:
    """A credentials file holding the emulator's demo keys as account `main` of every provider."""
    path = tmp_path / "credentials.json"
    store_emulator_credentials(CredentialStore(path, env={}), emulator.base)
    return path


# -- workers ----------------------------------------------------------------------------------


@dataclass
class Rig:
    """What a test drives: Temporal, the sandbox, the credentials file and a base task queue."""

    client: Client
    emulator: LiveEmulator
    credentials_path: Path
    task_queue: str
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def address(self) -> str:
        return str(self.client.service_client.config.target_host)

    async def start(
        self, recipe: str, inputs: dict[str, Any] | None = None, *, workflow_id: str | None = None
    ) -> WorkflowHandle[Any, Any]:
        """Start an inline recipe on this rig's task queue; its handle."""
        loaded = load_recipe_text(recipe, "<test recipe>")
        _, handle = await start_recipe(
            self.client,
            loaded,
            inputs or {},
            task_queue=self.task_queue,
            workflow_id=workflow_id or f"resilience-{uuid.uuid4()}",
        )
        assert handle is not None
        return handle

    def stop_workers(self) -> None:
        """Kill every worker subprocess this rig started."""
        for process in self.workers:
            process.kill()

    async def status(self, handle: WorkflowHandle[Any, Any]) -> RunStatus:
        return await handle.query(RecipeWorkflow.status)

    def spawn_worker(self, address: str | None = None, hold_s: float = 0) -> WorkerProcess:
        """A worker subprocess on this rig's task queue (see `worker_process` for `hold_s`)."""
        process = WorkerProcess.start(
            address=address or self.address,
            task_queue=self.task_queue,
            emulator=self.emulator.base,
            credentials=self.credentials_path,
            extra_env={"TIKFLOW_TEST_HOLD_S": str(hold_s)},
        )
        self.workers.append(process)
        return process


@pytest.fixture
async def rig(
    dev_env: WorkflowEnvironment, emulator: LiveEmulator, credentials_path: Path
) -> AsyncIterator[Rig]:
    """A fresh task queue on the shared dev server, the sandbox and its credentials; no worker yet.

    Worker subprocesses a test started are killed at teardown whatever happened.
    """
    made = Rig(dev_env.client, emulator, credentials_path, f"resilience-{uuid.uuid4()}")
    try:
        yield made
    finally:
        made.stop_workers()


@contextlib.asynccontextmanager
async def worker_in(rig: Rig) -> AsyncIterator[Services]:
    """An in-process worker for `rig`; yields its services (their state is inspectable)."""
    services = emulator_services(rig.emulator.base, rig.credentials_path)
    async with running_workers(rig.client, services, rig.task_queue):
        yield services


# -- worker subprocesses ------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """`python -m tests.resilience.worker_process` in its own process group."""

    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls,
        *,
        address: str,
        task_queue: str,
        emulator: str,
        credentials: Path,
        extra_env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        env = {
            **os.environ,
            **(extra_env or {}),
            "TEMPORAL_ADDRESS": address,
            "TIKFLOW_TASK_QUEUE": task_queue,
            "TIKFLOW_SANDBOX_URL": emulator,
            "TIKFLOW_CREDENTIALS": str(credentials),
            "TIKFLOW_LOG_JSON": "1",
        }
        log = credentials.parent / f"worker-{uuid.uuid4().hex[:8]}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.resilience.worker_process"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(process, log)

    async def ready(self, within: float = 30) -> None:
        """Wait until the worker printed that it polls (or fail with its log)."""

        async def started() -> bool:
            assert self.process.poll() is None, f"worker exited:\n{self.log.read_text()[-3000:]}"
            return "worker started" in self.log.read_text()

        deadline = time.monotonic() + within
        while not await started():
            assert time.monotonic() < deadline, f"worker did not start:\n{self.log.read_text()[-3000:]}"
            await asyncio.sleep(0.05)

    def sigkill(self) -> None:
        """Kill it the hard way: no graceful shutdown, no chance to report anything to Temporal."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


# -- runs with killed workers ------------------------------------------------------------------


async def recovered_effects(handle: WorkflowHandle[Any, Any]) -> int:
    """Side effects that completed with `already_done`: done by an attempt Temporal never heard
    back from, and found (not redone) by the next attempt's check before acting."""
    import json

    from temporalio.api.enums.v1 import EventType

    found = 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            payloads = event.activity_task_completed_event_attributes.result.payloads
            result = json.loads(payloads[0].data) if payloads else None
            found += isinstance(result, dict) and result.get("already_done") is True
    return found


@dataclass
class KillFigures:
    """What a reply run with SIGKILLed workers did."""

    expected: int
    actual: int
    duplicates: int
    missing: int
    kills: int
    #: Replies a killed worker had posted but not reported, found by the retry's check (see
    #: `recovered_effects`): the case the test exists for.
    recovered: int


async def reply_run_with_kills(
    rig: Rig,
    *,
    comments: int,
    kills: int,
    seed: int,
    workers: int = 2,
    hold_s: float = 1.0,
    within: float = 240,
) -> KillFigures:
    """Reply to `comments` comments with `workers` worker processes, SIGKILLing one `kills` times.

    Each kill happens at a random count of replies already posted (seeded), hits a random live
    worker, and is followed by a replacement worker. Workers hold side effects for `hold_s` before
    reporting them, so a kill leaves replies that are done but unrecorded.
    """
    import random

    rng = random.Random(seed)
    video, parents = await rig.emulator.comments_to_answer(comments)
    alive = [rig.spawn_worker(hold_s=hold_s) for _ in range(workers)]
    for process in alive:
        await process.ready()
    handle = await rig.start(REPLY_ALL, {"video": video})
    points = sorted(rng.sample(range(1, len(parents) - 1), kills))
    for point in points:

        async def posted(at_least: int = point) -> int:
            count = sum((await rig.emulator.replies(parents)).values())
            return count if count >= at_least else 0

        await eventually(posted, within=within, what=f"{point} replies posted", every=0.05)
        victim = rng.choice(alive)
        victim.sigkill()
        alive.remove(victim)
        replacement = rig.spawn_worker(hold_s=hold_s)
        await replacement.ready()
        alive.append(replacement)
    await asyncio.wait_for(handle.result(), within)
    replies = await rig.emulator.replies(parents)
    state = await rig.emulator.state()
    mine = [c for c in state["tikapi"]["comments"] if c["author"] == ME and c["reply_to"] is not None]
    return KillFigures(
        expected=len(parents),
        actual=len(mine),
        duplicates=sum(n - 1 for n in replies.values() if n > 1),
        missing=sum(1 for cid in parents if replies[cid] == 0),
        kills=len(points),
        recovered=await recovered_effects(handle),
    )
