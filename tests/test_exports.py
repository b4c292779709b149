"""Every export format read back with its own reader and checked against the store.

One project on the real runtime: OCR'd and text-layer pages, a page that failed, a page
still pending, and a page whose text is set in the store to the awkward cases (a leading
"=", non-BMP characters, an XML-illegal control character). Page numbers are given out
of id order, so "page order" is tested, not "insertion order".
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import new_project
from openpyxl import load_workbook
from sqlalchemy import update

from pagekit import _pagegen as g
from pagekit import reports
from pagekit.cli import main
from pagekit.client import Client
from pagekit.store import Page

UNICODE_TEXT = (
    "Herr Müller bestellt einen café au lait, naïve Grüße aus Köln und Zürich, déjà vu für Søren."
)
TRICKY_TEXT = "=SUM(A1:A9) is not a formula\nZürich 日本語 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 👍\x0bend"
SMALL = {"width": 1275, "height": 1650, "font_size": 34}


@pytest.fixture(scope="module")
def project(client: Client) -> dict:
    p = new_project(client)
    # Numbers out of id order: the PDF gets 10-11, the scan (added later) gets 2.
    client.add_pages(p, ("letters.pdf", g.text_pdf([UNICODE_TEXT, g.SAMPLE_TEXTS[1]])),
                     page_number=10)  # fmt: skip
    png = g.image_bytes(g.text_image(g.SAMPLE_TEXTS[0], **SMALL))
    client.add_pages(p, ("scan.png", png), page_number=2)
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=120)

    client.set_steps(p, ["crash"])
    client.add_pages(p, ("broken.pdf", g.text_pdf([g.SAMPLE_TEXTS[2]])), page_number=5)
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=120)
    client.set_steps(p, [])

    client.add_pages(p, ("later.pdf", g.text_pdf([g.SAMPLE_TEXTS[3]])))  # stays pending
    added = client.add_pages(p, ("tricky.pdf", g.text_pdf([g.SAMPLE_TEXTS[4]])), page_number=1)
    with client.store.write() as s:
        s.execute(
            update(Page)
            .where(Page.id == added[0]["page_ids"][0])
            .values(status="completed", text=TRICKY_TEXT, words=9, chars=len(TRICKY_TEXT))
        )
    return p


@pytest.fixture(scope="module")
def expected(client: Client, project: dict) -> list[dict]:
    """The store's pages, read one by one through Client.page (not through reports)."""
    ids = client.pages(project)["page_id"].tolist()
    return [client.page(i) for i in ids]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two pages per chunk, so every export crosses chunk boundaries (keyset pagination)."""
    monkeypatch.setattr(reports, "CHUNK", 2)


def test_the_project_has_the_cases_the_exports_must_carry(expected: list[dict]) -> None:
    assert [p["page_number"] for p in expected] == [1, 2, 5, 10, 11, 12]
    status = {p["page_number"]: p["status"] for p in expected}
    assert status == {1: "completed", 2: "completed", 5: "failed", 10: "completed",
                      11: "completed", 12: "pending"}  # fmt: skip
    by_number = {p["page_number"]: p for p in expected}
    assert "injected failure" in by_number[5]["error"]
    assert "Müller" in by_number[10]["text"] and "naïve" in by_number[10]["text"]
    assert g.word_recall(g.SAMPLE_TEXTS[0], by_number[2]["text"]) > 0.9


def _same_text(got: object, want: str | None) -> bool:
    if want is None or want == "":
        return got is None or got == "" or (isinstance(got, float) and math.isnan(got))
    return got == want


def _check(rows: list[dict], expected: list[dict]) -> None:
    assert len(rows) == len(expected)
    assert [int(r["page_number"]) for r in rows] == [p["page_number"] for p in expected]
    assert [int(r["page_id"]) for r in rows] == [p["page_id"] for p in expected]
    for r, p in zip(rows, expected, strict=True):
        assert _same_text(r["text"], p["text"]), p["page_number"]
        assert r["status"] == p["status"]
        assert _same_text(r["error"], p["error"])
        assert _same_text(r["source"], p["source"])


def test_csv(client: Client, project: dict, expected: list[dict], tmp_path: Path) -> None:
    path = client.export(project, tmp_path / "out.csv")
    df = pd.read_csv(path, dtype={"text": str, "error": str}, keep_default_na=False)
    _check(df.to_dict("records"), expected)
    assert TRICKY_TEXT in path.read_text(encoding="utf-8")


def test_jsonl(client: Client, project: dict, expected: list[dict], tmp_path: Path) -> None:
    path = client.export(project, tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    _check(rows, expected)
    confidences = {r["page_number"]: r["confidence"] for r in rows}
    assert confidences[2] == pytest.approx(expected[1]["confidence"])


def test_parquet(client: Client, project: dict, expected: list[dict], tmp_path: Path) -> None:
    path = client.export(project, tmp_path / "out.parquet")
    table = pq.read_table(path)
    assert table.schema.field("text").type == "string"
    assert str(table.schema.field("finished_at").type) == "timestamp[us]"
    _check(table.to_pylist(), expected)


def test_excel(client: Client, project: dict, expected: list[dict], tmp_path: Path) -> None:
    path = client.export(project, tmp_path / "out.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["pages", "jobs"]
    header, *values = list(wb["pages"].values)
    rows = [dict(zip(header, v, strict=True)) for v in values]
    # Excel cannot hold the vertical tab (XML 1.0 forbids it): the one allowed difference.
    want = [dict(p, text=(p["text"] or "").replace("\x0b", "")) for p in expected]
    _check(rows, want)
    tricky = wb["pages"].cell(row=2, column=header.index("text") + 1)
    assert tricky.value.startswith("=SUM") and "👍" in tricky.value
    assert tricky.data_type == "s"  # stored as text: Excel must not run OCR'd "formulas"
    jobs = list(wb["jobs"].values)
    assert len(jobs) == 1 + 2 and jobs[0][:4] == ("task_id", "project_id", "kind", "status")
    assert sorted(j[3] for j in jobs[1:]) == ["completed", "failed"]


def test_text_bundle(client: Client, project: dict, expected: list[dict], tmp_path: Path) -> None:
    path = client.export(project, tmp_path / "text.zip")
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        pages = [n for n in names if n.startswith("pages/")]
        assert pages == [f"pages/{p['page_number']:04d}.txt" for p in expected]
        for p in expected:
            got = zf.read(f"pages/{p['page_number']:04d}.txt").decode("utf-8")
            assert got == (p["text"] or "")
        combined = zf.read("all-pages.txt").decode("utf-8")
        manifest = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8"))))
    # The combined file holds every text, in page order.
    positions = [combined.index(f"=== page {p['page_number']} ") for p in expected]
    assert positions == sorted(positions)
    for p in expected:
        if p["text"]:
            assert p["text"] in combined
    assert "[failed: " in combined and "[pending]" in combined
    assert [(int(m["page_number"]), m["status"]) for m in manifest] == [
        (p["page_number"], p["status"]) for p in expected
    ]


def test_cli_export_and_a_clear_error_for_unknown_formats(
    client: Client, project: dict, runtime_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    result = CliRunner().invoke(
        main,
        [
            "--home",
            str(runtime_home),
            "export",
            project["name"],
            "--format",
            "zip",
            "-o",
            str(out),
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    assert zipfile.is_zipfile(out)
    with pytest.raises(Exception, match="unknown export format 'docx'.*xlsx, zip"):
        client.export(project, tmp_path / "out.docx")
    assert not list(tmp_path.glob("*.part"))
