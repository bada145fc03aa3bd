"""Named provider credentials: resolved inside activities, never carried by workflows.

A recipe says `account: main`; this store turns that name into the provider's keys at the moment
an activity needs them. Two sources, environment first:

- environment variables: `TIKFLOW_<PROVIDER>_<FIELD>` for the account `main`
  (`TIKFLOW_TIKAPI_API_KEY`) and `TIKFLOW_<PROVIDER>__<ACCOUNT>__<FIELD>` for any other
  (`TIKFLOW_TIKAPI__BRAND2__ACCOUNT_KEY`; the account name upper-cased, `-` written as `_`);
- a JSON file, found by one rule that every command follows (`default_path`): the file
  `TIKFLOW_CREDENTIALS` names; else `.tikflow/credentials.json` when it exists in the current
  directory (the store `tikflow dev` keeps there); else `credentials.json` in the user's config
  directory. So a second shell in the folder where
  `tikflow dev` runs reads and writes the store its worker uses. Mode 0600, rewritten atomically
  (temp file + `os.replace`) under an exclusive `flock`, so two processes refreshing tokens at
  once both land. The file is re-read whenever its mtime changes, so a `tikflow credentials set`
  in another process is seen by a running worker;
- a read-only seed file under it (`TIKFLOW_CREDENTIALS_SEED`, e.g. a Docker secret), same format:
  a credential or field the writable file does not have comes from the seed. Rotated tokens and
  re-authorized keys are written to the writable file and shadow the seed's from then on.

The variables are credential data, not configuration, so they are not fields of
`activities.config.EngineConfig` (its docstring says why): the store reads them from the
environment it is given, each time a credential is resolved.

Values never leave through `list()` or error messages; only field names and masked hints do.
Writes from the command line are `strict`: values are checked per field and the credential must
be usable afterwards (`REQUIRED_FIELDS`), or nothing is written, so no command leaves half a
credential behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import re
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from activities.errors import CredentialsRejected
from activities.jsonfile import exclusive_lock, open_lock_file, read_json, write_json_atomically
from activities.redact import remember_secrets

__all__ = [
    "ACCOUNT_NAME",
    "INGRESS_FIELDS",
    "INGRESS_KIND",
    "PROVIDER_FIELDS",
    "REQUIRED_FIELDS",
    "CredentialInfo",
    "CredentialStore",
    "CredentialStoreError",
    "IncompleteCredential",
    "check_values",
    "default_path",
    "mask",
    "path_origin",
    "resolve_path",
    "seed_path",
]

if TYPE_CHECKING:
    #: The documented fields of each kind of credential (`credentials set` refuses others, as
    #: typos): each provider's `Provider.fields`, then `webhook` (see `_WEBHOOK_FIELDS`),
    #: `ingress` (`INGRESS_FIELDS`) and `links` (`_LINKS_FIELDS`).
    PROVIDER_FIELDS: dict[str, tuple[str, ...]]
    #: What a credential needs before it is any use (each provider's `Provider.required`): a
    #: strict write that would leave one without these is refused.
    REQUIRED_FIELDS: dict[str, tuple[str, ...]]

#: Besides the providers, `webhook` credentials hold a notification URL (`url`), which often
#: carries a token of its own, so a recipe names it (`webhook: {credential: alerts}`) instead.
_WEBHOOK_FIELDS = ("url",)
#: And one `links` credential (`main`) holds the key that signs OAuth states and re-authorization
#: links (`activities.links`).
_LINKS_FIELDS = ("signing_key",)
#: And `ingress` credentials prove the senders of the ingress's generic routes
#: (`tikflow.ingress`): a route that authenticates with `standard` (Standard Webhooks) reads the
#: credential's `signing_secret` (`whsec_<base64>`), one with `token` its shared bearer `token`.
INGRESS_KIND = "ingress"
#: How a generic route authenticates → the field of its `ingress` credential that proves it.
INGRESS_FIELDS: dict[str, str] = {"standard": "signing_secret", "token": "token"}
_STANDARD_SECRET = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


@functools.cache
def _provider_fields() -> dict[str, tuple[str, ...]]:
    from activities.provider import providers

    return {
        **{p.name: p.fields for p in providers()},
        "webhook": _WEBHOOK_FIELDS,
        INGRESS_KIND: tuple(INGRESS_FIELDS.values()),
        "links": _LINKS_FIELDS,
    }


@functools.cache
def _required_fields() -> dict[str, tuple[str, ...]]:
    from activities.provider import providers

    # An ingress credential needs one of its fields, whichever its route reads (`check_values`).
    return {
        **{p.name: p.required for p in providers()},
        "webhook": _WEBHOOK_FIELDS,
        INGRESS_KIND: (),
        "links": _LINKS_FIELDS,
    }


def __getattr__(name: str) -> Any:
    """`PROVIDER_FIELDS` and `REQUIRED_FIELDS`, derived from the provider declarations on first use.

    Lazy because the provider packages import the modules that import this one.
    """
    if name == "PROVIDER_FIELDS":
        return _provider_fields()
    if name == "REQUIRED_FIELDS":
        return _required_fields()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: A credential name as the command line accepts it (it is also spelled in environment names).
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

_FILE_VERSION = 1
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PROJECT_DIR = ".tikflow"


class CredentialStoreError(Exception):
    """The credentials file cannot be read or written (corrupt JSON, bad permissions, …)."""


class IncompleteCredential(ValueError):
    """A strict write would leave a credential unusable or hold a malformed value.

    The message names the provider, account and fields, never a value.
    """


@dataclass(frozen=True)
class CredentialInfo:
    """What `list()` tells about one credential: names and where it comes from, never values.

    Attributes:
        provider: Provider key.
        account: Credential name.
        fields: The field names that are set.
        source: Where its fields come from, `+`-joined in order of precedence: `seed`, `file`,
            `env` (env values override the file's, the file's override the seed's).
        hints: Field name → a masked hint such as `…3a9f` (empty for short values).
    """

    provider: str
    account: str
    fields: tuple[str, ...]
    source: str
    hints: dict[str, str] = field(default_factory=dict)


def seed_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The read-only seed file under the store (`TIKFLOW_CREDENTIALS_SEED`), if one is set."""
    from activities.config import EngineConfig

    seed: Path | None = EngineConfig.read("credentials_seed", env)
    return seed


def default_path(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """Where the credentials file lives, the same for every command run in one folder.

    `TIKFLOW_CREDENTIALS`, else `.tikflow/credentials.json` when it exists in `cwd` (default: the
    current directory; `tikflow dev` creates it there), else the user's config dir. Only the
    current directory counts, not its parents: a `.tikflow/` left in a home directory must not
    capture every project below it. The file, not the directory, decides: `make demo` leaves a
    `.tikflow/demo/` behind, which must not move the user's own credentials.
    """
    return _resolve(env, cwd)[0]


def path_origin(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    """Why `default_path` chose its file, for people (`tikflow credentials list`, the worker log)."""
    return _resolve(env, cwd)[1]


def _resolve(env: Mapping[str, str] | None, cwd: Path | None) -> tuple[Path, str]:
    from activities.config import EngineConfig

    return resolve_path(EngineConfig.read("credentials_file", env), cwd)


def resolve_path(override: Path | None, cwd: Path | None = None) -> tuple[Path, str]:
    """`default_path` and `path_origin` for a `TIKFLOW_CREDENTIALS` already parsed (None: unset)."""
    if override is not None:
        return override, "TIKFLOW_CREDENTIALS"
    project = (cwd or Path.cwd()) / _PROJECT_DIR / "credentials.json"
    if project.is_file():
        return project.absolute(), f"{_PROJECT_DIR}/credentials.json in the current directory"
    return Path(platformdirs.user_config_dir("tikflow")) / "credentials.json", "the user config dir"


def mask(value: str) -> str:
    """A hint that tells two keys apart without revealing one: `…` plus the last 4 characters.

    Values shorter than 12 characters show nothing at all, since 4 characters would be too much of them.
    """
    return f"…{value[-4:]}" if len(value) >= 12 else "…"


def _env_name(provider: str, account: str, field_name: str) -> str:
    if account == "main":
        return f"TIKFLOW_{provider.upper()}_{field_name.upper()}"
    return f"TIKFLOW_{provider.upper()}__{_env_account(account)}__{field_name.upper()}"


def _env_account(account: str) -> str:
    return account.upper().replace("-", "_")


def check_values(provider: str, account: str, fields: Mapping[str, str]) -> None:
    """Refuse values no credential field can hold; messages name the field, never the value.

    Raises:
        IncompleteCredential: An empty value, a control character (a paste gone wrong), an
            `expires_at` that is not epoch seconds, a webhook `url` that is not http(s)://host/…,
            an ingress `signing_secret` that is not `whsec_<base64>` (16 characters or more).
    """
    where = f"{provider}/{account}"
    for name, value in fields.items():
        if not str(value).strip():
            raise IncompleteCredential(f"{where}: {name} is empty; nothing was written")
        if _CONTROL.search(str(value)):
            raise IncompleteCredential(
                f"{where}: {name} holds a control character (a line break?); nothing was written"
            )
    if provider == "tiktok" and "expires_at" in fields and not str(fields["expires_at"]).isdigit():
        raise IncompleteCredential(f"{where}: expires_at must be epoch seconds; nothing was written")
    if provider == "webhook" and "url" in fields:
        scheme, sep, rest = str(fields["url"]).partition("://")
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        if not sep or scheme.lower() not in ("http", "https") or not host or " " in rest:
            raise IncompleteCredential(f"{where}: url must be an http(s)://host/… URL; nothing was written")
    if provider == INGRESS_KIND:
        if not fields:
            raise IncompleteCredential(
                f"{where}: give signing_secret=… (standard senders) or token=… (token senders); "
                "nothing was written"
            )
        secret = fields.get("signing_secret")
        encoded = None if secret is None else str(secret).removeprefix("whsec_")
        if encoded is not None and (not _STANDARD_SECRET.fullmatch(encoded) or len(encoded) % 4):
            raise IncompleteCredential(
                f"{where}: signing_secret must be a Standard Webhooks secret (whsec_<base64>); "
                "nothing was written"
            )


class CredentialStore:
    """Resolves and stores named credentials per provider (see the module docstring for sources).

    Safe to share across the activities of one worker: reads and writes are serialized by a lock,
    and writes by other processes are picked up on the next read.

    Args:
        path: The JSON file; default `default_path(env)`.
        env: Environment to read overrides from; default `os.environ` (read live).
        seed: A read-only file under `path`; default `seed_path(env)` when `path` is not given.
    """

    def __init__(
        self, path: Path | None = None, env: Mapping[str, str] | None = None, seed: Path | None = None
    ) -> None:
        self._env: Mapping[str, str] = os.environ if env is None else env
        self.path = path if path is not None else default_path(self._env)
        self.seed = seed if seed is not None or path is not None else seed_path(self._env)
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, dict[str, str]]] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._seed_data: dict[str, dict[str, dict[str, str]]] = {}
        self._seed_stamp: tuple[int, int, int] | None = None

    def get(self, provider: str, account: str, required: Iterable[str] = ()) -> dict[str, str]:
        """The fields of credential `account` for `provider`, environment overriding the file.

        Args:
            provider: Provider key (`tikapi`, `tiktok`, …).
            account: Credential name (`main`).
            required: Fields that must be present; a missing one is an error naming the fix.

        Raises:
            CredentialsRejected: No such credential, a required field is missing, or the file is
                unreadable. The message names the provider, account and the command that fixes it.
        """
        try:
            with self._lock:
                stored = dict(self._current().get(provider, {}).get(account, {}))
        except CredentialStoreError as exc:
            raise CredentialsRejected(str(exc), provider=provider, account=account) from None
        fields = {**stored, **self._env_fields(provider, account)}
        missing = [name for name in required if not fields.get(name)]
        if not fields or missing:
            wanted = missing or list(_provider_fields().get(provider, ("api_key",)))[:1]
            what = "no credential" if not fields else f"credential without {', '.join(missing)}"
            example = " ".join(f"{name}=…" for name in wanted)
            raise CredentialsRejected(
                f"{what} for {provider} account {account!r}; set it with "
                f"`tikflow credentials set {provider} {account} {example}` "
                f"or the environment variable {_env_name(provider, account, wanted[0])}",
                provider=provider,
                account=account,
            )
        # What the store hands out is masked in every log line of this process from now on
        # (ids and timestamps are not secrets, and masking them would hide what a line is about).
        remember_secrets(v for k, v in fields.items() if not k.endswith(("_id", "_at")))
        return fields

    def update(
        self,
        provider: str,
        account: str,
        fields: Mapping[str, str],
        *,
        strict: bool = False,
        require: Iterable[str] = (),
    ) -> None:
        """Merge `fields` into the stored credential and write the file atomically.

        Safe against concurrent writers in this and other processes: the file is re-read under an
        exclusive lock, so an update made meanwhile (a refreshed token) is merged, not lost.

        Args:
            provider: Provider key (or `webhook`, `ingress`).
            account: Credential name.
            fields: Field name → new value.
            strict: Check every value (not empty, no control characters, an `expires_at` in epoch
                seconds, a webhook `url` that is http(s)) and that the merged credential, with the
                seed and the environment, has the provider's `REQUIRED_FIELDS`; on any problem
                nothing is written. The command line writes this way; token rotation does not.
            require: More fields a strict write must leave set (a re-authorization's).

        Raises:
            ValueError: Unknown provider, or a field name that is not lower_snake_case.
            IncompleteCredential: A strict write with a bad value or leaving a required field unset.
            CredentialStoreError: The file cannot be read or written.
        """
        self._check_fields(provider, fields)
        new = {name: str(value) for name, value in fields.items()}
        wanted = list(dict.fromkeys([*_required_fields()[provider], *require]))
        if strict:
            check_values(provider, account, fields)
            # Checked before the lock too, so a refused write creates no directory or lock file.
            self._refuse_incomplete(provider, account, wanted, self._read(), new)
        with self._lock, self._file_lock():
            data = self._read()
            if strict:
                self._refuse_incomplete(provider, account, wanted, data, new)
            data.setdefault(provider, {})[account] = {**data.get(provider, {}).get(account, {}), **new}
            self._write(data)

    def _refuse_incomplete(
        self,
        provider: str,
        account: str,
        wanted: list[str],
        data: dict[str, dict[str, dict[str, str]]],
        new: dict[str, str],
    ) -> None:
        merged = {**data.get(provider, {}).get(account, {}), **new}
        missing = self.missing(provider, account, wanted, pending=merged)
        if missing:
            example = " ".join(f"{name}=…" for name in missing)
            raise IncompleteCredential(
                f"{provider}/{account} would lack {', '.join(missing)}: give "
                f"{'it' if len(missing) == 1 else 'them'} too ({example}); nothing was written"
            )

    def missing(
        self,
        provider: str,
        account: str,
        names: Iterable[str],
        *,
        pending: Mapping[str, str] | None = None,
    ) -> list[str]:
        """The fields of `names` the credential lacks (counting the seed, file and environment).

        Args:
            provider: Provider key.
            account: Credential name.
            names: Fields that must be set.
            pending: The file's fields as a write is about to leave them (default: as stored).

        Raises:
            CredentialStoreError: The file cannot be read.
        """
        if pending is None:
            with self._lock:
                stored = dict(self._current().get(provider, {}).get(account, {}))
        else:
            seed = self._read(self.seed).get(provider, {}).get(account, {}) if self.seed else {}
            stored = {**seed, **pending}
        have = {**stored, **self._env_fields(provider, account)}
        return [name for name in names if not have.get(name)]

    def remove(self, provider: str, account: str) -> bool:
        """Delete the stored credential; True if there was one (environment variables stay).

        Raises:
            CredentialStoreError: The file cannot be read or written.
        """
        with self._lock, self._file_lock():
            data = self._read()
            accounts = data.get(provider, {})
            if account not in accounts:
                return False
            del accounts[account]
            if not accounts:
                del data[provider]
            self._write(data)
            return True

    def list(self) -> list[CredentialInfo]:
        """Every known credential, from the file and the environment, without any secret value.

        Raises:
            CredentialStoreError: The file cannot be read.
        """
        with self._lock:
            stored = {p: {a: dict(f) for a, f in accs.items()} for p, accs in self._current().items()}
            seeded = {(p, a) for p, accs in self._seed_data.items() for a in accs}
            written = {(p, a) for p, accs in self._data.items() for a in accs}
        keys = {(p, a) for p, accs in stored.items() for a in accs} | set(self._env_accounts())
        infos: list[CredentialInfo] = []
        for provider, account in sorted(keys):
            from_file = stored.get(provider, {}).get(account, {})
            from_env = self._env_fields(provider, account)
            merged = {**from_file, **from_env}
            origins = (
                ("seed", (provider, account) in seeded),
                ("file", (provider, account) in written),
                ("env", from_env),
            )
            source = "+".join(s for s, has in origins if has)
            infos.append(
                CredentialInfo(
                    provider=provider,
                    account=account,
                    fields=tuple(sorted(merged)),
                    source=source,
                    hints={name: mask(value) for name, value in sorted(merged.items())},
                )
            )
        return infos

    def _check_fields(self, provider: str, fields: Mapping[str, str]) -> None:
        known = _provider_fields()
        if provider not in known:
            raise ValueError(f"unknown provider {provider!r}; known: {', '.join(known)}")
        # Beyond the documented fields a client may keep more (a token's scope, its refresh
        # expiry); names stay identifier-like so they can be spelled as environment variables.
        bad = sorted(name for name in fields if not _FIELD_NAME.fullmatch(name))
        if bad:
            raise ValueError(f"invalid field name(s) {', '.join(map(repr, bad))}: use lower_snake_case")

    def _env_fields(self, provider: str, account: str) -> dict[str, str]:
        fields: dict[str, str] = {}
        for name in _provider_fields().get(provider, ()):
            value = self._env.get(_env_name(provider, account, name))
            if value:
                fields[name] = value
        return fields

    def _env_accounts(self) -> Iterator[tuple[str, str]]:
        """(provider, account) pairs that have at least one environment variable."""
        for provider, names in _provider_fields().items():
            prefix = f"TIKFLOW_{provider.upper()}"
            for key, value in self._env.items():
                if not value or not key.startswith(prefix):
                    continue
                rest = key[len(prefix) :]
                if rest.startswith("__"):
                    account, sep, name = rest[2:].partition("__")
                    if sep and name.lower() in names:
                        # Env names cannot tell `-` from `_` or case: report the canonical form.
                        yield provider, account.lower()
                elif rest.startswith("_") and rest[1:].lower() in names:
                    yield provider, "main"

    def _current(self) -> dict[str, dict[str, dict[str, str]]]:
        """The seed under the file's content, each re-read only when it changed (holds `_lock`)."""
        stamp = self._stat()
        if stamp != self._stamp:
            self._data = self._read()
            self._stamp = stamp
        if self.seed is None:
            return self._data
        seed_stamp = self._stat(self.seed)
        if seed_stamp != self._seed_stamp:
            self._seed_data = self._read(self.seed)
            self._seed_stamp = seed_stamp
        merged = {p: {a: dict(f) for a, f in accs.items()} for p, accs in self._seed_data.items()}
        for provider, accounts in self._data.items():
            for account, fields in accounts.items():
                merged.setdefault(provider, {}).setdefault(account, {}).update(fields)
        return merged

    def _stat(self, path: Path | None = None) -> tuple[int, int, int] | None:
        try:
            st = (path or self.path).stat()
        except FileNotFoundError:
            return None
        # Every atomic replace makes a new inode, so this notices even a same-size rewrite
        # within one mtime tick.
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _read(self, path: Path | None = None) -> dict[str, dict[str, dict[str, str]]]:
        path = path or self.path
        doc = read_json(
            path, CredentialStoreError, invalid="fix it or remove it and set the credentials again"
        )
        if doc is None:
            return {}
        credentials = doc.get("credentials") if isinstance(doc, dict) else None
        if not isinstance(credentials, dict) or not all(
            isinstance(accounts, dict)
            and all(
                isinstance(fields, dict) and all(isinstance(v, str) for v in fields.values())
                for fields in accounts.values()
            )
            for accounts in credentials.values()
        ):
            raise CredentialStoreError(
                f"{path} does not hold {{'credentials': {{provider: {{account: {{field: value}}}}}}}}"
            )
        return credentials

    def _write(self, data: dict[str, dict[str, dict[str, str]]]) -> None:
        """Replace the file atomically: a reader sees the old or the new content, never half."""
        # The temp file is 0600, so the secret is never world-readable.
        write_json_atomically(
            self.path,
            {"version": _FILE_VERSION, "credentials": data},
            CredentialStoreError,
            temp_prefix=".credentials-",
            indent=2,
        )
        self._data = data
        self._stamp = self._stat()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the store's refresh lock, shared with every process using this file.

        Token refreshes run under it, so of two worker processes finding one account's token stale
        the second waits, re-reads the file and finds the first's new pair instead of spending the
        rotated refresh token again. Waiting happens in a thread; the event loop keeps running.

        Raises:
            CredentialStoreError: The lock file cannot be created.
        """
        fd = open_lock_file(self.path.with_name(self.path.name + ".refresh.lock"), CredentialStoreError)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting = asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
            try:
                await asyncio.shield(waiting)
            except asyncio.CancelledError:
                # The thread still gets the lock eventually: release it (by closing) once it does.
                waiting.add_done_callback(lambda _: os.close(fd))
                raise
        try:
            yield
        finally:
            os.close(fd)

    def _file_lock(self) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock shared with other processes, held across read-merge-write."""
        return exclusive_lock(self.path, CredentialStoreError)
