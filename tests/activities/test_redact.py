"""Redaction of secret-looking text in logs, errors and history."""

from __future__ import annotations

import pytest
import structlog
from structlog.testing import capture_logs

from activities.redact import REDACTED, is_secret_name, redact, redact_secrets, redact_value

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
        # The sentence's full stop is not part of the key (it was redacted with it).
        (f"key {API_KEY}.", f"key {REDACTED}."),
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


# Issue 13, point 8: redaction was too eager on harmless text (identifiers, prose) and blind to
# webhook URLs whose path or query is the credential.


@pytest.mark.parametrize(
    "text",
    [
        "token_count=5 access_token_field: x",
        "refresh_token_expires_in_seconds_2 = 3600",
        "tikapi_hashtag_posts_page2_cursor",
        "File activities/tiktok_publish_video_v2.py, line 3, in tikflow_publish_status_check_v2",
        "the token: expired",
        "password: must be set",
        'set token="{{ inputs.token }}"',
        '{"access_token": null, "refresh_token": ""}',
        "tikapi HTTP 403 code 10202: user does not exist",
        "idempotency_key=recipe-hashtag-reply-3f9a8c7d2e/0/comments",
        "python3.11.7 on linux, temporalio 1.35.0",
    ],
)
def test_harmless_text_around_secret_words_is_kept(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "http: POST /services/T000/B000/XXXX failed: ConnectError",
            f"http: POST /services/{REDACTED} failed: ConnectError",
        ),
        (
            "POST https://hooks.slack.com/services/T0AB12CD3/B0EF45GH6/abcdefghijklmnopqrstuvwx",
            f"POST https://hooks.slack.com/services/{REDACTED}",
        ),
        (
            "https://discord.com/api/webhooks/112233445566/AbC-dEf_123",
            f"https://discord.com/api/webhooks/{REDACTED}",
        ),
        (
            "https://api.telegram.org/bot123456:AAH-x_yz/sendMessage",
            f"https://api.telegram.org/bot{REDACTED}/sendMessage",
        ),
        ("callback /oauth?code=Xy12ab&state=s1", f"callback /oauth?code={REDACTED}&state=s1"),
        ("https://x.example/hook?sig=abc%2Fdef&v=1", f"https://x.example/hook?sig={REDACTED}&v=1"),
        ("https://bob:hunter2@db.example/x", f"https://{REDACTED}@db.example/x"),
        ("webhook_token=abc123 slackToken: xoxb-1-2", f"webhook_token={REDACTED} slackToken: {REDACTED}"),
        ("clientSecret='plain words here'", f"clientSecret='{REDACTED}'"),
        ("password=hunter2", f"password={REDACTED}"),
        ("token=nonexistent", f"token={REDACTED}"),
    ],
)
def test_webhook_urls_query_credentials_and_secret_names_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("access_token", True),
        ("X-API-KEY", True),
        ("clientSecret", True),
        ("webhook_url", True),
        ("account_key", True),
        ("key", False),
        ("token_count", False),
        ("access_token_field", False),
        ("idempotency_key", False),
        ("client_key", False),
        ("secret_name", False),
        ("tokens_used", False),
    ],
)
def test_secret_names_are_decided_by_their_last_words(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret
    assert (redact_value("value", name) == REDACTED) is secret


def test_a_secret_url_keeps_only_its_host() -> None:
    assert redact_value("https://hooks.example.com/in/abc/def?x=1", "webhook") == (
        f"https://hooks.example.com/{REDACTED}"
    )


def test_values_the_credential_store_hands_out_are_redacted_anywhere(tmp_path) -> None:
    from activities.credentials import CredentialStore

    store = CredentialStore(tmp_path / "credentials.json", env={})
    # Neither a secret name nor a random look: only knowing the value can catch it.
    store.update("highlevel", "brand", {"token": "pit-plain-words-here", "location_id": "loc-berlin-01"})
    store.get("highlevel", "brand")
    assert redact("provider said: bad pit-plain-words-here for loc-berlin-01") == (
        f"provider said: bad {REDACTED} for loc-berlin-01"
    )
