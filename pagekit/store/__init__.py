"""The database, source of truth for projects, pages, jobs and results (SQLAlchemy 2).

SQLite (WAL) in the data dir by default; PostgreSQL (or any SQLAlchemy URL) through
``PAGEKIT_DATABASE_URL`` when workers run on several hosts.
"""

from __future__ import annotations

import logging
import os
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
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
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
)
from sqlalchemy import text as sql_text  # `text` is also a column of pages
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateIndex, CreateTable

from ..config import Settings
from ..contract import ACTIVE, FINISHED, PAGE_COLUMNS, PAGE_STATES, PROJECT_OPTIONS, PageState
from ..errors import (
    DatabaseUnavailable,
    InvalidPageSelection,
    NoSuchPage,
    NoSuchProject,
    PageNumberTaken,
    ProjectExists,
)

if TYPE_CHECKING:
    from ..ingest import PageKeys

log = logging.getLogger(__name__)

__all__ = ["ACTIVE", "FINISHED", "PAGE_STATES", "Store", "migrate", "utcnow"]


def utcnow() -> datetime:
    """Naive UTC now (stored the same way in SQLite and PostgreSQL)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


# Names of the indexes made on SQLite only (:func:`sqlite_only`); ``migrate`` drops them
# from a PostgreSQL database.
SQLITE_ONLY: set[str] = set()


def sqlite_only(index: Index) -> Index:
    """``index``, made by ``create_all`` and ``migrate`` on SQLite only."""
    SQLITE_ONLY.add(str(index.name))
    return index.ddl_if(dialect="sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    steps: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # OCR options (None: the installation's default, PAGEKIT_OCR_LANG / _OCR_MODE /
    # _REVIEW_THRESHOLD). ``languages`` is a list of Tesseract codes, e.g. ["eng", "deu"].
    languages: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    ocr_mode: Mapped[str | None] = mapped_column(String(12), nullable=True)
    review_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)


def project_options(project: Project) -> dict[str, Any]:
    """``{"languages", "ocr_mode", "review_threshold"}`` of a project, as stored."""
    return {
        "languages": list(project.languages) if project.languages else None,
        "ocr_mode": project.ocr_mode,
        "review_threshold": project.review_threshold,
    }


class Page(Base):
    __tablename__ = "pages"
    __table_args__ = (
        UniqueConstraint("project_id", "page_number", name="uq_page_number"),
        # SQLite only. On PostgreSQL no index names ``status``,
        # ``job_id``, ``error`` or ``finished_at``: queueing, starting and cancelling a page
        # then rewrite its row in place (a HOT update, in the room :data:`FILLFACTOR`
        # leaves), with no new entry in any index; cancelling 100,000 queued pages takes
        # 0.4 s instead of 1.4 s. A project's pages in some states are read through
        # ``uq_page_number`` there (100,000 pages: tens of milliseconds). SQLite rewrites
        # only the indexes naming a changed column, and keeps this one.
        sqlite_only(Index("ix_pages_project_status", "project_id", "status")),
        # Whether any page, in any project, still names some bytes (deleting pages), and
        # the duplicate lookup when adding files. Not unique: a scan repeats pages (blank
        # versos, separator sheets) and each is a page of its own.
        Index("ix_pages_blob", "blob"),
        # Whether any page still names a thumbnail: only pages that have one, so a page
        # never processed has no entry, and queueing or cancelling 100,000 of them (each
        # row rewritten: on PostgreSQL an entry in every index of the table) skips it.
        Index(
            "ix_pages_thumbnail",
            "thumbnail",
            sqlite_where=sql_text("thumbnail IS NOT NULL"),
            postgresql_where=sql_text("thumbnail IS NOT NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    page_number: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(300))
    source_index: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(10))
    mime: Mapped[str] = mapped_column(String(50))
    blob: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default=PageState.PENDING.value)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    words: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chars: Mapped[int | None] = mapped_column(Integer, nullable=True)
    engine: Mapped[str | None] = mapped_column(String(60), nullable=True)
    language: Mapped[str | None] = mapped_column(String(60), nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    thumbnail: Mapped[str | None] = mapped_column(String(64), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # How the text was read: the rotation (degrees clockwise, 0/90/180/270) and deskew
    # angle applied before OCR, where the text came from ("ocr" | "text-layer") and why.
    rotation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    skew: Mapped[float | None] = mapped_column(Float, nullable=True)
    text_source: Mapped[str | None] = mapped_column(String(20), nullable=True)
    text_source_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Completed, but a person should look: mean confidence under the project's threshold.
    needs_review: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    review_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class PageLayout(Base):
    """The words OCR found on a page, with boxes: what searchable PDF, hOCR and ALTO use.

    Kept apart from ``pages`` so page lists never read it. ``words`` is the compact
    layout of :attr:`pagekit.processing.types.PageResult.layout`.
    """

    __tablename__ = "page_layouts"
    page_id: Mapped[int] = mapped_column(
        ForeignKey("pages.id", ondelete="CASCADE"), primary_key=True
    )
    layout: Mapped[dict[str, Any]] = mapped_column(JSON)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # A project's jobs that still hold a reservation: only those rows, so the claim
        # that looks for them reads nothing in the usual case.
        Index(
            "ix_jobs_reserved",
            "project_id",
            sqlite_where=sql_text("reserved IS NOT NULL"),
            postgresql_where=sql_text("reserved IS NOT NULL"),
        ),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # "page" | "batch"
    total: Mapped[int] = mapped_column(Integer)
    # This batch's OCR mode ("auto" | "force" | "text-only"); None: the project's.
    ocr_mode: Mapped[str | None] = mapped_column(String(12), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # How many of its pages are in each state but "queued" (total minus the rest): moved
    # in the same transaction as the job page that changes state (pagekit.store.counters),
    # so status() reads one row at any job size. None: a job made by an older pagekit,
    # whose pages are counted from job_pages instead.
    processing: Mapped[int | None] = mapped_column(Integer, nullable=True, default=0)
    completed: Mapped[int | None] = mapped_column(Integer, nullable=True, default=0)
    failed: Mapped[int | None] = mapped_column(Integer, nullable=True, default=0)
    cancelled: Mapped[int | None] = mapped_column(Integer, nullable=True, default=0)
    # A big job's pages, in its order (a JSON array of page ids), while a worker has yet
    # to claim them (pagekit.store.jobs.reserve / claim_reserved); NULL once it has.
    # Every other claim and delete in the project treats them as taken by this job.
    reserved: Mapped[str | None] = mapped_column(Text, nullable=True, deferred=True)
    reserved_at: Mapped[int | None] = mapped_column(Integer, nullable=True)  # next to claim
    # The reserved pages a cancel took before any worker claimed them (a JSON array of
    # page ids, in the job's order, after its job_pages rows): cancelled, with no
    # job_pages row each (pagekit.store.jobs.cancel_reserved). NULL: none.
    unclaimed: Mapped[str | None] = mapped_column(Text, nullable=True, deferred=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class JobPage(Base):
    """One page of one job: the unit that is counted exactly once."""

    __tablename__ = "job_pages"
    # No index names ``state`` or ``finished_at``: cancelling a queued page (whose
    # heartbeat is already NULL) then rewrites only its row, in place (PostgreSQL's HOT
    # update, in the room the table's fillfactor leaves, :data:`FILLFACTOR`), with no new
    # entry in any index: 100,000 job pages in 0.15 s instead of 1.2 s. A job's pages are
    # found by their key (job, page) and filtered by state.
    __table_args__ = (
        # Pages a worker holds (reserved or running): the watchdog's look for a holder
        # that went quiet reads only those.
        Index(
            "ix_job_pages_held",
            "heartbeat_at",
            sqlite_where=sql_text("heartbeat_at IS NOT NULL"),
            postgresql_where=sql_text("heartbeat_at IS NOT NULL"),
        ),
        Index("ix_job_pages_position", "job_id", "position"),  # the job's order
        # A page's job rows (deleting pages; PostgreSQL's ON DELETE CASCADE looks them up
        # per deleted page, which without it scans the whole table each time).
        Index("ix_job_pages_page", "page_id"),
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    page_id: Mapped[int] = mapped_column(
        ForeignKey("pages.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(12), default=PageState.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Written every few seconds by the worker holding the page (reserved or running);
    # None while the page waits in the broker. A stale one means its holder is gone.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Why the last attempt ended without a result (a worker lost mid-page), for the
    # message when the page runs out of attempts.
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class WorkerBeat(Base):
    """A worker process that is alive: its watchdog writes ``heartbeat_at`` every few seconds."""

    __tablename__ = "workers"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token for the HTTP API, stored hashed."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


_engines: dict[tuple[str, int, bool, float], Engine] = {}
_engines_lock = threading.Lock()


def _create_private_sqlite(path: Path) -> None:
    """Create the database file 0600 in a 0700 directory before SQLite opens it.

    SQLite gives ``-wal`` and ``-shm`` the database's mode, so they are private too; the
    process umask (a user's notebook's) is left alone. An existing file keeps its mode:
    the runtime tightens an older home when it starts.
    """
    if path.exists():
        return
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        path.parent.mkdir(mode=0o700)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # an empty file is an empty DB


def _make_engine(url: str, immediate: bool, busy_timeout: float) -> Engine:
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:" and not path.startswith("file:"):
            _create_private_sqlite(Path(path))
        # How long a write waits for another writer: Settings.db_busy_timeout says why.
        engine = create_engine(
            url, connect_args={"timeout": busy_timeout, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy's "begin" event decide how transactions start.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # type: ignore[no-untyped-def]
            # Writers take the lock up front: a deferred transaction that upgrades to a
            # writer fails at once with "database is locked" instead of waiting.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def engine_for(
    url: str, *, write: bool = False, busy_timeout: float = Settings.db_busy_timeout
) -> Engine:
    """One engine per (url, process, mode, busy timeout); forked workers get their own."""
    immediate = write and url.startswith("sqlite")
    key = (url, os.getpid(), immediate, busy_timeout)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _make_engine(url, immediate, busy_timeout)
    return engine


# PostgreSQL SQLSTATEs that mean "no usable connection": class 08 (connection exception),
# the server shutting down or starting up, too many connections.
_PG_UNREACHABLE = ("08", "57P01", "57P02", "57P03", "53300")


def _unavailable(exc: DBAPIError, url: str, busy_timeout: float) -> DatabaseUnavailable | None:
    """``exc`` as a DatabaseUnavailable if a lock or the connection caused it, else None."""
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    detail = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
    if parsed.password:
        detail = detail.replace(parsed.password, "***")
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if "database is locked" in detail or "database table is locked" in detail:
            return DatabaseUnavailable(
                f"the database {path} is locked: another process holds a write lock on it "
                "(usually a long transaction, or the file is on a copied or network file "
                f"system); gave up after {busy_timeout:g} s (PAGEKIT_DB_BUSY_TIMEOUT): wait "
                "and try again, or stop the other process",
                url=shown,
            )
        if "unable to open database file" in detail:
            return DatabaseUnavailable(
                f"cannot open the database {path} ({detail}): check that its directory "
                "exists and is writable, or set PAGEKIT_DATABASE_URL",
                url=shown,
            )
        return None
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or ""
    # No statement: the error came while connecting (refused, bad host, password, database).
    if exc.statement is None or exc.connection_invalidated or state.startswith(_PG_UNREACHABLE):
        return DatabaseUnavailable(
            f"cannot connect to the database {shown} ({detail}): check PAGEKIT_DATABASE_URL "
            "and that the database server is up and accepting connections",
            url=shown,
        )
    return None


# -- upgrading databases made by older versions ----------------------------------------------

# 0.1.0 refused a page whose bytes were already in the project, which refused whole any
# file that repeats a page (two blank pages, a TIFF with repeated frames).
_DROPPED_UNIQUE = {"pages": "uq_page_blob"}

# Indexes older versions made that the models no longer have: each costs an entry at every
# rewrite of a row (those naming a job page's state, and a second index on a page's bytes).
_RETIRED_INDEXES = {
    "pages": ("ix_pages_project_blob",),
    "job_pages": ("ix_job_pages_state", "ix_job_pages_heartbeat"),
}

# Columns that, once added, are filled in from the rows: a page a 0.1.0 worker was running
# gets the heartbeat it never wrote (its start), so the watchdog, which looks for held
# pages by their heartbeat, finds it if that worker is gone.
_FILLED_IN = {
    ("job_pages", "heartbeat_at"): "UPDATE job_pages SET heartbeat_at = started_at "
    "WHERE state = 'processing' AND heartbeat_at IS NULL",
}

# PostgreSQL fillfactor (percent of each table page filled by inserts): the rest keeps
# room for a row's next version beside the old one (HOT updates, see Page and JobPage);
# a claim or a cancel rewrites many rows of one table page in one transaction.
FILLFACTOR = {"job_pages": 40, "pages": 40}


def migrate(engine: Engine) -> None:
    """Bring a database made by an older pagekit up to the models, in place.

    Drops the 0.1.0 ``UNIQUE (project_id, blob)`` on ``pages`` (SQLite: a table rebuild),
    adds nullable columns the models have and the tables lack (``ADD COLUMN``), creates
    the models' missing indexes, makes again an index that is partial in the models
    and whole in the database (an older pagekit made it so), drops the indexes the
    models retired, and sets the tables' PostgreSQL fillfactor. When there is nothing to do
    it costs one reflection of column, index and constraint names, so every
    :class:`Store` runs it; concurrent openers are safe (SQLite writers are serialized,
    PostgreSQL DDL says ``IF [NOT] EXISTS``).
    """
    with engine.begin() as conn:
        todo = _pending(conn)
        if not (todo["rebuild"] and conn.dialect.name == "sqlite"):
            _apply(conn, todo)
            return
    _rebuild_sqlite(engine, Base.metadata.tables[todo["rebuild"][0]])
    with engine.begin() as conn:  # the rebuilt table is current; other tables may not be
        _apply(conn, _pending(conn))


def _pending(conn: Connection) -> dict[str, list[Any]]:
    """What the database lacks or has too much of, compared to the models."""
    insp = inspect(conn)
    present = set(insp.get_table_names())
    names = [t.name for t in Base.metadata.sorted_tables if t.name in present]
    columns = insp.get_multi_columns(filter_names=names)
    indexes = insp.get_multi_indexes(filter_names=names)
    todo: dict[str, list[Any]] = {
        "rebuild": [],
        "columns": [],
        "indexes": [],
        "remade": [],
        "retired": [],
        "fillfactor": [],
    }
    where = f"{conn.dialect.name}_where"  # a partial index's condition, as reflected
    for name in names:
        table = Base.metadata.tables[name]
        have = {c["name"] for c in columns[(None, name)]}
        todo["columns"] += [c for c in table.columns if c.name not in have]
        found = {i["name"]: i.get("dialect_options", {}) for i in indexes[(None, name)]}
        elsewhere = set() if conn.dialect.name == "sqlite" else SQLITE_ONLY
        made = [i for i in table.indexes if i.name not in elsewhere]  # on this database
        todo["indexes"] += [i for i in made if i.name not in found]
        todo["remade"] += [
            i
            for i in made
            if i.name in found
            and i.dialect_kwargs.get(where) is not None
            and found[i.name].get(where) is None
        ]
        retired = [*_RETIRED_INDEXES.get(name, ()), *elsewhere]
        todo["retired"] += [i for i in retired if i in found]
        dropped = _DROPPED_UNIQUE.get(name)
        if dropped and dropped in {u["name"] for u in insp.get_unique_constraints(name)}:
            todo["rebuild"].append(name)
    if conn.dialect.name == "postgresql":
        todo["fillfactor"] = _fillfactor_missing(conn, [n for n in FILLFACTOR if n in present])
    return todo


def _fillfactor_missing(conn: Connection, names: list[str]) -> list[str]:
    """The tables among ``names`` whose fillfactor is not the models' (PostgreSQL)."""
    if not names:
        return []
    rows = conn.execute(
        sql_text(
            "SELECT relname, reloptions FROM pg_class WHERE relkind = 'r' "
            "AND relnamespace = current_schema()::regnamespace AND relname IN :names"
        ).bindparams(bindparam("names", expanding=True)),
        {"names": names},
    )
    have = {name: options or [] for name, options in rows}
    return [n for n in names if f"fillfactor={FILLFACTOR[n]}" not in have.get(n, [])]


