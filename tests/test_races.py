"""Races two users can start: on SQLite and on PostgreSQL, every page is counted once.

Two people press "Process All Pending" at the same moment (a notebook and the dashboard,
two browser tabs); a user cancels while workers claim pages. Each round runs in real
separate processes against the real runtime, and the database rows decide.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import check_cancel_counted, new_project
from sqlalchemy import select

from pagekit import _pagegen as gen
from pagekit.client import Client
from pagekit.store import JobPage, Page

ROUNDS = 20
PAGES = 10


def _racer(settings: Any, barrier: Any, inbox: Any, outbox: Any) -> None:
    """A second user: waits at the barrier, then presses "Process All Pending"."""
    client = Client(settings=settings, start=False)
    for project in iter(inbox.get, None):
        barrier.wait(timeout=60)
        try:
            outbox.put(("ok", client.process_pending(project)["task_id"]))
        except Exception as exc:
            outbox.put(("error", f"{type(exc).__name__}: {exc}"))


@pytest.fixture
def racers(any_client: Client) -> Iterator[tuple[Any, list[tuple[Any, Any]]]]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    pairs = [(ctx.Queue(), ctx.Queue()) for _ in range(2)]
    procs = [
        ctx.Process(target=_racer, args=(any_client.settings, barrier, inbox, outbox))
        for inbox, outbox in pairs
    ]
    for p in procs:
        p.start()
    yield barrier, pairs
    for inbox, _ in pairs:
        inbox.put(None)
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()


def text_layer_pdf(n: int, tag: str) -> bytes:
    """n pages with a real text layer: processed in milliseconds, no OCR."""
    return gen.text_pdf(
        [f"Race {tag} page {i}: the harbour master signed the log." for i in range(n)]
    )


def test_two_users_pressing_process_all_pending_process_each_page_once(
    any_client: Client, racers: tuple[Any, list[tuple[Any, Any]]]
) -> None:
    client = any_client
    _, pairs = racers
    for rnd in range(ROUNDS):
        project = new_project(client)
        [added] = client.add_pages(project, [(f"race-{rnd}.pdf", text_layer_pdf(PAGES, str(rnd)))])
        assert len(added["page_ids"]) == PAGES
        for inbox, _ in pairs:
            inbox.put(project["project_id"])
        outcomes = [outbox.get(timeout=120) for _, outbox in pairs]
        winners = [task for kind, task in outcomes if kind == "ok"]
        losers = [msg for kind, msg in outcomes if kind == "error"]
        assert len(winners) == 1, f"round {rnd}: both users won: {outcomes}"
        assert "already queued" in losers[0] or "no pending pages" in losers[0], losers
        final = client.wait(winners[0], progress=False, timeout=120)
        assert final["status"] == "completed" and final["result"]["completed"] == PAGES
        with client.store.read() as s:
            rows = s.execute(
                select(JobPage.page_id, JobPage.attempts)
                .join(Page, Page.id == JobPage.page_id)
                .where(Page.project_id == project["project_id"])
            ).all()
        assert sorted(pid for pid, _ in rows) == sorted(added["page_ids"]), (
            f"round {rnd}: a page was queued by two jobs"
        )
        assert {attempts for _, attempts in rows} == {1}, f"round {rnd}: processed twice"
        assert all(w > 0 for w in client.pages(project).words)


def test_cancel_racing_workers_counts_exactly_and_never_revives_a_page(
    any_client: Client,
) -> None:
    client = any_client
    rng = random.Random(8)
    for rnd in range(15):
        project = new_project(client)
        client.add_pages(project, [(f"cancel-{rnd}.pdf", text_layer_pdf(30, f"c{rnd}"))])
        job = client.process_pending(project)
        time.sleep(rng.uniform(0.0, 0.4))  # cancel while workers are claiming pages
        cancelled = client.cancel(job["task_id"])["cancelled_pages"]
        final = client.wait(job["task_id"], progress=False, timeout=120)
        r = final["result"]
        assert r["completed"] + r["failed"] + r.get("cancelled", 0) == r["total"] == 30
        check_cancel_counted(client, job["task_id"], cancelled, f"round {rnd}")
