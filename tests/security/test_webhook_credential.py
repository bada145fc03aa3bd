"""A notify webhook named by a stored credential: sent by the worker, its URL never in history.

Issue 13, point 8: webhook URLs often carry a token (Slack-style `/services/T…/B…/secret`); a
recipe says `webhook: {credential: NAME}` and the `webhook` credential's `url` is read inside the
activity. Runs on the session's dev server against a webhook receiver on loopback.
"""

from __future__ import annotations

import asyncio

import pytest

from activities.credentials import CredentialStore
from tests.replay.history import readable
from tikflow.loader import load_recipe_text
from tikflow.runs import start_recipe
from workflows.recipe import RunResult

pytestmark = pytest.mark.devserver

TOKEN = "TFSECRETwebhookToken0123456789abcdef"

RECIPE = """
recipe: hooks-by-name
notify: {webhook: {credential: alerts}}
retry: {max_attempts: 1}
steps:
  - notify: "first, to the recipe's webhook"
  - notify: "second, to a credential nobody stored"
    webhook: {credential: missing}
    continue_on_error: true
  - notify: "third, to a receiver that is down"
    webhook: {credential: down}
    continue_on_error: true
"""


async def test_a_webhook_named_by_a_credential_is_sent_and_its_url_stays_out_of_history(
    stack, webhook, capfd, caplog
) -> None:
    store = CredentialStore(stack.credentials, env={})
    store.update("webhook", "alerts", {"url": f"{webhook.url}/services/T0/B0/{TOKEN}"}, strict=True)
    store.update("webhook", "down", {"url": f"http://127.0.0.1:1/services/T0/B0/{TOKEN}"}, strict=True)

    _, handle = await start_recipe(
        stack.client, load_recipe_text(RECIPE, "hooks.yaml"), {}, task_queue=stack.task_queue
    )
    assert handle is not None
    result: RunResult = await asyncio.wait_for(handle.result(), 60)
    history = readable((await handle.fetch_history()).to_json())

    assert [body["message"] for _, body in webhook.calls] == ["first, to the recipe's webhook"]
    # An undeliverable notification never fails the run: it is counted, and the run goes on.
    assert result.outcome == "completed"
    assert result.counters.notifications_failed == 2
    # The failures say what to fix and name the credential, not the URL or its token.
    assert "tikflow credentials set webhook missing url=…" in history
    assert "(webhook 'down')" in history
    assert TOKEN not in history
    assert "/services/T0/B0" not in history
    # Nor in any log line: ours, or the Temporal SDK's "Completing activity as failed".
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "Completing activity as failed" in logged or "action failed" in logged
    assert TOKEN not in logged
