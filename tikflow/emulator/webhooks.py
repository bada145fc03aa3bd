"""TikTok's webhooks, sent by the sandbox: signed events about publishes and authorizations.

With `EmulatorConfig.webhook_url` set, the sandbox POSTs what TikTok POSTs to an app's callback
URL (developers.tiktok.com/doc/webhooks-overview, /webhooks-events, /webhooks-verification):

- body `{"client_key", "event", "create_time", "user_openid", "content"}`, `content` a JSON *string*;
- header `TikTok-Signature: t=<unix seconds>,s=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with the
  app's client secret (the sandbox app `TIKTOK_CLIENT_KEY`), signed anew for every attempt;
- a delivery without a 2xx answer is retried after each of `webhook_retry_delays_s`, then dropped;
  `webhook_duplicates` delivers every event more than once, `webhook_out_of_order` sends the events
  of one change last first, `webhook_delay_s` holds each first attempt back.

Events: `post.publish.complete` (`publish_id`, `publish_type`), `post.publish.publicly_available`
(and `post_id`, for a public post), `post.publish.inbox_delivered`, `post.publish.failed` (and
`reason`), `post.publish.no_longer_publicaly_available` (TikTok's spelling; `POST
/_admin/take_down`), `video.upload.failed` (`share_id`: the publish id of a failed inbox upload,
chosen here) and `authorization.removed` (`reason`; `POST /_admin/deauthorize`, which revokes the
user's tokens first, as TikTok does). `GET /_admin/webhooks` lists every delivery and its attempts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from starlette.requests import Request

from tikflow.emulator.state import TIKTOK_CLIENT_KEY, TIKTOK_OPEN_ID, EmulatorConfig, Publish, World

__all__ = ["WebhookDelivery", "WebhookSender", "sender", "tiktok_signature"]

#: The most deliveries `GET /_admin/webhooks` remembers (the oldest go first).
MAX_RECORDS = 1000
_TIMEOUT_S = 10.0


def tiktok_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `TikTok-Signature` header value for `body` signed at `timestamp`."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"t={timestamp},s={mac.hexdigest()}"


@dataclass
class WebhookDelivery:
    """One event on its way to the callback URL, as `GET /_admin/webhooks` shows it.

    Attributes:
        id: Increasing number of the delivery.
        event: The event name.
        body: The exact JSON body sent (every attempt sends the same).
        copy: 0 for the first delivery of an event, 1… for its duplicates.
        attempts: Each attempt's HTTP status, or the name of the error that stopped it.
        delivered: Whether an attempt got a 2xx.
        gave_up: Whether the retries ran out without one.
    """

    id: int
    event: str
    body: str
    copy: int = 0
    attempts: list[int | str] = field(default_factory=list)
    delivered: bool = False
    gave_up: bool = False


def moderation_left_s(world: World, publish: Publish) -> float | None:
    """Seconds until a public post's id is handed out (0 once it is); None for a post never public.

    TikTok fills `publicaly_available_post_id` (and sends `post.publish.publicly_available`) only
    after moderation, `tiktok_moderation_s` after PUBLISH_COMPLETE here.
    """
    if publish.post_id is None or publish.privacy_level != "PUBLIC_TO_EVERYONE":
        return None
    due = (publish.completed_at or 0.0) + world.config.tiktok_moderation_s
    return max(0.0, due - world.now())


class WebhookSender:
    """Sends the sandbox app's webhook events to `config.webhook_url`, in tasks of the serving loop."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.deliveries: list[WebhookDelivery] = []
        self._sent: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._next_id = 0

    @property
    def enabled(self) -> bool:
        """Whether a callback URL is configured."""
        return bool(self.config.webhook_url)

    def clear(self) -> None:
        """Forget every delivery and stop those still retrying (on the sandbox's reset)."""
        for task in list(self._tasks):
            task.get_loop().call_soon_threadsafe(task.cancel)
        self._tasks.clear()
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()
        self.deliveries.clear()
        self._sent.clear()

    def snapshot(self) -> dict[str, Any]:
        """The callback URL and every delivery, as JSON."""
        return {"url": self.config.webhook_url, "deliveries": [asdict(d) for d in self.deliveries]}

    # -- what happened -----------------------------------------------------------------------

    def publish_progress(self, world: World, publish: Publish) -> list[str]:
        """Send the events `publish`'s current state calls for that were not sent yet.

        Safe to call on every change: each event of a publish goes out once (duplicates are the
        sender's own, `webhook_duplicates`). Returns the event names sent.
        """
        if not self.enabled:
            return []
        publish_type = "INBOX_SHARE" if publish.inbox else "DIRECT_PUBLISH"
        base = {"publish_id": publish.publish_id, "publish_type": publish_type}
        due: list[tuple[str, dict[str, Any]]] = []
        if publish.status == "PUBLISH_COMPLETE":
            due.append(("post.publish.complete", base))
            left = moderation_left_s(world, publish)
            if left == 0:
                due.append(("post.publish.publicly_available", {**base, "post_id": publish.post_id}))
            elif left is not None:
                # The id comes out of moderation later: look again then (a status fetch may too).
                timer = asyncio.get_running_loop().call_later(left, self.publish_progress, world, publish)
                self._timers.add(timer)
        elif publish.status == "SEND_TO_USER_INBOX":
            due.append(("post.publish.inbox_delivered", base))
        elif publish.status == "FAILED":
            due.append(("post.publish.failed", {**base, "reason": publish.fail_reason or "unknown"}))
            if publish.inbox and publish.source == "FILE_UPLOAD":
                due.append(("video.upload.failed", {"share_id": publish.publish_id}))
        sent = self._sent.setdefault(publish.publish_id, set())
        new = [(name, content) for name, content in due if name not in sent]
        sent.update(name for name, _ in new)
        self._send(world, publish.open_id, new)
        return [name for name, _ in new]

    def taken_down(self, world: World, publish: Publish) -> list[str]:
        """Send `post.publish.no_longer_publicaly_available` for a post that was public."""
        if not self.enabled or publish.post_id is None:
            return []
        content = {
            "publish_id": publish.publish_id,
            "publish_type": "DIRECT_PUBLISH",
            "post_id": publish.post_id,
        }
        name = "post.publish.no_longer_publicaly_available"
        self._send(world, publish.open_id, [(name, content)])
        return [name]

    def authorization_removed(
        self, world: World, open_id: str = TIKTOK_OPEN_ID, reason: int = 1
    ) -> list[str]:
        """Send `authorization.removed` for `open_id` (reason: TikTok's code, 1 = the user disconnected)."""
        if not self.enabled:
            return []
        self._send(world, open_id, [("authorization.removed", {"reason": reason})])
        return ["authorization.removed"]

    # -- delivery ----------------------------------------------------------------------------

    def _send(self, world: World, open_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        if not events:
            return
        create_time = int(world.now())
        bodies = [
            (
                name,
                json.dumps(
                    {
                        "client_key": TIKTOK_CLIENT_KEY,
                        "event": name,
                        "create_time": create_time,
                        "user_openid": open_id,
                        "content": json.dumps(content, separators=(",", ":")),
                    },
                    separators=(",", ":"),
                ),
            )
            for name, content in events
        ]
        if self.config.webhook_out_of_order:
            bodies.reverse()
        records = [
            self._record(name, body, copy)
            for copy in range(1 + self.config.webhook_duplicates)
            for name, body in bodies
        ]
        secret = world.tiktok_clients[TIKTOK_CLIENT_KEY]
        self._spawn(self._deliver_in_order(records, secret))

    def _record(self, event: str, body: str, copy: int) -> WebhookDelivery:
        self._next_id += 1
        record = WebhookDelivery(id=self._next_id, event=event, body=body, copy=copy)
        self.deliveries.append(record)
        del self.deliveries[:-MAX_RECORDS]
        return record

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        # Called from a request handler, so on the loop that serves the sandbox.
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_in_order(self, records: list[WebhookDelivery], secret: str) -> None:
        """First attempts one after the other, in the order chosen; retries each on its own."""
        if self.config.webhook_delay_s > 0:
            await asyncio.sleep(self.config.webhook_delay_s)
        async with httpx.AsyncClient(timeout=_TIMEOUT_S) as client:
            for record in records:
                if not await self._attempt(client, record, secret):
                    self._spawn(self._retry(record, secret))

    async def _retry(self, record: WebhookDelivery, secret: str) -> None:
        async with httpx.AsyncClient(timeout=_TIMEOUT_S) as client:
            for delay in self.config.webhook_retry_delays_s:
                await asyncio.sleep(delay)
                if await self._attempt(client, record, secret):
                    return
        record.gave_up = True

    async def _attempt(self, client: httpx.AsyncClient, record: WebhookDelivery, secret: str) -> bool:
        url = self.config.webhook_url
        if not url:
            record.attempts.append("no_callback_url")
            return False
        body = record.body.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            # Signed at the real moment of the attempt (the sandbox clock may be a test's): the
            # receiver judges the timestamp against its own clock.
            "TikTok-Signature": tiktok_signature(secret, int(time.time()), body),
        }
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            record.attempts.append(type(exc).__name__)
            return False
        record.attempts.append(response.status_code)
        record.delivered = 200 <= response.status_code < 300
        return record.delivered


