"""Failure alerts (`on_failure:`, `TIKFLOW_NOTIFY_WEBHOOK`) in the time-skipping server.

The production workers run the real `notify.send`, which POSTs to a webhook receiver on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.settings import Settings
from tests.conftest import make_services
from tests.support.webhook import Webhook
from tikflow.devstack import running_workers
from tikflow.loader import load_recipe
from tikflow.runs import build_run
from workflows.recipe import ALERT_RETRY, MAX_CONSECUTIVE_FAILED_POLLS, RecipeWorkflow, RunStatus

ONCE = """
recipe: nightly-report
inputs: {who: {type: string}, count: {type: integer, default: 3}}
TARGET
steps:
  - call: log
    with: {message: "hello {{ inputs.who }}"}
  - fail: "the report for {{ inputs.who }} is empty"
"""

MONITOR = """
recipe: watch-tag
TARGET
trigger:
  poll: {every: 1m}
steps:
  - fail: provider down
"""


def with_target(text: str, target: str) -> str:
    return text.replace("TARGET", target)


async def run_to_failure(
    env: WorkflowEnvironment,
    tmp_path: Path,
    credentials_file: Path,
    task_queue: str,
    text: str,
    inputs: dict[str, Any],
    *,
    default_webhook: str | None = None,
) -> tuple[str, WorkflowHandle[Any, Any], RunStatus]:
    """Run the recipe `text` (from a file) on the production workers until it fails.

    Returns its failure's message, its handle and its final status.
    """
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    services = make_services(credentials_path=credentials_file)
    services = dataclasses.replace(services, settings=Settings(notify_webhook=default_webhook))
    async with running_workers(env.client, services, task_queue):
        handle = await env.client.start_workflow(
            RecipeWorkflow.run,
            build_run(load_recipe(path), inputs),
            id=f"wf-{task_queue}",
            task_queue=task_queue,
            task_timeout=timedelta(seconds=10),
        )
        with pytest.raises(WorkflowFailureError) as caught:
            await asyncio.wait_for(handle.result(), 60)
        status = await handle.query(RecipeWorkflow.status)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.message, handle, status


async def test_a_failing_run_sends_one_alert_with_the_reason_and_the_restart_command(
    time_env, tmp_path, credentials_file, task_queue, webhook
):
    text = with_target(ONCE, f"on_failure: {{webhook: {webhook.url!r}}}")
    message, handle, status = await run_to_failure(
        time_env, tmp_path, credentials_file, task_queue, text, {"who": "ann lee"}
    )
    assert message == "steps.1: the report for ann lee is empty"
    assert webhook.posts == 1
    key, body = webhook.calls[0]
    assert key
    assert body["message"] == f"nightly-report failed: {message}"
    assert body["reason"] == message
    assert body["restart"] == f"tikflow run {tmp_path / 'recipe.yaml'} --input 'who=ann lee' --input count=3"
    assert body["workflow_id"] == handle.id
    assert status.counters.notifications_failed == 0


async def test_a_monitor_that_gives_up_sends_one_alert_not_one_per_poll(
    time_env, tmp_path, credentials_file, task_queue, webhook
):
    # No on_failure: the recipe's notify target takes the alert.
    text = with_target(MONITOR, f"notify: {{webhook: {webhook.url!r}}}")
    message, _, _ = await run_to_failure(time_env, tmp_path, credentials_file, task_queue, text, {})
    assert message == f"{MAX_CONSECUTIVE_FAILED_POLLS} polls in a row failed; last: steps.0: provider down"
    assert webhook.posts == 1
    body = webhook.calls[0][1]
    assert body["reason"] == message
    assert body["message"] == f"watch-tag failed: {message}"
    assert body["restart"] == f"tikflow run {tmp_path / 'recipe.yaml'}"


async def test_the_workers_default_webhook_takes_alerts_of_recipes_that_name_none(
    time_env, tmp_path, credentials_file, task_queue, webhook
):
    text = with_target(ONCE, "")
    message, handle, _ = await run_to_failure(
        time_env, tmp_path, credentials_file, task_queue, text, {"who": "bo"}, default_webhook=webhook.url
    )
    assert webhook.posts == 1
    assert webhook.calls[0][1]["reason"] == message
    # The URL was read by the worker: the run's history never holds it.
    history = await handle.fetch_history()
    assert webhook.url not in history.to_json()
    assert "127.0.0.1" not in history.to_json()


async def test_a_default_webhook_takes_no_ordinary_notify_step(
    time_env, tmp_path, credentials_file, task_queue, webhook
):
    text = """
