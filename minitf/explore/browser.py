"""Headless Chromium for the explore page's tests and the README's screenshot.

Playwright drives the Chromium the system already has (Debian's `chromium` package:
`apt-get install chromium`); nothing is downloaded, so `playwright install` is never
needed. Every request that is not a `file://` or 127.0.0.1 URL is refused and recorded,
so a page that reached for the network is caught. Playwright is a test-only dependency
(the `dev` extra); the library never imports this module.

Regenerate the README's screenshot after `minitf demo`:

    python -m minitf.explore.browser minitf-demo/explore.html figures/explore.png
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Chromium's own background traffic (updates, sync, field trials) is off, and no sandbox:
# test machines run as root in containers, where Chromium's sandbox cannot start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VIEWPORT = {"width": 1500, "height": 1100}  # CSS pixels: a wide laptop or a projector


def find_chromium() -> str | None:
    """The system's Chromium (or $MINITF_CHROMIUM), or None where there is none."""
    chosen = os.environ.get("MINITF_CHROMIUM")
    if chosen:
        return chosen if Path(chosen).is_file() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@contextlib.contextmanager
def browser_page(viewport: dict | None = None) -> Iterator:
    """A fresh headless Chromium page (Playwright's Page) with a fresh profile.

    The page gets three lists: `page.minitf_errors` (console errors and uncaught
    exceptions), `page.minitf_blocked` (URLs it tried to fetch from the network) and
    `page.minitf_console` (every console message).
    """
    from playwright.sync_api import sync_playwright  # the dev extra

    executable = find_chromium()
    if executable is None:
        raise RuntimeError("no Chromium found: apt-get install chromium (or set MINITF_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="minitf-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport=viewport or VIEWPORT, device_scale_factor=1,
        )  # fmt: skip
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.minitf_errors, page.minitf_blocked, page.minitf_console = [], [], []

            def on_console(message) -> None:
                page.minitf_console.append(f"{message.type}: {message.text}")
                if message.type == "error":
                    page.minitf_errors.append(message.text)

            def on_request(route) -> None:
                url = route.request.url
                if url.startswith(("file://", "http://127.0.0.1", "data:", "blob:")):
                    route.continue_()
                else:
                    page.minitf_blocked.append(url)
                    route.abort()

            page.on("console", on_console)
            page.on("pageerror", lambda err: page.minitf_errors.append(f"uncaught: {err}"))
            context.route("**/*", on_request)
            yield page
        finally:
            context.close()


def open_page(page, url: str) -> None:
    """Go to `url` and wait until the page's script has drawn every view."""
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=15_000)


def screenshot(html_path: str | os.PathLike, png_path: str | os.PathLike, *, page=None) -> Path:
    """Open a page written by `minitf explore` and save a PNG of its first screen, with the
    tooltip of the lens cell one layer below the output at the selected position showing
    (where the answer is still forming). Uses `page` (from `browser_page`) if given."""
    html_path, png_path = Path(html_path).resolve(), Path(png_path)
    if page is None:
        with browser_page() as fresh:
            return screenshot(html_path, png_path, page=fresh)
    page.minitf_errors.clear()
    page.minitf_blocked.clear()
    open_page(page, html_path.as_uri())
    below_output = page.locator("#lens-grid tr.sel-row + tr td.cell.sel-col")
    if below_output.count():
        below_output.first.hover()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(png_path), full_page=False)
    if page.minitf_errors or page.minitf_blocked:
        raise RuntimeError(f"the page misbehaved: {page.minitf_errors + page.minitf_blocked}")
    return png_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshot a minitf explore page.")
    parser.add_argument("page", type=Path, help="the HTML file minitf explore wrote")
    parser.add_argument("png", type=Path, help="where to write the PNG")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        print(f"error: {args.page} does not exist; run `minitf demo` first", file=sys.stderr)
        return 2
    print(f"wrote {screenshot(args.page, args.png)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