def sender(request: Request) -> WebhookSender:
    """The webhook sender of the sandbox app serving `request`."""
    found = getattr(request.app.state, "webhooks", None)
    if not isinstance(found, WebhookSender):
        raise RuntimeError("the app has no webhook sender (make it with tikflow.emulator.app.create_app)")
    return found


def deauthorize(world: World, webhooks: WebhookSender, body: dict[str, Any]) -> dict[str, Any]:
    """`POST /_admin/deauthorize {"open_id"?, "reason"?}`: the user disconnects the app.

    Their access and refresh tokens stop working first (TikTok revokes them before it tells the
    app), then `authorization.removed` goes out.

    Raises:
        ValueError: An unknown field, an `open_id` that is not text, a `reason` not in 0-5.
    """
    unknown = sorted(set(body) - {"open_id", "reason"})
    if unknown:
        raise ValueError(f"deauthorize: unknown field {unknown[0]}")
    open_id, reason = body.get("open_id", TIKTOK_OPEN_ID), body.get("reason", 1)
    if not isinstance(open_id, str) or not open_id or len(open_id) > 200:
        raise ValueError("deauthorize: open_id must be a TikTok open_id")
    if not isinstance(reason, int) or isinstance(reason, bool) or not 0 <= reason <= 5:
        raise ValueError("deauthorize: reason must be TikTok's code, 0-5")
    revoked = 0
    for tokens in (world.tiktok_access, world.tiktok_refresh):
        for token in [t for t, (owner, _) in tokens.items() if owner == open_id]:
            del tokens[token]
            revoked += 1
    return {"revoked": revoked, "events": webhooks.authorization_removed(world, open_id, reason)}


def take_down(world: World, webhooks: WebhookSender, body: dict[str, Any]) -> dict[str, Any]:
    """`POST /_admin/take_down {"publish_id"}`: a public post stops being public (moderation).

    Raises:
        ValueError: No such publish, or its post is not public.
    """
    publish = world.publishes.get(str(body.get("publish_id", "")))
    if publish is None or publish.post_id is None or publish.privacy_level != "PUBLIC_TO_EVERYONE":
        raise ValueError("take_down: publish_id must name a publish whose post is public")
    publish.privacy_level = "SELF_ONLY"
    return {"events": webhooks.taken_down(world, publish)}
