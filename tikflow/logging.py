"""Logging, configured once per entry point: one stream for tikflow's and Temporal's own logs.

Console rendering on a terminal, JSON lines otherwise. Standard-library records (Temporal's
`temporalio.*` loggers, `workflow.logger`) go through structlog's `ProcessorFormatter`, so their
`extra=` fields become keys, and through the same processors as tikflow's own events:

1. an exception the engine expects (the provider error tree: `ProviderUnavailable`,
   `RateLimited`, `SessionExpired`, `ProviderRejected`, …, and invalid action input) becomes two
   fields, `error_type` and `error`: one line, no stack. Any other exception keeps its traceback,
   rendered here as text (or, for JSON, as a list of frames), never with local variables: they hold
   request bodies and credentials, and cost ~5 KB per failed attempt;
2. every value, the rendered traceback included, is redacted (`activities.redact`) before the
   renderer sees it.

The SDK's own `Completing activity as failed` line for a provider error repeats tikflow's
`action failed` line (which names the account and attempt), so it is logged at DEBUG, as the SDK
itself does for errors of the BENIGN category.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
import structlog.tracebacks
from structlog.typing import EventDict, WrappedLogger

# Imported here, not in the processors: those also run inside Temporal's workflow sandbox (for
# `workflow.logger` records), where a late import is refused.
from activities.errors import ProviderError
from activities.redact import redact_secrets

__all__ = ["configure_logging", "expected_error_types", "summarize_expected_errors"]


def expected_error_types() -> frozenset[str]:
    """`ApplicationError.type`s of failures the engine expects, logged as one line without a stack.

    Every class of the provider error tree, invalid action input (the recipe's fault) and
    `StepFailed` (a run that failed because one of its steps did, the reason in its message).
    """
    names: set[str] = set()
    pending: list[type[ProviderError]] = [ProviderError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending += cls.__subclasses__()
    return frozenset({*names, "InvalidActionInput", "StepFailed"})


_EXPECTED_TYPES = expected_error_types()
_PROVIDER_ERROR_TYPES = _EXPECTED_TYPES - {"InvalidActionInput", "StepFailed"}


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
        return exc_info[1]
    if exc_info is True:
        return sys.exc_info()[1]
    return None


def _expected_type(exc: BaseException | None) -> str | None:
    """The error type of an expected failure, or None for anything else."""
    if exc is None:
        return None
    if isinstance(exc, ProviderError):
        return type(exc).__name__
    # An ApplicationError, told by its `type` (temporalio is not imported for `tikflow validate`).
    error_type = getattr(exc, "type", None)
    if isinstance(error_type, str) and error_type in _EXPECTED_TYPES:
        return error_type
    return None


def summarize_expected_errors(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Structlog processor: an expected failure's exception becomes `error_type` and `error`, no stack."""
    exc = _exception_of(event_dict.get("exc_info"))
    error_type = _expected_type(exc)
    if error_type is not None:
        del event_dict["exc_info"]
        event_dict.setdefault("error_type", error_type)
        # A provider error's text names the provider and status; an ApplicationError's `message`
        # is its text without the type prefix that `str()` adds (the type is its own field).
        message = str(exc) if type(exc).__name__ == error_type else getattr(exc, "message", str(exc))
        event_dict.setdefault("error", " ".join(str(message).split()))
    return event_dict


class _ProviderErrorRepeatFilter(logging.Filter):
    """The SDK's `Completing activity as failed` for a provider error, moved to DEBUG.

    tikflow's activity runner has logged it already as `action failed`, with the account.
    """

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "temporalio.activity" or record.levelno <= logging.DEBUG or not record.exc_info:
            return True
        error_type = getattr(record.exc_info[1], "type", None)
        if error_type not in _PROVIDER_ERROR_TYPES:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self.level <= logging.DEBUG


def configure_logging(
    *, json: bool | None = None, level: str | int = "INFO", stream: TextIO | None = None
) -> None:
    """Configure structlog and stdlib logging for this process (call once, at the entry point).

    Args:
        json: Force JSON (True) or console (False) output; default: console only on a terminal.
        level: Minimum level for tikflow and Temporal logs.
        stream: Where the lines go (default: standard error).
    """
    out = sys.stderr if stream is None else stream
    as_json = not out.isatty() if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Exceptions are rendered before redaction, so the traceback's text is redacted too.
    exceptions: list[Any] = [
        summarize_expected_errors,
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        if as_json
        else structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            # First: an event below the logger's level (the activity runner's `action done` at
            # DEBUG, once per call) is dropped before the chain below formats and redacts it for
            # the stdlib logger to drop (~2% of a busy worker's CPU, bench/monitors.py).
            structlog.stdlib.filter_by_level,
            *shared,
            *exceptions,
            redact_secrets,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # `extra=` fields of stdlib records (Temporal's, workflow.logger's) become keys, then
        # go through the same exception handling and redaction as our own events.
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), *exceptions, redact_secrets],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    handler.addFilter(_ProviderErrorRepeatFilter(numeric if isinstance(numeric, int) else logging.INFO))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