def _apply(conn: Connection, todo: dict[str, list[Any]]) -> None:
    quote = conn.dialect.identifier_preparer.quote
    postgres = conn.dialect.name == "postgresql"
    for name in todo["rebuild"]:  # not SQLite: constraints can be dropped in place
        exists = " IF EXISTS" if postgres else ""
        conn.exec_driver_sql(
            f"ALTER TABLE {quote(name)} DROP CONSTRAINT{exists} {quote(_DROPPED_UNIQUE[name])}"
        )
    for column in todo["columns"]:
        table = column.table.name
        if not column.nullable or column.primary_key:
            log.warning(
                "database table %s lacks the required column %s: pagekit cannot add it "
                "in place; add it by hand or start from a new database",
                table,
                column.name,
            )
            continue
        exists = " IF NOT EXISTS" if postgres else ""
        kind = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(
            f"ALTER TABLE {quote(table)} ADD COLUMN{exists} {quote(column.name)} {kind}"
        )
        if (table, column.name) in _FILLED_IN:
            conn.exec_driver_sql(_FILLED_IN[table, column.name])
    for index in todo["remade"]:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {quote(index.name)}")
    for index in todo["indexes"] + todo["remade"]:
        conn.execute(CreateIndex(index, if_not_exists=True))
    for name in todo["retired"]:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {quote(name)}")
    for name in todo["fillfactor"]:  # pages filled from now on (no table rewrite)
        conn.exec_driver_sql(f"ALTER TABLE {quote(name)} SET (fillfactor = {FILLFACTOR[name]})")


