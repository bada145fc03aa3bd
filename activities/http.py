"""The shared HTTP boundary: one pooled client per worker, and the one place raw failures are mapped.

Every provider module calls `send()`. It spaces the call through the rate-limit tracker, performs
it, turns transport failures and unreadable bodies into `ProviderUnavailable`, feeds the response's
rate-limit headers back to the tracker, and lets the provider's `classify` function turn an error
body into the right member of the error tree (see `activities.errors`). Nothing above this module
ever sees an `httpx` exception.

Garbage is `ProviderUnavailable` too, whatever its shape: a body that is not JSON (HTML error
pages, truncated JSON, `NaN`), an empty or oversized body, and a success that is not the JSON
object every provider answers with. Inside that object, providers read fields through `listed`,
so a list that arrives as something else is a `malformed answer`, never a `TypeError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from activities.errors import ProviderError, ProviderUnavailable, RateLimited

if TYPE_CHECKING:
    from activities.registry import ActionContext
    from activities.settings import Settings

__all__ = ["MAX_BODY_BYTES", "Classifier", "Reply", "listed", "make_http_client", "malformed", "send"]

#: A provider answer bigger than this is treated as garbage, not parsed.
MAX_BODY_BYTES = 20 * 1024 * 1024


class Reply:
    """A decoded provider answer.

    Attributes:
        status: HTTP status code.
        body: The decoded JSON body (None for an empty body).
        headers: Response headers.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: Any, headers: httpx.Headers) -> None:
        self.status = status
        self.body = body
        self.headers = headers


#: Turns a decoded answer into the provider's error, or None when the answer is a success.
Classifier = Callable[[Reply, str], ProviderError | None]


def make_http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The worker's single pooled client (HTTP/1.1 keep-alive pool, timeouts on every phase)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout_s),
        limits=httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        ),
        transport=transport,
        follow_redirects=False,
        headers={"User-Agent": "tikflow/0.1"},
    )


async def send(
    ctx: ActionContext,
    provider: str,
    method: str,
    url: str,
    *,
    classify: Classifier,
    params: Mapping[str, Any] | None = None,
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    expect_json: bool = True,
) -> Reply:
    """Perform one provider request and return its decoded answer, or raise a `ProviderError`.

    Args:
        ctx: The action invocation (its account keys the rate-limit tracker).
        provider: Provider key, for errors and rate limits.
        method: HTTP method.
        url: Absolute URL.
        classify: Provider-specific mapping of an answer to an error (None = success).
        params: Query parameters (None values dropped).
        json_body: JSON body.
        form: Form-encoded body.
        content: Raw body (uploads).
        headers: Extra headers (auth included; never logged).
        expect_json: Whether a success must carry a JSON object (every provider API answers one).
    """
    limiter = ctx.services.limiter
    await limiter.acquire(provider, ctx.account, local=ctx.local)
    query = {k: v for k, v in (params or {}).items() if v is not None}
    http = ctx.services.http
    try:
        request = http.build_request(
            method,
            url,
            params=query or None,
            json=json_body,
            data=form,
            content=content,
            headers=dict(headers or {}),
        )
        response = await http.send(request, stream=True)
        try:
            raw = await _read_bounded(response, provider, ctx.account, method, url)
        finally:
            await response.aclose()
    except httpx.TimeoutException as exc:
        raise ProviderUnavailable(
            f"{method} {_target(url, provider)} timed out ({type(exc).__name__})",
            provider=provider,
            account=ctx.account,
            outcome_unknown=not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout),
        ) from None
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(
            f"{method} {_target(url, provider)} failed: {type(exc).__name__}{_reason(exc)}",
            provider=provider,
            account=ctx.account,
            # A refused connection never carried the request; anything later may have.
            outcome_unknown=not isinstance(exc, httpx.ConnectError),
        ) from None
    limiter.observe(provider, ctx.account, response.headers, response.status_code)
    body = _decode(response, raw, provider, ctx.account, method, url, expect_json)
    status = response.status_code
    if expect_json and status < 400 and status != 204 and not isinstance(body, dict):
        # No provider answers a success with anything but an object, nor carries an error in one.
        raise malformed(
            provider,
            f"{method} {_path(url)} answered {_json_kind(body)}, not an object",
            account=ctx.account,
            status=status,
        )
    reply = Reply(status, body, response.headers)
    error = classify(reply, ctx.account)
    if error is not None:
        error.account = ctx.account
        if isinstance(error, RateLimited):
            limiter.blocked(provider, ctx.account, error.retry_after)
        raise error
    if response.status_code >= 400:
        # A classifier that let an error status through is a bug; never call it a success.
        raise ProviderUnavailable(
            f"{method} {_path(url)} answered HTTP {response.status_code}",
            provider=provider,
            status=response.status_code,
            account=ctx.account,
        )
    return reply


