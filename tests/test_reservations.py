"""Big jobs are reserved by their caller and claimed by a worker, on SQLite and PostgreSQL.

"Process All Pending" on more than ``store.jobs.INLINE`` pages answers with the job's
pages at once and writes only the job row; the dispatcher claims the pages a slice at a
time. Until it has, every other claim and delete treats them as taken by that job, a
cancel takes them out as cancelled, and each page still ends up in exactly one job,
counted once. These tests drive the store directly (no worker sends anything), on a
database of their own.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import add_page_rows, job_page_rows
from sqlalchemy import select

from pagekit import jobs
from pagekit.contract import JobState, PageState
from pagekit.errors import NoSuchTask, NothingToProcess, PageBusy, PageInUse
from pagekit.store import Job, JobPage, Page, Store, deletion, reporting, utcnow, workers
from pagekit.store import jobs as rows

BIG = rows.INLINE + 150  # reserved, not claimed, by its caller


def reserved_project(empty_db: str, name: str) -> tuple[Store, Any, list[int], str]:
    """A database of its own with a project of BIG pending pages, all reserved by one
    "Process All Pending": ``(store, project, page ids, task id)``."""
    store = Store(empty_db)
    project = store.create_project(name)
    ids = add_page_rows(store, project.id, BIG)
    task_id, got, first = rows.claim(store, project.id, None, [PageState.PENDING], "batch")
    assert got == ids and first == 1
    return store, project, ids, task_id


def states(store: Store, ids: list[int]) -> list[tuple[str, str | None]]:
    """``(status, job id)`` of each page, in the order of ``ids``."""
    with store.read() as s:
        found = {
            pid: (status, job)
            for pid, status, job in s.execute(
                select(Page.id, Page.status, Page.job_id).where(Page.id.in_(ids))
            )
        }
    return [found[pid] for pid in ids]


def job_rows(store: Store, job_id: str) -> list[tuple[int, int, str]]:
    """``(position, page id, state)`` of the job's pages, in its order."""
    with store.read() as s:
        return [
            tuple(row)
            for row in s.execute(
                select(JobPage.position, JobPage.page_id, JobPage.state)
                .where(JobPage.job_id == job_id)
                .order_by(JobPage.position)
            )
        ]


def claim_all(store: Store, job_id: str, slice_: int = 100) -> list[int]:
    """What the dispatcher does, without sending: claim the reservation slice by slice."""
    ids, start = rows.reservation(store, job_id)
    sent: list[int] = []
    for at in range(start, len(ids), slice_):
        sent += rows.claim_reserved(store, job_id, ids, at, slice_)
    return sent


def test_a_big_job_is_reserved_at_once_and_claimed_by_a_worker_in_its_order(
    empty_db: str,
) -> None:
    store, project, ids, task_id = reserved_project(empty_db, "reserve")
    # Only the job row was written: the pages are still pending, the job counts them queued.
    assert set(states(store, ids)) == {(PageState.PENDING, None)}
    assert job_rows(store, task_id) == []
    status = jobs.status(store, task_id)
    assert (status["status"], status["total"]) == (JobState.QUEUED, BIG)

    # Every other claim and delete sees them as taken by this job.
    with pytest.raises(NothingToProcess, match=task_id):
        rows.claim(store, project.id, None, [PageState.PENDING], "batch")
    with pytest.raises(PageBusy, match=task_id):
        rows.claim(store, project.id, [ids[7]], [], "batch")
    with pytest.raises(PageBusy, match=task_id):
        rows.claim(store, project.id, list(reversed(ids)), [], "batch")
    with pytest.raises(PageInUse, match=task_id):
        deletion.delete_pages(store, project.id, [ids[3]])
    with pytest.raises(PageInUse, match=task_id):
        deletion.delete_project(store, project.id)
    # A page added after the press is not in the job: a second press gets just that one.
    [late] = add_page_rows(store, project.id, 1, first=BIG + 1)
    other, only, number = rows.claim(store, project.id, None, [PageState.PENDING], "batch")
    assert only == [late] and number == BIG + 1 and other != task_id

    # The worker claims slice by slice; a slice claimed twice (redelivery) gives nothing.
    reserved, start = rows.reservation(store, task_id)
    assert reserved == ids and start == 0
    assert rows.claim_reserved(store, task_id, reserved, 0, 100) == ids[:100]
    assert rows.claim_reserved(store, task_id, reserved, 0, 100) == []
    assert rows.reservation(store, task_id) == (ids, 100)
    assert claim_all(store, task_id) == ids[100:]
    assert rows.reservation(store, task_id) is None
    assert job_rows(store, task_id) == [(i, pid, PageState.QUEUED) for i, pid in enumerate(ids)]
    assert set(states(store, ids)) == {(PageState.QUEUED, task_id)}
    status = jobs.status(store, task_id)
    assert (status["status"], status["total"]) == (JobState.QUEUED, BIG)
    # Claimed now as any job's pages are: busy for others, and still not deletable.
    with pytest.raises(PageBusy, match=task_id):
        rows.claim(store, project.id, [ids[7]], [], "batch")
    with pytest.raises(PageInUse, match=task_id):
        deletion.delete_pages(store, project.id, [ids[3]])


