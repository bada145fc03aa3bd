"""Monitors at scale: 1,000 `hashtag-reply` monitors polling every 30 s on one worker for 10 minutes.

The recipe is the shipped `definitions/hashtag-reply.yaml` with `every: 30s`, looking at one video
per poll and with keywords no comment contains (so every poll lists the hashtag, lists the video's
comments and evaluates the reply condition on each, but 1,000 monitors do not all answer the same
comments). Monitor starts are spread evenly over one interval, as monitors started over time are.

Figures, from the run histories (server timestamps):
- polls per second sustained, over the window after every monitor has started;
- lag of each poll behind its schedule: when its first provider call started, against when the
  poll was due (the previous poll's start plus 30 s, which is how a monitor schedules itself);
  p50 and p99 over every poll but each monitor's first;
- worker peak RSS (the worker runs in this process; measured before the histories are read);
  with `BENCH_WORKERS=N`, N worker processes poll the queue (this one and N - 1 of
  `bench.worker_process`), and CPU and RSS are given for all of them;
- where the CPU goes once all monitors run: cores used by the dev server, the worker and the
  sandbox, and the worker's time in Python's garbage collector (pauses of its event loop);
- history events per run, and per poll: a monitor continues-as-new at the latest after
  `POLLS_PER_RUN` polls, so a run's history is bounded by that many polls' events.

The baseline is the schedule itself: a poll that starts on time has lag 0, and N monitors every
30 s are N/30 polls per second. Beside tikflow, measured the same way in the same run (`VARIANTS`,
each in its own process with its own dev server): tikflow with `reads: activity`, and a
hand-written Temporal monitor (`bench.baseline.MonitorBaseline`) with regular and with local
activities. `history_events_per_idle_poll` counts one poll's events once a run is past its
first workflow task (goal: <= 7).

Goals (issue 6): p99 lag under 5 s, peak RSS under 1 GiB, history per run bounded.
`--quick`: 200 monitors for 2 minutes (the output says so).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench.common import (
    ROOT,
    GcClock,
    cores_used,
    cpu_seconds,
    current_rss_mib,
    engine,
    machine,
    peak_rss_mib,
    percentile,
    process_peak_rss_mib,
    run_child,
    run_main,
)

#: The poll interval; `BENCH_EVERY_S=60` measures the issue's second scale (2,000 monitors x 60 s).
EVERY_S = int(os.environ.get("BENCH_EVERY_S", "30"))
GOAL_P99_S = 5.0
GOAL_RSS_MIB = 1024
POLL_ACTION = "tikapi.hashtag_posts"


#: The shipped recipe; its sub-recipe (`run: ./reply-to-comment.yaml`) resolves beside it.
RECIPE_FILE = ROOT / "definitions" / "hashtag-reply.yaml"


def recipe_text() -> str:
    source = RECIPE_FILE.read_text()
    assert "poll: {every: 5m}" in source
    return source.replace("poll: {every: 5m}", f"poll: {{every: {EVERY_S}s}}")


INPUTS = {"videos_per_poll": 1, "keywords": ["(no comment says this)"]}


def _ts(event: Any) -> float:
    return float(event.event_time.ToDatetime().timestamp())


def polls_of(history: Any, retries: Counter[str] | None = None) -> list[tuple[float, float]]:
    """(due-setting time, first call started) per poll: the WFT start in which the poll began
    (`workflow.now()` there is the poll's start) and when its `hashtag_posts` call started.

    A call that needed more than one attempt is started (in history) when its last attempt began,
    so its retry backoff counts as lag; `retries` counts such calls by their last failure.
    """
    wft_started = 0.0
    scheduled: dict[int, float] = {}
    polls: list[tuple[float, float]] = []
    for event in history.events:
        kind = event.WhichOneof("attributes")
        if kind == "workflow_task_started_event_attributes":
            wft_started = _ts(event)
        elif kind == "activity_task_scheduled_event_attributes":
            if event.activity_task_scheduled_event_attributes.activity_type.name == POLL_ACTION:
                scheduled[event.event_id] = wft_started
        elif kind == "marker_recorded_event_attributes":
            # A local activity: its marker says which, and when it was scheduled (it ran then,
            # inside the workflow task that started it).
            marker = local_activity_marker(event)
            if marker is not None and marker["activity_type"] == POLL_ACTION:
                at = marker["original_schedule_time"]
                polls.append((wft_started, at["seconds"] + at.get("nanos", 0) / 1e9))
        elif kind == "activity_task_started_event_attributes":
            attributes = event.activity_task_started_event_attributes
            began = scheduled.pop(attributes.scheduled_event_id, None)
            if began is not None and retries is not None and attributes.attempt > 1:
                retries[attributes.last_failure.message[:120] or "(no message)"] += 1
            if began is not None:
                polls.append((began, _ts(event)))
    return sorted(polls)


def local_activity_marker(event: Any) -> dict[str, Any] | None:
    """The data of a local activity's marker (`activity_type`, `original_schedule_time`, ...)."""
    attributes = event.marker_recorded_event_attributes
    if attributes.marker_name != "core_local_activity" or "data" not in attributes.details:
        return None
    data: dict[str, Any] = json.loads(attributes.details["data"].payloads[0].data)
    return data


def task_times(history: Any, by_worker: Counter[str] | None = None) -> tuple[list[float], list[float]]:
    """Per workflow task: (scheduled -> started, started -> completed) in seconds, server timestamps.

    The first is the wait for a worker to take the task (the sticky queue's backlog), the second
    the worker's time on it, its local activities included. `by_worker` counts the tasks each
    worker (its identity, `pid@host`) took.
    """
    scheduled = started = 0.0
    waits: list[float] = []
    runs: list[float] = []
    for event in history.events:
        kind = event.WhichOneof("attributes")
        if kind == "workflow_task_scheduled_event_attributes":
            scheduled = _ts(event)
        elif kind == "workflow_task_started_event_attributes":
            started = _ts(event)
            waits.append(started - scheduled)
            if by_worker is not None:
                by_worker[event.workflow_task_started_event_attributes.identity] += 1
        elif kind == "workflow_task_completed_event_attributes":
            runs.append(_ts(event) - started)
    return waits, runs


def idle_poll_events(history: Any) -> list[int]:
    """Events from one poll's timer to the next (fired, the poll's work, started), per poll: what
    a poll costs once the run's first workflow task (patch markers, search attributes) is past."""
    timers = [
        i
        for i, event in enumerate(history.events)
        if event.WhichOneof("attributes") == "timer_started_event_attributes"
    ]
    return [b - a for a, b in itertools.pairwise(timers)]


def timeline(history: Any, due: float, started: float) -> list[str]:
    """The events of a run from a poll's due time to its call's start, as `+seconds kind`: where
    the worst lag went (a late timer, a workflow task waiting for a worker, a retried call)."""
    out = []
    for event in history.events:
        at = _ts(event)
        if due - 1 <= at <= started + 0.001:
            kind = event.WhichOneof("attributes").removesuffix("_event_attributes")
            out.append(f"{at - due:+.3f} {kind}")
    return out[:40]


#: What `python -m bench.monitors` measures, each in a fresh process of its own (peak RSS and
#: CPU are per process): tikflow as shipped (reads as local activities), tikflow with
#: `reads: activity` (every call an activity, as before issue 20), and the hand-written Temporal
#: monitor (`bench.baseline.MonitorBaseline`) with regular and with local activities.
VARIANTS = ("tikflow", "tikflow-activities", "temporal-activities", "temporal-local")


async def main(quick: bool = False) -> dict[str, Any]:
    """Every variant (or those in `BENCH_VARIANTS`, comma-separated), tikflow's figures on top."""
    variant = os.environ.get("BENCH_VARIANT")
    if variant:
        return await measure(variant, quick)
    names = [v for v in os.environ.get("BENCH_VARIANTS", ",".join(VARIANTS)).split(",") if v]
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        _, stdout, stderr = await run_child(
            [sys.executable, "-m", "bench.monitors", *(["--quick"] if quick else [])],
            env={**os.environ, "BENCH_VARIANT": name},
        )
        try:
            results[name] = json.loads(stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            results[name] = {"variant": name, "error": (stderr or stdout).strip()[-300:]}
    main_name = names[0]
    return {
        **results[main_name],
        "baselines": {name: _summary(r) for name, r in results.items() if name != main_name},
    }


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "variant",
        "error",
        "polls_per_s",
        "polls_share_of_schedule",
        "worker_processes",
        "lag_p50_s",
        "lag_p99_s",
        "lag_max_s",
        "rss_peak_mib",
        "rss_idle_mib",
        "cpu_cores",
        "history_events_per_poll",
        "history_events_per_idle_poll",
    )
    return {k: result[k] for k in keys if k in result}


async def measure(variant: str, quick: bool) -> dict[str, Any]:
    """One variant's figures: N monitors polling every `EVERY_S` seconds for the run's duration."""
    from temporalio.client import WorkflowHandle

    from bench.baseline import MonitorBaseline
    from tikflow.loader import load_recipe_text
    from tikflow.runs import start_recipe
    from workflows.recipe import POLLS_PER_RUN

    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    monitors, duration_s = (200, 120) if quick else (1000, 600)
    # Other scales: BENCH_MONITORS=2000 BENCH_EVERY_S=60 BENCH_DURATION_S=600 python -m bench.monitors
    monitors = int(os.environ.get("BENCH_MONITORS", monitors))
    duration_s = int(os.environ.get("BENCH_DURATION_S", duration_s))
    text = recipe_text()
    if variant == "tikflow-activities":
        text = text.replace(f"poll: {{every: {EVERY_S}s}}", f"poll: {{every: {EVERY_S}s, reads: activity}}")
    loaded = load_recipe_text(text, str(RECIPE_FILE))
    # BENCH_WORKERS=2: a second worker process beside this one (bench.worker_process), as a second
    # `tikflow worker` would run; CPU and peak RSS below count every worker process.
    worker_processes = int(os.environ.get("BENCH_WORKERS", "1"))
    async with engine(extra_workflows=[MonitorBaseline], worker_processes=worker_processes) as eng:
        rss_idle = current_rss_mib()
        handles: list[WorkflowHandle[Any, Any]] = []
        t0 = time.monotonic()
        wall0 = time.time()
        for i in range(monitors):
            # Spread over one interval: monitor i starts at i/N of it.
            delay = t0 + i * EVERY_S / monitors - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            workflow_id = f"mon-{i:04d}-{uuid.uuid4().hex[:6]}"
            if variant.startswith("tikflow"):
                _, handle = await start_recipe(
                    eng.client,
                    loaded,
                    {**INPUTS, "hashtag": "cats"},
                    task_queue=eng.task_queue,
                    workflow_id=workflow_id,
                )
                assert handle is not None
            else:
                handle = await eng.client.start_workflow(
                    "BenchMonitor",
                    args=["cats", INPUTS["keywords"], EVERY_S, POLLS_PER_RUN, variant == "temporal-local"],
                    id=workflow_id,
                    task_queue=eng.task_queue,
                )
            handles.append(handle)
        all_started = time.time()
        # Where the CPU goes once every monitor runs: server, worker (this process), sandbox.
        await asyncio.sleep(EVERY_S)
        cpu_from, cpu_wall_from = cpu_seconds(eng.worker_pids), time.monotonic()
        with GcClock() as gc_clock:
            await asyncio.sleep(max(0.0, t0 + duration_s - time.monotonic()))
        cores = cores_used(cpu_from, cpu_seconds(eng.worker_pids), time.monotonic() - cpu_wall_from)
        wall_end = time.time()
        rss_peak = peak_rss_mib()
        rss_peaks = [rss_peak, *(process_peak_rss_mib(pid) for pid in eng.worker_pids)]
        rss_end = current_rss_mib()
        for handle in handles:
            await handle.terminate("benchmark over")

        lags: list[float] = []
        # Lag by the minute the poll was due in (from the first start): shows whether the tail is
        # spread over the run or comes in bursts (a stalled server or worker).
        lags_by_minute: dict[int, list[float]] = {}
        retries: Counter[str] = Counter()
        worst: tuple[float, list[str]] = (0.0, [])
        polls_in_window = 0
        polls_total = 0
        events_per_run: list[int] = []
        events_per_poll: list[float] = []
        per_idle_poll: list[int] = []
        task_waits: list[float] = []
        task_runs: list[float] = []
        tasks_by_worker: Counter[str] = Counter()
        for handle in handles:
            history = await handle.fetch_history()
            polls = polls_of(history, retries)
            per_idle_poll += idle_poll_events(history)
            waits, runs = task_times(history, tasks_by_worker)
            task_waits += waits
            task_runs += runs
            polls_total += len(polls)
            # The run's own events, without the terminate that ended it.
            events = len(history.events) - 1
            events_per_run.append(events)
            if polls:
                events_per_poll.append(events / len(polls))
            for (began, _), (_, started) in itertools.pairwise(polls):
                lag = max(0.0, started - (began + EVERY_S))
                lags.append(lag)
                if lag > worst[0]:
                    worst = (lag, timeline(history, began + EVERY_S, started))
                lags_by_minute.setdefault(int((began + EVERY_S - wall0) // 60), []).append(lag)
            polls_in_window += sum(1 for _, started in polls if all_started + EVERY_S <= started <= wall_end)
        window_s = wall_end - (all_started + EVERY_S)
        state = eng.emulator.state()

    polls_per_s = polls_in_window / window_s if window_s > 0 else 0.0
    p50, p99 = percentile(lags, 50), percentile(lags, 99)
    per_poll = sum(events_per_poll) / max(len(events_per_poll), 1)
    return {
        "benchmark": "monitors",
        "variant": variant,
        "quick": quick,
        "scale": f"{monitors} monitors x {duration_s // 60} min" + (" (quick: shrunk)" if quick else ""),
        "monitors": monitors,
        "duration_s": duration_s,
        "every_s": EVERY_S,
        "worker_processes": worker_processes,
        "workflow_tasks_by_worker": sorted(tasks_by_worker.values(), reverse=True),
        "started_at": datetime.fromtimestamp(wall0, UTC).isoformat(timespec="seconds"),
        "polls_total": polls_total,
        "polls_per_s": round(polls_per_s, 2),
        "polls_per_s_scheduled": round(monitors / EVERY_S, 2),
        "polls_share_of_schedule": round(polls_per_s / (monitors / EVERY_S), 3),
        "lag_p50_s": round(p50, 3),
        "lag_p99_s": round(p99, 3),
        "lag_max_s": round(max(lags, default=0.0), 3),
        "lag_samples": len(lags),
        "workflow_task_wait_p50_p99_s": [round(percentile(task_waits, q), 3) for q in (50, 99)],
        "workflow_task_run_p50_p99_s": [round(percentile(task_runs, q), 3) for q in (50, 99)],
        "polls_retried": sum(retries.values()),
        "worst_poll_events": worst[1],
        "retry_causes": dict(retries.most_common(5)),
        "lag_p99_by_minute_s": {
            str(minute): round(percentile(values, 99), 3) for minute, values in sorted(lags_by_minute.items())
        },
        "cpu_cores": cores,
        "cpu_cores_total": round(sum(cores.values()), 2),
        "cpu_cores_available": os.cpu_count(),
        "worker_gc_s": round(gc_clock.total_s, 2),
        "worker_gc_max_pause_ms": round(gc_clock.max_pause_ms, 1),
        "worker_gc_full_collections": gc_clock.full_collections,
        "rss_idle_mib": rss_idle,
        "rss_end_mib": rss_end,
        "rss_peak_mib": rss_peak,
        "rss_peak_mib_per_worker": rss_peaks,
        "history_events_per_run_max": max(events_per_run, default=0),
        "history_events_per_poll": round(per_poll, 1),
        "history_events_per_idle_poll": percentile(per_idle_poll, 50),
        "polls_per_run_cap": POLLS_PER_RUN,
        "history_events_per_run_bound": round(per_poll * POLLS_PER_RUN),
        "provider_requests": sum(n for k, n in state["requests"].items() if k.startswith("tikapi ")),
        "goal": f"p99 lag < {GOAL_P99_S} s, RSS < {GOAL_RSS_MIB} MiB, history per run bounded",
        "goal_met": p99 < GOAL_P99_S and max(rss_peaks) < GOAL_RSS_MIB,
        "machine": machine(),
    }


if __name__ == "__main__":
    run_main(main)
