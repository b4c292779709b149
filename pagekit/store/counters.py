"""A job's page counters, kept in its row so ``status()`` costs one read at any size.

Every change of a job page's state is a conditional UPDATE that names the state it moves
from; its row count is then added to the job's counters by :func:`moved`, in the same
transaction. So the counters and the ``job_pages`` rows commit together or not at all,
and a redelivered message, a cancel or a recovery that finds nothing to move adds
nothing. The job row is always updated after its pages (never before), so transactions
take their locks in one order and PostgreSQL cannot deadlock on them.

"queued" is not stored: it is ``total`` minus the other four.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update

from ..contract import FINISHED, PageState
from . import Job, JobPage

COUNTED = (PageState.PROCESSING, *FINISHED)


def moved(s: Any, job_id: str, n: int, src: str | None, dst: str | None) -> int:
    """Record that ``n`` of the job's pages went from ``src`` to ``dst`` (None: the
    queued state, which is not stored, or a page deleted). Returns ``n``."""
    if n and src != dst:
        values = {}
        if src in COUNTED:
            values[src] = getattr(Job, src) - n
        if dst in COUNTED:
            values[dst] = getattr(Job, dst) + n
        if values:
            s.connection().execute(update(Job).where(Job.id == job_id).values(**values))
    return n


def kept(job: Job) -> bool:
    """Whether the job keeps counters (NULL: a job made by an older pagekit)."""
    return all(getattr(job, state) is not None for state in COUNTED)


def read(s: Any, job: Job) -> dict[str, int]:
    """The job's pages by state, every state present: from its counters, or counted from
    ``job_pages`` for a job made by an older pagekit (its counters are NULL)."""
    stored = {state: getattr(job, state) for state in COUNTED}
    if not kept(job):
        rows = s.execute(
            select(JobPage.state, func.count())
            .where(JobPage.job_id == job.id)
            .group_by(JobPage.state)
        ).all()
        stored = dict.fromkeys(COUNTED, 0) | {state: n for state, n in rows if state in COUNTED}
    queued = job.total - sum(stored.values())
    return {PageState.QUEUED: queued, **stored}


def may_have_queued() -> Any:
    """SQL condition on ``jobs``: its counters leave pages queued, or it keeps none (a job
    of an older pagekit). The few jobs worth looking in for queued pages."""
    return or_(
        *(getattr(Job, state).is_(None) for state in COUNTED),
        Job.total > sum(getattr(Job, state) for state in COUNTED),
    )
