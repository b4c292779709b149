"""The exports archives use: one searchable PDF, and zips of hOCR and ALTO files per page.

One project on the real runtime, OCR'd by the workers: a PNG scan, a JPEG photo, a scan
lying on its side, a slightly skewed scan, a scanned (image-only) PDF page, and two PDF
pages with their own text layer (one pypdf-made, inheriting its size, fonts and a turn
from its page tree), numbered with a gap so page labels matter. Another project holds the
pages that cannot be read: a failed page, and one whose stored bytes are gone.
"""

from __future__ import annotations

import io
import re
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from click.testing import CliRunner
from conftest import new_project
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, NumberObject

from pagekit import _pagegen as g
from pagekit.cli import main
from pagekit.client import Client
from pagekit.config import Settings
from pagekit.processing import ocr
from pagekit.store import PageLayout

DPI = 150
SMALL = {"width": 1275, "height": 1650, "font_size": 30}  # US Letter at 150 dpi
ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"
XHTML = "{http://www.w3.org/1999/xhtml}"
# Where _pagegen.text_image starts the first line: a tenth of the width in, a twelfth down.
FIRST_X, FIRST_TOP = SMALL["width"] // 10, SMALL["height"] // 12


def _inherited_pdf(text: str) -> bytes:
    """A pypdf-made page whose size, resources and a 90-degree turn sit on the page tree."""
    writer = PdfWriter()
    writer.append(io.BytesIO(g.text_pdf([text])))
    tree, page = writer._root_object["/Pages"].get_object(), writer.pages[0]
    for key in ("/Resources", "/MediaBox"):
        tree[NameObject(key)] = page.pop(key)
    tree[NameObject("/Rotate")] = NumberObject(90)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _png(text: str, **kw: object) -> bytes:
    return g.image_bytes(g.text_image(text, **{**SMALL, **kw}), dpi=(DPI, DPI))


# page number -> (file name, bytes, the text drawn on it)
PAGES = {
    1: ("scan.png", _png(g.SAMPLE_TEXTS[0]), g.SAMPLE_TEXTS[0]),
    2: ("photo.jpg", g.image_bytes(g.text_image(g.SAMPLE_TEXTS[1], **SMALL).convert("RGB"),
                                   "JPEG", dpi=(DPI, DPI), quality=90), g.SAMPLE_TEXTS[1]),
    3: ("sideways.png", g.image_bytes(g.text_image(g.SAMPLE_TEXTS[5], **SMALL)
                                      .rotate(90, expand=True), dpi=(DPI, DPI)),
        g.SAMPLE_TEXTS[5]),
    4: ("skewed.png", _png(g.SAMPLE_TEXTS[6], rotate=2.0), g.SAMPLE_TEXTS[6]),
    5: ("scanned.pdf", g.scanned_pdf([g.text_image(g.SAMPLE_TEXTS[3], **SMALL)], dpi=DPI),
        g.SAMPLE_TEXTS[3]),
    8: ("letters.pdf", g.text_pdf([g.SAMPLE_TEXTS[2]]), g.SAMPLE_TEXTS[2]),
    9: ("inherited.pdf", _inherited_pdf(g.SAMPLE_TEXTS[10]), g.SAMPLE_TEXTS[10]),
}  # fmt: skip
OCRED = (1, 2, 3, 4, 5)
TEXT_LAYER = (8, 9)


@pytest.fixture(scope="module")
def project(client: Client) -> dict:
    p = new_project(client)
    for number, (name, data, _) in PAGES.items():
        client.add_pages(p, (name, data), page_number=number)
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=180)
    return p


@pytest.fixture(scope="module")
def pages(client: Client, project: dict) -> dict[int, dict]:
    """Each page as Client.page gives it, with its stored layout under ``"layout"``."""
    out = {}
    for page_id in client.pages(project)["page_id"]:
        page = client.page(int(page_id))
        with client.store.read() as s:
            row = s.get(PageLayout, int(page_id))
        page["layout"] = row.layout if row else None
        out[page["page_number"]] = page
    return out


