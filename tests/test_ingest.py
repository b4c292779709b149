"""Ingest: real files in, pages or one clear IngestError out."""

from __future__ import annotations

import hashlib
import io
import random
import time
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

from pagekit import _pagegen as g
from pagekit import ingest
from pagekit.client import Client
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
from pagekit.ingest import check_name, load_item, open_pages, sniff, split
from pagekit.processing import PageInput, process_page

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_pixels": 120_000_000}
# Adding pages never talks to the broker: a client on a home of its own needs no runtime.
NO_BROKER = "redis://127.0.0.1:9/0"


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


# -- big files: nothing kept per page ------------------------------------------------------------


def nested_pdf() -> bytes:
    """Five pages in a tree of three levels, each taking some attributes from its nodes."""
    texts = [b"BT /F1 24 Tf 72 300 Td (nested %d) Tj ET" % n for n in range(1, 6)]
    return g._pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R 6 0 R 7 0 R] /Count 5 /MediaBox [0 0 300 400] >>",
            b"<< /Type /Pages /Parent 2 0 R /Kids [4 0 R 5 0 R] /Count 2 /Rotate 90 "
            b"/Resources 10 0 R >>",
            b"<< /Type /Page /Parent 3 0 R /Contents 11 0 R >>",
            b"<< /Type /Page /Parent 3 0 R /Contents 12 0 R /Rotate 0 >>",
            b"<< /Type /Page /Parent 2 0 R /Contents 13 0 R /Resources 10 0 R >>",
            b"<< /Type /Pages /Parent 2 0 R /Kids [8 0 R 9 0 R] /Count 2 /Resources 10 0 R >>",
            b"<< /Type /Page /Parent 7 0 R /Contents 14 0 R >>",
            b"<< /Type /Page /Parent 7 0 R /Contents 15 0 R /MediaBox [0 0 200 200] >>",
            b"<< /Font << /F1 16 0 R >> >>",
            *(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(t), t) for t in texts),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )


def updated_pdf() -> bytes:
    """A text PDF and an update appended to it: page 2's content written again at the end,
    and an object number marked free (a second cross-reference table)."""
    base = g.text_pdf(g.SAMPLE_TEXTS[:3])  # page 2's content is object 6
    prev = int(base.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    text = b"BT /F1 24 Tf 72 700 Td (Updated page two) Tj ET"
    at = len(base)
    body = base + b"6 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n" % (len(text), text)
    table = b"xref\n0 1\n0000000000 65535 f \n6 1\n%010d 00000 n \n10 1\n0000000000 00001 f \n" % at
    trailer = b"trailer\n<< /Size 11 /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
    return body + table + trailer % (prev, len(body))


def test_a_pdf_page_made_again_is_the_same_bytes_in_any_order() -> None:
    """A page is made again (its stored bytes went meanwhile) by walking the tree again,
    on from the page made last when they come in order."""
    for data in (g.text_pdf(g.SAMPLE_TEXTS[:5]), nested_pdf()):
        pages = open_pages(data, "again.pdf", **LIMITS)
        made = [p.data for p in pages]
        assert len(made) == len(set(made)) == 5
        for index in (1, 3, 4, 0, 2, 2):
            again = pages.page(index)
            assert (again.data, again.index, again.count) == (made[index], index, 5)
        with pytest.raises(IndexError):
            pages.page(5)
        assert pages.page(4).data == made[4]


def test_nested_pages_take_what_their_nodes_give_them() -> None:
    seen = []
    for n, page in enumerate(split(nested_pdf(), "nested.pdf", **LIMITS), 1):
        doc = pdfium.PdfDocument(page.data)
        assert f"nested {n}" in doc[0].get_textpage().get_text_range()
        seen.append((doc[0].get_mediabox(), doc[0].get_rotation()))
        doc.close()
    box = (0, 0, 300, 400)
    assert seen == [(box, 90), (box, 0), (box, 0), (box, 0), ((0, 0, 200, 200), 0)]


def _tables(reader: PdfReader) -> tuple[dict, dict, dict]:
    """A reader's cross-reference tables: offsets, free numbers, objects in streams."""
    return (
        {gen: dict(table) for gen, table in reader.xref.items()},
        {
            gen: {n for n, free in table.items() if free}
            for gen, table in reader.xref_free_entry.items()
        },
        dict(reader.xref_objStm),
    )


def _written(obj: object) -> bytes | None:
    if obj is None:
        return None
    buf = io.BytesIO()
    obj.write_to_stream(buf)  # type: ignore[attr-defined]
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["text", "updated", "merged", "rebuilt", "misplaced", "shifted"])
def test_the_compact_reader_reads_the_same_tables_as_pypdf(kind: str) -> None:
    """pagekit's reader keeps pypdf's cross-reference tables in arrays (a 100,000-page
    PDF's in 2 MB rather than 40): what it finds in them is what pypdf finds."""
    text = g.text_pdf(g.SAMPLE_TEXTS[:4])
    merged = g.merge_pdfs([g.text_pdf(g.SAMPLE_TEXTS[:3]), g.scanned_pdf([small_page()])])
    data = {
        "text": text,
        "updated": updated_pdf(),
        "merged": merged,
        # The table is not where the file says: pypdf finds the objects itself.
        "rebuilt": merged.rsplit(b"startxref\n", 1)[0] + b"startxref\n123\n%%EOF\n",
        # An object is not where the table says (pypdf drops it, then finds it when asked).
        "misplaced": text.replace(b"0000000015 00000 n", b"0000000016 00000 n"),
        "shifted": b"junk before the header\n" + g.text_pdf(g.SAMPLE_TEXTS[:2]),
    }[kind]
    plain = PdfReader(io.BytesIO(data), strict=False)
    compact = ingest._Reader(ingest._SharedBytes(data), strict=False)
    assert _tables(compact) == _tables(plain)
    assert isinstance(compact.xref[0], ingest._Offsets)
    for num in _tables(plain)[0][0]:
        assert _written(compact.get_object(num)) == _written(plain.get_object(num)), num
    if kind == "updated":
        texts = []
        for page in split(data, "u.pdf", **LIMITS):
            doc = pdfium.PdfDocument(page.data)
            texts.append(doc[0].get_textpage().get_text_range())
            doc.close()
        assert "Updated page two" in texts[1] and "Updated" not in texts[0] + texts[2]


