"""Files that repeat a page (blank versos, separator sheets, repeated TIFF frames).

Each page of a file is a page of its own; only a page already in the project from an
earlier add is reported as a duplicate, by page number. Adds to one project take turns, so
racing uploads neither add a file twice nor collide on page numbers; and databases made
by pagekit 0.1.0 (which refused repeated pages with a unique constraint) are upgraded
when a Store opens them.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import new_project
from PIL import Image
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Engine

from pagekit import _pagegen as gen
from pagekit import ingest, store
from pagekit.client import Client
from pagekit.store import Base, Page, Store, engine_for

# Adding pages never talks to the broker: clients on a database of their own need no runtime.
NO_BROKER = "redis://127.0.0.1:9/0"


def blank(shade: str = "white") -> Image.Image:
    return Image.new("RGB", (600, 800), shade)


def letter(n: int) -> Image.Image:
    """A small page of text, different for each ``n``."""
    body = f"Letter {n}. {gen.SAMPLE_TEXTS[n % len(gen.SAMPLE_TEXTS)]}"
    return gen.text_image(body, width=850, height=1100, font_size=24)


def blobs_of(client: Client, page_ids: list[int]) -> list[str]:
    return [client.store.page(i).blob for i in page_ids]


def split(data: bytes, name: str) -> list[ingest.IngestedPage]:
    return ingest.split(data, name, max_bytes=10**8, max_pixels=120_000_000)


# -- repeated pages inside one file -----------------------------------------------------------


def test_a_pdf_with_two_blank_pages_adds_and_processes_every_page(any_client: Client) -> None:
    project = new_project(any_client)
    pdf = gen.scanned_pdf([letter(1), blank(), letter(2), blank()])
    [out] = any_client.add_pages(project, [("scan.pdf", pdf)])
    assert out["status"] == "added" and out["error"] is None, out
    assert out["page_numbers"] == [1, 2, 3, 4] and len(set(out["page_ids"])) == 4
    assert out["duplicates"] == [] and out["duplicate_of_numbers"] == []
    blobs = blobs_of(any_client, out["page_ids"])
    assert blobs[1] == blobs[3] and len(set(blobs)) == 3  # same bytes, stored once
    assert any_client.page_bytes(out["page_ids"][1]) == any_client.page_bytes(out["page_ids"][3])

    final = any_client.wait(any_client.process_pending(project)["task_id"], progress=False)
    assert final["status"] == "completed" and final["result"]["completed"] == 4, final
    df = any_client.pages(project)
    assert list(df["page_number"]) == [1, 2, 3, 4]
    assert list(df["source_index"]) == [0, 1, 2, 3]
    assert set(df["status"]) == {"completed"}


def test_a_tiff_with_repeated_frames_adds_every_frame(client: Client) -> None:
    project = new_project(client)
    tiff = gen.multipage_tiff([blank(), blank(), letter(3), blank()])
    [out] = client.add_pages(project, [("frames.tif", tiff)])
    assert out["status"] == "added", out
    assert out["page_numbers"] == [1, 2, 3, 4]
    blobs = blobs_of(client, out["page_ids"])
    assert blobs[0] == blobs[1] == blobs[3] != blobs[2]
    assert client.count_pages(project) == 4


# -- duplicates: only pages already in the project ---------------------------------------------


def test_only_pages_already_in_the_project_are_duplicates_named_by_number(
    any_client: Client,
) -> None:
    project = new_project(any_client)
    any_client.add_pages(project, [("cover.png", gen.image_bytes(letter(4)))])  # page 1
    first_pdf = gen.scanned_pdf([letter(5), blank(), letter(6), blank()])
    [first] = any_client.add_pages(project, [("box1.pdf", first_pdf)])
    assert first["page_numbers"] == [2, 3, 4, 5]
    ids = dict(zip(first["page_numbers"], first["page_ids"], strict=True))

    # Page 2 of this file is box1's page 3 (number 4); pages 1 and 3 are new; page 4 is a
    # blank, like numbers 3 and 5.
    mixed = gen.scanned_pdf([letter(7), letter(6), letter(8), blank()])
    [out] = any_client.add_pages(project, [("box2.pdf", mixed)])
    assert out["status"] == "added", out
    assert out["page_numbers"] == [6, 7]
    assert out["duplicate_file_pages"] == [2, 4]
    assert out["duplicate_of_numbers"] == [4, 3]
    assert out["duplicates"] == [ids[4], ids[3]]
    assert "its page 2 is page 4" in out["error"] and "its page 4 is page 3" in out["error"]
    assert "page id" not in out["error"]  # numbers a person can find, not internal ids
    assert any_client.count_pages(project) == 7

    # The same file again adds nothing and maps its pages one to one onto the first upload.
    [again] = any_client.add_pages(project, [("box1-copy.pdf", first_pdf)])
    assert again["status"] == "duplicate" and again["page_ids"] == [], again
    assert again["duplicate_of_numbers"] == [2, 3, 4, 5]
    assert again["duplicates"] == first["page_ids"]
    assert "already in this project" in again["error"] and "its page 4 is page 5" in again["error"]
    assert any_client.count_pages(project) == 7


def test_a_rejected_file_lists_no_pages(tmp_path: Path) -> None:
    # A database trigger refuses the third page of one file: the rows of its first two
    # pages were inserted, then rolled back; the outcome must not name them.
    client = Client(home=tmp_path, broker_url=NO_BROKER)
    project = client.create_project("refusals")
    with client.store.write() as s:
        s.execute(
            text(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON pages "
                "WHEN NEW.source = 'poison.pdf' AND NEW.source_index = 2 "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
            )
        )
    pdf = gen.scanned_pdf([blank(), letter(9), blank()])
    [out] = client.add_pages(project, [("poison.pdf", pdf)])
    assert out["status"] == "rejected" and "refused by the test trigger" in out["error"], out
    assert "try again" not in out["error"]
    assert out["page_ids"] == [] and out["page_numbers"] == []
    assert out["duplicates"] == [] and out["duplicate_of_numbers"] == []
    assert client.count_pages(project) == 0

    # The same file under another name goes in; a clash with its page numbers lists nothing.
    [ok] = client.add_pages(project, [("scan.pdf", pdf)], page_number=3)
    other = gen.scanned_pdf([letter(10), letter(11)])
    [clash] = client.add_pages(project, [("other.pdf", other)], page_number=2)
    assert clash["status"] == "rejected" and "page number 3 is already used" in clash["error"]
    assert clash["page_ids"] == [] and clash["page_numbers"] == []
    assert ok["page_numbers"] == [3, 4, 5] and client.count_pages(project) == 3


# -- a file inserted a chunk at a time --------------------------------------------------------


def test_a_file_goes_in_a_chunk_at_a_time_and_only_earlier_pages_are_duplicates(
    any_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file's pages are looked up, numbered and inserted a few at a time: a page repeated
    across chunks is still a page of its own, the n-th copy of a page already in the
    project is still its n-th copy there, and a page number taken in a later chunk still
    refuses the whole file, leaving nothing."""
    monkeypatch.setattr(store, "INSERT_CHUNK", 2)
    client = any_client
    project = new_project(client)
    [first] = client.add_pages(project, [("first.pdf", gen.scanned_pdf([blank()] * 12))])
    assert first["page_numbers"] == list(range(1, 13)) and first["error"] is None, first
    assert len(set(blobs_of(client, first["page_ids"]))) == 1

    pages = [letter(40), blank(), letter(41), blank(), blank(), letter(40), blank()]
    [out] = client.add_pages(project, [("second.pdf", gen.scanned_pdf(pages))])
    assert out["status"] == "added", out
    assert out["page_numbers"] == [13, 14, 15]
    assert blobs_of(client, out["page_ids"])[0] == blobs_of(client, out["page_ids"])[2]
    assert out["duplicate_file_pages"] == [2, 4, 5, 7]
    assert out["duplicate_of_numbers"] == [1, 2, 3, 4]
    assert out["duplicates"] == first["page_ids"][:4]

    # Added again, twelve copies of one page map onto the twelve already there.
    [again] = client.add_pages(project, [("first-again.pdf", gen.scanned_pdf([blank()] * 12))])
    assert again["status"] == "duplicate" and again["page_ids"] == [], again
    assert again["duplicate_of_numbers"] == first["page_numbers"]
    assert again["duplicates"] == first["page_ids"]
    assert again["error"].endswith("its page 10 is page 10 and 2 more; not stored twice")

    client.add_pages(project, [("taken.png", gen.image_bytes(letter(42)))], page_number=30)
    later = gen.scanned_pdf([letter(n) for n in range(43, 49)])
    keys = [hashlib.sha256(p.data).hexdigest() for p in split(later, "later.pdf")]
    [clash] = client.add_pages(project, [("later.pdf", later)], page_number=27)
    assert clash["status"] == "rejected" and "page number 30 is already used" in clash["error"]
    assert clash["page_ids"] == [] and clash["page_numbers"] == [], clash
    assert client.count_pages(project) == 16
    # Its first chunk (pages 27 and 28) was inserted, then rolled back: no bytes are left.
    assert not any(client.blobs.exists(key) for key in keys)


