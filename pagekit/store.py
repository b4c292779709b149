"""The database, source of truth for projects, pages, jobs and results (SQLAlchemy 2).

SQLite (WAL) in the data dir by default; PostgreSQL (or any SQLAlchemy URL) through
``PAGEKIT_DATABASE_URL`` when workers run on several hosts.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .errors import NoSuchPage, NoSuchProject, ProjectExists

PAGE_STATES = ("pending", "queued", "processing", "completed", "failed", "cancelled")
FINISHED = ("completed", "failed", "cancelled")
ACTIVE = ("queued", "processing")


def utcnow() -> datetime:
    """Naive UTC now (stored the same way in SQLite and PostgreSQL)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    steps: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Page(Base):
    __tablename__ = "pages"
    __table_args__ = (
        UniqueConstraint("project_id", "page_number", name="uq_page_number"),
        UniqueConstraint("project_id", "blob", name="uq_page_blob"),
        Index("ix_pages_project_status", "project_id", "status"),
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
    status: Mapped[str] = mapped_column(String(12), default="pending")
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


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # "page" | "batch"
    total: Mapped[int] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class JobPage(Base):
    """One page of one job: the unit that is counted exactly once."""

    __tablename__ = "job_pages"
    __table_args__ = (Index("ix_job_pages_state", "job_id", "state"),)
    job_id: Mapped[str] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    page_id: Mapped[int] = mapped_column(
        ForeignKey("pages.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ApiToken(Base):
    """A bearer token for the HTTP API, stored hashed."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


_engines: dict[tuple[str, int, bool], Engine] = {}
_engines_lock = threading.Lock()


def _make_engine(url: str, immediate: bool) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy's "begin" event decide how transactions start.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # type: ignore[no-untyped-def]
            # Writers take the lock up front: a deferred transaction that upgrades to a
            # writer fails at once with "database is locked" instead of waiting.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def engine_for(url: str, *, write: bool = False) -> Engine:
    """One engine per (url, process, mode); forked workers get their own."""
    immediate = write and url.startswith("sqlite")
    key = (url, os.getpid(), immediate)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _make_engine(url, immediate)
    return engine


class Store:
    """Sessions on the pagekit database, plus the queries everyone shares."""

    def __init__(self, url: str, *, create: bool = True):
        self.url = url
        if create:
            Base.metadata.create_all(engine_for(url, write=True))

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(engine_for(self.url), expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with Session(engine_for(self.url, write=True), expire_on_commit=False) as session:
            with session.begin():
                yield session

    # -- projects -----------------------------------------------------------------------

    def create_project(self, name: str, steps: list[str] | None = None) -> Project:
        name = name.strip()
        if not name:
            raise ValueError("a project needs a name")
        with self.write() as s:
            if s.scalar(select(Project).where(Project.name == name)) is not None:
                raise ProjectExists(name)
            project = Project(name=name, steps=list(steps or []))
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
                s.execute(
                    select(Page.project_id, func.count()).group_by(Page.project_id)
                ).all()
            )
            return [
                {
                    "project_id": p.id,
                    "name": p.name,
                    "pages": counts.get(p.id, 0),
                    "steps": list(p.steps or []),
                    "created_at": p.created_at,
                }
                for p in s.scalars(select(Project).order_by(Project.id))
            ]

    def set_steps(self, project_id: int, steps: list[str]) -> None:
        with self.write() as s:
            project = s.get(Project, project_id)
            if project is None:
                raise NoSuchProject(project_id)
            project.steps = list(steps)

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
