"""The job contract: the names and JSON shapes every part of pagekit shares.

Notebooks, widgets, the CLI, the HTTP API and workers on other hosts must agree on
these, so they are declared once, here, with the standard library only (docs/design.md,
"The job contract"). A state is a ``str`` subclass: it compares equal to, and
serializes as, its plain value (``PageState.PENDING == "pending"``).
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Literal, TypedDict

if sys.version_info >= (3, 11):
    from enum import StrEnum
    from typing import NotRequired
else:  # pragma: no cover - Python 3.10

    class StrEnum(str, Enum):
        """``enum.StrEnum`` for Python 3.10: formats and prints as its value."""

        __str__ = str.__str__
        __format__ = str.__format__

    from typing_extensions import NotRequired

# -- queues and tasks --------------------------------------------------------------------

# Pages queued by a client.
QUEUE = "pagekit"
# Orphaned pages re-queued by the workers' watchdogs. Workers consume both queues and
# Celery's Redis transport rotates a queue that just delivered to the back, so a page in
# this queue is taken next, ahead of a long main queue.
RECOVERY_QUEUE = "pagekit.requeued"
QUEUES = (QUEUE, RECOVERY_QUEUE)

TASK_PROCESS_PAGE = "pagekit.process_page"
# Several pages of one job in one message (args: job id, page ids): how a big job's pages
# travel, so a page that takes milliseconds does not pay a message of its own.
TASK_PROCESS_PAGES = "pagekit.process_pages"
PAGES_PER_MESSAGE = 32  # pages a TASK_PROCESS_PAGES message names at most
# Sends the page tasks of a big job, on a worker, so the caller need not (pagekit.jobs).
TASK_DISPATCH = "pagekit.dispatch_job"


# -- states ------------------------------------------------------------------------------


class PageState(StrEnum):
    """Where a page is: ``pending`` until first queued, then queued → processing → final."""

    PENDING = "pending"
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobState(StrEnum):
    """A job's state, derived from its pages' counts (see :func:`pagekit.jobs.job_state`)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OcrMode(StrEnum):
    """How a page gets its text (a project's, or one batch's)."""

    AUTO = "auto"  # a PDF text layer that passes the sanity check, else render and OCR
    FORCE = "force"  # always render and OCR
    TEXT_ONLY = "text-only"  # never OCR: the text layer, or no text


class TextSource(StrEnum):
    """Where a processed page's text came from (``Page.text_source``; "" for none)."""

    OCR = "ocr"
    TEXT_LAYER = "text-layer"


OCR_MODES: tuple[OcrMode, ...] = tuple(OcrMode)
PAGE_STATES: tuple[PageState, ...] = tuple(PageState)
# A page in one of these belongs to a running job: it cannot be queued again.
ACTIVE: tuple[PageState, ...] = (PageState.QUEUED, PageState.PROCESSING)
# A page's outcome in a job.
FINISHED: tuple[PageState, ...] = (PageState.COMPLETED, PageState.FAILED, PageState.CANCELLED)
# What "retry failed" queues again.
RETRYABLE: tuple[PageState, ...] = (PageState.FAILED, PageState.CANCELLED)
RUNNING_JOB: tuple[JobState, ...] = (JobState.QUEUED, JobState.PROCESSING)

# -- columns -----------------------------------------------------------------------------

# One row of ``Client.pages()`` / ``GET /projects/{p}/pages`` / ``pagekit pages``.
PAGE_COLUMNS: tuple[str, ...] = (
    "page_id",
    "page_number",
    "source",
    "source_index",
    "kind",
    "status",
    "words",
    "chars",
    "confidence",
    "engine",
    "text_source",
    "rotation",
    "skew",
    "needs_review",
    "review_reason",
    "error",
    "job_id",
    "worker",
    "created_at",
    "started_at",
    "finished_at",
)
# The columns ``pagekit pages`` prints (a subset of PAGE_COLUMNS).
PAGE_SUMMARY_COLUMNS: tuple[str, ...] = (
    "page_id",
    "page_number",
    "source",
    "status",
    "words",
    "confidence",
    "needs_review",
    "error",
)
# ``pagekit pages --needs-review``: the flagged pages and why (a subset of PAGE_COLUMNS).
REVIEW_SUMMARY_COLUMNS: tuple[str, ...] = (
    "page_id",
    "page_number",
    "source",
    "words",
    "confidence",
    "text_source",
    "review_reason",
)
# The table ``make demo`` prints.
DEMO_COLUMNS: tuple[str, ...] = (
    "page_number",
    "source",
    "status",
    "words",
    "confidence",
    "engine",
)
# One row of the manifest.csv in a text zip export.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "page_number",
    "file",
    "source",
    "status",
    "words",
    "confidence",
    "text_source",
    "needs_review",
    "review_reason",
    "error",
)
# One row of ``Client.results()`` and of every export; after these come the custom steps'
# outputs, flattened to ``extra.<step>.<key>`` columns (see ``pagekit.reports``).
RESULT_COLUMNS: tuple[str, ...] = (
    "page_id",
    "page_number",
    "source",
    "source_index",
    "status",
    "text",
    "confidence",
    "words",
    "chars",
    "engine",
    "language",
    "text_source",
    "text_source_reason",
    "rotation",
    "skew",
    "width",
    "height",
    "seconds",
    "needs_review",
    "review_reason",
    "error",
    "job_id",
    "worker",
    "finished_at",
)
# The prefix of those step columns: ``extra.upper_words.count``.
EXTRA_PREFIX = "extra."

