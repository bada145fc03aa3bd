"""Every provider action, fed garbage, fails with `ProviderUnavailable` or `ProviderRejected`.

Driven by the action registry: `CASES` gives each action minimal valid inputs, and an action
registered without a case fails `test_every_action_has_a_case`. For each action:

1. the action runs once against the sandbox (in-process, `httpx.ASGITransport`) and every
   request and answer is recorded: the happy path must succeed;
2. the recording is replayed through a transport that swaps the answer to one request (each in
   turn) for garbage; the action runs at the activity boundary the worker sees
   (`ProviderActivities.execute` in an `ActivityEnvironment`, where provider errors become
   Temporal `ApplicationError`s), with fresh services, credentials from the credentials file, an
   in-memory effect ledger and a rate limiter that never sleeps.

Transport garbage (truncated JSON, HTML error pages, wrong content types, empty and huge bodies)
must end in `ProviderUnavailable`. Type garbage replaces each value of each real answer in turn
(objects and lists by scalars, strings by numbers and back, nulls everywhere, the whole answer by
a list, a string or null): the action either copes or fails with `ProviderUnavailable` or
`ProviderRejected`, and a whole answer that is not a JSON object always fails. Whatever fails
carries a one-line message naming the provider and what was wrong, and no secret.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import structlog.testing
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.contracts import ActionRequest
from activities.credentials import CredentialStore
from activities.http import MAX_BODY_BYTES
from activities.ledger import EffectLedger
from activities.ratelimit import RateLimiter
from activities.registry import Services, load_actions
from activities.runner import ProviderActivities
from activities.settings import Settings
from tikflow.emulator import demo_credentials
from tikflow.emulator.app import create_app
from tikflow.emulator.server import provider_base_urls
from tikflow.emulator.state import HIGHLEVEL_ACCOUNT, ME, SOCIALAPI_ACCOUNT, EmulatorConfig, Video, World
from tikflow.emulator.tiktok import issue_tokens

SANDBOX = "http://sandbox"
#: Where `http.request` and `notify.send` go: answered by `_hook`, not by the sandbox.
HOOKS = "hooks.test"
DOC_VIDEO = "7109178205151464746"
DOC_COMMENT = "7109185042560680750"
SECRET_FIELDS = {"api_key", "account_key", "token", "access_token", "refresh_token", "client_secret"}


# ---------------------------------------------------------------------------------------------
# The case table: every action with minimal valid inputs against the seeded sandbox.


@dataclass
class Setup:
    """What a case's inputs may be computed from: the sandbox world, a scratch dir, other actions."""

    world: World
    scratch: Path
    run: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


Inputs = dict[str, Any] | Callable[[Setup], Awaitable[dict[str, Any]]]


def _video_with_comments(world: World) -> str:
    return max(world.videos, key=lambda v: len(world.visible_comments(v, None)))


def _conversation(world: World, *, request: bool) -> dict[str, str]:
    conv = next(c for c in world.conversations.values() if c.request is request)
    return {"conversation_id": conv.conversation_id, "conversation_short_id": conv.short_id}


async def _user_posts(s: Setup) -> dict[str, Any]:
    return {"sec_uid": s.world.users["lilyachty"].sec_uid, "count": 2, "pages": 2}


async def _comments(s: Setup) -> dict[str, Any]:
    return {"media_id": _video_with_comments(s.world), "count": 2, "pages": 2}


async def _replies(s: Setup) -> dict[str, Any]:
    for _ in range(3):
        s.world.add_comment(DOC_VIDEO, reply_to=DOC_COMMENT)
    return {"media_id": DOC_VIDEO, "comment_id": DOC_COMMENT, "count": 2, "pages": 2}


async def _reply(s: Setup) -> dict[str, Any]:
    return {"media_id": DOC_VIDEO, "reply_comment_id": DOC_COMMENT, "text": "thank you!"}


async def _comment(s: Setup) -> dict[str, Any]:
    return {"media_id": _video_with_comments(s.world), "text": "nice one"}


async def _like_comment(s: Setup) -> dict[str, Any]:
    return {"media_id": DOC_VIDEO, "comment_id": DOC_COMMENT}


async def _public_listing(s: Setup) -> dict[str, Any]:
    return {"sec_uid": s.world.users[ME].sec_uid, "count": 2, "pages": 2}


