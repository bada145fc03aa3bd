"""Logging, configured once per entry point: one stream for tikflow's and Temporal's own logs.

Console rendering on a terminal, JSON lines otherwise. Standard-library records (Temporal's
`temporalio.*` loggers, `workflow.logger`) go through structlog's `ProcessorFormatter`, so their
`extra=` fields become keys. Anything that looks like a secret is redacted before rendering.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["configure_logging"]


def _redactor() -> Any:
    try:
        from activities.redact import redact_secrets
    except ImportError:  # the redaction module ships with the provider layer
        return None
    return redact_secrets


def configure_logging(*, json: bool | None = None, level: str | int = "INFO") -> None:
    """Configure structlog and stdlib logging for this process (call once, at the entry point).

    Args:
        json: Force JSON (True) or console (False) output; default: console only on a terminal.
        level: Minimum level for tikflow and Temporal logs.
    """
    as_json = not sys.stderr.isatty() if json is None else json
    redact = _redactor()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    redaction: list[Any] = [redact] if redact is not None else []
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, *redaction, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # `extra=` fields of stdlib records (Temporal's, workflow.logger's) become keys, then
        # go through the same redaction as our own events.
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), *redaction],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([structlog.processors.dict_tracebacks] if as_json else []),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
