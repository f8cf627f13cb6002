"""Drive the MLflow UI in headless Chromium with Playwright: shared by `make screenshots` and the browser tests.

The MLflow 3 UI opens in its GenAI view, with a telemetry notice and the MLflow Assistant panel.
`open_model_training` switches to the "Model training" view and closes both, so a page shows
what the guide talks about.
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

VIEWPORT = {"width": 1440, "height": 900}
# Debian's `chromium` package. Playwright's own download (`playwright install chromium`) works too:
# where no system Chromium is found, Playwright uses its own.
SYSTEM_CHROMIUM_PATHS = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
# Root has no user namespaces for Chromium's sandbox in a container; the rest keeps the browser quiet and offline.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def chromium_path() -> str | None:
    """$CHROMIUM_PATH, else the first system Chromium found; None means Playwright's own browser."""
    candidates = [os.environ.get("CHROMIUM_PATH", ""), *SYSTEM_CHROMIUM_PATHS]
    return next((path for path in candidates if path and Path(path).is_file()), None)


def browser_is_available() -> tuple[bool, str]:
    """Whether a browser can be started here, and if not, why."""
    if chromium_path() or shutil.which("chromium"):
        return True, ""
    playwright_browsers = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache/ms-playwright"))
    if any(playwright_browsers.glob("chromium*")):
        return True, ""
    return False, "no Chromium: install Debian's `chromium` package, or run `playwright install chromium`"


@contextmanager
def browser_page(base_url: str) -> Iterator[Page]:
    """A headless Chromium tab at a fixed viewport that may only talk to the MLflow server under test."""
    allowed_host = urlsplit(base_url).hostname
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            # The UI asks the internet for telemetry settings; keep every request on loopback.
            context.route("**/*", lambda route: _only_to(allowed_host, route))
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def _only_to(allowed_host: str, route) -> None:
    """Let a request through if it goes to the server under test; abort it otherwise."""
    if urlsplit(route.request.url).hostname == allowed_host:
        route.continue_()
    else:
        route.abort()


def open_model_training(page: Page, base_url: str) -> list[str]:
    """Open the UI's home page in the "Model training" view, with the notice and the assistant closed, as the README
    tells a first visitor to do; return the names of those it closed."""
    page.goto(base_url)
    page.get_by_role("button", name="Model training").click()
    closed = []
    for name, close_button in (
        ("telemetry notice", page.get_by_role("button", name="Close alert")),
        ("MLflow Assistant", page.get_by_role("button", name="Close", exact=True)),
    ):
        try:
            close_button.click(timeout=3_000)
            closed.append(name)
        except PlaywrightTimeoutError:
            pass  # not shown this time (a later MLflow may drop it)
    return closed


def go_to(page: Page, base_url: str, route: str, wait_for_text: str) -> None:
    """Open a page of the UI (its `#/...` route) and wait until it shows `wait_for_text`."""
    page.goto(f"{base_url}/#/{route}")
    expected = page.get_by_text(wait_for_text, exact=True).first
    try:
        expected.wait_for(timeout=15_000)
    except PlaywrightTimeoutError:
        # A route change inside the app can, now and then, leave the old view up; loading the route afresh
        # settles it. A second miss is a real failure.
        page.reload()
        expected.wait_for(timeout=30_000)


def expand_child_runs(page: Page, parent_run_name: str) -> None:
    """In an experiment's runs table, unfold the child runs of a parent run (its "+" button, left of its name)."""
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=parent_run_name, exact=True)).first
    row.locator("button[data-component-id$='runnamecellrenderer.tsx_46']").click()
