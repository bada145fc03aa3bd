"""Built-in actions that need no provider: `log`, `http.request` and `notify.send`.

`http.request` is the generic HTTP node every automation tool has, so a recipe can reach a service
tikflow has no client for. `notify.send` is what `notify` steps and re-authorization requests use.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

import httpx
import structlog
from pydantic import Field, field_validator

from activities.contracts import http_url_problem
from activities.errors import (
    CredentialsRejected,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from activities.http import Reply, send
from activities.links import approval_link_for, reauth_link_for
from activities.ratelimit import parse_retry_after
from activities.registry import ActionContext, ActionInput, action

__all__ = ["HttpRequestInput", "LogInput", "NotifyInput", "WebhookCredentialRef"]

log = structlog.get_logger("tikflow.actions")


class LogInput(ActionInput):
    """Inputs of `log`."""

    message: str = Field(description="The line to log.")
    level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")
    fields: dict[str, Any] = Field(default_factory=dict, description="Structured fields logged with it.")


@action("log", LogInput, endpoint="(worker log)")
async def log_message(ctx: ActionContext, params: LogInput) -> dict[str, Any]:
    """Write a line to the worker's structured log."""
    getattr(log, params.level)(params.message, **params.fields)
    return {"logged": params.message}


class HttpRequestInput(ActionInput):
    """Inputs of `http.request`."""

    url: str = Field(description="Absolute http(s) URL.", pattern=r"^https?://")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = Field(
        default="GET", description="Method."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Query parameters.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (no secrets).")
    json_body: Any = Field(default=None, alias="json", description="JSON body.")
    expect: list[int] = Field(
        default_factory=list, description="Statuses that count as success (default: any 2xx)."
    )

    @field_validator("headers")
    @classmethod
    def _no_secret_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        secret = sorted(name for name in headers if _SECRET_HEADER.search(name))
        if secret:
            raise ValueError(
                f"header {', '.join(secret)} looks like a credential; `with:` is stored in the run's "
                "history, so http.request cannot carry secrets (use a provider action)"
            )
        return headers


#: Header names that carry credentials: never sent from `with:`, never kept from an answer.
_SECRET_HEADER = re.compile(r"auth|cookie|token|secret|api[-_]?key|session|password", re.IGNORECASE)


def _public_headers(headers: Any) -> dict[str, str]:
    """An answer's headers without those that may carry a credential (they would enter history)."""
    return {name: value for name, value in dict(headers).items() if not _SECRET_HEADER.search(name)}


def _classify_generic(reply: Reply, account: str, expect: list[int]) -> ProviderError | None:
    ok = reply.status in expect if expect else 200 <= reply.status < 300
    if ok:
        return None
    message = f"HTTP {reply.status}"
    if reply.status == 429:
        return RateLimited(message, provider="http", status=429, retry_after=parse_retry_after(reply.headers))
    if reply.status >= 500:
        return ProviderUnavailable(message, provider="http", status=reply.status)
    return ProviderRejected(message, provider="http", status=reply.status)


@action("http.request", HttpRequestInput, endpoint="any URL")
async def http_request(ctx: ActionContext, params: HttpRequestInput) -> dict[str, Any]:
    """Make an HTTP request and return its status, headers and (JSON or text) body.

    Headers that may carry a credential (cookies, tokens, keys, auth) are left out of the result.
    """
    reply = await send(
        ctx,
        "http",
        params.method,
        params.url,
        classify=lambda r, a: _classify_generic(r, a, params.expect),
        params=params.params,
        json_body=params.json_body,
        headers=params.headers,
        expect_json=False,
    )
    return {"status": reply.status, "headers": _public_headers(reply.headers), "body": reply.body}


class WebhookCredentialRef(ActionInput):
    """A webhook named by its credential: the URL is read from the store here, never passed in."""

    credential: str = Field(description="Name of the `webhook` credential whose `url` receives it.")


class NotifyInput(ActionInput):
    """Inputs of `notify.send`."""

    message: str = Field(description="What happened, for people.")
    webhook: str | WebhookCredentialRef | None = Field(
        default=None, description="URL that receives the notification as JSON, or its credential's name."
    )
    data: dict[str, Any] = Field(default_factory=dict, description="Extra JSON fields.")
    recipe: str = Field(default="", description="The recipe that sends it.")
    workflow_id: str = Field(default="", description="The run that sends it.")
    alert: bool = Field(
        default=False,
        description="A failure alert: without a webhook it goes to the worker's TIKFLOW_NOTIFY_WEBHOOK.",
    )

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, webhook: str | WebhookCredentialRef | None) -> str | WebhookCredentialRef | None:
        # The loader checks a constant webhook; one rendered from an expression is checked here
        # (a credential's URL is checked when it is read). The message never repeats the URL:
        # a webhook URL often carries a token.
        problem = http_url_problem(webhook) if isinstance(webhook, str) and webhook else None
        if problem:
            raise ValueError(problem)
        return webhook


