"""The provider emulator as the tests and benchmarks drive it: its admin API, served in a thread,
and worker services and credentials pointed at it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from activities.credentials import CredentialStore
from activities.http import make_http_client
from activities.ratelimit import RateLimiter
from activities.registry import Services
from activities.settings import Settings
from tikflow.devstack import sandbox_credentials, store_credentials
from tikflow.emulator.app import Emulator, create_app
from tikflow.emulator.server import provider_base_urls, running_emulator
from tikflow.emulator.state import EmulatorConfig


def _answer(response: httpx.Response) -> Any:
    assert response.status_code == 200, f"{response.request.url.path}: {response.status_code} {response.text}"
    return response.json()


class AdminClient:
    """The admin API (`/_admin/...`) of an emulator served at `base_url`, called synchronously."""

    def __init__(self, base_url: str, timeout: float = 30) -> None:
        self.base_url = base_url
        self.timeout = timeout

    def admin(self, action: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
        """`METHOD /_admin/{action}` with `body`; the JSON answer (anything but 200 fails)."""
        url = f"{self.base_url}/_admin/{action}"
        return _answer(httpx.request(method, url, json=body, timeout=self.timeout))

    def state(self) -> dict[str, Any]:
        """The emulator's whole world."""
        return dict(self.admin("state", method="GET"))


class AsyncAdminClient:
    """The admin API of the emulator `http` talks to (its base URL is the emulator's)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def admin(self, action: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
        """`METHOD /_admin/{action}` with `body`; the JSON answer (anything but 200 fails)."""
        return _answer(await self.http.request(method, f"/_admin/{action}", json=body))

    async def state(self) -> dict[str, Any]:
        """The emulator's whole world."""
        return dict(await self.admin("state", method="GET"))


@contextlib.contextmanager
def serve_emulator(config: EmulatorConfig | None = None) -> Iterator[tuple[str, Emulator]]:
    """The emulator app in a uvicorn thread on a free loopback port; yields (base URL, its state)."""
    app = create_app(config or EmulatorConfig())
    with running_emulator(app=app) as url:
        yield url, app.state.emulator


def emulator_services(
    base_url: str,
    credentials: Path | CredentialStore,
    *,
    http: httpx.AsyncClient | None = None,
    limiter: RateLimiter | None = None,
    **base_urls: str,
) -> Services:
    """A worker's services with every provider at the emulator at `base_url` (some moved to `base_urls`).

    `credentials` is the store (or the file of one, read without the environment); `http` replaces
    the worker's pooled client.
    """
    settings = Settings(base_urls={**provider_base_urls(base_url), **base_urls})
    store = credentials if isinstance(credentials, CredentialStore) else CredentialStore(credentials, env={})
    return Services(
        http=http or make_http_client(settings),
        credentials=store,
        settings=settings,
        limiter=limiter or RateLimiter(),
    )


def store_emulator_credentials(store: CredentialStore, base_url: str) -> CredentialStore:
    """Write the demo credentials of the emulator at `base_url` into `store` (fresh TikTok tokens)."""
    store_credentials(store, sandbox_credentials(base_url))
    return store
