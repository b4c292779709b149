"""The worker side's queries: claim a page, finish it once, heartbeats, orphans.

Each state change is one conditional UPDATE and its row count is the answer, so two
workers, a redelivered message, a cancel and a recovery can race in any order, on
SQLite and PostgreSQL alike (docs/design.md). :mod:`pagekit.worker` decides when to call
them; nothing here reads settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from ..contract import ACTIVE, PageState
from . import Job, JobPage, Page, PageLayout, Project, Store, WorkerBeat, counters, utcnow

# finish_page leaves a page's word layout alone unless it is given one (or None).
KEEP_LAYOUT: Any = object()


@dataclass
class Claimed:
    """A page this worker now runs: what it needs to load and process it.

    The OCR options are the project's and the job's as stored; None means "not set
    there": the worker falls back (job, then project, then its settings).
    """

    label: str
    kind: str
    blob: str
    steps: tuple[str, ...]
    languages: tuple[str, ...] | None = None
    ocr_mode: str | None = None  # the project's
    review_threshold: float | None = None
    job_ocr_mode: str | None = None  # this job's override


@dataclass
class OutOfAttempts:
    """A page that kept losing its worker: fail it instead of running it again."""

    attempts: int
    last_error: str | None


def claim_page(
    store: Store,
    job_id: str,
    page_id: int,
    worker: str,
    *,
    stale_before: datetime,
    max_attempts: int,
) -> Claimed | OutOfAttempts | None:
    """``queued -> processing`` (or a ``processing`` page whose heartbeat stopped).

    None when another delivery holds the page, it is finished, or its job is gone; a
    page of a cancelled job is cancelled here.
    """
    now = utcnow()
    with store.write() as s:
        job = s.execute(select(Job.cancel_requested, Job.ocr_mode).where(Job.id == job_id)).first()
        if job is None:
            return None  # a stale message for a job that no longer exists
        cancel, job_ocr_mode = job
        if cancel:
            cancelled = dict(state=PageState.CANCELLED, finished_at=now, heartbeat_at=None)
            if _move(s, job_id, page_id, ACTIVE, **cancelled):
                _set_page(s, job_id, page_id, status=PageState.CANCELLED, finished_at=now)
            return None
        running = dict(
            state=PageState.PROCESSING,
            attempts=JobPage.attempts + 1,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
        )
        fresh = JobPage.attempts < max_attempts
        stale = func.coalesce(JobPage.heartbeat_at, JobPage.started_at) < stale_before
        moved = _move(s, job_id, page_id, [PageState.QUEUED], fresh, **running) or _move(
            s, job_id, page_id, [PageState.PROCESSING], fresh & stale, **running
        )
        if not moved:
            jp = s.get(JobPage, (job_id, page_id))
            if jp is None or jp.state not in ACTIVE or jp.attempts < max_attempts:
                return None  # finished, cancelled, or held by a live worker
            return OutOfAttempts(jp.attempts, jp.last_error)
        _set_page(s, job_id, page_id, status=PageState.PROCESSING, started_at=now, worker=worker)
        row = (
            s.connection()
            .execute(
                select(
                    Page.source,
                    Page.source_index,
                    Page.kind,
                    Page.blob,
                    Project.steps,
                    Project.languages,
                    Project.ocr_mode,
                    Project.review_threshold,
                )
                .join(Project, Project.id == Page.project_id)
                .where(Page.id == page_id)
            )
            .one()
        )  # pages go with their project (ON DELETE CASCADE)
        return Claimed(
            _label(row.kind, row.source, row.source_index),
            row.kind,
            row.blob,
            tuple(row.steps or ()),
            languages=tuple(row.languages) if row.languages else None,
            ocr_mode=row.ocr_mode,
            review_threshold=row.review_threshold,
            job_ocr_mode=job_ocr_mode,
        )


def _move(
    s: Any,
    job_id: str,
    page_id: int,
    sources: Any,
    cond: Any = None,
    *,
    count: bool = True,
    **values: Any,
) -> str | None:
    """Move the job page, if it is in one of ``sources`` (and ``cond`` holds), to
    ``values["state"]``, and count the move on the job (``count=False``: the caller
    counts it, later in the transaction); the state it left, or None.

    One conditional UPDATE per source state (the first one tried is where the page
    usually is), so the counters know exactly what moved (:mod:`pagekit.store.counters`).
    These run as Core statements on the session's connection: a page's claim and finish
    are the per-page cost, and the ORM's bookkeeping would double it.
    """
    this = (JobPage.job_id == job_id) & (JobPage.page_id == page_id)
    for src in sources:
        where = this & (JobPage.state == src)
        if cond is not None:
            where = where & cond
        if s.connection().execute(update(JobPage).where(where).values(**values)).rowcount:
            if count:
                counters.moved(s, job_id, 1, src, values["state"])
            return str(src)
    return None


def _set_page(s: Any, job_id: str, page_id: int, **values: Any) -> bool:
    """Mirror a job page's state on the page row, unless a later job took the page."""
    return bool(
        s.connection()
        .execute(update(Page).where(Page.id == page_id, Page.job_id == job_id).values(**values))
        .rowcount
    )


