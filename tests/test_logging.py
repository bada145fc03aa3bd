"""The one log stream (issue 13, point 8): Temporal's own lines are redacted too, no locals, no stacks
for failures the engine expects.

The first test runs a real worker on a Temporal test server: a `notify` step POSTs to a Slack-style
webhook URL nobody listens on, and the lines the SDK itself writes for the failed attempts
(`Completing activity as failed`) are read back from the handler `configure_logging` installed.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import structlog
import temporalio.activity
from conftest import make_services
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError

from activities.errors import ProviderRejected
from tikflow.loader import load_recipe_text
from tikflow.logging import configure_logging, summarize_expected_errors
from tikflow.runs import build_run
from tikflow.worker import run_workers
from workflows.recipe import RecipeWorkflow

SLACK_TOKEN = "Zq81mXv0Tn4Kp2Lw9Rb7Yc3D"
SLACK_PATH = f"/services/T0AB12CD3/B0EF45GH6/{SLACK_TOKEN}"

NOTIFY = """
recipe: tell-slack
steps:
  - notify: "done"
    webhook: "{hook}"
    retry: {{max_attempts: 3, initial: 1s}}
"""


@pytest.fixture
def log_stream() -> Iterator[Callable[..., io.StringIO]]:
    """`configure_logging` into a buffer for this test; the previous configuration comes back after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_config = structlog.get_config()

    def configure(**kwargs: object) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(stream=stream, **kwargs)  # type: ignore[arg-type]
        # Loggers bound here must not keep this test's pipeline for the rest of the session.
        structlog.configure(cache_logger_on_first_use=False)
        return stream

    try:
        yield configure
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_config)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_sdk_lines_of_a_failed_webhook_are_one_line_each_and_redacted(time_env, task_queue, log_stream):
    stream = log_stream(json=True, level="DEBUG")
    hook = f"http://127.0.0.1:{closed_port()}{SLACK_PATH}"
    run = build_run(load_recipe_text(NOTIFY.format(hook=hook), "tell-slack.yaml"), {})
    stop, ready = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(
        run_workers(time_env.client, make_services(), base_queue=task_queue, stop=stop, ready=ready)
    )
    await asyncio.wait_for(ready.wait(), 30)
    try:
        handle = await time_env.client.start_workflow(
            RecipeWorkflow.run,
            run,
            id=f"wf-{task_queue}",
            task_queue=task_queue,
            task_timeout=timedelta(seconds=10),
        )
        # An undeliverable notification does not fail the run: it is counted and logged.
        result = await asyncio.wait_for(handle.result(), 60)
        assert result.counters.notifications_failed == 1
    finally:
        stop.set()
        await worker

    text = stream.getvalue()
    assert SLACK_TOKEN not in text
    lines = [json.loads(line) for line in text.splitlines()]
    sdk = [line for line in lines if line["event"].startswith("Completing activity as failed")]
    ours = [line for line in lines if line["event"] == "action failed"]
    assert len(sdk) == len(ours) == 3  # one of each per attempt
    for line in sdk:
        # The SDK's line repeats ours (which names the account), so it is demoted to debug, as the
        # SDK does itself for benign errors; no stack, no locals, the error on one line.
        assert line["level"] == "debug"
        assert "exception" not in line
        assert line["error_type"] == "ProviderUnavailable"
        # A webhook's path is its token: the generic http provider's errors name only the host.
        assert line["error"].startswith("http: POST 127.0.0.1:"), line["error"]
        assert "/services" not in line["error"]
    for line in ours:
        assert line["level"] == "warning"
        assert line["activity"] == "notify.send"
        assert "/services" not in line["error"]
    # What a failed attempt costs at the default level: one warning line (it was ~5 KB of stack
    # frames and locals), under 1 KB.
    warnings = [raw for raw in text.splitlines() if json.loads(raw)["level"] in ("warning", "error")]
    # ...plus the run's one line saying the notification was not delivered.
    assert len(warnings) == 4, warnings
    assert sum("notification not delivered" in raw for raw in warnings) == 1, warnings
    assert max(map(len, warnings)) < 1000
    assert max(len(json.dumps(line)) for line in sdk) < 1000


def test_at_info_a_failed_provider_call_is_one_line(log_stream):
    stream = log_stream(json=True, level="INFO")
    log = structlog.get_logger("tikflow.activities")
    try:
        raise ApplicationError("http: POST /services/[REDACTED] failed", type="ProviderUnavailable")
    except ApplicationError:
        log.warning("action failed", error_type="ProviderUnavailable", error="http: POST … failed")
        temporalio.activity.logger.warning("Completing activity as failed", exc_info=True)
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["action failed"]


def _raise_with_a_secret_local() -> None:
    api_key = "TFSECRETtikapiApiKey0123456789abcdef"  # a local the old traceback rendering printed
    raise RuntimeError(f"unexpected: {api_key[:2]} https://hooks.slack.com{SLACK_PATH}")


@pytest.mark.parametrize("as_json", [True, False])
def test_an_unexpected_error_keeps_its_traceback_without_locals_and_redacted(log_stream, as_json):
    stream = log_stream(json=as_json)
    try:
        _raise_with_a_secret_local()
    except RuntimeError:
        # What the SDK logs for an activity that raised something unexpected.
        temporalio.activity.logger.warning("Completing activity as failed", exc_info=True)
    text = stream.getvalue()
    assert "_raise_with_a_secret_local" in text  # the traceback is there
    assert "TFSECRET" not in text
    assert SLACK_TOKEN not in text
    assert "/services/[REDACTED]" in text
    if as_json:
        [line] = [json.loads(raw) for raw in text.splitlines()]
        [exception] = line["exception"]
        assert exception["exc_type"] == "RuntimeError"
        assert all("locals" not in frame for frame in exception["frames"])
    else:
        assert "Traceback (most recent call last):" in text
        assert "api_key =" not in text


def test_an_expected_error_from_our_own_code_is_summarized_in_one_line():
    with capture_logs(processors=[summarize_expected_errors]) as logs:
        try:
            raise ProviderRejected("user does not exist", provider="tiktok", status=403, code=10202)
        except ProviderRejected:
            structlog.get_logger().exception("step failed")
    assert logs == [
        {
            "event": "step failed",
            "error_type": "ProviderRejected",
            "error": "tiktok HTTP 403 code 10202: user does not exist",
            "log_level": "error",
        }
    ]


def test_extra_fields_of_stdlib_records_are_redacted(log_stream):
    stream = log_stream(json=True)
    logging.getLogger("temporalio.workflow").warning(
        "notify", extra={"webhook": f"https://hooks.slack.com{SLACK_PATH}", "token_count": 3}
    )
    [line] = [json.loads(raw) for raw in stream.getvalue().splitlines()]
    assert line["webhook"] == "https://hooks.slack.com/[REDACTED]"
    assert line["token_count"] == 3
