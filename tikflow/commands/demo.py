"""`tikflow demo` (what `make demo` runs): the shipped recipes, end to end, on this machine.

It starts the embedded stack (a real Temporal dev server and UI, the provider sandbox, a worker),
runs `upload-and-confirm` to completion (the sandbox's TikTok sends its signed
`post.publish.complete` to the in-process ingress, which hands it to Temporal) and `hashtag-reply`
for a few polls in sandbox time, prints what each did (read back from the sandbox's own state,
not from the engine's claims) and the Temporal UI address, then stops everything it started and
exits 0. Its last lines say where
the runs' histories stay (the dev server's SQLite file) and the command that shows them in the UI
again; `--keep` keeps the UI up instead, until Ctrl-C. SIGTERM stops it as Ctrl-C does.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from activities.config import EngineConfig

__all__ = ["add_parser", "cmd_demo", "sample_mp4"]

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"


def add_parser(subparsers: Any) -> None:
    """Add `demo` to the `tikflow` command line."""
    p = subparsers.add_parser("demo", help="run the shipped recipes end to end against the sandbox")
    p.add_argument("--home", default=".tikflow/demo", help="state directory (default .tikflow/demo)")
    p.add_argument("--polls", type=int, default=3, help="hashtag-reply polls to run (default 3)")
    p.add_argument("--keep", action="store_true", help="keep the stack running after the demo (Ctrl-C stops)")
    p.set_defaults(func=cmd_demo)


def sample_mp4(path: Path, size: int = 256 * 1024) -> Path:
    """Write a small file that starts like an MP4 (an `ftyp` box), enough for an upload."""
    box = struct.pack(">I4s4sI8s", 24, b"ftyp", b"isom", 512, b"isomiso2")
    path.write_bytes(box + bytes(size - len(box)))
    return path


def _definitions() -> Path:
    local = Path("definitions")
    return local if (local / "hashtag-reply.yaml").exists() else DEFINITIONS


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when both recipes did what they should."""
    from tikflow.cli import engine_config
    from tikflow.devstack import run_until_stopped
    from tikflow.logging import configure_logging

    config = engine_config()  # this process runs the worker
    configure_logging(level="WARNING")
    outcome: list[int] = []
    code = run_until_stopped(lambda: _demo(Path(args.home), args.polls, args.keep, outcome, config))
    if code is None:  # Ctrl-C or SIGTERM: the stack has stopped what it started
        print("stopped everything the demo started")
        # With --keep, the demo was done and only its UI was being kept up.
        return outcome[0] if outcome else 130
    return code


