"""The worker side of the job contract: claim, heartbeat, exactly-once finish, recovery.

Every state change is one conditional UPDATE and its row count is the answer, so two
workers, a redelivered message, a cancel and a recovery can race in any order, on SQLite
and PostgreSQL alike:

- claim: ``queued -> processing`` (or a ``processing`` page whose heartbeat stopped);
- finish: ``queued | processing -> completed | failed | cancelled``, once;
- recover: a held page whose heartbeat stopped goes back to ``queued``.

A page a worker holds (reserved or running) carries a heartbeat written by that worker's
:class:`Watchdog`, a thread in the worker's main process. The same thread re-queues
orphans (pages whose holder stopped beating) at the front of the queue, so recovery
needs no client and no broker timeout.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from .blobs import BlobStore
from .config import Settings
from .contract import (
    PAGES_PER_MESSAGE,
    QUEUES,
    RECOVERY_QUEUE,
    TASK_DISPATCH,
    TASK_PROCESS_PAGE,
    TASK_PROCESS_PAGES,
    OcrMode,
    PageState,
)
from .processing import Cancelled, PageInput, PageResult, images, pdf, process_page
from .store import Store, utcnow
from .store import workers as rows

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)


@dataclass
class PageWork:
    """What a task needs to process one page."""

    job_id: str
    page_id: int
    input: PageInput


# -- claim ---------------------------------------------------------------------------------


def _stale(settings: Settings, now: datetime) -> datetime:
    return now - timedelta(seconds=settings.heartbeat_timeout)


def claim(
    store: Store, blobs: BlobStore, settings: Settings, job_id: str, page_id: int, worker: str
) -> PageWork | None:
    """Claim a page for processing; None when another delivery has it or it is finished."""
    works = claim_group(store, blobs, settings, job_id, [page_id], worker)
    return works[0] if works else None


def claim_group(
    store: Store,
    blobs: BlobStore,
    settings: Settings,
    job_id: str,
    page_ids: list[int],
    worker: str,
) -> list[PageWork]:
    """Claim pages of one job in one transaction: the ones this worker now runs, in the
    order given. A page that used up its attempts is failed instead."""
    got = rows.claim_pages(
        store,
        job_id,
        page_ids,
        worker,
        stale_before=_stale(settings, utcnow()),
        max_attempts=settings.max_attempts,
    )
    works = []
    for page_id in page_ids:
        this = got.pop(page_id, None)
        if isinstance(this, rows.OutOfAttempts):
            give_up = gave_up_message(this.attempts, this.last_error, settings)
            finish(store, job_id, page_id, PageState.FAILED, error=give_up)
        elif this is not None:
            works.append(PageWork(job_id, page_id, _input(page_id, this, blobs, settings)))
    return works


def _input(page_id: int, got: rows.Claimed, blobs: BlobStore, settings: Settings) -> PageInput:
    return PageInput(
        page_id=page_id,
        kind=got.kind,
        data=blobs.get(got.blob),
        source=got.label,
        steps=got.steps,
        tessdata=settings.tessdata,
        render_dpi=settings.render_dpi,
        pdf_text_min_chars=settings.pdf_text_min_chars,
        max_image_pixels=settings.max_image_pixels,
        time_limit=settings.page_time_limit,
        memory_mb=settings.page_memory_mb,
        rotate=settings.rotate_pages,
        deskew=settings.deskew,
        **_ocr_options(got, settings),
    )


def _ocr_options(got: rows.Claimed, settings: Settings) -> dict[str, Any]:
    """A page's ``lang``, ``ocr_mode`` and ``review_threshold``: the job's, else the
    project's, else this worker's settings."""
    threshold = got.review_threshold
    return {
        "lang": "+".join(got.languages) if got.languages else settings.ocr_lang,
        "ocr_mode": got.job_ocr_mode or got.ocr_mode or settings.ocr_mode,
        "review_threshold": settings.review_threshold if threshold is None else threshold,
    }


def gave_up_message(attempts: int, last_error: str | None, settings: Settings) -> str:
    """Why a page that kept losing its worker is failed, saying only what is known."""
    why = last_error or "the worker process stopped before it finished the page"
    if "time limit" in why:
        fix = "raise PAGEKIT_PAGE_TIME_LIMIT on the workers, or split the page"
    else:
        fix = (
            "if the system killed it for memory (see `dmesg` or the worker log), give the "
            "workers more memory or split the page"
        )
    return f"gave up after {attempts} attempts: {why}; {fix}"


# -- run and finish ------------------------------------------------------------------------


def stopper(store: Store, job_id: str) -> Callable[[], bool]:
    """True once the job is cancelled. The claim has just checked; this looks again at
    most once a second, so a cancel lands within a second without a query before every
    step of every page."""
    checked = [time.monotonic(), False]

    def should_stop() -> bool:
        if not checked[1] and time.monotonic() - checked[0] >= 1.0:
            checked[:] = [time.monotonic(), rows.cancel_requested(store, job_id)]
        return bool(checked[1])

    return should_stop


def run(
    store: Store,
    work: PageWork,
    timeouts: tuple[type[BaseException], ...] = (),
    should_stop: Callable[[], bool] | None = None,
) -> PageResult | None:
    """Process the page, stopping between steps if its job is cancelled."""
    try:
        return process_page(
            work.input, should_stop=should_stop or stopper(store, work.job_id), timeouts=timeouts
        )
    except Cancelled:
        finish(store, work.job_id, work.page_id, PageState.CANCELLED)
        return None


def record(store: Store, blobs: BlobStore, work: PageWork, result: PageResult | None) -> bool:
    """Record a page's result once. Returns False if it was already counted."""
    if result is None:
        return False
    return bool(record_group(store, blobs, work.job_id, [(work, result)]))