@action("notify.send", NotifyInput, endpoint="POST {webhook}", side_effect=True)
async def notify(ctx: ActionContext, params: NotifyInput) -> dict[str, Any]:
    """Log a notification and POST it to a webhook, once.

    Idempotent: the webhook receives an `Idempotency-Key` header derived from the workflow id and
    step path, so a receiver can drop the duplicate a retried activity may send. A webhook named
    by a credential is looked up here, and errors name the credential instead of the URL's path
    (where tokens of Slack-style webhooks live).
    """
    params = _with_approval_link(ctx, _with_reauth_link(ctx, params))
    log.info("notification", message=params.message, recipe=params.recipe, workflow_id=params.workflow_id)
    if not params.webhook and params.alert and ctx.services.settings.notify_webhook:
        # The worker's default alert target: read here, so its URL (often with a token) never
        # enters a workflow's history.
        return await _post_notification(ctx, params, ctx.services.settings.notify_webhook)
    if not params.webhook:
        return {"sent": False, "logged": True}
    if isinstance(params.webhook, WebhookCredentialRef):
        name = params.webhook.credential
        url = _webhook_url(ctx, name)
        try:
            return await _post_notification(ctx, params, url)
        except ProviderError as err:
            # The URL's path is where Slack-style webhooks keep their token; the name says which.
            path = httpx.URL(url).path
            message = err.message.replace(path, "") if len(path) > 1 else err.message
            err.message = f"{message} (webhook {name!r})"
            err.args = (err.message,)
            raise
    return await _post_notification(ctx, params, params.webhook)


def _with_reauth_link(ctx: ActionContext, params: NotifyInput) -> NotifyInput:
    """An `awaiting_reauth` notification with the re-authorization link added (when links are set up).

    The link is made here, not in the workflow: it is signed with the deployment's key, which no
    workflow may hold. It carries names only (provider, account, run), so the log line and the
    webhook body may hold it; the activity's input in history does not.
    """
    data = params.data
    if data.get("event") != "awaiting_reauth" or not isinstance(data.get("account"), str):
        return params
    link = reauth_link_for(
        ctx.services.credentials,
        ctx.services.settings.public_url,
        str(data.get("provider", "")),
        data["account"],
        params.workflow_id,
    )
    if link is None:
        return params
    return params.model_copy(
        update={
            "message": f"{params.message} Or open this link to re-authorize it: {link}",
            "data": {**data, "reauth_url": link},
        }
    )


def _with_approval_link(ctx: ActionContext, params: NotifyInput) -> NotifyInput:
    """An `awaiting_approval` notification with the approval's link, or how to decide from a shell.

    Made here for the reason the re-authorization link is: it is signed with a key no workflow
    holds. The link expires when the run stops waiting (`expires_at`); it decides one approval of
    one run, once, so it may be in the log line and the webhook body, never in history.
    """
    data = params.data
    approval_id = data.get("approval_id")
    if data.get("event") != "awaiting_approval" or not isinstance(approval_id, str):
        return params
    expires_at = data.get("expires_at")
    link = approval_link_for(
        ctx.services.credentials,
        ctx.services.settings.public_url,
        params.workflow_id,
        approval_id,
        float(expires_at) if isinstance(expires_at, int | float) else 0.0,
    )
    shell = f"tikflow approve {params.workflow_id} --approval '{approval_id}'"
    if link is None:
        return params.model_copy(
            update={"message": f"{params.message} Decide with: {shell} (or tikflow reject …)"}
        )
    return params.model_copy(
        update={
            "message": f"{params.message} Approve or reject: {link}",
            "data": {**data, "approval_url": link},
        }
    )


def _webhook_url(ctx: ActionContext, name: str) -> str:
    """The URL of the `webhook` credential `name`, checked before it is used."""
    url = ctx.services.credentials.get("webhook", name, required=("url",))["url"]
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise CredentialsRejected(
            f"the webhook credential {name!r} is not an http(s) URL; set it again with "
            f"`tikflow credentials set webhook {name} url=…`",
            provider="webhook",
            account=name,
        )
    return url


async def _post_notification(ctx: ActionContext, params: NotifyInput, url: str) -> dict[str, Any]:
    body = {
        "message": params.message,
        "recipe": params.recipe,
        "workflow_id": params.workflow_id,
        **params.data,
    }
    key = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:32]
    reply = await send(
        ctx,
        "http",
        "POST",
        url,
        classify=lambda r, a: _classify_generic(r, a, []),
        json_body=body,
        headers={"Idempotency-Key": key},
        expect_json=False,
    )
    return {"sent": True, "status": reply.status, "logged": True}
