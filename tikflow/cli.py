"""The `tikflow` command line.

User errors (a broken recipe, a missing input, a run that does not exist, Temporal unreachable)
end with a one-line message on stderr and a non-zero exit code, never a traceback:
exit 2 for invalid recipes or arguments, 1 for everything else that went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

if TYPE_CHECKING:
    from activities.config import EngineConfig

__all__ = ["main"]

EXIT_INVALID = 2


class UserError(Exception):
    """An error the user can fix; printed as one line, exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class CommandLineParser(argparse.ArgumentParser):
    """`argparse`, able to keep a command's argument values out of its error messages.

    A parser made with `hide_values=True` (`credentials`, `reauth`: a mistyped argument there may
    be a key) names a bad argument by its position on the command line, never by its text.
    """

    #: The command line being parsed (`main` sets it), to turn a value into its position.
    argv: ClassVar[list[str]] = []

    def __init__(self, *args: Any, hide_values: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hide_values = hide_values

    def error(self, message: str) -> NoReturn:
        """Print the usage and a one-line message (values hidden if asked), exit 2."""
        if self.hide_values:
            message = without_values(message, self.argv)
        super().error(message)


def without_values(message: str, argv: Sequence[str]) -> str:
    """`message` with every quoted command-line value replaced by its position (`argument 4`)."""
    values: list[tuple[str, int]] = []
    for position, word in enumerate(argv, 1):
        if word.startswith("-"):
            word = word.partition("=")[2]  # `--provider=VALUE`: the value part
        if word:
            values.append((word, position))
    # The choices argparse lists are the parser's own words, not the user's.
    head, sep, choices = message.partition(" (choose from ")
    for word, position in sorted(values, key=lambda item: -len(item[0])):
        head = head.replace(repr(word), f"argument {position}")
    return head + sep + choices


def _recipe_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Recipe tests (`*.test.yaml`, `tikflow test`) are not recipes.
            files += sorted(
                p
                for p in path.rglob("*")
                if p.suffix in (".yaml", ".yml") and not p.name.endswith((".test.yaml", ".test.yml"))
            )
        else:
            files.append(path)
    return files


def cmd_validate(args: argparse.Namespace) -> int:
    """`tikflow validate FILE...`: check recipes; exit 0 when all are valid, 2 otherwise."""
    from tikflow.loader import RecipeError, load_recipe

    files = _recipe_files(args.files)
    if not files:
        raise UserError("no recipe files given (or the directory holds no .yaml files)", EXIT_INVALID)
    bad = 0
    for file in files:
        try:
            load_recipe(file)
        except RecipeError as exc:
            bad += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
        else:
            if not args.quiet:
                print(f"{file}: ok")
    if bad:
        print(f"{bad} of {len(files)} recipe(s) invalid", file=sys.stderr)
        return EXIT_INVALID
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """`tikflow schema`: print the recipe JSON Schema."""
    from workflows.models import recipe_json_schema

    print(json.dumps(recipe_json_schema(), indent=2, sort_keys=True))
    return 0


def _parse_inputs(pairs: Sequence[str]) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UserError(f"--input needs NAME=VALUE, got {pair!r}", EXIT_INVALID)
        given[name.strip()] = value
    return given


def engine_config() -> EngineConfig:
    """The environment's `activities.config.EngineConfig`; a value it refuses is a `UserError` (exit 2)."""
    from activities.config import ConfigError, EngineConfig

    try:
        return EngineConfig.from_env()
    except ConfigError as exc:
        raise UserError(str(exc), EXIT_INVALID) from None


#: Set once a command has made a Temporal client: its runtime's threads outlive the command.
_made_temporal_client = False


async def _client() -> Any:
    from tikflow.connect import connect

    global _made_temporal_client
    address = engine_config().temporal_address
    _made_temporal_client = True
    try:
        return await connect()
    except RuntimeError as exc:
        raise UserError(
            f"cannot reach Temporal at {address} ({' '.join(str(exc).split())[:120]}); "
            "start one with `tikflow dev` or set TEMPORAL_ADDRESS"
        ) from None


def cmd_run(args: argparse.Namespace) -> int:
    """`tikflow run FILE`: validate, then start the recipe (and optionally wait for its result)."""
    from tikflow.fleet import parse_labels
    from tikflow.loader import load_recipe, resolve_inputs
    from tikflow.runs import AlreadyRunning, start_recipe

    loaded = load_recipe(args.file)  # a RecipeError is reported by `main`
    given = _parse_inputs(args.input)
    resolve_inputs(loaded.recipe, given, loaded.source)
    try:
        labels = parse_labels(args.label)
    except ValueError as exc:
        raise UserError(str(exc), EXIT_INVALID) from None

    if args.dry_run:
        return _dry_run(loaded, given, as_json=args.json)

    trigger = loaded.recipe.trigger
    if args.wait and trigger is not None and trigger.webhook is not None:
        raise UserError(
            f"--wait cannot wait for {args.file}: its `webhook:` trigger registers a route that "
            "starts a run per event and never finishes; start it without --wait",
            EXIT_INVALID,
        )
    if args.wait and trigger is not None and trigger.schedule is not None:
        # A Schedule never finishes, and its first run may be hours away: waiting would hang.
        raise UserError(
            f"--wait cannot wait for {args.file}: its `schedule:` trigger starts a Temporal Schedule, "
            "which never finishes; start it without --wait, then `tikflow trigger ID --wait` runs it "
            "once now and waits for that run",
            EXIT_INVALID,
        )

    async def go() -> int:
        from temporalio.service import RPCError, RPCStatusCode

        client = await _client()
        try:
            run_id, handle = await start_recipe(
                client,
                loaded,
                given,
                task_queue=args.task_queue or engine_config().task_queue,
                workflow_id=args.id,
                labels=labels,
                pacer_queue=engine_config().pacer_queue,
                warn=lambda line: print(f"tikflow: warning: {line}", file=sys.stderr),
            )
        except AlreadyRunning as exc:
            raise UserError(str(exc)) from None
        except RPCError as exc:
            # What `validate` cannot know (the server's limits), refused as the user's error
            # in one line: Temporal's own message, never its stack.
            invalid = exc.status == RPCStatusCode.INVALID_ARGUMENT
            raise UserError(
                f"{loaded.source}: Temporal refused to start it: {' '.join(exc.message.split())[:300]}",
                EXIT_INVALID if invalid else 1,
            ) from None
        webhook = trigger is not None and trigger.webhook is not None
        kind = "route" if webhook else "schedule" if handle is None else "run"
        print(f"started {kind} {run_id}")
        if webhook:
            print(f"each event POSTed to /hooks/{trigger.webhook.route} on the ingress starts a run")  # type: ignore[union-attr]
        print(f"watch it: {ui_link(run_id, schedule=handle is None and not webhook)}")
        if handle is None or not args.wait:
            return 0
        from tikflow.progress import show_progress

        await show_progress(client, handle, sys.stderr)
        return await print_result(handle, run_id)

    return asyncio.run(go())


def _dry_run(loaded: Any, given: dict[str, Any], *, as_json: bool) -> int:
    """`tikflow run FILE --dry-run`: the plan of what the recipe would do; exit 1 if the run failed."""
    from tikflow.dryrun import dry_run, format_plan
    from tikflow.worker import build_services

    global _made_temporal_client
    services = build_services(engine_config())
    _made_temporal_client = True  # the in-process test server's client
    try:
        report = asyncio.run(dry_run(loaded, given, services))
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        print("\n".join(format_plan(report)))
    return 0 if report.error is None else 1


async def print_result(handle: Any, run_id: str) -> int:
    """Wait for a run and print its result as JSON; a failed run is a one-line `UserError`."""
    from temporalio.client import WorkflowFailureError

    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause)
        raise UserError(f"run {run_id} failed: {message}") from None
    print(json.dumps(result.model_dump(mode="json"), indent=2, default=str))
    return 0


