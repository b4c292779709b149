"""The queries behind results, exports and the HTML report.

Every function takes a :class:`~pagekit.store.Store` first. Page rows are read with
keyset pagination (``after`` = the last page number seen), so a caller streams a project
of any size in constant memory; the aggregates run in SQL and load no text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from ..contract import ACTIVE, FINISHED, RESULT_COLUMNS, PageState
from . import Job, JobPage, Page, Store, counters, page_filter

# Rows fetched per round trip when a query is streamed.
YIELD_PER = 5000


def page_chunk(q: Select, *, after: int | None, limit: int) -> Select:
    """``q`` (a query on ``Page``) as one chunk of keyset pagination: up to ``limit`` rows
    in page order, with page numbers above ``after`` (None for the first chunk)."""
    q = q.order_by(Page.page_number).limit(limit)
    return q if after is None else q.where(Page.page_number > after)


def result_row(p: Page) -> dict[str, Any]:
    """One page's result: the keys of ``contract.RESULT_COLUMNS``, and ``extra`` (the custom
    steps' outputs by step name, as stored; ``pagekit.reports`` flattens it)."""
    timings = p.timings or {}
    return {
        "page_id": p.id,
        "page_number": p.page_number,
        "source": p.source,
        "source_index": p.source_index,
        "status": p.status,
        "text": p.text,
        "confidence": p.confidence,
        "words": p.words,
        "chars": p.chars,
        "engine": p.engine,
        "language": p.language,
        "text_source": p.text_source,
        "text_source_reason": p.text_source_reason,
        "rotation": p.rotation,
        "skew": p.skew,
        "width": p.width,
        "height": p.height,
        "seconds": timings.get("total"),
        "needs_review": p.needs_review,
        "review_reason": p.review_reason,
        "error": p.error,
        "job_id": p.job_id,
        "worker": p.worker,
        "finished_at": p.finished_at,
        "extra": p.extra,
    }


def _result_column(name: str) -> Any:
    if name == "page_id":
        return Page.id.label(name)
    if name == "seconds":  # read in SQL: no page's timings are decoded
        return Page.timings["total"].as_float().label(name)
    return getattr(Page, name)


# What result_row() makes, read as columns: RESULT_COLUMNS by name, then ``extra``.
_RESULT_SELECT = [*(_result_column(name) for name in RESULT_COLUMNS), Page.extra]


def result_rows(
    store: Store,
    project_id: int,
    *,
    after: int | None = None,
    limit: int = 500,
    needs_review: bool | None = None,
    states: list[PageState] | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Up to ``limit`` result rows (as :func:`result_row` makes them) with page numbers
    above ``after``, in page order, the first ``offset`` of them skipped; ``states`` and
    ``needs_review`` keep the pages in those states, flagged (True) or not (False)."""
    q = select(*_RESULT_SELECT).where(*page_filter(project_id, states, needs_review))
    q = page_chunk(q, after=after, limit=limit)
    if offset:
        q = q.offset(offset)
    with store.read() as s:  # rows, not Page objects: a chunk of 500 costs no ORM upkeep
        result = s.connection().execute(q)
        keys = list(result.keys())
        return [dict(zip(keys, row, strict=True)) for row in result.all()]


def iter_extras(
    store: Store, project_id: int, *, needs_review: bool | None = None
) -> Iterator[dict[str, Any]]:
    """The custom steps' outputs (``Page.extra``) of every page that has some (streamed;
    no text is read): what an export reads first to know its step columns."""
    where = page_filter(project_id, needs_review=needs_review)
    q = select(Page.extra).where(*where).order_by(Page.page_number)
    with store.read() as s:
        for extra in s.scalars(q).yield_per(YIELD_PER):
            if extra:  # NULL, JSON null or {}: a page no step has written to
                yield extra


def last_page_number(store: Store, project_id: int) -> int:
    """The highest page number in the project (0 when it has no pages)."""
    with store.read() as s:
        top = s.scalar(select(func.max(Page.page_number)).where(Page.project_id == project_id))
    return int(top or 0)


# -- jobs -------------------------------------------------------------------------------------


@dataclass
class JobStats:
    """A job with its pages counted by state, and when its first page started and last ended."""

    job: Job
    counts: dict[str, int]
    started_at: datetime | None
    finished_at: datetime | None


def job_stats(
    store: Store, project_id: int | None = None, job_id: str | None = None
) -> list[JobStats]:
    """Every job (of one project, or all; or the one ``job_id``), newest first; two queries
    whatever the count.

    Counts are the job's counters (:mod:`pagekit.store.counters`), which also count the
    pages a cancel took unclaimed (no job row); an older pagekit's job is counted from
    its rows. Its end is its last page's end, or its cancel if later."""
    jobs = select(Job).order_by(Job.created_at.desc())
    agg = (
        select(
            JobPage.job_id,
            JobPage.state,
            func.count(),
            func.min(JobPage.started_at),
            func.max(JobPage.finished_at),
        )
        .join(Job, Job.id == JobPage.job_id)
        .group_by(JobPage.job_id, JobPage.state)
    )
    if project_id is not None:
        jobs = jobs.where(Job.project_id == project_id)
        agg = agg.where(Job.project_id == project_id)
    if job_id is not None:
        jobs = jobs.where(Job.id == job_id)
        agg = agg.where(JobPage.job_id == job_id)
    with store.read() as s:
        out = {
            job.id: JobStats(
                job,
                counters.read(s, job)
                if counters.kept(job)
                else dict.fromkeys((*ACTIVE, *FINISHED), 0),
                None,
                job.cancelled_at,  # or its last page's end, if later
            )
            for job in s.scalars(jobs)
        }
        for job_id, state, n, started, finished in s.execute(agg):
            stats = out.get(job_id)
            if stats is None:  # a job created between the two queries
                continue
            if not counters.kept(stats.job):
                stats.counts[state] = n
            if started and (stats.started_at is None or started < stats.started_at):
                stats.started_at = started
            if finished and (stats.finished_at is None or finished > stats.finished_at):
                stats.finished_at = finished
    return list(out.values())


