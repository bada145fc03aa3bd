"""Redaction of secret-looking text in logs, errors and history."""

from __future__ import annotations

import pytest
import structlog
from structlog.testing import capture_logs

from activities.redact import REDACTED, redact, redact_secrets, redact_value

API_KEY = "DemoAPIKeyTokenSeHYGXDfd4SFD320Sc39Asd0Sc39Asd4s"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"X-API-KEY: {API_KEY}", f"X-API-KEY: {REDACTED}"),
        ("x-account-key=abc", f"x-account-key={REDACTED}"),
        ("Authorization: Bearer abc.def", f"Authorization: {REDACTED}"),
        ("sent Bearer abcdef123 to the API", f"sent Bearer {REDACTED} to the API"),
        ('{"access_token": "act.12ab", "open_id": "x"}', f'{{"access_token": "{REDACTED}", "open_id": "x"}}'),
        ("?api_key=abcd1234&count=30", f"?api_key={REDACTED}&count=30"),
        (f"token {JWT} expired", f"token {REDACTED} expired"),
        (f"key {API_KEY}.", f"key {REDACTED}"),
        ("client_secret='s3cr3t'", f"client_secret='{REDACTED}'"),
    ],
)
def test_secrets_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "video 7109178205151464746 by user catlover",
        "GET https://api.tikapi.io/public/check?username=lilyachty",
        "the tokenizer works; secretary of state",
        "Account session expired, please ask user to re-login and re-authorize.",
        "2024-01-01T00:00:00Z",
        "workflow recipe-hashtag-reply-3f9a8c7d2e on tq-6f1c2a3b-9d8e-4f70-a1b2-c3d4e5f60718",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text) == text


def test_nested_values_and_secret_names() -> None:
    value = {
        "api_key": "short",
        "nested": [f"X-API-KEY: {API_KEY}", 7],
        "token": None,
        "tuple": ("Bearer x1",),
    }
    assert redact_value(value) == {
        "api_key": REDACTED,
        "nested": [f"X-API-KEY: {REDACTED}", 7],
        "token": None,
        "tuple": (f"Bearer {REDACTED}",),
    }


def test_structlog_processor() -> None:
    event = redact_secrets(
        None, "info", {"event": f"calling with {API_KEY}", "password": "hunter2", "count": 3}
    )
    assert event == {"event": f"calling with {REDACTED}", "password": REDACTED, "count": 3}


def test_processor_in_a_pipeline() -> None:
    with capture_logs(processors=[redact_secrets]) as logs:
        structlog.get_logger().info("request failed", headers={"X-API-KEY": API_KEY}, detail=f"Bearer {JWT}")
    assert logs == [
        {
            "event": "request failed",
            "headers": {"X-API-KEY": REDACTED},
            "detail": f"Bearer {REDACTED}",
            "log_level": "info",
        }
    ]