# -- concurrent uploads ------------------------------------------------------------------------


def _race(
    me: int,
    conf: dict[str, Any],
    projects: list[int],
    shared: bytes,
    barrier: Any,
    results: Any,
) -> None:
    """One uploader: per round, add the shared file and a file of its own, at the same time."""
    client = Client(**conf)
    try:
        for rnd, project in enumerate(projects):
            own = gen.scanned_pdf([letter(20 + 10 * me + rnd)] * 2)  # a repeated page
            barrier.wait(timeout=60)
            outcomes = client.add_pages(project, [("shared.pdf", shared), (f"own-{me}.pdf", own)])
            results.put((me, rnd, outcomes))
    except BaseException as exc:  # report it, or the parent waits for nothing
        results.put((me, -1, repr(exc)))
        raise


def test_racing_uploads_add_a_file_once_with_consecutive_numbers(any_client: Client) -> None:
    s = any_client.settings
    conf = {
        "home": str(s.home_abs),
        "database_url": s.db_url,
        "blob_dir": str(s.blob_path),
        "broker_url": any_client.broker_url,
    }
    rounds = 4
    projects = [new_project(any_client)["project_id"] for _ in range(rounds)]
    shared = gen.scanned_pdf([letter(12), blank(), letter(13), blank()])
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_race, args=(me, conf, projects, shared, barrier, results))
        for me in (0, 1)
    ]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=180) for _ in range(2 * rounds)]
    finally:
        for p in procs:
            p.join(timeout=60)
    assert all(rnd >= 0 for _, rnd, _ in got), got
    for rnd, project in enumerate(projects):
        outs = [o for _, r, o in got if r == rnd]
        shared_outs = sorted((o[0] for o in outs), key=lambda o: o["status"])
        assert [o["status"] for o in shared_outs] == ["added", "duplicate"], shared_outs
        added, dup = shared_outs
        assert len(added["page_ids"]) == 4 and dup["duplicates"] == added["page_ids"]
        assert [o[1]["status"] for o in outs] == ["added", "added"], outs
        df = any_client.pages(project)
        assert list(df["page_number"]) == list(range(1, 9)), df  # 4 shared + 2 + 2 own
        assert (df["source"] == "shared.pdf").sum() == 4