async def _liked_posts(s: Setup) -> dict[str, Any]:
    for video in list(s.world.videos.values())[:3]:
        video.liked_by.append(ME)
    return {"count": 2, "pages": 2}


async def _delete_comment(s: Setup) -> dict[str, Any]:
    ours = s.world.add_comment(DOC_VIDEO, author=ME, text="to be deleted")
    return {"comment_id": ours.cid}


async def _messages(s: Setup) -> dict[str, Any]:
    s.world.tick(messages=3)
    return {**_conversation(s.world, request=False), "pages": 2, "limit": 2}


async def _send_message(s: Setup) -> dict[str, Any]:
    conv = next(c for c in s.world.conversations.values() if not c.request)
    return {**_conversation(s.world, request=False), "text": "yes it is!", "ticket": conv.ticket}


async def _accept_request(s: Setup) -> dict[str, Any]:
    conv = next(c for c in s.world.conversations.values() if c.request)
    return {**_conversation(s.world, request=True), "user_id": s.world.users[conv.peer].id}


async def _tiktok_publish_video(s: Setup) -> dict[str, Any]:
    video = s.scratch / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"v" * 4000)
    return {"file_path": str(video), "privacy_level": "SELF_ONLY", "title": "garbage test"}


async def _tiktok_publish_status(s: Setup) -> dict[str, Any]:
    draft = await s.run(
        "tiktok.upload_draft", {"source": "PULL_FROM_URL", "video_url": "https://example.com/v.mp4"}
    )
    return {"publish_id": draft["publish_id"]}


async def _dumpling_profile_videos(s: Setup) -> dict[str, Any]:
    # More videos than DumplingAI's page holds, so the listing pages.
    for n in range(12):
        video = Video(s.world.new_id(), "lilyachty", f"clip {n}", 1_700_000_000 - n * 3600, [], 100, 10)
        s.world.videos[video.id] = video
    return {"handle": "lilyachty", "pages": 2}


async def _dumpling_video_comments(s: Setup) -> dict[str, Any]:
    video = _video_with_comments(s.world)
    return {"url": f"https://www.tiktok.com/@x/video/{video}", "count": 2, "pages": 2}


async def _highlevel_list_posts(s: Setup) -> dict[str, Any]:
    for summary in ("one", "two", "three"):
        await s.run("highlevel.create_post", {"account_ids": [HIGHLEVEL_ACCOUNT], "summary": summary})
    return {"limit": 2, "pages": 2}


async def _socialapi_list_posts(s: Setup) -> dict[str, Any]:
    for text in ("one", "two", "three"):
        await s.run("socialapi.create_post", {"account_ids": [SOCIALAPI_ACCOUNT], "text": text})
    return {"limit": 2, "pages": 2}


async def _highlevel_get_post(s: Setup) -> dict[str, Any]:
    created = await s.run("highlevel.create_post", {"account_ids": [HIGHLEVEL_ACCOUNT], "summary": "seed"})
    return {"post_id": created["post_id"]}


async def _socialapi_get_post(s: Setup) -> dict[str, Any]:
    created = await s.run("socialapi.create_post", {"account_ids": [SOCIALAPI_ACCOUNT], "text": "seed"})
    return {"post_id": created["post_id"]}