def _set_layout(s: Any, page_id: int, layout: dict[str, Any] | None) -> None:
    """Replace the page's word layout (no layout: remove the old one)."""
    conn = s.connection()
    conn.execute(delete(PageLayout).where(PageLayout.page_id == page_id))
    if layout is not None:
        conn.execute(insert(PageLayout).values(page_id=page_id, layout=layout))


def _label(kind: str, source: str, index: int) -> str:
    if kind == "pdf" or index:
        return f"{source} page {index + 1}"
    return source


def cancel_requested(store: Store, job_id: str) -> bool:
    with store.read() as s:
        return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def finish_page(
    store: Store,
    job_id: str,
    page_id: int,
    state: str,
    *,
    error: str | None = None,
    fields: dict[str, Any] | None = None,
    layout: dict[str, Any] | None = KEEP_LAYOUT,
) -> bool:
    """Move a job page to a finished state exactly once; False if it already was.

    With ``layout``, the page's word layout is replaced in the same transaction (None
    removes it: a result without one must not keep an older result's boxes).
    """
    now = utcnow()
    with store.write() as s:
        finished = dict(state=state, finished_at=now, heartbeat_at=None)
        src = _move(
            s, job_id, page_id, (PageState.PROCESSING, PageState.QUEUED), count=False, **finished
        )
        if src is None:
            return False
        mine = _set_page(
            s, job_id, page_id, status=state, error=error, finished_at=now, **(fields or {})
        )
        if mine and layout is not KEEP_LAYOUT:
            _set_layout(s, page_id, layout)
        # Last: the job row, which every worker of the job writes, is locked only briefly.
        counters.moved(s, job_id, 1, src, state)
    return True


# -- heartbeats ------------------------------------------------------------------------------


def beat(store: Store, worker: str, held: Iterable[tuple[str, int]], **info: Any) -> None:
    """Record that ``worker`` is alive and still holds the pages ``held``."""
    now = utcnow()
    held = list(held)
    with store.write() as s:
        if held:
            s.execute(
                update(JobPage)
                .where(
                    tuple_(JobPage.job_id, JobPage.page_id).in_(held),
                    JobPage.state.in_(ACTIVE),
                )
                .values(heartbeat_at=now, worker=worker)
            )
        seen = s.execute(
            update(WorkerBeat).where(WorkerBeat.name == worker).values(heartbeat_at=now, **info)
        ).rowcount
    if not seen:
        try:
            with store.write() as s:
                s.add(WorkerBeat(name=worker, started_at=now, heartbeat_at=now, **info))
        except IntegrityError:  # two processes with one name: either row will do
            pass


def forget_worker(store: Store, worker: str) -> None:
    with store.write() as s:
        s.execute(WorkerBeat.__table__.delete().where(WorkerBeat.name == worker))


