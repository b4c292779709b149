"""Big jobs: queued at once, sent by a worker, counted in the job row, safe when the
broker fails half-way. Each runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
from conftest import check_cancel_counted, job_page_rows, need, new_project
from sqlalchemy import select

from pagekit import _pagegen as gen
from pagekit import jobs, runtime
from pagekit.broker import make_app
from pagekit.client import Client
from pagekit.config import Settings
from pagekit.contract import (
    ACTIVE,
    FINISHED,
    PAGES_PER_MESSAGE,
    QUEUE,
    TASK_PROCESS_PAGE,
    PageState,
)
from pagekit.errors import RuntimeUnavailable
from pagekit.store import JobPage
from pagekit.store import jobs as rows

if TYPE_CHECKING:
    from celery import Celery

BIG = jobs.INLINE_PAGES + 60  # a job its caller hands to a worker to send


def text_layer_pdf(n: int, tag: str) -> bytes:
    """n pages with a real text layer: processed in milliseconds, no OCR."""
    return gen.text_pdf([f"Ledger {tag} page {i}: the tide book was signed." for i in range(n)])


def add_text_pages(client: Client, project: dict, n: int, tag: str) -> list[int]:
    [added] = client.add_pages(project, [(f"{tag}.pdf", text_layer_pdf(n, tag))])
    assert len(added["page_ids"]) == n
    return added["page_ids"]


def page_rows(client: Client, task_id: str) -> dict[str, int]:
    """The job's pages counted from their own rows (what the counters must agree with)."""
    found = Counter(row.state for row in job_page_rows(client.store, task_id))
    return {state: found.get(state, 0) for state in (*ACTIVE, *FINISHED)}


def test_a_big_job_is_queued_at_once_and_every_page_runs_once(any_client: Client) -> None:
    client = any_client
    project = new_project(client)
    ids = add_text_pages(client, project, BIG, "big")
    job = client.process_pending(project)
    assert job["total_pages"] == BIG and job["page_ids"] == ids  # in page order
    final = client.wait(job["task_id"], progress=False, timeout=300)
    assert final["status"] == "completed" and final["result"]["completed"] == BIG
    assert [r["page_id"] for r in final["result"]["results"]] == ids
    assert all(r["words"] and r["words"] > 0 for r in final["result"]["results"])
    with client.store.read() as s:
        attempts = s.scalars(select(JobPage.attempts).where(JobPage.job_id == job["task_id"]))
        assert set(attempts) == {1}, "a page of the big job ran twice"


def test_slow_pages_in_a_big_job_are_handed_back_and_every_page_runs_once(
    any_client: Client,
) -> None:
    """A big job's pages travel in chunks; scanned pages (OCR, slow) among text-layer pages
    are sent back to the queue as tasks of their own, so other worker processes share
    them. Each page is read from the right source, once, and the hand-back costs no
    attempt."""
    client = any_client
    project = new_project(client)
    scans = [gen.text_image(f"Scanned folio {i} of the harbour ledger.") for i in range(3)]
    pdf = gen.merge_pdfs(
        [text_layer_pdf(80, "before"), gen.scanned_pdf(scans), text_layer_pdf(80, "after")]
    )
    [added] = client.add_pages(project, [("mixed.pdf", pdf)])
    singles_before = page_tasks_run(client)
    job = client.process_pending(project)
    final = client.wait(job["task_id"], progress=False, timeout=300)
    assert final["status"] == "completed" and final["result"]["completed"] == 163
    df = client.pages(project).set_index("page_id")
    scanned = added["page_ids"][80:83]
    assert list(df.loc[scanned, "text_source"]) == ["ocr"] * 3
    assert all("harbour" in client.page(pid)["text"].lower() for pid in scanned)
    assert set(df.drop(index=scanned)["text_source"]) == {"text-layer"}
    with client.store.read() as s:
        attempts = s.scalars(select(JobPage.attempts).where(JobPage.job_id == job["task_id"]))
        assert set(attempts) == {1}, "a page ran twice, or a hand-back counted an attempt"
    # The scanned pages after the first slow one went back as page tasks of their own.
    assert page_tasks_run(client) > singles_before


