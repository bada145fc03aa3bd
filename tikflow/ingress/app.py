"""The ingress as an ASGI app: verify, parse, hand to Temporal, then answer.

Routes:
- `POST /events/tiktok[/<credential>]`: TikTok's webhook callback (the credential of provider
  `tiktok` whose `client_secret` signs it; default `main`). Each event goes to the mailbox of its
  correlation key: the `publish_id` of posting events, else `user:<user_openid>`, else
  `app:<client_key>`.
- `POST /hooks/<route>`: a generic route whose listener runs in Temporal (`register_route`); its
  memo says `standard` or `token` and names the credential (kind `ingress`, field `signing_secret`
  or `token`).
- `GET /healthz`, `GET /metrics`.
- `GET /reauth/<link>`, `GET /oauth/<provider>/callback`: links out (`tikflow.authorize.routes`).

What is checked, in order, each failure answered with one status and one reason (the same reason in
one log line and in the metrics): route (404), method (405), duplicated or non-printable security
headers (400), content type `application/json` (415), body size (413), signature or token (400/401),
timestamp window (401), JSON (400), TikTok's `content` is JSON text (400), TikTok's `client_key` is
this app's (403). No signature, token, secret or secret header reaches a log line, a response or
Temporal: events keep the body and the headers whose names do not look secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from activities.credentials import INGRESS_FIELDS, INGRESS_KIND, CredentialStore
from activities.errors import CredentialsRejected
from activities.settings import Settings
from tikflow.authorize.routes import LinkRoutes
from tikflow.ingress.delivery import Delivery, RouteGone, TemporalUnavailable
from tikflow.ingress.metrics import IngressMetrics
from tikflow.ingress.verify import Rejected, check_window, verify_standard, verify_tiktok, verify_token
from workflows.events import Event

__all__ = ["CREDENTIAL_FIELDS", "CREDENTIAL_KIND", "IngressConfig", "create_app"]

#: The credential kind generic routes read (`tikflow credentials set ingress NAME token=…`).
CREDENTIAL_KIND = INGRESS_KIND
#: The field of an `ingress` credential each auth kind reads.
CREDENTIAL_FIELDS = INGRESS_FIELDS

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SECURITY_HEADERS = (
    "content-type",
    "content-length",
    "tiktok-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "authorization",
)
# Header names that may carry a secret are never kept in an event (nor anything about them).
_SECRET_NAME = re.compile(r"signature|token|secret|auth|cookie|key|session|password|credential", re.I)
_DROPPED = {"content-length", "connection", "transfer-encoding", "host", "expect", "keep-alive"}
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_MAX_KEPT_HEADERS = 32
_MAX_HEADER_VALUE = 1024

log = structlog.get_logger("tikflow.ingress")


@dataclass
class IngressConfig:
    """The ingress's settings.

    Attributes:
        max_body: Largest body accepted, in bytes (413 above).
        window_s: Largest distance between a signature's timestamp and now, in seconds.
        task_queue: Where mailboxes started by an event run.
        rpc_timeout_s: Longest wait for Temporal before answering 503.
        route_cache_s: How long a route lookup is trusted.
    """

    max_body: int = 256 * 1024
    window_s: float = 300.0
    task_queue: str = "tikflow"
    rpc_timeout_s: float = 5.0
    route_cache_s: float = 5.0
    credentials: CredentialStore | None = None
    clock: Callable[[], float] = field(default=time.time)
    #: Provider base URLs (consent pages, token endpoints) and the public URL links are built on.
    settings: Settings | None = None


@dataclass(frozen=True)
class _Verified:
    """What one request turned into: where it goes and the event to keep."""

    source: str
    event: Event
    route: str | None = None
    provider_key: str | None = None


def create_app(config: IngressConfig | None = None, *, connect: Callable[[], Any] | None = None) -> Starlette:
    """The ingress app.

    Args:
        config: Settings (defaults: see `IngressConfig`).
        connect: Makes the Temporal client (default: `tikflow.connect.connect(lazy=True)`, from the
            `TEMPORAL_*` environment).
    """
    config = config or IngressConfig()
    if connect is None:
        from tikflow.connect import connect as connect_from_env

        async def connect_lazily() -> Any:
            return await connect_from_env(lazy=True)

        connect = connect_lazily
    credentials = config.credentials or CredentialStore()
    delivery = Delivery(
        connect,
        task_queue=config.task_queue,
        rpc_timeout=config.rpc_timeout_s,
        route_ttl=config.route_cache_s,
    )
    metrics = IngressMetrics()
    links = LinkRoutes(
        credentials=credentials,
        settings=config.settings or Settings(),
        client=delivery.client,
        task_queue=config.task_queue,
        clock=config.clock,
    )
    ingress = _Ingress(config, credentials, delivery, metrics, links)
    app = Starlette()
    # Every request reaches `handle`, which routes by itself: so that an unknown path or a wrong
    # method is refused with a reason, a log line and a count like every other rejection.
    app.router.default = ingress.asgi
    app.state.metrics = metrics
    app.state.delivery = delivery
    return app


class _Ingress:
    def __init__(
        self,
        config: IngressConfig,
        credentials: CredentialStore,
        delivery: Delivery,
        metrics: IngressMetrics,
        links: LinkRoutes,
    ) -> None:
        self.links = links
        self.config = config
        self.credentials = credentials
        self.delivery = delivery
        self.metrics = metrics

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        label = "-"
        try:
            if path == "/healthz":
                self._method(request, "GET")
                return JSONResponse({"status": "ok"})
            if path == "/metrics":
                self._method(request, "GET")
                return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")
            if LinkRoutes.serves(path):
                return await self.links.handle(request)
            kind, name = _match(path)
            label = f"{kind}/{name}"
            self._method(request, "POST")
            _check_headers(request)
            _check_content_type(request.headers.get("content-type"))
            self._check_length(request.headers.get("content-length"))
            if kind == "hooks":
                return await self._generic(request, name, label)
            return await self._tiktok(request, name, label)
        except Rejected as exc:
            return self._reject(exc, label, request)
        except TemporalUnavailable as exc:
            return self._reject(
                Rejected(503, "temporal_unavailable", f"event not taken, retry later ({exc})"), label, request
            )

    def _method(self, request: Request, allowed: str) -> None:
        if request.method != allowed and not (allowed == "GET" and request.method == "HEAD"):
            raise Rejected(405, "method_not_allowed", f"use {allowed}")

    def _check_length(self, value: str | None) -> None:
        if value is None:
            return
        if not value.isdigit():
            raise Rejected(400, "bad_header", "Content-Length is not a number")
        if int(value) > self.config.max_body:
            raise Rejected(413, "body_too_large", f"body larger than {self.config.max_body} bytes")

    async def _body(self, request: Request) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.config.max_body:
                raise Rejected(413, "body_too_large", f"body larger than {self.config.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _secret(self, provider: str, account: str, field_name: str) -> str:
        try:
            return self.credentials.get(provider, account, required=(field_name,))[field_name]
        except CredentialsRejected:
            # Our configuration, not the sender's fault: a 5xx, so the sender retries once it is fixed.
            raise Rejected(
                500, "credential_missing", "the ingress is not configured for this route"
            ) from None

    async def _generic(self, request: Request, name: str, label: str) -> Response:
        route = await self.delivery.route(name)
        if route is None or (route.auth not in CREDENTIAL_FIELDS and route.auth != "tiktok"):
            raise Rejected(404, "unknown_route", "no such route")
        body = await self._body(request)
        headers = request.headers
        now = self.config.clock()
        if route.auth == "tiktok":
            # A recipe's `trigger: webhook` with `auth: tiktok`: signed like TikTok's own callback,
            # with the client_secret of the `tiktok` credential the route names.
            secret = self._secret("tiktok", route.credential, "client_secret")
            verify_tiktok(
                headers.get("tiktok-signature"), body, secret, now=now, window_s=self.config.window_s
            )
        else:
            secret = self._secret(CREDENTIAL_KIND, route.credential, CREDENTIAL_FIELDS[route.auth])
        if route.auth == "standard":
            verify_standard(
                headers.get("webhook-id"),
                headers.get("webhook-timestamp"),
                headers.get("webhook-signature"),
                body,
                secret,
                now=now,
                window_s=self.config.window_s,
            )
        elif route.auth == "token":
            verify_token(headers.get("authorization"), secret)
            stamp = headers.get("webhook-timestamp")
            if stamp is not None:
                if not stamp.isdigit() or len(stamp) > 12:
                    raise Rejected(400, "bad_header", "webhook-timestamp is not unix seconds")
                check_window(int(stamp), now, self.config.window_s)
        payload = _json(body)
        # The sender's delivery id when it gives one (Standard Webhooks always does), else the body's digest.
        event_id = headers.get("webhook-id") or headers.get("idempotency-key") or _sha256(body)
        if not _PRINTABLE.fullmatch(event_id) or len(event_id) > 256:
            raise Rejected(400, "bad_header", "delivery id is not printable ASCII")
        kind = ""
        if route.auth == "tiktok" and isinstance(payload, dict) and isinstance(payload.get("content"), str):
            # As on /events/tiktok: `content` decoded (left as text when it is not JSON), `type` set.
            with contextlib.suppress(ValueError):
                payload = {**payload, "content": json.loads(payload["content"])}
            named = payload.get("event")
            kind = named if isinstance(named, str) else ""
        event = Event(
            id=event_id,
            source=name,
            type=kind,
            received_at=_now_iso(now),
            headers=_kept(headers),
            body=payload,
        )
        return await self._deliver(_Verified(source=name, event=event, route=name), label, request)

    async def _tiktok(self, request: Request, account: str, label: str) -> Response:
        try:
            credential = self.credentials.get("tiktok", account, required=("client_secret",))["client_secret"]
        except CredentialsRejected:
            # The TikTok app is named in the path: no such credential, no such route.
            raise Rejected(404, "unknown_route", "no such route") from None
        body = await self._body(request)
        verify_tiktok(
            request.headers.get("tiktok-signature"),
            body,
            credential,
            now=self.config.clock(),
            window_s=self.config.window_s,
        )
        envelope = _json(body)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("event"), str):
            raise Rejected(400, "invalid_event", "body is not a TikTok event (client_key, event, content)")
        raw_content = envelope.get("content", "")
        try:
            content = json.loads(raw_content) if isinstance(raw_content, str) else None
        except ValueError:
            content = None
        if not isinstance(content, dict):
            raise Rejected(400, "invalid_content", "content is not JSON text holding an object")
        app_key = self._tiktok_client_key(account)
        if app_key is not None and envelope.get("client_key") != app_key:
            raise Rejected(403, "wrong_app", "client_key is not this app's")
        key = _tiktok_key(envelope, content)
        # TikTok sends no delivery id: a redelivery repeats the event's own fields, so they are the id.
        event_id = _sha256(
            json.dumps(
                [envelope.get(k) for k in ("client_key", "event", "create_time", "user_openid", "content")],
                separators=(",", ":"),
            ).encode("utf-8")
        )
        event = Event(
            id=event_id,
            source="tiktok",
            type=envelope["event"],
            key=key,
            received_at=_now_iso(self.config.clock()),
            headers=_kept(request.headers),
            body={**envelope, "content": content},
        )
        if event.type == "authorization.removed":
            # Runs know their accounts by name, not by open_id: the event also goes to the
            # `account:<name>` mailbox of each TikTok credential of that user (runs using the
            # account subscribe to it). Before the main delivery, so a 503 retries them all.
            for name in self._tiktok_accounts_of(envelope.get("user_openid")):
                await self.delivery.to_mailbox(
                    "tiktok", f"account:{name}", event.model_copy(update={"key": f"account:{name}"})
                )
        return await self._deliver(_Verified(source="tiktok", event=event, provider_key=key), label, request)

    def _tiktok_accounts_of(self, open_id: Any) -> list[str]:
        """Names of the stored TikTok credentials whose `open_id` is `open_id`."""
        if not isinstance(open_id, str) or not open_id:
            return []
        names = []
        for info in self.credentials.list():
            if info.provider != "tiktok" or "open_id" not in info.fields:
                continue
            try:
                if self.credentials.get("tiktok", info.account).get("open_id") == open_id:
                    names.append(info.account)
            except CredentialsRejected:
                continue
        return names

    def _tiktok_client_key(self, account: str) -> str | None:
        try:
            return self.credentials.get("tiktok", account).get("client_key")
        except CredentialsRejected:
            return None

    async def _deliver(self, verified: _Verified, label: str, request: Request) -> Response:
        from workflows.events import mailbox_id, route_workflow_id

        event = verified.event
        if verified.route is not None:
            target = route_workflow_id(verified.route)
        else:
            target = mailbox_id("tiktok", verified.provider_key or "")
        if self.delivery.seen(target, event.id):
            self.metrics.duplicates.labels(verified.source).inc()
            log.info("ingress duplicate", route=label, event_type=event.type or None)
            return JSONResponse({"status": "duplicate"})
        try:
            if verified.route is not None:
                await self.delivery.to_route(verified.route, event)
            else:
                await self.delivery.to_mailbox("tiktok", verified.provider_key or "", event)
        except RouteGone:
            raise Rejected(404, "unknown_route", "no such route") from None
        self.metrics.accepted.labels(verified.source).inc()
        log.info("ingress accepted", route=label, event_type=event.type or None)
        return JSONResponse({"status": "accepted"})

    def _reject(self, exc: Rejected, label: str, request: Request) -> Response:
        self.metrics.rejections.labels(exc.reason).inc()
        log.warning(
            "ingress rejected",
            route=label,
            method=_printable(request.method, 16),
            status=exc.status,
            reason=exc.reason,
        )
        headers = {"Allow": "GET" if request.url.path in ("/healthz", "/metrics") else "POST"}
        if exc.status == 503:
            headers["Retry-After"] = "5"
        return JSONResponse(
            {"error": exc.reason, "detail": exc.detail},
            status_code=exc.status,
            headers=headers if exc.status in (405, 503) else None,
        )


def _match(path: str) -> tuple[str, str]:
    parts = path.split("/")
    if len(parts) == 3 and parts[1] == "hooks" and _NAME.fullmatch(parts[2]):
        return "hooks", parts[2]
    if parts[1:3] == ["events", "tiktok"]:
        if len(parts) == 3:
            return "tiktok", "main"
        if len(parts) == 4 and _NAME.fullmatch(parts[3]):
            return "tiktok", parts[3]
    raise Rejected(404, "unknown_route", "no such route")


def _check_headers(request: Request) -> None:
    # A second copy of a header the checks read is how a proxy and the ingress are made to see two
    # different requests (header smuggling): refused outright, as are unprintable values.
    for name in _SECURITY_HEADERS:
        values = request.headers.getlist(name)
        if len(values) > 1:
            raise Rejected(400, "duplicate_header", f"{name} given more than once")
        if values and not _PRINTABLE.fullmatch(values[0]):
            raise Rejected(400, "bad_header", f"{name} holds non-printable characters")


def _check_content_type(value: str | None) -> None:
    media, _, params = (value or "").partition(";")
    if media.strip().lower() != "application/json":
        raise Rejected(415, "unsupported_content_type", "Content-Type must be application/json")
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise Rejected(415, "unsupported_content_type", "JSON must be UTF-8")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "invalid_json", "body is not valid UTF-8 JSON") from None


def _tiktok_key(envelope: Mapping[str, Any], content: Mapping[str, Any]) -> str:
    publish_id = content.get("publish_id")
    if isinstance(publish_id, str) and publish_id:
        return publish_id
    user = envelope.get("user_openid")
    if isinstance(user, str) and user:
        return f"user:{user}"
    return f"app:{envelope.get('client_key')}"


def _kept(headers: Mapping[str, str]) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name, value in headers.items():
        name = name.lower()
        if name in _DROPPED or _SECRET_NAME.search(name) or len(kept) >= _MAX_KEPT_HEADERS:
            continue
        kept[name] = value[:_MAX_HEADER_VALUE]
    return kept


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).isoformat()


def _printable(text: str, size: int) -> str:
    return text[:size] if _PRINTABLE.fullmatch(text[:size]) else "?"