def record_group(
    store: Store, blobs: BlobStore, job_id: str, done: list[tuple[PageWork, PageResult]]
) -> set[int]:
    """Record the results of pages of one job once, in one transaction; the pages moved."""
    if not done:
        return set()
    outcomes = []
    for work, result in done:
        thumb = blobs.put(result.thumbnail) if result.thumbnail else None
        outcomes.append(
            rows.Outcome(
                work.page_id,
                PageState.COMPLETED if result.ok else PageState.FAILED,
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
                    "rotation": result.rotation,
                    "skew": result.skew,
                    "text_source": result.text_source,
                    "text_source_reason": result.text_source_reason,
                    "needs_review": result.needs_review,
                    "review_reason": result.review_reason,
                },
                layout=result.layout,
            )
        )
    return rows.finish_pages(store, job_id, outcomes)


# -- a chunk of pages in one task -----------------------------------------------------------

# A big job's pages travel PAGES_PER_MESSAGE to a message (pagekit.jobs.dispatch), so a
# page that takes milliseconds (a PDF page with a text layer) does not pay a broker round
# trip and two transactions of its own. The worker claims them in groups that grow from
# one page while pages are quick, and records each group in one transaction. A page
# slower than SLOW_PAGE (OCR) sends the chunk's pages not yet started back to the queue as
# tasks of their own, so slow pages spread over every worker process as before; so does a
# chunk still going after CHUNK_BUDGET seconds.
SLOW_PAGE = 0.25
CHUNK_BUDGET = 2.0
# The latest a page of a chunk can start: a group begun just before the budget ran out,
# of pages each just under SLOW_PAGE. The chunk task's time limits add it.
CHUNK_LATEST_START = CHUNK_BUDGET + PAGES_PER_MESSAGE * SLOW_PAGE


# CPU seconds the PDFium helper may spend reading a group's text layers in one call; a
# page that needs more is read again on its own, under the per-page limit.
READ_AHEAD_CPU = 10


