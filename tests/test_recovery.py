"""Orphaned pages are recovered by the workers themselves, fast, with no client running.

A worker process killed mid-page, a worker's main process killed with pages held, a Redis
killed under the runtime, no worker at all: each test checks what a user sees (the page
finishes within 30 s, `doctor` and `status` tell the truth, `wait()` says no worker runs)
while nothing but the workers acts (no `wait()`, no `reconcile()` while we measure: only
reads of the database rows).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import new_project
from sqlalchemy import func, select
from test_jobs import add_generated, running_page, wait_until

from pagekit import runtime
from pagekit.client import Client
from pagekit.config import Settings
from pagekit.contract import JobState, PageState
from pagekit.errors import NoWorker
from pagekit.progress import TextProgressBar
from pagekit.store import JobPage, Page, utcnow

PAGEKIT = [sys.executable, "-m", "pagekit.cli"]


def _row(client: Client, job_id: str, page_id: int) -> tuple[JobPage, Page]:
    with client.store.read() as s:
        jp = s.get(JobPage, (job_id, page_id))
        page = s.get(Page, page_id)
    assert jp is not None and page is not None
    return jp, page


def _queued(client: Client, job_id: str) -> int:
    with client.store.read() as s:
        return int(
            s.scalar(
                select(func.count()).where(
                    JobPage.job_id == job_id, JobPage.state == PageState.QUEUED
                )
            )
        )


def test_a_killed_worker_process_page_jumps_the_queue_and_finishes_within_30s(
    any_client: Client,
) -> None:
    client = any_client
    project = new_project(client, ["slow"])  # 1.5 s a page: 54 pages keep 2 processes busy
    add_generated(client, project, 54)
    job = client.process_pending(project)
    task_id = job["task_id"]
    pid, page_id = wait_until(
        lambda: running_page(client, task_id), timeout=60, what="a worker process to run a page"
    )
    os.kill(pid, signal.SIGKILL)  # the pool process running page_id
    killed_at = utcnow()

    seen: list[str] = []

    def finished() -> JobPage | None:
        jp, page = _row(client, task_id, page_id)
        if not seen or seen[-1] != page.status:
            seen.append(page.status)
        return jp if jp.state == PageState.COMPLETED else None

    jp = wait_until(finished, timeout=90, step=0.05, what=f"page {page_id} to complete")
    took = (jp.finished_at - killed_at).total_seconds()
    behind = _queued(client, task_id)
    client.cancel(task_id)  # the rest of the slow batch is not needed

    assert took < 30, f"the killed process's page took {took:.0f} s to finish"
    assert behind >= 10, f"it should overtake the queue; only {behind} pages were still queued"
    assert jp.attempts == 2
    assert PageState.QUEUED in seen, f"while it waited it should show as queued again: {seen}"
    assert "stopped after" in (jp.last_error or ""), jp.last_error


def test_a_page_that_keeps_killing_its_worker_fails_after_the_attempt_cap(
    client: Client,
) -> None:
    project = new_project(client, ["kill-worker"])
    [page_id] = add_generated(client, project, 1)
    job = client.process_page(project, page_id)

    def finished() -> JobPage | None:
        jp, _ = _row(client, job["task_id"], page_id)
        return jp if jp.state in (PageState.COMPLETED, PageState.FAILED) else None

    jp = wait_until(finished, timeout=120, step=0.2, what=f"page {page_id} to finish")
    page = client.page(page_id)
    assert jp.state == PageState.FAILED and jp.attempts == client.settings.max_attempts
    assert page["status"] == PageState.FAILED
    assert page["error"].startswith(f"gave up after {client.settings.max_attempts} attempts")
    assert "stopped after" in page["error"] and "killed" in page["error"], page["error"]
    assert "time limit of" not in page["error"], "it never ran near the time limit"


# -- a runtime of its own: these tests kill its worker and its Redis -------------------------


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    home = tmp_path_factory.mktemp("pagekit-recovery")
    client = Client(home=home, workers=2)
    client.wait_for_workers(timeout=90)
    yield client
    client.shutdown()


def _cli(client: Client, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PAGEKIT, "--home", str(client.settings.home_abs), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _restart_workers(client: Client) -> float:
    """`pagekit up`: returns when it has started (and a worker answers)."""
    out = _cli(client, "up")
    assert out.returncode == 0, out.stderr
    return time.monotonic()


def _worker(client: Client) -> psutil.Process:
    """The runtime's worker main process (checked by pid and start time)."""
    proc = runtime.process(client.settings, runtime.read_state(client.settings), "worker")
    assert proc is not None, "the runtime's worker is not running"
    return proc


def _kill_worker_main(client: Client) -> None:
    worker = _worker(client)
    worker.kill()  # the main process only, not its pool
    worker.wait(timeout=10)


def _held_pages(client: Client, task_id: str) -> list[int]:
    with client.store.read() as s:
        return list(
            s.scalars(
                select(JobPage.page_id).where(
                    JobPage.job_id == task_id,
                    JobPage.state.in_((PageState.QUEUED, PageState.PROCESSING)),
                    JobPage.heartbeat_at.is_not(None),
                )
            )
        )


