"""The fast tier: job state, exactly-once finish and recovery on SQLite, in milliseconds.

No Redis and no worker: the Client sends its messages over kombu's in-process memory
transport, and each test plays the worker by calling :mod:`pagekit.worker` itself, the
way a task does (claim, record, finish) and the way a watchdog does (beat, recover).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagekit import _pagegen, worker
from pagekit.client import Client
from pagekit.contract import JobState, PageState
from pagekit.jobs import job_state
from pagekit.processing import PageResult
from pagekit.store import Job

WORDS = ["alpha", "bravo", "charlie", "delta"]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    """A Client on a fresh SQLite database; its broker is in this process's memory."""
    c = Client(home=tmp_path / "home", broker_url="memory://")
    c.app.control.purge()  # the memory transport is shared by every app in the process
    yield c
    c.app.control.purge()
    c.close()


def queue(client: Client, n: int) -> tuple[str, list[int]]:
    """A job of ``n`` new pages, queued: (task id, page ids)."""
    project = client.create_project("fast")
    pngs = [
        _pagegen.image_bytes(_pagegen.text_image(f"page {w}", width=200, height=100, font_size=20))
        for w in WORDS[:n]
    ]
    added = client.add_pages(project, [(f"{i}.png", data) for i, data in enumerate(pngs)])
    assert [o["status"] for o in added] == ["added"] * n, added
    job = client.process_pending(project)
    return job["task_id"], job["page_ids"]


def claim(client: Client, task_id: str, page_id: int, name: str = "w1") -> worker.PageWork | None:
    return worker.claim(client.store, client.blobs, client.settings, task_id, page_id, name)


def page_status(client: Client, page_id: int) -> str:
    return client.page(page_id)["status"]


# -- job state -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "cancel_requested", "expected"),
    [
        ({"queued": 3}, False, JobState.QUEUED),
        ({"queued": 2, "processing": 1}, False, JobState.PROCESSING),
        ({"queued": 2, "completed": 1}, False, JobState.PROCESSING),
        ({"queued": 2, "failed": 1}, False, JobState.PROCESSING),
        ({"completed": 3}, False, JobState.COMPLETED),
        ({"completed": 2, "failed": 1}, False, JobState.COMPLETED),
        ({"failed": 3}, False, JobState.FAILED),
        ({"completed": 1, "cancelled": 2}, False, JobState.CANCELLED),
        ({"processing": 1, "cancelled": 2}, True, JobState.PROCESSING),
        ({"completed": 1, "failed": 1, "cancelled": 1}, True, JobState.CANCELLED),
    ],
)
def test_job_state(counts: dict[str, int], cancel_requested: bool, expected: JobState) -> None:
    c = {state: 0 for state in ("queued", "processing", "completed", "failed", "cancelled")}
    c.update(counts)
    job = Job(id="job", project_id=1, kind="batch", total=3, cancel_requested=cancel_requested)
    assert job_state(job, c) == expected


# -- exactly-once finish -----------------------------------------------------------------------


def test_a_page_recorded_twice_counts_once(client: Client) -> None:
    task_id, (first, second) = queue(client, 2)
    work = claim(client, task_id, first)
    assert work is not None and work.input.data[:4] == b"\x89PNG"
    assert claim(client, task_id, first, "w2") is None  # a duplicate delivery: held by w1

    result = PageResult(ok=True, text="page alpha", words=2, chars=10)
    assert worker.record(client.store, client.blobs, work, result) is True
    late = PageResult(ok=False, error="a second delivery that failed")
    assert worker.record(client.store, client.blobs, work, late) is False
    assert client.status(task_id) == {
        "task_id": task_id,
        "status": JobState.PROCESSING,
        "current": 1,
        "total": 2,
    }
    assert claim(client, task_id, first, "w2") is None  # finished: nothing to run again

    assert claim(client, task_id, second) is not None
    assert worker.finish(client.store, task_id, second, PageState.COMPLETED) is True
    assert worker.finish(client.store, task_id, second, PageState.FAILED) is False
    final = client.status(task_id)
    assert final["status"] == JobState.COMPLETED
    assert (final["result"]["total"], final["result"]["completed"]) == (2, 2)
    assert final["result"]["failed"] == 0
    page = client.page(first)
    assert page["status"] == PageState.COMPLETED and page["text"] == "page alpha"
    assert page["error"] is None


