"""Record every shipped recipe end to end into `tests/histories/recipes/` (part of `make replay-record`).

One `DevStack` (a real Temporal dev server, the provider sandbox, an in-process worker), on free
ports in a temporary home. For each `definitions/*.yaml`, in name order: the sandbox is reset to
its seeded world (and fresh TikTok tokens stored, since a reset forgets issued tokens), the
recipe's `prepare` step sets the scene through the sandbox's admin API, the recipe starts with its
inputs (a monitor shortened to a few polls seconds apart), `during` acts on the running workflow
where a recipe needs a change between polls, and the finished run's histories are kept.

A recipe not listed in `PLANS` runs with its input defaults (a monitor: two polls); one that needs
an input fails the recording and must get a plan. The files are written only when every recipe
finished and no credential the sandbox knows appears in any history.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import re
import struct
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

from activities.credentials import CredentialStore
from tests.replay.history import chain_histories, readable
from tests.support.emulator import AdminClient, store_emulator_credentials
from tikflow.devstack import DevStack, free_port
from tikflow.emulator import EmulatorConfig, demo_credentials
from tikflow.loader import LoadedRecipe, load_recipe
from tikflow.runs import start_recipe
from workflows.links import APPROVAL_SIGNAL
from workflows.models import PollTrigger, Trigger
from workflows.recipe import RecipeWorkflow

__all__ = ["DEFINITIONS", "RECIPE_HISTORIES", "record_recipes", "sandbox_secrets"]

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "definitions"
RECIPE_HISTORIES = ROOT / "tests" / "histories" / "recipes"
TASK_QUEUE = "replay-recipes"
ME = "tikflow_demo"


@dataclass
class Scene:
    """What a recipe's plan may use: the emulator, a scratch directory and a webhook URL."""

    emulator: AdminClient
    scratch: Path
    webhook: str


@dataclass(frozen=True)
class Plan:
    """How one shipped recipe is recorded.

    Attributes:
        inputs: The recipe's inputs for this scene.
        polls: A monitor's polls (`max_polls` of the shortened trigger).
        every: A monitor's time between the starts of two polls: longer than a poll takes, so
            every recording has the same sleeps (a poll that overruns it starts the next at once).
        prepare: Runs before the start (e.g. new comments for the recipe to find).
        during: Runs while the workflow runs (e.g. a change between two polls).
        event: A webhook recipe's event body: the run starts as its route's listener starts it.
    """

    inputs: Callable[[Scene], dict[str, Any]] = field(default=lambda scene: {})
    polls: int = 2
    every: str = "3s"
    prepare: Callable[[Scene], None] = field(default=lambda scene: None)
    during: Callable[[Scene, WorkflowHandle[Any, Any]], Awaitable[None]] | None = None
    event: dict[str, Any] | None = None


def _mp4(path: Path, size: int = 64 * 1024) -> Path:
    """A small file that starts like an MP4 (an `ftyp` box): enough for the sandbox's upload."""
    path.write_bytes(struct.pack(">I4s4s", 16, b"ftyp", b"isom") + bytes(size))
    return path


def _price_questions(scene: Scene) -> None:
    """Four comments asking for the price under the newest #cats video."""
    cats = [v["id"] for v in scene.emulator.state()["tikapi"]["videos"] if "cats" in v["hashtags"]]
    scene.emulator.admin("tick", {"comments": 4, "video_id": cats[0], "text": "what's the PRICE of this?"})


def _spam_and_praise(scene: Scene) -> None:
    """One blocklisted and one friendly comment under our newest video."""
    mine = [v["id"] for v in scene.emulator.state()["tikapi"]["videos"] if v["author"] == ME]
    scene.emulator.admin("tick", {"comments": 1, "video_id": mine[0], "text": "FREE FOLLOWERS here"})
    scene.emulator.admin("tick", {"comments": 1, "video_id": mine[0], "text": "love it"})


async def _follower_jump(scene: Scene, handle: WorkflowHandle[Any, Any]) -> None:
    """After the first poll, one watched account gains many followers and another a few."""
    for _ in range(600):
        status = await handle.query(RecipeWorkflow.status)
        if status.iteration >= 1 and status.phase == "sleeping":
            break
        # A running workflow has nothing to wait on for "the first poll is done": ask again.
        await asyncio.sleep(0.02)
    else:
        raise RuntimeError("profile-watch never finished its first poll")
    await asyncio.to_thread(
        scene.emulator.admin, "tick", {"followers": {"lilyachty": 50_000, "tikflow_demo": 3}}
    )


def _question_to_answer(scene: Scene) -> None:
    """One question under our newest video; its ids are approve-reply's inputs (`_answer_inputs`)."""
    mine = [v["id"] for v in scene.emulator.state()["tikapi"]["videos"] if v["author"] == ME]
    made = scene.emulator.admin("tick", {"comments": 1, "video_id": mine[0], "text": "where can I buy it?"})
    ids = {"video": mine[0], "comment": made["comments"][0]["cid"]}
    (scene.scratch / "approve-reply.json").write_text(json.dumps(ids))


