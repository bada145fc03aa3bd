"""The engine's configuration: every environment variable tikflow reads, parsed once.

`EngineConfig.from_env()` runs at the composition roots (`tikflow worker`, `tikflow dev`, the
command line's Temporal commands) and the frozen result is passed down; nothing below them reads
the environment for configuration. Each field names its variable and says what it does
(`EngineConfig.variables()` lists them; the deployment test checks docker-compose.yml against that
list). A value that cannot be used is refused in one line naming the variable (`ConfigError`).
An empty variable counts as unset.

Two kinds of variables are deliberately not fields:

- Temporal's connection (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`,
  `TEMPORAL_TLS`, `TEMPORAL_TLS_CLIENT_CERT_PATH` / `TEMPORAL_TLS_CLIENT_KEY_PATH` (mTLS, e.g.
  Temporal Cloud), `TEMPORAL_TLS_SERVER_CA_CERT_PATH`, `TEMPORAL_TLS_SERVER_NAME`,
  `TEMPORAL_TLS_DISABLE_HOST_VERIFICATION`, the `*_DATA` twins of the `*_PATH` variables,
  `TEMPORAL_PROFILE` / `TEMPORAL_CONFIG_FILE`, `TEMPORAL_GRPC_META_*`) is read by Temporal's own
  `envconfig` when `tikflow.connect` connects, so it follows Temporal's rules and profiles. The
  address and namespace are also fields here, for the messages and UI links that name them.
- Credentials given as variables (`TIKFLOW_<PROVIDER>_<FIELD>` for the account `main`,
  `TIKFLOW_<PROVIDER>__<ACCOUNT>__<FIELD>` for any other, `TIKFLOW_WEBHOOK_URL` and
  `TIKFLOW_WEBHOOK__<NAME>__URL`) are credential data, not configuration: they are secrets (a
  configuration object is printed, compared and handed around; a secret is only handed out by
  the store, which registers it for redaction as it does), their names are open-ended (one per
  account), and they sit under the file's values with the same precedence as `tikflow
  credentials list` shows. `activities.credentials.CredentialStore` reads them from the
  environment it is given, at the moment a credential is resolved.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from activities.contracts import DEFAULT_PACER_QUEUE, DEFAULT_TASK_QUEUE
from activities.settings import DEFAULT_BASE_URLS, PROVIDERS, Settings

__all__ = [
    "DEFAULT_CACHED_WORKFLOWS",
    "DEFAULT_GC_THRESHOLD",
    "ConfigError",
    "EngineConfig",
    "Variable",
    "default_cached_workflows",
    "memory_limit_mib",
]

#: The fewest workflow runs a worker keeps in memory by default (the SDK's own default); more
#: when the worker's memory allows (`default_cached_workflows`, `TIKFLOW_MAX_CACHED_WORKFLOWS`).
DEFAULT_CACHED_WORKFLOWS = 1000
#: The most runs the default keeps, however much memory there is.
MAX_DEFAULT_CACHED_WORKFLOWS = 10_000
#: Memory the default budgets per cached run: a cached monitor measured 0.25-0.5 MiB of worker RSS
#: (bench/memory.py; bench/monitors.py at 2,000 monitors), doubled for recipes with more state.
CACHED_RUN_MIB = 1.0
#: The share of the worker's memory the default lets the cache fill.
CACHE_MEMORY_SHARE = 0.25
#: `gc.set_threshold` of a worker process (`TIKFLOW_GC_THRESHOLD`).
DEFAULT_GC_THRESHOLD = (20_000, 20, 20)

#: Where a per-provider variable's name holds the provider key, upper-cased.
_PROVIDER = "<PROVIDER>"


def memory_limit_mib() -> float | None:
    """The memory this process may use, in MiB: its cgroup's limit if it has one, else the machine's.

    None when neither can be read (not Linux).
    """
    limits: list[float] = []
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:  # cgroup v1 says "no limit" with a huge number
            limits.append(int(raw) / 2**20)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                limits.append(int(line.split()[1]) / 1024)
    except (OSError, ValueError, IndexError):
        pass
    return min(limits) if limits else None


def default_cached_workflows(memory_mib: float | None = None) -> int:
    """The default of `TIKFLOW_MAX_CACHED_WORKFLOWS`, sized from the worker's memory.

    A run evicted from the cache replays its whole history at its next workflow task: at 2,000
    monitors on a worker caching 1,000, 9.6 of 33.3 polls/s were served instead of 27.6 with all
    cached (bench/monitors.py). So the default lets the cache fill `CACHE_MEMORY_SHARE` of the
    memory (`memory_mib`, default `memory_limit_mib()`) at `CACHED_RUN_MIB` a run, never fewer
    than the SDK's 1,000 nor more than `MAX_DEFAULT_CACHED_WORKFLOWS`: 6,000 runs on 24 GiB, 1,000
    in a 4 GiB container.
    """
    memory = memory_limit_mib() if memory_mib is None else memory_mib
    if memory is None:
        return DEFAULT_CACHED_WORKFLOWS
    fits = int(memory * CACHE_MEMORY_SHARE / CACHED_RUN_MIB)
    return max(DEFAULT_CACHED_WORKFLOWS, min(MAX_DEFAULT_CACHED_WORKFLOWS, fits))


class ConfigError(ValueError):
    """An environment variable whose value cannot be used; the one-line message names it.

    Attributes:
        variable: The variable's name.
    """

    def __init__(self, variable: str, value: str, expected: str) -> None:
        super().__init__(f"{variable}={value!r}: expected {expected}")
        self.variable = variable


class _Invalid(ValueError):
    """Raised by a parser; `EngineConfig` turns it into a `ConfigError` naming the variable."""


@dataclass(frozen=True)
class Variable:
    """One environment variable (or a family of them, one per provider) and the field it sets.

    Attributes:
        name: The variable, e.g. `TIKFLOW_HTTP_TIMEOUT`; a family spells the provider
            `<PROVIDER>` (`TIKFLOW_<PROVIDER>_URL`).
        field_name: The `EngineConfig` field it sets.
        description: What it does, with its default.
        expected: What a valid value looks like (for the error message).
        cli_only: Read by the command line only; a worker does not read it itself.
    """

    name: str
    field_name: str
    description: str
    expected: str
    parse: Callable[[str], Any] = field(repr=False, compare=False)
    cli_only: bool = False

    @property
    def is_family(self) -> bool:
        """Whether this is one variable per provider."""
        return _PROVIDER in self.name

    def names(self) -> tuple[str, ...]:
        """The concrete variable names (one per provider for a family)."""
        if not self.is_family:
            return (self.name,)
        return tuple(self.name.replace(_PROVIDER, provider.upper()) for provider in PROVIDERS)

    def read(self, env: Mapping[str, str]) -> Any:
        """The parsed value, None when unset (a family: provider → value, only those set).

        Raises:
            ConfigError: The value cannot be used.
        """
        if self.is_family:
            values = {}
            for provider, name in zip(PROVIDERS, self.names(), strict=True):
                value = self._parse(name, env)
                if value is not None:
                    values[provider] = value
            return values
        return self._parse(self.name, env)

    def _parse(self, name: str, env: Mapping[str, str]) -> Any:
        raw = (env.get(name) or "").strip()
        if not raw:
            return None
        try:
            return self.parse(raw)
        except (_Invalid, ValueError):
            raise ConfigError(name, raw, self.expected) from None


def _env(
    name: str, description: str, parse: Callable[[str], Any], expected: str, *, cli_only: bool = False
) -> dict[str, Any]:
    """The metadata of a field set from the variable `name` (see `Variable`)."""
    return {"variable": (name, description, expected, parse, cli_only)}


def _text(raw: str) -> str:
    return raw


def _url(raw: str) -> str:
    return raw.rstrip("/")


def _webhook_url(raw: str) -> str:
    from activities.contracts import http_url_problem

    if http_url_problem(raw):
        raise _Invalid(raw)
    return raw


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise _Invalid(raw)
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise _Invalid(raw)
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise _Invalid(raw)
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise _Invalid(raw)
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise _Invalid(raw)
    return value


def _flag(raw: str) -> bool:
    return raw.lower() not in ("0", "false")


def _gc_threshold(raw: str) -> tuple[int, int, int] | Literal["python"]:
    if raw.lower() == "python":
        return "python"
    parts = raw.replace(" ", "").split(",")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise _Invalid(raw)
    return int(parts[0]), int(parts[1]), int(parts[2])


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine takes from the environment, parsed once (see the module docstring).

    Build it with `EngineConfig.from_env()` at an entry point, or directly (every field has a
    default) in tests and embedded stacks; derive a variant with `dataclasses.replace`.
    """

    # -- what runs where -------------------------------------------------------------------------
    task_queue: str = field(
        default=DEFAULT_TASK_QUEUE,
        metadata=_env(
            "TIKFLOW_TASK_QUEUE",
            f"The base task queue (default `{DEFAULT_TASK_QUEUE}`): the recipe workflows and the built-in "
            "actions; each provider's actions get `<base>.<provider>`.",
            _text,
            "a task queue name",
        ),
    )
    pacer_queue: str = field(
        default=DEFAULT_PACER_QUEUE,
        metadata=_env(
            "TIKFLOW_PACER_QUEUE",
            f"The task queue of the account pacers (default `{DEFAULT_PACER_QUEUE}`), one for the "
            "namespace whatever the base queue: every worker serves it, so a recipe's `pace:` slots "
            "keep coming when the workers of the queue that first paced the account are gone. "
            "`tikflow run` records it in the run; set it alike for every worker and command.",
            _text,
            "a task queue name",
        ),
    )
    temporal_address: str = field(
        default="localhost:7233",
        metadata=_env(
            "TEMPORAL_ADDRESS",
            "Temporal's frontend (default `localhost:7233`). The connection itself reads it through "
            "Temporal's envconfig, with the other `TEMPORAL_*` variables; this copy names it in messages.",
            _text,
            "host:port",
            cli_only=True,
        ),
    )
    temporal_namespace: str = field(
        default="default",
        metadata=_env(
            "TEMPORAL_NAMESPACE",
            "Temporal namespace (default `default`); read for the connection by Temporal's envconfig, "
            "here for the UI links the command line prints.",
            _text,
            "a namespace",
            cli_only=True,
        ),
    )
    ui_url: str = field(
        default="http://localhost:8233",
        metadata=_env(
            "TIKFLOW_UI_URL",
            "The Temporal UI the command line links runs to (default `http://localhost:8233`).",
            _url,
            "a URL",
            cli_only=True,
        ),
    )
    public_url: str | None = field(
        default=None,
        metadata=_env(
            "TIKFLOW_PUBLIC_URL",
            "The ingress's public base URL (e.g. `https://hooks.example.com`): re-authorization links "
            "in notifications (`<base>/reauth/…`) and the OAuth redirect URIs "
            "(`<base>/oauth/<provider>/callback`) are built on it. Unset, notifications carry no link "
            "and `tikflow connect` uses paste-back.",
            _url,
            "a URL",
        ),
    )
    notify_webhook: str | None = field(
        default=None,
        # Kept out of the printed config: a webhook URL often carries a token.
        repr=False,
        metadata=_env(
            "TIKFLOW_NOTIFY_WEBHOOK",
            "Where failure alerts go (a run that fails, a monitor that gives up) for recipes whose "
            "`on_failure` and `notify` name no webhook. Read by the worker's `notify.send`, so the URL "
            "never enters a workflow's history. Unset: such alerts go to the log only.",
            _webhook_url,
            "an http(s) URL",
        ),
    )
    provider_urls: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_BASE_URLS),
        metadata=_env(
            "TIKFLOW_<PROVIDER>_URL",
            "A provider's base URL (default: the real service, `activities.settings.DEFAULT_BASE_URLS`), "
            "e.g. the sandbox's in a trial deployment (`deploy/sandbox.env`).",
            _url,
            "a URL",
        ),
    )
    http_timeout_s: float = field(
        default=30.0,
        metadata=_env(
            "TIKFLOW_HTTP_TIMEOUT",
            "Seconds each provider request may take to connect, read, write or wait for the pool "
            "(default 30).",
            _positive_float,
            "a positive number of seconds",
        ),
    )
    http_max_connections: int = field(
        default=100,
        metadata=_env(
            "TIKFLOW_HTTP_MAX_CONNECTIONS",
            "Size of the HTTP connection pool every action of a worker shares (default 100).",
            _positive_int,
            "a positive integer",
        ),
    )
    # -- state on disk ---------------------------------------------------------------------------
    credentials_file: Path | None = field(
        default=None,
        metadata=_env(
            "TIKFLOW_CREDENTIALS",
            "The credentials file, written when tokens rotate (default `.tikflow/credentials.json` when "
            "the current directory has it, else the user config dir; `activities.credentials`). The "
            "worker's first log line names it. `TIKFLOW_<PROVIDER>_<FIELD>` variables override it.",
            _path,
            "a file path",
        ),
    )
    credentials_seed: Path | None = field(
        default=None,
        metadata=_env(
            "TIKFLOW_CREDENTIALS_SEED",
            "A read-only credentials file under the writable one (a Docker secret); unset, none.",
            _path,
            "a file path",
        ),
    )
    ledger_file: Path | None = field(
        default=None,
        metadata=_env(
            "TIKFLOW_LEDGER",
            "The side-effect ledger (default `effects.json` beside the credentials file, which must then "
            "be writable).",
            _path,
            "a file path",
        ),
    )
    # -- capacity and shutdown -------------------------------------------------------------------
    queue_rps: Mapping[str, float] = field(
        default_factory=dict,
        metadata=_env(
            "TIKFLOW_<PROVIDER>_QUEUE_RPS",
            "A provider queue's activities per second across all workers (Temporal's task-queue rate "
            "limit); each worker also spaces its own requests to that provider, per credential, to the "
            "same rate. Unset: no limit.",
            _non_negative_float,
            "a number of activities per second, 0 or more",
        ),
    )
    quota_workers: int = field(
        default=1,
        metadata=_env(
            "TIKFLOW_QUOTA_WORKERS",
            "Worker processes sharing each provider's `QUEUE_RPS` quota (default 1). Read calls that "
            "run as local activities bypass the task-queue limit, so each worker paces them to "
            "`QUEUE_RPS` divided by this.",
            _positive_int,
            "a positive integer",
        ),
    )
    max_concurrent_activities: int = field(
        default=100,
        metadata=_env(
            "TIKFLOW_MAX_CONCURRENT_ACTIVITIES",
            "Activities one worker runs at once, per task queue (default 100).",
            _positive_int,
            "a positive integer",
        ),
    )
    max_concurrent_workflow_tasks: int = field(
        default=100,
        metadata=_env(
            "TIKFLOW_MAX_CONCURRENT_WORKFLOW_TASKS",
            "Workflow tasks one worker runs at once (default 100).",
            _positive_int,
            "a positive integer",
        ),
    )
    max_cached_workflows: int = field(
        default_factory=default_cached_workflows,
        metadata=_env(
            "TIKFLOW_MAX_CACHED_WORKFLOWS",
            "Runs a worker keeps in memory (default: a quarter of its memory at 1 MiB a run, between "
            f"{DEFAULT_CACHED_WORKFLOWS} and {MAX_DEFAULT_CACHED_WORKFLOWS}); keep it above the number of "
            "monitors a worker serves, or each evicted run replays its history at its next poll (the "
            "worker warns at start).",
            _non_negative_int,
            "an integer, 0 or more",
        ),
    )
    graceful_shutdown_s: int = field(
        default=30,
        metadata=_env(
            "TIKFLOW_GRACEFUL_SHUTDOWN_S",
            "On SIGTERM polling stops at once and running activities get this many seconds to finish "
            "(default 30); any still running are then cancelled and Temporal retries them elsewhere.",
            _non_negative_int,
            "a whole number of seconds, 0 or more",
        ),
    )
    gc_threshold: tuple[int, int, int] | Literal["python"] = field(
        default=DEFAULT_GC_THRESHOLD,
        metadata=_env(
            "TIKFLOW_GC_THRESHOLD",
            "The garbage collector's thresholds for a worker process, three integers (default "
            f"`{','.join(map(str, DEFAULT_GC_THRESHOLD))}`; `python` keeps Python's own `700,10,10`); "
            "see `tikflow.worker.tune_gc`.",
            _gc_threshold,
            f"three positive integers like {','.join(map(str, DEFAULT_GC_THRESHOLD))}, or 'python'",
        ),
    )
    # -- operations ------------------------------------------------------------------------------
    health_file: Path | None = field(
        default=None,
        metadata=_env(
            "TIKFLOW_HEALTH_FILE",
            "A file touched every `TIKFLOW_HEALTH_INTERVAL_S` while every worker polls, removed on "
            "shutdown (`deploy/healthcheck.py` checks its age); unset, none.",
            _path,
            "a file path",
        ),
    )
    health_interval_s: float = field(
        default=10.0,
        metadata=_env(
            "TIKFLOW_HEALTH_INTERVAL_S",
            "Seconds between touches of the health file (default 10).",
            _positive_float,
            "a positive number of seconds",
        ),
    )
    health_port: int | None = field(
        default=None,
        metadata=_env(
            "TIKFLOW_HEALTH_PORT",
            "Port of an HTTP endpoint answering any GET with 200 while every worker polls, 503 "
            "otherwise (Kubernetes probes); unset, none.",
            _port,
            "a port number (0-65535)",
        ),
    )
    health_host: str = field(
        default="0.0.0.0",
        metadata=_env(
            "TIKFLOW_HEALTH_HOST",
            "Address the health endpoint binds (default `0.0.0.0`).",
            _text,
            "a host address",
        ),
    )
    metrics_address: str | None = field(
        default=None,
        metadata=_env(
            "TIKFLOW_METRICS_ADDRESS",
            "`host:port` where the Temporal SDK serves Prometheus metrics at `/metrics` (e.g. "
            "`0.0.0.0:9464`); unset, no metrics endpoint.",
            _text,
            "host:port",
        ),
    )
    log_json: bool | None = field(
        default=None,
        metadata=_env(
            "TIKFLOW_LOG_JSON",
            "`1` for JSON logs, `0` for the console renderer (default: JSON unless stderr is a TTY).",
            _flag,
            "1 or 0",
        ),
    )

    @classmethod
    def variables(cls) -> tuple[Variable, ...]:
        """Every variable the engine reads, in field order (families with `<PROVIDER>`)."""
        return tuple(_declared(cls).values())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EngineConfig:
        """Parse every variable of `env` (default: this process's environment).

        Raises:
            ConfigError: A value that cannot be used; the first one found, by field order.
        """
        env = os.environ if env is None else env
        return cls(**_values(cls, env, _declared(cls)))

    @classmethod
    def read(cls, field_name: str, env: Mapping[str, str] | None = None) -> Any:
        """One field's value from `env` (its default when unset), for a caller outside a root.

        Raises:
            ConfigError: Its value cannot be used.
        """
        env = os.environ if env is None else env
        declared = _declared(cls)
        values = _values(cls, env, {field_name: declared[field_name]})
        if field_name in values:
            return values[field_name]
        default = next(f for f in dataclasses.fields(cls) if f.name == field_name)
        if default.default_factory is not dataclasses.MISSING:
            return default.default_factory()
        return default.default

    def settings(self) -> Settings:
        """The providers' base URLs and the HTTP tunables, as the activities take them."""
        return Settings(
            base_urls=dict(self.provider_urls),
            http_timeout_s=self.http_timeout_s,
            max_connections=self.http_max_connections,
            public_url=self.public_url,
            notify_webhook=self.notify_webhook,
        )


def _declared(cls: type[EngineConfig]) -> dict[str, Variable]:
    """Field name → its `Variable`, from the fields' metadata."""
    declared: dict[str, Variable] = {}
    for f in dataclasses.fields(cls):
        name, description, expected, parse, cli_only = f.metadata["variable"]
        declared[f.name] = Variable(name, f.name, description, expected, parse, cli_only)
    return declared


def _values(cls: type[EngineConfig], env: Mapping[str, str], which: Mapping[str, Variable]) -> dict[str, Any]:
    """The fields of `which` that `env` sets (a family merged over its default mapping)."""
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for name, variable in which.items():
        value = variable.read(env)
        if variable.is_family:
            factory = defaults[name].default_factory
            base = dict(factory()) if factory is not dataclasses.MISSING else {}
            if value or base:
                values[name] = {**base, **value}
        elif value is not None:
            values[name] = value
    return values
