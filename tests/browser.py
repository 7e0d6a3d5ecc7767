"""Browser tests of the builder page: Playwright from PyPI driving Debian's chromium
(``playwright install`` cannot download here). A missing browser fails under CI=true and
skips, naming it, elsewhere. Screenshots go to ``artifacts/screenshots/`` (git-ignored)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_service

SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
# Playwright's auto-waiting and expect() give up after this (ms): generous for a loaded box.
WAIT_MS = 20_000

try:
    from playwright.async_api import Browser, Page, async_playwright, expect
except ImportError:  # pragma: no cover - dev extras not installed
    async_playwright = None  # type: ignore[assignment]
else:
    expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    path = shutil.which("chromium")
    if async_playwright is None:
        need_service("playwright (PyPI)", "not installed: pip install -e '.[dev]'")
    if path is None:
        need_service("chromium (Debian package)", "not on PATH: apt-get install -y chromium")
    async with async_playwright() as pw:
        # As root (containers, CI) chromium refuses to start with its sandbox.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        b = await pw.chromium.launch(executable_path=path, args=args)
        yield b
        await b.close()


async def new_page(browser: Browser, *, width: int = 1280, height: int = 900) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(WAIT_MS)
    return await context.new_page()


async def shot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def sign_in(page: Page, base: str, bearer: dict[str, str]) -> None:
    await page.goto(f"{base}/")
    await page.get_by_label("API key").fill(bearer["Authorization"].removeprefix("Bearer "))
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Triggers").wait_for()


async def http_sign_in(http: Any, bearer: dict[str, str]) -> str:
    """Sign in through the form with an httpx client (its cookie jar keeps the session);
    the session's CSRF token, as the pages carry it."""
    page = await http.get("/ui/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    key = bearer["Authorization"].removeprefix("Bearer ")
    r = await http.post("/ui/signin", data={"csrf": token.group(1), "api_key": key})
    assert r.status_code == 303, r.text
    home = await http.get("/ui/triggers")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', home.text)
    assert csrf is not None
    return csrf.group(1)