CASES: dict[str, Inputs] = {
    # TikAPI
    "tikapi.profile": {"username": "lilyachty"},
    "tikapi.user_posts": _user_posts,
    "tikapi.hashtag_posts": {"name": "cats", "count": 2, "pages": 2},
    "tikapi.video": {"id": DOC_VIDEO},
    "tikapi.search": {"query": "cats", "pages": 2},
    "tikapi.explore": {"count": 2},
    "tikapi.comments": _comments,
    "tikapi.my_comments": _comments,
    "tikapi.replies": _replies,
    "tikapi.feed": {"count": 2, "pages": 2},
    "tikapi.followers": {"count": 2, "pages": 2},
    "tikapi.conversations": {"pages": 2},
    "tikapi.message_requests": {"pages": 2},
    "tikapi.messages": _messages,
    "tikapi.notifications": {"count": 2, "pages": 2},
    "tikapi.analytics": {},
    "tikapi.session_check": {},
    "tikapi.key_info": {},
    "tikapi.me": {},
    "tikapi.reply": _reply,
    "tikapi.comment": _comment,
    "tikapi.like_comment": _like_comment,
    "tikapi.like_video": {"media_id": DOC_VIDEO},
    "tikapi.unlike_comment": _like_comment,
    "tikapi.unlike_video": {"media_id": DOC_VIDEO},
    "tikapi.following": {"count": 2, "pages": 2},
    "tikapi.public_followers": _public_listing,
    "tikapi.public_following": _public_listing,
    "tikapi.liked_posts": _liked_posts,
    "tikapi.related_posts": {"video_id": DOC_VIDEO},
    "tikapi.delete_comment": _delete_comment,
    "tikapi.send_message": _send_message,
    "tikapi.accept_request": _accept_request,
    # TikTok
    "tiktok.user_info": {},
    "tiktok.videos": {"max_count": 2, "pages": 2},
    "tiktok.creator_info": {},
    "tiktok.publish_video": _tiktok_publish_video,
    "tiktok.upload_draft": {"source": "PULL_FROM_URL", "video_url": "https://example.com/v.mp4"},
    "tiktok.publish_status": _tiktok_publish_status,
    # HighLevel
    "highlevel.accounts": {},
    "highlevel.tiktok_profile": {"account_id": HIGHLEVEL_ACCOUNT},
    "highlevel.create_post": {"account_ids": [HIGHLEVEL_ACCOUNT], "summary": "hello from tikflow"},
    "highlevel.get_post": _highlevel_get_post,
    "highlevel.list_posts": _highlevel_list_posts,
    # DumplingAI
    "dumpling.profile": {"handle": "@stoolpresidente"},
    "dumpling.profile_videos": _dumpling_profile_videos,
    "dumpling.video_comments": _dumpling_video_comments,
    "dumpling.transcript": {"url": f"https://www.tiktok.com/@lilyachty/video/{DOC_VIDEO}"},
    # SocialAPI
    "socialapi.accounts": {},
    "socialapi.create_post": {"account_ids": [SOCIALAPI_ACCOUNT], "text": "hello from tikflow"},
    "socialapi.get_post": _socialapi_get_post,
    "socialapi.list_posts": _socialapi_list_posts,
    # Built-ins that reach the network.
    "http.request": {"url": f"https://{HOOKS}/api/things", "params": {"q": "x"}},
    "notify.send": {"message": "something happened", "webhook": f"https://{HOOKS}/notify"},
}

#: Registered actions that make no HTTP request at all.
NO_HTTP = {"log"}


def test_every_action_has_a_case() -> None:
    registered = set(load_actions())
    missing = sorted(registered - set(CASES) - NO_HTTP)
    assert not missing, f"actions without valid inputs in CASES (tests/activities/test_garbage.py): {missing}"
    assert not (set(CASES) | NO_HTTP) - registered, "CASES names actions that are not registered"


# ---------------------------------------------------------------------------------------------
# Transports: record the sandbox's answers, then replay them with one answer spoiled.


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    content: bytes

    def response(self) -> httpx.Response:
        return httpx.Response(self.status, headers=self.headers, content=self.content)


@dataclass(frozen=True)
class Exchange:
    method: str
    url: str
    answer: Answer

    @property
    def lenient(self) -> bool:
        """Requests whose 2xx answer need not be JSON: the generic HTTP nodes and chunk uploads."""
        url = httpx.URL(self.url)
        return url.host == HOOKS or (self.method == "PUT" and url.path.startswith("/tiktok/video/"))

    def json(self) -> Any:
        return json.loads(self.answer.content)

    def __str__(self) -> str:
        return f"{self.method} {httpx.URL(self.url).path}"


