"""Connecting to Temporal the standard way: `TEMPORAL_*` environment variables, pydantic data.

`TEMPORAL_ADDRESS` (default `localhost:7233`), `TEMPORAL_NAMESPACE`, `TEMPORAL_TLS_*`,
`TEMPORAL_API_KEY` and the Temporal config-file profile are read by Temporal's own `envconfig`,
so a deployment only sets environment variables. Everything else tikflow reads from the
environment is `activities.config.EngineConfig`.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig

__all__ = ["connect"]


async def connect(**overrides: Any) -> Client:
    """A Temporal client configured from the environment, with the pydantic data converter."""
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", "localhost:7233")
    config.update(overrides)
    return await Client.connect(data_converter=pydantic_data_converter, **config)
