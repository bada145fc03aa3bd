"""The provider declarations are the one source of what the settings, credentials and registry list."""

from __future__ import annotations

from activities.contracts import REAUTH_FIELDS
from activities.credentials import PROVIDER_FIELDS, REQUIRED_FIELDS
from activities.provider import Provider, provider_named, providers
from activities.registry import PROVIDER_MODULES
from activities.settings import DEFAULT_BASE_URLS, PROVIDERS, Settings


def test_every_provider_package_declares_itself_in_the_listing_order() -> None:
    assert PROVIDERS == ("tikapi", "tiktok", "highlevel", "dumpling", "socialapi")
    assert all(isinstance(p, Provider) for p in providers())
    assert ("activities.builtin", *(f"activities.{name}" for name in PROVIDERS)) == PROVIDER_MODULES


def test_settings_and_credential_tables_are_derived_from_the_declarations() -> None:
    assert {p.name: p.base_url for p in providers()} == DEFAULT_BASE_URLS
    kinds = {"webhook": ("url",), "ingress": ("signing_secret", "token"), "links": ("signing_key",)}
    assert {**{p.name: p.fields for p in providers()}, **kinds} == PROVIDER_FIELDS
    assert {
        **{p.name: p.required for p in providers()},
        "webhook": ("url",),
        "ingress": (),
        "links": ("signing_key",),
    } == REQUIRED_FIELDS
    assert list(PROVIDER_FIELDS) == [*PROVIDERS, "webhook", "ingress", "links"]
    settings = Settings.from_env({provider_named("dumpling").url_env: "http://127.0.0.1:9/dumpling/"})
    assert settings.base_url("dumpling") == "http://127.0.0.1:9/dumpling"
    assert settings.base_url("tikapi") == DEFAULT_BASE_URLS["tikapi"]


def test_the_workflow_side_reauth_table_matches_the_declarations() -> None:
    # `activities.contracts` stays free of httpx (workflows import it), so it keeps its own copy.
    assert {p.name: p.reauth for p in providers() if p.reauth is not None} == REAUTH_FIELDS
