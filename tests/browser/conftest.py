"""Browser fixtures: Playwright for Python driving Debian's Chromium against
pytest-django's ``live_server``. Reusable by any browser test:

- ``browser``: one headless Chromium per test module (``/usr/bin/chromium``,
  never Playwright's own download). Missing Chromium fails loudly under
  ``CI=true`` and skips with a clear reason elsewhere.
- ``page``: a fresh context + page per test, ``base_url`` = the live server, so
  ``page.goto("/admin/")`` works.
- ``login``: log a user in through the real admin login form.
- ``screenshot``: save a full-page PNG to ``tests/artifacts/<name>.png``.

The admin caches finished throughput buckets; the cache is emptied around
every test so one test's jobs never show in the next one's charts.

Playwright's sync API keeps an asyncio loop running in the main thread, which
makes Django refuse ORM calls from the test ("async context"). The test's own
ORM calls are plain synchronous code, so DJANGO_ALLOW_ASYNC_UNSAFE is set
while a browser is up (module scope) and removed afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

CHROMIUM = os.environ.get("DJANGO_JOBS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = (
            f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(`make browser-deps`), or point DJANGO_JOBS_CHROMIUM at it"
        )
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1360, "height": 900}, locale="en-US"
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def login(page: Any) -> Callable[[str, str], Any]:
    """``login(username, password)``: sign in through the admin login form."""

    def sign_in(username: str, password: str) -> Any:
        page.goto("/admin/login/?next=/admin/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/")
        return page

    return sign_in


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """``screenshot(page, name)``: full-page PNG in tests/artifacts/."""

    def save(page: Any, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