def _answer_inputs(scene: Scene) -> dict[str, Any]:
    return {**json.loads((scene.scratch / "approve-reply.json").read_text()), "webhook": scene.webhook}


async def _approve(scene: Scene, handle: WorkflowHandle[Any, Any]) -> None:
    """Approve the run's approval once it asks (as `tikflow approve` does: the `approval` signal)."""
    for _ in range(600):
        status = await handle.query(RecipeWorkflow.status)
        if status.approvals:
            break
        # Nothing to wait on for "the run asks" from outside it: ask again.
        await asyncio.sleep(0.02)
    else:
        raise RuntimeError("approve-reply never asked for an approval")
    [approval_id] = status.approvals
    decision = {"id": approval_id, "decision": "approve", "comment": "", "via": "cli"}
    await handle.signal(APPROVAL_SIGNAL, decision)


def _comment_to_reply_to(scene: Scene) -> None:
    """One comment under the newest #cats video; its ids are reply-to-comment's inputs."""
    cats = [v["id"] for v in scene.emulator.state()["tikapi"]["videos"] if "cats" in v["hashtags"]]
    made = scene.emulator.admin("tick", {"comments": 1, "video_id": cats[0], "text": "love it"})
    comment = made["comments"][0]
    ids = {"media_id": cats[0], "comment_id": comment["cid"], "author": comment["author"]}
    (scene.scratch / "reply-to-comment.json").write_text(json.dumps(ids))


def _reply_inputs(scene: Scene) -> dict[str, Any]:
    ids = json.loads((scene.scratch / "reply-to-comment.json").read_text())
    return {**ids, "text": "Thank you!", "mention": True}


#: Recipes that need inputs or a scene (the same ones `tests/e2e/test_shipped_recipes.py` sets).
PLANS: dict[str, Plan] = {
    "hashtag-reply": Plan(inputs=lambda scene: {"max_replies": 5}, polls=3, prepare=_price_questions),
    "my-comments-autoreply": Plan(every="6s", prepare=_spam_and_praise),  # ~45 calls a poll
    "upload-and-confirm": Plan(
        inputs=lambda scene: {
            "file": str(_mp4(scene.scratch / "clip.mp4")),
            "title": "replay #tikflow",
            "privacy": "SELF_ONLY",
            "webhook": scene.webhook,
            # No ingress in the recording: a second's wait for the event (a timer), then polling.
            "event_wait": "1s",
        }
    ),
    "upload-from-url": Plan(
        inputs=lambda scene: {
            "url": "https://cdn.example.com/v/launch.mp4",
            "webhook": scene.webhook,
            "event_wait": "1s",
        }
    ),
    # Started by the event a form POSTed (as the route's listener starts it), then polling.
    "form-to-tiktok": Plan(
        inputs=lambda scene: {"webhook": scene.webhook, "event_wait": "1s"},
        event={
            "submission_id": "sub-1",
            "video_url": "https://cdn.example.com/v/form.mp4",
            "caption": "From the form #tikflow",
        },
    ),
    "crosspost-and-track": Plan(inputs=lambda scene: {"webhook": scene.webhook}),
    "profile-watch": Plan(
        inputs=lambda scene: {"webhook": scene.webhook, "threshold": 1000},
        polls=3,
        during=_follower_jump,
    ),
    "dm-autoreply": Plan(),
    "approve-reply": Plan(inputs=_answer_inputs, prepare=_question_to_answer, during=_approve),
    # The reply policy the auto-reply recipes run as a sub-recipe, run here on its own.
    "reply-to-comment": Plan(inputs=_reply_inputs, prepare=_comment_to_reply_to),
}


