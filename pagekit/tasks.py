"""The Celery task body: claim the page, run :mod:`pagekit.processing`, record the result.

The function is registered on the worker's app by :mod:`pagekit.celery_app` (the worker
entry point); clients send it by name (:data:`pagekit.contract.TASK_PROCESS_PAGE`), so
nothing here builds an app.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from . import worker
from .blobs import BlobStore
from .broker import soft_time_limit
from .config import Settings
from .contract import TASK_DISPATCH, TASK_PROCESS_PAGE, TASK_PROCESS_PAGES
from .errors import DatabaseUnavailable
from .store import Store

OPTIONS: dict[str, Any] = {
    "name": TASK_PROCESS_PAGE,
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    # The database briefly unreachable or locked (Store raises DatabaseUnavailable for
    # those; a raw OperationalError can still come from, say, a PostgreSQL deadlock).
    "autoretry_for": (DatabaseUnavailable, OperationalError),
    "retry_backoff": True,
    "max_retries": 5,
}


@cache
def _context() -> tuple[Settings, Store, BlobStore]:
    """Settings, store and blobs, built once per worker process."""
    settings = Settings.from_env()
    return settings, Store(settings.db_url), BlobStore(settings.blob_path)


def process_page(task: Any, job_id: str, page_id: int) -> None:
    """Process one page of one job (each page of a batch is its own task)."""
    settings, store, blobs = _context()
    work = worker.claim(store, blobs, settings, job_id, page_id, task.request.hostname)
    if work is not None:
        result = worker.run(store, work, timeouts=(SoftTimeLimitExceeded,))
        worker.record(store, blobs, work, result)


def chunk_options(settings: Settings) -> dict[str, Any]:
    """The page task's delivery rules for a chunk of pages; its time limits leave every
    page the per-page limit however late in the chunk it starts."""
    late = worker.CHUNK_LATEST_START
    return {
        **OPTIONS,
        "name": TASK_PROCESS_PAGES,
        "time_limit": settings.page_time_limit + late,
        "soft_time_limit": soft_time_limit(settings) + late,
    }


def process_pages(task: Any, job_id: str, page_ids: list[int]) -> int:
    """Process a chunk of one job's pages (:func:`pagekit.worker.run_chunk`); how many."""
    settings, store, blobs = _context()
    return worker.run_chunk(
        store,
        blobs,
        settings,
        task.app,
        job_id,
        [int(p) for p in page_ids],
        task.request.hostname,
        timeouts=(SoftTimeLimitExceeded,),
    )


# The same delivery rules: redelivered if its worker dies half-way (a page sent twice
# still runs once), retried while the database is briefly unavailable.
DISPATCH_OPTIONS: dict[str, Any] = {**OPTIONS, "name": TASK_DISPATCH}


def dispatch_job(task: Any, job_id: str) -> int:
    """Send the page tasks of a big job (:func:`pagekit.jobs.dispatch`); how many."""
    from .jobs import dispatch

    _, store, _ = _context()
    return dispatch(store, task.app, job_id)