def _hook(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/notify":
        return httpx.Response(200, json={"received": True})
    return httpx.Response(200, json={"ok": True, "things": [{"id": 1, "name": "a"}]})


class Recorder(httpx.AsyncBaseTransport):
    """Answers from the sandbox app (and `_hook`), keeping every exchange."""

    def __init__(self, app: Any) -> None:
        self.sandbox = httpx.ASGITransport(app=app)
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == HOOKS:
            response = _hook(request)
        else:
            response = await self.sandbox.handle_async_request(request)
        content = await response.aread()
        answer = Answer(response.status_code, list(response.headers.multi_items()), content)
        self.exchanges.append(Exchange(request.method, str(request.url), answer))
        return answer.response()


#: Builds the garbage answer from the real one.
Spoil = Callable[[Exchange], httpx.Response]


class Replay(httpx.AsyncBaseTransport):
    """Replays a recording in order, answering request `at` with `spoil(recorded)` instead.

    An action that, fed garbage, asks more than was recorded gets the last answer again.
    """

    def __init__(self, exchanges: list[Exchange], at: int, spoil: Spoil) -> None:
        self.exchanges = exchanges
        self.at = at
        self.spoil = spoil
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self.count
        self.count += 1
        recorded = self.exchanges[min(index, len(self.exchanges) - 1)]
        if index == self.at:
            return self.spoil(recorded)
        return recorded.answer.response()


class MemoryLedger(EffectLedger):
    """The effect ledger with its file in memory: each run starts with none of its effects done."""

    def __init__(self) -> None:
        super().__init__(Path("/nonexistent/effects.json"))
        self.entries: dict[str, dict[str, Any]] = {}

    def _read(self) -> dict[str, dict[str, Any]]:
        return dict(self.entries)

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        self.entries = dict(entries)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        yield


async def _no_sleep(_seconds: float) -> None:
    return None


def _services(transport: httpx.AsyncBaseTransport, credentials: Path) -> Services:
    services = Services(
        http=httpx.AsyncClient(transport=transport),
        credentials=CredentialStore(credentials, env={}),
        settings=Settings(base_urls=provider_base_urls(SANDBOX)),
        limiter=RateLimiter(sleep=_no_sleep),
    )
    services.ledger = MemoryLedger()
    return services


async def _execute(services: Services, name: str, params: dict[str, Any], key: str) -> dict[str, Any]:
    """Run the action as the worker does: its activity, in an activity context."""
    act = load_actions()[name]
    request = ActionRequest(action=name, params=params, idempotency_key=key, recipe="garbage")
    result: dict[str, Any] = await ActivityEnvironment().run(
        ProviderActivities(services).execute, act, request
    )
    return result


# ---------------------------------------------------------------------------------------------
# Recording the happy path of every case (once per module).


#: Runs besides the one per action: a client path the minimal inputs do not take. Each names the
#: action and the fields its credential gets.
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    # The access token has expired: the call goes to TikTok's token endpoint first.
    "tiktok.user_info, token refreshed first": ("tiktok.user_info", {"expires_at": "1"}),
}

RUNS = sorted(CASES) + sorted(VARIANTS)


@dataclass
class Recording:
    """One happy run: the action, its inputs, the credentials file it started from, what it saw."""

    name: str
    params: dict[str, Any]
    credentials: bytes
    exchanges: list[Exchange]
    result: dict[str, Any]
    secrets: list[str]


def _secrets_in(value: Any) -> Iterator[str]:
    """Credential-like values in an answer (the tokens a refresh hands out)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in SECRET_FIELDS and isinstance(item, str) and item:
                yield item
            else:
                yield from _secrets_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _secrets_in(item)


def _write(path: Path, content: bytes) -> None:
    if not path.exists() or path.read_bytes() != content:
        path.write_bytes(content)


@dataclass
class Recordings:
    """The demo credentials file, and each run's recording, made on first use."""

    credentials: Path
    scratch: Path
    secrets: list[str]
    done: dict[str, Recording] = field(default_factory=dict)

    async def get(self, run: str) -> Recording:
        if run not in self.done:
            self.done[run] = await self._record(run)
        return self.done[run]

    async def _record(self, run: str) -> Recording:
        name, patch = VARIANTS.get(run, (run, {}))
        path = self.scratch / (re.sub(r"[^a-z_.]+", "-", run) + ".json")
        _write(path, self.credentials.read_bytes())
        if patch:
            CredentialStore(path, env={}).update(_provider(name), "main", patch)
        app = create_app(EmulatorConfig(seed=7))
        world: World = app.state.emulator.world
        # The seeded world issues the same first token pair the credentials file holds.
        assert issue_tokens(world)["access_token"] in self.secrets
        recorder = Recorder(app)
        services = _services(recorder, path)
        async with services.http:

            async def prepare(other: str, params: dict[str, Any]) -> dict[str, Any]:
                return await _execute(services, other, params, f"prepare/{other}")

            case = CASES[name]
            params = case if isinstance(case, dict) else await case(Setup(world, self.scratch, prepare))
            recorder.exchanges.clear()
            before = path.read_bytes()
            result = await _execute(services, name, params, "wf-garbage/step-1")
        assert recorder.exchanges, f"{run} made no request"
        issued = [
            secret
            for exchange in recorder.exchanges
            if exchange.answer.content[:1] == b"{"
            for secret in _secrets_in(exchange.json())
        ]
        return Recording(name, params, before, list(recorder.exchanges), result, self.secrets + issued)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Recordings:
    """The sandbox's demo credentials in a credentials file, and the recordings made with them."""
    home = tmp_path_factory.mktemp("garbage")
    path = home / "credentials.json"
    store = CredentialStore(path, env={})
    credentials = demo_credentials()
    tokens = issue_tokens(World(EmulatorConfig(seed=7)))
    credentials["tiktok"]["main"].update(
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        expires_at=str(int(time.time()) + 86_400),
    )
    for provider, accounts in credentials.items():
        for account, fields in accounts.items():
            store.update(provider, account, fields)
    secrets = [
        value
        for accounts in credentials.values()
        for fields in accounts.values()
        for name, value in fields.items()
        if name in SECRET_FIELDS
    ]
    return Recordings(path, home, secrets)


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[list[Any]]:
    """Thousands of failed actions log a warning each: keep them in memory, not on the console."""
    with structlog.testing.capture_logs() as logs:
        yield logs