def live_workers(store: Store, since: datetime) -> list[str]:
    """Names of workers that sent a heartbeat at or after ``since``."""
    with store.read() as s:
        return list(s.scalars(select(WorkerBeat.name).where(WorkerBeat.heartbeat_at >= since)))


# -- orphans -----------------------------------------------------------------------------------

# What recovery needs to know about a job page.
_ROW = (
    JobPage.job_id,
    JobPage.page_id,
    JobPage.state,
    JobPage.attempts,
    JobPage.worker,
    JobPage.queued_at,
    JobPage.started_at,
    JobPage.heartbeat_at,
)


def _orphaned(stale_before: datetime) -> Any:
    """Active job pages whose holder stopped sending heartbeats."""
    return or_(
        and_(
            JobPage.state == PageState.PROCESSING,
            func.coalesce(JobPage.heartbeat_at, JobPage.started_at) < stale_before,
        ),
        and_(JobPage.state == PageState.QUEUED, JobPage.heartbeat_at < stale_before),
    )


def _rows(store: Store, cond: Any, limit: int | None = None) -> list[dict[str, Any]]:
    with store.read() as s:
        rows = s.execute(select(*_ROW).where(cond).order_by(JobPage.queued_at).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def orphan_rows(
    store: Store,
    stale_before: datetime,
    *,
    dropped_by: str | None = None,
    beat_before: datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Orphans, oldest first; with ``dropped_by``, also active pages that worker marked
    as its own and has not beaten since ``beat_before`` (its pool lost the process)."""
    cond = _orphaned(stale_before)
    if dropped_by is not None:
        cond = or_(
            cond,
            and_(
                JobPage.worker == dropped_by,
                JobPage.state.in_(ACTIVE),
                JobPage.heartbeat_at < beat_before,
            ),
        )
    return _rows(store, cond, limit)


def never_held(
    store: Store, queued_before: datetime, limit: int | None = None
) -> list[dict[str, Any]]:
    """Queued pages nobody ever held, queued before ``queued_before``."""
    return _rows(
        store,
        and_(
            JobPage.state == PageState.QUEUED,
            JobPage.heartbeat_at.is_(None),
            JobPage.queued_at < queued_before,
        ),
        limit,
    )


def _unchanged(row: dict[str, Any]) -> Any:
    """The job page of ``row``, only if it is still as ``row`` saw it."""
    this = (JobPage.job_id == row["job_id"]) & (JobPage.page_id == row["page_id"])
    hb = JobPage.heartbeat_at
    same_beat = hb.is_(None) if row["heartbeat_at"] is None else hb == row["heartbeat_at"]
    still = this & (JobPage.state == row["state"]) & same_beat
    if row["state"] == PageState.PROCESSING:
        still = still & (JobPage.attempts == row["attempts"])
    return still


def requeue(store: Store, row: dict[str, Any], note: str | None) -> bool:
    """Put an orphan back in ``queued``, if nobody changed it since it was read."""
    key = (row["job_id"], row["page_id"])
    with store.write() as s:
        ok = s.execute(
            update(JobPage)
            .where(_unchanged(row))
            .values(
                state=PageState.QUEUED,
                queued_at=utcnow(),
                heartbeat_at=None,
                worker=None,
                last_error=note if note else JobPage.last_error,
            )
        ).rowcount
        counters.moved(s, row["job_id"], ok, row["state"], PageState.QUEUED)
        if ok:
            _set_page(s, *key, status=PageState.QUEUED, worker=None)
    return bool(ok)


def give_up(store: Store, row: dict[str, Any], note: str | None, error: str) -> bool:
    """Fail an orphan that used up its attempts, if nobody changed it since it was read."""
    key = (row["job_id"], row["page_id"])
    now = utcnow()
    with store.write() as s:
        ok = s.execute(
            update(JobPage)
            .where(_unchanged(row))
            .values(state=PageState.FAILED, finished_at=now, heartbeat_at=None, last_error=note)
        ).rowcount
        counters.moved(s, row["job_id"], ok, row["state"], PageState.FAILED)
        if ok:
            _set_page(s, *key, status=PageState.FAILED, error=error, finished_at=now)
    return bool(ok)