# One match of ``Client.search(q, project=p)`` / ``GET /projects/{p}/search`` / ``pagekit
# search``, best first: ``score`` (higher is better, comparable within one search only),
# ``snippet`` plain text with matches in [ ], ``snippet_html`` escaped with <mark>s.
SEARCH_COLUMNS: tuple[str, ...] = (
    "page_id",
    "page_number",
    "source",
    "status",
    "confidence",
    "score",
    "snippet",
    "snippet_html",
)
# ``Client.search(q)`` over every project: the same, after the project of each page.
SEARCH_ALL_COLUMNS: tuple[str, ...] = ("project_id", "project", *SEARCH_COLUMNS)
# The columns ``pagekit search`` prints (a subset of SEARCH_COLUMNS).
SEARCH_SUMMARY_COLUMNS: tuple[str, ...] = (
    "page_number",
    "source",
    "status",
    "confidence",
    "snippet",
)


# One row of ``Client.jobs()``: a job with its pages counted by outcome.
JOB_COLUMNS: tuple[str, ...] = (
    "task_id",
    "project_id",
    "kind",
    "status",
    "total",
    *(state.value for state in FINISHED),
    "created_at",
    "started_at",
    "finished_at",
    "duration_s",
    "pages_per_min",
)

# The OCR options a project may set (``Client.create_project``, ``set_project_options``),
# each None for the installation's default; the last columns of ``Client.projects()``.
PROJECT_OPTIONS: tuple[str, ...] = ("languages", "ocr_mode", "review_threshold")

# Export formats (``Client.export``, ``pagekit export --format``) and the report's page cap.
EXPORT_FORMATS: tuple[str, ...] = (
    "csv", "jsonl", "parquet", "xlsx", "zip", "pdf", "hocr", "alto"
)  # fmt: skip
REPORT_MAX_PAGES = 1000


# -- response shapes ---------------------------------------------------------------------


class PageQueued(TypedDict):
    """``process_page`` / ``POST /process/{page_id}``."""

    task_id: str
    status: Literal["queued"]
    page_id: int
    page_number: int


class BatchQueued(TypedDict):
    """``process_batch``, ``process_pending``, ``retry_failed`` / ``POST /process-batch``."""

    task_id: str
    status: Literal["queued"]
    total_pages: int
    page_ids: list[int]


class PageOutcome(TypedDict):
    """One page of a finished job's ``result.results``."""

    page_id: int
    page_number: int
    status: str
    words: int | None
    confidence: float | None
    error: str | None


class JobResult(TypedDict):
    """A finished job's ``result``; ``cancelled`` is there only when the job was cancelled."""

    total: int
    completed: int
    failed: int
    cancelled: NotRequired[int]
    results: list[PageOutcome]


class StatusRunning(TypedDict):
    """``status(task_id)`` while the job runs: "Processing page {current}/{total}..."."""

    task_id: str
    status: Literal["queued", "processing"]
    current: int
    total: int


class StatusFinished(TypedDict):
    """``status(task_id)`` once every page is final."""

    task_id: str
    status: Literal["completed", "failed", "cancelled"]
    result: JobResult


Status = StatusRunning | StatusFinished


class CancelRunning(StatusRunning):
    """``cancel(task_id)`` / ``POST /cancel/{task_id}`` while pages still run."""

    cancelled_pages: int


class CancelFinished(StatusFinished):
    """``cancel(task_id)`` once the job is final (pages cancelled by this call counted)."""

    cancelled_pages: int


CancelReply = CancelRunning | CancelFinished


class PagesDeleted(TypedDict):
    """``delete_pages(project, page_ids)``: the pages deleted, and how many stored files
    (page bytes and thumbnails no other page names) were removed with them."""

    project_id: int
    deleted: int
    page_ids: list[int]
    blobs_removed: int


class ProjectDeleted(TypedDict):
    """``delete_project(project)``: the project, its pages deleted, stored files removed."""

    project_id: int
    name: str
    deleted: int
    blobs_removed: int