@pytest.fixture
def credentials(credentials_file: Path) -> Path:
    """Where replays read credentials: the `credentials_file` fixture, reset before every replay."""
    return credentials_file


# ---------------------------------------------------------------------------------------------
# Garbage.

HTML = "<html>502 Bad Gateway</html>"


class Endless(httpx.AsyncByteStream):
    """A body without Content-Length that never ends; counts what the client pulled."""

    CHUNK = b"x" * (1024 * 1024)

    def __init__(self) -> None:
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.sent += len(self.CHUNK)
            yield self.CHUNK


@dataclass(frozen=True)
class Transport:
    """A garbage answer, the reason its error must give, and whether a 2xx makes it an error."""

    spoil: Spoil
    reason: str
    status: int


def _huge_streamed(_recorded: Exchange) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "application/json"}, stream=Endless())


TRANSPORT: dict[str, Transport] = {
    "truncated json": Transport(
        lambda r: httpx.Response(200, content=b'{"items": [', headers={"content-type": "application/json"}),
        "not JSON",
        200,
    ),
    "truncated json 503": Transport(
        lambda r: httpx.Response(503, content=b'{"items": [', headers={"content-type": "application/json"}),
        "not JSON",
        503,
    ),
    "html error page 200": Transport(
        lambda r: httpx.Response(200, text=HTML, headers={"content-type": "text/html"}), "not JSON", 200
    ),
    "html error page 502": Transport(
        lambda r: httpx.Response(502, text=HTML, headers={"content-type": "text/html"}), "not JSON", 502
    ),
    "not json labelled json": Transport(
        lambda r: httpx.Response(
            200, content=b"Service Unavailable", headers={"content-type": "application/json"}
        ),
        r"not JSON \(application/json\)",
        200,
    ),
    "json labelled text/plain 503": Transport(
        lambda r: httpx.Response(
            503, content=b'{"error": "upstream timed out"}', headers={"content-type": "text/plain"}
        ),
        "HTTP 503",
        503,
    ),
    "empty body": Transport(
        lambda r: httpx.Response(200, content=b"", headers={"content-type": "application/json"}),
        "empty body",
        200,
    ),
    "huge declared body": Transport(
        lambda r: httpx.Response(
            200,
            headers={"content-type": "application/json", "content-length": str(MAX_BODY_BYTES + 1)},
            stream=Endless(),
        ),
        f"body of {MAX_BODY_BYTES + 1} bytes, over the {MAX_BODY_BYTES} byte limit",
        200,
    ),
    "huge streamed body": Transport(_huge_streamed, f"over the {MAX_BODY_BYTES} byte limit", 200),
}

#: What a message must say for any garbage: one of these, whatever the kind.
ANY_REASON = r"not JSON|empty body|byte limit|malformed answer|answered without|HTTP \d{3}"

PROVIDER_ERRORS = {"ProviderUnavailable", "ProviderRejected"}


@dataclass
class Outcome:
    """One replay: what it returned or raised."""

    result: dict[str, Any] | None = None
    error: BaseException | None = None


