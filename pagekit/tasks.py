"""Thin Celery tasks: load the page, call :mod:`pagekit.processing`, record the result."""

from __future__ import annotations

from functools import cache

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from . import worker
from .blobs import BlobStore
from .celery_app import TASK_PROCESS_PAGE, app
from .config import Settings
from .errors import DatabaseUnavailable
from .store import Store


@cache
def _context() -> tuple[Settings, Store, BlobStore]:
    settings = Settings.from_env()
    return settings, Store(settings.db_url), BlobStore(settings.blob_path)


@app.task(
    name=TASK_PROCESS_PAGE,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # The database briefly unreachable or locked (Store raises DatabaseUnavailable for
    # those; a raw OperationalError can still come from, say, a PostgreSQL deadlock).
    autoretry_for=(DatabaseUnavailable, OperationalError),
    retry_backoff=True,
    max_retries=5,
)
def process_page(self: Task, job_id: str, page_id: int) -> None:
    """Process one page of one job (each page of a batch is its own task)."""
    settings, store, blobs = _context()
    work = worker.claim(store, blobs, settings, job_id, page_id, self.request.hostname)
    if work is not None:
        result = worker.run(store, work, timeouts=(SoftTimeLimitExceeded,))
        worker.record(store, blobs, work, result)