def ui_link(object_id: str, *, schedule: bool = False) -> str:
    """The Temporal UI page of a run (the latest execution of a workflow id) or of a schedule.

    The paths are the UI's own routes (`/namespaces/[namespace]/workflows/[workflow]`,
    `/namespaces/[namespace]/schedules/[schedule]`); a schedule id is not a workflow id.
    """
    from urllib.parse import quote

    config = engine_config()
    base = config.ui_url
    namespace = quote(config.temporal_namespace, safe="")
    kind = "schedules" if schedule else "workflows"
    return f"{base}/namespaces/{namespace}/{kind}/{quote(object_id, safe='')}"


def cmd_status(args: argparse.Namespace) -> int:
    """`tikflow status ID`: phase, counters and what the run waits for."""
    from temporalio.service import RPCError

    from tikflow.runs import describe_schedule, get_status

    async def go() -> int:
        client = await _client()
        try:
            status = await get_status(client, args.id)
        except RPCError as exc:
            schedule = await describe_schedule(client, args.id)
            if schedule is None:
                raise UserError(f"no run {args.id!r} to ask ({exc.message})") from None
            return _print_schedule(schedule, as_json=args.json)
        links = _reauth_links(args.id, status.awaiting_reauth)
        if args.json:
            print(json.dumps({**status.model_dump(mode="json"), "reauth_links": links}, indent=2))
            return 0
        print(f"{args.id}: {status.recipe} is {status.phase}" + (" (paused)" if status.paused else ""))
        print(
            f"  polls: {status.iteration}   last poll: {status.last_poll_at or '-'}"
            f"   next: {status.next_poll_at or '-'}"
        )
        if status.waiting_for:
            print(
                f"  waiting for: {status.waiting_for}"
                + (f" until {status.backoff_until}" if status.backoff_until else "")
            )
        for account, link in links.items():
            print(f"  re-authorize {status.awaiting_reauth[account]} account {account!r}: {link}")
        if status.last_error:
            print(f"  last error: {status.last_error}")
        counters = status.counters.model_dump()
        print("  " + "  ".join(f"{k}={v}" for k, v in counters.items()))
        return 0

    return asyncio.run(go())


