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

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, tuple_, update
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


def claim_pages(
    store: Store,
    job_id: str,
    page_ids: list[int],
    worker: str,
    *,
    stale_before: datetime,
    max_attempts: int,
) -> dict[int, Claimed | OutOfAttempts]:
    """``queued -> processing`` (or a ``processing`` page whose heartbeat stopped) for
    pages of one job, in one transaction of a few statements whatever their number.

    The answer holds the pages this worker now runs, and those that used up their
    attempts; a page missing from it is held by another delivery, finished, or its job is
    gone. Pages of a cancelled job are cancelled here.
    """
    now = utcnow()
    out: dict[int, Claimed | OutOfAttempts] = {}
    ids = sorted(set(page_ids))
    with store.write() as s:
        job = s.execute(select(Job.cancel_requested, Job.ocr_mode).where(Job.id == job_id)).first()
        if job is None or not ids:
            return out  # a stale message for a job that no longer exists
        cancel, job_ocr_mode = job
        _lock_these(s, job_id, ids)
        if cancel:
            cancelled = dict(state=PageState.CANCELLED, finished_at=now, heartbeat_at=None)
            moved = _move_many(s, job_id, ids, ACTIVE, **cancelled)
            _set_pages(s, job_id, list(moved), status=PageState.CANCELLED, finished_at=now)
            _count(s, job_id, moved, PageState.CANCELLED)
            return out
        running = dict(
            state=PageState.PROCESSING,
            attempts=JobPage.attempts + 1,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
        )
        fresh = JobPage.attempts < max_attempts
        stale = func.coalesce(JobPage.heartbeat_at, JobPage.started_at) < stale_before
        moved = _move_many(s, job_id, ids, [PageState.QUEUED], fresh, **running)
        rest = [pid for pid in ids if pid not in moved]
        if rest:
            moved |= _move_many(s, job_id, rest, [PageState.PROCESSING], fresh & stale, **running)
            spent = s.connection().execute(
                select(JobPage.page_id, JobPage.attempts, JobPage.last_error).where(
                    JobPage.job_id == job_id,
                    JobPage.page_id.in_([pid for pid in rest if pid not in moved]),
                    JobPage.state.in_(ACTIVE),
                    JobPage.attempts >= max_attempts,
                )
            )
            out.update({r.page_id: OutOfAttempts(r.attempts, r.last_error) for r in spent})
        mine = sorted(moved)
        _set_pages(s, job_id, mine, status=PageState.PROCESSING, started_at=now, worker=worker)
        if mine:
            rows = s.connection().execute(
                select(
                    Page.id,
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
                .where(Page.id.in_(mine))
            )  # pages go with their project (ON DELETE CASCADE)
            for row in rows:
                out[row.id] = Claimed(
                    _label(row.kind, row.source, row.source_index),
                    row.kind,
                    row.blob,
                    tuple(row.steps or ()),
                    languages=tuple(row.languages) if row.languages else None,
                    ocr_mode=row.ocr_mode,
                    review_threshold=row.review_threshold,
                    job_ocr_mode=job_ocr_mode,
                )
        # Last: the job row, which every worker of the job writes, is locked only briefly.
        _count(s, job_id, moved, PageState.PROCESSING)
    return out


def release_pages(store: Store, job_id: str, page_ids: list[int], worker: str) -> list[int]:
    """Hand back pages ``worker`` claimed but did not start: ``processing -> queued``, the
    attempt not counted. Returns the pages moved, which the caller sends again."""
    ids = sorted(set(page_ids))
    if not ids:
        return []
    with store.write() as s:
        _lock_these(s, job_id, ids)
        back = dict(
            state=PageState.QUEUED,
            attempts=JobPage.attempts - 1,
            worker=None,
            started_at=None,
            queued_at=utcnow(),
        )
        moved = _move_many(s, job_id, ids, [PageState.PROCESSING], JobPage.worker == worker, **back)
        _set_pages(s, job_id, sorted(moved), status=PageState.QUEUED, started_at=None, worker=None)
        _count(s, job_id, moved, PageState.QUEUED)
    return sorted(moved)


def lock_in_order(s: Any, *where: Any) -> None:
    """On PostgreSQL, lock the job pages ``where`` holds in key order (job, then page)
    before moving several, so two transactions that each move several (claims, finishes,
    beats) take their locks in one order and cannot deadlock. SQLite: the write
    transaction holds the database already. Only a count comes back (100,000 rows are
    locked in a few tens of milliseconds)."""
    if s.get_bind().dialect.name == "postgresql":
        rows = (
            select(JobPage.page_id)
            .where(*where)
            .order_by(JobPage.job_id, JobPage.page_id)
            .with_for_update()
            .subquery()
        )
        s.connection().execute(select(func.count()).select_from(rows))


def _lock_these(s: Any, job_id: str, page_ids: list[int]) -> None:
    """:func:`lock_in_order` for these pages of the job. One page needs no order (its
    UPDATE locks it, and nothing else): no extra statement on the single-page path."""
    if len(page_ids) > 1:
        lock_in_order(s, *_these(job_id, page_ids))


def _these(job_id: str, page_ids: list[int]) -> tuple[Any, ...]:
    return JobPage.job_id == job_id, JobPage.page_id.in_(page_ids)


def _move_many(
    s: Any, job_id: str, page_ids: list[int], sources: Any, cond: Any = None, **values: Any
) -> dict[int, str]:
    """Move the job pages that are in one of ``sources`` (and ``cond`` holds) to
    ``values["state"]``, one conditional UPDATE ... RETURNING per source state (the first
    one tried is where the pages usually are). Returns ``{page id: the state it left}``
    for the pages moved; the caller counts them (:func:`_count`), later in the
    transaction. Core statements on the session's connection: claims and finishes are
    the per-page cost, and the ORM's bookkeeping would double it."""
    moved: dict[int, str] = {}
    left = list(page_ids)
    for src in sources:
        if not left:
            break
        where = (JobPage.job_id == job_id) & JobPage.page_id.in_(left) & (JobPage.state == src)
        if cond is not None:
            where = where & cond
        got = s.connection().execute(
            update(JobPage).where(where).values(**values).returning(JobPage.page_id)
        )
        for pid in got.scalars():
            moved[pid] = str(src)
        left = [pid for pid in left if pid not in moved]
    return moved


def _count(s: Any, job_id: str, moved: dict[int, str], dst: str) -> None:
    """Add the pages :func:`_move_many` moved to ``dst`` to the job's counters."""
    by_src: dict[str, int] = {}
    for src in moved.values():
        by_src[src] = by_src.get(src, 0) + 1
    for src, n in by_src.items():
        counters.moved(s, job_id, n, src, dst)


def _set_pages(s: Any, job_id: str, page_ids: list[int], **values: Any) -> None:
    """Mirror the job pages' new state on their page rows, unless a later job took a page."""
    if page_ids:
        s.connection().execute(
            update(Page).where(Page.id.in_(page_ids), Page.job_id == job_id).values(**values)
        )


def _label(kind: str, source: str, index: int) -> str:
    if kind == "pdf" or index:
        return f"{source} page {index + 1}"
    return source


def cancel_requested(store: Store, job_id: str) -> bool:
    with store.read() as s:
        return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


@dataclass
class Outcome:
    """How one page ended, for :func:`finish_pages`."""

    page_id: int
    state: str
    error: str | None = None
    fields: dict[str, Any] | None = None
    layout: dict[str, Any] | None = KEEP_LAYOUT


def finish_pages(store: Store, job_id: str, outcomes: list[Outcome]) -> set[int]:
    """Move job pages to their finished states exactly once, in one transaction of a few
    statements whatever their number; the pages moved (one already finished is left as
    it is).

    With a ``layout``, the page's word layout is replaced in the same transaction (None
    removes it: a result without one must not keep an older result's boxes).
    """
    now = utcnow()
    by_id = {o.page_id: o for o in outcomes}
    if not by_id:
        return set()
    with store.write() as s:
        conn = s.connection()
        _lock_these(s, job_id, sorted(by_id))
        moved: dict[str, dict[int, str]] = {}
        for state in sorted({o.state for o in outcomes}):
            ids = sorted(pid for pid, o in by_id.items() if o.state == state)
            finished = dict(state=state, finished_at=now, heartbeat_at=None)
            moved[state] = _move_many(
                s, job_id, ids, (PageState.PROCESSING, PageState.QUEUED), **finished
            )
        done = sorted(pid for m in moved.values() for pid in m)
        if done:
            # The page rows, unless a later job took the page: a statement per set of
            # fields given (usually one), for many rows.
            shapes: dict[tuple[str, ...], list[int]] = {}
            for pid in done:
                shapes.setdefault(tuple(sorted(by_id[pid].fields or {})), []).append(pid)
            for fields, pids in shapes.items():
                conn.execute(_page_update(job_id, now, fields), [_row(by_id[p]) for p in pids])
            relaid = [pid for pid in done if by_id[pid].layout is not KEEP_LAYOUT]
            if relaid:
                mine = sorted(
                    conn.execute(
                        select(Page.id).where(Page.id.in_(relaid), Page.job_id == job_id)
                    ).scalars()
                )
                if mine:
                    conn.execute(delete(PageLayout).where(PageLayout.page_id.in_(mine)))
                    new = [
                        {"page_id": pid, "layout": by_id[pid].layout}
                        for pid in mine
                        if by_id[pid].layout is not None
                    ]
                    if new:
                        conn.execute(insert(PageLayout), new)
        # Last: the job row, which every worker of the job writes, is locked only briefly.
        for state, m in moved.items():
            _count(s, job_id, m, state)
    return set(done)


def _page_update(job_id: str, now: datetime, fields: tuple[str, ...]) -> Any:
    """UPDATE of a finished page's row and ``fields``, unless a later job took the page."""
    table = Page.__table__
    return (
        table.update()
        .where(table.c.id == bindparam("pid"), table.c.job_id == job_id)
        .values(
            status=bindparam("v_status"),
            error=bindparam("v_error"),
            finished_at=now,
            **{k: bindparam(f"v_{k}") for k in fields},
        )
    )


def _row(o: Outcome) -> dict[str, Any]:
    row = {"pid": o.page_id, "v_status": o.state, "v_error": o.error}
    row.update({f"v_{k}": v for k, v in (o.fields or {}).items()})
    return row


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
    """:func:`finish_pages` for one page; False if it was already finished."""
    outcome = Outcome(page_id, state, error, fields, layout)
    return page_id in finish_pages(store, job_id, [outcome])


# -- heartbeats ------------------------------------------------------------------------------


def beat(store: Store, worker: str, held: Iterable[tuple[str, int]], **info: Any) -> None:
    """Record that ``worker`` is alive and still holds the pages ``held``."""
    now = utcnow()
    held = list(held)
    with store.write() as s:
        if held:
            these = tuple_(JobPage.job_id, JobPage.page_id).in_(held), JobPage.state.in_(ACTIVE)
            lock_in_order(s, *these)  # as claims and finishes do: a beat cannot deadlock with them
            s.execute(update(JobPage).where(*these).values(heartbeat_at=now, worker=worker))
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
    """Active job pages whose holder stopped sending heartbeats. A page is held exactly
    while its heartbeat is set (the claim sets it, every finish and requeue clears it),
    so the index of held pages (``ix_job_pages_held``) finds them."""
    return and_(JobPage.heartbeat_at < stale_before, JobPage.state.in_(ACTIVE))


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


def stalled_reservations(store: Store, created_before: datetime) -> list[tuple[str, int]]:
    """``(job id, next position to claim)`` of reservations made before ``created_before``
    that are not yet claimed whole (the watchdog's check for a lost dispatch message)."""
    with store.read() as s:
        return [
            (job_id, int(at or 0))
            for job_id, at in s.execute(
                select(Job.id, Job.reserved_at).where(
                    Job.reserved.is_not(None), Job.created_at < created_before
                )
            )
        ]


def never_held(
    store: Store, queued_before: datetime, limit: int | None = None
) -> list[dict[str, Any]]:
    """Queued pages nobody ever held, queued before ``queued_before``: looked for by key
    in the jobs whose counters leave some queued (no index names a job page's state), so
    an idle database answers from the jobs table alone."""
    with store.read() as s:
        jobs = list(s.scalars(select(Job.id).where(counters.may_have_queued())))
    if not jobs:
        return []
    return _rows(
        store,
        and_(
            JobPage.job_id.in_(jobs),
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
            _set_pages(s, row["job_id"], [row["page_id"]], status=PageState.QUEUED, worker=None)
    return bool(ok)


def give_up(store: Store, row: dict[str, Any], note: str | None, error: str) -> bool:
    """Fail an orphan that used up its attempts, if nobody changed it since it was read."""
    now = utcnow()
    with store.write() as s:
        ok = s.execute(
            update(JobPage)
            .where(_unchanged(row))
            .values(state=PageState.FAILED, finished_at=now, heartbeat_at=None, last_error=note)
        ).rowcount
        counters.moved(s, row["job_id"], ok, row["state"], PageState.FAILED)
        if ok:
            _set_pages(
                s,
                row["job_id"],
                [row["page_id"]],
                status=PageState.FAILED,
                error=error,
                finished_at=now,
            )
    return bool(ok)
