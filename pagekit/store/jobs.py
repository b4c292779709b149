"""The job contract's queries on the client side: claim pages for a job, count, cancel.

Every state change is one conditional UPDATE whose row count is the answer, so the rules
hold on PostgreSQL (concurrent transactions) as on SQLite (serialized writes); see
docs/design.md, "Every state change is one conditional UPDATE".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, case, func, insert, literal, select, text, update

from ..contract import ACTIVE, PageState
from ..errors import NoSuchPage, NoSuchProject, NoSuchTask, NothingToProcess, PageBusy
from . import Job, JobPage, Page, Project, Store, counters, utcnow
from .workers import lock_in_order

CHUNK = 5000  # ids per statement: under every database's limit on bound parameters


# A job of more pages than this is reserved by its caller and claimed by a worker
# (:func:`claim`, then :func:`claim_reserved`); up to it, claimed by the caller.
INLINE = 100


def claim(
    store: Store,
    project_id: int,
    page_ids: list[int] | None,
    states: Sequence[str],
    kind: str,
    ocr_mode: str | None = None,
) -> tuple[str, list[int], int]:
    """Create a job and claim or reserve its pages in one transaction: ``(job id, page ids
    in the job's order, the first page's number)``.

    ``ocr_mode`` overrides the project's OCR mode for this job's pages (None: the project's).

    With ``page_ids``, every one of them is taken or none is (a page already queued or
    processing, or reserved by another job, raises :class:`PageBusy`). Otherwise whatever
    pages of the project are in ``states`` at this instant are taken; none left raises
    :class:`NothingToProcess`.

    Up to :data:`INLINE` pages are claimed here: the job's rows are written in bulk, as
    Core statements on the session's connection. More are *reserved*: the job row holds
    their ids (:attr:`Job.reserved`) and a worker claims them (:func:`claim_reserved`),
    so the caller never waits on writing 100,000 page rows twice (on PostgreSQL, a few
    seconds). Claims of one project take turns on its row lock, so a reservation is
    seen by every claim and delete after it.
    """
    job_id = str(uuid.uuid4())
    with store.write() as s:
        conn = s.connection()
        # FOR NO KEY UPDATE: claims of a project take turns (and see each other's
        # reservations); a project being deleted (which holds its row lock) is waited
        # for, then found gone, rather than failing the job's foreign key.
        project = select(Project.id).where(Project.id == project_id)
        if conn.scalar(project.with_for_update(key_share=True)) is None:
            raise NoSuchProject(project_id)
        reserved = reservations(conn, project_id)
        if page_ids is None:
            found = _in_states(conn, project_id, states, reserved)
            if not found:
                _nothing_left(conn, project_id, states, reserved)
            # Claims of the project take turns and adds and deletes wait for them, so
            # these are exactly the pages to take.
            ids, first = [pid for pid, _ in found], found[0][1]
        else:
            refuse_reserved(conn, reserved, page_ids)
            ids, first = page_ids, None
        job = {"id": job_id, "project_id": project_id, "kind": kind, "ocr_mode": ocr_mode}
        if len(ids) > INLINE:
            if first is None:
                _available(conn, project_id, ids)
            conn.execute(insert(Job).values(**job, total=len(ids), reserved=json.dumps(ids)))
        else:
            conn.execute(insert(Job).values(**job, total=len(ids)))
            _claim_these(conn, job_id, project_id, ids)
        return job_id, ids, _number(conn, ids[0]) if first is None else int(first)


def _number(conn: Any, page_id: int) -> int:
    return int(conn.scalar(select(Page.page_number).where(Page.id == page_id)))


def reservations(conn: Any, project_id: int) -> dict[int, str]:
    """``{page id: job id}`` of the project's pages reserved by a job that a worker has
    yet to claim (usually none: one indexed read that finds nothing)."""
    held: dict[int, str] = {}
    for job_id, ids in conn.execute(
        select(Job.id, Job.reserved).where(Job.project_id == project_id, Job.reserved.is_not(None))
    ):
        held.update(dict.fromkeys(json.loads(ids), job_id))
    return held


def _in_states(
    conn: Any, project_id: int, states: Sequence[str], reserved: dict[int, str]
) -> list[tuple[int, int]]:
    """``(id, page number)`` of the project's pages in ``states`` that no job reserved, in
    page order (the project's ``(project_id, status)`` index)."""
    rows = _plain_rows(
        conn,
        select(Page.id, Page.page_number)
        .where(Page.project_id == project_id, Page.status.in_(list(states)))
        .order_by(Page.page_number),
    )
    return [row for row in rows if row[0] not in reserved] if reserved else rows


def refuse_reserved(
    conn: Any,
    reserved: dict[int, str],
    page_ids: Sequence[int] | None,
    refuse: Callable[..., PageBusy] = PageBusy,
) -> None:
    """Raise ``refuse(ids, job id, page numbers)`` (:class:`PageBusy`, or a delete's
    :class:`PageInUse`) if a job reserved any of ``page_ids`` (None: any page); ``reserved``
    is :func:`reservations`."""
    busy = sorted(reserved) if page_ids is None else [pid for pid in page_ids if pid in reserved]
    if busy:
        query = select(Page.id, Page.page_number).where(Page.id.in_(busy[:CHUNK]))
        numbers = {pid: number for pid, number in conn.execute(query)}
        raise refuse(busy, reserved[busy[0]], [numbers.get(pid, 0) for pid in busy])


def _available(conn: Any, project_id: int, page_ids: list[int]) -> list[int]:
    """``page_ids`` if every one is a page of the project that is neither queued nor
    processing; else the transaction rolls back with the reason (:func:`_refuse`)."""
    ok = {
        pid
        for (pid,) in _plain_rows(
            conn,
            select(Page.id).where(
                _given_page(conn),
                Page.project_id + 0 == project_id,
                Page.status.not_in(ACTIVE),
            ),
            _ids_param(conn, page_ids),
        )
    }
    if len(ok) != len(page_ids):
        _refuse(conn, project_id, page_ids, ok)
    return page_ids


def claim_reserved(
    store: Store, job_id: str, reserved: list[int], at: int, n: int
) -> list[int] | None:
    """Claim the job's reserved pages ``reserved[at:at + n]`` (positions ``at`` on), in
    one transaction; the page ids now queued, in the job's order, for the caller to send.
    None: the job is gone.

    Slices are claimed in order, each once: a slice already claimed (a redelivered or
    second dispatch) gives ``[]``, as does a reservation :func:`cancel_reserved` ended. A
    reserved page that is gone or busy all the same (no claim or delete takes one: only
    a database edited by hand) leaves the job, whose ``total`` shrinks. The last slice
    ends the reservation.
    """
    with store.write() as s:
        job = _reservation_locked(s, job_id)
        if job is None:
            return None
        project_id, next_at = job
        if next_at != at:
            return []
        claimed = _claim_slice(s, job_id, project_id, reserved[at : at + n], at)
        after = {"reserved_at": at + n} if at + n < len(reserved) else _ENDED
        s.connection().execute(update(Job).where(Job.id == job_id).values(**after))
    return claimed


_ENDED = {"reserved": None, "reserved_at": None}


def cancel_reserved(store: Store, job_id: str) -> int:
    """Take every page the job still has reserved straight into ``cancelled`` and end its
    reservation; how many. 0: no reservation.

    The pages are marked as any cancelled page is, but get no ``job_pages`` row: the
    job keeps their ids, in its order, in :attr:`Job.unclaimed`, and its counters count
    them. Readers of a job's pages add them (:func:`page_outcomes`, the deletion of
    pages). Writing 100,000 job rows here made a cancel right after a big enqueue take
    2.6-3.0 s on PostgreSQL (half of it their foreign-key checks); without, about 1 s.

    The job is not flagged here: :func:`cancel_queued` flags it in the transaction that
    cancels its queued pages, so no worker sees the flag while those are still queued
    (it would cancel them itself, and the cancel's count would miss them)."""
    with store.write() as s:
        job = _reservation_locked(s, job_id)
        if job is None or job[1] is None:
            return 0
        project_id, at = job
        conn = s.connection()
        ids = json.loads(conn.scalar(select(Job.reserved).where(Job.id == job_id)))
        now = utcnow()
        taken = _take_slice(s, job_id, project_id, ids[at:], PageState.CANCELLED, now)
        tail = {"unclaimed": json.dumps(taken), "cancelled_at": now} if taken else {}
        conn.execute(update(Job).where(Job.id == job_id).values(**_ENDED, **tail))
    return len(taken)


def _reservation_locked(s: Any, job_id: str) -> tuple[int, int | None] | None:
    """``(project id, position of the next reserved page to claim, None if none is)``
    with the job row locked, or None if the job is gone. The reservation's claims take
    turns on it; they write only its pages and new job pages before the job row, so
    waiting here cannot deadlock with a worker (which locks job pages, then the job)."""
    row = (
        s.connection()
        .execute(
            select(Job.project_id, Job.reserved.is_not(None), Job.reserved_at)
            .where(Job.id == job_id)
            .with_for_update()
        )
        .first()
    )
    if row is None:
        return None
    project_id, reserved, at = row
    return int(project_id), (int(at or 0) if reserved else None)


def _take_slice(
    s: Any, job_id: str, project_id: int, ids: list[int], state: PageState, now: datetime
) -> list[int]:
    """Mark the reserved pages ``ids`` as this job's, in ``state``, and count them: one
    statement whatever their number. The ids taken, in order; the job's ``total`` loses
    the rest (a page gone or busy: only a database edited by hand)."""
    conn = s.connection()
    done = {"finished_at": now} if state == PageState.CANCELLED else {}
    taken = set(
        conn.execute(
            update(Page)
            .where(_given_page(conn), Page.project_id + 0 == project_id, Page.status.not_in(ACTIVE))
            .values(status=state, job_id=job_id, error=None, **done)
            .returning(Page.id),
            _ids_param(conn, ids),
        ).scalars()
    )
    counters.moved(s, job_id, len(taken), PageState.QUEUED, state)
    if len(taken) < len(ids):
        lost = len(ids) - len(taken)
        conn.execute(update(Job).where(Job.id == job_id).values(total=Job.total - lost))
    return [pid for pid in ids if pid in taken]


def _claim_slice(s: Any, job_id: str, project_id: int, ids: list[int], at: int) -> list[int]:
    """Claim the reserved pages ``ids`` (job positions ``at`` on) into ``queued``, with
    their job rows: two statements whatever their number. The ids claimed, in order."""
    now = utcnow()
    claimed = _take_slice(s, job_id, project_id, ids, PageState.QUEUED, now)
    conn = s.connection()
    if claimed:
        # The claimed ids as one array, positions from its order (a slice's pages keep
        # their order; one lost only closes up the slice). Not a join back to the pages:
        # the planner kept no good plan for that once the tables had churned (8x slower).
        conn.execute(
            text(
                "INSERT INTO job_pages (job_id, page_id, position, state, attempts, queued_at) "
                "SELECT CAST(:job AS VARCHAR(36)), given.pid, given.position + :at, "
                "CAST(:state AS VARCHAR(12)), 0, :now "
                f"FROM ({_ordered_ids(conn)}) AS given"
            ),
            {
                "job": job_id,
                "at": at,
                "state": PageState.QUEUED.value,
                "now": now,
                **_ids_param(conn, claimed),
            },
        )
    return claimed


def reservation(store: Store, job_id: str) -> tuple[list[int], int] | None:
    """The job's reserved page ids, in its order, and the position of the next one to
    claim; None: no reservation (or no job)."""
    with store.read() as s:
        row = s.execute(select(Job.reserved, Job.reserved_at).where(Job.id == job_id)).first()
    if row is None or row[0] is None:
        return None
    return json.loads(row[0]), int(row[1] or 0)


def _plain_rows(conn: Any, query: Any, params: dict[str, Any] | None = None) -> list[Any]:
    """The rows of ``query`` as the driver returns them (tuples), with no SQLAlchemy
    ``Row`` made per row: at 100,000 rows those cost as much as the query itself. Only
    for columns the driver already returns as Python wants them (integers, strings,
    floats; not dates or booleans, which SQLite stores as text and integers)."""
    result = conn.execute(query, params)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _take(conn: Any, job_id: str, *where: Any, params: dict[str, Any] | None = None) -> int:
    """Mark the matching pages queued by this job; how many."""
    return int(
        conn.execute(
            update(Page).where(*where).values(status=PageState.QUEUED, job_id=job_id, error=None),
            params,
        ).rowcount
    )


def _ordered_ids(conn: Any, name: str = "ids") -> str:
    """SQL for ``(pid, position)`` rows of the ``:ids`` array, position from 0 in its order."""
    if conn.dialect.name == "postgresql":
        return (
            "SELECT pid, ord - 1 AS position "
            f"FROM unnest(CAST(:{name} AS bigint[])) WITH ORDINALITY AS t(pid, ord)"
        )
    return f"SELECT CAST(value AS INTEGER) AS pid, key AS position FROM json_each(:{name})"


def _ids_param(conn: Any, ids: list[int], name: str = "ids") -> dict[str, Any]:
    postgres = conn.dialect.name == "postgresql"
    return {name: list(ids) if postgres else json.dumps(ids)}


def _given_page(conn: Any, name: str = "ids") -> Any:
    """The page is one of the ``:ids`` (or ``:name``). PostgreSQL: ``= ANY`` of the
    array, which it hashes or looks up by key as it sees fit (an ``IN`` over ``unnest()``
    made it de-duplicate and then look up 100,000 ids one by one: 0.3 s more). SQLite:
    ``IN`` the JSON array's values."""
    if conn.dialect.name == "postgresql":
        return text(f"pages.id = ANY(CAST(:{name} AS bigint[]))")
    given = select(text("pid")).select_from(text(f"({_ordered_ids(conn, name)}) AS given"))
    return Page.id.in_(given.scalar_subquery())


def _claim_these(conn: Any, job_id: str, project_id: int, page_ids: list[int]) -> list[int]:
    """Claim exactly ``page_ids`` (all or none), in the caller's order."""
    taken = _take(
        conn,
        job_id,
        _given_page(conn),
        # "+ 0": no index on it, so SQLite looks the ids up by key rather than walking
        # every page of the project (one page of a 100,000-page project: 6 ms otherwise).
        Page.project_id + 0 == project_id,
        Page.status.not_in(ACTIVE),
        params=_ids_param(conn, page_ids),
    )
    if taken != len(page_ids):
        claimed = set(
            conn.scalars(
                select(Page.id).where(
                    Page.project_id == project_id,
                    Page.status == PageState.QUEUED,
                    Page.job_id == job_id,
                )
            )
        )
        _refuse(conn, project_id, page_ids, claimed)  # rolls back
    # One INSERT ... SELECT over the ids passed as one array, positions from its order.
    conn.execute(
        text(
            "INSERT INTO job_pages (job_id, page_id, position, state, attempts, queued_at) "
            f"SELECT :job, pid, position, :state, 0, :now FROM ({_ordered_ids(conn)}) AS given"
        ),
        {
            "job": job_id,
            "state": PageState.QUEUED.value,
            "now": utcnow(),
            **_ids_param(conn, page_ids),
        },
    )
    return page_ids


def release(store: Store, job_id: str) -> None:
    """Undo a claim whose tasks could not be sent: its pages are pending again."""
    with store.write() as s:
        s.execute(
            update(Page)
            .where(Page.job_id == job_id, Page.status == PageState.QUEUED)
            .values(status=PageState.PENDING, job_id=None)
        )
        s.delete(s.get(Job, job_id))


def unsent(store: Store, job_id: str, after: int, limit: int) -> list[tuple[int, int]]:
    """``(position, page id)`` of the job's queued pages nobody holds, after ``after``
    in the job's order, ``limit`` at most (the dispatcher's keyset page)."""
    with store.read() as s:
        return [
            (position, pid)
            for position, pid in s.execute(
                select(JobPage.position, JobPage.page_id)
                .where(
                    JobPage.job_id == job_id,
                    JobPage.position > after,
                    JobPage.state == PageState.QUEUED,
                    JobPage.heartbeat_at.is_(None),
                )
                .order_by(JobPage.position)
                .limit(limit)
            )
        ]


def _refuse(s: Any, project_id: int, page_ids: list[int], claimed: set[int]) -> None:
    """Say why some of ``page_ids`` could not be claimed (the transaction rolls back)."""
    rows = {
        pid: (job_id, number)
        for pid, job_id, number in s.execute(
            select(Page.id, Page.job_id, Page.page_number).where(
                Page.project_id == project_id,
                Page.id.in_([p for p in page_ids if p not in claimed]),
            )
        )
    }
    missing = [p for p in page_ids if p not in claimed and p not in rows]
    if missing:
        raise NoSuchPage(missing[0], project_id)
    busy = [p for p in page_ids if p not in claimed]
    raise PageBusy(busy, rows[busy[0]][0], [rows[p][1] for p in busy])


def _nothing_left(s: Any, project_id: int, states: Sequence[str], reserved: dict[int, str]) -> None:
    """No page was in ``states``: name the task that just took them, if one did."""
    recent = (
        next(iter(reserved.values()), None)
        or s.execute(
            select(Page.job_id)
            .where(Page.project_id == project_id, Page.status.in_(ACTIVE))
            .limit(1)
        ).scalar()
    )
    wanted = " or ".join(states)
    if recent is not None:
        raise NothingToProcess(
            f"no {wanted} pages left in project {project_id}: they are already queued by "
            f"task {recent}; follow that task instead"
        )
    raise NothingToProcess(f"no {wanted} pages in project {project_id}")


def counts(store: Store, job_id: str) -> tuple[Job, dict[str, int]]:
    """The job row and its pages counted by state (every state present, maybe 0): one
    row read, whatever the job's size (:mod:`pagekit.store.counters`)."""
    with store.read() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NoSuchTask(job_id)
        return job, counters.read(s, job)


def page_outcomes(store: Store, job_id: str) -> list[dict[str, Any]]:
    """Each page of the job, in the job's order, with its outcome in this job.

    One Core query of the six columns the answer has (:func:`_outcome`), read as the
    driver's tuples: 100,000 pages in about a tenth of a second on SQLite. Then the
    pages a cancel took before a worker claimed them, which have no job row
    (:func:`cancel_reserved`), the same columns by the ids the job lists.
    """
    query = (
        select(*_outcome(job_id, JobPage.state))
        .join(Page, Page.id == JobPage.page_id)
        .where(JobPage.job_id == job_id)
        .order_by(JobPage.position)
    )
    with store.read() as s:
        conn = s.connection()
        rows = _plain_rows(conn, query)
        unclaimed = conn.scalar(select(Job.unclaimed).where(Job.id == job_id))
        if unclaimed:
            given = text(_ordered_ids(conn)).columns(pid=Integer, position=Integer)
            given = given.subquery("given")
            tail = (
                select(*_outcome(job_id, literal(PageState.CANCELLED.value)))
                .join_from(given, Page, Page.id == given.c.pid)  # a page deleted: none
                .order_by(given.c.position)
            )
            rows += _plain_rows(conn, tail, _ids_param(conn, json.loads(unclaimed)))
    return [
        {
            "page_id": page_id,
            "page_number": number,
            "status": state,
            "words": words,
            "confidence": confidence,
            "error": error,
        }
        for page_id, number, state, words, confidence, error in rows
    ]


def _outcome(job_id: str, state: Any) -> list[Any]:
    """A page's columns in the job's answer, its ``state`` in the job given: a page
    reprocessed by a later job shows no words, confidence or error here (the CASEs)."""
    mine = Page.job_id == job_id
    return [
        Page.id,
        Page.page_number,
        state,
        case((mine, Page.words)),
        case((mine, Page.confidence)),
        case((mine, Page.error)),
    ]


def cancel_queued(store: Store, job_id: str) -> int:
    """Flag the job cancelled (unless finished) and cancel its queued pages; how many moved.

    The job pages move first and the job row after (the order every transaction takes
    its locks in, :mod:`pagekit.store.counters`); a worker that claimed a page meanwhile
    sees the flag at its next step.

    The pages follow their job pages: a page's row says ``queued`` for this job exactly
    while its job page does (every writer moves both in one transaction), so the pages
    to mark are those whose job pages moved, by key (the first UPDATE's ``RETURNING``,
    sent back as one array). Two Core UPDATEs of 100,000 rows each.

    Pages the job still has reserved are taken into ``cancelled`` first, in a
    transaction of their own (:func:`cancel_reserved`), and counted in the answer.
    """
    reserved = cancel_reserved(store, job_id)
    now = utcnow()
    with store.write() as s:
        conn = s.connection()
        job = s.get(Job, job_id)
        if job is None:
            raise NoSuchTask(job_id)
        # In page order first, as every transaction moving several job pages does (a
        # worker's group claim could otherwise hold one this UPDATE reaches later).
        lock_in_order(s, JobPage.job_id == job_id, JobPage.state == PageState.QUEUED)
        rows = _plain_rows(
            conn,
            update(JobPage)
            .where(JobPage.job_id == job_id, JobPage.state == PageState.QUEUED)
            .values(state=PageState.CANCELLED, finished_at=now, heartbeat_at=None)
            .returning(JobPage.page_id),
        )
        ids = [pid for (pid,) in rows]
        moved = len(ids)
        if moved:
            conn.execute(
                update(Page)
                .where(_given_page(conn), Page.job_id == job_id, Page.status == PageState.QUEUED)
                .values(status=PageState.CANCELLED, finished_at=now),
                _ids_param(conn, ids),
            )
        counters.moved(s, job_id, moved, PageState.QUEUED, PageState.CANCELLED)
        s.refresh(job)
        c = counters.read(s, job)
        # A job that was finished before this call keeps its outcome.
        if reserved or moved or c[PageState.QUEUED] or c[PageState.PROCESSING]:
            flag = {"cancel_requested": True, "cancelled_at": func.coalesce(Job.cancelled_at, now)}
            conn.execute(update(Job).where(Job.id == job_id).values(**flag))
    return reserved + moved
