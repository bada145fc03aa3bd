"""Errors a recipe can handle: typed step errors, `try`/`catch`/`finally`, in the time-skipping server.

Provider actions are mocked as in `tests/test_recipe_workflow.py`, failing the way the real
activities do: a provider error turned into its `ApplicationError` by `to_application_error`.
"""

from __future__ import annotations

from typing import Any

from activities.contracts import ActionRequest
from activities.errors import ProviderRejected, ProviderUnavailable, to_application_error
from tests.test_recipe_workflow import Actions, failure_message, logged, start, workers


def rejected(request: ActionRequest) -> dict[str, Any]:
    raise to_application_error(
        ProviderRejected("User doesn't exist", provider="tikapi", status=403, code=10202)
    )


def outage(request: ActionRequest) -> dict[str, Any]:
    raise to_application_error(ProviderUnavailable("upstream broke", provider="tikapi", status=503))


GUARDED = """
recipe: guarded
steps:
  - id: guarded
    try:
      - id: answer
        call: tikapi.reply
        with: {media_id: v, reply_comment_id: '7', text: hi}
        retry: {max_attempts: 3, initial: 1s}
      - call: log
        with: {message: "answered"}
    catch:
      - match: {type: ProviderRejected, provider: tikapi, code: "10202"}
        steps:
          - call: log
            with: {message: "rejected {{ error.code }} at {{ error.step }}: {{ error.message }}"}
      - match: {type: [RateLimited, ProviderUnavailable]}
        steps:
          - call: log
            with: {message: "outage {{ error.type }} of {{ error.provider }}"}
    finally:
      - call: log
        with: {message: "finally"}
  - call: log
    with: {message: "after {{ steps.guarded.caught }}"}
"""


def messages(actions: Actions) -> list[str]:
    return [call.params["message"] for call in actions.of("log")]


async def test_a_rejected_reply_takes_its_catch_and_finally_runs(time_env, task_queue):
    actions = Actions(tikapi__reply=rejected, log=logged)
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, GUARDED)).result()
    assert messages(actions) == [
        "rejected 10202 at steps.guarded.try.answer: User doesn't exist",
        "finally",
        "after 0",
    ]
    assert len(actions.of("tikapi.reply")) == 1, "a rejection is not retried"
    assert result.outcome == "completed"
    assert result.outputs["guarded"]["caught"] == 0
    assert result.outputs["guarded"]["error"]["type"] == "ProviderRejected"


async def test_an_outage_is_retried_then_caught_as_provider_unavailable(time_env, task_queue):
    actions = Actions(tikapi__reply=outage, log=logged)
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, GUARDED)).result()
    assert len(actions.of("tikapi.reply")) == 3, "an outage is retried under the step's policy"
    assert messages(actions) == ["outage ProviderUnavailable of tikapi", "finally", "after 1"]
    assert result.outputs["guarded"]["error"]["code"] is None


async def test_a_try_that_succeeds_runs_finally_and_no_catch(time_env, task_queue):
    actions = Actions(tikapi__reply=lambda request: {"replied": True}, log=logged)
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, GUARDED)).result()
    assert messages(actions) == ["answered", "finally", "after None"]
    assert result.outputs["guarded"] == {"failed": False, "caught": None, "error": None}


async def test_an_error_no_catch_matches_fails_the_run_after_finally(time_env, task_queue):
    actions = Actions(tikapi__reply=rejected, log=logged)
    text = """
recipe: unmatched
steps:
  - try:
      - call: tikapi.reply
        with: {media_id: v, reply_comment_id: '7', text: hi}
    catch:
      - match: {type: ProviderUnavailable}
        steps:
          - call: log
            with: {message: "caught"}
    finally:
      - call: log
        with: {message: "finally"}
  - call: log
    with: {message: "unreachable"}
"""
    async with workers(time_env.client, task_queue, actions):
        message = await failure_message(await start(time_env, task_queue, text))
    assert message == "steps.0.try.0 (tikapi.reply): tikapi HTTP 403 code 10202: User doesn't exist"
    assert messages(actions) == ["finally"]


