"""`http.request`: a generic HTTP call that keeps credentials out of the run's history."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import activities.builtin  # noqa: F401  (registers the built-in actions)
from activities.credentials import CredentialStore
from activities.ratelimit import RateLimiter
from activities.registry import ACTIONS, ActionContext, Services
from activities.settings import Settings
from tikflow.loader import RecipeError, load_recipe_text


async def test_an_answers_credential_headers_are_left_out_of_the_result(tmp_path: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"ok": True},
            headers={
                "Set-Cookie": "session=s3cr3t-value",
                "X-Auth-Token": "tok_abcdef",
                "X-Request-Id": "req-1",
                "ETag": '"v1"',
            },
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        services = Services(
            http=http,
            credentials=CredentialStore(tmp_path / "c.json", env={}),
            settings=Settings(),
            limiter=RateLimiter(),
        )
        ctx = ActionContext(services=services, account="main", idempotency_key="wf/s", action="http.request")
        act = ACTIONS["http.request"]
        result = await act.handler(ctx, act.input_model.model_validate({"url": "https://api.example.com/x"}))

    assert result["status"] == 200
    assert result["body"] == {"ok": True}
    assert result["headers"]["x-request-id"] == "req-1"
    assert result["headers"]["etag"] == '"v1"'
    assert not {"set-cookie", "x-auth-token"} & set(result["headers"])
    assert "s3cr3t" not in repr(result)


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key", "Cookie", "X-Session-Token"])
def test_a_credential_in_request_headers_is_refused_when_the_recipe_loads(header: str) -> None:
    text = f"""recipe: leaky
steps:
  - call: http.request
    with:
      url: https://api.example.com/x
      headers: {{{header}: "abc"}}
"""
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(text, "leaky.yaml")
    message = str(caught.value)
    assert message.startswith("leaky.yaml:")
    assert f"header {header} looks like a credential" in message