# -- upgrading a 0.1.0 database -----------------------------------------------------------------


def schema_010() -> MetaData:
    """The tables as pagekit 0.1.0 created them (note ``uq_page_blob``)."""
    md = MetaData()
    Table(
        "projects",
        md,
        Column("id", Integer, primary_key=True),
        Column("name", String(200), unique=True, nullable=False),
        Column("steps", JSON, nullable=False),
        Column("created_at", DateTime, nullable=False),
    )
    Table(
        "pages",
        md,
        Column("id", Integer, primary_key=True),
        Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        Column("page_number", Integer, nullable=False),
        Column("source", String(300), nullable=False),
        Column("source_index", Integer, nullable=False),
        Column("kind", String(10), nullable=False),
        Column("mime", String(50), nullable=False),
        Column("blob", String(64), nullable=False),
        Column("size", Integer, nullable=False),
        Column("status", String(12), nullable=False),
        Column("job_id", String(36)),
        Column("error", Text),
        Column("text", Text),
        Column("confidence", Float),
        Column("words", Integer),
        Column("chars", Integer),
        Column("engine", String(60)),
        Column("language", String(60)),
        Column("width", Integer),
        Column("height", Integer),
        Column("timings", JSON),
        Column("extra", JSON),
        Column("thumbnail", String(64)),
        Column("worker", String(200)),
        Column("created_at", DateTime, nullable=False),
        Column("started_at", DateTime),
        Column("finished_at", DateTime),
        UniqueConstraint("project_id", "page_number", name="uq_page_number"),
        UniqueConstraint("project_id", "blob", name="uq_page_blob"),
        Index("ix_pages_project_status", "project_id", "status"),
    )
    Table(
        "jobs",
        md,
        Column("id", String(36), primary_key=True),
        Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        Column("kind", String(10), nullable=False),
        Column("total", Integer, nullable=False),
        Column("cancel_requested", Boolean, nullable=False),
        Column("created_at", DateTime, nullable=False),
    )
    Table(
        "job_pages",
        md,
        Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        Column("page_id", ForeignKey("pages.id", ondelete="CASCADE"), primary_key=True),
        Column("position", Integer, nullable=False),
        Column("state", String(12), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("worker", String(200)),
        Column("queued_at", DateTime, nullable=False),
        Column("started_at", DateTime),
        Column("finished_at", DateTime),
        Index("ix_job_pages_state", "job_id", "state"),
    )
    Table(
        "api_tokens",
        md,
        Column("id", Integer, primary_key=True),
        Column("name", String(100), unique=True, nullable=False),
        Column("token_hash", String(64), unique=True, nullable=False),
        Column("created_at", DateTime, nullable=False),
        Column("revoked_at", DateTime),
    )
    return md


def test_a_010_database_is_upgraded_and_takes_repeated_pages(empty_db: str, tmp_path: Path) -> None:
    old = create_engine(empty_db)
    schema_010().create_all(old)
    seen = gen.image_bytes(letter(14))
    sha = hashlib.sha256(seen).hexdigest()
    with old.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO projects (id, name, steps, created_at) "
                "VALUES (1, 'letters', '[]', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO pages (id, project_id, page_number, source, source_index, kind, "
                "mime, blob, size, status, text, created_at) VALUES (7, 1, 1, 'old.png', 0, "
                "'image', 'image/png', :sha, :size, 'completed', 'kept', CURRENT_TIMESTAMP)"
            ),
            {"sha": sha, "size": len(seen)},
        )
        conn.execute(
            text(
                "INSERT INTO jobs (id, project_id, kind, total, cancel_requested, created_at) "
                "VALUES ('j1', 1, 'page', 1, false, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO job_pages (job_id, page_id, position, state, attempts, queued_at) "
                "VALUES ('j1', 7, 0, 'completed', 1, CURRENT_TIMESTAMP)"
            )
        )
        # A page a 0.1.0 worker was running (0.1.0 wrote no heartbeats).
        conn.execute(
            text(
                "INSERT INTO jobs (id, project_id, kind, total, cancel_requested, created_at) "
                "VALUES ('j2', 1, 'page', 1, false, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO job_pages (job_id, page_id, position, state, attempts, queued_at, "
                "started_at) VALUES ('j2', 7, 0, 'processing', 1, :at, :at)"
            ),
            {"at": datetime(2025, 1, 2, 3, 4, 5)},
        )
        if empty_db.startswith("postgresql"):  # the search index as 0.1.0 made it: whole
            conn.execute(
                text(
                    "ALTER TABLE pages ADD COLUMN text_search tsvector GENERATED ALWAYS "
                    "AS (to_tsvector('simple', coalesce(text, ''))) STORED"
                )
            )
            conn.execute(text("CREATE INDEX ix_pages_text_search ON pages USING gin (text_search)"))
    old.dispose()

    client = Client(home=tmp_path / "home", database_url=empty_db, broker_url=NO_BROKER)
    client.blobs.put(seen)
    insp = inspect(engine_for(empty_db))
    assert "uq_page_blob" not in {u["name"] for u in insp.get_unique_constraints("pages")}
    assert "uq_page_number" in {u["name"] for u in insp.get_unique_constraints("pages")}
    assert "ix_pages_blob" in {i["name"] for i in insp.get_indexes("pages")}
    # The index naming a job page's state is gone (a cancel rewrites rows in place).
    held = {i["name"] for i in insp.get_indexes("job_pages")}
    assert "ix_job_pages_state" not in held and "ix_job_pages_held" in held, held
    by_status = "ix_pages_project_status" in {i["name"] for i in insp.get_indexes("pages")}
    if empty_db.startswith("postgresql"):  # with room to rewrite them there
        with engine_for(empty_db).connect() as conn:
            options = {
                table: conn.scalar(
                    text("SELECT reloptions FROM pg_class WHERE relname = :t"), {"t": table}
                )
                for table in ("job_pages", "pages")
            }
            search = conn.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_pages_text_search'")
            )
        assert all("fillfactor=40" in (o or []) for o in options.values()), options
        assert search.endswith("WHERE (text IS NOT NULL)"), search  # pages with text only
        assert not by_status  # a page's state changes in place there
    else:
        assert by_status  # SQLite reads a project's pages by state through it
    assert {fk["referred_table"] for fk in insp.get_foreign_keys("job_pages")} == {"jobs", "pages"}
    for table in Base.metadata.sorted_tables:  # columns added since 0.1.0 were added
        have = {c["name"] for c in insp.get_columns(table.name)}
        assert set(table.columns.keys()) <= have, table.name
    kept = client.page(7)
    assert kept["text"] == "kept" and kept["page_number"] == 1 and kept["source"] == "old.png"
    assert list(client.search("kept").page_id) == [7]  # the rebuilt search index has it

    pdf = gen.scanned_pdf([blank(), letter(15), blank()])
    [out] = client.add_pages("letters", [("scan.pdf", pdf)])
    assert out["status"] == "added" and out["page_numbers"] == [2, 3, 4], out
    [again] = client.add_pages("letters", [("old-again.png", seen)])
    assert again["status"] == "duplicate" and again["duplicate_of_numbers"] == [1], again
    with client.store.read() as s:  # the page keeps its job row (foreign keys survived)
        assert s.execute(text("SELECT page_id FROM job_pages")).scalars().all() == [7, 7]
    # The page that was running is held since its start: the watchdog finds its holder gone.
    assert [(r["job_id"], r["page_id"]) for r in client.orphans()] == [("j2", 7)]

    # Opened again, an upgraded database is left alone: no DDL, no rebuild.
    statements: list[str] = []
    listener = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(Engine, "before_cursor_execute", listener)  # every engine, whatever its key
    try:
        Store(empty_db)
    finally:
        event.remove(Engine, "before_cursor_execute", listener)
    ddl = [q for q in statements if q.lstrip().upper().startswith(("ALTER", "CREATE", "DROP"))]
    assert statements and ddl == [], ddl


