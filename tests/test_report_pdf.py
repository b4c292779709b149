"""The report of a real-looking 60-page project, printed to PDF and opened in Chromium.

Its pages hold long words, long URLs and come from files with long names: the things
that squeezed the text column of the page table to a few characters, printed one row
per sheet, shrank thumbnails and cut off the throughput chart's last label.
"""

from __future__ import annotations

import math
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import chromium
from conftest import need, new_project

from pagekit import _pagegen as g
from pagekit.client import Client
from pagekit.report_html import columns_chart, css, environment, find_chromium, write_report

PAGES = 60
LONG_WORDS = (
    "Donaudampfschifffahrtsgesellschaftskapitaenswitwe",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
)
# A Letter sheet in landscape (Chromium's default paper) less the report's 10 mm side
# margins, in CSS px: the width the page table is printed at.
PRINT_WIDTH = 1056 - 2 * 38


def url(i: int) -> str:
    # 78 characters; no hyphen, where the text-layer PDFs' lines could break it.
    return f"https://archive.example.org/collections/holloway_family/box17/letter_{i:04d}.pdf"


def file_name(i: int, ext: str) -> str:
    return (
        f"2023-11-14_Correspondence_Archive_Box-17_Folder-{i:02d}_Holloway-family-letters"
        f"_scanned-at-600dpi_final-version-2_reviewed.{ext}"
    )


def page_text(i: int) -> str:
    letter = g.SAMPLE_TEXTS[i % len(g.SAMPLE_TEXTS)]
    return f"Ref. {url(i)} {letter} Filed under {LONG_WORDS[i % 2]}."


def words(text: str) -> str:
    """``text`` with its whitespace collapsed and ligatures (the PDF's "ﬁ") spelt out."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


@pytest.fixture(scope="module")
def project(client: Client) -> dict:
    """48 text-layer pages in six PDFs and 12 scans (OCR), each file with a long name,
    with a custom step's column, processed by the real workers."""
    p = new_project(client, ["shout"])
    pdfs = [(file_name(f, "pdf"), g.text_pdf([page_text(8 * f + j) for j in range(8)]))
            for f in range(6)]  # fmt: skip
    scans = [(file_name(6 + k, "png"),
              g.image_bytes(g.text_image(page_text(48 + k), font_size=30)))
             for k in range(12)]  # fmt: skip
    client.add_pages(p, [*pdfs, *scans])
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=600)
    assert client.count_pages(p, "completed") == PAGES
    return p


