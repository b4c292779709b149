"""End to end: `pagekit dashboard` in a real headless Chromium.

One visit (a kernel start costs seconds) walks what a user does: creates a project,
uploads a real PNG (larger than tornado's 10 MiB websocket default, so the raised limit
is proven) and a real two-page PDF through the file chooser, watches a job started from
the Client (not the page) appear and finish, the page grid turn its statuses to
completed without a reload, sorts, filters, searches and selects in the grid, launches
and cancels a job from the page, and watches the Workers panel refresh itself.

The grid is a canvas: rows are clicked by position (its row and header heights are the
panel's), and what a click selected is read from the detail view beside it. With
``PAGEKIT_SCREENSHOTS=1`` the test saves the pictures in ``docs/screenshots/``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import launch, playwright_api, serve_dashboard

from pagekit import _pagegen
from pagekit.client import Client
from pagekit.widgets.pages import HEADER_HEIGHT, ROW_HEIGHT, THUMB_SIZE

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "docs" / "screenshots"

pytestmark = pytest.mark.browser


def test_the_repo_dashboard_is_the_packaged_one() -> None:
    """One source of truth: dashboards/pagekit.ipynb links to the notebook the package ships."""
    from pagekit.dashboard import notebook_path

    assert (REPO / "dashboards" / "pagekit.ipynb").resolve() == notebook_path().resolve()
    nb = json.loads(notebook_path().read_text())
    [cell] = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "Dashboard(Client())" in "".join(cell["source"])


def _big_png(text: str, pad_mb: int = 11) -> bytes:
    """A valid PNG page padded with a private ancillary chunk to ``pad_mb`` MiB."""
    png = _pagegen.image_bytes(_pagegen.text_image(text, width=700, height=300, font_size=34))
    data = os.urandom(pad_mb * 1024 * 1024)
    chunk = struct.pack(">I", len(data)) + b"pkPd" + data
    chunk += struct.pack(">I", zlib.crc32(b"pkPd" + data) & 0xFFFFFFFF)
    return png[:33] + chunk + png[33:]  # after the signature and IHDR


@pytest.fixture
def dashboard_url(client: Client, runtime_home: Path, tmp_path: Path) -> Iterator[str]:
    """`pagekit dashboard` on a free port, reusing the session's runtime."""
    with serve_dashboard(runtime_home, tmp_path / "dashboard.log") as (url, _proc):
        yield url


THUMB_WIDTH = THUMB_SIZE[0] + 8  # the grid's thumbnail column


def click_row(page: Any, row: int) -> None:
    """Click the grid's ``row`` (0: the top one), in its "page" column."""
    box = page.locator(".pk-grid .lm-DataGrid").first.bounding_box()
    assert box is not None
    page.mouse.click(
        box["x"] + THUMB_WIDTH + 24, box["y"] + HEADER_HEIGHT + ROW_HEIGHT * row + ROW_HEIGHT / 2
    )


def sort_column(page: Any, header_x: float, label: str) -> None:
    """Open a grid column's header menu (its filter icon, at the right of the header
    cell ending at ``header_x`` pixels) and pick ``label`` ("Sort Descending")."""
    box = page.locator(".pk-grid .lm-DataGrid").first.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + header_x - 8, box["y"] + HEADER_HEIGHT / 2)
    page.locator(".ipydatagrid-context-menu").get_by_text(label, exact=True).click()


