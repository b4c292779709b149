"""The client side of the job contract: enqueue, status, cancel.

A job is a set of pages; each page is its own Celery task so several workers share a
batch. Claiming pages for a job is one conditional UPDATE (only pages that are not
already queued or processing), so of two clients pressing "Process All Pending" at once
exactly one gets each page, on SQLite and PostgreSQL alike. The ``job_pages`` rows count
each page exactly once (see :mod:`pagekit.worker`). A job is done when completed +
failed + cancelled == total.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from .contract import (
    ACTIVE,
    FINISHED,
    QUEUE,
    RUNNING_JOB,
    TASK_PROCESS_PAGE,
    JobState,
    PageState,
)
from .errors import NoSuchPage, NoSuchTask, NothingToProcess, PageBusy, RuntimeUnavailable
from .store import Job, JobPage, Page, Store, utcnow

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)


# -- enqueue ----------------------------------------------------------------------------


def enqueue(
    store: Store,
    app: Celery,
    project_id: int,
    page_ids: Sequence[int] | None = None,
    *,
    states: Sequence[str] | None = None,
    kind: str = "batch",
) -> dict[str, Any]:
    """Claim pages for a new job and send one task per page. Returns the job row info.

    With ``page_ids``, every one of them is claimed or none is (a page already queued
    or processing raises :class:`PageBusy`). With ``states`` instead, whatever pages
    of the project are in those states at this moment are claimed ("Process All
    Pending"): a concurrent caller gets the rest, which is usually nothing.
    """
    if page_ids is not None:
        page_ids = list(dict.fromkeys(int(p) for p in page_ids))
        if not page_ids:
            raise NothingToProcess(f"no pages to process in project {project_id}")
    job_id = str(uuid.uuid4())
    with store.write() as s:
        s.add(Job(id=job_id, project_id=project_id, kind=kind, total=0))
        s.flush()
        where = [Page.project_id == project_id]
        if page_ids is not None:
            where += [Page.id.in_(page_ids), Page.status.not_in(ACTIVE)]
        else:
            where.append(Page.status.in_(list(states or (PageState.PENDING,))))
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
            _nothing_left(s, project_id, states or (PageState.PENDING,))  # rolls back
        if page_ids is not None:  # the caller's order
            number = dict(claimed)
            claimed = [(pid, number[pid]) for pid in page_ids]
        s.get(Job, job_id).total = len(claimed)  # type: ignore[union-attr]
        now = utcnow()
        s.execute(
            insert(JobPage),
            [
                {"job_id": job_id, "page_id": pid, "position": i, "queued_at": now}
                for i, (pid, _) in enumerate(claimed)
            ],
        )
    ids = [pid for pid, _ in claimed]
    try:
        send(app, job_id, ids)
    except Exception as exc:  # broker down: undo, so the pages are not stuck "queued"
        with store.write() as s:
            s.execute(
                update(Page)
                .where(Page.job_id == job_id, Page.status == PageState.QUEUED)
                .values(status=PageState.PENDING, job_id=None)
            )
            s.delete(s.get(Job, job_id))
        raise RuntimeUnavailable(
            f"could not queue pages: the broker is unreachable ({exc}); "
            "run `pagekit doctor`, or `pagekit up` for the embedded runtime"
        ) from exc
    return {"task_id": job_id, "page_ids": ids, "page_number": claimed[0][1]}


def _refuse(s: Any, project_id: int, page_ids: list[int], claimed: set[int]) -> None:
    """Say why some of ``page_ids`` could not be claimed (the transaction rolls back)."""
    rows = dict(
        s.execute(
            select(Page.id, Page.job_id).where(
                Page.project_id == project_id,
                Page.id.in_([p for p in page_ids if p not in claimed]),
            )
        ).all()
    )
    missing = [p for p in page_ids if p not in claimed and p not in rows]
    if missing:
        raise NoSuchPage(missing[0], project_id)
    busy = [p for p in page_ids if p not in claimed]
    raise PageBusy(busy, rows[busy[0]])


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


def send(app: Celery, job_id: str, page_ids: list[int], *, queue: str = QUEUE) -> None:
    """Send one task per page over one broker connection."""
    with app.producer_or_acquire() as producer:
        for pid in page_ids:
            app.send_task(TASK_PROCESS_PAGE, args=[job_id, pid], queue=queue, producer=producer)


# -- status -----------------------------------------------------------------------------


def counts(store: Store, job_id: str) -> tuple[Job, dict[str, int]]:
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


def job_state(job: Job, c: dict[str, int]) -> JobState:
    done = c[PageState.COMPLETED] + c[PageState.FAILED] + c[PageState.CANCELLED]
    if done >= job.total:
        if job.cancel_requested or c[PageState.CANCELLED]:
            return JobState.CANCELLED
        if c[PageState.FAILED] == job.total:
            return JobState.FAILED
        return JobState.COMPLETED
    if done == 0 and c[PageState.PROCESSING] == 0:
        return JobState.QUEUED
    return JobState.PROCESSING


def status(store: Store, job_id: str) -> dict[str, Any]:
    """The job contract's status: progress while running, results when finished."""
    job, c = counts(store, job_id)
    state = job_state(job, c)
    if state in RUNNING_JOB:
        done = c[PageState.COMPLETED] + c[PageState.FAILED] + c[PageState.CANCELLED]
        return {"task_id": job_id, "status": state, "current": done, "total": job.total}
    result: dict[str, Any] = {
        "total": job.total,
        PageState.COMPLETED: c[PageState.COMPLETED],
        PageState.FAILED: c[PageState.FAILED],
        "results": page_results(store, job_id),
    }
    if state == JobState.CANCELLED:
        result[PageState.CANCELLED] = c[PageState.CANCELLED]
    return {"task_id": job_id, "status": state, "result": result}


def page_results(store: Store, job_id: str) -> list[dict[str, Any]]:
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


# -- cancel -----------------------------------------------------------------------------


def cancel(store: Store, job_id: str) -> dict[str, Any]:
    """Flag the job; queued pages become ``cancelled`` now, running ones at their next step.

    ``cancelled_pages`` counts exactly the pages this call moved from ``queued``: the
    UPDATE's row count, which a worker claiming the same page at the same moment cannot
    change (a claimed page is cancelled at its next step instead).
    """
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
    out = status(store, job_id)
    out["cancelled_pages"] = moved
    return out
