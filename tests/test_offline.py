"""Nothing pagekit shows in a browser asks the internet for anything.

Every request that leaves this machine is aborted and recorded: the API's ``/docs`` and
``/redoc``, the dashboard (with its icon font) and the HTML report must draw completely
without one.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import pytest
from browser import chromium, free_port, listening, playwright_api, serve_dashboard, wait_until_up
from conftest import new_project

from pagekit import _pagegen as g
from pagekit import voila_template
from pagekit.client import Client
from pagekit.report_html import write_report

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
LOCAL_SCHEMES = {"data", "blob", "file", "about"}


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def offline_page(browser: Any) -> tuple[Any, list[str]]:
    """A page whose requests off this machine are aborted; the list collects their URLs."""
    page = browser.new_page(viewport={"width": 1280, "height": 1200})
    outside: list[str] = []

    def handle(route: Any) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in LOCAL_SCHEMES or url.hostname in LOOPBACK:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", handle)
    return page, outside


@contextlib.contextmanager
def serve_api(runtime_home: Path, log_path: Path) -> Iterator[str]:
    """`pagekit serve` on a free port against ``runtime_home``: its base URL."""
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pagekit.cli", "serve", "--port", str(port)],
            env=dict(os.environ, PAGEKIT_HOME=str(runtime_home)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_up(proc, log_path, lambda: listening(port), 60)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(20)


@pytest.mark.browser
def test_api_docs_and_redoc_draw_every_route_offline(
    browser: Any, client: Client, runtime_home: Path, tmp_path: Path
) -> None:
    expect = playwright_api().expect
    with serve_api(runtime_home, tmp_path / "serve.log") as base:
        page, outside = offline_page(browser)
        page.goto(f"{base}/docs")
        paths = page.locator(".opblock-summary-path")
        expect(paths.first).to_be_visible(timeout=30_000)
        # Every route of the OpenAPI document is listed (Swagger UI puts zero-width
        # spaces after the slashes, where a long path may wrap).
        shown = {p.replace("\u200b", "") for p in paths.all_inner_texts()}
        with urllib.request.urlopen(f"{base}/openapi.json") as r:
            documented = set(json.load(r)["paths"])
        assert len(documented) > 5 and documented <= shown, documented - shown
        page.goto(f"{base}/redoc")
        expect(page.get_by_text("/projects/{project_id}/pages").first).to_be_attached(
            timeout=30_000
        )
        expect(page.locator("h1").first).to_contain_text("pagekit")
        assert outside == []


@pytest.mark.browser
def test_the_dashboard_draws_with_its_icons_offline(
    browser: Any, client: Client, runtime_home: Path, tmp_path: Path
) -> None:
    """Voila's lab template linked Font Awesome from cdn.jsdelivr.net; the same CSS and
    fonts are in Voila's own static files, which the dashboard's template uses alone."""
    expect = playwright_api().expect
    with serve_dashboard(runtime_home, tmp_path / "dashboard.log") as (url, _proc):
        page, outside = offline_page(browser)
        page.goto(url, timeout=120_000)
        create = page.get_by_role("button", name="Create project")
        create.wait_for(timeout=120_000)  # the kernel starts and draws the dashboard
        for panel in ("Upload", "Jobs", "Pages", "Workers"):
            expect(page.get_by_text(panel, exact=True).first).to_be_visible()
        # The buttons' Font Awesome icons: the font is loaded (from Voila's own static
        # files) and the icon before "Create project" is drawn with it.
        loaded = page.evaluate(
            """async () => { await document.fonts.ready;
              return [...document.fonts].filter(f => f.family.includes('Font Awesome')
                && f.status === 'loaded').length }"""
        )
        assert loaded >= 1
        icon = create.locator("i.fa")
        style = icon.evaluate(
            "i => { const s = getComputedStyle(i, '::before');"
            " return [s.fontFamily, s.content, i.getBoundingClientRect().width] }"
        )
        assert "Font Awesome" in style[0] and style[1] not in ("none", "") and style[2] > 5, style
        assert outside == []


@pytest.mark.parametrize("template", ["pagekit", "lab"])
def test_the_dashboards_error_pages_link_no_cdn(
    template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Voila's error pages (e.g. 503 when too many pages are open) as the dashboard's
    template draws them: no link to a CDN, where Voila's own lab template has one."""
    from traitlets.config import Config
    from voila.paths import collect_template_paths

    monkeypatch.setenv("JUPYTER_PATH", os.environ.get("JUPYTER_PATH", ""))
    voila_template.use(Config())
    paths = collect_template_paths(["voila", "nbconvert"], template, prune=True)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(paths), extensions=["jinja2.ext.i18n"])
    env.install_null_translations(newstyle=False)  # type: ignore[attr-defined]
    page = env.get_template("error.html").render(status_code=503, status_message="busy")
    assert "503: busy" in page
    assert ("https://" in page) == (template == "lab")


@pytest.mark.browser
def test_the_html_report_opens_offline(browser: Any, client: Client, tmp_path: Path) -> None:
    p = new_project(client)
    scan = g.image_bytes(g.text_image(g.SAMPLE_TEXTS[0], width=850, height=1100, font_size=24))
    client.add_pages(p, [("scan.png", scan), ("letter.pdf", g.text_pdf([g.SAMPLE_TEXTS[1]]))])
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=120)
    report = write_report(client, p, tmp_path / "report.html")
    page, outside = offline_page(browser)
    blocked: list[str] = []  # what the report's Content-Security-Policy refused
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    page.goto(report.as_uri())
    assert page.locator("h1").inner_text() == p["name"]
    thumbs = page.locator("img.pk-thumb").evaluate_all(
        "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)"
    )
    assert thumbs and all(thumbs)
    assert outside == [] and blocked == []
