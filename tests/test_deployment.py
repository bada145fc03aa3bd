"""The deployment files agree with the code: docker-compose.yml, the Dockerfile and deploy/.

Runs without Docker. Names are checked against what the code really reads: the `TIKFLOW_*`
variables are the fields of `activities.config.EngineConfig` (and no other module of the engine
reads the environment), the `TEMPORAL_*` ones come from the variable list of Temporal's envconfig
(the Rust core shipped inside the installed temporalio), and the search attributes and sandbox
URLs from the modules that define them. The setup script is also run for real against the dev
server.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest
import temporalio
import yaml

import activities.config
from activities.config import ConfigError, EngineConfig
from activities.credentials import PROVIDER_FIELDS
from activities.settings import PROVIDERS
from tikflow.devstack import find_binary
from tikflow.emulator.server import provider_base_urls
from workflows.recipe import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
WORKER = SERVICES["worker"]


def tikflow_variables_read(*, worker_only: bool = False) -> set[str]:
    """Every `TIKFLOW_*` variable the engine reads: `EngineConfig`'s, families expanded, and the
    credential store's (`TIKFLOW_<PROVIDER>_<FIELD>`, credential data rather than configuration).

    `worker_only` leaves out the command line's own (`TIKFLOW_UI_URL`, ...).
    """
    names = {
        name
        for variable in EngineConfig.variables()
        if not (worker_only and variable.cli_only)
        for name in variable.names()
        if name.startswith("TIKFLOW_")
    }
    # Credential overrides: TIKFLOW_<PROVIDER>_<FIELD> (activities.credentials._env_name).
    names |= {f"TIKFLOW_{p.upper()}_{f.upper()}" for p, fields in PROVIDER_FIELDS.items() for f in fields}
    return names


def temporal_variables_read() -> set[str]:
    """The variables Temporal's envconfig reads, from the list atop its Rust source."""
    source = Path(temporalio.__file__).parent / "bridge/sdk-core/crates/common/src/envconfig.rs"
    names = set(re.findall(r"^//! - `(TEMPORAL_[A-Z_]+)`", source.read_text(), re.MULTILINE))
    assert {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TLS_CLIENT_CERT_PATH"} <= names
    return names


def _default(value: object) -> str | None:
    """The value compose gives `${NAME:-default}` when NAME is unset (None for a pass-through)."""
    if value is None:
        return None
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", str(value))
    return match.group(1) if match else str(value)


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), " ".join(rest.split())))
    return out


# -- docker-compose.yml ----------------------------------------------------------------------------


def test_the_services_are_all_there_and_the_sandbox_is_behind_a_profile():
    assert {"postgresql", "temporal", "temporal-ui", "worker", "ingress", "sandbox"} <= set(SERVICES)
    assert SERVICES["sandbox"]["profiles"] == ["sandbox"]
    assert "profiles" not in WORKER
    assert SERVICES["sandbox"]["command"] == ["tikflow", "sandbox", "--host", "0.0.0.0", "--port", "8400"]
    assert SERVICES["sandbox"]["build"] == WORKER["build"]  # the same image


