"""The ingress's link routes: `GET /reauth/<link>` and `GET /oauth/<provider>/callback`.

- `/reauth/<link>`: a re-authorization link from a notification. Checked (signature, expiry,
  purpose), then answered with a 302 to the provider's consent page carrying a fresh single-use
  state for the same provider, account and run.
- `/approve/<link>`: an approval's page (GET) and decision (POST), `tikflow.authorize.approvals`.
- `/oauth/<provider>/callback`: where the provider sends the person back. The state is checked and
  spent, the credential stored under the account the state names, the waiting runs woken
  (`tikflow.authorize.complete`), and a small page says what happened.

Every refusal is a page with one line and a 4xx status, logged as one line with its reason code;
neither the page, the log nor Temporal ever sees a key, code or token (the log never holds the
query string).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from activities.credentials import CredentialStore
from activities.links import LinkRefused, LinkSigner, signing_key
from activities.registry import Services
from activities.settings import Settings
from tikflow.authorize.approvals import decide
from tikflow.authorize.claims import TemporalClaims
from tikflow.authorize.complete import check_state, complete, wake_waiting
from tikflow.authorize.flows import ConnectError, app_credential, authorization_url, redirect_uri
from tikflow.authorize.pages import page

__all__ = ["LinkRoutes"]

log = structlog.get_logger("tikflow.ingress")

_REAUTH = re.compile(r"/reauth/([A-Za-z0-9_.-]{1,2048})")
_APPROVE = re.compile(r"/approve/([A-Za-z0-9_.-]{1,2048})")
_CALLBACK = re.compile(r"/oauth/([a-z]{1,32})/callback")
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


class LinkRoutes:
    """The two link routes of the ingress.

    Args:
        credentials: The credential store (the signing key, the app's fields; results go there).
        settings: Provider base URLs (consent pages and token endpoints) and the public URL.
        client: Gives the Temporal client (spent states, waking runs).
        task_queue: The workers' base task queue (the used-state records run there).
        clock: Seconds since the epoch (link expiry).
    """

    def __init__(
        self,
        *,
        credentials: CredentialStore,
        settings: Settings,
        client: Callable[[], Awaitable[Any]],
        task_queue: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._settings = settings
        self._client = client
        self._claims = TemporalClaims(client, task_queue)
        self._clock = clock

    @staticmethod
    def serves(path: str) -> bool:
        """Whether `path` is one of the link routes."""
        return path.startswith(("/reauth/", "/oauth/", "/approve/"))

    async def handle(self, request: Request) -> Response:
        """Answer a link route (GET only)."""
        path = request.url.path
        kind = path.split("/")[1] if path.count("/") >= 2 else "-"
        try:
            approval = _APPROVE.fullmatch(path)
            if request.method not in ("GET", "HEAD") and not (approval and request.method == "POST"):
                return page("Not allowed", ["Open this link in a browser."], ok=False, status=405)
            signer = self._signer()
            if signer is None:
                raise ConnectError("links are not set up on this server (no link signing key)")
            if approval is not None:
                return await decide(
                    signer, approval.group(1), request, client=await self._client(), spender=self._claims
                )
            if (found := _REAUTH.fullmatch(path)) is not None:
                return self._reauth(signer, found.group(1), request)
            if (found := _CALLBACK.fullmatch(path)) is not None:
                return await self._callback(signer, found.group(1), request)
            raise LinkRefused("unknown", "there is no such link")
        except LinkRefused as exc:
            log.warning("link refused", route=kind, reason=exc.reason)
            status = 404 if exc.reason == "unknown" else 400
            title = "Not decided" if kind == "approve" else "Not connected"
            return page(title, [exc.message], ok=False, status=status)
        except ConnectError as exc:
            log.error("link not served", route=kind, reason="not_configured")
            return page("Not connected", [str(exc)], ok=False, status=500)

    def _signer(self) -> LinkSigner | None:
        key = signing_key(self._credentials)
        return LinkSigner(key, clock=self._clock) if key else None

    def _base(self, request: Request) -> str:
        return self._settings.public_url or str(request.base_url).rstrip("/")

    def _reauth(self, signer: LinkSigner, token: str, request: Request) -> Response:
        claim = signer.check(token, "reauth")
        app = app_credential(self._credentials, claim.provider, claim.account)
        state = signer.issue("state", claim.provider, claim.account, workflow_id=claim.workflow_id)
        url = authorization_url(
            self._settings,
            claim.provider,
            app,
            redirect=redirect_uri(self._base(request), claim.provider),
            state=state,
        )
        log.info("link opened", route="reauth", provider=claim.provider, account=claim.account)
        return RedirectResponse(url, status_code=302, headers=_NO_STORE)

    async def _callback(self, signer: LinkSigner, provider: str, request: Request) -> Response:
        query = {k: v for k, v in request.query_params.items()}
        claim = check_state(signer, query, provider, "ingress")
        app = app_credential(self._credentials, claim.provider, claim.account)
        services = self._services_for_exchange()
        try:
            await complete(
                services,
                claim,
                query,
                app=app,
                redirect=redirect_uri(self._base(request), provider),
                spender=self._claims,
            )
        finally:
            await services.http.aclose()
        lines = [f"The {provider} account {claim.account!r} is connected."]
        try:
            done = await wake_waiting(await self._client(), provider, claim.account, claim.workflow_id)
        except Exception as exc:  # the credential is stored; a run can still be resumed by hand
            log.warning("link stored, runs not woken", provider=provider, account=claim.account)
            lines.append(f"Waiting runs were not resumed ({type(exc).__name__}): run `tikflow reauth`.")
        else:
            if done.resumed:
                lines.append(f"{len(done.resumed)} waiting run(s) resumed.")
            if done.note:
                lines.append(f"Some runs may still wait: {done.note}.")
        log.info("link completed", route="callback", provider=provider, account=claim.account)
        lines.append("You can close this page.")
        return page("Connected", lines, ok=True)

    def _services_for_exchange(self) -> Services:
        # A client per callback: a person's click is rare, and nothing is left open between them.
        from activities.http import make_http_client
        from activities.ratelimit import RateLimiter

        return Services(
            http=make_http_client(self._settings),
            credentials=self._credentials,
            settings=self._settings,
            limiter=RateLimiter(),
        )
