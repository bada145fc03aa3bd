"""The credential store and the `tikflow credentials` / `tikflow actions` commands."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import sys
import threading
from pathlib import Path

import pytest

from activities.credentials import CredentialStore, default_path, mask
from activities.errors import CredentialsRejected
from tikflow.cli import build_parser

SECRET = "sk_live_4f9c2a7e1b3d5f6a8c0e2b4d3a9f"


def test_update_writes_atomically_with_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "credentials.json"
    store = CredentialStore(path, env={})
    store.update("tikapi", "main", {"api_key": SECRET})
    store.update("tikapi", "main", {"account_key": "acct"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["credentials"]["tikapi"]["main"] == {"api_key": SECRET, "account_key": "acct"}
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_get_reads_what_another_process_wrote(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    worker = CredentialStore(path, env={})
    cli = CredentialStore(path, env={})
    cli.update("tiktok", "main", {"access_token": "old"})
    assert worker.get("tiktok", "main")["access_token"] == "old"
    cli.update("tiktok", "main", {"access_token": "new"})  # e.g. `tikflow credentials set` or a reauth
    assert worker.get("tiktok", "main")["access_token"] == "new"


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    stores = [CredentialStore(path, env={}) for _ in range(4)]

    def write(i: int) -> None:
        for j in range(15):
            stores[i].update("highlevel", f"acct{i}-{j}", {"token": f"t{i}{j}"})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accounts = json.loads(path.read_text())["credentials"]["highlevel"]
    assert len(accounts) == 60


def test_env_overrides_file_for_main_and_named_accounts(tmp_path: Path) -> None:
    env = {
        "TIKFLOW_TIKAPI_API_KEY": "from-env",
        "TIKFLOW_TIKAPI__BRAND-2__ACCOUNT_KEY": "ignored: env names use _",
        "TIKFLOW_TIKAPI__BRAND_2__ACCOUNT_KEY": "brand-acct",
        "TIKFLOW_TIKAPI_URL": "http://sandbox",  # a setting, not a credential field
    }
    store = CredentialStore(tmp_path / "c.json", env=env)
    store.update("tikapi", "main", {"api_key": "from-file", "account_key": "file-acct"})
    assert store.get("tikapi", "main") == {"api_key": "from-env", "account_key": "file-acct"}
    assert store.get("tikapi", "brand-2") == {"account_key": "brand-acct"}


def test_missing_credential_names_the_fix(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "c.json", env={})
    with pytest.raises(CredentialsRejected) as caught:
        store.get("dumpling", "main")
    message = str(caught.value)
    assert "dumpling" in message
    assert "'main'" in message
    assert "tikflow credentials set dumpling main api_key=" in message
    assert "TIKFLOW_DUMPLING_API_KEY" in message
    assert caught.value.account == "main"


def test_missing_required_field(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "c.json", env={"TIKFLOW_TIKAPI__OTHER__API_KEY": SECRET})
    with pytest.raises(CredentialsRejected, match="without account_key") as caught:
        store.get("tikapi", "other", required=("api_key", "account_key"))
    assert "TIKFLOW_TIKAPI__OTHER__ACCOUNT_KEY" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(CredentialsRejected, match="not valid JSON"):
        CredentialStore(path, env={}).get("tikapi", "main")


def test_list_hides_values(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "c.json", env={"TIKFLOW_DUMPLING_API_KEY": SECRET})
    store.update("tikapi", "main", {"api_key": SECRET, "account_key": "short"})
    infos = {(i.provider, i.account): i for i in store.list()}
    assert infos[("tikapi", "main")].fields == ("account_key", "api_key")
    assert infos[("tikapi", "main")].source == "file"
    assert infos[("tikapi", "main")].hints == {"account_key": "…", "api_key": "…3a9f"}
    assert infos[("dumpling", "main")].source == "env"
    assert SECRET not in repr(infos)


def test_remove(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "c.json", env={})
    store.update("socialapi", "main", {"api_key": SECRET})
    assert store.remove("socialapi", "main") is True
    assert store.remove("socialapi", "main") is False
    assert store.list() == []


def test_update_refuses_unknown_provider_and_bad_field_names(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "c.json", env={})
    with pytest.raises(ValueError, match="unknown provider"):
        store.update("myspace", "main", {"api_key": "x"})
    with pytest.raises(ValueError, match="lower_snake_case"):
        store.update("tiktok", "main", {"Access-Token": "x"})
    store.update("tiktok", "main", {"refresh_expires_at": "1700000000"})  # extra fields may be kept


def test_default_path_honours_override(tmp_path: Path) -> None:
    assert default_path({"TIKFLOW_CREDENTIALS": str(tmp_path / "x.json")}) == tmp_path / "x.json"
    assert default_path({}).name == "credentials.json"


def test_mask() -> None:
    assert mask(SECRET) == "…3a9f"
    assert mask("short") == "…"


# ---------------------------------------------------------------------------------------------
# The commands.


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    args = build_parser().parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_set_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = str(tmp_path / "c.json")
    code, out, _ = cli(["credentials", "--file", file, "set", "tikapi", "main", f"api_key={SECRET}"], capsys)
    assert code == 0
    assert SECRET not in out
    code, out, _ = cli(["credentials", "--file", file, "list"], capsys)
    assert code == 0
    assert "tikapi" in out
    assert "api_key(…3a9f)" in out
    assert SECRET not in out
    code, out, _ = cli(["credentials", "--file", file, "list", "--json"], capsys)
    assert json.loads(out)[0]["fields"] == ["api_key"]
    assert SECRET not in out
    code, _, _ = cli(["credentials", "--file", file, "remove", "tikapi", "main"], capsys)
    assert code == 0
    assert CredentialStore(Path(file), env={}).list() == []


def test_cli_set_from_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"client_key=ck\nclient_secret={SECRET}\n\n"))
    file = tmp_path / "c.json"
    code, _out, _ = cli(["credentials", "--file", str(file), "set", "tiktok", "main", "--from-stdin"], capsys)
    assert code == 0
    assert CredentialStore(file, env={}).get("tiktok", "main") == {
        "client_key": "ck",
        "client_secret": SECRET,
    }


@pytest.mark.parametrize("pair", ["api_key", "apikey=x", "=x"])
def test_cli_set_rejects_bad_pairs_without_echoing_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pair: str
) -> None:
    code, _, err = cli(
        ["credentials", "--file", str(tmp_path / "c.json"), "set", "tikapi", "main", pair], capsys
    )
    assert code == 2
    assert err.startswith("tikflow credentials:")
    assert not (tmp_path / "c.json").exists()


def test_cli_actions_lists_inputs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["actions", "--json", "tikapi"], capsys)
    assert code == 0
    actions = {a["name"]: a for a in json.loads(out)}
    reply = actions["tikapi.reply"]
    assert reply["endpoint"] == "POST /user/comment"
    assert reply["side_effect"] is True
    assert [f["name"] for f in reply["inputs"]] == ["media_id", "reply_comment_id", "text"]
    comments = {f["name"]: f for f in actions["tikapi.comments"]["inputs"]}
    assert comments["cursor"] == {
        "name": "cursor",
        "type": "int | None",
        "required": False,
        "default": None,
        "description": "Resume from this cursor.",
    }
    code, out, _ = cli(["actions", "tikapi"], capsys)
    assert "tikapi.reply  POST /user/comment [side effect]" in out


def test_cli_actions_unknown_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["actions", "nope"], capsys)
    assert code == 1
    assert "providers:" in err


def test_store_file_mode_survives_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        CredentialStore(tmp_path / "c.json", env={}).update("dumpling", "main", {"api_key": SECRET})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == 0o600


def _seed(path: Path, credentials: dict[str, dict[str, dict[str, str]]]) -> Path:
    """A read-only seed file (as a Docker secret is mounted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "credentials": credentials}))
    path.chmod(0o400)
    return path


