"""Deleting pages and projects, and then the stored bytes that no page names any more.

A page is deleted only while it is neither queued nor processing, nor reserved by a big
job a worker has yet to claim. The check and the DELETE are one transaction that first
takes the project's row lock (adds and new jobs take it too), and the DELETE is itself
conditional, so a concurrent "Process All Pending" either claimed or reserved the page
first (the delete is refused) or finds it gone, on PostgreSQL as on SQLite.

A job that counted deleted pages keeps its other pages: its ``total`` shrinks by the
pages deleted, and a job left with no page at all is deleted with them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import partial
from itertools import islice
from typing import Any

from sqlalchemy import delete, exists, func, select, update

from ..contract import ACTIVE, PageState
from ..errors import NoSuchPage, NoSuchProject, PageInUse
from . import Job, JobPage, Page, PageLayout, Project, Store, counters, lock_blob_keys
from .jobs import refuse_reserved, reservations

CHUNK = 500  # ids or keys per statement: a bounded statement size on every database

# The page in the outer statement is held by a job (a job page queued or processing).
_HELD = exists().where(JobPage.page_id == Page.id, JobPage.state.in_(ACTIVE))


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for at in range(0, len(values), CHUNK):
        yield values[at : at + CHUNK]


def _lock_project(s: Any, project_id: int) -> str:
    """Lock the project row until commit (SQLite: the write lock already does); its name."""
    name = s.scalar(select(Project.name).where(Project.id == project_id).with_for_update())
    if name is None:
        raise NoSuchProject(project_id)
    return str(name)


def _delete_rows(s: Any, where: Any) -> int:
    """Delete the pages matching ``where`` that no job holds, with their layouts and job
    rows; how many pages went.

    The rows that hang off a page are deleted here rather than left to ON DELETE
    CASCADE, so a database whose tables lack it cannot keep a dangling job row.
    """
    pages = select(Page.id).where(where)
    s.execute(delete(PageLayout).where(PageLayout.page_id.in_(pages)))
    s.execute(
        delete(JobPage).where(JobPage.page_id.in_(pages), JobPage.state.not_in(ACTIVE)),
        execution_options={"synchronize_session": False},
    )
    return int(
        s.execute(
            delete(Page).where(where, Page.status.not_in(ACTIVE), ~_HELD),
            execution_options={"synchronize_session": False},
        ).rowcount
    )


def _refuse_busy(s: Any, where: Any, what: str) -> None:
    """Raise :class:`PageInUse` naming the busy pages (up to 11) and a task holding them."""
    busy = s.execute(
        select(Page.id, Page.page_number, Page.job_id)
        .where(where, Page.status.in_(ACTIVE) | _HELD)
        .order_by(Page.page_number)
        .limit(11)
    ).all()
    if busy:
        task = next((job for *_, job in busy if job), None)
        ids, numbers = [row[0] for row in busy], [row[1] for row in busy]
        raise PageInUse(ids, task, numbers, what)


def delete_pages(store: Store, project_id: int, page_ids: list[int]) -> dict[str, Any]:
    """Delete these pages of the project with their results, layouts and job rows.

    All or nothing: an id not in the project raises :class:`NoSuchPage`, a page queued or
    processing :class:`PageInUse`, and nothing is deleted. Returns ``{"page_ids",
    "blobs", "thumbnails"}``: the ids deleted and the stored keys they named, for
    :func:`remove_unreferenced` once this has committed.
    """
    ids = list(dict.fromkeys(page_ids))
    blobs: set[str] = set()
    thumbnails: set[str] = set()
    with store.write() as s:
        _lock_project(s, project_id)
        found: set[int] = set()
        for chunk in _chunks(ids):
            for pid, blob, thumbnail in s.execute(
                select(Page.id, Page.blob, Page.thumbnail)
                .where(Page.project_id == project_id, Page.id.in_(chunk))
                .with_for_update()
            ):
                found.add(pid)
                blobs.add(blob)
                if thumbnail:
                    thumbnails.add(thumbnail)
        missing = [pid for pid in ids if pid not in found]
        if missing:
            raise NoSuchPage(missing[0], project_id)
        # As good as queued: a job reserved them and a worker has yet to claim them.
        conn = s.connection()
        refuse_reserved(
            conn, reservations(conn, project_id), ids, partial(PageInUse, what="these pages")
        )
        per_job: dict[tuple[str, str], int] = {}
        deleted = 0
        for chunk in _chunks(ids):
            where = (Page.project_id == project_id) & Page.id.in_(chunk)
            _refuse_busy(s, where, "these pages")
            for job_id, state, n in s.execute(
                select(JobPage.job_id, JobPage.state, func.count())
                .where(JobPage.page_id.in_(chunk))
                .group_by(JobPage.job_id, JobPage.state)
            ):
                per_job[job_id, state] = per_job.get((job_id, state), 0) + n
            deleted += _delete_rows(s, where)
        if deleted != len(ids):  # the locks above make this impossible: never half a delete
            raise PageInUse([], None, what="these pages")
        _forget_unclaimed(s, project_id, set(ids), per_job)
        _shrink_jobs(s, per_job)
    return {"page_ids": ids, "blobs": blobs, "thumbnails": thumbnails}


def delete_project(store: Store, project_id: int) -> dict[str, Any]:
    """Delete the project with all its pages, results and jobs; refused with
    :class:`PageInUse` while any of its pages is queued or processing.

    Returns ``{"name", "pages", "blobs", "thumbnails"}``: its name, how many pages were
    deleted and the stored keys they named, for :func:`remove_unreferenced`.
    """
    mine = Page.project_id == project_id
    with store.write() as s:
        name = _lock_project(s, project_id)
        _refuse_busy(s, mine, f"project {name!r}")
        conn = s.connection()
        what = f"project {name!r}"
        refuse_reserved(conn, reservations(conn, project_id), None, partial(PageInUse, what=what))
        keys = s.execute(select(Page.blob, Page.thumbnail).where(mine)).all()
        count = len(keys)
        blobs = {blob for blob, _ in keys}
        thumbnails = {thumbnail for _, thumbnail in keys if thumbnail}
        if _delete_rows(s, mine) != count:  # the lock above makes this impossible
            raise PageInUse([], None, what=f"project {name!r}")
        jobs = select(Job.id).where(Job.project_id == project_id)
        s.execute(
            delete(JobPage).where(JobPage.job_id.in_(jobs)),
            execution_options={"synchronize_session": False},
        )
        s.execute(delete(Job).where(Job.project_id == project_id))
        s.execute(delete(Project).where(Project.id == project_id))
    return {"name": name, "pages": count, "blobs": blobs, "thumbnails": thumbnails}


def _forget_unclaimed(
    s: Any, project_id: int, ids: set[int], per_job: dict[tuple[str, str], int]
) -> None:
    """Take the deleted pages out of the project's jobs that list them as cancelled
    unclaimed (:attr:`Job.unclaimed`, no job row), counting them in ``per_job``. A
    page's id must not stay listed: SQLite may give it to a page added later."""
    for job_id, text in s.execute(
        select(Job.id, Job.unclaimed)
        .where(Job.project_id == project_id, Job.unclaimed.is_not(None))
        .with_for_update()
    ).all():
        listed = json.loads(text)
        kept = [pid for pid in listed if pid not in ids]
        if len(kept) < len(listed):
            key = (job_id, PageState.CANCELLED.value)
            per_job[key] = per_job.get(key, 0) + len(listed) - len(kept)
            left = json.dumps(kept) if kept else None
            s.execute(update(Job).where(Job.id == job_id).values(unclaimed=left))


