"""Hostile admin payloads by class, against the real sandbox over HTTP (issue 13, "Sandbox admin").

For every field of every admin payload, values of each wrong type and past each limit are posted;
each must be refused with a 4xx and a one-line message, leave nothing stored, log no traceback,
and the sandbox must serve normally afterwards. Bodies nested up to 100,000 deep are refused the
same way on admin and provider routes.
"""

from __future__ import annotations

import json
import logging
import time
import typing
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tikflow.emulator import demo_credentials
from tikflow.emulator.payloads import MAX_DEPTH, MAX_TICK, ConfigUpdate, FaultRuleInput
from tikflow.emulator.server import running_emulator
from tikflow.emulator.state import EmulatorConfig

CREDENTIALS = demo_credentials()
TIKAPI = {"X-API-KEY": CREDENTIALS["tikapi"]["main"]["api_key"]}


class Collected(logging.Handler):
    """Every record the sandbox's server logs (uvicorn's loggers do not reach the root)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[httpx.Client, Collected]]:
    """A sandbox of this module's own on loopback, and what its server logs."""
    logs = Collected()
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    with running_emulator(port=0, config=EmulatorConfig(seed=7)) as url:
        for logger in loggers:
            logger.addHandler(logs)
        try:
            with httpx.Client(base_url=url, timeout=10) as client:
                yield client, logs
        finally:
            for logger in loggers:
                logger.removeHandler(logs)