async def _replay(
    rec: Recording, credentials: Path, at: int, spoil: Spoil, *, params: dict[str, Any] | None = None
) -> Outcome:
    _write(credentials, rec.credentials)  # a refresh in an earlier replay rewrote it
    services = _services(Replay(rec.exchanges, at, spoil), credentials)
    async with services.http:
        try:
            return Outcome(
                result=await _execute(services, rec.name, params or rec.params, "wf-garbage/step-1")
            )
        except Exception as exc:
            return Outcome(error=exc)


def _provider(name: str) -> str:
    return "http" if name in ("http.request", "notify.send") else name.split(".", 1)[0]


def _judge_error(
    rec: Recording, error: BaseException | None, *, types: set[str], reason: str, secrets: list[str]
) -> str | None:
    """Why `error` is not an acceptable garbage failure of `rec`'s action (None when it is)."""
    if not isinstance(error, ApplicationError):
        return f"raised {type(error).__name__}: {error!r}"
    if error.type not in types:
        return f"raised {error.type}, expected one of {sorted(types)}: {error.message}"
    message = error.message
    provider = _provider(rec.name)
    if "\n" in message or "\r" in message:
        return f"message is not one line: {message!r}"
    if not message.startswith(provider) or error.details[0].get("provider") != provider:
        return f"message does not name the provider {provider}: {message!r}"
    if not re.search(reason, message):
        return f"message does not say what was wrong ({reason!r}): {message!r}"
    carried = message + json.dumps(error.details, default=str)
    if any(secret in carried for secret in secrets):
        return f"message or details carry a credential: {message!r}"
    return None


# ---------------------------------------------------------------------------------------------
# The tests.


@pytest.mark.parametrize("name", RUNS)
async def test_the_case_succeeds_on_the_sandbox(name: str, recordings: Recordings) -> None:
    rec = await recordings.get(name)
    assert rec.result is not None
    json.dumps(rec.result)


async def test_the_refresh_variant_goes_to_the_token_endpoint_first(recordings: Recordings) -> None:
    rec = await recordings.get("tiktok.user_info, token refreshed first")
    assert [str(e) for e in rec.exchanges] == ["POST /tiktok/v2/oauth/token/", "GET /tiktok/v2/user/info/"]


@pytest.mark.parametrize("kind", list(TRANSPORT))
@pytest.mark.parametrize("name", RUNS)
async def test_transport_garbage_is_provider_unavailable(
    name: str, kind: str, recordings: Recordings, credentials: Path
) -> None:
    """Each request in turn answered with garbage: the action ends in `ProviderUnavailable`.

    The generic HTTP nodes and TikTok's chunk upload take any 2xx body (they return or ignore it),
    so for them a 2xx non-JSON answer is a success and only the rest must fail.
    """
    rec = await recordings.get(name)
    garbage = TRANSPORT[kind]
    problems: list[str] = []
    for at, exchange in enumerate(rec.exchanges):
        outcome = await _replay(rec, credentials, at, garbage.spoil)
        where = f"request {at} ({exchange})"
        tolerated = exchange.lenient and garbage.status < 300 and "byte limit" not in garbage.reason
        if tolerated:
            if outcome.error is not None:
                problems.append(f"{where}: a 2xx the request accepts failed: {outcome.error!r}")
            continue
        if outcome.error is None:
            problems.append(f"{where}: succeeded with {outcome.result!r}")
            continue
        problem = _judge_error(
            rec,
            outcome.error,
            types={"ProviderUnavailable"},
            reason=garbage.reason,
            secrets=rec.secrets,
        )
        if problem:
            problems.append(f"{where}: {problem}")
    assert not problems, f"{name} fed {kind}:\n" + "\n".join(problems)


async def test_a_streamed_huge_body_is_abandoned_at_the_limit(
    recordings: Recordings, credentials: Path
) -> None:
    rec = await recordings.get("tikapi.me")
    stream = Endless()
    outcome = await _replay(
        rec,
        credentials,
        0,
        lambda r: httpx.Response(200, stream=stream, headers={"content-type": "application/json"}),
    )
    assert isinstance(outcome.error, ApplicationError), outcome
    assert outcome.error.type == "ProviderUnavailable"
    assert MAX_BODY_BYTES < stream.sent <= MAX_BODY_BYTES + len(Endless.CHUNK)


