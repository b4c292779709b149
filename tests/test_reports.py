"""The HTML report, its notebook path and its PDF, on a real runtime with real OCR.

The project: two OCR'd scans, a text-layer PDF page whose text is hostile HTML, a page
that failed (the injected ``crash`` step) and a page still pending.
"""

from __future__ import annotations

import base64
import io
import re
import tracemalloc
from pathlib import Path

import pytest
from conftest import need, new_project
from PIL import Image

from pagekit import _pagegen as g
from pagekit.blobs import BlobStore
from pagekit.client import Client
from pagekit.contract import PageState
from pagekit.report_html import Source, find_chromium, write_report
from pagekit.store import Page, Store

SMALL = {"width": 1275, "height": 1650, "font_size": 34}
HOSTILE = "<script>alert('pwned')</script> & a letter that arrived in good order last week."
EXTERNAL = re.compile(r"""https?://|src=["']?//|href=["']?//|url\(""", re.IGNORECASE)


@pytest.fixture(scope="module")
def project(client: Client) -> dict:
    p = new_project(client)
    scans = [("scan-a.png", g.image_bytes(g.text_image(g.SAMPLE_TEXTS[i], **SMALL)))
             for i in (6, 7)]  # fmt: skip
    client.add_pages(p, [*scans, ("hostile.pdf", g.text_pdf([HOSTILE]))])
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=120)
    client.set_steps(p, ["crash"])
    client.add_pages(p, ("doomed.pdf", g.text_pdf([g.SAMPLE_TEXTS[8]])))
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=120)
    client.set_steps(p, [])
    client.add_pages(p, ("later.pdf", g.text_pdf([g.SAMPLE_TEXTS[9]])))
    assert client.store.status_counts(p["project_id"])["completed"] == 3
    return p


def card(doc: str, key: str) -> str:
    m = re.search(rf'data-key="{key}"><span class="pk-n">([^<]*)</span>', doc)
    assert m, f"no {key} card"
    return m.group(1)


def check_offline(doc: str) -> None:
    assert not EXTERNAL.findall(doc), EXTERNAL.findall(doc)[:5]
    assert "<script" not in doc.replace("&lt;script", "")
    assert "Content-Security-Policy" in doc


def check_numbers(doc: str) -> None:
    assert card(doc, "pages") == "5"
    assert card(doc, "completed") == "3"
    assert card(doc, "failed") == "1"
    assert card(doc, "waiting") == "1"
    assert "injected failure" in doc  # the failed page, with its error


def test_html_report(client: Client, project: dict, tmp_path: Path) -> None:
    path = write_report(client, project, tmp_path / "report.html")
    doc = path.read_text(encoding="utf-8")
    check_numbers(doc)
    check_offline(doc)
    for section in ("summary", "status", "throughput", "confidence", "failed", "pages"):
        assert f'<section id="{section}">' in doc
    assert doc.count("<svg") >= 3  # status, throughput, confidence charts
    assert re.findall(r'data-page="(\d+)"', doc) == ["1", "2", "3", "4", "5"]
    # The hostile text is shown as text, never as markup.
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in doc
    # Thumbnails are embedded and are real images.
    thumbs = re.findall(r'class="pk-thumb" alt="[^"]*" src="data:image/jpeg;base64,([^"]+)"', doc)
    assert len(thumbs) >= 3
    for b64 in thumbs:
        assert Image.open(io.BytesIO(base64.b64decode(b64))).format == "JPEG"


def test_page_table_is_capped_with_a_pointer_to_the_exports(
    client: Client, project: dict, tmp_path: Path
) -> None:
    doc = write_report(client, project, tmp_path / "r.html", max_pages=2).read_text("utf-8")
    assert re.findall(r'data-page="(\d+)"', doc) == ["1", "2"]
    assert "The first 2 of 5 pages" in doc and "pagekit export" in doc
    check_numbers(doc)  # the summary still counts every page


def test_a_big_project_streams_to_the_file(tmp_path: Path) -> None:
    """5,000 pages of text: the report is written as it is read, never held whole."""
    store = Store(f"sqlite:///{tmp_path / 'big.db'}")
    project = store.create_project("big")
    text = "Dear Sir, the parcel arrived in good order last week. " * 20
    with store.write() as s:
        s.add_all(
            Page(project_id=project.id, page_number=i, source=f"box-{i}.pdf", kind="pdf",
                 mime="application/pdf", blob="0" * 64, status=PageState.COMPLETED,
                 text=f"{i} {text}", words=200, confidence=90.0)
            for i in range(1, 5001)
        )  # fmt: skip
    source = Source(store, BlobStore(tmp_path / "blobs"))
    write_report(source, project.id, tmp_path / "warm.html", max_pages=10)  # imports, templates

    tracemalloc.start()
    try:
        path = write_report(source, project.id, tmp_path / "big.html", max_pages=5000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    doc = path.read_text("utf-8")
    assert len(re.findall(r'data-page="(\d+)"', doc)) == 5000
    assert f"5000 {text}"[:200] in doc and "The first" not in doc
    assert peak < path.stat().st_size / 4, (peak, path.stat().st_size)


def test_report_notebook_executes_and_exports_without_inputs(
    client: Client, project: dict, tmp_path: Path
) -> None:
    doc = write_report(client, project, tmp_path / "nb.html", notebook=True).read_text("utf-8")
    check_numbers(doc)
    check_offline(doc)
    # No input cell made it into the export, and no cell failed.
    assert "jp-InputArea" not in doc and "rh.collect" not in doc and "pagekit_home" not in doc
    assert "Traceback" not in doc and "Error</span>" not in doc
    assert 'class="dataframe' in doc  # the jobs table, as pandas renders it
    assert f"<title>{project['name']} · pagekit report</title>" in doc


@pytest.mark.browser
def test_cli_report_with_pdf(project: dict, runtime_home: Path, tmp_path: Path) -> None:
    need(find_chromium() is not None, "headless Chromium is not installed")
    from click.testing import CliRunner

    from pagekit.cli import main  # imported here: the other tests need no CLI

    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        main, ["--home", str(runtime_home), "report", project["name"], "-o", str(out), "--pdf"]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and f"wrote {out.with_suffix('.pdf')}" in result.output
    check_numbers(out.read_text("utf-8"))
    from pypdf import PdfReader

    pdf = PdfReader(out.with_suffix(".pdf"))
    text = " ".join(p.extract_text() for p in pdf.pages)
    assert project["name"] in text and "injected failure" in text