async def test_a_failing_catch_fails_the_run_after_finally_and_fail_is_a_step_failed(time_env, task_queue):
    actions = Actions(log=logged)
    text = """
recipe: rethrow
steps:
  - try:
      - id: check
        fail: "no access"
    catch:
      - match: {type: ProviderError}
        steps:
          - call: log
            with: {message: "a provider error"}
      - match: {type: StepFailed}
        steps:
          - fail: "gave up: {{ error.type }} {{ error.message }} ({{ error.step }})"
    finally:
      - call: log
        with: {message: "finally"}
"""
    async with workers(time_env.client, task_queue, actions):
        message = await failure_message(await start(time_env, task_queue, text))
    assert message == "steps.0.catch1.0: gave up: StepFailed no access (steps.0.try.check)"
    assert messages(actions) == ["finally"]


async def test_continue_on_error_results_carry_the_error_fields(time_env, task_queue):
    actions = Actions(tikapi__reply=rejected, log=logged)
    text = """
recipe: typed
steps:
  - id: answer
    call: tikapi.reply
    with: {media_id: v, reply_comment_id: '7', text: hi}
    continue_on_error: true
  - id: each
    for_each: "{{ ['a'] }}"
    continue_on_error: true
    steps:
      - fail: "bad {{ item }}"
"""
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, text)).result()
    assert result.outputs["answer"] == {
        "error": "steps.answer (tikapi.reply): tikapi HTTP 403 code 10202: User doesn't exist",
        "failed": True,
        "type": "ProviderRejected",
        "code": 10202,
        "provider": "tikapi",
        "message": "User doesn't exist",
        "step": "steps.answer",
    }
    assert result.outputs["each"]["errors"] == [
        {
            "error": "steps.each[0].0: bad a",
            "failed": True,
            "type": "StepFailed",
            "code": None,
            "provider": None,
            "message": "bad a",
            "step": "steps.each[0].0",
        }
    ]


RATE_LIMITED = """
recipe: rate-limited
steps:
  - id: guarded
    try:
      - id: answer
        call: tikapi.reply
        with: {media_id: v, reply_comment_id: '7', text: hi}
        retry: {rate_limit_deadline: 25m}
    catch:
      - match: {type: RateLimited, provider: tikapi}
        steps:
          - call: log
            with: {message: "{{ error.type }} at {{ error.step }}: {{ error.message }}"}
"""


async def test_a_rate_limit_past_its_deadline_fails_the_call_as_rate_limited_for_a_catch(
    time_env, task_queue
):
    from temporalio import activity

    from activities.errors import RateLimited

    tried_at = []

    def limited(request: ActionRequest) -> dict[str, Any]:
        tried_at.append(activity.info().current_attempt_scheduled_time)
        raise to_application_error(
            RateLimited("daily quota spent", provider="tikapi", status=429, retry_after=600)
        )

    actions = Actions(tikapi__reply=limited, log=logged)
    async with workers(time_env.client, task_queue, actions):
        result = await (await start(time_env, task_queue, RATE_LIMITED)).result()
    # Waited out after the tries at 0 and 10 minutes (each reset within the 25m); the reset after
    # the try at 20 minutes would come past it, so the call fails there instead of waiting again.
    assert [round((t - tried_at[0]).total_seconds() / 60) for t in tried_at] == [0, 10, 20]
    assert result.counters.rate_limited == 2
    assert messages(actions) == [
        "RateLimited at steps.guarded.try.answer: rate-limited past its deadline (25m): daily quota spent"
    ]
    error = result.outputs["guarded"]["error"]
    assert (error["type"], error["provider"], result.outputs["guarded"]["caught"]) == (
        "RateLimited",
        "tikapi",
        0,
    )