def _as_text_plain(recorded: Exchange) -> httpx.Response:
    """The real answer, labelled `text/plain`."""
    headers = [(k, v) for k, v in recorded.answer.headers if k.lower() != "content-type"]
    return httpx.Response(
        recorded.answer.status,
        headers=[*headers, ("content-type", "text/plain")],
        content=recorded.answer.content,
    )


async def test_a_json_body_labelled_text_plain_is_read_as_json(
    recordings: Recordings, credentials: Path
) -> None:
    """The content type does not decide: a provider's JSON under a wrong label is still its answer."""
    for name in RUNS:
        rec = await recordings.get(name)
        for at, exchange in enumerate(rec.exchanges):
            outcome = await _replay(rec, credentials, at, _as_text_plain)
            assert outcome.error is None, f"{name} request {at} ({exchange}): {outcome.error!r}"


# ---------------------------------------------------------------------------------------------
# Wrong JSON types: every value of every real answer replaced in turn.

Path_ = tuple[str | int, ...]


def _paths(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every value in an answer with its path; the first item of a list stands for all of them."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list) and value:
        yield from _paths(value[0], (*path, 0))


def _wrong(value: Any) -> list[Any]:
    """Values of the wrong JSON type for `value`: nulls, numbers as strings, scalars for containers."""
    if isinstance(value, dict):
        return [None, "string", [value], 7]
    if isinstance(value, list):
        return [None, "string", {"0": value[0] if value else 1}, 7]
    if isinstance(value, bool):
        return [None, "true", 1]
    if isinstance(value, int | float):
        return [None, str(value), "abc", {}, True]
    if isinstance(value, str):
        return [None, 12345, [value], {}]
    return ["string", 7, {}, []]


def _replace(doc: Any, path: Path_, new: Any) -> Any:
    if not path:
        return new
    copy = list(doc) if isinstance(doc, list) else dict(doc)
    copy[path[0]] = _replace(doc[path[0]], path[1:], new)  # type: ignore[index]
    return copy


def _mutations(body: Any) -> Iterator[tuple[str, Any]]:
    for path, value in _paths(body):
        for new in _wrong(value):
            yield (
                f"{'.'.join(map(str, path)) or '(answer)'} = {json.dumps(new)[:40]}",
                _replace(body, path, new),
            )
    yield '(answer) = {"data": "string"}', {"data": "string"}


def _answer_with(exchange: Exchange, body: Any) -> httpx.Response:
    headers = [
        (k, v) for k, v in exchange.answer.headers if k.lower() not in ("content-length", "content-type")
    ]
    headers.append(("content-type", "application/json"))
    return httpx.Response(exchange.answer.status, headers=headers, content=json.dumps(body).encode())


@pytest.mark.parametrize("name", RUNS)
async def test_wrong_json_types_never_escape(name: str, recordings: Recordings, credentials: Path) -> None:
    """Each value of each answer swapped for a wrong type: the action copes or fails cleanly.

    Coping is allowed (optional fields are read leniently, numbers may come as strings); failing
    must be `ProviderUnavailable` or `ProviderRejected` with a one-line, secret-free message. An
    answer that is not a JSON object at all must fail with `ProviderUnavailable`.
    """
    rec = await recordings.get(name)
    problems: list[str] = []
    tried = 0
    for at, exchange in enumerate(rec.exchanges):
        try:
            body = exchange.json()
        except ValueError:
            continue  # an empty answer (204, 201 of a chunk upload) has no types to get wrong
        for label, mutated in _mutations(body):
            tried += 1
            outcome = await _replay(rec, credentials, at, functools.partial(_answer_with, body=mutated))
            where = f"request {at} ({exchange}) {label}"
            must_fail = not exchange.lenient and not isinstance(mutated, dict)
            if outcome.error is None:
                if must_fail:
                    problems.append(f"{where}: succeeded with {outcome.result!r}"[:300])
                else:
                    json.dumps(outcome.result)
                continue
            problem = _judge_error(
                rec,
                outcome.error,
                types={"ProviderUnavailable"} if must_fail else PROVIDER_ERRORS,
                reason="malformed answer" if must_fail else ANY_REASON,
                secrets=rec.secrets,
            )
            if problem:
                problems.append(f"{where}: {problem}"[:400])
    assert tried, f"{name}: no JSON answer to spoil"
    assert not problems, f"{name}, {len(problems)} of {tried} wrong-type answers:\n" + "\n".join(
        problems[:40]
    )
