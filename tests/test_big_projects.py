"""Big projects stay usable: a PDF of thousands of pages goes in whole and in order, pages
and results read a slice at a time, and exports come out the same whatever the chunk size.

The speed itself is measured by ``bench/scale.py``, not asserted here.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import new_project
from pypdf import PdfReader, PdfWriter

from pagekit import _pagegen as g
from pagekit import ingest, reports
from pagekit.client import Client

# Adding pages never talks to the broker: a client on a home of its own needs no runtime.
NO_BROKER = "redis://127.0.0.1:9/0"
LIMITS = {"max_bytes": 512 * 1024 * 1024, "max_pixels": 120_000_000}
BOOK_PAGES = 3000


def book_text(n: int) -> str:
    return f"Page {n} of the ledger. Cargo number {n * 7} was landed at the harbour."


@pytest.fixture(scope="module")
def book() -> bytes:
    """A text PDF of BOOK_PAGES pages, each saying its own number."""
    return g.text_pdf([book_text(n) for n in range(1, BOOK_PAGES + 1)])


@pytest.fixture(scope="module")
def own_client(tmp_path_factory: pytest.TempPathFactory) -> Client:
    return Client(home=tmp_path_factory.mktemp("big-home"), broker_url=NO_BROKER)


def stored_files(client: Client) -> set[Path]:
    root = client.settings.blob_path
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def page_text(client: Client, page_id: int) -> str:
    reader = PdfReader(io.BytesIO(client.page_bytes(page_id)))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


@pytest.fixture(scope="module")
def ledger(own_client: Client, book: bytes) -> tuple[Client, dict, dict]:
    """A project of one image, then the book: (client, project, the book's outcome)."""
    client = own_client
    project = client.create_project("ledger")
    client.add_pages(project, ("front.png", g.image_bytes(g.text_image("Front matter"))))
    [out] = client.add_pages(project, ("ledger.pdf", book))
    return client, project, out


def test_a_multi_thousand_page_pdf_keeps_its_order_and_numbers(
    ledger: tuple[Client, dict, dict], book: bytes
) -> None:
    client, project, out = ledger
    assert out["status"] == "added" and out["error"] is None
    assert out["page_numbers"] == list(range(2, BOOK_PAGES + 2))
    assert len(set(out["page_ids"])) == BOOK_PAGES

    df = client.pages(project, limit=BOOK_PAGES + 10)
    assert list(df["page_number"]) == list(range(1, BOOK_PAGES + 2))
    pdf_rows = df[df["source"] == "ledger.pdf"]
    assert list(pdf_rows["source_index"]) == list(range(BOOK_PAGES))
    assert list(pdf_rows["page_id"]) == out["page_ids"]
    for index in (0, 1, 1234, BOOK_PAGES - 1):  # each page holds its own text, no other's
        text = page_text(client, out["page_ids"][index])
        assert f"Page {index + 1} of the ledger" in text
        assert f"Page {index + 2} " not in text

    # Added again: every page is already there, nothing is stored twice.
    files = stored_files(client)
    [again] = client.add_pages(project, ("ledger-copy.pdf", book))
    assert again["status"] == "duplicate" and again["page_ids"] == []
    assert again["duplicates"] == out["page_ids"]
    assert again["duplicate_of_numbers"] == out["page_numbers"]
    assert client.count_pages(project) == BOOK_PAGES + 1
    assert stored_files(client) == files


def test_pages_of_a_big_project_read_a_slice_at_a_time(ledger: tuple[Client, dict, dict]) -> None:
    client = ledger[0]
    whole = client.pages("ledger")
    assert len(whole) == BOOK_PAGES + 1
    for offset, limit in ((0, 50), (1500, 50), (BOOK_PAGES - 20, 50)):
        part = client.pages("ledger", limit=limit, offset=offset)
        expected = whole.iloc[offset : offset + limit].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, expected)
    beyond = client.pages("ledger", limit=10, offset=BOOK_PAGES + 5)
    assert beyond.empty and list(beyond.columns) == list(whole.columns)
    pending = client.pages("ledger", "pending", limit=10, offset=100)
    assert list(pending["page_number"]) == list(range(101, 111))
    assert client.pages("ledger", "completed").empty