def test_a_seed_fills_in_under_the_writable_file(tmp_path: Path) -> None:
    seed = _seed(
        tmp_path / "secrets" / "credentials",
        {
            "tiktok": {"main": {"client_key": "ck", "refresh_token": "rft.seed", "access_token": "act.seed"}},
            "tikapi": {"main": {"api_key": SECRET}},
        },
    )
    store = CredentialStore(
        env={
            "TIKFLOW_CREDENTIALS": str(tmp_path / "state" / "credentials.json"),
            "TIKFLOW_CREDENTIALS_SEED": str(seed),
        }
    )
    assert store.get("tikapi", "main") == {"api_key": SECRET}

    # A refresh writes the rotated pair to the writable file; the seed stays as it was.
    store.update("tiktok", "main", {"access_token": "act.new", "refresh_token": "rft.new"})
    assert store.get("tiktok", "main") == {
        "client_key": "ck",
        "access_token": "act.new",
        "refresh_token": "rft.new",
    }
    assert "rft.seed" in seed.read_text()
    written = json.loads((tmp_path / "state" / "credentials.json").read_text())["credentials"]
    assert written == {"tiktok": {"main": {"access_token": "act.new", "refresh_token": "rft.new"}}}

    sources = {(i.provider, i.account): i.source for i in store.list()}
    assert sources == {("tikapi", "main"): "seed", ("tiktok", "main"): "seed+file"}