# -- the HTML report --------------------------------------------------------------------------


@dataclass
class Totals:
    """Sums over a project's completed pages, and when processing ran."""

    words: int
    chars: int
    mean_confidence: float | None
    engines: list[tuple[str, int]]  # (engine, pages), most used first
    first_start: datetime | None
    last_finish: datetime | None


def totals(store: Store, project_id: int) -> Totals:
    """Words, characters, mean confidence, engines and the processing span, in SQL."""
    done = (Page.project_id == project_id, Page.status == PageState.COMPLETED)
    with store.read() as s:
        words, chars, mean_conf = s.execute(
            select(func.sum(Page.words), func.sum(Page.chars), func.avg(Page.confidence)).where(
                *done
            )
        ).one()
        engines = s.execute(
            select(Page.engine, func.count())
            .where(Page.project_id == project_id, Page.engine.is_not(None))
            .group_by(Page.engine)
            .order_by(func.count().desc())
        ).all()
        first, last = s.execute(
            select(func.min(JobPage.started_at), func.max(JobPage.finished_at))
            .join(Job, Job.id == JobPage.job_id)
            .where(Job.project_id == project_id)
        ).one()
    return Totals(
        words=int(words or 0),
        chars=int(chars or 0),
        mean_confidence=float(mean_conf) if mean_conf is not None else None,
        engines=[(str(e), int(n)) for e, n in engines],
        first_start=first,
        last_finish=last,
    )


def _finished(project_id: int) -> Any:
    return (
        select(JobPage.finished_at, JobPage.state)
        .join(Job, Job.id == JobPage.job_id)
        .where(
            Job.project_id == project_id,
            JobPage.state.in_((PageState.COMPLETED, PageState.FAILED)),
            JobPage.finished_at.is_not(None),
        )
    )


def finished_span(store: Store, project_id: int) -> tuple[datetime | None, datetime | None]:
    """When the first and the last page of the project's jobs completed or failed."""
    sub = _finished(project_id).subquery()
    with store.read() as s:
        lo, hi = s.execute(select(func.min(sub.c.finished_at), func.max(sub.c.finished_at))).one()
    return lo, hi


def iter_finished(store: Store, project_id: int) -> Iterator[tuple[datetime, str]]:
    """``(finished_at, state)`` of every job page that completed or failed (streamed)."""
    with store.read() as s:
        yield from s.execute(_finished(project_id)).yield_per(YIELD_PER)  # rows are tuples


def iter_confidences(store: Store, project_id: int) -> Iterator[float]:
    """The OCR confidence of every completed page that has one (streamed)."""
    q = select(Page.confidence).where(
        Page.project_id == project_id,
        Page.status == PageState.COMPLETED,
        Page.confidence.is_not(None),
    )
    with store.read() as s:
        yield from s.scalars(q).yield_per(YIELD_PER)


def lowest_confidence(store: Store, project_id: int, limit: int = 10) -> list[dict[str, Any]]:
    """The completed pages with the lowest OCR confidence, lowest first."""
    q = (
        select(
            Page.id.label("page_id"), Page.page_number, Page.source, Page.confidence, Page.words
        )  # fmt: skip
        .where(
            Page.project_id == project_id,
            Page.status == PageState.COMPLETED,
            Page.confidence.is_not(None),
        )
        .order_by(Page.confidence, Page.page_number)
        .limit(limit)
    )
    with store.read() as s:
        return [dict(r._mapping) for r in s.execute(q)]


def failed_pages(store: Store, project_id: int, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` failed pages: number, source, error, job and thumbnail key."""
    q = (
        select(Page.page_number, Page.source, Page.error, Page.job_id, Page.thumbnail)
        .where(Page.project_id == project_id, Page.status == PageState.FAILED)
        .order_by(Page.page_number)
        .limit(limit)
    )
    with store.read() as s:
        return [dict(r._mapping) for r in s.execute(q)]


def review_pages(store: Store, project_id: int, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` pages flagged for review: number, source, confidence, reason,
    thumbnail key."""
    q = (
        select(
            Page.page_number,
            Page.source,
            Page.source_index,
            Page.confidence,
            Page.words,
            Page.text_source,
            Page.review_reason,
            Page.thumbnail,
        )  # fmt: skip
        .where(*page_filter(project_id, needs_review=True))
        .order_by(Page.page_number)
        .limit(limit)
    )
    with store.read() as s:
        return [dict(r._mapping) for r in s.execute(q)]


def report_rows(
    store: Store, project_id: int, *, after: int | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of the report's page table, page numbers above ``after``."""
    q = select(
        Page.page_number,
        Page.source,
        Page.source_index,
        Page.status,
        Page.words,
        Page.confidence,
        Page.engine,
        Page.timings,
        Page.text,
        Page.error,
        Page.thumbnail,
        Page.needs_review,
        Page.review_reason,
        Page.extra,
    ).where(Page.project_id == project_id)
    with store.read() as s:
        return [dict(r._mapping) for r in s.execute(page_chunk(q, after=after, limit=limit))]
