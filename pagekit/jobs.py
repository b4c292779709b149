"""The client side of the job contract: enqueue, status, cancel.

A job is a set of pages; each page is its own Celery task so several workers share a
batch. A big job's tasks are sent by a worker (:func:`dispatch`), so the caller returns
at once. Claiming pages for a job is one conditional UPDATE (only pages that are not
already queued or processing), so of two clients pressing "Process All Pending" at once
exactly one gets each page, on SQLite and PostgreSQL alike. The ``job_pages`` rows count
each page exactly once (see :mod:`pagekit.worker`). A job is done when completed +
failed + cancelled == total.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .contract import (
    PAGES_PER_MESSAGE,
    QUEUE,
    RECOVERY_QUEUE,
    RUNNING_JOB,
    TASK_DISPATCH,
    TASK_PROCESS_PAGE,
    TASK_PROCESS_PAGES,
    JobState,
    PageState,
)
from .errors import NothingToProcess, RuntimeUnavailable
from .store import Job, Store
from .store import jobs as rows
from .store.workers import cancel_requested

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)


# -- enqueue ----------------------------------------------------------------------------

# A job of up to this many pages is claimed and sent by the caller; a bigger one is
# reserved and handed to a worker in one message, which claims and sends its pages (see
# :func:`dispatch`), so queueing 100,000 pages returns as fast as 100 and a notebook,
# the dashboard or an HTTP request never waits on the database or the broker.
INLINE_PAGES = rows.INLINE
CHUNK = 2000  # pages read and sent per round by the dispatcher


def enqueue(
    store: Store,
    app: Celery,
    project_id: int,
    page_ids: Sequence[int] | None = None,
    *,
    states: Sequence[str] | None = None,
    kind: str = "batch",
    ocr_mode: str | None = None,
) -> dict[str, Any]:
    """Claim pages for a new job and have one task sent per page. Returns the job row info.

    ``ocr_mode`` ("auto" | "force" | "text-only") is this job's, over the project's.

    With ``page_ids``, every one of them is claimed or none is (a page already queued
    or processing raises :class:`~pagekit.errors.PageBusy`). With ``states`` instead,
    whatever pages of the project are in those states at this moment are claimed
    ("Process All Pending"): a concurrent caller gets the rest, which is usually nothing.
    """
    if page_ids is not None:
        page_ids = list(dict.fromkeys(int(p) for p in page_ids))
        if not page_ids:
            raise NothingToProcess(f"no pages to process in project {project_id}")
    wanted = list(states or (PageState.PENDING,))
    job_id, ids, first = rows.claim(store, project_id, page_ids, wanted, kind, ocr_mode)
    try:
        if len(ids) <= INLINE_PAGES:
            send(app, job_id, ids)
        else:  # reserved: a worker claims and sends the pages
            app.send_task(TASK_DISPATCH, args=[job_id], queue=RECOVERY_QUEUE)
    except Exception as exc:  # broker down: undo, so the pages are not stuck "queued"
        # (or reserved). A message that did go out names a job that is gone: its worker
        # does nothing.
        rows.release(store, job_id)
        raise RuntimeUnavailable(
            f"could not queue pages: the broker is unreachable ({exc}); "
            "run `pagekit doctor`, or `pagekit up` for the embedded runtime"
        ) from exc
    return {"task_id": job_id, "page_ids": ids, "page_number": first}


def send(app: Celery, job_id: str, page_ids: list[int], *, queue: str = QUEUE) -> None:
    """Send one task per page over one broker connection."""
    with app.producer_or_acquire() as producer:
        for pid in page_ids:
            app.send_task(TASK_PROCESS_PAGE, args=[job_id, pid], queue=queue, producer=producer)


def send_chunks(app: Celery, job_id: str, page_ids: list[int], *, queue: str = QUEUE) -> None:
    """Send the pages as :data:`~pagekit.contract.TASK_PROCESS_PAGES` messages of
    :data:`~pagekit.contract.PAGES_PER_MESSAGE` pages, over one broker connection."""
    n = PAGES_PER_MESSAGE
    with app.producer_or_acquire() as producer:
        for i in range(0, len(page_ids), n):
            chunk = page_ids[i : i + n]
            app.send_task(TASK_PROCESS_PAGES, args=[job_id, chunk], queue=queue, producer=producer)


def dispatch(store: Store, app: Celery, job_id: str) -> int:
    """Claim a big job's reserved pages and send their tasks, in its order, ``CHUNK``
    pages a round; how many were sent.

    Runs on a worker (task :data:`~pagekit.contract.TASK_DISPATCH`). A reserved job
    (:func:`pagekit.store.jobs.claim`) is claimed a round at a time
    (:func:`~pagekit.store.jobs.claim_reserved`), each round's pages sent before the
    next; a cancel takes what is left (:func:`~pagekit.store.jobs.cancel_reserved`) and
    the rounds after it claim nothing. A job claimed by its caller (older pagekit) has
    its queued pages, held by nobody, sent instead, until it is cancelled. A message sent
    twice (this task redelivered after its worker died) is harmless: the claim is
    conditional, so a page still runs once. If the broker fails half-way, the pages not
    sent stay queued with no message; the workers' watchdogs find such pages
    (:func:`pagekit.worker.lost`) and send them again.
    """
    found = rows.reservation(store, job_id)
    if found is not None:
        reserved, start = found
        sent = 0
        for at in range(start, len(reserved), CHUNK):
            claimed = rows.claim_reserved(store, job_id, reserved, at, CHUNK)
            if claimed is None:  # the job is gone (deleted with its project)
                break
            send_chunks(app, job_id, claimed)
            sent += len(claimed)
        return sent
    sent, after = 0, -1
    while True:
        chunk = rows.unsent(store, job_id, after, CHUNK)
        if not chunk:
            return sent
        send_chunks(app, job_id, [pid for _, pid in chunk])
        sent += len(chunk)
        after = chunk[-1][0]
        if cancel_requested(store, job_id):
            return sent


# -- status -----------------------------------------------------------------------------

counts = rows.counts
page_results = rows.page_outcomes


def job_state(job: Job, c: dict[str, int]) -> JobState:
    """A job's state from its pages' counts (docs/design.md, "The job contract")."""
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


# -- cancel -----------------------------------------------------------------------------


def cancel(store: Store, job_id: str) -> dict[str, Any]:
    """Flag the job; queued pages become ``cancelled`` now, running ones at their next step.

    ``cancelled_pages`` counts exactly the pages this call moved from ``queued``: the
    UPDATE's row count, which a worker claiming the same page at the same moment cannot
    change (a claimed page is cancelled at its next step instead).
    """
    moved = rows.cancel_queued(store, job_id)
    out = status(store, job_id)
    out["cancelled_pages"] = moved
    return out
