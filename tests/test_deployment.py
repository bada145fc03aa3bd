"""The deployment files agree with the code: docker-compose.yml, the Dockerfile and deploy/.

Runs without Docker. Names are checked against what the code really reads: the `TIKFLOW_*`
variables are collected from the package source, the `TEMPORAL_*` ones from the variable list of
Temporal's envconfig (the Rust core shipped inside the installed temporalio), and the search
attributes and sandbox URLs from the modules that define them. The setup script is also run for
real against the dev server.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest
import temporalio
import yaml

from activities.credentials import PROVIDER_FIELDS
from activities.settings import PROVIDERS
from tikflow.devstack import find_binary
from tikflow.emulator.server import provider_base_urls
from workflows.recipe import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
WORKER = SERVICES["worker"]


def _source_files() -> list[Path]:
    files = [ROOT / "worker.py"]
    for package in ("tikflow", "activities", "workflows"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def _code_without_docstrings(path: Path) -> str:
    """A module's code with string-only statements (docstrings) blanked: names there are prose."""
    import ast

    text = path.read_text()
    tree = ast.parse(text)
    lines = text.splitlines()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for i in range(node.lineno - 1, node.end_lineno or node.lineno):
                lines[i] = ""
    return "\n".join(lines)


def tikflow_variables_read(*, worker_only: bool = False) -> set[str]:
    """Every `TIKFLOW_*` variable the engine reads, from the source, patterns expanded.

    `worker_only` leaves out the command line's own (`TIKFLOW_UI_URL`, ...).
    """
    literal = re.compile(
        r"""(?:\.get|_env_int|environ\[)\(?\s*(?:env,\s*)?["']((?:TIKFLOW)_[A-Z0-9_]+)["']"""
    )
    pattern = re.compile(r"""f["']TIKFLOW_\{(\w+)\.upper\(\)\}_([A-Z_]+)["']""")
    names: set[str] = set()
    for path in _source_files():
        if "sandbox" in path.parts:  # the emulator stands in for the outside world; not configuration
            continue
        if worker_only and (path.name in ("cli.py", "devstack.py") or "commands" in path.parts):
            continue
        code = _code_without_docstrings(path)
        names |= set(literal.findall(code))
        for _, suffix in pattern.findall(code):
            names |= {f"TIKFLOW_{provider.upper()}_{suffix}" for provider in PROVIDERS}
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
    assert {"postgresql", "temporal", "temporal-ui", "worker", "sandbox"} <= set(SERVICES)
    assert SERVICES["sandbox"]["profiles"] == ["sandbox"]
    assert "profiles" not in WORKER
    assert SERVICES["sandbox"]["command"] == ["tikflow", "sandbox", "--host", "0.0.0.0", "--port", "8400"]
    assert SERVICES["sandbox"]["build"] == WORKER["build"]  # the same image


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
    for name in ("postgresql", "temporal", "sandbox"):
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


def test_every_variable_the_worker_reads_is_documented_in_the_worker_module():
    import ast

    doc = ast.get_docstring(ast.parse((ROOT / "tikflow" / "worker.py").read_text())) or ""
    for name in tikflow_variables_read(worker_only=True):
        providers = "|".join(p.upper() for p in PROVIDERS)
        if re.fullmatch(rf"TIKFLOW_(?:{providers})_\w+", name):
            continue  # per-provider families, documented as TIKFLOW_<PROVIDER>_...
        assert name in doc, f"{name} is not documented in tikflow/worker.py"
    for family in ("TIKFLOW_<PROVIDER>_URL", "TIKFLOW_<PROVIDER>_QUEUE_RPS", "TIKFLOW_<PROVIDER>_<FIELD>"):
        assert family in doc
    for name in (
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_TLS_CLIENT_CERT_PATH",
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
    ):
        assert name in doc


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
        name: f"INDEXED_VALUE_TYPE_{kind.upper()}" for name, kind in SEARCH_ATTRIBUTES.items()
    }.items() <= registered.items()
