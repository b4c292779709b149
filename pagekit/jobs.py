"""Jobs: enqueue, status, cancel, retry, reconcile. The seed contract lives here.

A job is a set of pages; each page is its own Celery task so several workers share a
batch. The ``job_pages`` rows count each page exactly once: a state moves from
``queued``/``processing`` to a finished state in one conditional UPDATE, so a
redelivered task cannot count twice. A job is done when completed + failed +
cancelled == total.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery
from sqlalchemy import func, select, update

from .blobs import BlobStore
from .celery_app import QUEUE, TASK_PROCESS_PAGE
from .config import Settings
from .errors import NoSuchPage, NoSuchTask, NothingToProcess, PagekitError, RuntimeUnavailable
from .processing import Cancelled, PageInput, PageResult, process_page
from .store import ACTIVE, FINISHED, Job, JobPage, Page, Project, Store, utcnow

log = logging.getLogger(__name__)


# -- enqueue ----------------------------------------------------------------------------


def enqueue(
    store: Store, app: Celery, project_id: int, page_ids: list[int], *, kind: str = "batch"
) -> dict[str, Any]:
    """Create a job for ``page_ids`` and send one task per page. Returns the job row info."""
    page_ids = list(dict.fromkeys(int(p) for p in page_ids))
    if not page_ids:
        raise NothingToProcess(f"no pages to process in project {project_id}")
    job_id = str(uuid.uuid4())
    with store.write() as s:
        pages = {
            p.id: p
            for p in s.scalars(
                select(Page).where(Page.project_id == project_id, Page.id.in_(page_ids))
            )
        }
        missing = [p for p in page_ids if p not in pages]
        if missing:
            raise NoSuchPage(missing[0], project_id)
        busy = [p for p in page_ids if pages[p].status in ACTIVE]
        if busy:
            raise PagekitError(
                f"page(s) {busy} are already queued or processing (task {pages[busy[0]].job_id});"
                " wait for that task or cancel it first"
            )
        s.add(Job(id=job_id, project_id=project_id, kind=kind, total=len(page_ids)))
        s.flush()
        now = utcnow()
        for position, pid in enumerate(page_ids):
            s.add(JobPage(job_id=job_id, page_id=pid, position=position, queued_at=now))
            page = pages[pid]
            page.status, page.job_id, page.error = "queued", job_id, None
        first_number = pages[page_ids[0]].page_number
    try:
        send(app, job_id, page_ids)
    except Exception as exc:  # broker down: undo, so the pages are not stuck "queued"
        with store.write() as s:
            s.execute(
                update(Page)
                .where(Page.job_id == job_id, Page.status == "queued")
                .values(status="pending", job_id=None)
            )
            s.delete(s.get(Job, job_id))
        raise RuntimeUnavailable(
            f"could not queue pages: the broker is unreachable ({exc}); "
            "run `pagekit doctor`, or `pagekit up` for the embedded runtime"
        ) from exc
    return {"task_id": job_id, "page_ids": page_ids, "page_number": first_number}


def send(app: Celery, job_id: str, page_ids: list[int]) -> None:
    """Send one task per page over one broker connection."""
    with app.producer_or_acquire() as producer:
        for pid in page_ids:
            app.send_task(
                TASK_PROCESS_PAGE, args=[job_id, pid], queue=QUEUE, producer=producer
            )


# -- status -----------------------------------------------------------------------------


def counts(store: Store, job_id: str) -> tuple[Job, dict[str, int]]:
    with store.read() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NoSuchTask(job_id)
        rows = s.execute(
            select(JobPage.state, func.count()).where(JobPage.job_id == job_id).group_by(
                JobPage.state
            )
        ).all()
    c = {state: 0 for state in ("queued", "processing", *FINISHED)}
    c.update(dict(rows))  # type: ignore[arg-type]
    return job, c


def job_state(job: Job, c: dict[str, int]) -> str:
    done = c["completed"] + c["failed"] + c["cancelled"]
    if done >= job.total:
        if job.cancel_requested or c["cancelled"]:
            return "cancelled"
        if c["failed"] == job.total:
            return "failed"
        return "completed"
    if done == 0 and c["processing"] == 0:
        return "queued"
    return "processing"


def status(store: Store, job_id: str) -> dict[str, Any]:
    """The seed contract's status: progress while running, results when finished."""
    job, c = counts(store, job_id)
    state = job_state(job, c)
    if state in ("queued", "processing"):
        done = c["completed"] + c["failed"] + c["cancelled"]
        return {"task_id": job_id, "status": state, "current": done, "total": job.total}
    result: dict[str, Any] = {
        "total": job.total,
        "completed": c["completed"],
        "failed": c["failed"],
        "results": page_results(store, job_id),
    }
    if state == "cancelled":
        result["cancelled"] = c["cancelled"]
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
    """Flag the job; queued pages become ``cancelled`` now, running ones at their next step."""
    with store.write() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NoSuchTask(job_id)
        unfinished = s.scalar(
            select(func.count()).where(JobPage.job_id == job_id, JobPage.state.in_(ACTIVE))
        )
        if unfinished:  # a finished job keeps its outcome
            job.cancel_requested = True
        now = utcnow()
        queued = list(
            s.scalars(
                select(JobPage.page_id).where(
                    JobPage.job_id == job_id, JobPage.state == "queued"
                )
            )
        )
        if queued:
            s.execute(
                update(JobPage)
                .where(JobPage.job_id == job_id, JobPage.state == "queued")
                .values(state="cancelled", finished_at=now)
            )
            s.execute(
                update(Page)
                .where(Page.id.in_(queued), Page.job_id == job_id)
                .values(status="cancelled", finished_at=now)
            )
    out = status(store, job_id)
    out["cancelled_pages"] = len(queued)
    return out


