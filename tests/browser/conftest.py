"""Browser tests: the app served on a free loopback port, driven by Debian's Chromium."""

import shutil
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
WAIT_MS = 10_000
# Assertions wait as long as actions do: a loaded machine can take over 5 s to answer a form.
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="session")
def chromium():
    """Chromium launched once for the run; the tests skip, saying why, when it is not installed."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium fonts-thai-tlwg)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                             timeout=WAIT_MS)
        yield browser
        browser.close()


@pytest.fixture
def base_url(app):
    """The test app served by a threaded server on 127.0.0.1 and a free port; its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()


@pytest.fixture
def page(chromium, base_url):
    """A fresh browser tab (its own cookies) that fails the test on a console error or dialog."""
    context = chromium.new_context(base_url=base_url, viewport={"width": 1280, "height": 900},
                                   locale="en-US")
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    problems = []
    # A page answered 4xx on purpose logs "Failed to load resource"; anything else (a refused
    # script or style under the Content-Security-Policy, a script error) is a fault.
    tab.on("console", lambda message: message.type == "error"
           and not message.text.startswith("Failed to load resource") and problems.append(message.text))
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    yield tab
    context.close()
    assert problems == []


@pytest.fixture
def screenshot():
    """Save a full-page screenshot under artifacts/screenshots/ for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(tab, name):
        # caret="initial": hiding the caret leaves `style=""` on every input, which a later live
        # update carries over to the new inputs, and the page's CSP then reports each one.
        tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True, caret="initial")

    return save
