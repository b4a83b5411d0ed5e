"""Headless Chromium for the browser tests: open a page from disk, with no network, and read what drew.

Chromium is Debian's package (``/usr/bin/chromium``, installed by ``.ci/run``),
driven by Playwright's Python client (``playwright`` from PyPI, which brings
its own driver but no browser: we point it at Debian's).  Where Chromium is
absent the tests skip with that reason -- except under CI (``CI`` set), where
a missing browser is a failure, so CI can never skip them silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

#: Flags for a root, display-less, network-less machine: no sandbox, no GPU, no background traffic.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """Return the Chromium executable to use, or None when this machine has none."""
    explicit = os.environ.get("SMR_CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@attrs.define
class OpenedPage:
    """A page loaded from a file: the Playwright page, what its console said, and the requests it tried."""

    page: Any
    console_errors: list[str]
    outside_requests: list[str]

    def count(self, selector: str) -> int:
        """Return how many elements match ``selector``, looking inside Bokeh's shadow roots too."""
        return int(self.page.evaluate(_DEEP_COUNT, selector))

    def drawn_canvases(self) -> int:
        """Return how many canvases (in any shadow root) have at least one non-transparent pixel."""
        return int(self.page.evaluate(_DRAWN_CANVASES))

    def canvas_pixels(self) -> str:
        """Return every canvas's pixels as data URLs, joined: equal exactly when nothing was redrawn."""
        return str(self.page.evaluate(_CANVAS_PIXELS))


_DEEP_COUNT = """(selector) => {
  let n = 0;
  const walk = (root) => {
    n += root.querySelectorAll(selector).length;
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot);
  };
  walk(document);
  return n;
}"""

_DRAWN_CANVASES = """() => {
  let drawn = 0;
  const walk = (root) => {
    for (const c of root.querySelectorAll('canvas')) {
      if (!c.width || !c.height) continue;
      const ctx = c.getContext('2d');
      if (!ctx) continue;
      const data = ctx.getImageData(0, 0, c.width, c.height).data;
      for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) { drawn += 1; break; }
    }
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot);
  };
  walk(document);
  return drawn;
}"""


_CANVAS_PIXELS = """() => {
  const urls = [];
  const walk = (root) => {
    for (const c of root.querySelectorAll('canvas')) if (c.width && c.height) urls.push(c.toDataURL());
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot);
  };
  walk(document);
  return urls.join('|');
}"""


@pytest.fixture(scope="session")
def _browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests, but no Chromium is installed (.ci/run installs "
                        "Debian's chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium, or set SMR_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(_browser: Any) -> Iterator[Any]:
    """Yield ``open(path) -> OpenedPage``: load a local HTML file with every non-file request refused."""
    contexts: list[Any] = []

    def open_(path: Path, settle_ms: int = 500) -> OpenedPage:
        context = _browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        outside: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        def route(r: Any) -> None:
            if r.request.url.startswith(("file:", "data:", "blob:")):
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(Path(path).resolve().as_uri(), wait_until="load")
        page.wait_for_timeout(settle_ms)
        return OpenedPage(page, errors, outside)

    yield open_
    for context in contexts:
        context.close()