def test_a_broken_seed_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text("{nope")
    store = CredentialStore(tmp_path / "credentials.json", env={}, seed=seed)
    with pytest.raises(CredentialsRejected, match=r"seed\.json is not valid JSON"):
        store.get("tikapi", "main")


# ---------------------------------------------------------------------------------------------
# One store per working folder (issue 13, point 1), whole credentials only, no echoed secrets.


def test_every_command_in_a_folder_with_a_dev_store_uses_it(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".tikflow").mkdir(parents=True)
    # `make demo` leaves `.tikflow/demo/` behind: that alone moves nobody's credentials.
    (project / ".tikflow" / "demo").mkdir()
    user_store = default_path({}, cwd=tmp_path)
    assert default_path({}, cwd=project) == user_store
    (project / ".tikflow" / "credentials.json").write_text('{"credentials": {}}')
    assert default_path({}, cwd=project) == project / ".tikflow" / "credentials.json"
    # Only the folder itself counts: a dev store above it (say in $HOME) captures nothing below.
    (project / "sub").mkdir()
    assert default_path({}, cwd=project / "sub") == user_store
    # TIKFLOW_CREDENTIALS wins over both.
    named = tmp_path / "named.json"
    assert default_path({"TIKFLOW_CREDENTIALS": str(named)}, cwd=project) == named


def test_a_strict_write_never_leaves_half_a_credential(tmp_path: Path) -> None:
    """The issue's reauth wrote an account key into a store with no API key for it."""
    from activities.credentials import IncompleteCredential

    path = tmp_path / "credentials.json"
    store = CredentialStore(path, env={})
    with pytest.raises(IncompleteCredential, match=r"tikapi/main would lack api_key") as caught:
        store.update("tikapi", "main", {"account_key": SECRET}, strict=True)
    assert SECRET not in str(caught.value)
    assert not path.exists()
    store.update("tikapi", "main", {"api_key": SECRET}, strict=True)
    before = path.read_bytes()
    # A re-authorization must also leave the fields it renews; refused, the file is untouched.
    with pytest.raises(IncompleteCredential, match="would lack account_key"):
        store.update(
            "tikapi", "main", {"api_key": "sk_other_key_0000"}, strict=True, require=("account_key",)
        )
    assert path.read_bytes() == before
    # An environment variable counts (a worker with the API key in its environment).
    env_store = CredentialStore(tmp_path / "env.json", env={"TIKFLOW_TIKAPI_API_KEY": SECRET})
    env_store.update("tikapi", "main", {"account_key": "acct-2"}, strict=True)
    assert env_store.get("tikapi", "main") == {"api_key": SECRET, "account_key": "acct-2"}


@pytest.mark.parametrize(
    ("provider", "fields", "problem"),
    [
        ("tikapi", {"api_key": "  "}, "api_key is empty"),
        ("tikapi", {"api_key": SECRET + "\n"}, "control character"),
        ("tiktok", {"client_key": "ck", "client_secret": SECRET, "expires_at": "soon"}, "epoch seconds"),
        ("webhook", {"url": f"ftp://hooks.example.com/{SECRET}"}, "http"),
        ("webhook", {"url": SECRET}, "http"),
        ("ingress", {"signing_secret": SECRET}, "Standard Webhooks secret"),
        ("ingress", {"signing_secret": "whsec_" + SECRET[8:-1]}, "Standard Webhooks secret"),
        ("ingress", {}, "signing_secret=… .* or token=…"),
    ],
)
def test_a_strict_write_refuses_malformed_values_without_showing_them(
    tmp_path: Path, provider: str, fields: dict[str, str], problem: str
) -> None:
    from activities.credentials import IncompleteCredential

    path = tmp_path / "credentials.json"
    with pytest.raises(IncompleteCredential, match=problem) as caught:
        CredentialStore(path, env={}).update(provider, "main", fields, strict=True)
    assert SECRET not in str(caught.value)
    assert not path.exists()


