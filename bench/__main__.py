"""`python -m bench [--quick] [NAME...]`: run the benchmarks, write their JSON, print the table.

Each benchmark runs alone in its own process (`python -m bench.NAME [--quick]`, one after the
other, so none measures another's load) and prints its result as the JSON last line of its output.
The results go to `bench/results/latest.json` and a timestamped copy next to it; the table shows,
per figure, the baseline measured in the same run, their ratio, the goal and whether it is met.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import machine

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = ("step_overhead", "fanout", "monitors", "ratelimit", "validate", "ingress")
#: A benchmark that runs longer than this has hung (the full monitors run takes about 11 minutes).
TIMEOUT_S = {"monitors": 1500}
DEFAULT_TIMEOUT_S = 900


def run_one(name: str, quick: bool) -> dict[str, Any]:
    """Run `bench.<name>` in a fresh interpreter; its result, or what went wrong."""
    args = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if quick else [])]
    started = time.monotonic()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S.get(name, DEFAULT_TIMEOUT_S))
    except subprocess.TimeoutExpired:
        _stop(process)
        return {"benchmark": name, "error": "timed out"}
    except BaseException:
        # Stopped (Ctrl-C, SIGTERM): the benchmark stops what it started before this exits.
        _stop(process)
        raise
    seconds = round(time.monotonic() - started, 1)
    lines = stdout.strip().splitlines()
    try:
        result = dict(json.loads(lines[-1]))
    except (IndexError, ValueError):
        tail = (stderr or stdout).strip().splitlines()[-5:]
        error = f"exit {process.returncode}: " + " | ".join(tail)
        return {"benchmark": name, "error": error, "seconds": seconds}
    result["seconds"] = seconds
    return result


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM a benchmark and wait for it (it stops its dev server and workers); SIGKILL after 60 s."""
    process.terminate()
    try:
        process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """Table rows (benchmark, figure, baseline, ratio, goal, met?) for one benchmark's result."""
    name = result["benchmark"]
    if "error" in result:
        return [(name, "failed: " + str(result["error"])[:80], "", "", "", "**no**")]
    r = result
    if name == "step_overhead":
        return [
            (
                "step overhead (200 sequential calls)",
                f"recipe {r['recipe_ms_per_step']} ms/step",
                f"hand-written workflow {r['baseline_workflow_ms_per_step']} ms/step "
                f"(plain httpx {r['floor_httpx_ms_per_step']} ms/step)",
                f"{r['ratio_recipe_vs_workflow']:.3f}x",
                "<= 1.10x",
                _yes(r["goal_met"]),
            )
        ]
    if name == "fanout":
        return [
            (
                f"fan-out ({r['comments']} replies, concurrency {r['concurrency']})",
                f"recipe {r['recipe_replies_per_s']} replies/s",
                f"asyncio.gather workflow {r['baseline_replies_per_s']} replies/s",
                f"{r['ratio_baseline_vs_recipe']:.3f}x",
                "<= 1.15x",
                _yes(r["goal_met"]),
            )
        ]
    if name == "monitors":
        scale = r["scale"]
        bounded = r["history_events_per_run_max"] <= r["history_events_per_run_bound"]
        return [
            (
                f"monitors, {scale}: poll lag",
                f"p50 {r['lag_p50_s']} s, p99 {r['lag_p99_s']} s",
                "on schedule (0 s)",
                "",
                "p99 < 5 s",
                _yes(r["lag_p99_s"] < 5.0),
            ),
            (
                f"monitors, {scale}: throughput",
                f"{r['polls_per_s']} polls/s",
                f"{r['polls_per_s_scheduled']} polls/s scheduled",
                f"{r['polls_share_of_schedule']:.3f}",
                "",
                "",
            ),
            (
                f"monitors, {scale}: CPU",
                ", ".join(f"{name} {cores} cores" for name, cores in r["cpu_cores"].items())
                + f"; worker GC {r['worker_gc_s']} s (longest pause {r['worker_gc_max_pause_ms']} ms)",
                f"{r['cpu_cores_available']} cores on the machine",
                f"{r['cpu_cores_total'] / r['cpu_cores_available']:.3f}",
                "",
                "",
            ),
            (
                f"monitors, {scale}: worker memory",
                f"peak RSS {r['rss_peak_mib']} MiB",
                f"idle worker {r['rss_idle_mib']} MiB",
                "",
                "< 1024 MiB",
                _yes(r["rss_peak_mib"] < 1024),
            ),
            (
                f"monitors, {scale}: history",
                f"{r['history_events_per_run_max']} events/run max, {r['history_events_per_poll']}/poll, "
                f"{r.get('history_events_per_idle_poll')}/idle poll",
                f"continue-as-new after {r['polls_per_run_cap']} polls: "
                f"<= {r['history_events_per_run_bound']} events/run",
                "",
                "bounded",
                _yes(bounded),
            ),
            *_monitor_baselines(r),
        ]
    if name == "n8n":
        return [
            (
                f"n8n, {r['scale']}: the monitors' job",
                f"{r['polls_per_s']} polls/s, lag p50 {r['lag_p50_s']} s, p99 {r['lag_p99_s']} s, "
                f"peak RSS {r['rss_peak_mib']} MiB, {r['cpu_cores_n8n']} cores",
                f"{r['polls_per_s_scheduled']} polls/s scheduled",
                f"{r['polls_share_of_schedule']:.3f}",
                "",
                "",
            )
        ]
    if name == "ratelimit":
        return [
            (
                f"rate limit ({r['recipes']} recipes, one key)",
                f"{r['achieved_rps']} req/s, {r['answered_429']} x 429 ({r['share_429']:.2%})",
                f"quota {r['quota_rps']} req/s",
                f"{r['quota_share']:.3f}",
                ">= 0.90, 429s < 1%",
                _yes(r["goal_met"]),
            )
        ]
    if name == "validate":
        return [
            (
                f"validation ({r['recipes']} recipes)",
                f"`tikflow validate` {r['cli_total_s']} s (in process {r['load_and_validate_s']} s)",
                f"YAML parse only {r['yaml_parse_only_s']} s",
                f"{r['ratio_vs_yaml_parse']}x",
                "< 2 s",
                _yes(r["goal_met"]),
            )
        ]
    if name == "ingress":
        return [
            (
                f"ingress ({r['events']} signed TikTok events offered at {r['offered_per_s']:g}/s)",
                f"{r['ingress_per_s']} accepted/s, p50 {r['ingress_p50_ms']} ms, "
                f"p99 {r['ingress_p99_ms']} ms",
                f"bare signal-with-start loop {r['bare_per_s']}/s, p50 {r['bare_p50_ms']} ms, "
                f"p99 {r['bare_p99_ms']} ms",
                f"{r['share_of_bare']:.3f}",
                ">= 0.90, p99 < 250 ms",
                _yes(r["goal_met"]),
            )
        ]
    return [(name, json.dumps(r)[:80], "", "", "", "")]


