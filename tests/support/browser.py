"""`browser()`: Debian's chromium, headless, driven through its chromedriver (selenium), for any test.

Never a downloaded browser: `/usr/bin/chromium` and `/usr/bin/chromedriver` from Debian's
`chromium` and `chromium-driver` packages (`.ci/run` installs them). When they are missing,
`require_chromium()` fails the test with the command that installs them; it does not skip.
Screenshots go to `tests/artifacts/screenshots/` (ignored by git, kept as CI artifacts).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

__all__ = ["ARTIFACTS", "CHROMEDRIVER", "CHROMIUM", "INSTALL", "Browser", "browser", "require_chromium"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install -y chromium chromium-driver"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
T = TypeVar("T")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=900,900",
)


def require_chromium() -> None:
    """Fail (not skip) when Debian's chromium or its driver is missing, naming the install command."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        pytest.fail(f"the browser tests need {' and '.join(missing)}: install them with `{INSTALL}`")


class Browser:
    """One headless chromium window: open pages, click, read, screenshot."""

    def __init__(self, driver: object, prefix: str) -> None:
        self.driver = driver
        self.prefix = prefix

    def open(self, url: str) -> None:
        """Go to `url` and wait until it has loaded (redirects followed)."""
        self.driver.get(url)  # type: ignore[attr-defined]

    def click(self, css: str) -> None:
        """Click the element `css` selects, and wait for the page it leads to."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.wait import WebDriverWait

        element = WebDriverWait(self.driver, 20).until(
            expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, css))
        )
        element.click()
        WebDriverWait(self.driver, 20).until(lambda _driver: _gone(element))

    def text(self, css: str) -> str:
        """The visible text of the element `css` selects (waiting for it to appear)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.wait import WebDriverWait

        found = WebDriverWait(self.driver, 20).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
        )
        return str(found.text)

    def script(self, javascript: str, *args: Any) -> Any:
        """What `javascript` (a function body: `return ...`) returns in the current page."""
        return self.driver.execute_script(javascript, *args)  # type: ignore[attr-defined]

    def until(self, check: Callable[[], T], what: str, timeout: float = 20) -> T:
        """The first truthy `check()` (polled by selenium's explicit wait), or fail naming `what`."""
        from selenium.webdriver.support.wait import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(
            lambda _driver: check(), message=f"the page never showed {what}"
        )

    def resize(self, width: int, height: int) -> None:
        """Make the window `width` x `height` (a tall one renders long lists without scrolling)."""
        self.driver.set_window_size(width, height)  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        """The address the window shows."""
        return str(self.driver.current_url)  # type: ignore[attr-defined]

    @property
    def html(self) -> str:
        """The current page's HTML."""
        return str(self.driver.page_source)  # type: ignore[attr-defined]

    def screenshot(self, name: str) -> Path:
        """Save the window as `<prefix>-<name>.png` under `ARTIFACTS`; its path."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.prefix}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        self.driver.save_screenshot(str(path))  # type: ignore[attr-defined]
        return path


def _gone(element: Any) -> bool:
    """Whether the page `element` was on has been replaced.

    Selenium's `staleness_of` knows only StaleElementReferenceException; chromedriver answers a
    node of a page being torn down with another WebDriverException ("Node with given id does not
    belong to the document"), which means the same thing here.
    """
    from selenium.common.exceptions import WebDriverException

    try:
        element.is_enabled()
    except WebDriverException:
        return True
    return False


@contextlib.contextmanager
def browser(prefix: str) -> Iterator[Browser]:
    """A fresh headless chromium (its own profile directory, removed afterwards)."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tikflow-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield Browser(driver, prefix)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