def read_ahead(works: list[PageWork]) -> None:
    """Read the text layers (and thumbnails) of a group's PDF pages in one call to the
    PDFium helper instead of one call each; a page that needs OCR, or that the helper
    failed on, is left to be read on its own as before."""
    pdfs = [w for w in works if w.input.kind == "pdf" and w.input.ocr_mode != OcrMode.FORCE]
    if len(pdfs) < 2:
        return
    first = pdfs[0].input
    started = time.perf_counter()
    reads = pdf.text_layer_pages(
        [(w.input.data, w.input.source) for w in pdfs],
        memory_mb=first.memory_mb,
        time_limit=min(first.time_limit or READ_AHEAD_CPU, READ_AHEAD_CPU),
        mode=first.ocr_mode,
        min_chars=first.pdf_text_min_chars,
        thumb_size=images.THUMBNAIL_SIZE,
    )
    share = round((time.perf_counter() - started) / len(pdfs), 4)
    for work, read in zip(pdfs, reads, strict=True):
        if read is not None:
            read.timings["pdfium"] = share
            work.input = replace(work.input, pdf_read=read)


def run_chunk(
    store: Store,
    blobs: BlobStore,
    settings: Settings,
    app: Celery,
    job_id: str,
    page_ids: list[int],
    worker: str,
    timeouts: tuple[type[BaseException], ...] = (),
) -> int:
    """Process a chunk of one job's pages (see :data:`PAGES_PER_MESSAGE`); how many were
    recorded here. Exactly once holds page by page: each claim and finish is the same
    conditional UPDATE a single page's task makes."""
    from .jobs import send

    started = time.monotonic()
    should_stop = stopper(store, job_id)
    todo, size, recorded = list(page_ids), _group_sizes.get(job_id, 1), 0
    while todo and time.monotonic() - started < CHUNK_BUDGET:
        group, todo = todo[:size], todo[size:]
        works = claim_group(store, blobs, settings, job_id, group, worker)
        read_ahead(works)
        done: list[tuple[PageWork, PageResult]] = []
        for i, work in enumerate(works):
            began = time.monotonic()
            result = run(store, work, timeouts, should_stop)
            if result is not None:
                done.append((work, result))
            if time.monotonic() - began > SLOW_PAGE:
                # Hand back the pages this group claimed and has not started.
                left = [w.page_id for w in works[i + 1 :]]
                todo = rows.release_pages(store, job_id, left, worker) + todo
                size = 0
                break
        recorded += len(record_group(store, blobs, job_id, done))
        if not size:
            break
        size = min(2 * size, PAGES_PER_MESSAGE)
    # The job's next chunk in this process starts where this one got to.
    _group_sizes.pop(job_id, None)
    _group_sizes[job_id] = max(size, 1)
    while len(_group_sizes) > 100:
        del _group_sizes[next(iter(_group_sizes))]
    if todo:
        send(app, job_id, todo, queue=RECOVERY_QUEUE)
    return recorded


# job id -> the group size its last chunk in this process reached (the newest 100 jobs)
_group_sizes: dict[str, int] = {}


# Move a job page to a finished state exactly once (idempotent); False if it already was.
finish = rows.finish_page


# -- heartbeats and recovery -----------------------------------------------------------------


# Record that a worker is alive and still holds its pages; a worker that stops cleanly
# says goodbye (so `wait()` knows it is gone).
beat = rows.beat
forget_worker = rows.forget_worker


def live_workers(store: Store, within: float) -> list[str]:
    """Names of workers that sent a heartbeat in the last ``within`` seconds."""
    return rows.live_workers(store, utcnow() - timedelta(seconds=within))


def orphans(store: Store, settings: Settings) -> list[dict[str, Any]]:
    """Active job pages whose holder stopped sending heartbeats, oldest first."""
    return rows.orphan_rows(store, _stale(settings, utcnow()))


# Rows a watchdog round moves at most (each is a transaction of its own), so a round stays
# short and the worker's heartbeat is never late; the oldest go first, the rest next round.
RECOVER_BATCH = 200


class Lost(NamedTuple):
    """What a lost message left behind (:func:`lost`)."""

    pages: list[dict[str, Any]]  # queued pages nobody ever held
    dispatches: list[tuple[str, int]]  # reservations nobody claims: (job id, next position)


