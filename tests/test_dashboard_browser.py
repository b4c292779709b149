"""End to end: `pagekit dashboard` in a real headless Chromium.

Uploads a real PNG (larger than tornado's 10 MiB websocket default, so the raised
limit is proven) and a real two-page PDF through the file chooser, clicks "Process All
Pending", and waits for the bar at 100% and the pages completed in the table.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import need

from pagekit import _pagegen
from pagekit.client import Client

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.browser


def test_the_repo_dashboard_is_the_packaged_one() -> None:
    """One source of truth: dashboards/pagekit.ipynb links to the notebook the package ships."""
    from pagekit.dashboard import notebook_path

    assert (REPO / "dashboards" / "pagekit.ipynb").resolve() == notebook_path().resolve()
    nb = json.loads(notebook_path().read_text())
    [cell] = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "Dashboard(Client())" in "".join(cell["source"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _big_png(text: str, pad_mb: int = 11) -> bytes:
    """A valid PNG page padded with a private ancillary chunk to ``pad_mb`` MiB."""
    png = _pagegen.image_bytes(_pagegen.text_image(text, width=700, height=300, font_size=34))
    data = os.urandom(pad_mb * 1024 * 1024)
    chunk = struct.pack(">I", len(data)) + b"pkPd" + data
    chunk += struct.pack(">I", zlib.crc32(b"pkPd" + data) & 0xFFFFFFFF)
    return png[:33] + chunk + png[33:]  # after the signature and IHDR


def _printed_url(log: str) -> str | None:
    match = re.search(r"^pagekit dashboard: (\S+)", log, re.MULTILINE)
    return match.group(1) if match else None


def playwright_api() -> Any:
    """Playwright's sync API, with headless Chromium there (else skip; fail on CI)."""
    need(Path(CHROMIUM).exists(), f"headless Chromium at {CHROMIUM} (apt install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
    need(sync_api is not None, "Playwright for Python (pip install playwright)")
    return sync_api


@contextlib.contextmanager
def serve_dashboard(
    runtime_home: Path, log_path: Path, *args: str, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`pagekit dashboard` on a free port against ``runtime_home``: (url, process)."""
    port = _free_port()
    env = dict(os.environ, PAGEKIT_HOME=str(runtime_home), PAGEKIT_POLL_INTERVAL="0.5", **env)
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pagekit.cli", "dashboard", "--port", str(port), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Voila and its kernels go down together
    )
    url = None
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text()
            # The URL it prints (with the token when there is one).
            url = url or _printed_url(log_path.read_text())
            try:
                if url is None:
                    raise OSError("no URL printed yet")
                # Listening is enough: a GET of the page would start a kernel.
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        assert url is not None
        yield url, proc
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


@pytest.fixture
def dashboard_url(client: Client, runtime_home: Path, tmp_path: Path) -> Iterator[str]:
    """`pagekit dashboard` on a free port, reusing the session's runtime."""
    with serve_dashboard(runtime_home, tmp_path / "dashboard.log") as (url, _proc):
        yield url


def test_dashboard_uploads_processes_and_shows_completed_pages(
    dashboard_url: str, client: Client, tmp_path: Path
) -> None:
    sync_api = playwright_api()
    png = tmp_path / "letter.png"
    png.write_bytes(_big_png("Dear reader the dashboard works"))
    assert png.stat().st_size > 10 * 1024 * 1024
    pdf = tmp_path / "minutes.pdf"
    pdf.write_bytes(_pagegen.text_pdf(["minutes of the first meeting", "second page of minutes"]))
    name = f"browser-{uuid.uuid4().hex[:8]}"
    shot = tmp_path / "dashboard.png"

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1500})
        try:
            page.goto(dashboard_url, timeout=120_000)
            expect = sync_api.expect
            create = page.get_by_role("button", name="Create project")
            create.wait_for(timeout=120_000)  # the kernel starts and draws the dashboard
            page.get_by_placeholder("new project name").fill(name)
            create.click()
            expect(page.get_by_text(f"Project {name} ready")).to_be_visible(timeout=30_000)

            upload = page.locator(".widget-upload")
            expect(upload).to_be_enabled()
            with page.expect_file_chooser() as chooser:
                upload.click()
            chooser.value.set_files([png, pdf])
            expect(page.get_by_text("letter.png: added 1 page")).to_be_visible(timeout=60_000)
            expect(page.get_by_text("minutes.pdf: added 2 pages")).to_be_visible()

            process = page.get_by_role("button", name="Process All Pending")
            expect(process).to_be_enabled(timeout=10_000)
            process.click()
            expect(page.get_by_text("Completed: 3 completed of 3 pages")).to_be_visible(
                timeout=180_000
            )
            bar = page.locator(".widget-hprogress").first
            expect(bar).to_contain_text("100%")
            expect(bar.locator(".progress-bar-success")).to_have_count(1)  # green
            width = bar.locator(".progress-bar").evaluate("e => e.style.width")
            assert width == "100%", width
            options = page.locator(".pk-table select option")
            expect(options).to_have_count(3, timeout=15_000)
            for i in range(3):
                expect(options.nth(i)).to_contain_text("completed", timeout=15_000)
            expect(process).to_be_disabled()
            options.nth(0).click()  # the PNG: its thumbnail and OCR text
            expect(page.locator(".pk-dashboard textarea")).to_have_value(
                "Dear reader the dashboard works", timeout=15_000
            )
        finally:
            page.screenshot(path=str(shot), full_page=True)
            browser.close()

    out = REPO / "test-output"
    out.mkdir(exist_ok=True)
    shutil.copy(shot, out / "dashboard.png")
    assert client.count_pages(name, "completed") == 3
