"""Running recipe tests: each case in this process, on Temporal's time-skipping test server.

One test server serves every case of a `tikflow test` command (waits, `every:` intervals and
retries cost no time). Each case gets its own task queue and workers whose activities are a
`CannedActivities`: no provider is called, and with no `sandbox:` the HTTP client refuses every
request, so a test touches no network. With `sandbox:`, calls without canned results go to a
sandbox served inside this process through httpx's ASGI transport (no socket either). A case's
`approvals:` decide its `approval:` steps when they ask (through the run's `approval` signal);
an approval nobody decides times out at once, time being skipped.
What a case expected and what its run did are compared into `Difference`s, each naming the
step it is about.
"""

from __future__ import annotations

import asyncio
import functools
import json
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from activities.credentials import CredentialStore
from activities.http import make_http_client
from activities.ratelimit import RateLimiter
from activities.registry import Services
from activities.settings import Settings
from tikflow.devstack import find_binary, running_workers, store_credentials
from tikflow.dryrun import dry_run_recipe
from tikflow.loader import LoadedRecipe
from tikflow.recipetest.fake import CannedActivities, RecordedCall
from tikflow.recipetest.spec import AlertExpectation, Case, EffectExpectation, LoadedTestFile
from tikflow.runs import start_recipe
from workflows.links import APPROVAL_SIGNAL
from workflows.models import PollTrigger, Recipe, Trigger
from workflows.recipe import ALERT_PATH, RecipeWorkflow

__all__ = ["CASE_TIMEOUT_S", "CaseReport", "Difference", "compare", "run_test_files", "test_recipe"]

#: Wall-clock seconds one case may take before it counts as failed (a run that never ends).
CASE_TIMEOUT_S = 120.0

#: The sandbox's made-up address: never resolved, the ASGI transport answers it.
_SANDBOX_URL = "http://sandbox.tikflow.invalid"