def lost(store: Store, app: Celery, settings: Settings) -> Lost:
    """Work whose message is gone, older than the heartbeat timeout, found only while the
    broker's queues are empty (one look at them for both):

    - queued pages nobody ever held: their message was lost (a broker that died before
      writing it to disk, or a client that died between commit and send);
    - big jobs whose reserved pages nobody is claiming: their dispatch message was lost.
      The watchdog acts on one only when a later round finds it at the same position (a
      dispatcher at work moves it on).
    """
    if queue_depth(app):  # messages still waiting: nothing is known to be lost yet
        return Lost([], [])
    stale = _stale(settings, utcnow())
    return Lost(
        rows.never_held(store, stale, RECOVER_BATCH), rows.stalled_reservations(store, stale)
    )


def redispatch(app: Celery, job_ids: Iterable[str]) -> None:
    """Send a big job's dispatch message again (its pages are claimed once whatever
    number of dispatchers run: :func:`pagekit.store.jobs.claim_reserved`)."""
    for job_id in job_ids:
        app.send_task(TASK_DISPATCH, args=[job_id], queue=RECOVERY_QUEUE)
        log.warning(
            "job %s: its pages were reserved and nobody claimed them; dispatching again", job_id
        )


def recover(
    store: Store,
    app: Celery,
    settings: Settings,
    *,
    lost: Iterable[dict[str, Any]] = (),
    mine: tuple[str, Iterable[tuple[str, int]]] | None = None,
) -> list[tuple[str, int]]:
    """Re-queue orphaned pages at the front of the queue; returns the pairs re-sent.

    ``lost`` adds rows from :func:`lost` (its ``pages``). ``mine=(worker, held)`` adds pages that
    ``worker`` marked as its own but no longer holds: its pool lost the process running
    them, so they need not wait for the heartbeat timeout. A page that used up its
    attempts is failed with what is known about why. Each row moves in its own
    conditional UPDATE, so several workers recovering at once re-send every page once.
    """
    from .jobs import send

    now = utcnow()
    held: set[tuple[str, int]] = set()
    dropped_by = beat_before = None
    if mine is not None:
        dropped_by, held = mine[0], set(mine[1])
        beat_before = now - timedelta(seconds=2 * settings.heartbeat_interval)
    found = rows.orphan_rows(
        store,
        _stale(settings, now),
        dropped_by=dropped_by,
        beat_before=beat_before,
        limit=RECOVER_BATCH,
    )
    candidates = [r for r in found if _key(r) not in held] + list(lost)
    moved: list[tuple[str, int]] = []
    failed = 0
    seen: set[tuple[str, int]] = set()
    for row in candidates:
        key = _key(row)
        if key in seen:
            continue
        seen.add(key)
        running = row["state"] == PageState.PROCESSING
        note = _lost_note(row, settings, now) if running else None
        if running and row["attempts"] >= settings.max_attempts:
            error = gave_up_message(row["attempts"], note, settings)
            failed += rows.give_up(store, row, note, error)
        elif rows.requeue(store, row, note):
            moved.append(key)
    by_job: dict[str, list[int]] = {}
    for job_id, page_id in moved:
        by_job.setdefault(job_id, []).append(page_id)
    for job_id, pids in by_job.items():
        log.warning("re-queueing %d orphaned page(s) of task %s", len(pids), job_id)
        send(app, job_id, pids, queue=RECOVERY_QUEUE)
    if failed:
        log.warning("failed %d page(s) that used up their attempts", failed)
    return moved


def _key(row: dict[str, Any]) -> tuple[str, int]:
    return row["job_id"], row["page_id"]


def _lost_note(row: dict[str, Any], settings: Settings, now: datetime) -> str:
    """What is known about a processing page whose worker stopped."""
    started = row["started_at"] or row["queued_at"]
    last = row["heartbeat_at"] or started
    ran = max(0.0, (last - started).total_seconds())
    who = f"worker {row['worker']}" if row["worker"] else "its worker"
    if ran + settings.heartbeat_timeout >= settings.page_time_limit:
        return (
            f"{who} ran it for {ran:.0f} s and was stopped at the time limit of "
            f"{settings.page_time_limit} s (PAGEKIT_PAGE_TIME_LIMIT)"
        )
    return (
        f"{who} stopped after {ran:.0f} s without finishing it (its process was killed: "
        "out of memory, a crash in a library, or stopped by hand)"
    )