def test_a_cancelled_page_is_not_overwritten_by_a_late_finish(client: Client) -> None:
    task_id, (running, waiting) = queue(client, 2)
    assert claim(client, task_id, running) is not None

    cancelled = client.cancel(task_id)
    assert cancelled["cancelled_pages"] == 1  # the queued one; the running one stops next step
    assert page_status(client, waiting) == PageState.CANCELLED
    assert worker.finish(client.store, task_id, waiting, PageState.COMPLETED) is False
    assert claim(client, task_id, waiting) is None  # its message, delivered late
    assert page_status(client, waiting) == PageState.CANCELLED

    # The running page stops at its next step; a result arriving after that is dropped.
    assert worker.finish(client.store, task_id, running, PageState.CANCELLED) is True
    assert worker.finish(client.store, task_id, running, PageState.COMPLETED) is False
    final = client.status(task_id)
    assert final["status"] == JobState.CANCELLED
    assert final["result"]["cancelled"] == 2 and final["result"]["completed"] == 0
    assert page_status(client, running) == PageState.CANCELLED


# -- heartbeats and recovery (the database part) ---------------------------------------------


def test_a_page_whose_heartbeat_stops_is_an_orphan_until_it_beats(client: Client) -> None:
    settings = client.settings.with_(heartbeat_timeout=0.2)
    task_id, (held, _queued) = queue(client, 2)
    assert claim(client, task_id, held) is not None
    assert worker.orphans(client.store, settings) == []  # it just beat

    time.sleep(0.3)
    [orphan] = worker.orphans(client.store, settings)
    assert (orphan["job_id"], orphan["page_id"]) == (task_id, held)
    assert orphan["state"] == PageState.PROCESSING and orphan["worker"] == "w1"

    worker.beat(client.store, "w1", [(task_id, held)])
    assert worker.orphans(client.store, settings) == []
    assert worker.live_workers(client.store, within=5) == ["w1"]


def test_recover_requeues_an_orphan_once_and_fails_it_at_the_attempt_cap(client: Client) -> None:
    settings = client.settings.with_(heartbeat_timeout=0.2)
    task_id, (page_id,) = queue(client, 1)
    assert claim(client, task_id, page_id) is not None
    client.app.control.purge()  # its message was consumed by the worker that vanished
    time.sleep(0.3)

    assert worker.recover(client.store, client.app, settings) == [(task_id, page_id)]
    assert worker.recover(client.store, client.app, settings) == []  # a second watchdog
    assert page_status(client, page_id) == PageState.QUEUED
    assert worker.queue_depth(client.app) == 1  # re-sent once

    # The next worker takes it, and dies too: with the attempts used up, the page fails.
    capped = settings.with_(max_attempts=2)
    assert worker.claim(client.store, client.blobs, capped, task_id, page_id, "w2") is not None
    time.sleep(0.3)
    assert worker.recover(client.store, client.app, capped) == []
    page = client.page(page_id)
    assert page["status"] == PageState.FAILED
    assert page["error"].startswith("gave up after 2 attempts"), page["error"]
    assert client.status(task_id)["status"] == JobState.FAILED


def test_queued_pages_are_lost_only_when_the_broker_has_no_message(client: Client) -> None:
    settings = client.settings.with_(heartbeat_timeout=0.2)
    task_id, page_ids = queue(client, 2)
    assert worker.lost(client.store, client.app, settings).pages == []  # too young
    time.sleep(0.3)
    assert worker.lost(client.store, client.app, settings).pages == []  # messages wait

    client.app.control.purge()  # the broker lost them (e.g. killed before it wrote them)
    lost = worker.lost(client.store, client.app, settings).pages
    assert sorted(r["page_id"] for r in lost) == page_ids
    assert worker.orphans(client.store, settings) == []  # nobody held them: not orphans

    moved = worker.recover(client.store, client.app, settings, lost=lost)
    assert sorted(moved) == [(task_id, p) for p in page_ids]
    assert worker.queue_depth(client.app) == 2
    assert worker.lost(client.store, client.app, settings).pages == []