@pytest.fixture(scope="module")
def report(client: Client, project: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(client, project, tmp_path_factory.mktemp("report") / "report.html")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.mark.browser
def test_the_pdf_has_a_few_rows_a_sheet_and_wraps_long_names(
    client: Client, project: dict, tmp_path: Path
) -> None:
    """60 pages print on at most 19 sheets (it was 96: a row a sheet, and more).

    A landscape sheet (Letter or A4, 12 mm margins) is about 700 px high, and a row is at
    most about 140 px: a 96 px wide thumbnail of a portrait page is 124 px high, a page's
    text is cut to 8 lines, a long file name wraps in its column. So at least four rows fit
    a sheet (five on Letter): 15 sheets, and up to 4 for the summary, the charts and the
    other tables.
    """
    need(find_chromium() is not None, "headless Chromium is not installed")
    from pypdf import PdfReader

    pdf = write_report(client, project, tmp_path / "report.pdf")
    sheets = PdfReader(pdf).pages
    assert len(sheets) <= math.ceil(PAGES / 4) + 4, len(sheets)
    assert all(s.mediabox.width > s.mediabox.height for s in sheets)  # landscape
    text = unicodedata.normalize("NFKC", "\n".join(s.extract_text() for s in sheets))
    lines = [words(line) for line in text.splitlines() if line.strip()]
    # The text column holds whole phrases a line (it held 3 to 5 characters), and the
    # URL at its start wraps inside it, every character there.
    first = words(page_text(0))
    longest = max((len(line) for line in lines if line in first), default=0)
    assert longest >= 30, [line for line in lines if line in first]
    assert url(0) in text.replace("\n", "")
    # So does each long file name in the source column, on as many lines as it needs.
    assert file_name(0, "pdf") in text.replace("\n", "")
    # A page's text is cut to its first lines: the end of a letter is not printed.
    assert words(g.SAMPLE_TEXTS[0])[-60:] not in words(text)


@pytest.mark.browser
def test_printed_rows_are_short_and_nothing_sticks_out(report: Path, browser: Any) -> None:
    """In print media at the printed width: the text column is wide, every long word,
    URL and file name wraps inside its cell, and every row is short (thumbnail-high)."""
    page = browser.new_page(viewport={"width": PRINT_WIDTH, "height": 800})
    try:
        page.emulate_media(media="print")
        page.goto(report.as_uri())
        table = page.locator("#pages table")
        assert table.evaluate("t => t.getBoundingClientRect().width") <= PRINT_WIDTH
        rows = page.locator("#pages tr[data-page]")
        assert rows.count() == PAGES
        texts = page.locator("#pages td.pk-text")
        widths = texts.evaluate_all("cells => cells.map(c => c.getBoundingClientRect().width)")
        assert min(widths) >= 240, min(widths)
        heights = rows.evaluate_all("rows => rows.map(r => r.getBoundingClientRect().height)")
        assert max(heights) <= 150, max(heights)
        overflowing = page.locator("#pages td").evaluate_all(
            "cells => cells.filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent)"
        )
        assert overflowing == []
        # The URL is in the first row's text, on more than one line of it.
        first = page.locator('#pages tr[data-page="1"] td.pk-text')
        assert url(0) in first.inner_text()
    finally:
        page.close()


@pytest.mark.browser
def test_thumbnails_are_big_enough_to_read_a_heading(report: Path, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(report.as_uri())
        sizes = page.locator("#pages img.pk-thumb").evaluate_all(
            "imgs => imgs.map(i => [i.getBoundingClientRect().width, i.naturalWidth])"
        )
        assert len(sizes) == PAGES
        # Shown at least 150 px wide, from an image at least that wide (the stored
        # 256 px thumbnail, a portrait page's is 198 px wide).
        assert all(shown >= 150 and natural >= 150 for shown, natural in sizes), sizes[:3]
    finally:
        page.close()


CHART_TEXTS = """svgs => svgs.map(svg => {
  const box = svg.viewBox.baseVal;
  return [...svg.querySelectorAll('text')].map(t => {
    const r = t.getBBox();
    return {text: t.textContent, inside: r.x >= 0 && r.y >= 0 && r.x + r.width <= box.width
            && r.y + r.height <= box.height};
  });
})"""


def extreme_chart() -> str:
    """A throughput chart of day buckets with a six-digit peak, as the report draws it."""
    chart = columns_chart(
        [[123_456 - i, i] for i in range(40)],
        ["#1a7f37", "#cf222e"],
        ["tip"] * 40,
        [(0, "2026-11-01"), (20, "2026-11-21"), (39, "2026-12-10")],
        label="pages finished per 1 day",
    )
    draw = '{% from "report/macros.html.j2" import columns %}{{ columns(chart) }}'
    return environment().from_string(draw).render(chart=chart)


@pytest.mark.browser
@pytest.mark.parametrize("media", ["screen", "print"])
def test_chart_labels_are_inside_their_charts(report: Path, browser: Any, media: str) -> None:
    """Measured in the browser: the report's charts, and one with the longest labels."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.emulate_media(media=media)
        page.goto(report.as_uri())
        charts = page.locator("svg.pk-chart").evaluate_all(CHART_TEXTS)
        labels = [t for chart in charts for t in chart]
        assert len(labels) >= 3 + 1 + 3 + 10  # two charts: their y values and x labels
        page.set_content(f"<style>{css()}</style>{extreme_chart()}")
        labels += page.locator("svg.pk-chart").evaluate_all(CHART_TEXTS)[0]
        assert [t["text"] for t in labels if not t["inside"]] == []
    finally:
        page.close()


# -- the chart's geometry, without a browser ------------------------------------------------


def test_long_labels_and_big_numbers_fit_the_viewbox() -> None:
    """Day buckets' dates under the first and last columns, and a six-digit peak: each
    label, at a generous 0.7 em a character of the 11 px chart font, is inside the chart."""
    svg = extreme_chart()
    root = ET.fromstring(svg)
    width = float(root.get("viewBox", "").split()[2])
    texts = root.findall("text")
    assert len(texts) == 6
    for t in texts:
        x, w = float(t.get("x", "0")), len(t.text or "") * 11 * 0.7
        left = {"end": x - w, "middle": x - w / 2}.get(t.get("text-anchor", ""), x)
        assert 0 <= left and left + w <= width, (t.text, left, w, width)
    assert re.search(r">123,456<", svg)