def test_the_ingress_runs_the_command_from_the_same_image_with_what_it_reads():
    ingress = SERVICES["ingress"]
    assert ingress["command"] == ["tikflow", "ingress", "--host", "0.0.0.0", "--port", "8500"]
    assert ingress["build"] == WORKER["build"]
    assert "container_name" not in ingress  # stateless: scales behind a load balancer
    assert "profiles" not in ingress
    env = ingress["environment"]
    known = tikflow_variables_read() | temporal_variables_read()
    for name in env:
        assert name in known, f"{name} is set on the ingress but nothing reads it"
    # The same Temporal, task queue and credential store as the workers (TikTok's client secret,
    # the `ingress` credentials of generic routes).
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TIKFLOW_TASK_QUEUE", "TIKFLOW_CREDENTIALS"):
        assert env[name] == WORKER["environment"][name], name
    assert env["TIKFLOW_CREDENTIALS_SEED"] == WORKER["environment"]["TIKFLOW_CREDENTIALS_SEED"]
    assert ingress["secrets"] == WORKER["secrets"]
    assert ingress["volumes"] == WORKER["volumes"]
    assert ingress["ports"] == ["127.0.0.1:8500:8500"]
    assert "/healthz" in " ".join(ingress["healthcheck"]["test"])
    assert ingress["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"
    EngineConfig.from_env({k: v for k, v in ((n, _default(x)) for n, x in env.items()) if v is not None})


def test_every_pulled_image_is_pinned():
    for name, service in SERVICES.items():
        if "image" not in service:
            assert "build" in service, name
            continue
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo, image
        assert tag != "latest", f"{name}: {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_the_temporal_server_and_its_jobs_use_the_same_release():
    versions = {
        SERVICES[s]["image"].rpartition(":")[2] for s in ("temporal", "temporal-schema", "temporal-setup")
    }
    assert len(versions) == 1
    assert SERVICES["temporal"]["image"].startswith("temporalio/server:")
    assert SERVICES["temporal"]["environment"]["DB"] == "postgres12"
    assert (
        SERVICES["temporal"]["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"
    )


def test_the_worker_scales_no_fixed_name_or_host_port():
    assert "container_name" not in WORKER
    assert "ports" not in WORKER
    assert "build" in WORKER
    assert WORKER["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"


def test_long_running_services_have_health_checks():
    for name in ("postgresql", "temporal", "sandbox", "ingress"):
        check = SERVICES[name]["healthcheck"]
        assert check["test"], name
        assert not check.get("disable"), name
    # The worker's is the image's HEALTHCHECK; compose must not switch it off.
    assert "healthcheck" not in WORKER
    assert any(keyword == "HEALTHCHECK" for keyword, _ in dockerfile())


def test_every_variable_set_on_the_worker_is_one_the_code_reads():
    known = tikflow_variables_read() | temporal_variables_read()
    for name in WORKER["environment"]:
        assert name.startswith(("TIKFLOW_", "TEMPORAL_")), name
        assert name in known, f"{name} is set on the worker but nothing reads it"


def test_the_worker_gets_everything_it_needs_in_a_container():
    env = WORKER["environment"]
    # localhost (the default) is the container itself.
    assert _default(env["TEMPORAL_ADDRESS"]) == "temporal:7233"
    assert _default(env["TEMPORAL_NAMESPACE"]) == _default(
        SERVICES["temporal-setup"]["environment"]["TEMPORAL_NAMESPACE"]
    )
    for provider in PROVIDERS:
        assert f"TIKFLOW_{provider.upper()}_URL" in env
    # The credentials file is the compose secret, mounted read-only at /run/secrets/<name>: it
    # seeds the store ...
    (secret,) = WORKER["secrets"]
    assert env["TIKFLOW_CREDENTIALS_SEED"] == f"/run/secrets/{secret}"
    assert "file" in COMPOSE["secrets"][secret]
    # ... so the store (rotated tokens) and the ledger, which the worker writes, live on a volume
    # all replicas share.
    shared = {v.split(":")[1] for v in WORKER["volumes"]}
    assert str(Path(env["TIKFLOW_CREDENTIALS"]).parent) in shared
    assert str(Path(env["TIKFLOW_LEDGER"]).parent) in shared
    assert _default(env["TIKFLOW_METRICS_ADDRESS"]).endswith(":9464")
    assert "9464" in WORKER["expose"]


def test_docker_waits_longer_than_the_graceful_shutdown():
    graceful = int(_default(WORKER["environment"]["TIKFLOW_GRACEFUL_SHUTDOWN_S"]))
    grace = WORKER["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > graceful


def test_the_search_attributes_registered_are_the_workflows():
    setup = SERVICES["temporal-setup"]
    pairs = setup["environment"]["TIKFLOW_SEARCH_ATTRIBUTES"].split()
    assert dict(pair.split("=") for pair in pairs) == SEARCH_ATTRIBUTES
    assert setup["entrypoint"] == ["/bin/sh", "/deploy/temporal-setup.sh"]


def test_every_mounted_file_exists():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).is_file(), f"{name}: {source}"


def test_the_sandbox_env_file_points_every_provider_at_the_sandbox_service():
    lines = (ROOT / "deploy/sandbox.env").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    port = SERVICES["sandbox"]["command"][-1]
    assert env == {
        f"TIKFLOW_{p.upper()}_URL": u for p, u in provider_base_urls(f"http://sandbox:{port}").items()
    }


# -- Dockerfile ------------------------------------------------------------------------------------


def test_the_image_is_slim_python_311_run_as_a_user():
    steps = dockerfile()
    (base,) = [args for keyword, args in steps if keyword == "FROM"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    assert [k for k, _ in steps].index("USER") > max(i for i, (k, _) in enumerate(steps) if k == "RUN")


def test_the_image_installs_exactly_the_lock_file():
    steps = dockerfile()
    assert any(k == "COPY" and "uv.lock" in a.split() for k, a in steps)
    syncs = [a for k, a in steps if k == "RUN" and "uv sync" in a]
    assert syncs
    assert all("--locked" in a and "--no-dev" in a for a in syncs)
    # hatchling reads README.md (pyproject's `readme`) when it builds the project.
    assert any(k == "COPY" and "README.md" in a.split() for k, a in steps)


def test_the_health_check_reads_the_file_the_worker_touches():
    steps = dockerfile()
    env = " ".join(a for k, a in steps if k == "ENV")
    health_file = re.search(r"TIKFLOW_HEALTH_FILE=(\S+)", env)
    assert health_file, "the image must set TIKFLOW_HEALTH_FILE for the worker and the check"
    (check,) = [a for k, a in steps if k == "HEALTHCHECK"]
    assert "deploy/healthcheck.py" in check
    assert any(k == "COPY" and "deploy/healthcheck.py" in a for k, a in steps)
    assert "TIKFLOW_HEALTH_FILE" in (ROOT / "deploy/healthcheck.py").read_text()
    assert "TIKFLOW_HEALTH_FILE" in tikflow_variables_read()
    (cmd,) = [a for k, a in steps if k == "CMD"]
    assert cmd == '["python", "-m", "worker"]'


def test_the_build_context_holds_what_the_dockerfile_copies():
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for keyword, args in dockerfile():
        if keyword == "COPY":
            for source in shlex.split(args)[:-1]:
                assert source in allowed, f"{source} is excluded by .dockerignore"
                assert (ROOT / source).exists(), source


def test_health_check_script(tmp_path):
    script = ROOT / "deploy/healthcheck.py"

    def check(**env: str) -> int:
        return subprocess.run(
            ["python3", str(script)], env={"PATH": os.environ["PATH"], **env}, capture_output=True
        ).returncode

    health = tmp_path / "health"
    assert check(TIKFLOW_HEALTH_FILE=str(health)) == 1  # not there yet
    health.touch()
    assert check(TIKFLOW_HEALTH_FILE=str(health), TIKFLOW_HEALTH_INTERVAL_S="10") == 0
    os.utime(health, (health.stat().st_atime, health.stat().st_mtime - 31))
    assert check(TIKFLOW_HEALTH_FILE=str(health), TIKFLOW_HEALTH_INTERVAL_S="10") == 1  # stale
    assert check() == 1


def test_every_variable_is_documented_by_its_config_field():
    fields = {f.name for f in dataclasses.fields(EngineConfig)}
    variables = EngineConfig.variables()
    assert {v.field_name for v in variables} == fields  # every field is set from a variable
    assert len({v.name for v in variables}) == len(variables)
    for variable in variables:
        assert variable.name.startswith(("TIKFLOW_", "TEMPORAL_")), variable.name
        assert len(variable.description) > 30, variable.name
        assert variable.expected, variable.name
    names = {v.name for v in variables}
    for family in ("TIKFLOW_<PROVIDER>_URL", "TIKFLOW_<PROVIDER>_QUEUE_RPS"):
        assert family in names
    # What is not a field is named in the config module's docstring: Temporal's own connection
    # variables and the credential store's.
    doc = activities.config.__doc__ or ""
    for name in (
        "TEMPORAL_API_KEY",
        "TEMPORAL_TLS_CLIENT_CERT_PATH",
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
        "TIKFLOW_<PROVIDER>_<FIELD>",
        "TIKFLOW_<PROVIDER>__<ACCOUNT>__<FIELD>",
        "TIKFLOW_WEBHOOK_URL",
    ):
        assert name in doc, name
    assert {v.name for v in variables if v.name.startswith("TEMPORAL_")} <= temporal_variables_read()


def test_the_worker_module_points_at_the_config_for_every_variable():
    import ast

    doc = ast.get_docstring(ast.parse((ROOT / "tikflow" / "worker.py").read_text())) or ""
    assert "EngineConfig" in doc
    for family in ("TIKFLOW_<PROVIDER>_URL", "TIKFLOW_<PROVIDER>_QUEUE_RPS", "TIKFLOW_<PROVIDER>_<FIELD>"):
        assert family in doc
    for name in (
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_TLS_CLIENT_CERT_PATH",
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
    ):
        assert name in doc


def test_no_module_but_the_config_reads_the_environment():
    """The config is the whole list: nothing else in the engine reads `os.environ` or `getenv`.

    The credential store reads credential variables from the environment it is given (default
    `os.environ`): credential data, not configuration (see `activities.config`). The provider
    emulator stands in for the outside world and is not configuration either.
    """
    import ast

    allowed = {ROOT / "activities" / "config.py", ROOT / "activities" / "credentials.py"}
    files = [ROOT / "worker.py"]
    for package in ("tikflow", "activities", "workflows"):
        files += sorted((ROOT / package).rglob("*.py"))
    readers = []
    for path in files:
        if path in allowed or "emulator" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.alias) and node.name in ("environ", "getenv"):
                readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert readers == []


def test_every_value_compose_gives_the_worker_is_one_the_config_accepts():
    env = {name: _default(value) for name, value in WORKER["environment"].items()}
    try:
        config = EngineConfig.from_env({k: v for k, v in env.items() if v is not None})
    except ConfigError as exc:
        pytest.fail(f"docker-compose.yml: {exc}")
    # Where compose spells out the code's default, it is the code's default.
    defaults = EngineConfig()
    assert config.task_queue == defaults.task_queue
    assert config.max_concurrent_activities == defaults.max_concurrent_activities
    assert config.max_concurrent_workflow_tasks == defaults.max_concurrent_workflow_tasks
    assert config.graceful_shutdown_s == defaults.graceful_shutdown_s
    assert config.log_json is True


# -- the setup job, for real -------------------------------------------------------------------------


@pytest.mark.devserver
async def test_the_setup_script_creates_the_namespace_and_search_attributes_twice_over(dev_env):
    import asyncio

    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    namespace = f"setup-{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": f"{Path(find_binary('temporal')).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        **{k: str(_default(v)) for k, v in SERVICES["temporal-setup"]["environment"].items()},
        "TIKFLOW_SETUP_ATTEMPTS": "15",
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": namespace,
    }
    for _ in range(2):  # every `compose up` runs it again
        done = await asyncio.to_thread(
            subprocess.run,
            ["sh", str(ROOT / "deploy/temporal-setup.sh")],
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    listed = await dev_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    from temporalio.api.enums.v1 import IndexedValueType

    registered = {name: IndexedValueType.Name(kind) for name, kind in listed.custom_attributes.items()}
    assert {
        # `KeywordList` is INDEXED_VALUE_TYPE_KEYWORD_LIST.
        name: "INDEXED_VALUE_TYPE_" + re.sub(r"(?<!^)(?=[A-Z])", "_", kind).upper()
        for name, kind in SEARCH_ATTRIBUTES.items()
    }.items() <= registered.items()
