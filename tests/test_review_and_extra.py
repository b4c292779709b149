"""Review flags and custom step outputs wherever users look: the page lists (Client, CLI,
HTTP API, dashboard), ``results()``, every export, and the HTML report.

The project, on the real runtime: two OCR'd scans and a text-layer PDF page, all run
through the ``shout`` test step, and a page still pending. Page 2 is then flagged for
review in the store, and page 3 given nested step output (dicts in dicts, a list), so
the flattening rules are read back from every format.

The last test lets the workers decide the flag themselves (a project whose review
threshold is 100 flags every OCR'd page): it needs the OCR pipeline's review check and the
per-project ``review_threshold``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import new_project
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import update

from pagekit import _pagegen as g
from pagekit import reports, tokens
from pagekit.api import PageRow, create_app
from pagekit.cli import main
from pagekit.client import Client
from pagekit.contract import PAGE_COLUMNS, RESULT_COLUMNS
from pagekit.errors import InvalidInput
from pagekit.report_html import write_report
from pagekit.store import Page

SMALL = {"width": 1275, "height": 1650, "font_size": 34}
REASON = "mean OCR confidence 41.2 is under the project's review threshold 60"
NESTED = {
    "shout": {"first_word": "DEAR"},
    "dates": {"years": [1891, 1923], "place": {"city": "Köln"}, "count": 2},
}
STEP_COLUMNS = ["extra.shout.first_word", "extra.dates.years", "extra.dates.place.city",
                "extra.dates.count"]  # fmt: skip

_built: dict[int, dict] = {}


def _scan(i: int) -> bytes:
    return g.image_bytes(g.text_image(g.SAMPLE_TEXTS[i], **SMALL))


def marked_project(client: Client) -> dict:
    """The module's project on this client's database (built once per database)."""
    if id(client) in _built:
        return _built[id(client)]
    p = new_project(client, ["shout"])
    client.add_pages(p, [("scan-1.png", _scan(0)), ("scan-2.png", _scan(1)),
                         ("letter.pdf", g.text_pdf([g.SAMPLE_TEXTS[2]]))])  # fmt: skip
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=120)
    client.add_pages(p, ("later.pdf", g.text_pdf([g.SAMPLE_TEXTS[3]])))
    ids = dict(zip(client.pages(p)["page_number"], client.pages(p)["page_id"], strict=True))
    with client.store.write() as s:
        # Whatever the workers decided, this module decides: page 2 only is flagged.
        s.execute(
            update(Page)
            .where(Page.id.in_([ids[1], ids[3]]))
            .values(needs_review=False, review_reason=None)
        )
        s.execute(update(Page).where(Page.id == ids[2]).values(needs_review=True,
                                                               review_reason=REASON))  # fmt: skip
        s.execute(update(Page).where(Page.id == ids[3]).values(extra=NESTED))
    p["ids"] = {int(n): int(i) for n, i in ids.items()}
    _built[id(client)] = p
    return p


def numbers(df: pd.DataFrame) -> list[int]:
    return [int(n) for n in df["page_number"]]


def first_word(client: Client, page_id: int) -> str:
    """What the shout step computes, from the page's stored text."""
    return client.page(page_id)["text"].split()[0].upper()


# -- flattening -------------------------------------------------------------------------------


def test_step_output_flattens_to_columns() -> None:
    assert reports.flatten_extra(NESTED) == {
        "extra.shout.first_word": "DEAR",
        "extra.dates.years": "[1891, 1923]",
        "extra.dates.place.city": "Köln",
        "extra.dates.count": 2,
    }
    # No step ran, or a step wrote nothing: no columns. A value of None is still a column.
    assert reports.flatten_extra(None) == {} == reports.flatten_extra({"s": {}})
    assert reports.flatten_extra({"s": {"k": None}}) == {"extra.s.k": None}


# -- page lists -------------------------------------------------------------------------------


def test_page_lists_filter_on_the_review_flag(any_client: Client) -> None:
    client = any_client
    p = marked_project(client)
    flagged = client.pages(p, needs_review=True)
    assert numbers(flagged) == [2]
    assert bool(flagged["needs_review"].iloc[0]) and flagged["review_reason"].iloc[0] == REASON
    assert list(flagged.columns) == list(PAGE_COLUMNS)
    # False keeps the others, pages never processed (no flag yet) included.
    assert numbers(client.pages(p, needs_review=False)) == [1, 3, 4]
    assert numbers(client.pages(p, "pending", needs_review=False)) == [4]
    assert numbers(client.pages(p, "pending", needs_review=True)) == []
    assert numbers(client.pages(p)) == [1, 2, 3, 4]
    assert client.count_pages(p, needs_review=True) == 1
    assert client.count_pages(p, "completed", needs_review=False) == 2
    results = client.results(p, needs_review=True)
    assert numbers(results) == [2] and results["text"].iloc[0]
    with pytest.raises(InvalidInput, match="needs_review is True, False or None, not 'yes'"):
        client.pages(p, needs_review="yes")  # type: ignore[arg-type]


