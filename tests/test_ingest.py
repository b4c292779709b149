"""Ingest: real files in, pages or one clear IngestError out."""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image
from pypdf import PdfWriter

from pagekit import _pagegen as g
from pagekit.errors import (
    BadFileName,
    CorruptFile,
    DecompressionBomb,
    EmptyFile,
    EncryptedPDF,
    FileTooLarge,
    IngestError,
    UnsupportedType,
)
from pagekit.ingest import check_name, load_item, sniff, split
from pagekit.processing import PageInput, process_page

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_pixels": 120_000_000}


def small_page(text: str = "Dear Sir, the goods arrived safely.") -> Image.Image:
    return g.text_image(text, width=850, height=1100, font_size=30)


def encrypted(data: bytes, user: str, owner: str | None = None) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user, owner)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_pdf_splits_into_one_page_pdfs() -> None:
    data = g.text_pdf(g.SAMPLE_TEXTS[:5])
    pages = split(data, "box3.pdf", **LIMITS)
    assert [p.index for p in pages] == [0, 1, 2, 3, 4]
    assert {(p.kind, p.mime, p.count, p.source) for p in pages} == {
        ("pdf", "application/pdf", 5, "box3.pdf")
    }
    assert pages[1].label == "box3.pdf page 2"
    for page, text in zip(pages, g.SAMPLE_TEXTS[:5], strict=True):
        doc = pdfium.PdfDocument(page.data)
        assert len(doc) == 1
        assert g.word_recall(text, doc[0].get_textpage().get_text_bounded()) == 1.0
    assert len({p.sha256 for p in pages}) == 5


def test_mixed_pdf_pages_process_each_their_way() -> None:
    data = g.merge_pdfs([g.text_pdf([g.SAMPLE_TEXTS[0]]), g.scanned_pdf([small_page()])])
    first, second = split(data, "mixed.pdf", **LIMITS)
    assert process_page(PageInput(1, "pdf", first.data, first.label)).engine == "pdf-text-layer"
    scanned = process_page(PageInput(2, "pdf", second.data, second.label, render_dpi=150))
    assert scanned.engine.startswith("tesseract") and "goods arrived" in scanned.text


def test_owner_only_password_pdf_opens() -> None:
    pages = split(encrypted(g.text_pdf(["one", "two"]), "", "owner"), "o.pdf", **LIMITS)
    assert len(pages) == 2


def test_tiff_frames_become_png_pages() -> None:
    data = g.multipage_tiff([small_page("one"), small_page("two"), small_page("three")])
    pages = split(data, "stack.tif", **LIMITS)
    assert [(p.kind, p.mime, p.index, p.count) for p in pages] == [
        ("image", "image/png", i, 3) for i in range(3)
    ]
    assert pages[2].label == "stack.tif page 3"
    assert Image.open(io.BytesIO(pages[2].data)).size == (850, 1100)


def test_single_image_is_kept_byte_for_byte() -> None:
    for fmt, mime in [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ]:
        data = g.image_bytes(small_page(), fmt)
        (page,) = split(data, f"scan.{fmt.lower()}", **LIMITS)
        assert (page.data, page.mime, page.kind, page.label) == (
            data,
            mime,
            "image",
            f"scan.{fmt.lower()}",
        )


def test_type_comes_from_bytes_not_name() -> None:
    png = g.image_bytes(small_page())
    assert sniff(png) == "image/png"
    assert split(png, "actually-a-png.pdf", **LIMITS)[0].mime == "image/png"
    with pytest.raises(UnsupportedType, match=r"^noise\.jpg: .*supported: PDF, JPEG"):
        split(random.Random(0).randbytes(4096), "noise.jpg", **LIMITS)


def test_empty_file() -> None:
    with pytest.raises(EmptyFile, match=r"^blank\.png: the file is empty"):
        split(b"", "blank.png", **LIMITS)