def green_pixels(png: bytes) -> int:
    """How many pixels of a screenshot are the grid's "completed" green (#1e7b34)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        rgb = im.convert("RGB")
        return sum(1 for r, g, b in rgb.getdata() if g > 90 and g > r + 40 and g > b + 30)


def shot(page: Any, name: str) -> None:
    """Save the dashboard as ``docs/screenshots/<name>.png`` when PAGEKIT_SCREENSHOTS=1."""
    if os.environ.get("PAGEKIT_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        time.sleep(0.5)  # the grid's repaint with the thumbnails
        box = page.locator(".pk-dashboard").bounding_box()
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), clip=box, full_page=True)


def test_dashboard_end_to_end(dashboard_url: str, client: Client, tmp_path: Path) -> None:
    sync_api = playwright_api()
    expect = sync_api.expect
    png = tmp_path / "letter.png"
    png.write_bytes(_big_png("Dear reader the dashboard works"))
    assert png.stat().st_size > 10 * 1024 * 1024
    pdf = tmp_path / "minutes.pdf"
    pdf.write_bytes(_pagegen.text_pdf(["minutes of the first meeting", "second page of minutes"]))
    name = f"browser-{uuid.uuid4().hex[:8]}"
    final = tmp_path / "dashboard.png"
    outside: list[str] = []

    with sync_api.sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1280, "height": 2000})
        origin = dashboard_url.split("/?")[0].rstrip("/")
        local = (origin, "data:", "blob:")
        page.on("request", lambda r: r.url.startswith(local) or outside.append(r.url))
        try:
            page.goto(dashboard_url, timeout=120_000)
            create = page.get_by_role("button", name="Create project")
            create.wait_for(timeout=120_000)  # the kernel starts and draws the dashboard
            page.get_by_placeholder("new project name").fill(name)
            create.click()
            expect(page.get_by_text(f"Project {name} ready")).to_be_visible(timeout=30_000)
            expect(page.locator(".pk-position")).to_have_text("0-0 of 0 pages")

            # Nothing to process: the button is disabled, and looks it.
            process = page.get_by_role("button", name="Process All Pending")
            expect(process).to_be_disabled()
            style = process.evaluate(
                "b => { const s = getComputedStyle(b); return [s.opacity, s.cursor]; }"
            )
            assert float(style[0]) <= 0.5 and style[1] == "not-allowed", style
            shot(page, "dashboard-empty")

            # Upload: one summary line; each file's outcome under "Details".
            upload = page.locator(".widget-upload")
            expect(upload).to_be_enabled()
            with page.expect_file_chooser() as chooser:
                upload.click()
            chooser.value.set_files([png, pdf])
            expect(page.locator(".pk-summary")).to_have_text("2 added (3 pages)", timeout=60_000)
            line = page.get_by_text("minutes.pdf: added 2 pages")
            expect(line).to_be_hidden()
            details = page.get_by_text("Details", exact=True)
            details.click()
            expect(line).to_be_visible()
            expect(page.get_by_text("letter.png: added 1 page")).to_be_visible()
            details.click()
            expect(line).to_be_hidden()
            expect(page.locator(".pk-position")).to_have_text("1-3 of 3 pages")
            grid = page.locator(".pk-grid .lm-DataGrid").first
            assert green_pixels(grid.screenshot()) == 0  # all pending

            # A job started elsewhere (the Client, as the CLI or the API would): the Jobs
            # panel shows it within a poll, and the grid follows it without a reload.
            client.set_steps(name, ["slow"])  # 1.5 s a page: it is seen running
            job = client.process_pending(name)
            expect(page.locator(".pk-job")).to_have_count(1, timeout=3_000)
            expect(page.locator(".pk-job").get_by_text(job["task_id"][:8])).to_be_visible()
            expect(page.get_by_text("Processing page").first).to_be_visible(timeout=30_000)
            shot(page, "dashboard-running")
            expect(page.get_by_text("Completed: 3 completed of 3 pages")).to_be_visible(
                timeout=180_000
            )
            bar = page.locator(".pk-job .widget-hprogress").first
            expect(bar).to_contain_text("100%")
            expect(bar.locator(".progress-bar-success")).to_have_count(1)  # green
            expect(page.locator(".pk-job").get_by_role("button", name="Done")).to_be_disabled()
            expect(page.locator(".pk-counts")).to_have_text("3 pages: 3 completed")
            deadline = time.monotonic() + 15
            while green_pixels(grid.screenshot()) < 50:  # three "completed" in green
                assert time.monotonic() < deadline, "the grid did not show completed pages"
                time.sleep(0.3)
            expect(process).to_be_disabled()

            # Select a row: its thumbnail beside its text.
            click_row(page, 0)
            detail = page.locator(".pk-detail")
            expect(detail).to_contain_text("Page 1 · letter.png · completed", timeout=15_000)
            expect(page.locator(".pk-text textarea")).to_have_value(
                "Dear reader the dashboard works"
            )
            expect(detail.locator("img")).to_be_visible()
            shot(page, "dashboard-done")

            # Sort by page number, descending: the top row is now page 3.
            header_end = THUMB_WIDTH + 56  # the "page" column's right edge
            sort_column(page, header_end, "Sort Descending")
            expect(page.locator(".pk-position")).to_have_text("1-3 of 3 pages, by page ↓")
            click_row(page, 0)
            expect(detail).to_contain_text("Page 3 · minutes.pdf", timeout=15_000)
            shot(page, "dashboard-selected")

            # The status filter queries the database.
            page.locator(".pk-pages select").first.select_option("failed")
            expect(page.locator(".pk-position")).to_have_text("0-0 of 0 pages, by page ↓")
            page.locator(".pk-pages select").first.select_option("completed")
            expect(page.locator(".pk-position")).to_have_text("1-3 of 3 pages, by page ↓")

            # Search the text: the grid lists the matches with a snippet.
            search = page.get_by_placeholder("Search text (Enter)")
            search.fill("reader")
            search.press("Enter")
            expect(page.locator(".pk-position")).to_have_text(
                "1-1 of 1 pages matching “reader”", timeout=15_000
            )
            click_row(page, 0)
            expect(detail).to_contain_text("Page 1 · letter.png", timeout=15_000)
            shot(page, "dashboard-search")
            search.fill("")
            search.press("Enter")
            expect(page.locator(".pk-position")).to_have_text("1-3 of 3 pages, by page ↓")

            # Delete asks first; Cancel keeps the pages.
            click_row(page, 1)
            page.locator(".pk-pages").get_by_role("button", name="Delete").first.click()
            confirm = page.locator(".pk-confirm")
            expect(confirm).to_contain_text("Delete 1 page? This cannot be undone.")
            confirm.get_by_role("button", name="Cancel").click()
            expect(confirm).to_be_hidden()
            assert client.count_pages(name) == 3

            # A job launched and cancelled from the page: a final label, no jump to 100%.
            # Pages added elsewhere show within a poll.
            client.add_pages(name, [(f"more-{i}.png", _slow_page(i)) for i in range(6)])
            expect(page.locator(".pk-counts")).to_have_text(
                "9 pages: 6 pending · 3 completed", timeout=3_000
            )
            expect(process).to_be_enabled()
            process.click()
            expect(page.locator(".pk-job")).to_have_count(2, timeout=10_000)
            newest = page.locator(".pk-job").first
            expect(newest.get_by_text("Processing page")).to_be_visible(timeout=30_000)
            newest.get_by_role("button", name="Cancel").click()
            expect(newest.get_by_role("button", name="Cancelled")).to_be_disabled(timeout=30_000)
            expect(newest).to_contain_text("Cancelled: ")
            expect(newest.locator(".progress-bar-warning")).to_have_count(1)
            assert "100%" not in newest.locator(".widget-hprogress").inner_text()

            # The Workers panel refreshes on its own; no Flower runs, so no link.
            workers = page.locator(".pk-workers")
            stamp = workers.locator(".pk-updated").inner_text()
            expect(workers.locator(".pk-updated")).not_to_have_text(stamp, timeout=15_000)
            expect(workers).to_contain_text("0 active", timeout=30_000)
            expect(workers).to_contain_text("not running")
            expect(workers.get_by_role("link", name="Flower")).to_have_count(0)
        finally:
            page.screenshot(path=str(final), full_page=True)
            browser.close()

    out = REPO / "test-output"
    out.mkdir(exist_ok=True)
    shutil.copy(final, out / "dashboard.png")
    assert client.count_pages(name, "cancelled") >= 1
    assert outside == [], f"the page asked outside this machine for: {outside}"


def _slow_page(i: int) -> bytes:
    return _pagegen.image_bytes(_pagegen.text_image(f"another page {i}", width=400, height=200))