recipe: plain-notify
steps:
  - notify: all good
  - fail: then broken
"""
    message, _, _ = await run_to_failure(
        time_env, tmp_path, credentials_file, task_queue, text, {}, default_webhook=webhook.url
    )
    # The notify step stays log-only; only the failure alert reached the default webhook.
    assert [body["message"] for _, body in webhook.calls] == [f"plain-notify failed: {message}"]


async def test_an_alert_that_cannot_be_delivered_leaves_the_run_failed_with_its_own_reason(
    time_env, tmp_path, credentials_file, task_queue
):
    gone = Webhook(status=404)  # the alert's hook was deleted
    try:
        text = with_target(ONCE, f"on_failure: {{webhook: {gone.url!r}}}")
        message, _, status = await run_to_failure(
            time_env, tmp_path, credentials_file, task_queue, text, {"who": "cy"}
        )
    finally:
        gone.close()
    assert message == "steps.1: the report for cy is empty"
    assert gone.posts == 1  # refused, not retried
    assert status.counters.notifications_failed == 1
    assert status.last_error == message


async def test_an_alert_to_a_dead_webhook_gives_up_within_its_bound_and_the_run_fails(
    time_env, tmp_path, credentials_file, task_queue
):
    dead = Webhook(status=503)  # answers, always with an outage
    try:
        # The recipe's own policy would retry for about an hour; the alert has its own.
        text = with_target(ONCE, f"retry: {{max_attempts: 50}}\non_failure: {{webhook: {dead.url!r}}}")
        message, handle, status = await run_to_failure(
            time_env, tmp_path, credentials_file, task_queue, text, {"who": "di"}
        )
        run = await handle.describe()
    finally:
        dead.close()
    assert message == "steps.1: the report for di is empty"
    assert dead.posts == ALERT_RETRY.max_attempts
    assert run.close_time is not None
    assert run.close_time - run.start_time <= timedelta(seconds=90)  # simulated: the alert's bound
    assert status.counters.notifications_failed == 1
    assert status.last_error == message


HANDLED = """
recipe: nightly-report
inputs: {who: {type: string}}
on_failure:
  steps:
    - id: tell_ops
      notify: "{{ error.type }} at {{ error.step }}: {{ failure.reason }}"
      webhook: WEBHOOK
      data: {restart: "{{ failure.restart }}", detail: "{{ error.message }}"}
    EXTRA
steps:
  - call: log
    with: {message: "hello {{ inputs.who }}"}
  - fail: "the report for {{ inputs.who }} is empty"