def _reauth_links(workflow_id: str, waiting: dict[str, str]) -> dict[str, str]:
    """Account → a fresh re-authorization link, for each account the run waits for (links set up)."""
    from activities.credentials import CredentialStore, resolve_path
    from activities.links import reauth_link_for

    if not waiting:
        return {}
    config = engine_config()
    store = CredentialStore(resolve_path(config.credentials_file)[0], seed=config.credentials_seed)
    found = {a: reauth_link_for(store, config.public_url, p, a, workflow_id) for a, p in waiting.items()}
    return {account: link for account, link in found.items() if link}


def _print_schedule(schedule: Any, *, as_json: bool) -> int:
    """`tikflow status` of a recipe's Temporal Schedule."""
    import dataclasses

    if as_json:
        print(json.dumps({"kind": "schedule", **dataclasses.asdict(schedule)}, indent=2, default=str))
        return 0
    state = "paused" if schedule.paused else "active"
    print(f"{schedule.schedule_id}: schedule of {schedule.recipe} ({', '.join(schedule.cron)}) is {state}")
    print("  next runs: " + (", ".join(t.isoformat() for t in schedule.next_runs) or "-"))
    if not schedule.runs:
        print("  recent runs: -")
    else:
        print("  recent runs:")
        for run in schedule.runs:
            print(f"    {run.started_at.isoformat(timespec='seconds')}  {run.workflow_id}  {run.status}")
    catchup = _span(schedule.catchup_window) if schedule.catchup_window else "365d (Temporal's default)"
    jitter = _span(schedule.jitter) if schedule.jitter else "none"
    print(f"  overlap: {schedule.overlap}   catch-up window: {catchup}   jitter: {jitter}")
    return 0