def test_results_have_a_column_per_step_output(any_client: Client) -> None:
    client = any_client
    p = marked_project(client)
    df = client.results(p)
    assert list(df.columns) == [*RESULT_COLUMNS, *STEP_COLUMNS]
    by = {int(r["page_number"]): r for r in df.to_dict("records")}
    # Pages 1-2 carry what the step computed on the workers; page 3 what the store holds.
    for n in (1, 2):
        assert by[n]["extra.shout.first_word"] == first_word(client, p["ids"][n]) == "DEAR"
        assert pd.isna(by[n]["extra.dates.count"])
    assert by[3]["extra.dates.years"] == "[1891, 1923]"
    assert by[3]["extra.dates.place.city"] == "Köln" and by[3]["extra.dates.count"] == 2
    assert pd.isna(by[4]["extra.shout.first_word"])  # pending: no step has run on it
    assert by[2]["needs_review"] and by[2]["review_reason"] == REASON
    assert not by[1]["needs_review"] and by[4]["needs_review"] is None


# -- exports ----------------------------------------------------------------------------------


def _read(path: Path) -> list[dict]:
    fmt = path.suffix.lstrip(".")
    if fmt == "csv":
        return pd.read_csv(path, keep_default_na=False, dtype=str).to_dict("records")
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    header, *values = list(load_workbook(path)["pages"].values)
    return [dict(zip(header, v, strict=True)) for v in values]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "xlsx"])