def inherited_resources_pdf() -> bytes:
    """Two pages that take their fonts and size from the page tree (an object of its own)."""
    text = b"BT /F1 24 Tf 72 300 Td (inherited) Tj ET"
    stream = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text)
    return g._pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 /MediaBox [0 0 300 400] "
            b"/Resources 6 0 R /Rotate 90 >>",
            b"<< /Type /Page /Parent 2 0 R /Contents 5 0 R >>",
            b"<< /Type /Page /Parent 2 0 R /Contents 5 0 R /Rotate 0 >>",
            stream,
            b"<< /Font << /F1 7 0 R >> >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )


def test_pdf_pages_are_stored_as_earlier_versions_stored_them() -> None:
    """A page is the same bytes pagekit stored before it cut pages itself (pypdf's writer,
    one page at a time), so a file added before an upgrade and added again afterwards is
    found to be in the project already."""
    scans = [g.text_image(f"Scan {n}", width=600, height=800) for n in range(3)]
    writer = PdfWriter(clone_from=io.BytesIO(g.text_pdf(["owner only", "password"])))
    writer.encrypt("", "owner")
    locked = io.BytesIO()
    writer.write(locked)
    files = {
        "inherited.pdf": inherited_resources_pdf(),
        "text.pdf": g.text_pdf(g.SAMPLE_TEXTS[:3]),
        "scan.pdf": g.scanned_pdf(scans),
        "mixed.pdf": g.merge_pdfs([g.text_pdf(g.SAMPLE_TEXTS[:2]), g.scanned_pdf(scans[:2])]),
        "owner.pdf": locked.getvalue(),
    }
    for name, data in files.items():
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            reader.decrypt("")
        before = []
        for page in reader.pages:
            one = PdfWriter()
            one.add_page(page)
            buf = io.BytesIO()
            one.write(buf)
            before.append(buf.getvalue())
        assert [p.data for p in ingest.split(data, name, **LIMITS)] == before, name


def linked_pdf(pages: int) -> bytes:
    """A PDF whose every page links to the next (a "next page" button)."""
    writer = PdfWriter()
    for n in range(pages):
        writer.append(io.BytesIO(g.text_pdf([book_text(n + 1)])))
    for n in range(pages - 1):
        writer.add_annotation(
            n,
            {"/Type": "/Annot", "/Subtype": "/Link", "/Rect": [0, 0, 50, 50],
             "/Dest": [writer.pages[n + 1].indirect_reference, "/Fit"]},
        )  # fmt: skip
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_a_page_that_links_to_other_pages_is_stored_alone() -> None:
    """Following a link would copy the page it points to, and that page's links the next:
    the whole document in every page."""
    import pypdfium2 as pdfium

    data = linked_pdf(40)
    pages = ingest.split(data, "linked.pdf", **LIMITS)
    assert len(pages) == 40
    assert max(p.size for p in pages) < len(data) / 10
    for p in pages:
        doc = pdfium.PdfDocument(p.data)
        assert len(doc) == 1
        text = doc[0].get_textpage().get_text_range()
        assert f"Page {p.index + 1} of" in text and f"Page {p.index + 2} of" not in text


def test_a_file_refused_part_way_leaves_no_stored_bytes(tmp_path: Path) -> None:
    client = Client(home=tmp_path, broker_url=NO_BROKER)
    project = client.create_project("refused")
    client.add_pages(project, ("kept.pdf", g.text_pdf(["kept page"])))
    files = stored_files(client)

    texts = [book_text(n) for n in range(1, 7)]
    lost = g.text_pdf(texts).replace(b"/Contents 14 0 R", b"/Contents 66 0 R")  # page 6
    [out] = client.add_pages(project, ("lost.pdf", lost))
    assert out["status"] == "rejected"
    assert out["error"].startswith("lost.pdf page 6: the page's content is missing")
    assert stored_files(client) == files  # pages 1-5 were made, and are gone again

    [out] = client.add_pages(project, ("late.pdf", g.text_pdf(texts)), page_number=1)
    assert out["status"] == "rejected" and "page number 1 is already used" in out["error"]
    assert stored_files(client) == files
    assert client.count_pages(project) == 1


def test_a_file_of_more_pages_than_the_servers_lock_table_goes_in_and_out(
    empty_db: str, tmp_path: Path
) -> None:
    """On PostgreSQL an add holds its pages' bytes against removal with advisory locks, and
    the server's lock table holds 6,400 by default (with some slack: 10,000 to 20,000 on
    an idle server). A file of 20,000 distinct pages goes in whole, and its project is
    deleted with its bytes (on SQLite too)."""
    client = Client(home=tmp_path, broker_url=NO_BROKER, database_url=empty_db)
    project = client.create_project("many")
    n = 20_000
    [out] = client.add_pages(project, ("many.pdf", g.text_pdf([book_text(i) for i in range(n)])))
    assert out["status"] == "added", out["error"]
    assert out["page_numbers"] == list(range(1, n + 1))
    assert len(stored_files(client)) == n
    assert client.delete_project(project)["deleted"] == n
    assert stored_files(client) == set()


