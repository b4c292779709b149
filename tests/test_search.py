"""Full-text search on SQLite (FTS5) and PostgreSQL (tsvector + GIN), on the real runtime:
pages processed by real workers are found, ranked, snippeted; the index follows
reprocessing, deletion and an upgrade; the CLI and the HTTP API answer the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import new_project
from fastapi.testclient import TestClient
from sqlalchemy import delete, text
from test_repeated_pages import NO_BROKER

from pagekit import _pagegen as gen
from pagekit import tokens
from pagekit.api import SearchHit, create_app
from pagekit.client import Client
from pagekit.contract import SEARCH_ALL_COLUMNS, SEARCH_COLUMNS
from pagekit.errors import InvalidSearchQuery
from pagekit.search import QUERY_MAX, Term, marked_parts, parse, snippet_forms
from pagekit.store import Page, Store

BIN = Path(sys.executable).parent

# Page texts, by page number: 3 says "harbour" three times in a short page, 2 once in a
# long one, so 3 ranks first; 5 is user content with markup in it.
TEXTS = {
    1: gen.SAMPLE_TEXTS[0],
    2: gen.SAMPLE_TEXTS[1],  # "... has reached the harbour in good order ..." and wheat
    3: "The harbour master counted the boats in the harbour before the harbour gates closed.",
    4: gen.SAMPLE_TEXTS[2],  # "... The apple trees are full ..."
    5: "Invoice <b>Zanzibar</b> & Sons, paid in full.",
}


def finish(client: Client, job: dict[str, Any]) -> None:
    done = client.wait(job["task_id"], timeout=180, progress=False)
    assert done["status"] == "completed", done


_corpora: dict[int, dict[str, Any]] = {}


def corpus(client: Client) -> dict[str, Any]:
    """A project of text-layer PDF pages with known texts, processed by the workers
    (once per database)."""
    if id(client) not in _corpora:
        project = new_project(client)
        pdf = gen.text_pdf([TEXTS[n] for n in sorted(TEXTS)])
        client.add_pages(project, [("letters.pdf", pdf)])
        finish(client, client.process_pending(project))
        _corpora[id(client)] = project
    return _corpora[id(client)]


def numbers(found: Any) -> list[int]:
    return [int(n) for n in found["page_number"]]


# -- the query language -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "groups", "excluded"),
    [
        ("harbour", [["harbour"]], []),
        ("harbour  ship", [["harbour"], ["ship"]], []),
        ('"the harbour" ship', [["the harbour"], ["ship"]], []),
        ("harbour ship OR boat", [["harbour"], ["ship", "boat"]], []),
        ("ship or boat", [["ship"], ["or"], ["boat"]], []),  # lower-case "or" is a word
        ("harbour AND ship", [["harbour"], ["ship"]], []),
        ('harbour -storm -"heavy rain"', [["harbour"]], ["storm", "heavy rain"]),
        ("ship OR -boat", [["ship", "boat"]], []),  # a minus after OR is a hyphen
        ('"unclosed harbour', [["unclosed harbour"]], []),
        ("OR harbour OR", [["harbour"]], []),
        ("harbour \" * : - ' NEAR(", [["harbour"], ["* : - ' NEAR("]], []),  # to the end
        ("e-mail", [["e-mail"]], []),
    ],
)
def test_queries_are_read_as_words_phrases_or_and_exclusions(
    typed: str, groups: list[list[str]], excluded: list[str]
) -> None:
    query = parse(typed)
    assert [[t.text for t in group] for group in query.groups] == groups
    assert [t.text for t in query.excluded] == excluded


def test_a_prefix_is_one_word_then_a_star() -> None:
    assert parse("harb*").groups == ((Term("harb", prefix=True),),)
    assert parse("e-ma*").groups == ((Term("e-ma*"),),)  # not one word: the star is dropped


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "empty"),
        ("   \n\t", "empty"),
        ("\" * : - ' ( )", "no word to search for"),
        ("-storm", "add a word to find"),
        ("x" * (QUERY_MAX + 1), f"at most {QUERY_MAX}"),
        (" ".join(f"w{i}" for i in range(40)), "too many"),
        (None, "is text"),
    ],
)
def test_a_query_with_nothing_to_find_is_refused_in_one_line(typed: Any, says: str) -> None:
    with pytest.raises(InvalidSearchQuery, match=says) as info:
        parse(typed)
    assert "\n" not in str(info.value) and info.value.exit_code == 2
    assert info.value.http_status == 422


def test_snippets_escape_page_text_and_mark_only_the_matches() -> None:
    # Two marked words in a row are one mark; a stray end is dropped, an open one closed.
    raw = "a <script>alert(1)</script> \x02harbour\x03\n\x02gates\x03 & more\x03 \x02x"
    plain, html = snippet_forms(raw)
    assert plain == "a <script>alert(1)</script> [harbour gates] & more [x]"
    assert html == (
        "a &lt;script&gt;alert(1)&lt;/script&gt; <mark>harbour gates</mark> &amp; more "
        "<mark>x</mark>"
    )
    assert marked_parts(html) == [
        ("a <script>alert(1)</script> ", False),
        ("harbour gates", True),
        (" & more ", False),
        ("x", True),
    ]
    assert snippet_forms(None) == ("", "")


# -- on both databases, with pages processed by real workers ------------------------------


@pytest.mark.postgres
def test_search_finds_the_page_ranks_it_first_and_marks_the_word(any_client: Client) -> None:
    client = any_client
    project = corpus(client)
    found = client.search("harbour", project=project["name"])
    assert list(found.columns) == list(SEARCH_COLUMNS)
    assert numbers(found) == [3, 2]  # three mentions in a short page beat one in a long one
    assert client.count_matches("harbour", project["project_id"]) == 2
    best = found.iloc[0]
    assert "[harbour]" in best["snippet"] and "<mark>harbour</mark>" in best["snippet_html"]
    assert best["score"] > found.iloc[1]["score"] and best["status"] == "completed"
    assert numbers(client.search("HARBOUR", project["name"])) == [3, 2]  # case does not count

    # Paging: one at a time, in the same order.
    assert numbers(client.search("harbour", project["name"], limit=1)) == [3]
    assert numbers(client.search("harbour", project["name"], limit=1, offset=1)) == [2]
    assert client.search("harbour", project["name"], offset=2).empty


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("typed", "pages"),
    [
        ('"reached the harbour"', [2]),  # a phrase, across a line break of the PDF
        ('"harbour reached"', []),  # the words, in the wrong order
        ("harbour wheat", [2]),  # every word
        ("wheat OR apple", [2, 4]),
        ("harb*", [3, 2]),
        ("harbour -wheat", [3]),
        ('harbour -"in good order"', [3]),
        ("zanzibar sons", [5]),
        ("lighthouse", []),
    ],
)
def test_phrases_or_prefix_and_exclusion(any_client: Client, typed: str, pages: list[int]) -> None:
    client = any_client
    project = corpus(client)
    assert sorted(numbers(client.search(typed, project["name"]))) == sorted(pages), typed
    assert client.count_matches(typed, project["name"]) == len(pages)


NO_WORD = "no word to search for"


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ('"', NO_WORD),
        ("harbour\"'", [2, 3]),
        ("*", NO_WORD),
        ("harb*our", []),
        (":", NO_WORD),
        ("text:harbour", []),
        ("-", NO_WORD),
        ("--harbour", "add a word to find"),
        ("NEAR(", [1]),  # page 1 has "near the river"
        ("NEAR(harbour gates, 2)", []),
        ("'", NO_WORD),
        ("harbour's", []),
        ("^harbour", [2, 3]),
        ("{harbour gates}", [3]),
        ("(harbour OR boats) AND", [2, 3]),
        ("harbour & | ! <-> :* \\ % _", [2, 3]),
        ("harbour\x00\x1b[31m", []),
        ("\u6e2f harbour", []),
    ],
)
def test_fts_syntax_typed_by_a_user_is_never_a_database_error(
    any_client: Client, typed: str, expected: list[int] | str
) -> None:
    client = any_client
    project = corpus(client)
    if isinstance(expected, str):  # nothing to look up: refused, as bad input
        with pytest.raises(InvalidSearchQuery, match=expected):
            client.search(typed, project["name"])
        return
    assert sorted(numbers(client.search(typed, project["name"]))) == expected
    assert client.count_matches(typed, project["name"]) == len(expected)


@pytest.mark.postgres
def test_markup_in_page_text_is_escaped_in_the_html_snippet(any_client: Client) -> None:
    client = any_client
    project = corpus(client)
    (hit,) = client.search("zanzibar", project["name"]).to_dict("records")
    assert "<b>" not in hit["snippet_html"] and "&amp;" in hit["snippet_html"]
    assert "<mark>Zanzibar</mark>" in hit["snippet_html"] and "[Zanzibar]" in hit["snippet"]


@pytest.mark.postgres
def test_search_over_every_project_names_the_project(any_client: Client) -> None:
    client = any_client
    project = corpus(client)
    found = client.search('"harbour master counted"')
    assert list(found.columns) == list(SEARCH_ALL_COLUMNS)
    mine = found[found["project_id"] == project["project_id"]]
    assert list(mine["project"]) == [project["name"]] and numbers(mine) == [3]


@pytest.mark.postgres
def test_the_index_follows_reprocessing_with_other_text(any_client: Client) -> None:
    """A PDF whose text layer is garbage ("Dear" reads "䐀攀愀爀") kept as it is, then read
    again by OCR: the garbage is no longer found, the real words are."""
    client = any_client
    project = client.create_project(f"search-{uuid.uuid4().hex[:8]}", ocr_mode="text-only")
    letter = "Dear keeper, the lighthouse lamp burned all night and the fog horn sounded."
    (added,) = client.add_pages(project, [("broken.pdf", gen.wrong_layer_pdf(letter))])
    finish(client, client.process_pending(project))
    assert numbers(client.search("\u4400\u6500\u6100\u7200", project["name"])) == [1]
    assert client.search("lighthouse", project["name"]).empty

    finish(client, client.process_batch(project, added["page_ids"], ocr_mode="force"))
    assert client.search("\u4400\u6500\u6100\u7200", project["name"]).empty
    (hit,) = client.search("lighthouse lamp", project["name"]).to_dict("records")
    assert "<mark>lighthouse lamp</mark>" in hit["snippet_html"] and hit["status"] == "completed"


@pytest.mark.postgres
def test_deleted_pages_are_no_longer_found(any_client: Client) -> None:
    """Deleted by the Client, by a plain SQL DELETE, with their project: the index follows
    whatever code path writes the pages table."""
    client = any_client
    project = new_project(client)
    texts = ["the quay was empty", "the quay was full", "the quay was wet"]
    (added,) = client.add_pages(project, [("three.pdf", gen.text_pdf(texts))])
    first, second, _ = added["page_ids"]
    finish(client, client.process_pending(project))
    assert sorted(numbers(client.search("quay", project["name"]))) == [1, 2, 3]

    client.delete_pages(project, [first])
    assert sorted(numbers(client.search("quay", project["name"]))) == [2, 3]
    assert client.count_matches("quay empty", project["name"]) == 0
    with client.store.write() as s:
        s.execute(delete(Page).where(Page.id == second))
    assert numbers(client.search("quay", project["name"])) == [3]

    client.delete_project(project)
    everywhere = client.search('"the quay was wet"', limit=None)
    assert project["project_id"] not in set(everywhere["project_id"])


@pytest.mark.postgres
def test_an_existing_database_is_indexed_when_it_is_first_opened(
    empty_db: str,
    tmp_path: Path,
) -> None:
    """A database from before search: its pages are found once pagekit opens it."""
    store = Store(empty_db)
    with store.write() as s:  # take the index away, as a database made by 0.2 lacks it
        if s.get_bind().dialect.name == "sqlite":
            s.execute(text("DROP TABLE pages_fts"))
            for trigger in ("insert", "delete", "update"):
                s.execute(text(f"DROP TRIGGER pages_fts_{trigger}"))
        else:
            s.execute(text("ALTER TABLE pages DROP COLUMN text_search"))  # and its index
    project = store.create_project("old")
    with store.write() as s:
        s.add(
            Page(
                project_id=project.id,
                page_number=1,
                source="old.png",
                kind="image",
                mime="image/png",
                blob="0" * 64,
                status="completed",
                text="minutes of the harbour board",
            )
        )

    client = Client(home=tmp_path / "home", database_url=empty_db, broker_url=NO_BROKER)
    (hit,) = client.search("harbour board", "old").to_dict("records")
    assert hit["page_number"] == 1 and "<mark>harbour board</mark>" in hit["snippet_html"]


# -- the CLI and the HTTP API ---------------------------------------------------------------


def test_cli_prints_the_matches_marked_best_first(client: Client, runtime_home: Path) -> None:
    project = corpus(client)
    env = dict(os.environ, PAGEKIT_HOME=str(runtime_home))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "pagekit"), "search", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    out = run(project["name"], "harbour", "-wheat")  # a -word needs no "--"
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "1 page(s) match 'harbour -wheat', best first:"
    assert lines[2].split()[:3] == ["3", "letters.pdf", "completed"]
    assert "[harbour]" in lines[2] and "\x1b[" not in out.stdout  # not a terminal: [ ]

    out = run(project["name"], "harbour", "--limit", "1", "--json")
    body = json.loads(out.stdout)
    assert (body["project_id"], body["total"], body["limit"]) == (project["project_id"], 2, 1)
    assert [r["page_number"] for r in body["results"]] == [3]

    out = run(project["name"], "lighthouse")
    assert (out.returncode, out.stdout.strip()) == (0, "no pages match 'lighthouse'")

    out = run(project["name"], '" *')
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("error: ") and "no word to search for" in out.stderr


def test_api_search_round_trip(client: Client) -> None:
    project = corpus(client)
    pid = project["project_id"]
    token = tokens.create(client.store, f"test-{uuid.uuid4().hex[:8]}")
    with TestClient(create_app(client), headers={"Authorization": f"Bearer {token}"}) as api:
        r = api.get(f"/projects/{pid}/search", params={"q": "harbour", "limit": 1})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["project_id"], body["query"], body["total"]) == (pid, "harbour", 2)
        assert (body["limit"], body["offset"]) == (1, 0)
        (hit,) = body["results"]
        assert set(hit) == set(SEARCH_COLUMNS) and hit["page_number"] == 3
        assert "<mark>harbour</mark>" in hit["snippet_html"]
        r = api.get(f"/projects/{pid}/search", params={"q": "harbour", "offset": 1})
        assert [h["page_number"] for h in r.json()["results"]] == [2]

        r = api.get(f"/projects/{pid}/search", params={"q": '(harbour) "harbour'})
        assert r.status_code == 200 and r.json()["total"] == 2

        for bad in ("", '"*:'):
            r = api.get(f"/projects/{pid}/search", params={"q": bad})
            assert r.status_code == 422 and "search" in r.json()["detail"], r.text
        assert api.get(f"/projects/{pid}/search").status_code == 422  # no q
        r = api.get(f"/projects/{pid}/search", params={"q": "a", "sort": "x"})
        assert r.status_code == 422  # unknown parameters are refused
        assert api.get("/projects/999999/search", params={"q": "harbour"}).status_code == 404
        assert TestClient(create_app(client)).get(f"/projects/{pid}/search?q=a").status_code == 401


def test_the_api_schema_is_the_search_columns() -> None:
    assert list(SearchHit.model_fields) == list(SEARCH_COLUMNS)
