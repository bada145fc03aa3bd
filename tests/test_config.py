"""`EngineConfig`: every variable the engine reads, parsed once, refused in one line when unusable."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from activities.config import DEFAULT_GC_THRESHOLD, ConfigError, EngineConfig, default_cached_workflows
from activities.contracts import DEFAULT_TASK_QUEUE
from activities.settings import DEFAULT_BASE_URLS, PROVIDERS, Settings
from tikflow.devstack import sandbox_worker_config
from tikflow.emulator.server import provider_base_urls
from tikflow.worker import Health


def test_an_empty_environment_gives_the_documented_defaults():
    config = EngineConfig.from_env({})
    assert config == EngineConfig()
    assert config.task_queue == DEFAULT_TASK_QUEUE == "tikflow"
    assert config.provider_urls == DEFAULT_BASE_URLS
    assert (config.http_timeout_s, config.http_max_connections) == (30.0, 100)
    assert (config.max_concurrent_activities, config.max_concurrent_workflow_tasks) == (100, 100)
    assert (config.max_cached_workflows, config.graceful_shutdown_s) == (default_cached_workflows(), 30)
    assert config.gc_threshold == DEFAULT_GC_THRESHOLD
    assert config.queue_rps == {}
    assert config.credentials_file is config.credentials_seed is config.ledger_file is None
    assert Health.from_config(config) == Health()
    assert config.settings() == Settings()


def test_every_variable_is_read_and_an_empty_one_counts_as_unset():
    env = {
        "TIKFLOW_TASK_QUEUE": "q",
        "TIKFLOW_TIKAPI_URL": "http://sandbox:8400/tikapi/",
        "TIKFLOW_HTTP_TIMEOUT": "2.5",
        "TIKFLOW_HTTP_MAX_CONNECTIONS": "7",
        "TIKFLOW_CREDENTIALS": "~/c.json",
        "TIKFLOW_TIKTOK_QUEUE_RPS": "0.5",
        "TIKFLOW_DUMPLING_QUEUE_RPS": "",
        "TIKFLOW_MAX_CACHED_WORKFLOWS": " 50 ",
        "TIKFLOW_HEALTH_PORT": "8080",
        "TIKFLOW_HEALTH_HOST": "",
        "TIKFLOW_GC_THRESHOLD": "python",
        "TIKFLOW_LOG_JSON": "0",
        "TIKFLOW_UI_URL": "http://ui:8080/",
    }
    config = EngineConfig.from_env(env)
    assert config.task_queue == "q"
    assert config.provider_urls == {**DEFAULT_BASE_URLS, "tikapi": "http://sandbox:8400/tikapi"}
    assert config.settings().base_url("tikapi") == "http://sandbox:8400/tikapi"
    assert (config.http_timeout_s, config.http_max_connections) == (2.5, 7)
    assert config.credentials_file == Path("~/c.json").expanduser()
    assert config.queue_rps == {"tiktok": 0.5}
    assert config.max_cached_workflows == 50
    assert (config.health_port, config.health_host) == (8080, "0.0.0.0")
    assert config.gc_threshold == "python"
    assert config.log_json is False
    assert config.ui_url == "http://ui:8080"
    assert EngineConfig.from_env({"TIKFLOW_LOG_JSON": "1"}).log_json is True


def test_the_config_is_frozen_and_variants_are_derived():
    config = EngineConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.task_queue = "other"  # type: ignore[misc]
    sandbox = sandbox_worker_config(config, "http://127.0.0.1:8400", Path("home/credentials.json"))
    assert sandbox.provider_urls == provider_base_urls("http://127.0.0.1:8400")
    assert sandbox.credentials_file == Path("home/credentials.json").resolve()
    assert config.provider_urls == DEFAULT_BASE_URLS  # the original is untouched


def test_one_field_can_be_read_alone():
    assert EngineConfig.read("ledger_file", {"TIKFLOW_LEDGER": "/srv/fx.json"}) == Path("/srv/fx.json")
    assert EngineConfig.read("ledger_file", {"TIKFLOW_HTTP_TIMEOUT": "abc"}) is None  # others unread
    assert EngineConfig.read("provider_urls", {}) == DEFAULT_BASE_URLS
    with pytest.raises(ConfigError, match=r"^TIKFLOW_MAX_CONCURRENT_ACTIVITIES="):
        EngineConfig.read("max_concurrent_activities", {"TIKFLOW_MAX_CONCURRENT_ACTIVITIES": "x"})


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TIKFLOW_HTTP_TIMEOUT", "abc", "a positive number of seconds"),
        ("TIKFLOW_HTTP_TIMEOUT", "0", "a positive number of seconds"),
        ("TIKFLOW_HTTP_MAX_CONNECTIONS", "0", "a positive integer"),
        ("TIKFLOW_MAX_CONCURRENT_ACTIVITIES", "1.5", "a positive integer"),
        ("TIKFLOW_MAX_CACHED_WORKFLOWS", "-1", "an integer, 0 or more"),
        ("TIKFLOW_GRACEFUL_SHUTDOWN_S", "soon", "a whole number of seconds, 0 or more"),
        ("TIKFLOW_TIKAPI_QUEUE_RPS", "fast", "a number of activities per second, 0 or more"),
        ("TIKFLOW_SOCIALAPI_QUEUE_RPS", "-2", "a number of activities per second, 0 or more"),
        ("TIKFLOW_HEALTH_PORT", "99999", "a port number (0-65535)"),
        ("TIKFLOW_HEALTH_INTERVAL_S", "nan", "a positive number of seconds"),
        ("TIKFLOW_GC_THRESHOLD", "lots", "three positive integers like 20000,20,20, or 'python'"),
    ],
)
def test_a_value_that_cannot_be_used_is_refused_naming_its_variable(name, value, expected):
    with pytest.raises(ConfigError) as caught:
        EngineConfig.from_env({name: value})
    assert str(caught.value) == f"{name}={value!r}: expected {expected}"
    assert caught.value.variable == name


def test_every_provider_has_its_url_and_rate_variables():
    names = {name for variable in EngineConfig.variables() for name in variable.names()}
    for provider in PROVIDERS:
        assert {f"TIKFLOW_{provider.upper()}_URL", f"TIKFLOW_{provider.upper()}_QUEUE_RPS"} <= names


def _tikflow(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tikflow.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:9", **env},
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("command", "prefix"),
    [
        (["worker"], "tikflow worker: "),
        (["dev", "--home", "unused"], "tikflow: "),
        (["status", "some-run"], "tikflow: "),
    ],
)
def test_the_commands_refuse_a_bad_value_in_one_line_with_exit_2(command, prefix, tmp_path):
    done = _tikflow(*command, cwd=tmp_path, TIKFLOW_HTTP_TIMEOUT="abc")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"{prefix}TIKFLOW_HTTP_TIMEOUT='abc': expected a positive number of seconds"
    ]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "unused").exists()  # nothing was started