def _rebuild_sqlite(engine: Engine, table: Table) -> None:
    """Recreate ``table`` from its model, keeping its rows (SQLite cannot drop a constraint).

    SQLite's documented procedure (https://www.sqlite.org/lang_altertable.html#otheralter):
    foreign keys off, then in one transaction create the new table, copy, drop the old one,
    rename, recreate the indexes, check the foreign keys.
    """
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        raw.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: before BEGIN
        try:
            with conn.begin():  # BEGIN IMMEDIATE: one process rebuilds, the others wait
                insp = inspect(conn)
                dropped = _DROPPED_UNIQUE[table.name]
                if dropped not in {u["name"] for u in insp.get_unique_constraints(table.name)}:
                    return  # another process rebuilt it while we waited
                kept = {c["name"] for c in insp.get_columns(table.name)}
                scratch = MetaData()
                for other in table.foreign_keys:  # so the copy's foreign keys compile
                    other.column.table.to_metadata(scratch)
                new = table.to_metadata(scratch, name=f"{table.name}_new")
                conn.execute(CreateTable(new))
                quote = conn.dialect.identifier_preparer.quote
                cols = ", ".join(quote(c.name) for c in table.columns if c.name in kept)
                conn.exec_driver_sql(
                    f"INSERT INTO {quote(new.name)} ({cols}) SELECT {cols} FROM {quote(table.name)}"
                )
                conn.exec_driver_sql(f"DROP TABLE {quote(table.name)}")
                conn.exec_driver_sql(f"ALTER TABLE {quote(new.name)} RENAME TO {quote(table.name)}")
                for index in table.indexes:
                    conn.execute(CreateIndex(index))
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"rebuilding {table.name} broke foreign keys: {broken}")
            log.info("database upgraded: %s no longer refuses repeated pages", table.name)
        finally:
            raw.execute("PRAGMA foreign_keys=ON")