def malformed(
    provider: str, detail: str, *, account: str | None = None, status: int | None = None
) -> ProviderUnavailable:
    """The error for an answer of the wrong shape: retryable, like any other provider garbage.

    Unless `status` says the provider refused, it may have acted on the request first
    (`outcome_unknown`).
    """
    return ProviderUnavailable(
        f"malformed answer: {detail}",
        provider=provider,
        status=status,
        account=account,
        outcome_unknown=status is None or status < 400,
    )


def listed(value: Any, what: str, provider: str, account: str | None = None) -> list[Any]:
    """`value` as a list: absent (None) is empty; anything but a list is a malformed answer.

    Args:
        value: The field as decoded.
        what: The field's name in the answer, for the message (`data.videos`).
        provider: Provider key, for the error.
        account: Credential name, for the error.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise malformed(provider, f"`{what}` is {_json_kind(value)}, not a list", account=account)
    return value


def _json_kind(value: Any) -> str:
    """What a decoded JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _path(url: str) -> str:
    return httpx.URL(url).path


def _target(url: str, provider: str) -> str:
    """Where a request that got no answer went: host, port and path, never a secret.

    The query (tokens travel there) and any `user:password@` are left out. So is the path of a
    URL a recipe gave (`http.request`, notification webhooks): a webhook's path is often its
    secret (`/services/T…/B…/token`), and the host is what an unreachable call is about.
    """
    parsed = httpx.URL(url)
    host = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
    return host if provider == "http" else f"{host}{parsed.path}"


def _reason(exc: httpx.HTTPError) -> str:
    """The transport's own words (`[Errno 111] Connection refused`), short and without a URL."""
    text = str(exc).strip()
    if not text or "://" in text:
        return ""
    return f" ({text[:120]})"


async def _read_bounded(
    response: httpx.Response, provider: str, account: str, method: str, url: str
) -> bytes:
    """The body, read chunk by chunk and abandoned as soon as it passes `MAX_BODY_BYTES`."""

    def too_large(size: str) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"{method} {_path(url)} answered a body of {size}, over the {MAX_BODY_BYTES} byte limit",
            provider=provider,
            status=response.status_code,
            account=account,
        )

    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large(f"{declared} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large("more bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(
    response: httpx.Response,
    raw: bytes,
    provider: str,
    account: str,
    method: str,
    url: str,
    expect_json: bool,
) -> Any:
    if not raw.strip():
        if expect_json and response.status_code < 300 and response.status_code != 204:
            raise ProviderUnavailable(
                f"{method} {_path(url)} answered an empty body",
                provider=provider,
                status=response.status_code,
                account=account,
                outcome_unknown=True,  # a success status: the request may have been acted on
            )
        return None
    try:
        return json.loads(raw, parse_constant=_not_json)
    except ValueError:
        if response.status_code >= 500 or expect_json:
            kind = response.headers.get("content-type", "unknown content type").split(";")[0]
            raise ProviderUnavailable(
                f"{method} {_path(url)} answered HTTP {response.status_code} with a body that is "
                f"not JSON ({kind})",
                provider=provider,
                status=response.status_code,
                account=account,
                outcome_unknown=response.status_code < 400,
            ) from None
        return raw.decode("utf-8", "replace")


def _not_json(constant: str) -> Any:
    """`NaN` and `Infinity` are Python's extensions, not JSON: a body holding them is garbage."""
    raise ValueError(f"{constant} is not JSON")
