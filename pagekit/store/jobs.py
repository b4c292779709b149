"""The job contract's queries on the client side: claim pages for a job, count, cancel.

Every state change is one conditional UPDATE whose row count is the answer, so the rules
hold on PostgreSQL (concurrent transactions) as on SQLite (serialized writes); see
docs/design.md, "Every state change is one conditional UPDATE".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, update

from ..contract import ACTIVE, FINISHED, PageState
from ..errors import NoSuchPage, NoSuchProject, NoSuchTask, NothingToProcess, PageBusy
from . import Job, JobPage, Page, Project, Store, utcnow


def claim(
    store: Store,
    project_id: int,
    page_ids: list[int] | None,
    states: Sequence[str],
    kind: str,
    ocr_mode: str | None = None,
) -> tuple[str, list[tuple[int, int]]]:
    """Create a job and claim its pages in one transaction: ``(job id, [(page id, number)])``.

    ``ocr_mode`` overrides the project's OCR mode for this job's pages (None: the project's).

    With ``page_ids``, every one of them is claimed or none is (a page already queued or
    processing raises :class:`PageBusy`). Otherwise whatever pages of the project are in
    ``states`` at this instant are claimed; none left raises :class:`NothingToProcess`.
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
        where = [Page.project_id == project_id]
        if page_ids is not None:
            where += [Page.id.in_(page_ids), Page.status.not_in(ACTIVE)]
        else:
            where.append(Page.status.in_(list(states)))
        s.execute(
            update(Page).where(*where).values(status=PageState.QUEUED, job_id=job_id, error=None),
            execution_options={"synchronize_session": False},
        )
        claimed = s.execute(
            select(Page.id, Page.page_number)
            .where(Page.job_id == job_id, Page.status == PageState.QUEUED)
            .order_by(Page.page_number)
        ).all()
        if page_ids is not None and len(claimed) != len(page_ids):
            _refuse(s, project_id, page_ids, {pid for pid, _ in claimed})  # rolls back
        if not claimed:
            _nothing_left(s, project_id, states)  # rolls back
        pairs = [(pid, number) for pid, number in claimed]
        if page_ids is not None:  # the caller's order
            numbers = dict(pairs)
            pairs = [(pid, numbers[pid]) for pid in page_ids]
        s.get(Job, job_id).total = len(pairs)  # type: ignore[union-attr]
        now = utcnow()
        s.execute(
            insert(JobPage),
            [
                {"job_id": job_id, "page_id": pid, "position": i, "queued_at": now}
                for i, (pid, _) in enumerate(pairs)
            ],
        )
    return job_id, pairs


def release(store: Store, job_id: str) -> None:
    """Undo a claim whose tasks could not be sent: its pages are pending again."""
    with store.write() as s:
        s.execute(
            update(Page)
            .where(Page.job_id == job_id, Page.status == PageState.QUEUED)
            .values(status=PageState.PENDING, job_id=None)
        )
        s.delete(s.get(Job, job_id))


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
    """The job row and its pages counted by state (every state present, maybe 0)."""
    with store.read() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NoSuchTask(job_id)
        rows = s.execute(
            select(JobPage.state, func.count())
            .where(JobPage.job_id == job_id)
            .group_by(JobPage.state)
        ).all()
    c = {state: 0 for state in (PageState.QUEUED, PageState.PROCESSING, *FINISHED)}
    c.update(dict(rows))  # type: ignore[arg-type]
    return job, c


def page_outcomes(store: Store, job_id: str) -> list[dict[str, Any]]:
    """Each page of the job, in the job's order, with its outcome in this job."""
    with store.read() as s:
        rows = s.execute(
            select(JobPage, Page)
            .join(Page, Page.id == JobPage.page_id)
            .where(JobPage.job_id == job_id)
            .order_by(JobPage.position)
        ).all()
    out = []
    for jp, page in rows:
        mine = page.job_id == job_id  # a later job may have reprocessed the page
        out.append(
            {
                "page_id": page.id,
                "page_number": page.page_number,
                "status": jp.state,
                "words": page.words if mine else None,
                "confidence": page.confidence if mine else None,
                "error": page.error if mine else None,
            }
        )
    return out


def cancel_queued(store: Store, job_id: str) -> int:
    """Flag the job cancelled (unless finished) and cancel its queued pages; how many moved."""
    now = utcnow()
    with store.write() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NoSuchTask(job_id)
        unfinished = s.scalar(
            select(func.count()).where(JobPage.job_id == job_id, JobPage.state.in_(ACTIVE))
        )
        if unfinished:  # a finished job keeps its outcome
            job.cancel_requested = True
            s.flush()
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
    return int(moved)