def test_exports_carry_step_columns_and_review_flags(
    any_client: Client, fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = any_client
    monkeypatch.setattr(reports, "CHUNK", 1)  # the step columns must not depend on a chunk
    p = marked_project(client)
    path = client.export(p, tmp_path / f"out.{fmt}")
    rows = _read(path)
    assert [list(r) for r in rows] == [[*RESULT_COLUMNS, *STEP_COLUMNS]] * 4
    by = {int(r["page_number"]): r for r in rows}
    cast = str if fmt == "csv" else (lambda v: v)  # CSV reads every cell back as text
    assert by[1]["extra.shout.first_word"] == by[2]["extra.shout.first_word"] == "DEAR"
    assert by[3]["extra.dates.years"] == "[1891, 1923]"
    assert by[3]["extra.dates.place.city"] == "Köln"
    assert by[3]["extra.dates.count"] == cast(2)
    assert by[4]["extra.shout.first_word"] in (None, "")
    assert by[2]["needs_review"] == cast(True) and by[2]["review_reason"] == REASON
    assert by[1]["needs_review"] == cast(False)
    if fmt == "parquet":
        schema = pq.read_schema(path)
        assert str(schema.field("needs_review").type) == "bool"
        assert str(schema.field("extra.dates.count").type) == "int64"
        assert str(schema.field("extra.dates.years").type) == "string"


def test_the_text_bundle_manifest_says_which_pages_need_review(
    client: Client, tmp_path: Path
) -> None:
    p = marked_project(client)
    with zipfile.ZipFile(client.export(p, tmp_path / "text.zip")) as zf:
        manifest = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8"))))
    assert [(m["page_number"], m["needs_review"], m["review_reason"]) for m in manifest] == [
        ("1", "False", ""), ("2", "True", REASON), ("3", "False", ""), ("4", "", "")
    ]  # fmt: skip


# -- the HTML report --------------------------------------------------------------------------


def test_the_report_lists_pages_to_review_and_shows_step_values(
    client: Client, tmp_path: Path
) -> None:
    p = marked_project(client)
    doc = write_report(client, p, tmp_path / "report.html").read_text("utf-8")
    assert re.search(r'data-key="review"><span class="pk-n">1</span>', doc)
    section = doc[doc.index('<section id="review">') :]
    section = section[: section.index("</section>")]
    assert re.findall(r'data-review="(\d+)"', section) == ["2"]
    assert "project&#39;s review threshold 60" in section  # the reason, escaped as text
    assert 'class="pk-thumb"' in section and 'src="data:image/jpeg;base64,' in section
    # The page table: one column per step output, and the flag on page 2.
    table = doc[doc.index('<section id="pages">') :]
    heads = re.findall(r'<th class="pk-step">([^<]*)</th>', table)
    assert heads == [c.removeprefix("extra.") for c in STEP_COLUMNS]
    rows = {n: row for n, row in re.findall(r'<tr data-page="(\d+)">(.*?)</tr>', table, re.S)}
    cells = {n: re.findall(r'<td class="pk-step">([^<]*)</td>', row) for n, row in rows.items()}
    assert cells["3"] == ["DEAR", "[1891, 1923]", "Köln", "2"]
    assert cells["1"] == ["DEAR", "", "", ""] and cells["4"] == ["", "", "", ""]
    assert [n for n, row in rows.items() if "pk-review" in row] == ["2"]


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_pages_needs_review(client: Client, runtime_home: Path, tmp_path: Path) -> None:
    p = marked_project(client)
    home = ["--home", str(runtime_home)]
    out = CliRunner().invoke(main, [*home, "pages", p["name"], "--needs-review"])
    assert out.exit_code == 0, out.output
    header, *lines = out.output.strip().splitlines()
    assert header.split()[:2] == ["page_id", "page_number"] and "review_reason" in header
    assert len(lines) == 1 and lines[0].split()[1] == "2" and REASON in lines[0]
    # Every page, with the flag as a column.
    out = CliRunner().invoke(main, [*home, "pages", p["name"]])
    assert out.exit_code == 0, out.output
    header, *lines = out.output.strip().splitlines()
    assert "needs_review" in header
    assert [line.split()[1] for line in lines if " yes " in f"{line} "] == ["2"]
    # An export says where the pages to review are.
    out = CliRunner().invoke(main, [*home, "export", p["name"], "-o", str(tmp_path / "o.csv")])
    assert out.exit_code == 0, out.output
    assert f"1 page(s) need review: pagekit pages {p['name']} --needs-review" in out.output
    # No flagged page: said so, and not an error.
    other = new_project(client)
    out = CliRunner().invoke(main, [*home, "pages", other["name"], "--needs-review"])
    assert out.exit_code == 0 and out.output.strip() == "no pages flagged for review"


# -- the HTTP API -----------------------------------------------------------------------------


def test_api_page_rows_are_the_page_columns() -> None:
    assert set(PageRow.model_fields) == set(PAGE_COLUMNS)


def test_api_lists_pages_by_review_flag(any_client: Client) -> None:
    client = any_client
    p = marked_project(client)
    token = tokens.create(client.store, f"test-{uuid.uuid4().hex[:8]}")
    with TestClient(create_app(client), headers={"Authorization": f"Bearer {token}"}) as api:
        url = f"/projects/{p['project_id']}/pages"
        body = api.get(url, params={"needs_review": "true"}).json()
        assert body["total"] == 1 and [r["page_number"] for r in body["pages"]] == [2]
        assert body["pages"][0]["needs_review"] is True
        assert body["pages"][0]["review_reason"] == REASON
        body = api.get(url, params={"needs_review": "false", "status": "completed"}).json()
        assert body["total"] == 2 and [r["page_number"] for r in body["pages"]] == [1, 3]
        assert api.get(url).json()["total"] == 4
        bad = api.get(url, params={"needs_review": "maybe"})
        assert bad.status_code == 422
        detail = api.get(f"{url}/{p['ids'][3]}").json()
        assert detail["extra"] == NESTED and detail["needs_review"] is False
        assert api.get(f"{url}/{p['ids'][2]}").json()["review_reason"] == REASON


# -- the dashboard ----------------------------------------------------------------------------


def test_dashboard_page_list_shows_and_filters_the_flag(client: Client) -> None:
    from pagekit.widgets import PagesPanel

    p = marked_project(client)
    panel = PagesPanel(client, p)
    flags = dict(zip(panel.page_ids, panel.shown["review"], strict=True))  # grid's column
    assert [pid for pid, flag in flags.items() if flag == "yes"] == [p["ids"][2]]
    panel.review_filter.value = True
    assert panel.position.value == "1-1 of 1 pages"
    assert panel.page_ids == [p["ids"][2]]
    panel.select([p["ids"][2]])
    assert "Needs review" in panel.details.value
    assert "review threshold 60" in panel.details.value
    assert "extra.shout.first_word" in panel.details.value
    panel.review_filter.value = False
    assert panel.position.value == "1-4 of 4 pages"


# -- the workers decide (needs the OCR pipeline's review check and per-project thresholds) --


def test_a_review_threshold_of_100_flags_every_ocr_page(
    client: Client, runtime_home: Path, tmp_path: Path
) -> None:
    p = client.create_project(f"test-{uuid.uuid4().hex[:10]}", review_threshold=100)
    client.add_pages(p, [("scan-a.png", _scan(4)), ("scan-b.png", _scan(5))])
    client.wait(client.process_pending(p)["task_id"], progress=False, timeout=120)
    flagged = client.pages(p, needs_review=True)
    assert numbers(flagged) == [1, 2]
    assert set(flagged["text_source"]) == {"ocr"}
    assert all(isinstance(r, str) and r for r in flagged["review_reason"])
    out = CliRunner().invoke(main, ["--home", str(runtime_home), "pages", p["name"],
                                    "--needs-review"])  # fmt: skip
    assert out.exit_code == 0 and len(out.output.strip().splitlines()) == 3, out.output
    doc = write_report(client, p, tmp_path / "r.html").read_text("utf-8")
    assert re.findall(r'data-review="(\d+)"', doc) == ["1", "2"]