#: What each monitors baseline is, as the table names it.
MONITOR_BASELINES = {
    "tikflow-activities": "tikflow, `reads: activity` (every call an activity)",
    "temporal-activities": "hand-written Temporal monitor, activities",
    "temporal-local": "hand-written Temporal monitor, local activities",
}


def _monitor_baselines(r: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """One row per baseline of the monitors benchmark: its figures beside tikflow's."""
    out = []
    for name, b in r.get("baselines", {}).items():
        label = MONITOR_BASELINES.get(name, name)
        if "error" in b:
            out.append(
                (f"monitors, {r['scale']}: {label}", "failed: " + str(b["error"])[:80], "", "", "", "")
            )
            continue
        ratio = r["polls_per_s"] / b["polls_per_s"] if b.get("polls_per_s") else 0.0
        if name == "temporal-local" and b.get("cpu_cores") and b.get("polls_per_s"):
            # Issue 20's goal for a read `call` step: what a poll costs (CPU of the server and the
            # worker per poll, the sandbox left out) next to the hand-written local-activity monitor.
            ours, theirs = _cpu_ms_per_poll(r), _cpu_ms_per_poll(b)
            out.append(
                (
                    f"monitors, {r['scale']}: CPU per poll",
                    f"tikflow {ours:.2f} ms (server and worker)",
                    f"{label} {theirs:.2f} ms",
                    f"{ours / theirs:.3f}x",
                    "<= 1.10x",
                    _yes(ours / theirs <= 1.10),
                )
            )
        out.append(
            (
                f"monitors, {r['scale']}: {label}",
                f"{b['polls_per_s']} polls/s, lag p50 {b['lag_p50_s']} s, p99 {b['lag_p99_s']} s, "
                f"peak RSS {b['rss_peak_mib']} MiB, {b.get('history_events_per_idle_poll')} events/idle poll",
                f"tikflow {r['polls_per_s']} polls/s, p99 {r['lag_p99_s']} s, "
                f"{r.get('history_events_per_idle_poll')} events/idle poll",
                f"{ratio:.3f}",
                "",
                "",
            )
        )
    return out


def _cpu_ms_per_poll(r: dict[str, Any]) -> float:
    """CPU milliseconds the dev server and the worker(s) spent per sustained poll."""
    cores = sum(v for k, v in r["cpu_cores"].items() if k != "sandbox")
    return 1000 * cores / r["polls_per_s"] if r["polls_per_s"] else float("inf")


def table(results: list[dict[str, Any]]) -> str:
    """A Markdown table of every figure."""
    header = ("benchmark", "figure", "baseline (same run)", "ratio", "goal", "met?")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        for row in rows(result):
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run the named benchmarks (all by default), then write and print the results."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="the short runs (about a minute each)")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    names: list[str] = args.names or list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")
        return 2
    started = datetime.now(UTC)
    results: list[dict[str, Any]] = []
    # SIGTERM and SIGHUP stop the run as Ctrl-C does: the running benchmark is stopped with it.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        for name in names:
            print(f"running {name}{' --quick' if quick else ''} ...", flush=True)
            result = run_one(name, quick)
            print(f"  {name}: {result.get('seconds', '?')} s", flush=True)
            results.append(result)
    except KeyboardInterrupt:
        print("stopped: no results written", flush=True)
        return 130
    report = {
        "started_at": started.isoformat(timespec="seconds"),
        "quick": quick,
        "total_s": round((datetime.now(UTC) - started).total_seconds(), 1),
        "machine": machine(),
        "results": results,
        "table": table(results),
    }
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(report, indent=2, default=str) + "\n"
    (RESULTS / f"{started:%Y%m%dT%H%M%SZ}{'-quick' if quick else ''}.json").write_text(text)
    (RESULTS / "latest.json").write_text(text)
    m = report["machine"]
    print()
    print(table(results))
    print()
    print(
        f"{'quick' if quick else 'full'} run, {report['total_s']} s; machine: {m['cores']} cores "
        f"({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}, temporalio {m['temporalio']}"
    )
    print(f"results: {RESULTS / 'latest.json'}")
    failed = [r["benchmark"] for r in results if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