# -- the worker side ----------------------------------------------------------------------


@dataclass
class PageWork:
    """What a task needs to process one page."""

    job_id: str
    page_id: int
    input: PageInput


def start_page(
    store: Store, blobs: BlobStore, settings: Settings, job_id: str, page_id: int, worker: str
) -> PageWork | None:
    """Claim a page for processing; None when it is already finished or cancelled."""
    finished_with: tuple[str, str | None] | None = None
    with store.write() as s:
        jp = s.get(JobPage, (job_id, page_id))
        job = s.get(Job, job_id)
        if jp is None or job is None or jp.state not in ACTIVE:
            return None  # finished, cancelled, or a stale message: count nothing
        if job.cancel_requested:
            finished_with = ("cancelled", None)
        elif jp.attempts >= settings.max_attempts:
            finished_with = (
                "failed",
                f"gave up after {jp.attempts} attempts: the worker died each time "
                "(out of memory? raise the worker's memory or split the page)",
            )
        else:
            jp.state, jp.attempts, jp.worker = "processing", jp.attempts + 1, worker
            jp.started_at = utcnow()
            page = s.get(Page, page_id)
            assert page is not None
            if page.job_id == job_id:
                page.status, page.started_at, page.worker = "processing", jp.started_at, worker
            project = s.get(Project, page.project_id)
            steps = tuple(project.steps or ()) if project else ()
            label = _label(page)
            kind, blob = page.kind, page.blob
    if finished_with is not None:
        finish(store, job_id, page_id, finished_with[0], error=finished_with[1])
        return None
    inp = PageInput(
        page_id=page_id,
        kind=kind,
        data=blobs.get(blob),
        source=label,
        steps=steps,
        lang=settings.ocr_lang,
        tessdata=settings.tessdata,
        render_dpi=settings.render_dpi,
        pdf_text_min_chars=settings.pdf_text_min_chars,
        max_image_pixels=settings.max_image_pixels,
    )
    return PageWork(job_id, page_id, inp)


def _label(page: Page) -> str:
    if page.kind == "pdf" or page.source_index:
        return f"{page.source} page {page.source_index + 1}"
    return page.source