def test_a_batch_of_given_pages_is_reserved_whole_in_the_callers_order(empty_db: str) -> None:
    store = Store(empty_db)
    project = store.create_project("reserve-batch")
    ids = add_page_rows(store, project.id, BIG)
    wanted = list(reversed(ids[10:]))
    small, _, _ = rows.claim(store, project.id, ids[:2], [], "batch")  # claimed inline
    with pytest.raises(PageBusy, match=small):  # one busy page: nothing is reserved
        rows.claim(store, project.id, [ids[1], *wanted], [], "batch")
    task_id, got, first = rows.claim(store, project.id, wanted, [], "batch")
    assert got == wanted and first == BIG
    assert claim_all(store, task_id, slice_=64) == wanted
    assert [pid for _, pid, _ in job_rows(store, task_id)] == wanted
    # Pages outside both jobs are free to take.
    rest, got, _ = rows.claim(store, project.id, None, [PageState.PENDING], "batch")
    assert got == ids[2:10]


def test_cancel_takes_the_reserved_pages_out_as_cancelled_and_counts_each_once(
    empty_db: str,
) -> None:
    store, project, ids, task_id = reserved_project(empty_db, "reserve-cancel")
    reserved, _ = rows.reservation(store, task_id)
    assert rows.claim_reserved(store, task_id, reserved, 0, 100) == ids[:100]

    out = jobs.cancel(store, task_id)
    assert out["cancelled_pages"] == BIG  # 100 claimed and queued, 150 still reserved
    assert out["status"] == JobState.CANCELLED
    result = out["result"]
    assert (result["total"], result["completed"], result["cancelled"]) == (BIG, 0, BIG)
    assert [r["page_id"] for r in result["results"]] == ids
    assert {r["status"] for r in result["results"]} == {PageState.CANCELLED}
    assert set(states(store, ids)) == {(PageState.CANCELLED, task_id)}
    # The dispatcher, still running, finds nothing more to claim or send.
    assert rows.claim_reserved(store, task_id, reserved, 100, 100) == []
    assert jobs.cancel(store, task_id)["cancelled_pages"] == 0
    # Cancelled pages can be queued again.
    again, got, _ = rows.claim(store, project.id, None, [PageState.CANCELLED], "batch")
    assert got == ids


def test_a_job_cancelled_before_any_claim_answers_for_every_page_and_follows_deletes(
    empty_db: str,
) -> None:
    """Cancelled the moment it is queued, a big job takes all its pages out unclaimed:
    its answer, its line in the jobs table and later deletes count every one of them,
    as they do a claimed job's pages."""
    store, project, ids, task_id = reserved_project(empty_db, "reserve-cancel-first")
    out = jobs.cancel(store, task_id)
    assert out["cancelled_pages"] == BIG and out["status"] == JobState.CANCELLED
    results = out["result"]["results"]
    assert [r["page_id"] for r in results] == ids
    assert [r["page_number"] for r in results] == list(range(1, BIG + 1))
    assert {r["status"] for r in results} == {PageState.CANCELLED}
    assert set(states(store, ids)) == {(PageState.CANCELLED, task_id)}
    [stats] = reporting.job_stats(store, project.id, task_id)
    assert stats.counts[PageState.CANCELLED] == BIG and stats.counts[PageState.QUEUED] == 0
    assert stats.finished_at is not None  # the cancel ended it
    assert rows.claim_reserved(store, task_id, ids, 0, 100) == []  # the dispatcher, late

    # Deleted pages leave the job, as they leave any job.
    deletion.delete_pages(store, project.id, ids[:5])
    after = jobs.status(store, task_id)["result"]
    assert after["total"] == after["cancelled"] == BIG - 5
    assert [r["page_id"] for r in after["results"]] == ids[5:]
    # A page added after a delete never shows in the job, even where SQLite gives it a
    # deleted page's id.
    deletion.delete_pages(store, project.id, [ids[-1]])
    add_page_rows(store, project.id, 1, first=BIG + 1)
    after = jobs.status(store, task_id)["result"]
    assert [r["page_id"] for r in after["results"]] == ids[5:-1]
    # Queued again by a later job, a page stays cancelled in this one's answer.
    again, got, _ = rows.claim(store, project.id, ids[5:7], [], "batch")
    assert got == ids[5:7]
    assert [r["status"] for r in jobs.status(store, task_id)["result"]["results"][:3]] == [
        PageState.CANCELLED
    ] * 3
    # A job left with no page goes with its last one.
    jobs.cancel(store, again)
    deletion.delete_pages(store, project.id, ids[5:-1])
    for gone in (task_id, again):
        with pytest.raises(NoSuchTask):
            jobs.status(store, gone)