def page_tasks_run(client: Client) -> int:
    """Single-page tasks the workers have run so far (their own statistics)."""
    stats = client.app.control.inspect(timeout=2.0).stats() or {}
    return sum((st.get("total") or {}).get(TASK_PROCESS_PAGE, 0) for st in stats.values())


def test_cancel_racing_the_worker_that_claims_a_big_job_counts_each_page_once(
    any_client: Client,
) -> None:
    """A job of more pages than one claiming round, cancelled while a worker is still
    claiming its reserved pages (or just after): the cancel's count is exactly the pages
    that never started, each page ends in one state that its page row agrees with, and
    none ran twice."""
    client = any_client
    n = jobs.CHUNK + 500  # two claiming rounds
    for rnd, wait in enumerate((0.0, 0.15, 0.4)):  # before, during, after the claiming
        project = new_project(client)
        ids = add_text_pages(client, project, n, f"cancel-claim{rnd}")
        job = client.process_pending(project)
        time.sleep(wait)
        cancelled = client.cancel(job["task_id"])["cancelled_pages"]
        final = client.wait(job["task_id"], progress=False, timeout=300)
        r = final["result"]
        assert final["status"] == "cancelled", final["status"]
        assert r["total"] == n and r["completed"] + r.get("cancelled", 0) == n, r
        assert [p["page_id"] for p in r["results"]] == ids
        rows_ = check_cancel_counted(client, job["task_id"], cancelled, f"round {rnd}")
        assert len(rows_) == n
        assert {row.attempts for row in rows_ if row.state == "completed"} <= {1}


def test_status_counts_never_drift_from_the_pages_under_redelivery_and_cancel(
    any_client: Client,
) -> None:
    """The job row's counters move with each page, so after messages delivered twice and a
    cancel racing the workers they still equal the pages' own rows."""
    client = any_client
    rng = random.Random(13)
    for rnd in range(4):
        project = new_project(client)
        ids = add_text_pages(client, project, BIG, f"drift{rnd}")
        job = client.process_pending(project)
        # Every page's message again, as a page task of its own and in a chunk.
        jobs.send(client.app, job["task_id"], ids)
        jobs.send_chunks(client.app, job["task_id"], ids)
        if rnd:  # round 0 runs to the end; the others are cancelled while running
            time.sleep(rng.uniform(0.2, 1.5))
            client.cancel(job["task_id"])
        final = client.wait(job["task_id"], progress=False, timeout=300)
        result = final["result"]
        counted = page_rows(client, job["task_id"])
        assert counted[PageState.QUEUED] == counted[PageState.PROCESSING] == 0
        assert result["completed"] == counted[PageState.COMPLETED], (rnd, result, counted)
        assert result["failed"] == counted[PageState.FAILED], (rnd, result, counted)
        assert result.get("cancelled", 0) == counted[PageState.CANCELLED], (rnd, counted)
        assert sum(counted.values()) == result["total"] == BIG
        if rnd == 0:
            assert final["status"] == "completed" and result["completed"] == BIG
        statuses = client.pages(project)["status"].value_counts().to_dict()
        assert statuses == {k: v for k, v in counted.items() if v}, (rnd, statuses)


# -- a broker that fails half-way ----------------------------------------------------------


