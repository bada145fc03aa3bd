"""Where each provider lives and how the HTTP layer behaves (from `activities.config.EngineConfig`).

The same variables point the engine at the real services (the defaults) or at the local sandbox
(`tikflow dev` sets them), so nothing else in the code knows the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

__all__ = ["DEFAULT_BASE_URLS", "PROVIDERS", "Settings"]

if TYPE_CHECKING:
    #: The provider keys, in listing order (derived from the `Provider` declarations).
    PROVIDERS: tuple[str, ...]
    #: The real services' base URLs (each provider's `Provider.base_url`).
    DEFAULT_BASE_URLS: dict[str, str]


def __getattr__(name: str) -> Any:
    """`PROVIDERS` and `DEFAULT_BASE_URLS`, derived from the declarations on first use.

    Lazy because the provider packages import the modules that import this one.
    """
    if name == "PROVIDERS":
        from activities.provider import providers

        value: Any = tuple(p.name for p in providers())
    elif name == "DEFAULT_BASE_URLS":
        value = _default_base_urls()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def _default_base_urls() -> dict[str, str]:
    from activities.provider import providers

    return {p.name: p.base_url for p in providers()}


@dataclass(frozen=True)
class Settings:
    """Provider base URLs and HTTP tunables.

    Attributes:
        base_urls: Provider key → base URL without a trailing slash.
        http_timeout_s: Per-request timeout (connect, read, write, pool).
        max_connections: Size of the shared connection pool.
        public_url: The ingress's public base URL, for the links notifications carry (None: no links).
        notify_webhook: Where failure alerts of recipes that name no webhook go (None: the log only).
    """

    base_urls: dict[str, str] = field(default_factory=_default_base_urls)
    http_timeout_s: float = 30.0
    max_connections: int = 100
    public_url: str | None = None
    notify_webhook: str | None = None

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