# Held by the watchdog's rounds; a fork of this process waits for it. The worker's main
# process forks a pool process (to replace one that died) at any moment, and a child
# forked while the watchdog is inside a SQLite transaction inherits SQLite's in-process
# lock bookkeeping of it: that child then finds the database locked for ever.
_ROUND = threading.Lock()
os.register_at_fork(
    before=_ROUND.acquire, after_in_parent=_ROUND.release, after_in_child=_ROUND.release
)


class Watchdog(threading.Thread):
    """A worker's heartbeat and recovery loop, in the worker's main process.

    Every ``heartbeat_interval`` seconds it marks the pages this worker holds (reserved
    and running), re-queues orphans at the front of the queue, and every few rounds
    looks for queued pages whose message the broker lost.
    """

    def __init__(self, app: Celery, settings: Settings, name: str, concurrency: int | None):
        super().__init__(name="pagekit-watchdog", daemon=True)
        self.app = app
        self.settings = settings
        self.worker = name
        self.concurrency = concurrency
        self.store = Store(settings.db_url)
        self._stop_event = threading.Event()
        self._suspects: set[tuple[str, int]] = set()
        self._stalled: set[tuple[str, int]] = set()  # reservations, as lost() saw them

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        rounds = 0
        while not self._stop_event.is_set():
            try:
                with _ROUND:
                    self.tick(lost_check=rounds % 3 == 0)
            except Exception:  # a database or broker hiccup: try again next round
                log.exception("pagekit watchdog round failed")
            rounds += 1
            self._stop_event.wait(self.settings.heartbeat_interval)
        try:
            forget_worker(self.store, self.worker)
        except Exception:
            log.exception("could not unregister worker %s", self.worker)

    def tick(self, *, lost_check: bool = True) -> list[tuple[str, int]]:
        held = held_pages()
        beat(self.store, self.worker, held, pid=os.getpid(), concurrency=self.concurrency)
        pages: list[dict[str, Any]] = []
        if lost_check:
            # Seen twice in a row: a message in flight is not taken for lost.
            found = lost(self.store, self.app, self.settings)
            pages = [r for r in found.pages if _key(r) in self._suspects]
            redispatch(
                self.app, [job for job, at in found.dispatches if (job, at) in self._stalled]
            )
            self._suspects = {_key(r) for r in found.pages}
            self._stalled = set(found.dispatches)
        return recover(self.store, self.app, self.settings, lost=pages, mine=(self.worker, held))


def held_pages() -> list[tuple[str, int]]:
    """(job_id, page_id) of every page task this worker process has reserved or runs."""
    from celery.worker import state

    for _ in range(5):  # the sets change under us while the worker runs: copy, retry
        try:
            requests = list(state.reserved_requests) + list(state.active_requests)
            break
        except RuntimeError:
            time.sleep(0.01)
    else:
        return []
    out = []
    for req in requests:
        try:
            if req.task_name == TASK_PROCESS_PAGE:
                job_id, page_id = req.args[:2]
                out.append((str(job_id), int(page_id)))
            elif req.task_name == TASK_PROCESS_PAGES:
                job_id, page_ids = req.args[:2]
                out.extend((str(job_id), int(pid)) for pid in page_ids)
        except (TypeError, ValueError, AttributeError):
            continue
    return sorted(set(out))


def queue_depth(app: Celery) -> int:
    """Messages waiting (not yet delivered) in pagekit's queues on the broker."""
    from kombu.exceptions import ChannelError

    total = 0
    with app.connection_for_read() as conn:
        for queue in QUEUES:
            # A channel per queue: on AMQP a failed passive declare closes its channel.
            with conn.channel() as channel:
                try:
                    _, count, _ = channel.queue_declare(queue=queue, passive=True)
                except ChannelError:  # never declared: nothing was ever queued there
                    continue
            total += int(count)
    return total