def test_a_worker_between_the_two_steps_of_a_cancel_does_not_escape_its_count(
    empty_db: str,
) -> None:
    """A cancel ends the reservation, then cancels the queued pages. A worker that claims
    a queued page in between runs it (the job is flagged only with the queued pages), so
    no page is cancelled by anyone but the cancel while it counts."""
    store, _, ids, task_id = reserved_project(empty_db, "reserve-cancel-race")
    reserved, _ = rows.reservation(store, task_id)
    assert rows.claim_reserved(store, task_id, reserved, 0, 100) == ids[:100]

    assert rows.cancel_reserved(store, task_id) == BIG - 100  # the cancel's first step
    claimed = workers.claim_pages(
        store, task_id, [ids[0]], "w1@host", stale_before=utcnow(), max_attempts=3
    )
    assert list(claimed) == [ids[0]]  # the worker runs the page: not flagged yet
    moved = rows.cancel_queued(store, task_id)  # the cancel's second step
    assert moved == 99
    # The pages cancelled without ever starting are exactly the ones the cancel counted;
    # the worker's page is cancelled at its next step, as one that started.
    rows_ = job_page_rows(store, task_id)
    never_started = [r for r in rows_ if r.state == PageState.CANCELLED and r.attempts == 0]
    assert len(never_started) == BIG - 100 + moved
    assert states(store, [ids[0]]) == [(PageState.PROCESSING, task_id)]
    assert jobs.status(store, task_id)["status"] == JobState.PROCESSING  # until its next step


def test_a_reservation_of_a_deleted_project_ends_quietly(empty_db: str) -> None:
    """The dispatcher of a job whose project is gone claims nothing and stops."""
    store, project, ids, task_id = reserved_project(empty_db, "reserve-gone")
    jobs.cancel(store, task_id)  # the only way to delete a project with a reservation
    deletion.delete_project(store, project.id)
    assert rows.claim_reserved(store, task_id, ids, 0, 100) is None


def _press(store: Store, project_id: int, page_ids: list[int] | None, out: list[Any]) -> None:
    try:
        out.append(("ok", rows.claim(store, project_id, page_ids, [PageState.PENDING], "batch")))
    except (NothingToProcess, PageBusy) as exc:
        out.append(("refused", exc))


def test_concurrent_presses_and_batches_take_each_page_once(empty_db: str) -> None:
    """Two "Process All Pending" presses and two batches of overlapping pages, at once
    (PostgreSQL runs them concurrently): every page is in exactly one job's claim or
    reservation, and once claimed, in exactly one job."""
    store = Store(empty_db)
    for rnd in range(4):
        project = store.create_project(f"race-{rnd}")
        ids = add_page_rows(store, project.id, 2 * BIG)
        calls = [None, None, ids[: BIG + 20], ids[BIG - 20 : BIG + 40]]
        out: list[Any] = []
        threads = [threading.Thread(target=_press, args=(store, project.id, c, out)) for c in calls]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        won = [claim for kind, claim in out if kind == "ok"]
        assert won, out
        taken = [pid for _, got, _ in won for pid in got]
        assert sorted(taken) == sorted(set(taken)), f"round {rnd}: a page was taken twice"
        for task_id, _, _ in won:
            if rows.reservation(store, task_id):
                claim_all(store, task_id)
        with store.read() as s:
            held = s.execute(
                select(JobPage.page_id, JobPage.job_id)
                .join(Job, Job.id == JobPage.job_id)
                .where(Job.project_id == project.id)
            ).all()
        assert sorted(pid for pid, _ in held) == sorted(taken)
        assert {job for _, job in held} == {task_id for task_id, _, _ in won}
