"""The job contract's queries on the client side: claim pages for a job, count, cancel.

Every state change is one conditional UPDATE whose row count is the answer, so the rules
hold on PostgreSQL (concurrent transactions) as on SQLite (serialized writes); see
docs/design.md, "Every state change is one conditional UPDATE".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, insert, literal, select, text, update

from ..contract import ACTIVE, PageState
from ..errors import NoSuchPage, NoSuchProject, NoSuchTask, NothingToProcess, PageBusy
from . import Job, JobPage, Page, Project, Store, counters, utcnow

CHUNK = 5000  # ids per statement: under every database's limit on bound parameters


def claim(
    store: Store,
    project_id: int,
    page_ids: list[int] | None,
    states: Sequence[str],
    kind: str,
    ocr_mode: str | None = None,
) -> tuple[str, list[int], int]:
    """Create a job and claim its pages in one transaction: ``(job id, page ids in the
    job's order, the first page's number)``.

    ``ocr_mode`` overrides the project's OCR mode for this job's pages (None: the project's).

    With ``page_ids``, every one of them is claimed or none is (a page already queued or
    processing raises :class:`PageBusy`). Otherwise whatever pages of the project are in
    ``states`` at this instant are claimed; none left raises :class:`NothingToProcess`.
    The job's rows are written in bulk (one INSERT ... SELECT, or batched inserts in the
    caller's order), so claiming 100,000 pages costs a few statements; they are Core
    statements on the session's connection (no ORM bookkeeping), and none reads the
    whole table: the project's pages through its indexes, or the given ids by key.
    """
    job_id = str(uuid.uuid4())
    with store.write() as s:
        conn = s.connection()
        # A key-share lock: a project being deleted (which holds its row lock) is waited
        # for, then found gone, rather than failing the job's foreign key.
        project = select(Project.id).where(Project.id == project_id)
        if conn.scalar(project.with_for_update(key_share=True)) is None:
            raise NoSuchProject(project_id)
        conn.execute(
            insert(Job).values(
                id=job_id, project_id=project_id, kind=kind, total=0, ocr_mode=ocr_mode
            )
        )
        if page_ids is None:
            ids, first = _claim_in_states(conn, job_id, project_id, states)
        else:
            ids = _claim_these(conn, job_id, project_id, page_ids)
            first = conn.scalar(select(Page.page_number).where(Page.id == ids[0]))
        conn.execute(update(Job).where(Job.id == job_id).values(total=len(ids)))
    return job_id, ids, int(first)  # type: ignore[arg-type]


def _plain_rows(conn: Any, query: Any) -> list[Any]:
    """The rows of ``query`` as the driver returns them (tuples), with no SQLAlchemy
    ``Row`` made per row: at 100,000 rows those cost as much as the query itself. Only
    for columns the driver already returns as Python wants them (integers, strings,
    floats; not dates or booleans, which SQLite stores as text and integers)."""
    result = conn.execute(query)
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


def _claim_in_states(
    conn: Any, job_id: str, project_id: int, states: Sequence[str]
) -> tuple[list[int], int]:
    """Claim the project's pages in ``states``, in page order: their ids, and the first
    one's number."""
    if not _take(conn, job_id, Page.project_id == project_id, Page.status.in_(list(states))):
        _nothing_left(conn, project_id, states)  # rolls back
    # The project's queued pages (its index), of this job.
    mine = (
        (Page.project_id == project_id)
        & (Page.status == PageState.QUEUED)
        & (Page.job_id == job_id)
    )
    position = func.row_number().over(order_by=Page.page_number) - 1
    rows = select(
        literal(job_id),
        Page.id,
        position,
        literal(PageState.QUEUED.value),
        literal(0),
        literal(utcnow()),
    ).where(mine)
    columns = ["job_id", "page_id", "position", "state", "attempts", "queued_at"]
    conn.execute(insert(JobPage).from_select(columns, rows))
    ordered = _plain_rows(
        conn, select(Page.id, Page.page_number).where(mine).order_by(Page.page_number)
    )
    return [pid for pid, _ in ordered], ordered[0][1]


def _ordered_ids(conn: Any) -> str:
    """SQL for ``(pid, position)`` rows of the ``:ids`` array, position from 0 in its order."""
    if conn.dialect.name == "postgresql":
        return (
            "SELECT pid, ord - 1 AS position "
            "FROM unnest(CAST(:ids AS bigint[])) WITH ORDINALITY AS t(pid, ord)"
        )
    return "SELECT CAST(value AS INTEGER) AS pid, key AS position FROM json_each(:ids)"


def _ids_param(conn: Any, ids: list[int]) -> dict[str, Any]:
    postgres = conn.dialect.name == "postgresql"
    return {"ids": list(ids) if postgres else json.dumps(ids)}


def _given_page(conn: Any) -> Any:
    """The page is one of the ``:ids``. PostgreSQL: ``= ANY`` of the array, which it
    hashes or looks up by key as it sees fit (an ``IN`` over ``unnest()`` made it
    de-duplicate and then look up 100,000 ids one by one: 0.3 s more). SQLite: ``IN`` the
    JSON array's values."""
    if conn.dialect.name == "postgresql":
        return text("pages.id = ANY(CAST(:ids AS bigint[]))")
    given = select(text("pid")).select_from(text(f"({_ordered_ids(conn)}) AS given"))
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


def _nothing_left(s: Any, project_id: int, states: Sequence[str]) -> None:
    """No page was in ``states``: name the task that just took them, if one did."""
    recent = s.execute(
        select(Page.job_id).where(Page.project_id == project_id, Page.status.in_(ACTIVE)).limit(1)
    ).scalar()
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

    One Core query of the six columns the answer has (a page reprocessed by a later job
    shows no words, confidence or error here: the CASEs), read as the driver's tuples:
    100,000 pages in about a tenth of a second on SQLite.
    """
    mine = Page.job_id == job_id  # a later job may have reprocessed the page
    query = (
        select(
            Page.id,
            Page.page_number,
            JobPage.state,
            case((mine, Page.words)),
            case((mine, Page.confidence)),
            case((mine, Page.error)),
        )
        .join(Page, Page.id == JobPage.page_id)
        .where(JobPage.job_id == job_id)
        .order_by(JobPage.position)
    )
    with store.read() as s:
        rows = _plain_rows(s.connection(), query)
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


def cancel_queued(store: Store, job_id: str) -> int:
    """Flag the job cancelled (unless finished) and cancel its queued pages; how many moved.

    The job pages move first and the job row after (the order every transaction takes
    its locks in, :mod:`pagekit.store.counters`); a worker that claimed a page meanwhile
    sees the flag at its next step.

    The pages follow their job pages: a page's row says ``queued`` for this job exactly
    while its job page does (every writer moves both in one transaction), so the pages
    to mark are the project's queued pages of this job, read through the project's
    ``(project_id, status)`` index rather than looked up one by one. Two Core UPDATEs
    of 100,000 rows each, and nothing read back row by row.
    """
    now = utcnow()
    with store.write() as s:
        conn = s.connection()
        job = s.get(Job, job_id)
        if job is None:
            raise NoSuchTask(job_id)
        moved = conn.execute(
            update(JobPage)
            .where(JobPage.job_id == job_id, JobPage.state == PageState.QUEUED)
            .values(state=PageState.CANCELLED, finished_at=now, heartbeat_at=None)
        ).rowcount
        if moved:
            conn.execute(
                update(Page)
                .where(
                    Page.project_id == job.project_id,
                    Page.status == PageState.QUEUED,
                    Page.job_id == job_id,
                )
                .values(status=PageState.CANCELLED, finished_at=now)
            )
        counters.moved(s, job_id, moved, PageState.QUEUED, PageState.CANCELLED)
        s.refresh(job)
        c = counters.read(s, job)
        # A job that was finished before this call keeps its outcome.
        if moved or c[PageState.QUEUED] or c[PageState.PROCESSING]:
            conn.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
    return int(moved)