@pytest.fixture
def emulator(served: tuple[httpx.Client, Collected]) -> Iterator[httpx.Client]:
    # No reset per test: nothing a refused request did may linger, and the next test would see it.
    client, logs = served
    before = len(logs.records)
    yield client
    problems = [r for r in logs.records[before:] if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == [], [r.getMessage() for r in problems]


def _wrong_values(annotation: Any, default: Any, nullable: bool) -> list[Any]:
    """Values of the wrong JSON type for a field like `default`, and its limits overshot."""
    text = str(annotation)
    values: list[Any] = [[], {"a": 1}]
    if not nullable:
        values.append(None)
    if isinstance(default, dict) or "dict" in text:
        return [v for v in values if v != {"a": 1}] + [
            "x",
            {"a": "x"},
            {"a": 10**30},
            {str(n): 1 for n in range(101)},
        ]
    if isinstance(default, bool):
        return [*values, "yes", 1]
    if isinstance(default, int | float) or "int" in text or "float" in text:
        values += ["2", True, 10**30, -(10**30), "NaN"]
        if "int" in text and "float" not in text:
            values.append(1.5)
        return values
    return [*values, 1, True, "x" * 10_001]


def _config_cases() -> list[tuple[str, Any]]:
    cases = []
    for name, info in ConfigUpdate.model_fields.items():
        nullable = name in ("tikapi_retry_after", "webhook_url")  # null: no header, no webhooks
        default = getattr(EmulatorConfig(), name)
        cases += [(name, value) for value in _wrong_values(info.annotation, default, nullable)]
    return cases


def _rule_cases() -> list[tuple[str, Any]]:
    cases: list[tuple[str, Any]] = []
    for name, info in FaultRuleInput.model_fields.items():
        nullable = type(None) in typing.get_args(info.annotation)
        default = info.default if info.default is not None else (0 if "int" in str(info.annotation) else "")
        cases += [(name, value) for value in _wrong_values(info.annotation, default, nullable)]
    cases += [("probability", 1.5), ("status", 42), ("delay_s", 10**6), ("count", -1), ("kind", "nope")]
    return cases


def _post(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    # NaN is not JSON, but Python's json (and so a careless client) sends it: spelled out here.
    if isinstance(body, dict) and any(v == "NaN" for v in _leaves(body)):
        raw = json.dumps(body).replace('"NaN"', "NaN")
        return client.post(path, content=raw, headers={"content-type": "application/json"})
    return client.post(path, json=body)


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for child in value.values():
            yield from _leaves(child)
    elif isinstance(value, list):
        for child in value:
            yield from _leaves(child)
    else:
        yield value


def _refused(response: httpx.Response) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    message = response.json()["error"]
    assert isinstance(message, str)
    assert message
    assert "\n" not in message
    assert len(message) < 500
    return message


def _still_serves(client: httpx.Client) -> None:
    assert (
        client.get("/tikapi/public/check", params={"username": "lilyachty"}, headers=TIKAPI).status_code
        == 200
    )
    assert client.post("/_admin/tick", json={"comments": 1}).status_code == 200
    assert client.get("/_admin/state").status_code == 200


@pytest.mark.parametrize(("field", "value"), _config_cases(), ids=lambda v: repr(v)[:40])
def test_a_config_value_of_the_wrong_type_or_size_is_refused_and_not_stored(emulator, field, value):
    before = emulator.get("/_admin/config").json()
    # A valid field beside it is not stored either: the update is all or nothing.
    message = _refused(_post(emulator, "/_admin/config", {"publish_polls": 9, field: value}))
    assert emulator.get("/_admin/config").json() == before
    assert field in message
    _still_serves(emulator)


@pytest.mark.parametrize(("field", "value"), _rule_cases(), ids=lambda v: repr(v)[:40])
def test_a_fault_rule_of_the_wrong_type_or_size_is_refused_and_not_stored(emulator, field, value):
    good = {"provider": "tikapi", "kind": "status", "path": "/nothing-matches"}
    rule = {**good, field: value}
    _refused(_post(emulator, "/_admin/faults", {"rules": [good, rule]}))
    assert emulator.get("/_admin/faults").json() == {"rules": []}
    _still_serves(emulator)


@pytest.mark.parametrize(
    "body",
    [
        {"comments": 10**12},
        {"comments": MAX_TICK + 1},
        {"messages": 10**9},
        {"message_requests": 10**9},
        {"comments": -1},
        {"comments": "5"},
        {"comments": True},
        {"comments": 1.5},
        {"followers": {"lilyachty": 10**30}},
        {"followers": {"lilyachty": "5"}},
        {"followers": {"nobody-at-all": 5}},
        {"followers": {"lilyachty": 5}, "video_id": "no-such-video"},
        {"followers": []},
        {"text": ["x"]},
        {"text": "x" * 10_001},
        {"video_id": 7},
        {"bogus": 1},
    ],
    ids=repr,
)
def test_a_huge_or_mistyped_tick_is_refused_quickly_and_changes_nothing(emulator, body):
    before = emulator.get("/_admin/state").json()["tikapi"]
    started = time.monotonic()
    _refused(emulator.post("/_admin/tick", json=body))
    assert time.monotonic() - started < 1
    assert emulator.get("/_admin/state").json()["tikapi"] == before
    _still_serves(emulator)


def test_the_biggest_tick_allowed_is_quick(emulator):
    started = time.monotonic()
    made = emulator.post("/_admin/tick", json={"comments": MAX_TICK, "messages": MAX_TICK})
    assert made.status_code == 200
    assert len(made.json()["comments"]) == MAX_TICK
    assert time.monotonic() - started < 5
    emulator.post("/_admin/reset").raise_for_status()


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("reauthorize", {"provider": 1}),
        ("reauthorize", {"provider": "tikapi", "account_key": ["k"]}),
        ("reauthorize", {"provider": "tikapi", "account_key": {"k": 1}}),
        ("keys", {"provider": "tikapi", "account_key": 5, "username": "tikflow_demo"}),
        ("keys", {"provider": "tikapi", "username": [], "account_key": "AbCdEfGhIjKlMn0123"}),
        ("keys", {"provider": "tikapi", "api_key": {"x": 1}}),
        ("keys", {"provider": ["tiktok"]}),
        ("expire_token", {"provider": "tikapi", "account_key": True}),
        ("expire_token", {"provider": None}),
        ("faults", {"rules": "all"}),
        ("faults", {"rules": [1]}),
        ("faults", {"rules": [{"provider": "tikapi", "kind": "status"}] * 1001}),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_other_admin_payloads_of_the_wrong_type_are_refused(emulator, action, body):
    before = emulator.get("/_admin/state").json()
    _refused(emulator.post(f"/_admin/{action}", json=body))
    assert emulator.get("/_admin/state").json()["tokens"] == before["tokens"]
    assert emulator.get("/_admin/faults").json() == {"rules": []}
    _still_serves(emulator)


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _nested_list(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _bearer(provider: str, field: str = "api_key") -> dict[str, str]:
    return {"Authorization": f"Bearer {CREDENTIALS[provider]['main'][field]}"}


#: Every route that parses a JSON body, with the credentials that get a request that far.
ROUTES: dict[str, dict[str, str]] = {
    "/_admin/config": {},
    "/_admin/faults": {},
    "/_admin/tick": {},
    "/tikapi/user/comment": {**TIKAPI, "X-ACCOUNT-KEY": CREDENTIALS["tikapi"]["main"]["account_key"]},
    "/tiktok/v2/post/publish/status/fetch/": {},  # a fresh token is added by the test
    "/highlevel/social-media-posting/w37swmmLbA02zgqKPpxITe2/posts": {
        **_bearer("highlevel", "token"),
        "Version": "2021-07-28",
    },
    "/dumpling/api/v1/get-tiktok-profile": _bearer("dumpling"),
    "/socialapi/v1/posts": _bearer("socialapi"),
}


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
@pytest.mark.parametrize("shape", [_nested, _nested_list], ids=["objects", "lists"])
@pytest.mark.parametrize("route", ROUTES)
def test_a_deeply_nested_body_is_a_one_line_4xx_everywhere(emulator, route, shape, depth):
    headers = {**ROUTES[route], "content-type": "application/json"}
    if route.startswith("/tiktok/"):
        token = emulator.post("/_admin/keys", json={"provider": "tiktok"}).json()["access_token"]
        headers["Authorization"] = f"Bearer {token}"
    started = time.monotonic()
    response = emulator.post(route, content=shape(depth), headers=headers)
    assert time.monotonic() - started < 1
    assert 400 <= response.status_code < 500, (route, response.status_code, response.text[:200])
    assert "\n" not in response.text
    assert "Traceback" not in response.text
    _still_serves(emulator)


def test_a_body_as_deep_as_allowed_is_still_accepted(emulator):
    deep: Any = {}
    for _ in range(MAX_DEPTH - 2):
        deep = {"x": deep}
    # An unknown config field, but parsed: the refusal is about the field, not the nesting.
    message = _refused(emulator.post("/_admin/config", json={"nonsense": deep}))
    assert "nonsense" in message


def test_every_config_field_but_the_clock_is_validated():
    import dataclasses

    fields = {f.name for f in dataclasses.fields(EmulatorConfig)} - {"clock"}
    assert set(ConfigUpdate.model_fields) == fields