def test_list_names_the_file_in_use_even_when_it_is_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / ".tikflow").mkdir(parents=True)
    (project / ".tikflow" / "credentials.json").write_text('{"credentials": {}}')
    monkeypatch.chdir(project)
    monkeypatch.delenv("TIKFLOW_CREDENTIALS", raising=False)
    monkeypatch.delenv("TIKFLOW_CREDENTIALS_SEED", raising=False)
    code, out, _ = cli(["credentials", "list"], capsys)
    assert code == 0
    store = project / ".tikflow" / "credentials.json"
    assert (
        out.splitlines()[0]
        == f"credentials file: {store} (from .tikflow/credentials.json in the current directory)"
    )
    assert "no credentials" in out
    code, out, _ = cli(["credentials", "set", "dumpling", "main", f"api_key={SECRET}"], capsys)
    assert code == 0
    assert CredentialStore(store, env={}).get("dumpling", "main") == {"api_key": SECRET}
    code, out, err = cli(["credentials", "list", "--json"], capsys)
    assert json.loads(out)[0]["provider"] == "dumpling"
    assert f"credentials file: {store}" in err


def run_tikflow(*args: str, cwd: Path) -> tuple[int, str]:
    """The console script in a subprocess (argparse errors exit the process)."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("TIKFLOW_")}
    result = subprocess.run(
        [sys.executable, "-m", "tikflow.cli", *args],
        cwd=cwd,
        env={**env, "TIKFLOW_CREDENTIALS": str(cwd / "c.json"), "TEMPORAL_ADDRESS": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["credentials", "set", "tikapi", "main", SECRET],  # the value without `api_key=`
        ["credentials", "set", "tikapi", "main", f"{SECRET[:20]}==x"],  # a base64 key's padding
        ["credentials", "set", "tikapi", SECRET + "!", "api_key=x"],  # the key given as ACCOUNT
        ["credentials", "set", SECRET, "main", "api_key=x"],  # the key given as PROVIDER
        ["reauth", "run-1", "--account", "main", "--provider", f"account_key={SECRET}"],
        ["reauth", "run-1", "--account", "main", "--provider", SECRET],
        ["reauth", "run-1", "--account", "main", "--provider", "tikapi", SECRET, "--wat"],
        ["reauth", "run-1", "--account", "main", f"--provider={SECRET}"],
        ["reauth", "run-1", "--account", f"{SECRET}!"],
    ],
)
def test_a_secret_in_the_wrong_place_is_never_echoed(tmp_path: Path, argv: list[str]) -> None:
    code, output = run_tikflow(*argv, cwd=tmp_path)
    assert code == 2, output
    assert SECRET[:20] not in output
    assert "Traceback" not in output
    assert not (tmp_path / "c.json").exists()
    # The message still says where the problem is.
    assert re.search(r"argument \d|pair \d|ACCOUNT|PROVIDER", output), output


def test_ingress_credentials_are_set_like_any_other_and_read_by_the_ingress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tikflow.ingress import CREDENTIAL_FIELDS, CREDENTIAL_KIND

    file = str(tmp_path / "c.json")
    secret = "whsec_c3RhbmRhcmQtd2ViaG9va3Mtc2VjcmV0LTMyYnl0ZXM="
    code, out, _ = cli(
        ["credentials", "--file", file, "set", "ingress", "crm", f"signing_secret={secret}"], capsys
    )
    assert code == 0
    assert secret not in out
    code, _, _ = cli(["credentials", "--file", file, "set", "ingress", "zap", f"token={SECRET}"], capsys)
    assert code == 0
    store = CredentialStore(Path(file), env={"TIKFLOW_INGRESS__FORM__TOKEN": "from-the-environment"})
    # The kind and fields the ingress reads for `standard` and `token` routes.
    assert CREDENTIAL_KIND == "ingress"
    assert store.get(CREDENTIAL_KIND, "crm", required=(CREDENTIAL_FIELDS["standard"],)) == {
        "signing_secret": secret
    }
    assert store.get(CREDENTIAL_KIND, "zap", required=(CREDENTIAL_FIELDS["token"],)) == {"token": SECRET}
    assert store.get(CREDENTIAL_KIND, "form", required=("token",)) == {"token": "from-the-environment"}
    with pytest.raises(CredentialsRejected, match=r"tikflow credentials set ingress crm token=…"):
        store.get(CREDENTIAL_KIND, "crm", required=("token",))
    code, _, err = cli(
        ["credentials", "--file", file, "set", "ingress", "bad", "signing_secret=not base64!"], capsys
    )
    assert code != 0
    assert "Standard Webhooks secret" in err