async def _demo(home: Path, polls: int, keep: bool, outcome: list[int], config: EngineConfig) -> int:
    from tikflow.cli import UserError
    from tikflow.devstack import DevStack, free_port, port_in_use
    from tikflow.emulator import EmulatorConfig
    from tikflow.loader import load_recipe
    from tikflow.runs import start_recipe
    from workflows.models import PollTrigger, Trigger

    await asyncio.to_thread(home.mkdir, parents=True, exist_ok=True)
    stack = DevStack(
        config=config,
        home=home,
        temporal_port=7233 if not port_in_use(7233) else free_port(),
        ui_port=8233 if not port_in_use(8233) else free_port(),
        sandbox_port=8400 if not port_in_use(8400) else free_port(),
        ingress_port=8500 if not port_in_use(8500) else 0,
        task_queue="tikflow-demo",
        # New comments keep arriving (one a second), so every poll has fresh work.
        sandbox_config=EmulatorConfig(comment_interval_s=1.0),
    )
    print("starting: Temporal dev server + UI, provider sandbox, worker …", flush=True)
    try:
        async with stack:
            assert stack.client is not None
            assert stack.sandbox_url is not None
            print(f"Temporal UI: {stack.ui_url}")
            print(f"sandbox:     {stack.sandbox_url}")
            print(f"ingress:     {stack.ingress_url} (the sandbox's TikTok webhook events go there)\n")
            definitions = _definitions()

            # 1. upload-and-confirm, to completion.
            video = sample_mp4(home / "sample.mp4")
            upload = load_recipe(definitions / "upload-and-confirm.yaml")
            run_id, handle = await start_recipe(
                stack.client,
                upload,
                # The sandbox sends TikTok's events to the stack's ingress: the run waits for the
                # publish event, and polls the status only if none came within 30 s.
                {
                    "file": str(video.resolve()),
                    "title": "tikflow demo upload #tikflowdemo",
                    "event_wait": "30s",
                },
                task_queue=stack.task_queue,
                workflow_id=f"demo-upload-{video.stat().st_mtime_ns}",
            )
            assert handle is not None
            result = await handle.result()
            status = result.outputs.get("status", {})
            print("upload-and-confirm")
            print(f"  run:             {run_id}")
            print(f"  publish_id:      {result.outputs.get('publish', {}).get('publish_id')}")
            print(f"  status reached:  {status.get('status')}  post ids: {status.get('post_ids')}")
            print(f"  confirmed by:    {status.get('confirmed_by')}")
            publish_id = str(result.outputs.get("publish", {}).get("publish_id"))
            events = await _events_accepted(stack.sandbox_url, publish_id)
            for event, attempts in events:
                print(f"  event:           {event} → ingress answered {attempts}")
            print()

            # 2. hashtag-reply, a few polls in sandbox time (seconds instead of minutes).
            reply = load_recipe(definitions / "hashtag-reply.yaml")
            fast = reply.recipe.model_copy(
                update={"trigger": Trigger(poll=PollTrigger(every="2s", max_polls=polls))}
            )
            reply = type(reply)(recipe=fast, source=reply.source)
            before = await _sandbox_state(stack.sandbox_url)
            run_id, handle = await start_recipe(
                stack.client,
                reply,
                {"hashtag": "tikflowdemo", "reply_every": "1s"},  # the sandbox: 1 s between replies, not 8
                task_queue=stack.task_queue,
                workflow_id=f"demo-hashtag-reply-{video.stat().st_mtime_ns}",
            )
            assert handle is not None
            result = await handle.result()
            after = await _sandbox_state(stack.sandbox_url)
            ours = _new_replies(before, after)
            counters = result.counters
            print("hashtag-reply")
            print(f"  run:              {run_id}")
            print(f"  polls:            {result.polls}")
            videos = len(result.outputs.get("videos", {}).get("items", []))
            print(f"  videos seen:      {videos} under #tikflowdemo (each poll)")
            print(f"  comments scanned: {counters.items_seen} over all polls")
            print(f"  matched, replied: {counters.effects} (sandbox shows {len(ours)} new replies)")
            for item in ours[:5]:
                print(f"    ↳ to {item.get('reply_to')}: {item.get('text')!r}")
            ok = (
                status.get("status") == "PUBLISH_COMPLETE"
                and any(event == "post.publish.complete" for event, _ in events)
                and result.polls == polls
                and len(ours) == counters.effects
            )
            outcome.append(0 if ok else 1)
            if keep:
                print(
                    f"\nSee both runs in the Temporal UI: {stack.ui_url} (Ctrl-C stops everything)",
                    flush=True,
                )
                await asyncio.Event().wait()
    except (RuntimeError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    print("\nstopped everything the demo started (the Temporal UI too)")
    # The UI is gone; the histories are not: they are in the dev server's SQLite file.
    print(f"Both runs' histories are kept in {home / 'temporal.db'}; to see them in the Temporal UI,")
    print(f"run `tikflow dev --home {home}` and open http://localhost:8233 (or `tikflow demo --keep`).")
    return 0 if ok else 1


async def _sandbox_state(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base_url}/_admin/state")
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state


async def _events_accepted(base_url: str, publish_id: str) -> list[tuple[str, list[Any]]]:
    """The sandbox's webhook events about `publish_id` the ingress took (2xx), waited for a while.

    The sandbox sends them as soon as the upload is in; the ingress answers 200 only once Temporal
    holds the event (in the publish's mailbox).
    """
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            response = await client.get(f"{base_url}/_admin/webhooks")
            response.raise_for_status()
            ours = [d for d in response.json()["deliveries"] if publish_id in d["body"]]
            if any(d["event"] == "post.publish.complete" and d["delivered"] for d in ours):
                return [(d["event"], d["attempts"]) for d in ours if d["delivered"]]
            # The demo waits on another process's HTTP answer; there is nothing to await but time.
            await asyncio.sleep(0.1)
    return []


def _new_replies(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    seen = {c["cid"] for c in before.get("tikapi", {}).get("comments", [])}
    return [
        c
        for c in after.get("tikapi", {}).get("comments", [])
        if c["cid"] not in seen and c.get("reply_to") and not c.get("deleted")
    ]
