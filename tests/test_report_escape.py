"""Hostile names and text never become markup in any report a user can pass around.

One project on the real runtime whose name, uploaded file names, OCR'd text (a real PDF
text layer) and error messages (real failures, the injected ``crash`` step, whose error
names the file) carry HTML payloads. Every variant is parsed as a browser would: no
script element, no image that is not an embedded thumbnail, no event handler; and the
payloads are there to read, as text.
"""

from __future__ import annotations

import importlib.util
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import need

from pagekit import _pagegen as g
from pagekit import report_html
from pagekit.client import Client

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
# Upload names cannot hold a "/", so the script payload in a file name stays unclosed.
HOSTILE_FILES = (f"{IMG}.pdf", "<script>alert(1).pdf")


class Page(HTMLParser):
    """What a browser would build from a document: its tags and its visible text."""

    def __init__(self, doc: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(doc)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_inert(doc: str, project_name: str) -> None:
    assert "<script" not in doc.lower() and "<img src=x" not in doc.lower()
    page = Page(doc)
    assert not [t for t, _ in page.tags if t == "script"]
    handlers = [(t, a) for t, attrs in page.tags for a in attrs if a.startswith("on")]
    assert not handlers, handlers
    images = [attrs.get("src") or "" for t, attrs in page.tags if t == "img"]
    assert all(src.startswith("data:image/") for src in images), images
    # The payloads are shown, as text: in the title and heading, the page text, the errors.
    text = " ".join(page.text)
    assert project_name in text
    assert SCRIPT in text and IMG in text
    for name in HOSTILE_FILES:  # each failed page's error names its file
        assert [t for t in page.text if name in t and "injected failure" in t], name
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
    assert "&lt;img src=x onerror=alert(1)&gt;" in doc


@pytest.fixture(scope="module")
def project(client: Client) -> dict:
    name = f"{SCRIPT} {IMG} {uuid.uuid4().hex[:8]}"
    p = client.create_project(name)
    client.add_pages(p, ("letter.pdf", g.text_pdf([f"{SCRIPT} {IMG}"])))
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=120)
    client.set_steps(p, ["crash"])
    client.add_pages(p, [(n, g.text_pdf([g.SAMPLE_TEXTS[i]])) for i, n in enumerate(HOSTILE_FILES)])
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=120)
    client.set_steps(p, [])

    pages = client.results(p)
    assert pages["status"].tolist() == ["completed", "failed", "failed"]
    assert SCRIPT in pages["text"][0] and IMG in pages["text"][0]  # the text layer carried them
    assert pages["source"].tolist()[1:] == list(HOSTILE_FILES)
    return p


def test_html_report(client: Client, project: dict, tmp_path: Path) -> None:
    doc = report_html.write_report(client, project, tmp_path / "r.html").read_text("utf-8")
    check_inert(doc, project["name"])


def test_each_section_the_notebook_shows(client: Client, project: dict) -> None:
    data = report_html.collect(client, project)
    doc = "".join(
        [
            report_html.header_html(data),
            report_html.summary_html(data),
            report_html.status_html(data),
            report_html.throughput_html(data),
            report_html.confidence_html(data),
            report_html.failed_html(client, data),
            report_html.jobs_html(data),
            *report_html.iter_pages_html(client, data),
        ]
    )
    check_inert(doc, project["name"])


def test_notebook_report(client: Client, project: dict, tmp_path: Path) -> None:
    need(
        all(importlib.util.find_spec(m) for m in ("papermill", "nbconvert", "nbformat")),
        "the notebook extra is not installed: pip install 'pagekit[notebook]'",
    )
    path = report_html.write_report(client, project, tmp_path / "nb.html", notebook=True)
    doc = path.read_text("utf-8")
    assert "Traceback" not in doc
    check_inert(doc, project["name"])


def test_the_html_the_pdf_path_prints(
    client: Client, project: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    printed: list[str] = []
    real_print = report_html.print_pdf

    def capture(html_path: Path, pdf_path: Path, **kwargs: float) -> Path:
        printed.append(Path(html_path).read_text("utf-8"))
        if report_html.find_chromium() is None:
            Path(pdf_path).write_bytes(b"%PDF-1.4\n")
            return Path(pdf_path)
        return real_print(html_path, pdf_path, **kwargs)

    monkeypatch.setattr(report_html, "print_pdf", capture)
    written = report_html.make_report(client, project, output=tmp_path / "r.pdf", pdf=True)
    assert written == [tmp_path / "r.pdf"] and len(printed) == 1
    check_inert(printed[0], project["name"])


@pytest.mark.browser
def test_pdf_shows_the_payloads_as_text(client: Client, project: dict, tmp_path: Path) -> None:
    need(report_html.find_chromium() is not None, "headless Chromium is not installed")
    from pypdf import PdfReader

    html_path, pdf_path = report_html.make_report(
        client, project, output=tmp_path / "r.html", pdf=True
    )
    assert html_path == tmp_path / "r.html" and pdf_path == tmp_path / "r.pdf"
    text = " ".join(p.extract_text() for p in PdfReader(pdf_path).pages)
    # Printed as characters on the page: had it been markup, Chromium would have run or
    # drawn it instead.
    assert "<script>alert(1)</script>" in text.replace("\n", "")
    assert "onerror=alert(1)>" in text.replace("\n", "")