def _span(value: Any) -> str:
    """A timedelta as a recipe writes it: `30s`, `1h`, `90m`."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _signal_command(signal_name: str) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        from temporalio.service import RPCError

        from tikflow.runs import steer_schedule

        if args.id is None:
            if not args.label and args.recipe is None:
                raise UserError(
                    f"{signal_name} needs a run id, or --label / --recipe to match runs", EXIT_INVALID
                )
            return _signal_matching(signal_name, args)
        if args.label or args.recipe is not None:
            raise UserError(f"{signal_name}: give a run id or --label / --recipe, not both", EXIT_INVALID)

        async def go() -> int:
            client = await _client()
            handle = client.get_workflow_handle(args.id)
            try:
                await handle.signal(signal_name)
            except RPCError as exc:
                # Not a running workflow: perhaps the id of a recipe's Schedule.
                if await steer_schedule(client, args.id, signal_name):
                    done = {"pause": "paused", "resume": "resumed", "stop": "deleted"}[signal_name]
                    print(f"{signal_name}: schedule {args.id} {done}")
                    return 0
                raise UserError(f"cannot {signal_name} {args.id!r}: {exc.message}") from None
            print(f"{signal_name}: sent to {args.id}")
            return 0

        return asyncio.run(go())

    command.__doc__ = (
        f"`tikflow {signal_name} ID`: send the `{signal_name}` signal to a run "
        f"(or {signal_name} a schedule); "
        f"with `--label` / `--recipe`, to every running match."
    )
    return command


def _signal_matching(signal_name: str, args: argparse.Namespace) -> int:
    """Send `signal_name` to every running run the filters match, after asking (unless `--yes`)."""
    from tikflow.commands.list import filters_of
    from tikflow.fleet import find_runs, signal_runs

    query = filters_of(args, running=True)

    async def go() -> int:
        client = await _client()
        ids = [execution.id for execution in await find_runs(client, query)]
        if not ids:
            print(f"{signal_name}: no running run matches")
            return 0
        print(f"{signal_name}: {len(ids)} running run(s) match:")
        for workflow_id in ids:
            print(f"  {workflow_id}")
        if not args.yes:
            if not sys.stdin.isatty():
                raise UserError(f"{signal_name}: not asked on a terminal; add --yes to act on these runs")
            answer = await asyncio.to_thread(input, f"{signal_name} these {len(ids)} run(s)? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print(f"{signal_name}: nothing done")
                return 1
        outcomes = await signal_runs(client, ids, signal_name)
        failed = {i: why for i, why in outcomes.items() if why is not None}
        print(f"{signal_name}: sent to {len(ids) - len(failed)} run(s)")
        for workflow_id, why in failed.items():
            print(f"  not sent to {workflow_id}: {why}", file=sys.stderr)
        return 1 if failed else 0

    return asyncio.run(go())


def cmd_worker(args: argparse.Namespace) -> int:
    """`tikflow worker`: run a worker against the Temporal in `TEMPORAL_ADDRESS`."""
    from tikflow import worker

    return worker.main([])


def cmd_dev(args: argparse.Namespace) -> int:
    """`tikflow dev`: Temporal + UI, sandbox, ingress and a worker, until Ctrl-C or SIGTERM."""
    from tikflow.devstack import DevStack, run_until_stopped
    from tikflow.logging import configure_logging
    from tikflow.worker import tune_gc

    config = engine_config()  # this process runs the worker
    configure_logging()
    tune_gc(config)

    from activities.credentials import resolve_path

    async def go() -> int:
        stack = DevStack(
            config=config,
            home=Path(args.home),
            temporal_port=args.port,
            ui_port=args.ui_port,
            sandbox_port=args.sandbox_port,
            ingress_port=None if args.ingress_port < 0 else args.ingress_port,
        )
        try:
            async with stack:
                print(f"Temporal: {stack.address}")
                print(f"Temporal UI: {stack.ui_url}")
                if stack.sandbox_url:
                    print(f"sandbox: {stack.sandbox_url}")
                if stack.ingress_url:
                    print(f"ingress: {stack.ingress_url}  (TikTok events: {stack.ingress_url}/events/tiktok)")
                    if stack.sandbox_url:
                        print("  the sandbox's TikTok sends its signed webhook events there")
                print(f"credentials: {stack.credentials_path}")
                # What another shell in this folder finds (the stack's worker may use another).
                elsewhere, _ = resolve_path(config.credentials_file)
                if elsewhere.absolute() != stack.credentials_path:
                    print(
                        f"  (commands in other shells use {elsewhere} instead; "
                        f"run them with TIKFLOW_CREDENTIALS={stack.credentials_path})"
                    )
                print("worker: running (Ctrl-C stops everything)", flush=True)
                await asyncio.Event().wait()
        except RuntimeError as exc:
            raise UserError(str(exc)) from None
        return 0

    # Ctrl-C, SIGTERM and SIGHUP all end here, after the stack stopped what it started.
    code = run_until_stopped(go)
    if code is None:
        print("stopped")
        return 0
    return code


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `tikflow` command."""
    parser = CommandLineParser(prog="tikflow", description="Durable, declarative TikTok automation.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check recipe files")
    p.add_argument("files", nargs="+", metavar="FILE", help="recipe files or directories")
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the recipe JSON Schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("run", help="start a recipe")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--input", "-i", action="append", default=[], metavar="NAME=VALUE", help="set an input")
    p.add_argument("--id", help="workflow id (default: recipe-<name>-<hash of inputs>)")
    p.add_argument("--wait", action="store_true", help="wait for the run to finish and print its result")
    p.add_argument("--task-queue", help="task queue (default: TIKFLOW_TASK_QUEUE or tikflow)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="run once here with every side effect held back; print what it would have done",
    )
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON")
    p.add_argument(
        "--label", action="append", default=[], metavar="KEY=VALUE", help="label the run (over the recipe's)"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="show a run's phase and counters")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    for name, text in (
        ("pause", "pause a run"),
        ("resume", "resume a paused run"),
        ("stop", "stop a run gracefully"),
    ):
        from tikflow.commands.list import add_filters

        p = sub.add_parser(name, help=text)
        p.add_argument("id", nargs="?", help="the run (or schedule); or match runs with --label / --recipe")
        add_filters(p)
        p.add_argument("--yes", "-y", action="store_true", help="act on every match without asking")
        p.set_defaults(func=_signal_command(name))

    p = sub.add_parser("worker", help="run a worker (TEMPORAL_ADDRESS, default localhost:7233)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("dev", help="run Temporal, its UI, the sandbox and a worker locally")
    p.add_argument("--home", default=".tikflow", help="state directory (default .tikflow)")
    p.add_argument("--port", type=int, default=7233, help="Temporal's gRPC port (default 7233)")
    p.add_argument("--ui-port", type=int, default=8233, help="the Temporal UI's port (default 8233)")
    p.add_argument("--sandbox-port", type=int, default=8400)
    p.add_argument(
        "--ingress-port", type=int, default=8500, help="the webhook ingress's port (default 8500; -1: none)"
    )
    p.set_defaults(func=cmd_dev)

    for module in (
        "credentials",
        "actions",
        "sandbox",
        "demo",
        "reauth",
        "connect",
        "graph",
        "trigger",
        "backfill",
        "approve",
        "memory",
        "ingress",
        "list",
        "test",
    ):
        _add_optional_command(sub, module)
    return parser


def _add_optional_command(sub: Any, module: str) -> None:
    import importlib

    try:
        command = importlib.import_module(f"tikflow.commands.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"tikflow.commands.{module}":
            raise
        return
    command.add_parser(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tikflow` console script."""
    try:
        try:
            code = _run_command(argv)
        finally:
            # Flushed here, not at exit (also after --help), so that a closed pipe is caught below.
            sys.stdout.flush()
    except BrokenPipeError:
        code = _stdout_closed()
    if argv is None and _made_temporal_client:
        _exit_without_finalizing(code)
    return code


def _run_command(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    CommandLineParser.argv = words
    args, extra = parser.parse_known_args(words)
    if extra:
        # argparse fills a `nargs="*"` positional before the options that follow it, so the
        # FIELD=VALUE pairs of `reauth ID --account A --provider P FIELD=VALUE` arrive here.
        if hasattr(args, "pairs") and all("=" in e and not e.startswith("-") for e in extra):
            args.pairs = [*args.pairs, *extra]
        elif getattr(args, "hide_values", False):
            # Possibly a key typed in the wrong place: say where, not what.
            where = ", ".join(
                e if e.startswith("-") and "=" not in e else f"argument {words.index(e) + 1}" for e in extra
            )
            parser.error(f"unrecognized arguments: {where}")
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        code: int = args.func(args)
    except UserError as exc:
        print(f"tikflow: {exc}", file=sys.stderr)
        code = exc.code
    except Exception as exc:
        # A recipe that does not load: its problems, one FILE:LINE:COL line each. Imported here,
        # not at the top: the loader imports the models, which commands like `status` never need.
        from tikflow.loader import RecipeError

        if not isinstance(exc, RecipeError):
            raise
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        code = EXIT_INVALID
    except KeyboardInterrupt:
        code = 130
    return code


def _stdout_closed() -> int:
    """Whoever read our output went away (`tikflow actions | head -1`): stop quietly.

    Exit status 141 is what a shell reports for a command stopped by SIGPIPE, as `cat` or `yes`
    would be; SIGPIPE itself stays ignored, since a worker must survive a peer closing a socket.
    """
    import signal

    # Python flushes stdout once more at exit; pointed at /dev/null, that flush cannot fail.
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        return 128 + signal.SIGPIPE
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
    return 128 + signal.SIGPIPE


def _exit_without_finalizing(code: int) -> None:
    """End the program now: Temporal's Rust runtime threads can abort interpreter finalization.

    Without this, a command that made a client sometimes dies with SIGABRT ("Fatal Python error:
    PyGILState_Release") after printing its result (temporalio/sdk-python#300).
    """
    import logging

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    # `python -m tikflow.cli` runs this file as `__main__`, while commands import `tikflow.cli`: a
    # second copy with its own globals. Run that copy, so both agree on `_made_temporal_client`.
    from tikflow.cli import main as _main

    raise SystemExit(_main())