@contextlib.contextmanager
def _webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on loopback: its URL and the JSON bodies it was sent."""
    calls: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            calls.append(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", calls
    finally:
        server.shutdown()
        server.server_close()


def sandbox_secrets(state: dict[str, Any] | None = None) -> set[str]:
    """Every credential the sandbox knows: its fixed demo keys and, given its state, issued ones."""
    secrets = {
        value
        for accounts in demo_credentials().values()
        for fields in accounts.values()
        for name, value in fields.items()
        if name != "location_id" and name != "user_id"
    }
    secrets.add("socialapi-internal-secret")
    if state is not None:
        tokens = state["tokens"]
        secrets.update(tokens["tikapi"]["api_keys"])
        secrets.update(tokens["tikapi"]["account_keys"])
        secrets.update(tokens["tikapi"]["expired_account_keys"])
        secrets.update(tokens["tiktok"]["access_tokens"])
        secrets.update(tokens["tiktok"]["refresh_tokens"])
        for provider in ("dumpling", "socialapi", "highlevel"):
            secrets.update(tokens[provider])
        secrets.update(p["upload_token"] for p in state["tiktok"]["publishes"] if p["upload_token"])
    return secrets


def _loaded(file: Path, plan: Plan) -> LoadedRecipe:
    """The recipe with a repo-relative source (it is in the memo) and a monitor shortened."""
    loaded = load_recipe(file)
    recipe = loaded.recipe
    if recipe.trigger is not None and recipe.trigger.poll is not None:
        recipe = recipe.model_copy(
            update={"trigger": Trigger(poll=PollTrigger(every=plan.every, max_polls=plan.polls))}
        )
    elif recipe.trigger is not None and recipe.trigger.webhook is None:
        # A cron recipe's schedule starts ordinary one-shot runs: record one such run.
        recipe = recipe.model_copy(update={"trigger": None})
    return LoadedRecipe(recipe=recipe, source=file.relative_to(ROOT).as_posix())


async def _record_one(stack: DevStack, store: CredentialStore, file: Path, scene: Scene) -> dict[str, str]:
    """Run one recipe from a fresh sandbox world; its history files and the secrets it may hold."""
    assert stack.client is not None
    name = file.stem
    plan = PLANS.get(name, Plan())

    def reset() -> None:
        scene.emulator.admin("reset")
        store_emulator_credentials(store, scene.emulator.base_url)
        plan.prepare(scene)

    await asyncio.to_thread(reset)
    if plan.event is not None:
        return await _record_webhook_run(stack, file, plan, scene)
    _, handle = await start_recipe(
        stack.client,
        _loaded(file, plan),
        plan.inputs(scene),
        task_queue=TASK_QUEUE,
        workflow_id=f"replay-recipe-{name}",
    )
    if handle is None:
        raise RuntimeError(f"{name} did not start a workflow")
    if plan.during is not None:
        await plan.during(scene, handle)
    await handle.result()
    return await chain_histories(stack.client, handle, name)


async def _record_webhook_run(stack: DevStack, file: Path, plan: Plan, scene: Scene) -> dict[str, str]:
    """A webhook recipe's run, started with its event in `RecipeRun.event` (as the listener does)."""
    from tikflow.runs import build_run
    from workflows.events import Event

    assert stack.client is not None
    assert plan.event is not None
    name = file.stem
    run = build_run(_loaded(file, plan), plan.inputs(scene))
    event = Event(
        id="msg_replay_1", source="new-video", received_at="2025-01-01T00:00:00+00:00", body=plan.event
    )
    handle = await stack.client.start_workflow(
        RecipeWorkflow.run,
        run.model_copy(update={"event": event}),
        id=f"replay-recipe-{name}",
        task_queue=TASK_QUEUE,
    )
    await handle.result()
    return await chain_histories(stack.client, handle, name)


async def record_recipes(only: set[str] | None = None) -> list[Path]:
    """Run every shipped recipe (or those named in `only`) and write its histories."""
    from tikflow.logging import configure_logging

    configure_logging(level="WARNING")
    files = sorted(DEFINITIONS.glob("*.yaml"))
    if only is not None:
        unknown = only - {f.stem for f in files}
        if unknown:
            raise ValueError(f"no shipped recipe named {sorted(unknown)} in {DEFINITIONS}")
        files = [f for f in files if f.stem in only]
    histories: dict[str, str] = {}
    secrets: set[str] = sandbox_secrets()
    with tempfile.TemporaryDirectory(prefix="tikflow-replay-") as tmp, _webhook() as (hook, _):
        home = Path(tmp)
        stack = DevStack(
            home=home / "home",
            temporal_port=free_port(),
            ui_port=free_port(),
            sandbox_port=0,
            task_queue=TASK_QUEUE,
            sandbox_config=EmulatorConfig(seed=7),
        )
        async with stack:
            assert stack.sandbox_url is not None
            store = CredentialStore(stack.home / "credentials.json")
            scene = Scene(AdminClient(stack.sandbox_url), home, hook)
            for file in files:
                histories.update(await _record_one(stack, store, file, scene))
                # Issued and rotated TikTok tokens, upload tokens: before the next reset forgets them.
                secrets |= sandbox_secrets(await asyncio.to_thread(scene.emulator.state))
    leaked = {file for file, text in histories.items() if any(s in readable(text) for s in secrets)}
    if leaked:
        raise RuntimeError(f"a credential is in the history of {sorted(leaked)}: not written")
    RECIPE_HISTORIES.mkdir(parents=True, exist_ok=True)
    for old in RECIPE_HISTORIES.glob("*.json"):
        if only is None or re.sub(r"-run\d+$", "", old.stem) in only:
            old.unlink()
    written = []
    for file, text in sorted(histories.items()):
        path = RECIPE_HISTORIES / file
        path.write_text(text)
        written.append(path)
    return written