@dataclass(frozen=True)
class Difference:
    """One thing a run did other than its test expected.

    Attributes:
        where: What it is about (`step replies, effect 1 tikapi.reply`, `result`, `calls`).
        message: What differed (`with.text: expected 'Hi', got 'Hello'`).
    """

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class CaseReport:
    """How one test case went."""

    __test__ = False

    file: str
    line: int
    name: str
    recipe: str
    differences: list[Difference] = field(default_factory=list)
    calls: list[RecordedCall] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether the run did what the test expected."""
        return not self.differences


def test_recipe(recipe: Recipe, polls: int) -> Recipe:
    """`recipe` as a test runs it: a monitor does `polls` polls, any other trigger runs it once."""
    trigger = recipe.trigger
    if trigger is not None and trigger.poll is not None:
        return recipe.model_copy(
            update={"trigger": Trigger(poll=PollTrigger(every=trigger.poll.every, max_polls=polls))}
        )
    return dry_run_recipe(recipe)


test_recipe.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"a recipe test sends nothing: {request.method} {request.url}", request=request)


async def _services(case: Case, home: Path) -> Services:
    from tikflow.emulator import demo_credentials
    from tikflow.emulator.app import create_app
    from tikflow.emulator.server import provider_base_urls
    from tikflow.emulator.state import EmulatorConfig

    store = CredentialStore(home / "credentials.json", env={})
    if case.sandbox is None:
        settings = Settings(base_urls=provider_base_urls(_SANDBOX_URL))
        http = make_http_client(settings, transport=httpx.MockTransport(_refuse))
    else:
        app = create_app(EmulatorConfig(seed=case.sandbox.seed))
        settings = Settings(base_urls=provider_base_urls(_SANDBOX_URL))
        http = make_http_client(settings, transport=httpx.ASGITransport(app=app))
        credentials = demo_credentials()
        answer = await http.post(f"{_SANDBOX_URL}/_admin/keys", json={"provider": "tiktok"})
        tokens = answer.json()
        credentials["tiktok"]["main"].update(
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
            expires_at=str(int(time.time() + tokens["expires_in"])),
            open_id=tokens["open_id"],
        )
        store_credentials(store, credentials)
    from activities.ledger import EffectLedger

    return Services(
        http=http,
        credentials=store,
        settings=settings,
        limiter=RateLimiter(),
        ledger=EffectLedger(home / "effects.json"),
    )


async def _run_case(env: WorkflowEnvironment, test: LoadedTestFile, index: int) -> CaseReport:
    case = test.spec.tests[index]
    report = CaseReport(test.source, test.lines[index], case.name, test.recipe.recipe.recipe)
    started = time.monotonic()
    once = LoadedRecipe(recipe=test_recipe(test.recipe.recipe, case.polls), source=test.recipe.source)
    result: dict[str, Any] | None = None
    error: str | None = None
    with tempfile.TemporaryDirectory(prefix="tikflow-test-") as home:
        services = await _services(case, Path(home))
        fake = CannedActivities(
            services,
            case.canned,
            sandbox=case.sandbox is not None,
            approvals={step: d.model_dump() for step, d in case.approvals.items()},
            deliver=functools.partial(_deliver, env.client),
        )
        queue = f"tikflow-test-{uuid.uuid4()}"
        async with running_workers(env.client, services, queue, activities=fake):
            _, handle = await start_recipe(
                env.client, once, case.inputs, task_queue=queue, workflow_id=queue, search_attributes=False
            )
            assert handle is not None  # a poll or no trigger: a workflow, not a schedule
            try:
                run = await asyncio.wait_for(handle.result(), CASE_TIMEOUT_S)
                result = run.model_dump(mode="json")
                if run.counters.errors:
                    # A monitor's failed poll does not end the run: what failed is in its status.
                    status = await handle.query(RecipeWorkflow.status)
                    error = status.last_error or f"{run.counters.errors} step(s) failed"
            except WorkflowFailureError as exc:
                error = getattr(exc.cause, "message", None) or str(exc.cause)
            except TimeoutError:
                error = f"the run did not end within {CASE_TIMEOUT_S:g} s"
                await handle.terminate("recipe test timed out")
    report.calls = list(fake.calls)
    report.differences = compare(case, fake.calls, result, error)
    report.seconds = time.monotonic() - started
    return report


async def _deliver(client: Any, workflow_id: str, decision: dict[str, str]) -> None:
    """A case's decision reaches the run as the approval page's does: the `approval` signal."""
    await client.get_workflow_handle(workflow_id).signal(APPROVAL_SIGNAL, decision)


async def run_test_files(tests: Sequence[LoadedTestFile], only: str | None = None) -> list[CaseReport]:
    """Run every case of `tests` (those whose name contains `only`, if given), each on its own test server.

    A fresh server per case keeps cases apart: a run's event mailboxes (`wait_for`, the TikTok
    authorization watch) outlive it by design, and one left by an earlier case, on a queue no
    worker polls any more, would hold the next case's subscription and stop time from skipping.
    """
    reports: list[CaseReport] = []
    for test in tests:
        for index, case in enumerate(test.spec.tests):
            if only is not None and only not in case.name:
                continue
            env = await WorkflowEnvironment.start_time_skipping(
                data_converter=pydantic_data_converter,
                test_server_existing_path=find_binary("temporal-test-server"),
                runtime=_quiet_runtime(),
            )
            try:
                reports.append(await _run_case(env, test, index))
            finally:
                await env.shutdown()
    return reports


@functools.cache
def _quiet_runtime() -> Runtime:
    """A Temporal runtime that logs only errors (the test server's capability warnings are noise)."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= 160 else text[:159] + "…"


def _subset(expected: Any, actual: Any, where: str) -> list[str]:
    """How `actual` differs from `expected`, where mappings need only hold the expected keys."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where or 'value'}: expected a mapping {_show(expected)}, got {_show(actual)}"]
        problems: list[str] = []
        for key, value in expected.items():
            here = f"{where}.{key}" if where else str(key)
            if key not in actual:
                problems.append(f"{here}: expected {_show(value)}, missing")
            else:
                problems += _subset(value, actual[key], here)
        return problems
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            p
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for p in _subset(e, a, f"{where}[{i}]")
        ]
    if expected != actual:
        return [f"{where or 'value'}: expected {_show(expected)}, got {_show(actual)}"]
    return []


def compare(
    case: Case, calls: Sequence[RecordedCall], result: dict[str, Any] | None, error: str | None
) -> list[Difference]:
    """What the run (its `calls`, its `result` or its `error`) did other than `case` expected.

    The failure alert a failing run sends (`on_failure`) is the engine's, not a step's: it is in
    the report's calls but not compared, so a case expects the same calls and effects whether or
    not its failure is alerted.
    """
    expect = case.expect
    found: list[Difference] = []
    if expect.alert is not None:
        found += _alert_differences(expect.alert, [c for c in calls if c.path == ALERT_PATH])
    calls = [c for c in calls if c.path != ALERT_PATH]
    missing = [c for c in calls if c.answered_by == "none"]
    for call in missing[:1]:
        found.append(Difference(f"step {call.step}", f"{call.action} has no canned result ({call.path})"))
    if expect.error is None and error is not None and not missing:
        found.append(Difference("run", f"expected no failure, got: {error}"))
    elif expect.error is not None:
        if error is None:
            found.append(Difference("run", f"expected a failure with {expect.error!r}, nothing failed"))
        elif expect.error not in error:
            found.append(Difference("run", f"expected a failure with {expect.error!r}, got: {error}"))
    if expect.calls is not None:
        made = Counter(c.action for c in calls)
        for action, count in expect.calls.items():
            if made[action] != count:
                steps = sorted({c.step for c in calls if c.action == action})
                at = f" (at step {', '.join(steps)})" if steps else ""
                found.append(
                    Difference(f"calls {action}", f"expected {count} call(s), got {made[action]}{at}")
                )
    if expect.effects is not None and expect.any_order:
        found += _unordered_effects(expect.effects, [c for c in calls if c.effect])
    elif expect.effects is not None:
        effects = [c for c in calls if c.effect]
        for number, wanted in enumerate(expect.effects, 1):
            label = f"step {wanted.step or '?'}, effect {number} {wanted.action}"
            if number > len(effects):
                found.append(Difference(label, "expected, but the run made no more effects"))
                continue
            made_call = effects[number - 1]
            label = f"step {made_call.step}, effect {number} {wanted.action}"
            if made_call.action != wanted.action:
                found.append(
                    Difference(label, f"expected {wanted.action}, got {made_call.action} ({made_call.path})")
                )
                continue
            if wanted.step is not None and made_call.step != wanted.step:
                found.append(Difference(label, f"expected at step {wanted.step}, made at {made_call.path}"))
            for problem in _subset(wanted.with_, made_call.params, "with"):
                found.append(Difference(label, problem))
        for number, extra in enumerate(effects[len(expect.effects) :], len(expect.effects) + 1):
            found.append(
                Difference(
                    f"step {extra.step}, effect {number} {extra.action}",
                    f"not expected ({extra.path}, with {_show(extra.params)})",
                )
            )
    if expect.result is not None:
        if result is None:
            found.append(Difference("result", "expected a result, the run failed"))
        else:
            for problem in _subset(expect.result, result, ""):
                step = _outputs_step(problem)
                found.append(Difference(f"result (step {step})" if step else "result", problem))
    return found


def _alert_differences(wanted: AlertExpectation, alerts: Sequence[RecordedCall]) -> list[Difference]:
    """How the failure alerts sent differ from the one `expect.alert` describes."""
    if len(alerts) != 1:
        return [Difference("alert", f"expected one failure alert, got {len(alerts)}")]
    params = alerts[0].params
    data = params.get("data")
    data = data if isinstance(data, dict) else {}
    sent = {"reason": str(data.get("reason", "")), "message": str(params.get("message", ""))}
    return [
        Difference("alert", f"expected a {part} containing {text!r}, got {sent[part]!r}")
        for part, text in (("reason", wanted.reason), ("message", wanted.message))
        if text is not None and text not in sent[part]
    ]


def _matches(wanted: EffectExpectation, call: RecordedCall) -> bool:
    return (
        call.action == wanted.action
        and wanted.step in (None, call.step)
        and not _subset(wanted.with_, call.params, "with")
    )


def _unordered_effects(wanted: Sequence[EffectExpectation], made: Sequence[RecordedCall]) -> list[Difference]:
    left = list(made)
    found: list[Difference] = []
    for number, expected in enumerate(wanted, 1):
        match = next((call for call in left if _matches(expected, call)), None)
        if match is not None:
            left.remove(match)
            continue
        near = next(
            (c for c in left if c.action == expected.action and expected.step in (None, c.step)), None
        )
        label = f"step {expected.step or (near.step if near else '?')}, effect {number} {expected.action}"
        if near is None:
            found.append(Difference(label, "expected, but the run made no such effect"))
        else:
            found += [Difference(label, p) for p in _subset(expected.with_, near.params, "with")]
            left.remove(near)
    found += [
        Difference(f"step {c.step}, effect {c.action}", f"not expected ({c.path}, with {_show(c.params)})")
        for c in left
    ]
    return found


def _outputs_step(problem: str) -> str | None:
    if problem.startswith("outputs."):
        return problem.removeprefix("outputs.").split(".", 1)[0].split(":", 1)[0].split("[", 1)[0]
    return None