def _slow_job_holding_pages(client: Client, pages: int) -> dict:
    """A job of slow pages, returned once the worker holds at least two of them."""
    project = new_project(client, ["slow"])
    add_generated(client, project, pages)
    job = client.process_pending(project)
    wait_until(
        lambda: len(_held_pages(client, job["task_id"])) >= 2,
        timeout=60,
        what="the worker to hold two pages",
    )
    return job


def _finish_times(client: Client, task_id: str, page_ids: list[int]) -> list[JobPage]:
    def done() -> list[JobPage] | None:
        rows = [_row(client, task_id, p)[0] for p in page_ids]
        return rows if all(r.state == PageState.COMPLETED for r in rows) else None

    return wait_until(done, timeout=90, step=0.2, what=f"pages {page_ids} to complete")


def test_wait_says_no_worker_is_running_instead_of_hanging(own: Client, tmp_path: Path) -> None:
    worker = _worker(own)
    worker.terminate()  # a clean stop: the worker says goodbye
    worker.wait(timeout=60)
    try:
        project = new_project(own)
        add_generated(own, project, 2)
        job = own.process_pending(project)
        impatient = Client(
            settings=Settings.from_env(home=own.settings.home, no_worker_after=2), start=False
        )
        out = io.StringIO()
        bar = TextProgressBar(impatient, job["task_id"], interval=0.5, file=out)
        with pytest.raises(NoWorker, match="no worker is running: start one with `pagekit up`"):
            bar.run(timeout=6)
        assert "no worker is running" in out.getvalue()

        # A shared broker with no worker on it (the CLI starts nothing there).
        env = {
            **os.environ,
            "PAGEKIT_NO_WORKER_AFTER": "2",
            "PAGEKIT_BROKER_URL": own.broker_url,
            "PAGEKIT_DATABASE_URL": own.settings.db_url,
        }
        cli = subprocess.run(
            [*PAGEKIT, "--home", str(own.settings.home_abs), "task", "wait", job["task_id"]]
            + ["--timeout", "6"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert cli.returncode == 3, cli
        assert "no worker is running" in cli.stderr and "Traceback" not in cli.stderr
    finally:
        _restart_workers(own)
    final = own.wait(job["task_id"], progress=False, timeout=60)
    assert final["status"] == JobState.COMPLETED


def test_worker_main_process_killed_doctor_sees_orphans_and_restart_recovers_them(
    own: Client,
) -> None:
    job = _slow_job_holding_pages(own, 8)
    task_id = job["task_id"]
    _kill_worker_main(own)
    held = _held_pages(own, task_id)
    assert held

    # No live worker: nobody re-queues them; doctor and status say so.
    def doctor_reports() -> subprocess.CompletedProcess | None:
        out = _cli(own, "doctor")
        return out if "orphaned pages" in out.stdout and "no heartbeat" in out.stdout else None

    doctor = wait_until(doctor_reports, timeout=60, step=2, what="doctor to report orphans")
    assert doctor.returncode != 0
    status = _cli(own, "status", "--json")
    assert "wait for redelivery" in status.stderr, status
    assert '"pages_waiting_for_redelivery": 0' not in status.stdout

    restarted = _restart_workers(own)
    rows = _finish_times(own, task_id, held)
    took = time.monotonic() - restarted
    assert took < 30, f"held pages finished {took:.0f} s after the restart"
    final = own.wait(task_id, progress=False, timeout=60)
    assert final["status"] == JobState.COMPLETED and final["result"]["completed"] == 8
    assert all(r.attempts <= 2 for r in rows)


def test_doctor_fix_requeues_orphans_at_once(own: Client) -> None:
    job = _slow_job_holding_pages(own, 6)
    task_id = job["task_id"]
    _kill_worker_main(own)
    wait_until(lambda: own.orphans(), timeout=60, step=1, what="orphans to be seen")
    fixed = _cli(own, "doctor", "--fix")
    assert "re-queued" in fixed.stdout, fixed
    assert not own.orphans()
    states = {r[1].status for r in (_row(own, task_id, p) for p in job["page_ids"])}
    assert PageState.PROCESSING not in states, states
    _restart_workers(own)
    final = own.wait(task_id, progress=False, timeout=90)
    assert final["status"] == JobState.COMPLETED and final["result"]["completed"] == 6


def test_redis_killed_and_restarted_held_pages_finish_within_30s(own: Client) -> None:
    job = _slow_job_holding_pages(own, 8)
    task_id = job["task_id"]
    redis_server = runtime.process(own.settings, runtime.read_state(own.settings), "redis")
    assert redis_server is not None
    redis_server.kill()
    held = _held_pages(own, task_id)
    restarted = _restart_workers(own)
    _finish_times(own, task_id, held)
    took = time.monotonic() - restarted
    assert took < 30, f"held pages finished {took:.0f} s after `pagekit up`"
    final = own.wait(task_id, progress=False, timeout=90)
    assert final["status"] == JobState.COMPLETED and final["result"]["completed"] == 8