def _shrink_jobs(s: Any, per_job: dict[tuple[str, str], int]) -> None:
    """Jobs stop counting the deleted pages (``(job, state): how many``) in their total
    and their counters; a job with none left goes too."""
    for (job_id, state), n in sorted(per_job.items()):
        s.execute(update(Job).where(Job.id == job_id).values(total=Job.total - n))
        counters.moved(s, job_id, n, state, None)
    for chunk in _chunks(sorted({job_id for job_id, _ in per_job})):
        s.execute(
            delete(Job).where(
                Job.id.in_(chunk),
                Job.unclaimed.is_(None),
                ~exists().where(JobPage.job_id == Job.id),
            ),
            execution_options={"synchronize_session": False},
        )


def remove_unreferenced(store: Store, keys: Iterable[str], remove: Callable[[str], bool]) -> int:
    """Call ``remove(key)`` for each of ``keys`` that no page names (as its bytes or its
    thumbnail), and return how many it removed. Run it after the delete has committed.

    Each check and its removals happen in one write transaction holding the keys' locks:
    those an add holds while it writes the same bytes and inserts the page that names
    them (:func:`pagekit.store.lock_blob_keys`; on SQLite, the database's write lock).
    So an add of the same bytes, in any project, has either committed before the check
    (the key is named, and kept) or writes the file afresh after its removal.

    Keys are taken ``CHUNK`` at a time, as they come (a generator is read lazily), each
    chunk sorted for its locks.
    """
    removed = 0
    keys = iter(keys)
    while chunk := sorted(set(islice(keys, CHUNK))):
        with store.write() as s:
            lock_blob_keys(s, chunk, shared=False)
            named = set(s.scalars(select(Page.blob).where(Page.blob.in_(chunk))))
            named |= set(s.scalars(select(Page.thumbnail).where(Page.thumbnail.in_(chunk))))
            removed += sum(1 for key in chunk if key not in named and remove(key))
    return removed
