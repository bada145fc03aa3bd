"""`make test` says clearly when Debian's chromium is missing: this fails, naming the install command."""

from __future__ import annotations

from tests.support.browser import require_chromium


def test_chromium_and_its_driver_are_installed_for_the_browser_tests() -> None:
    require_chromium()