# -- results and exports, on the real runtime -------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def done(request: pytest.FixtureRequest) -> tuple[Client, dict]:
    """A project on the real runtime (SQLite, then PostgreSQL when configured): pages read
    from their text layer, some with a step's output, one failed, some still pending."""
    client = request.getfixturevalue("pg_client" if request.param == "postgres" else "client")
    p = new_project(client)
    texts = [f"{g.SAMPLE_TEXTS[n % len(g.SAMPLE_TEXTS)]} Sheet {n}." for n in range(24)]
    client.add_pages(p, ("first.pdf", g.text_pdf(texts[:12])))
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=180)
    client.set_steps(p, ["shout"])
    client.add_pages(p, ("second.pdf", g.text_pdf(texts[12:20])))
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=180)
    client.set_steps(p, ["crash"])
    client.add_pages(p, ("third.pdf", g.text_pdf(texts[20:21])))
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=180)
    client.set_steps(p, [])
    client.add_pages(p, ("fourth.pdf", g.text_pdf(texts[21:])))  # stays pending
    return client, p


def test_results_slices_equal_the_whole_frame(
    done: tuple[Client, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, project = done
    whole = client.results(project)
    assert len(whole) == 24
    assert list(whole["page_number"]) == list(range(1, 25))
    assert "extra.shout.first_word" in whole.columns
    monkeypatch.setattr(reports, "FRAME_CHUNK", 5)  # slices across the store's chunks
    pd.testing.assert_frame_equal(client.results(project), whole)
    for offset, limit in ((0, 3), (4, 7), (10, 5), (18, 50)):
        part = client.results(project, limit=limit, offset=offset)
        expected = whole.iloc[offset : offset + limit].reset_index(drop=True)
        # A slice has the step columns its own pages have, typed by its own values (no
        # pending page among them: whole numbers of words, not floats).
        assert list(part.columns) == [c for c in whole.columns if c in part.columns]
        assert values(part) == values(expected[part.columns])
    assert client.results(project, limit=5, offset=30).empty
    failed = client.results(project, "failed")
    assert list(failed["page_number"]) == [21] and "injected failure" in failed["error"][0]
    pending = client.results(project, ["pending"], limit=2, offset=1)
    assert list(pending["page_number"]) == [23, 24] and pending["text"].isna().all()
    completed = client.results(project, "completed")
    assert list(completed["page_number"]) == list(range(1, 21))
    assert completed["seconds"].gt(0).all()


def values(df: pd.DataFrame) -> list[dict]:
    """The rows as plain values, anything missing as None (a frame's types aside)."""
    return df.astype(object).where(df.notna(), None).to_dict("records")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "zip"])
def test_an_export_is_the_same_whatever_the_chunk_size(
    done: tuple[Client, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    client, project = done
    whole = client.export(project, tmp_path / f"whole.{fmt}")
    monkeypatch.setattr(reports, "CHUNK", 3)
    chunked = client.export(project, tmp_path / f"chunked.{fmt}")
    if fmt in ("csv", "jsonl"):
        assert chunked.read_bytes() == whole.read_bytes()
        return
    import zipfile

    with zipfile.ZipFile(whole) as a, zipfile.ZipFile(chunked) as b:
        assert a.namelist() == b.namelist() and len(a.namelist()) >= 24
        assert all(a.read(name) == b.read(name) for name in a.namelist())


def test_a_parquet_export_reads_back_as_the_results(
    done: tuple[Client, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, project = done
    monkeypatch.setattr(reports, "CHUNK", 4)
    table = pq.read_table(client.export(project, tmp_path / "r.parquet")).to_pandas()
    whole = client.results(project)
    assert list(table.columns) == list(whole.columns)
    assert list(table["page_number"]) == list(whole["page_number"])
    assert list(table["text"].fillna("")) == list(whole["text"].fillna(""))
    steps = table["extra.shout.first_word"]
    assert steps.notna().sum() == whole["extra.shout.first_word"].notna().sum() == 8