def test_too_large_names_the_limit_and_setting() -> None:
    data = g.text_pdf(["x"] * 3)
    with pytest.raises(FileTooLarge, match=r"big\.pdf: .*0\.5 MiB.*PAGEKIT_MAX_UPLOAD_BYTES"):
        split(data + b"\0" * 1024 * 1024, "big.pdf", max_bytes=512 * 1024, max_pixels=10**8)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_pdf_is_corrupt(keep: float) -> None:
    data = g.merge_pdfs([g.text_pdf(g.SAMPLE_TEXTS[:3]), g.scanned_pdf([small_page()] * 2)])
    with pytest.raises(CorruptFile, match=r"^half\.pdf: .*qpdf"):
        split(data[: int(len(data) * keep)], "half.pdf", **LIMITS)


def test_pdf_page_with_lost_content_is_corrupt_not_blank() -> None:
    data = g.text_pdf(g.SAMPLE_TEXTS[:3]).replace(b"/Contents 6 0 R", b"/Contents 66 0 R")
    with pytest.raises(CorruptFile, match=r"^lost\.pdf page 2: the page's content is missing"):
        split(data, "lost.pdf", **LIMITS)


def test_encrypted_pdf_says_how_to_decrypt() -> None:
    data = encrypted(g.text_pdf(["secret letter"]), "hunter2")
    with pytest.raises(EncryptedPDF, match=r"^locked\.pdf: .*qpdf --decrypt"):
        split(data, "locked.pdf", **LIMITS)


def test_truncated_image_is_corrupt() -> None:
    data = g.image_bytes(small_page(), "JPEG")
    with pytest.raises(CorruptFile, match=r"^cut\.jpg: image data is truncated"):
        split(data[: len(data) // 2], "cut.jpg", **LIMITS)


@pytest.mark.parametrize("side", [12_000, 30_000])  # below and above Pillow's own hard limit
def test_decompression_bomb_is_refused_before_decoding(side: int) -> None:
    buf = io.BytesIO()
    Image.new("1", (side, side), 1).save(buf, "PNG")
    assert len(buf.getvalue()) < 200_000  # tiny file, huge image
    started = time.perf_counter()
    with pytest.raises(DecompressionBomb, match=r"^bomb\.png: image .*over the limit") as err:
        split(buf.getvalue(), "bomb.png", max_bytes=10**8, max_pixels=100_000_000)
    assert time.perf_counter() - started < 0.5
    assert err.value.limit == 100_000_000


@pytest.mark.parametrize(
    "name", ["../x.png", "a/b.png", "a\\b.png", "..", "", "x\x00.png", "new\nline.png"]
)
def test_hostile_upload_names_are_refused(name: str) -> None:
    with pytest.raises(BadFileName, match="upload it under a plain name like 'page.png'"):
        split(g.image_bytes(small_page()), name, **LIMITS)


def test_plain_names_pass() -> None:
    for name in ["page.png", "scan 028.JPG", "lettre-été.pdf", "..hidden.png", "a..b.png"]:
        assert check_name(name) == name


def test_load_item_reads_a_path_in_a_parent_dir(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "x.png").write_bytes(g.image_bytes(small_page()))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    name, data, is_upload = load_item("../x.png")
    assert (name, is_upload) == ("x.png", False)
    (page,) = split(data, name, is_upload=is_upload, **LIMITS)
    assert page.source == "x.png"


def test_load_item_forms(tmp_path: Path) -> None:
    png = g.image_bytes(small_page())
    assert load_item(("p.png", png)) == ("p.png", png, True)
    assert load_item(png) == ("upload", png, True)
    path = tmp_path / "f.png"
    path.write_bytes(png)
    with path.open("rb") as f:
        assert load_item(f) == ("f.png", png, True)
    assert load_item(io.BytesIO(png)) == ("upload", png, True)
    assert load_item(path) == ("f.png", png, False)


def test_load_item_checks_size_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.pdf"
    with path.open("wb") as f:
        f.truncate(3 * 1024 * 1024)  # sparse: big on stat, nothing to read
    with pytest.raises(FileTooLarge, match=r"^huge\.pdf: file is 3 MiB, over the limit of 1 MiB"):
        load_item(path, max_bytes=1024 * 1024)


def test_load_item_missing_path() -> None:
    with pytest.raises(IngestError, match="file not found; check the path"):
        load_item("/no/such/dir/scan.png")