def test_the_compact_offsets_table_acts_as_a_dict() -> None:
    rng = random.Random(13)
    table, plain = ingest._Offsets(), {}
    for _ in range(20_000):
        num = rng.choice([rng.randrange(300), rng.randrange(300), rng.randrange(10**12), -3, "x"])
        roll = rng.random()
        if roll < 0.7:
            value = rng.choice([rng.randrange(10**9), rng.randrange(10**9), -1, 2**70, None])
            table[num] = plain[num] = value
        elif num in plain:
            assert table.pop(num) == plain.pop(num)
        else:
            with pytest.raises(KeyError):
                del table[num]
        assert (num in table) == (num in plain)
        assert table.get(num, "none") == plain.get(num, "none")
    assert len(table) == len(plain) and dict(table) == plain
    assert sorted(table, key=str) == sorted(plain, key=str)
    assert sorted(table.values(), key=str) == sorted(plain.values(), key=str)


def test_pages_whose_bytes_went_before_the_insert_are_made_again(
    tmp_path: Path, monkeypatch
) -> None:
    """A delete elsewhere may remove the same bytes between a page being stored and its row
    being inserted: the page is made again from the file, the same bytes."""
    client = Client(home=tmp_path, broker_url=NO_BROKER)
    project = client.create_project("made-again")
    data = g.text_pdf(g.SAMPLE_TEXTS[:6])
    made = [p.data for p in split(data, "again.pdf", **LIMITS)]
    add = client.store.add_file_pages

    def add_after_a_delete(*args, **kwargs):
        for index in (1, 4):
            assert client.blobs.delete(hashlib.sha256(made[index]).hexdigest())
        return add(*args, **kwargs)

    monkeypatch.setattr(client.store, "add_file_pages", add_after_a_delete)
    [out] = client.add_pages(project, ("again.pdf", data))
    assert out["status"] == "added" and out["error"] is None, out
    assert [client.page_bytes(page_id) for page_id in out["page_ids"]] == made