@pytest.fixture(scope="module")
def pdf(client: Client, project: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return client.export(project, tmp_path_factory.mktemp("pdf") / "out.pdf")


def _pt(px: float, dpi: float) -> float:
    return px * 72 / dpi


def test_the_pages_were_processed_as_the_exports_expect(pages: dict[int, dict]) -> None:
    assert sorted(pages) == sorted(PAGES)
    assert {n: p["status"] for n, p in pages.items()} == dict.fromkeys(PAGES, "completed")
    for n in OCRED:
        layout = pages[n]["layout"]
        assert pages[n]["text_source"] == "ocr" and layout, n
        assert layout["words"] and layout["dpi"] > 0, n
    for n in TEXT_LAYER:
        assert pages[n]["text_source"] == "text-layer", n
    assert pages[3]["layout"]["rotation"] in (90, 270), "the sideways page was turned"
    assert abs(pages[4]["layout"]["skew"] or 0) > 1, "the skewed page was straightened"


def test_the_pdf_has_every_page_in_page_order_and_labels_them(
    pdf: Path, pages: dict[int, dict]
) -> None:
    reader = PdfReader(pdf)
    assert len(reader.pages) == len(PAGES)
    assert reader.page_labels == [str(n) for n in sorted(PAGES)]  # 1-5, then 8-9
    for index, n in enumerate(sorted(PAGES)):
        text = reader.pages[index].extract_text()
        assert g.word_recall(PAGES[n][2], text) > 0.9, (n, text[:200])


def test_ocred_pages_are_their_upright_image_at_the_ocr_size(
    pdf: Path, pages: dict[int, dict]
) -> None:
    """Page size = layout px / dpi * 72, and the image is exactly the one OCR read."""
    reader = PdfReader(pdf)
    for index, n in enumerate(sorted(PAGES)):
        layout = pages[n]["layout"]
        if n not in OCRED:
            continue
        box = reader.pages[index].mediabox
        want = (_pt(layout["width"], layout["dpi"]), _pt(layout["height"], layout["dpi"]))
        assert float(box.width) == pytest.approx(want[0], abs=0.01), n
        assert float(box.height) == pytest.approx(want[1], abs=0.01), n
        (image,) = reader.pages[index]["/Resources"]["/XObject"].values()
        image = image.get_object()
        assert (image["/Width"], image["/Height"]) == (layout["width"], layout["height"]), n
    # The scans are US Letter at 150 dpi; the sideways one stands upright again.
    first = reader.pages[0].mediabox
    assert (float(first.width), float(first.height)) == (612, 792)
    sideways = reader.pages[2].mediabox
    assert float(sideways.width) < float(sideways.height)


def test_the_text_layer_holds_what_ocr_found(pdf: Path, pages: dict[int, dict]) -> None:
    reader = PdfReader(pdf)
    for index, n in enumerate(sorted(PAGES)):
        if n not in OCRED:
            continue
        found = reader.pages[index].extract_text()
        ocr_words = " ".join(w[0] for w in pages[n]["layout"]["words"])
        assert g.word_recall(ocr_words, found) >= 0.95, (n, found[:200])
        assert g.word_recall(pages[n]["text"], found) >= 0.95, n
        assert g.word_recall(PAGES[n][2], found) >= 0.9, n
        assert "  " not in found, "no doubled spaces between words"


def test_the_jpeg_photo_is_embedded_as_it_was_stored(pdf: Path) -> None:
    reader = PdfReader(pdf)
    (image,) = reader.pages[1]["/Resources"]["/XObject"].values()
    image = image.get_object()
    assert image["/Filter"] == "/DCTDecode"
    assert image._data == PAGES[2][1]


def test_text_layer_pages_are_the_original_pages_with_their_own_text(pdf: Path) -> None:
    reader = PdfReader(pdf)
    for n in TEXT_LAYER:
        page = reader.pages[sorted(PAGES).index(n)]
        original = PdfReader(io.BytesIO(PAGES[n][1])).pages[0]
        assert "/XObject" not in page["/Resources"], n
        assert page["/Resources"]["/Font"]["/F1"]["/BaseFont"] == "/Helvetica"
        assert page.get_contents().get_data() == original.get_contents().get_data()
        assert [float(v) for v in page.mediabox] == [0, 0, 612, 792]
        assert g.word_recall(PAGES[n][2], page.extract_text()) >= 0.95, n
    # What the page inherited from its page tree came along: it still lies turned.
    assert reader.pages[sorted(PAGES).index(9)].rotation == 90


def test_words_are_placed_over_the_words_in_the_image(pdf: Path, pages: dict[int, dict]) -> None:
    """Where pypdf and PDFium say a word is, in points, is where the image shows it."""
    layout = pages[1]["layout"]
    scale = 72 / layout["dpi"]
    height = layout["height"] * scale
    first_line = [w for w in layout["words"] if w[6:9] == layout["words"][0][6:9]]
    dear = first_line[0]
    assert dear[0] == "Dear"
    # pypdf: the first line starts at "Dear"'s box, on the line's bottom.
    starts = []

    def visit(text: str, cm: list, tm: list, font: object, size: float) -> None:
        if text.startswith("Dear"):
            starts.append((tm[4], tm[5]))

    PdfReader(pdf).pages[0].extract_text(visitor_text=visit)
    x, y = starts[0]
    bottom = max(w[4] for w in first_line)
    assert x == pytest.approx(dear[1] * scale, abs=0.5)
    assert y == pytest.approx(height - bottom * scale, abs=0.5)
    # ... which is where _pagegen drew it (glyphs sit a few pixels inside the pen position).
    assert x == pytest.approx(FIRST_X * scale, abs=4)
    font = SMALL["font_size"]
    assert height - (FIRST_TOP + 1.5 * font) * scale < y < height - (FIRST_TOP + 0.5 * font) * scale
    # PDFium: a word in the middle of the line covers its box, as a viewer highlights it.
    word = next(w for w in first_line if w[0] == "arrived")
    doc = pdfium.PdfDocument(str(pdf))
    try:
        text = doc[0].get_textpage()
        match = text.search("arrived", match_whole_word=True).get_next()
        assert match is not None
        left = text.get_charbox(match[0])[0]
        right = text.get_charbox(match[0] + match[1] - 1)[2]
    finally:
        doc.close()
    assert left == pytest.approx(word[1] * scale, abs=0.5)
    assert right == pytest.approx(word[3] * scale, abs=0.5)


@pytest.mark.parametrize("n", [3, 4], ids=["turned", "straightened"])
def test_the_image_in_the_pdf_is_the_one_ocr_read(
    pdf: Path, pages: dict[int, dict], n: int
) -> None:
    """Read again from the PDF page, the words are where the layout says, to a few pixels:
    the page was turned and straightened the way OCR turned it (a sign error moves them)."""
    layout = pages[n]["layout"]
    doc = pdfium.PdfDocument(str(pdf))
    try:
        image = doc[sorted(PAGES).index(n)].render(scale=layout["dpi"] / 72, grayscale=True)
        gray = image.to_pil().convert("L")
    finally:
        doc.close()
    size = (layout["width"], layout["height"])
    assert all(abs(a - b) <= 1 for a, b in zip(gray.size, size, strict=True))  # PDFium rounds
    gray = gray.crop((0, 0, *size))
    again = ocr.recognize(gray, tessdata=Settings.from_env().tessdata, lang="eng")

    def boxes(words: list) -> dict[str, list[int]]:
        count = Counter(w[0] for w in words)
        return {w[0]: w[1:5] for w in words if count[w[0]] == 1 and len(w[0]) > 3}

    was, now = boxes(layout["words"]), boxes(again.words)
    common = sorted(set(was) & set(now))
    assert len(common) > 20
    for word in common:
        assert all(abs(a - b) <= 4 for a, b in zip(was[word], now[word], strict=True)), word


def test_the_text_layer_is_invisible(pdf: Path) -> None:
    """Rendered, an OCR'd page is its image: no text drawn over it."""
    doc = pdfium.PdfDocument(str(pdf))
    try:
        rendered = doc[0].render(scale=DPI / 72, grayscale=True).to_pil().convert("L")
    finally:
        doc.close()
    original = Image.open(io.BytesIO(PAGES[1][1])).convert("L").resize(rendered.size)
    diff = [abs(a - b) for a, b in zip(rendered.tobytes(), original.tobytes(), strict=True)]
    assert sum(d > 64 for d in diff) < 0.002 * len(diff)


# -- hOCR and ALTO ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hocr(client: Client, project: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return client.export(project, tmp_path_factory.mktemp("hocr") / "hocr.zip", "hocr")


@pytest.fixture(scope="module")
def alto(client: Client, project: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return client.export(project, tmp_path_factory.mktemp("alto") / "alto.zip", "alto")


def _bbox(title: str) -> list[int]:
    found = re.search(r"bbox (\d+) (\d+) (\d+) (\d+)", title)
    assert found, title
    return [int(v) for v in found.groups()]


def test_hocr_has_one_valid_file_per_page(hocr: Path, pages: dict[int, dict]) -> None:
    with zipfile.ZipFile(hocr) as zf:
        assert zf.namelist() == [f"page-{n:04d}.hocr" for n in sorted(PAGES)]
        for n in sorted(PAGES):
            raw = zf.read(f"page-{n:04d}.hocr").decode("utf-8")
            HTMLParser().feed(raw)  # and as HTML, the way browsers read it
            root = ET.fromstring(raw)
            meta = {m.get("name"): m.get("content") for m in root.iter(f"{XHTML}meta")}
            assert meta["ocr-system"].startswith("pagekit")
            assert "ocrx_word" in meta["ocr-capabilities"].split()
            (page,) = [e for e in root.iter() if e.get("class") == "ocr_page"]
            assert f"ppageno {n - 1}" in page.get("title")
            found = [e for e in root.iter() if e.get("class") == "ocrx_word"]
            layout = pages[n]["layout"]
            if n in TEXT_LAYER:
                assert found == [], "a text-layer page has no OCR words"
                continue
            assert _bbox(page.get("title")) == [0, 0, layout["width"], layout["height"]]
            assert len(found) == len(layout["words"])
            assert [e.text for e in found] == [w[0] for w in layout["words"]]
            for e, w in zip(found, layout["words"], strict=True):
                assert _bbox(e.get("title")) == w[1:5]
                conf = int(re.search(r"x_wconf (\d+)", e.get("title")).group(1))
                assert conf == round(w[5])
            lines = [e for e in root.iter() if e.get("class") == "ocr_line"]
            assert len(lines) == len({tuple(w[6:9]) for w in layout["words"]})


def test_alto_has_one_valid_file_per_page(alto: Path, pages: dict[int, dict]) -> None:
    with zipfile.ZipFile(alto) as zf:
        assert zf.namelist() == [f"page-{n:04d}.xml" for n in sorted(PAGES)]
        for n in sorted(PAGES):
            root = ET.fromstring(zf.read(f"page-{n:04d}.xml"))
            assert root.tag == f"{ALTO}alto"
            assert root.find(f"{ALTO}Description/{ALTO}MeasurementUnit").text == "pixel"
            page = root.find(f"{ALTO}Layout/{ALTO}Page")
            assert page.get("PHYSICAL_IMG_NR") == str(n)
            strings = list(root.iter(f"{ALTO}String"))
            layout = pages[n]["layout"]
            if n in TEXT_LAYER:
                assert strings == [], "a text-layer page has no OCR words"
                continue
            assert (int(page.get("WIDTH")), int(page.get("HEIGHT"))) == (
                layout["width"], layout["height"]
            )  # fmt: skip
            assert page.find(f"{ALTO}PrintSpace") is not None
            assert [s.get("CONTENT") for s in strings] == [w[0] for w in layout["words"]]
            for s, w in zip(strings, layout["words"], strict=True):
                x0, y0, x1, y1 = w[1:5]
                box = [int(s.get(k)) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT")]
                assert box == [x0, y0, x1 - x0, y1 - y0]
                assert 0 <= float(s.get("WC")) <= 1
            lines = list(root.iter(f"{ALTO}TextLine"))
            assert all(line.find(f"{ALTO}String") is not None for line in lines)
            assert len(list(root.iter(f"{ALTO}SP"))) == len(strings) - len(lines)
            ids = [e.get("ID") for e in root.iter() if e.get("ID")]
            assert len(ids) == len(set(ids))


def test_the_cli_writes_the_pdf_and_the_alto_zip(
    project: dict, runtime_home: Path, tmp_path: Path
) -> None:
    """``--format alto``; a ``.pdf`` name alone says PDF."""
    for name, fmt in (("out.pdf", []), ("alto.zip", ["--format", "alto"])):
        args = ["--home", str(runtime_home), "export", project["name"], *fmt]
        result = CliRunner().invoke(main, [*args, "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert len(PdfReader(tmp_path / "out.pdf").pages) == len(PAGES)
    with zipfile.ZipFile(tmp_path / "alto.zip") as zf:
        assert len(zf.namelist()) == len(PAGES)


# -- pages that cannot be read ---------------------------------------------------------------


def test_a_project_with_failed_and_missing_pages_still_exports(
    client: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = new_project(client, ["crash"])
    # Bytes of its own (a content-addressed blob shared with no other test), to delete.
    gone = _png(f"{g.SAMPLE_TEXTS[7]} {uuid.uuid4().hex}")
    client.add_pages(p, [("crashes.png", _png(g.SAMPLE_TEXTS[8])), ("gone.png", gone)])
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=120)
    client.set_steps(p, [])
    client.add_pages(p, ("fine.pdf", g.text_pdf([g.SAMPLE_TEXTS[9]])))
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=120)
    statuses = client.pages(p).set_index("page_number")["status"].to_dict()
    assert statuses == {1: "failed", 2: "failed", 3: "completed"}
    gone_id = int(client.pages(p)["page_id"][1])
    blob = client.blobs._path(client.store.page(gone_id).blob)
    blob.unlink()

    out = client.export(p, tmp_path / "out.pdf")
    reader = PdfReader(out)
    assert len(reader.pages) == 3
    assert reader.pages[0]["/Resources"]["/XObject"], "a failed page still shows its image"
    assert "could not be included" in reader.pages[1].extract_text()
    assert g.word_recall(g.SAMPLE_TEXTS[9], reader.pages[2].extract_text()) >= 0.95
    assert any("gone.png" in r.getMessage() for r in caplog.records)
    for fmt in ("hocr", "alto"):
        with zipfile.ZipFile(client.export(p, tmp_path / f"{fmt}.zip", fmt)) as zf:
            assert len(zf.namelist()) == 3
            for name in zf.namelist():
                ET.fromstring(zf.read(name))
