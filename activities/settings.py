"""Where each provider lives and how the HTTP layer behaves (from `activities.config.EngineConfig`).

The same variables point the engine at the real services (the defaults) or at the local sandbox
(`tikflow dev` sets them), so nothing else in the code knows the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DEFAULT_BASE_URLS", "PROVIDERS", "Settings"]

PROVIDERS = ("tikapi", "tiktok", "highlevel", "dumpling", "socialapi")

#: The real services' base URLs (from the providers' own docs and clients; see shared/reference).
DEFAULT_BASE_URLS: dict[str, str] = {
    "tikapi": "https://api.tikapi.io",
    "tiktok": "https://open.tiktokapis.com",
    "highlevel": "https://services.leadconnectorhq.com",
    "dumpling": "https://app.dumplingai.com",
    "socialapi": "https://api.social-api.ai/v1",
}


@dataclass(frozen=True)
class Settings:
    """Provider base URLs and HTTP tunables.

    Attributes:
        base_urls: Provider key → base URL without a trailing slash.
        http_timeout_s: Per-request timeout (connect, read, write, pool).
        max_connections: Size of the shared connection pool.
    """

    base_urls: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_BASE_URLS))
    http_timeout_s: float = 30.0
    max_connections: int = 100

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings `env` gives, as `activities.config.EngineConfig` parses them.

        An entry point builds the `EngineConfig` itself and calls its `settings()`.

        Raises:
            activities.config.ConfigError: A variable of the environment cannot be used.
        """
        from activities.config import EngineConfig

        return EngineConfig.from_env(env).settings()

    def base_url(self, provider: str) -> str:
        """The base URL for `provider`."""
        return self.base_urls[provider]
