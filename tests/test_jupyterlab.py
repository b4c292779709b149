"""`pagekit lab` (what `make lab` runs) in a real headless Chromium.

Tutorial 01, copied into an empty folder, runs with Run → Run All Cells on a fresh data
directory. Its `client.wait` draws an ipywidgets bar that moves while the cell runs and
ends at 100%, green. The browser console stays free of errors.

Nothing reaches the internet: the browser's requests to any host but the loopback
server are refused (and the page renders all the same), and every process of the lab
(the server, its kernel, the workers the kernel starts) records each host name it looks
up or connects to, through an audit hook: none may be another machine, even for a user
who said yes to JupyterLab's "Would you like to get notified about official Jupyter news?".
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browser import free_port, launch, playwright_api, wait_until_up

from pagekit import runtime
from pagekit.config import Settings

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = "01-quickstart.ipynb"
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

# Loaded by every Python process of the lab (PYTHONPATH): log each non-loopback host it
# resolves or connects to. (No sitecustomize is installed in pagekit's environments; one
# would be shadowed by this one for the length of the test.)
AUDIT = """
import os, sys

_LOG = os.environ["PAGEKIT_TEST_EGRESS_LOG"]
_LOCAL = {None, "", "127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}


def _audit(event, args):
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    else:
        return
    host = host.decode() if isinstance(host, bytes) else host
    if host not in _LOCAL:
        with open(_LOG, "a") as log:
            log.write(f"{os.getpid()} {' '.join(sys.argv)[:80]}: {event} {host}\\n")


sys.addaudithook(_audit)
"""

# Everything the bar's row shows (percentage and line), each time it changes: proof that
# the widget is redrawn while the cell that waits is still running.
RECORD_BAR = """
window.pkBarTexts = [];
new MutationObserver(() => {
  for (const row of document.querySelectorAll('.widget-hbox')) {
    if (!row.querySelector('.widget-hprogress')) continue;
    const text = row.textContent.trim();
    if (window.pkBarTexts[window.pkBarTexts.length - 1] !== text) window.pkBarTexts.push(text);
  }
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
"""


@contextlib.contextmanager
def serve_lab(root: Path, home: Path, state: Path) -> Iterator[str]:
    """`pagekit --home HOME lab ROOT` on a free port with a token: the URL of ROOT's tree.

    Jupyter's own configuration, data and JupyterLab settings live in ``state``, so
    nothing from the user's ~/.jupyter changes what is tested.
    """
    port, token = free_port(), secrets.token_hex(16)
    audit = state / "audit"
    audit.mkdir()
    (audit / "sitecustomize.py").write_text(AUDIT)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(audit), os.environ.get("PYTHONPATH")])),
        PAGEKIT_TEST_EGRESS_LOG=str(state / "egress.log"),
        JUPYTER_CONFIG_DIR=str(state / "config"),
        JUPYTER_DATA_DIR=str(state / "data"),
        JUPYTER_RUNTIME_DIR=str(state / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(state / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(state / "lab-workspaces"),
    )
    env.pop("PAGEKIT_HOME", None)  # --home says it
    # A user who once answered yes to "Would you like to get notified about official
    # Jupyter news?": JupyterLab's page then asks the server for news and updates at start.
    news = state / "lab-settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "true"}')
    log_path = state / "lab.log"
    cmd = [sys.executable, "-m", "pagekit.cli", "--home", str(home), "lab", str(root)]
    if os.geteuid() == 0:  # CI containers: Jupyter refuses root unless told
        cmd.append("--allow-root")  # (given through to JupyterLab, as any other option)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*cmd, "--no-browser", "--port", str(port), "--token", token],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the server and its kernels go down together
        )
        try:
            url = f"http://127.0.0.1:{port}"
            status = f"{url}/api/status?token={token}"
            wait_until_up(
                proc, log_path, lambda: urllib.request.urlopen(status, timeout=5).close(), 60
            )
            yield f"{url}/lab/tree/{NOTEBOOK}?token={token}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            shutil.copy(log_path, REPO / "test-output" / "jupyterlab.log")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """The lab's data directory; the runtime tutorial 01 starts there is stopped after."""
    path = tmp_path / "home"
    yield path
    runtime.stop(Settings.from_env(home=path))


def test_tutorial_runs_in_jupyterlab_with_a_live_widget_bar_and_no_console_error(
    tmp_path: Path, home: Path
) -> None:
    sync_api = playwright_api()
    expect = sync_api.expect
    (REPO / "test-output").mkdir(exist_ok=True)
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    state = tmp_path / "jupyter"
    state.mkdir()
    shot = REPO / "test-output" / "jupyterlab.png"

    errors: list[str] = []
    refused: list[str] = []

    def only_loopback(route: sync_api.Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    def console(msg: sync_api.ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(f"console: {msg.text} ({msg.location.get('url')})")

    with serve_lab(root, home, state) as url, sync_api.sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.route("**/*", only_loopback)
        page.on("console", console)
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.add_init_script(RECORD_BAR)
        try:
            # The user said yes to the news: JupyterLab asks its server for news and updates.
            with (
                page.expect_response(lambda r: "/lab/api/news" in r.url, timeout=60_000) as news,
                page.expect_response(lambda r: "/lab/api/update" in r.url, timeout=60_000) as new,
            ):
                page.goto(url, timeout=60_000)
            assert news.value.json() == {"news": []}
            assert new.value.json() == {"notification": None}
            panel = page.locator(".jp-NotebookPanel")
            expect(panel.locator(".jp-Cell").first).to_be_visible(timeout=60_000)
            # The kernel is up before Run All (else Run All asks which kernel to start).
            status = page.locator(".jp-StatusBar-Widget")
            expect(status.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)
            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()

            outputs = panel.locator(".jp-OutputArea")
            expect(outputs.get_by_text("rejected  broken.png")).to_be_visible(timeout=120_000)
            bar = outputs.locator(".widget-hprogress")
            expect(bar).to_have_count(1, timeout=60_000)  # client.wait's widget, not text
            expect(outputs.get_by_text("Completed: 4 completed of 4 pages")).to_be_visible(
                timeout=120_000
            )
            expect(bar).to_contain_text("100%")
            expect(bar.locator(".progress-bar-success")).to_have_count(1)  # green
            assert bar.locator(".progress-bar").evaluate("e => e.style.width") == "100%"
            # Run All reached the last cells: the OCR text in the results table.
            expect(
                outputs.locator("table").get_by_text("harvest", exact=False).first
            ).to_be_visible(timeout=60_000)
            # JupyterLab draws a traceback as stderr: no stderr output may hold one.
            stderr = outputs.locator("[data-mime-type='application/vnd.jupyter.stderr']")
            assert not [t for t in stderr.all_inner_texts() if "Traceback" in t]
            seen = page.evaluate("window.pkBarTexts")
        finally:
            page.screenshot(path=str(shot), full_page=True)
            browser.close()

    # The bar was drawn while the job ran, then finished: updates reached the browser
    # while the cell was busy, not only when it ended.
    assert any("Queued" in t or "Processing page" in t for t in seen), seen
    assert "Completed: 4 completed of 4 pages" in seen[-1], seen
    assert refused == [], f"the page tried to reach the internet: {refused}"
    egress = state / "egress.log"
    assert not egress.exists(), f"the lab tried to reach the internet:\n{egress.read_text()}"
    assert errors == [], "\n".join(errors)
