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

from sqlalchemy import func, insert, literal, select, text, update

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
    caller's order), so claiming 100,000 pages costs a few statements.
    """
    job_id = str(uuid.uuid4())
    with store.write() as s:
        # A key-share lock: a project being deleted (which holds its row lock) is waited
        # for, then found gone, rather than failing the job's foreign key.
        project = select(Project.id).where(Project.id == project_id)
        if s.scalar(project.with_for_update(key_share=True)) is None:
            raise NoSuchProject(project_id)
        s.add(Job(id=job_id, project_id=project_id, kind=kind, total=0, ocr_mode=ocr_mode))
        s.flush()
        if page_ids is None:
            ids = _claim_in_states(s, job_id, project_id, states)
        else:
            ids = _claim_these(s, job_id, project_id, page_ids)
        first = s.scalar(select(Page.page_number).where(Page.id == ids[0]))
        s.execute(update(Job).where(Job.id == job_id).values(total=len(ids)))
    return job_id, ids, int(first)  # type: ignore[arg-type]


def _take(s: Any, job_id: str, *where: Any, params: dict[str, Any] | None = None) -> int:
    """Mark the matching pages queued by this job; how many."""
    return int(
        s.execute(
            update(Page).where(*where).values(status=PageState.QUEUED, job_id=job_id, error=None),
            params,
            execution_options={"synchronize_session": False},
        ).rowcount
    )


def _claim_in_states(s: Any, job_id: str, project_id: int, states: Sequence[str]) -> list[int]:
    """Claim the project's pages in ``states``, in page order; their ids."""
    if not _take(s, job_id, Page.project_id == project_id, Page.status.in_(list(states))):
        _nothing_left(s, project_id, states)  # rolls back
    mine = (Page.job_id == job_id) & (Page.status == PageState.QUEUED)
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
    s.execute(insert(JobPage).from_select(columns, rows))
    return list(s.scalars(select(Page.id).where(mine).order_by(Page.page_number)))


def _ordered_ids(s: Any) -> str:
    """SQL for ``(pid, position)`` rows of the ``:ids`` array, position from 0 in its order."""
    if s.get_bind().dialect.name == "postgresql":
        return (
            "SELECT pid, ord - 1 AS position "
            "FROM unnest(CAST(:ids AS bigint[])) WITH ORDINALITY AS t(pid, ord)"
        )
    return "SELECT CAST(value AS INTEGER) AS pid, key AS position FROM json_each(:ids)"


def _ids_param(s: Any, ids: list[int]) -> dict[str, Any]:
    postgres = s.get_bind().dialect.name == "postgresql"
    return {"ids": list(ids) if postgres else json.dumps(ids)}


def _claim_these(s: Any, job_id: str, project_id: int, page_ids: list[int]) -> list[int]:
    """Claim exactly ``page_ids`` (all or none), in the caller's order."""
    given = select(text("pid")).select_from(text(f"({_ordered_ids(s)}) AS given"))
    taken = _take(
        s,
        job_id,
        Page.project_id == project_id,
        Page.id.in_(given.scalar_subquery()),
        Page.status.not_in(ACTIVE),
        params=_ids_param(s, page_ids),
    )
    if taken != len(page_ids):
        claimed = set(
            s.scalars(select(Page.id).where(Page.job_id == job_id, Page.status == PageState.QUEUED))
        )
        _refuse(s, project_id, page_ids, claimed)  # rolls back
    # One INSERT ... SELECT over the ids passed as one array, positions from its order.
    s.execute(
        text(
            "INSERT INTO job_pages (job_id, page_id, position, state, attempts, queued_at) "
            f"SELECT :job, pid, position, :state, 0, :now FROM ({_ordered_ids(s)}) AS given"
        ),
        {
            "job": job_id,
            "state": PageState.QUEUED.value,
            "now": utcnow(),
            **_ids_param(s, page_ids),
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
    """Each page of the job, in the job's order, with its outcome in this job."""
    with store.read() as s:
        rows = s.execute(
            select(
                Page.id,
                Page.page_number,
                JobPage.state,
                Page.job_id,
                Page.words,
                Page.confidence,
                Page.error,
            )
            .join(Page, Page.id == JobPage.page_id)
            .where(JobPage.job_id == job_id)
            .order_by(JobPage.position)
        ).all()
    out = []
    for page_id, number, state, page_job, words, confidence, error in rows:
        mine = page_job == job_id  # a later job may have reprocessed the page
        out.append(
            {
                "page_id": page_id,
                "page_number": number,
                "status": state,
                "words": words if mine else None,
                "confidence": confidence if mine else None,
                "error": error if mine else None,
            }
        )
    return out


def cancel_queued(store: Store, job_id: str) -> int:
    """Flag the job cancelled (unless finished) and cancel its queued pages; how many moved.

    The job pages move first and the job row after (the order every transaction takes
    its locks in, :mod:`pagekit.store.counters`); a worker that claimed a page meanwhile
    sees the flag at its next step.
    """
    now = utcnow()
    with store.write() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NoSuchTask(job_id)
        moved = s.execute(
            update(JobPage)
            .where(JobPage.job_id == job_id, JobPage.state == PageState.QUEUED)
            .values(state=PageState.CANCELLED, finished_at=now, heartbeat_at=None),
            execution_options={"synchronize_session": False},
        ).rowcount
        if moved:
            just_cancelled = select(JobPage.page_id).where(
                JobPage.job_id == job_id, JobPage.state == PageState.CANCELLED
            )
            s.execute(
                update(Page)
                .where(
                    Page.job_id == job_id,
                    Page.status == PageState.QUEUED,
                    Page.id.in_(just_cancelled),
                )
                .values(status=PageState.CANCELLED, finished_at=now),
                execution_options={"synchronize_session": False},
            )
        counters.moved(s, job_id, moved, PageState.QUEUED, PageState.CANCELLED)
        s.refresh(job)
        c = counters.read(s, job)
        # A job that was finished before this call keeps its outcome.
        if moved or c[PageState.QUEUED] or c[PageState.PROCESSING]:
            s.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
    return int(moved)