def run(store: Store, work: PageWork) -> PageResult | None:
    """Process the page, stopping between steps if its job is cancelled."""

    # start_page has just checked the flag; look again at most once a second, so a
    # cancel lands within a second without a query before every step of every page.
    checked = [time.monotonic(), False]

    def should_stop() -> bool:
        if time.monotonic() - checked[0] >= 1.0:
            with store.read() as s:
                flag = s.scalar(select(Job.cancel_requested).where(Job.id == work.job_id))
            checked[:] = [time.monotonic(), bool(flag)]
        return bool(checked[1])

    try:
        return process_page(work.input, should_stop=should_stop)
    except Cancelled:
        finish(store, work.job_id, work.page_id, "cancelled")
        return None


def record(store: Store, blobs: BlobStore, work: PageWork, result: PageResult | None) -> bool:
    """Record a page's result once. Returns False if it was already counted."""
    if result is None:
        return False
    thumb = blobs.put(result.thumbnail) if result.thumbnail else None
    return finish(
        store,
        work.job_id,
        work.page_id,
        "completed" if result.ok else "failed",
        error=result.error,
        fields={
            "text": result.text,
            "confidence": result.confidence,
            "words": result.words,
            "chars": result.chars,
            "engine": result.engine,
            "language": result.language,
            "width": result.width,
            "height": result.height,
            "timings": result.timings,
            "extra": result.extra,
            "thumbnail": thumb,
        },
    )


def finish(
    store: Store,
    job_id: str,
    page_id: int,
    state: str,
    *,
    error: str | None = None,
    fields: dict[str, Any] | None = None,
) -> bool:
    """Move a job page to a finished state exactly once (idempotent)."""
    now = utcnow()
    with store.write() as s:
        moved = s.execute(
            update(JobPage)
            .where(
                JobPage.job_id == job_id,
                JobPage.page_id == page_id,
                JobPage.state.in_(ACTIVE),
            )
            .values(state=state, finished_at=now)
        ).rowcount
        if not moved:
            return False
        s.execute(
            update(Page)
            .where(Page.id == page_id, Page.job_id == job_id)
            .values(status=state, error=error, finished_at=now, **(fields or {}))
        )
    return True


# -- retry and reconcile --------------------------------------------------------------------


def reconcile(
    store: Store,
    app: Celery,
    settings: Settings,
    *,
    idle: bool = False,
    grace: float = 30.0,
) -> list[tuple[str, int]]:
    """Re-queue pages whose task is gone. Returns the (job_id, page_id) pairs re-sent.

    A page ``processing`` for longer than the page time limit has no live task (the
    worker would have killed it). With ``idle=True`` (the caller saw an empty queue and
    no worker busy) every unfinished page older than ``grace`` seconds is orphaned.
    """
    now = utcnow()
    stale = now - timedelta(seconds=settings.page_time_limit + grace)
    recent = now - timedelta(seconds=grace)
    with store.write() as s:
        cond = (JobPage.state == "processing") & (JobPage.started_at < stale)
        if idle:
            cond = cond | (
                JobPage.state.in_(ACTIVE)
                & (func.coalesce(JobPage.started_at, JobPage.queued_at) < recent)
            )
        orphans = list(s.execute(select(JobPage.job_id, JobPage.page_id).where(cond)).all())
        for job_id, page_id in orphans:
            s.execute(
                update(JobPage)
                .where(JobPage.job_id == job_id, JobPage.page_id == page_id)
                .values(state="queued", queued_at=now)
            )
            s.execute(
                update(Page)
                .where(Page.id == page_id, Page.job_id == job_id)
                .values(status="queued")
            )
    by_job: dict[str, list[int]] = {}
    for job_id, page_id in orphans:
        by_job.setdefault(job_id, []).append(page_id)
    for job_id, pids in by_job.items():
        log.warning("re-queueing %d page(s) of task %s with no live task", len(pids), job_id)
        send(app, job_id, pids)
    return [(j, p) for j, p in orphans]