class CuttingProxy(threading.Thread):
    """A TCP proxy to a Redis that, once ``after`` messages went through, drops its
    connections and refuses new ones: a broker lost half-way through a job."""

    def __init__(self, port: int, after: int):
        super().__init__(daemon=True)
        self.target, self.after, self.pushed = port, after, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()

    def run(self) -> None:
        while not self.cut.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, counting: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if counting:
                    self.pushed += data.count(b"LPUSH")
                    if self.pushed > self.after:
                        self.cut.set()
                        self.listener.close()
                if self.cut.is_set():
                    break
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def failing_broker(tmp_path: Path) -> Iterator[tuple[Callable[[int], Celery], int]]:
    """``cut_after(n)``: an app whose broker connection is lost after ``n`` messages; and
    the port of the Redis behind it (where those messages stay: nothing consumes them)."""
    need(runtime.redis_binary() is not None, "redis-server is needed for this test")
    port = runtime._free_port()
    proc = subprocess.Popen(
        [runtime.redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if runtime.redis_ping(f"redis://127.0.0.1:{port}/0"):
                break
            time.sleep(0.05)

        def cut_after(n: int) -> Celery:
            proxy = CuttingProxy(port, after=n)
            proxy.start()
            return make_app(Settings.from_env(), f"redis://127.0.0.1:{proxy.port}/0")

        yield cut_after, port
    finally:
        proc.kill()
        proc.wait()


def queued_messages(port: int) -> int:
    return int(redis.Redis(port=port).llen(QUEUE))


def test_a_broker_failing_half_way_through_sending_leaves_every_page_pending(
    any_client: Client, failing_broker: tuple[Callable[[int], Celery], int]
) -> None:
    """Sent by the caller: the claim is undone, so the pages are pending again (not stuck
    in queued) and the user is told; the messages that did go out do nothing."""
    client = any_client
    cut_after, port = failing_broker
    failing = cut_after(jobs.INLINE_PAGES // 2)  # one message per page
    project = new_project(client)
    ids = add_text_pages(client, project, jobs.INLINE_PAGES, "inline")
    with pytest.raises(RuntimeUnavailable, match="broker is unreachable"):
        jobs.enqueue(client.store, failing, project["project_id"])
    sent = queued_messages(port)
    assert 0 < sent < len(ids), f"the broker took {sent} of {len(ids)}: not half-way"
    assert set(client.pages(project)["status"]) == {PageState.PENDING}
    job = client.process_pending(project)  # on the working broker: every page, once
    final = client.wait(job["task_id"], progress=False, timeout=120)
    assert final["result"]["completed"] == len(ids)


def test_pages_a_failed_dispatch_never_sent_are_sent_by_the_workers(
    any_client: Client, failing_broker: tuple[Callable[[int], Celery], int]
) -> None:
    """Sent by a worker: the pages it could not send stay queued with no message, and the
    workers' watchdogs find them (nobody holds them, the queues are empty) and send them
    again, with no client action; each page still runs once."""
    client = any_client
    cut_after, port = failing_broker
    messages = -(-BIG // PAGES_PER_MESSAGE)  # a worker sends a big job's pages in chunks
    failing = cut_after(messages // 2)
    project = new_project(client)
    ids = add_text_pages(client, project, BIG, "dispatch")
    task_id, claimed, _ = rows.claim(
        client.store, project["project_id"], None, [PageState.PENDING], "batch"
    )
    assert claimed == ids
    with pytest.raises(Exception):  # noqa: B017  (whatever the broker's client raises)
        jobs.dispatch(client.store, failing, task_id)
    assert 0 < queued_messages(port) < messages  # half-way; those are lost too
    assert client.status(task_id)["status"] == "queued"
    recovery = client.settings.heartbeat_timeout + 12 * client.settings.heartbeat_interval
    final = client.wait(task_id, progress=False, timeout=recovery + 120)
    assert final["status"] == "completed" and final["result"]["completed"] == BIG
    with client.store.read() as s:
        attempts = s.scalars(select(JobPage.attempts).where(JobPage.job_id == task_id))
        assert set(attempts) == {1}
    assert set(client.pages(project)["status"]) == {PageState.COMPLETED}


def test_a_big_job_whose_dispatch_message_was_lost_is_dispatched_by_the_watchdogs(
    any_client: Client,
) -> None:
    """The caller reserved the pages and died before sending the dispatch message (or the
    broker lost it): the pages stay pending and reserved, nothing else can take them, and
    the workers' watchdogs find the reservation unmoved with empty queues and dispatch it;
    every page runs once."""
    client = any_client
    project = new_project(client)
    ids = add_text_pages(client, project, BIG, "lost-dispatch")
    task_id, reserved, _ = rows.claim(
        client.store, project["project_id"], None, [PageState.PENDING], "batch"
    )
    assert reserved == ids
    assert set(client.pages(project)["status"]) == {PageState.PENDING}
    assert client.status(task_id)["status"] == "queued"
    recovery = client.settings.heartbeat_timeout + 12 * client.settings.heartbeat_interval
    final = client.wait(task_id, progress=False, timeout=recovery + 120)
    assert final["status"] == "completed" and final["result"]["completed"] == BIG
    assert [r["page_id"] for r in final["result"]["results"]] == ids
    with client.store.read() as s:
        attempts = s.scalars(select(JobPage.attempts).where(JobPage.job_id == task_id))
        assert set(attempts) == {1}
    assert rows.reservation(client.store, task_id) is None
