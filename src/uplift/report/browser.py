"""Headless Chromium for ``report.html``: one launch setup for the browser test and the
screenshots in docs/ (``docs/screenshot.py``), so what is tested is what is pictured.

Uses the system's Chromium (Debian package ``chromium``, ``make browser`` installs it) through
Playwright for Python (the ``dev`` extra), never a browser build Playwright would download.
Playwright is imported when a browser is launched, so the package does not need it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ViewportSize

#: flags for a headless run in a container or CI: no sandbox (root), no GPU, no network
#: chatter of its own (updates, sync, first-run pages)
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
#: the first screen a planner sees on a common laptop
FIRST_SCREEN: ViewportSize = {"width": 1366, "height": 768}


def chromium_path() -> str | None:
    """The Chromium to use: ``UPLIFT_CHROMIUM``, else ``chromium`` on PATH, else None."""
    named = os.environ.get("UPLIFT_CHROMIUM")
    if named:
        return named if Path(named).exists() else None
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )


@contextmanager
def chromium(executable: str | None = None) -> Iterator[Browser]:
    """A headless Chromium (raises FileNotFoundError naming the fix when there is none)."""
    from playwright.sync_api import sync_playwright

    path = executable or chromium_path()
    if path is None:
        raise FileNotFoundError(
            "no Chromium found: install it (make browser, or apt-get install -y chromium) or "
            "name one with UPLIFT_CHROMIUM=/path/to/chromium"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def screenshots(report: Path, out: Path, stem: str, full_page: bool = True) -> list[Path]:
    """``<stem>_first_screen.png`` (1366x768, what is above the fold) and, with
    ``full_page``, ``<stem>_full.png`` of ``report`` (a report.html) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with chromium() as browser:
        page = browser.new_page(viewport=FIRST_SCREEN)
        page.goto(report.resolve().as_uri())
        page.wait_for_load_state("load")
        first = out / f"{stem}_first_screen.png"
        page.screenshot(path=str(first))
        written.append(first)
        if full_page:
            full = out / f"{stem}_full.png"
            page.screenshot(path=str(full), full_page=True)
            written.append(full)
        page.close()
    return written