"""


async def test_on_failure_steps_handle_the_failure_and_replace_the_default_alert(
    time_env, tmp_path, credentials_file, task_queue, webhook
):
    default = Webhook()
    try:
        text = HANDLED.replace("WEBHOOK", repr(webhook.url)).replace("EXTRA", "")
        message, _, status = await run_to_failure(
            time_env,
            tmp_path,
            credentials_file,
            task_queue,
            text,
            {"who": "ann"},
            default_webhook=default.url,
        )
    finally:
        default.close()
    assert message == "steps.1: the report for ann is empty"
    assert webhook.posts == 1
    body = webhook.calls[0][1]
    assert body["message"] == f"StepFailed at steps.1: {message}"
    assert body["restart"] == f"tikflow run {tmp_path / 'recipe.yaml'} --input who=ann"
    assert body["detail"] == "the report for ann is empty"
    assert default.posts == 0  # the recipe's own steps handled it: no second alert
    assert status.phase == "failed"
    assert status.last_error == message


async def test_on_failure_steps_that_fail_too_send_the_default_alert_with_both_reasons(
    time_env, tmp_path, credentials_file, task_queue, webhook
):
    default = Webhook()
    try:
        text = HANDLED.replace("WEBHOOK", repr(webhook.url)).replace(
            "EXTRA", '- fail: "the ops channel is gone"'
        )
        message, _, status = await run_to_failure(
            time_env, tmp_path, credentials_file, task_queue, text, {"who": "bo"}, default_webhook=default.url
        )
    finally:
        default.close()
    assert message == "steps.1: the report for bo is empty"  # the run fails with its own reason
    assert webhook.posts == 1  # the first on_failure step ran
    assert default.posts == 1
    reason = default.calls[0][1]["reason"]
    assert reason == (
        f"{message}; its on_failure steps failed too: on_failure.steps.1: the ops channel is gone"
    )
    assert status.last_error == reason


async def test_a_monitor_that_gives_up_runs_its_on_failure_steps_once(
    time_env, tmp_path, credentials_file, task_queue, webhook
):
    text = MONITOR.replace(
        "TARGET",
        "on_failure:\n  steps:\n"
        f'    - notify: "gave up: {{{{ failure.reason }}}}"\n      webhook: {webhook.url!r}',
    )
    message, _, _ = await run_to_failure(time_env, tmp_path, credentials_file, task_queue, text, {})
    assert message == f"{MAX_CONSECUTIVE_FAILED_POLLS} polls in a row failed; last: steps.0: provider down"
    assert [body["message"] for _, body in webhook.calls] == [f"gave up: {message}"]


def test_graph_draws_on_failure_steps_from_a_failed_node(tmp_path):
    from tikflow.commands.graph import mermaid

    path = tmp_path / "recipe.yaml"
    path.write_text(HANDLED.replace("WEBHOOK", "'https://hooks.example.com/x'").replace("EXTRA", ""))
    lines = mermaid(load_recipe(path).recipe).splitlines()
    assert '  n4{{"nightly-report failed"}}' in lines
    assert '  n1 -->|"a step fails the run"| n4' in lines
    assert '  n5>"tell_ops: notify"]' in lines
    assert '  n4 -->|"on_failure"| n5' in lines


def test_an_on_failure_with_only_a_webhook_keeps_its_serialized_shape(tmp_path):
    """Runs started before `on_failure.steps` existed carry `{webhook}` only: so does a new one."""
    path = tmp_path / "recipe.yaml"
    path.write_text(with_target(ONCE, "on_failure: {webhook: 'https://hooks.example.com/x'}"))
    dumped = load_recipe(path).recipe.model_dump(mode="json", by_alias=True)
    assert dumped["on_failure"] == {"webhook": "https://hooks.example.com/x"}


async def test_an_on_failure_notify_not_delivered_sends_the_default_alert_and_reads_the_runs_vars(
    time_env, tmp_path, credentials_file, task_queue
):
    dead, default = Webhook(status=503), Webhook()
    try:
        text = f"""
recipe: nightly-report
retry: {{max_attempts: 2}}
on_failure:
  steps:
    - notify: "stopped at {{{{ vars.stage }}}}: {{{{ failure.reason }}}}"
      webhook: {dead.url!r}
steps:
  - set: {{stage: drafted}}
  - fail: the report is empty
"""
        message, _, status = await run_to_failure(
            time_env, tmp_path, credentials_file, task_queue, text, {}, default_webhook=default.url
        )
    finally:
        dead.close()
        default.close()
    assert message == "steps.1: the report is empty"
    assert dead.posts == 2  # the handler's notify was tried under the recipe's retry
    assert dead.calls[0][1]["message"] == f"stopped at drafted: {message}"  # the failing run's vars
    assert default.posts == 1  # not delivered: the handler did not do its job, so the alert goes out
    reason = default.calls[0][1]["reason"]
    assert reason.startswith(f"{message}; its on_failure steps failed too: ")
    assert status.counters.notifications_failed == 1