def lock_blob_keys(session: Session, keys: Iterable[str], *, shared: bool) -> None:
    """Hold these page-bytes keys' locks until the transaction ends.

    An add holds them shared while it writes the bytes and inserts the pages naming them;
    removing bytes no page names holds them exclusively (:mod:`pagekit.store.deletion`),
    so bytes are never removed between an add's write and its commit. PostgreSQL:
    advisory locks, taken in sorted order (no deadlock). SQLite: nothing to do, its
    write lock already serializes every writer.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    lock = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    query = sql_text(
        f"SELECT {lock}({BLOB_LOCK_SPACE}, k) FROM unnest(CAST(:ids AS integer[])) AS k"
    )  # unnest keeps the array's sorted order
    session.execute(query, {"ids": sorted({blob_lock_id(key) for key in keys})})


# Page-bytes keys share BLOB_LOCKS advisory locks, (BLOB_LOCK_SPACE, key mod BLOB_LOCKS)
# in PostgreSQL's two-key space (apart from the one-key locks of other uses). A lock per
# key would make an add of a 100,000-page file hold 100,000 locks, past the server's
# lock table (max_locks_per_transaction x max_connections, 6,400 by default): "out of
# shared memory". Two keys in one bucket only make a removal wait for an add it did not
# need to; every add still holds the lock of every key it names.
BLOB_LOCKS = 256
BLOB_LOCK_SPACE = 0x70616765  # "page"


def blob_lock_id(key: str) -> int:
    """The advisory lock (its bucket, 0 to BLOB_LOCKS - 1) of a page-bytes key."""
    return int(key[:16], 16) % BLOB_LOCKS


# Adding a file's pages: keys looked up per query (bounded statement size; SQLite allows
# 32,766 parameters) and rows inserted per statement.
KEYS_PER_QUERY = 500
INSERT_CHUNK = 1000
# Rows of a page list fetched per round trip.
PAGE_ROWS_PER_FETCH = 5000
# An add of this many pages to a PostgreSQL table never analyzed analyzes it.
ANALYZE_AFTER = 1000


def page_filter(
    project_id: int, states: list[PageState] | None = None, needs_review: bool | None = None
) -> list[Any]:
    """WHERE clauses for a project's pages: in these states, flagged for review or not.

    ``needs_review=False`` keeps every page not flagged, including pages never processed
    and rows older than the flag (NULL).
    """
    where: list[Any] = [Page.project_id == project_id]
    if states:
        where.append(Page.status.in_(states))
    if needs_review is not None:
        flagged = Page.needs_review.is_(True)
        where.append(flagged if needs_review else Page.needs_review.is_not(True))
    return where


@dataclass
class FileAdded:
    """What :meth:`Store.add_file_pages` added from one file."""

    page_ids: array[int] = field(default_factory=lambda: array("q"))  # the new pages, in order
    first_number: int = 0  # their numbers: first_number, first_number + 1, ...
    # Pages of the file already in the project: each one's place in the file (1-based),
    # and the id and number of the page it is.
    dup_pages: array[int] = field(default_factory=lambda: array("q"))
    dup_ids: array[int] = field(default_factory=lambda: array("q"))
    dup_numbers: array[int] = field(default_factory=lambda: array("q"))

    @property
    def page_numbers(self) -> range:
        return range(self.first_number, self.first_number + len(self.page_ids))


class Store:
    """Sessions on the pagekit database, plus the queries everyone shares.

    A locked or unreachable database raises :class:`DatabaseUnavailable`, saying why and
    what to do; other database errors (IntegrityError among them) pass through unchanged.
    """

    def __init__(self, url: str, *, create: bool = True, busy_timeout: float | None = None):
        self.url = url
        # Argument, else PAGEKIT_DB_BUSY_TIMEOUT, else the documented default.
        self.busy_timeout = (
            Settings.from_env().db_busy_timeout if busy_timeout is None else busy_timeout
        )
        if create:
            from .search import ensure_index

            engine = self._engine(write=True)
            with self._translated():
                Base.metadata.create_all(engine)
                migrate(engine)
                ensure_index(engine)  # full-text search (pagekit.store.search)

    def _engine(self, *, write: bool = False) -> Engine:
        return engine_for(self.url, write=write, busy_timeout=self.busy_timeout)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn a lock or connection failure into DatabaseUnavailable."""
        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            error = _unavailable(exc, self.url, self.busy_timeout)
            if error is None:
                raise
            raise error from exc

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._translated(), Session(self._engine(), expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with (
            self._translated(),
            Session(self._engine(write=True), expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    # -- projects -----------------------------------------------------------------------

    def ping(self) -> str:
        """Run one query; return the database's dialect name (raises DatabaseUnavailable)."""
        with self.read() as s:
            s.execute(select(1))
        return self._engine().dialect.name

    def create_project(
        self,
        name: str,
        steps: list[str] | None = None,
        languages: list[str] | None = None,
        ocr_mode: str | None = None,
        review_threshold: float | None = None,
    ) -> Project:
        """A new project (the name is checked by :func:`pagekit.validate.project_name`,
        the OCR options by :mod:`pagekit.validate`; None: the installation's default)."""
        with self.write() as s:
            if s.scalar(select(Project).where(Project.name == name)) is not None:
                raise ProjectExists(name)
            project = Project(
                name=name,
                steps=list(steps or []),
                languages=list(languages) if languages else None,
                ocr_mode=ocr_mode,
                review_threshold=review_threshold,
            )
            s.add(project)
            s.flush()
            return project

    def project(self, ref: int | str | dict[str, Any] | Project) -> Project:
        """A project by id, name, the dict ``create_project`` returned, or itself."""
        if isinstance(ref, Project):
            return ref
        if isinstance(ref, dict):
            ref = ref.get("project_id", ref.get("id", ref.get("name")))  # type: ignore[assignment]
        with self.read() as s:
            project = None
            if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
                project = s.get(Project, int(ref))
            if project is None and isinstance(ref, str):
                project = s.scalar(select(Project).where(Project.name == ref))
            if project is None:
                raise NoSuchProject(ref)
            return project

    def projects(self) -> list[dict[str, Any]]:
        with self.read() as s:
            counts = dict(
                s.execute(select(Page.project_id, func.count()).group_by(Page.project_id)).all()
            )
            return [
                {
                    "project_id": p.id,
                    "name": p.name,
                    "pages": counts.get(p.id, 0),
                    "steps": list(p.steps or []),
                    "created_at": p.created_at,
                    **project_options(p),
                }
                for p in s.scalars(select(Project).order_by(Project.id))
            ]

    def set_steps(self, project_id: int, steps: list[str]) -> None:
        with self.write() as s:
            project = s.get(Project, project_id)
            if project is None:
                raise NoSuchProject(project_id)
            project.steps = list(steps)

    def set_project_options(self, project_id: int, options: dict[str, Any]) -> Project:
        """Change the OCR options named in ``options`` (the others stay); a None value goes
        back to the installation's default. Pages queued after this use them."""
        unknown = set(options) - set(PROJECT_OPTIONS)
        if unknown:
            raise TypeError(f"not a project option: {', '.join(sorted(unknown))}")
        with self.write() as s:
            project = s.get(Project, project_id)
            if project is None:
                raise NoSuchProject(project_id)
            for key, value in options.items():
                if key == "languages":
                    value = list(value) if value else None
                setattr(project, key, value)
            s.flush()
            return project

    # -- pages ----------------------------------------------------------------------------

    def page(self, page_id: int, project_id: int | None = None) -> Page:
        with self.read() as s:
            page = s.get(Page, page_id)
            if page is None or (project_id is not None and page.project_id != project_id):
                raise NoSuchPage(page_id, project_id)
            return page

    def page_ids(self, project_id: int, statuses: list[str]) -> list[int]:
        """Ids of the project's pages in these states, in page order."""
        with self.read() as s:
            return list(
                s.scalars(
                    select(Page.id)
                    .where(Page.project_id == project_id, Page.status.in_(statuses))
                    .order_by(Page.page_number)
                )
            )

    def page_table(
        self,
        project_id: int,
        states: list[PageState] | None = None,
        *,
        needs_review: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
        sort: tuple[str, bool] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Rows of :data:`pagekit.contract.PAGE_COLUMNS`, in page order, or by ``sort``
        (``(column, descending)``: empty values last, ties in page order).

        Page order walks the ``(project_id, page_number)`` index. Rows come as plain tuples
        from the connection, ``PAGE_ROWS_PER_FETCH`` at a time (PostgreSQL: a server-side
        cursor), with no ORM upkeep per row: 100,000 pages read in well under 2 s.
        """
        columns = [getattr(Page, "id" if c == "page_id" else c) for c in PAGE_COLUMNS]
        q = select(*columns).where(*page_filter(project_id, states, needs_review))
        if sort is not None:
            key = getattr(Page, "id" if sort[0] == "page_id" else sort[0])
            q = q.order_by((key.desc() if sort[1] else key.asc()).nulls_last())
        q = q.order_by(Page.page_number).offset(offset)
        if limit is not None:
            q = q.limit(limit)
        with self.read() as s:
            rows = s.connection().execution_options(yield_per=PAGE_ROWS_PER_FETCH).execute(q)
            return [tuple(r) for r in rows]

    def count_pages(
        self,
        project_id: int,
        states: list[PageState] | None = None,
        *,
        needs_review: bool | None = None,
    ) -> int:
        where = page_filter(project_id, states, needs_review)
        q = select(func.count()).select_from(Page).where(*where)
        with self.read() as s:
            return int(s.scalar(q) or 0)

    def page_ids_by_number(self, project_id: int, ranges: list[tuple[int, int]]) -> list[int]:
        """Page ids for inclusive page-number ranges, in the order asked for.

        A single number must exist; a range takes the pages numbered inside it and must
        hold at least one. Raises :class:`InvalidPageSelection` naming what is missing.
        """
        with self.read() as s:
            top = s.scalar(select(func.max(Page.page_number)).where(Page.project_id == project_id))
            if top is None:
                raise InvalidPageSelection("the project has no pages yet: add pages first")
            for lo, hi in ranges:
                if hi > top:
                    shown = f"{lo}" if lo == hi else f"{lo}-{hi}"
                    raise InvalidPageSelection(
                        f"no page {hi} in this project (asked for {shown}); "
                        f"its highest page number is {top}"
                    )
            found: dict[int, int] = {}
            spans = [Page.page_number.between(lo, hi) for lo, hi in ranges]
            for chunk in range(0, len(spans), 500):  # bounded statement size
                part = or_(*spans[chunk : chunk + 500])
                found.update(
                    s.execute(
                        select(Page.page_number, Page.id).where(Page.project_id == project_id, part)
                    ).all()
                )
        numbers = sorted(found)  # once: each range is a slice of it
        out: list[int] = []
        for lo, hi in ranges:
            inside = numbers[bisect_left(numbers, lo) : bisect_right(numbers, hi)]
            if not inside:
                shown = f"page {lo}" if lo == hi else f"pages {lo}-{hi}"
                raise InvalidPageSelection(f"no {shown} in this project")
            out.extend(found[n] for n in inside)
        return list(dict.fromkeys(out))

    def job_ids(self, project_id: int | None = None) -> list[str]:
        """Job ids, newest first."""
        q = select(Job.id).order_by(Job.created_at.desc())
        if project_id is not None:
            q = q.where(Job.project_id == project_id)
        with self.read() as s:
            return list(s.scalars(q))

    def add_file_pages(
        self,
        project_id: int,
        pages: PageKeys,
        page_number: int | None,
        put_blob: Callable[[int, str], None],
        source: str,
    ) -> FileAdded:
        """Store one file's pages in one transaction; return what was added.

        ``pages`` is a :class:`pagekit.ingest.PageKeys`: each page's key (the sha256 of its
        bytes) and size in file order, and the file's kind and type. A page whose
        bytes are already in the project from an earlier add is not added: the n-th copy
        of a page in the file is the n-th copy in the project (or the last), so adding a
        file again maps its pages one to one onto the first upload. The others take
        consecutive numbers from ``page_number`` (or the next). ``put_blob(index, key)``
        runs for each page to insert, under the keys' locks (no removal of those bytes
        until the commit), and makes sure its bytes are stored, so a committed row always
        has its blob.

        The pages go ``INSERT_CHUNK`` at a time, each chunk looked up, numbered and
        inserted before the next; nothing is kept per page but the new pages' ids and the
        duplicates (a 100,000-page file takes the same memory as a 1,000-page one).
        """
        from sqlalchemy import insert

        added = FileAdded()
        try:
            with self.write() as s:
                # Adds to one project take turns (SQLite: BEGIN IMMEDIATE already does), so
                # two uploads of one file cannot both add it, nor take the same numbers.
                locked = s.scalar(
                    select(Project.id).where(Project.id == project_id).with_for_update()
                )
                if locked is None:
                    raise NoSuchProject(project_id)
                # No removal of these bytes until this commits.
                lock_blob_keys(s, map(pages.key, range(len(pages))), shared=True)
                first = number = page_number or self.next_page_number(s, project_id)
                added.first_number = first
                turns: dict[str, int] = {}  # copies matched so far, of keys in the project twice
                now = utcnow()
                for at in range(0, len(pages), INSERT_CHUNK):  # one chunk's rows at a time
                    stop = min(at + INSERT_CHUNK, len(pages))
                    chunk = [(i, pages.key(i)) for i in range(at, stop)]
                    # The project's copies of these bytes, from before this add.
                    copies = self._copies(s, project_id, {key for _, key in chunk}, first, number)
                    fresh = []
                    for index, key in chunk:
                        found = copies.get(key)
                        if found is None:
                            fresh.append((index, key))
                            continue
                        turn = 0
                        if len(found) > 1:
                            turn = turns.get(key, 0)
                            turns[key] = turn + 1
                        page_id, its_number = found[min(turn, len(found) - 1)]
                        added.dup_pages.append(index + 1)
                        added.dup_ids.append(page_id)
                        added.dup_numbers.append(its_number)
                    if not fresh:
                        continue
                    last = number + len(fresh) - 1
                    if page_number is not None:
                        taken = s.scalar(
                            select(func.min(Page.page_number)).where(
                                Page.project_id == project_id,
                                Page.page_number.between(number, last),
                            )
                        )
                        if taken is not None:
                            raise PageNumberTaken(
                                f"{source}: page number {taken} is already used in "
                                "this project; choose another page number or leave it out"
                            )
                    rows: list[dict[str, Any]] = []
                    for n, (index, key) in enumerate(fresh, number):
                        put_blob(index, key)  # a repeated page's bytes are kept once
                        rows.append(
                            {
                                "project_id": project_id,
                                "page_number": n,
                                "source": source,
                                "source_index": index,
                                "kind": pages.kind,
                                "mime": pages.mime,
                                "blob": key,
                                "size": pages.size(index),
                                "status": PageState.PENDING.value,
                                "created_at": now,
                            }
                        )
                    s.execute(insert(Page), rows)
                    # The numbers are this add's alone while it holds the lock.
                    added.page_ids.extend(
                        s.scalars(
                            select(Page.id)
                            .where(
                                Page.project_id == project_id,
                                Page.page_number.between(number, last),
                            )
                            .order_by(Page.page_number)
                        )
                    )
                    number = last + 1
        except IntegrityError as exc:  # not expected while adds take turns; say what failed
            raise PageNumberTaken(f"{source}: could not add ({exc.orig})") from exc
        if len(added.page_ids) >= ANALYZE_AFTER and self._engine().dialect.name == "postgresql":
            # PostgreSQL plans reads in page order from the table's statistics; a table never
            # analyzed (autovacuum off, or not round yet) is taken for a few rows, and each
            # chunk of an export sorts the whole project. Once is enough.
            never = "SELECT reltuples < 0 FROM pg_class WHERE oid = 'pages'::regclass"
            with self._translated(), self._engine(write=True).begin() as conn:
                if conn.scalar(sql_text(never)):
                    conn.exec_driver_sql("ANALYZE pages")
        return added

    @staticmethod
    def _copies(
        s: Session, project_id: int, keys: set[str], first: int, number: int
    ) -> dict[str, list[tuple[int, int]]]:
        """The pages of the project holding these bytes, in page order, left out those
        this add numbered ``first`` to ``number - 1``: ``{key: [(page id, number)]}``."""
        copies: dict[str, list[tuple[int, int]]] = {}
        unique = sorted(keys)
        for at in range(0, len(unique), KEYS_PER_QUERY):  # bounded statement size
            query = (
                select(Page.blob, Page.id, Page.page_number)
                .where(
                    Page.project_id == project_id,
                    Page.blob.in_(unique[at : at + KEYS_PER_QUERY]),
                )
                .order_by(Page.page_number)
            )
            if number > first:
                query = query.where(~Page.page_number.between(first, number - 1))
            for blob, page_id, its_number in s.execute(query):
                copies.setdefault(blob, []).append((page_id, its_number))
        return copies

    def next_page_number(self, session: Session, project_id: int) -> int:
        top = session.scalar(
            select(func.max(Page.page_number)).where(Page.project_id == project_id)
        )
        return (top or 0) + 1

    def status_counts(self, project_id: int) -> dict[str, int]:
        with self.read() as s:
            rows = s.execute(
                select(Page.status, func.count())
                .where(Page.project_id == project_id)
                .group_by(Page.status)
            ).all()
        counts = dict.fromkeys(PAGE_STATES, 0)
        counts.update({status: n for status, n in rows})
        return counts