def test_a_nullable_column_missing_from_a_table_is_added(empty_db: str, tmp_path: Path) -> None:
    Store(empty_db)  # the current schema
    with engine_for(empty_db, write=True).begin() as conn:
        conn.exec_driver_sql("ALTER TABLE job_pages DROP COLUMN finished_at")
        conn.exec_driver_sql("DROP INDEX ix_pages_thumbnail")  # newer than the column
        conn.exec_driver_sql("ALTER TABLE pages DROP COLUMN thumbnail")
    engine = engine_for(empty_db)
    assert "thumbnail" not in {c["name"] for c in inspect(engine).get_columns("pages")}

    Store(empty_db)
    insp = inspect(engine)
    assert "finished_at" in {c["name"] for c in insp.get_columns("job_pages")}
    thumbnail = next(c for c in insp.get_columns("pages") if c["name"] == "thumbnail")
    assert thumbnail["nullable"] and "CHAR" in str(thumbnail["type"]).upper()
    store = Store(empty_db)
    project = store.create_project("p")
    with store.write() as s:  # and the models can use it
        s.add(
            Page(
                project_id=project.id,
                page_number=1,
                source="a.png",
                kind="image",
                mime="image/png",
                blob="0" * 64,
                thumbnail="1" * 64,
            )
        )
