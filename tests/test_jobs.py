"""Jobs on a real runtime: the job contract, progress, cancel, crashes, bad input.

Every test runs on the session's embedded runtime (private Redis, real Celery worker
processes, real Tesseract). The ``any_client`` tests run again on PostgreSQL when
PAGEKIT_TEST_POSTGRES is set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import zlib
from datetime import timedelta

import pytest
from conftest import add_page_rows, new_project
from pypdf import PdfWriter
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine

from pagekit import _pagegen as gen
from pagekit import jobs, runtime
from pagekit.client import Client
from pagekit.contract import JobState, PageState
from pagekit.errors import NoSuchTask, NothingToProcess
from pagekit.store import Job, JobPage, Page, Store, engine_for, utcnow
from pagekit.store import jobs as rows
from pagekit.store import workers as held

TEXT = (
    "The committee met on Tuesday to discuss the harvest and the price of wheat. "
    "Mister Gray wrote that the river had flooded the lower fields again this spring."
)


def page_png(text: str = TEXT, seed: int = 0) -> bytes:
    """A small, quick-to-OCR page with known text (seed makes the bytes unique)."""
    img = gen.text_image(f"{text} Page {seed}.", width=1000, height=420, font_size=30)
    return gen.image_bytes(img, "PNG")


def add_generated(client: Client, project: dict, n: int, prefix: str = "p") -> list[int]:
    items = [(f"{prefix}-{i:03d}.png", page_png(seed=i)) for i in range(n)]
    outcomes = client.add_pages(project, items)
    assert [o["status"] for o in outcomes] == ["added"] * n
    return [pid for o in outcomes for pid in o["page_ids"]]


def wait_until(predicate, timeout: float = 60.0, step: float = 0.1, what: str = "condition"):
    """``predicate()``'s first truthy value; fails after ``timeout`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def running_page(client: Client, task_id: str) -> tuple[int, int] | None:
    """(pool process id, page id) of a page of ``task_id`` that a worker process has just
    started, or None. The database names the worker holding it; that worker says which of
    its processes runs it."""
    fresh = utcnow() - timedelta(seconds=0.5)  # a slow page has >= 1 s left to run
    with client.store.read() as s:
        held = dict(
            s.execute(
                select(JobPage.page_id, JobPage.worker).where(
                    JobPage.job_id == task_id,
                    JobPage.state == PageState.PROCESSING,
                    JobPage.started_at >= fresh,
                )
            ).all()
        )
    workers = sorted({w for w in held.values() if w})
    if not workers:
        return None
    replies = client.app.control.inspect(destination=workers, limit=len(workers), timeout=5)
    for tasks in (replies.active() or {}).values():
        for task in tasks:
            job_id, page_id = task["args"][:2]
            if job_id == task_id and page_id in held:
                return int(task["worker_pid"]), int(page_id)
    return None


def page_states(client: Client, project: dict) -> dict[int, str]:
    df = client.pages(project)
    return dict(zip(df.page_id, df.status, strict=True))


# -- the job contract ------------------------------------------------------------------


def test_status_shapes_are_exactly_the_seeds(any_client: Client) -> None:
    project = new_project(any_client, ["slow"])  # slow: the batch is surely still running
    ids = add_generated(any_client, project, 3)

    one = any_client.process_page(project, ids[0])
    assert set(one) == {"task_id", "status", "page_id", "page_number"}
    assert one["status"] == "queued" and one["page_id"] == ids[0] and one["page_number"] == 1

    batch = any_client.process_batch(project, ids[1:])
    assert set(batch) == {"task_id", "status", "total_pages", "page_ids"}
    assert batch["status"] == "queued"
    assert batch["total_pages"] == 2 and batch["page_ids"] == ids[1:]

    running = any_client.status(batch["task_id"])
    assert running["status"] in (JobState.QUEUED, JobState.PROCESSING), running
    assert set(running) == {"task_id", "status", "current", "total"}
    assert running["total"] == 2

    done = any_client.wait(batch["task_id"], progress=False, timeout=120)
    assert set(done) == {"task_id", "status", "result"}
    assert done["status"] == "completed"
    assert set(done["result"]) == {"total", "completed", "failed", "results"}
    assert (done["result"]["total"], done["result"]["completed"], done["result"]["failed"]) == (
        2,
        2,
        0,
    )
    first = done["result"]["results"][0]
    assert first["page_id"] == ids[1] and first["status"] == "completed" and first["words"] > 20

    single = any_client.wait(one["task_id"], progress=False, timeout=120)
    assert single["result"]["total"] == 1 and single["result"]["completed"] == 1


def test_unknown_task_id_is_an_error_not_pending(client: Client) -> None:
    with pytest.raises(NoSuchTask, match="no such task"):
        client.status("00000000-0000-0000-0000-000000000000")
    with pytest.raises(NoSuchTask):
        client.cancel("nope")


def test_process_pending_with_nothing_pending_says_so(client: Client, project: dict) -> None:
    with pytest.raises(NothingToProcess, match="no pending pages"):
        client.process_pending(project)


def test_ocr_finds_the_words_of_a_generated_page(any_client: Client) -> None:
    project = new_project(any_client)
    text = " ".join(gen.SAMPLE_TEXTS[:2])
    img = gen.text_image(text, width=1700, height=1400, font_size=36, rotate=0.6, noise=0.002)
    any_client.add_pages(project, [("known.jpg", gen.image_bytes(img, "JPEG", quality=85))])
    job = any_client.process_pending(project)
    any_client.wait(job["task_id"], progress=False, timeout=120)
    page = any_client.page(job["page_ids"][0])
    assert page["status"] == "completed"
    assert page["engine"].startswith("tesseract")
    assert gen.word_recall(text, page["text"]) >= 0.95
    assert page["confidence"] > 70 and page["words"] > 40


def test_pdf_text_layer_page_uses_its_text_layer(client: Client, project: dict) -> None:
    scanned = gen.scanned_pdf([gen.text_image(TEXT, width=1275, height=700, font_size=34)])
    layered = gen.text_pdf([TEXT + " This page has a real text layer."])
    box = gen.merge_pdfs([layered, scanned])
    [outcome] = client.add_pages(project, [("box.pdf", box)])
    assert outcome["status"] == "added" and len(outcome["page_ids"]) == 2
    job = client.process_pending(project)
    client.wait(job["task_id"], progress=False, timeout=120)
    text_page, scan_page = (client.page(pid) for pid in outcome["page_ids"])
    assert text_page["engine"] == "pdf-text-layer" and text_page["confidence"] is None
    assert "real text layer" in text_page["text"]
    assert scan_page["engine"].startswith("tesseract")
    assert gen.word_recall(TEXT, scan_page["text"]) >= 0.9


# -- progress, cancel, retry --------------------------------------------------------------


def test_current_rises_during_a_batch(any_client: Client) -> None:
    project = new_project(any_client, ["slow"])
    add_generated(any_client, project, 6)
    job = any_client.process_pending(project)
    seen: list[int] = []

    def finished() -> dict | None:
        st = any_client.status(job["task_id"])
        if "result" in st:
            return st
        seen.append(st["current"])
        return None

    st = wait_until(finished, timeout=120, step=0.2, what="the batch of 6 slow pages to finish")
    assert seen == sorted(seen), f"current went backwards: {seen}"
    assert any(0 < c < 6 for c in seen), f"never saw a page count between 0 and 6: {seen}"
    assert st["result"]["completed"] == 6


def test_cancel_mid_batch_leaves_nothing_queued_or_processing(any_client: Client) -> None:
    project = new_project(any_client, ["slow"])
    add_generated(any_client, project, 10)
    job = any_client.process_pending(project)
    wait_until(
        lambda: any_client.status(job["task_id"])["status"] == JobState.PROCESSING,
        what="the batch to start processing",
    )
    cancelled = any_client.cancel(job["task_id"])
    assert cancelled["cancelled_pages"] >= 1
    final = any_client.wait(job["task_id"], progress=False, timeout=60)
    assert final["status"] == "cancelled"
    r = final["result"]
    assert r["completed"] + r["failed"] + r["cancelled"] == r["total"] == 10
    assert r["cancelled"] >= 1
    states = page_states(any_client, project)
    assert not {"queued", "processing"} & set(states.values()), states

    # Cancelled pages can be queued again and finish.
    retry = any_client.retry_failed(project)
    assert retry["total_pages"] == r["cancelled"] + r["failed"]
    any_client.cancel(retry["task_id"])  # do not leave slow pages running for later tests


def test_a_failing_step_fails_its_page_not_the_batch_and_retry_works(client: Client) -> None:
    project = new_project(client, ["crash"])
    add_generated(client, project, 3)
    job = client.process_pending(project)
    final = client.wait(job["task_id"], progress=False, timeout=120)
    assert final["status"] == "failed" and final["result"]["failed"] == 3
    assert "injected failure" in final["result"]["results"][0]["error"]
    assert "crash" in final["result"]["results"][0]["error"]

    client.set_steps(project, [])
    again = client.wait(client.retry_failed(project)["task_id"], progress=False, timeout=120)
    assert again["status"] == "completed" and again["result"]["completed"] == 3
    assert set(page_states(client, project).values()) == {"completed"}


def test_a_queued_page_cannot_be_queued_twice(client: Client) -> None:
    project = new_project(client, ["slow"])
    ids = add_generated(client, project, 2)
    job = client.process_batch(project, ids)
    with pytest.raises(Exception, match="already queued or processing"):
        client.process_page(project, ids[0])
    client.cancel(job["task_id"])
    client.wait(job["task_id"], progress=False, timeout=60)


# -- crashes and stuck pages ----------------------------------------------------------------


def test_sigkilled_worker_mid_batch_every_page_completes_once(any_client: Client) -> None:
    client = any_client
    project = new_project(client, ["slow"])
    add_generated(client, project, 6)
    job = client.process_pending(project)
    task_id = job["task_id"]

    pid, page_id = wait_until(
        lambda: running_page(client, task_id), timeout=60, what="a worker process to run a page"
    )
    os.kill(pid, signal.SIGKILL)  # the pool process running page_id, mid-page

    final = client.wait(task_id, progress=False, timeout=180)
    assert final["status"] == JobState.COMPLETED
    r = final["result"]
    assert (r["total"], r["completed"], r["failed"]) == (6, 6, 0)
    assert sorted(x["page_id"] for x in r["results"]) == sorted(job["page_ids"])
    with client.store.read() as s:
        rows = {
            row.page_id: row
            for row in s.execute(select(JobPage).where(JobPage.job_id == task_id)).scalars()
        }
    assert len(rows) == 6 and {row.state for row in rows.values()} == {PageState.COMPLETED}
    killed = rows[page_id]
    assert killed.attempts == 2, f"the killed page ran {killed.attempts} time(s), not twice"
    assert set(page_states(client, project).values()) == {PageState.COMPLETED}


def test_reconcile_requeues_a_page_stuck_in_processing(client: Client, project: dict) -> None:
    """A page left in 'processing' by a host that vanished is found and finished."""
    [pid] = add_generated(client, project, 1)
    job = client.process_page(project, pid)
    client.wait(job["task_id"], progress=False, timeout=60)
    # Simulate a worker host that died mid-page: the row says processing, no task runs,
    # and its holder's last heartbeat is an hour old.
    an_hour_ago = utcnow() - timedelta(hours=1)  # longer than any page may run
    with client.store.write() as s:
        s.execute(
            update(JobPage)
            .where(JobPage.job_id == job["task_id"])
            .values(state="processing", started_at=an_hour_ago, heartbeat_at=an_hour_ago)
        )
        s.execute(update(Page).where(Page.id == pid).values(status="processing"))
        s.execute(update(Job).where(Job.id == job["task_id"]).values(completed=0, processing=1))
    assert client.status(job["task_id"])["status"] == "processing"
    requeued = client.reconcile()
    if (job["task_id"], pid) not in requeued:
        # The running worker's own watchdog (every few seconds) may have found it first.
        with client.store.read() as s:
            row = s.get(JobPage, (job["task_id"], pid))
            assert row is not None and row.heartbeat_at != an_hour_ago, "nobody re-queued it"
    final = client.wait(job["task_id"], progress=False, timeout=60)
    assert final["status"] == "completed"
    with client.store.read() as s:
        assert s.get(JobPage, (job["task_id"], pid)).attempts == 2  # it ran again


# -- bad input ----------------------------------------------------------------------------


def bomb_png(side: int = 40_000) -> bytes:
    """A small file that decodes to side x side pixels (a decompression bomb)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    raw = zlib.compress(row * 64, 9)  # only a few rows: truncated but claims huge size
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def encrypted_pdf() -> bytes:
    import io

    from pypdf import PdfReader

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(gen.text_pdf(["secret page"]))))
    writer.encrypt(user_password="hunter2", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_bad_inputs_fail_alone_while_the_rest_of_the_upload_and_batch_succeed(
    any_client: Client,
) -> None:
    project = new_project(any_client)
    good_pdf = gen.text_pdf(["First good page of the letter.", "Second good page of it."])
    upload = [
        ("empty.png", b""),
        ("truncated.pdf", gen.text_pdf(["will be cut"] * 3)[:200]),
        ("locked.pdf", encrypted_pdf()),
        ("photo.jpg", os.urandom(4096)),
        ("bomb.png", bomb_png()),
        ("../../etc/evil.png", page_png(seed=91)),
        ("good-1.png", page_png(seed=92)),
        ("good-2.pdf", good_pdf),
    ]
    outcomes = {o["source"]: o for o in any_client.add_pages(project, upload)}
    statuses = [o["status"] for o in outcomes.values()]
    assert statuses == ["rejected"] * 6 + ["added"] * 2, outcomes

    expect = {
        "empty.png": "empty",
        "truncated.pdf": "corrupt",
        "locked.pdf": "encrypted",
        "photo.jpg": "unsupported type",
        "bomb.png": "too many pixels",
    }
    for name, reason in expect.items():
        assert outcomes[name]["reason"] == reason, outcomes[name]
        assert name in outcomes[name]["error"]
    evil = next(o for o in outcomes.values() if "evil" in o["source"])
    assert evil["reason"] == "bad file name" and "plain name" in evil["error"]
    assert "password" in outcomes["locked.pdf"]["error"]

    df = any_client.pages(project)
    assert len(df) == 3  # 1 PNG + 2 PDF pages: nothing of the rejected files was stored
    job = any_client.process_pending(project)
    final = any_client.wait(job["task_id"], progress=False, timeout=120)
    assert final["status"] == "completed" and final["result"]["completed"] == 3


def test_identical_content_is_reported_not_stored_twice(client: Client, project: dict) -> None:
    data = page_png(seed=7)
    first, again = client.add_pages(project, [("a.png", data), ("copy-of-a.png", data)])
    assert first["status"] == "added" and again["status"] == "duplicate"
    assert again["duplicates"] == first["page_ids"]
    assert "already in this project" in again["error"]
    assert client.count_pages(project) == 1


def test_explicit_page_number_and_next_free_number(client: Client, project: dict) -> None:
    [o28] = client.add_pages(project, [("page28.png", page_png(seed=28))], page_number=28)
    assert o28["page_numbers"] == [28]
    [nxt] = client.add_pages(project, [("next.png", page_png(seed=29))])
    assert nxt["page_numbers"] == [29]
    [clash] = client.add_pages(project, [("clash.png", page_png(seed=30))], page_number=28)
    assert clash["status"] == "rejected" and "page number 28 is already used" in clash["error"]


# -- several workers -------------------------------------------------------------------------


def test_two_workers_with_different_host_names_share_one_batch(client: Client) -> None:
    env = runtime.worker_env(client.settings, client.broker_url)
    second = subprocess.Popen(
        runtime.worker_command(1, hostname="second@otherhost"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: any(w["name"] == "second@otherhost" for w in client.workers()),
            timeout=90,
            what="the second worker to answer",
        )
        project = new_project(client, ["slow"])
        add_generated(client, project, 8)
        job = client.process_pending(project)
        final = client.wait(job["task_id"], progress=False, timeout=180)
        assert final["status"] == "completed" and final["result"]["completed"] == 8
        workers = set(client.pages(project).worker)
        assert "second@otherhost" in workers
        assert any(w.startswith("local-") for w in workers), workers
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)


def test_cancelling_a_finished_task_keeps_its_outcome(client: Client, project: dict) -> None:
    [pid] = add_generated(client, project, 1)
    job = client.process_page(project, pid)
    client.wait(job["task_id"], progress=False, timeout=60)
    after = client.cancel(job["task_id"])
    assert after["status"] == "completed" and after["cancelled_pages"] == 0
    assert client.status(job["task_id"])["status"] == "completed"


# -- the job contract's rows, without workers ------------------------------------------------


def rows_of(store: Store, task_id: str) -> dict[int, tuple[str, str]]:
    """``{page id: (job page state, page status)}`` of a job."""
    with store.read() as s:
        found = s.execute(
            select(JobPage.page_id, JobPage.state, Page.status)
            .join(Page, Page.id == JobPage.page_id)
            .where(JobPage.job_id == task_id)
        ).all()
    return {pid: (state, status) for pid, state, status in found}


def test_cancel_moves_exactly_the_queued_pages_and_results_follow_the_job(empty_db: str) -> None:
    """On a database of its own (no worker sends anything): pages a "worker" holds or has
    finished keep their state, the queued ones are cancelled in both tables and counted
    once, a second cancel moves nothing, and a page another job took later shows no
    result of that job in this one's."""
    store = Store(empty_db)
    project = store.create_project("cancel-rows")
    add_page_rows(store, project.id, 10, source="ten.pdf")
    task_id, ids, first = rows.claim(store, project.id, None, [PageState.PENDING], "batch")
    assert first == 1 and ids == store.page_ids(project.id, [PageState.QUEUED])
    stale = utcnow() - timedelta(hours=1)
    assert (
        len(held.claim_pages(store, task_id, ids[:4], "w1", stale_before=stale, max_attempts=3))
        == 4
    )
    held.finish_page(
        store, task_id, ids[2], PageState.COMPLETED, fields={"words": 5, "confidence": 91.25}
    )
    held.finish_page(store, task_id, ids[3], PageState.FAILED, error="unreadable")

    out = jobs.cancel(store, task_id)
    assert out == {
        "task_id": task_id,
        "status": JobState.PROCESSING,
        "current": 8,
        "total": 10,
        "cancelled_pages": 6,
    }
    both = rows_of(store, task_id)
    assert [both[pid] for pid in ids] == [(PageState.PROCESSING,) * 2] * 2 + [
        (PageState.COMPLETED,) * 2,
        (PageState.FAILED,) * 2,
    ] + [(PageState.CANCELLED,) * 2] * 6
    assert jobs.cancel(store, task_id)["cancelled_pages"] == 0  # nothing left to move

    held.finish_page(store, task_id, ids[0], PageState.COMPLETED, fields={"words": 3})
    held.finish_page(store, task_id, ids[1], PageState.COMPLETED, fields={"words": 4})
    final = jobs.cancel(store, task_id)
    assert final["status"] == JobState.CANCELLED and final["cancelled_pages"] == 0
    result = final["result"]
    assert (result["total"], result["completed"], result["failed"], result["cancelled"]) == (
        10,
        3,
        1,
        6,
    )
    assert [r["page_id"] for r in result["results"]] == ids
    assert result["results"][2] == {
        "page_id": ids[2],
        "page_number": 3,
        "status": PageState.COMPLETED,
        "words": 5,
        "confidence": 91.25,
        "error": None,
    }
    assert result["results"][3]["error"] == "unreadable"

    # A later job takes two cancelled pages (in the caller's order) and completes one.
    later, again, first = rows.claim(store, project.id, [ids[5], ids[4]], [], "batch")
    assert again == [ids[5], ids[4]] and first == 6
    held.claim_pages(store, later, again, "w1", stale_before=stale, max_attempts=3)
    held.finish_page(store, later, ids[5], PageState.COMPLETED, fields={"words": 7})
    mine = jobs.status(store, task_id)["result"]["results"]
    assert mine[5] == {
        "page_id": ids[5],
        "page_number": 6,
        "status": PageState.CANCELLED,
        "words": None,
        "confidence": None,
        "error": None,
    }
    assert mine[2]["words"] == 5  # still this job's result
    assert jobs.cancel(store, later)["cancelled_pages"] == 0  # ids[4] is processing
    assert rows_of(store, later) == {
        ids[5]: (PageState.COMPLETED,) * 2,
        ids[4]: (PageState.PROCESSING,) * 2,
    }


def ddl_of_opening(url: str) -> list[str]:
    """The DDL statements a new :class:`Store` on ``url`` runs."""
    statements: list[str] = []
    listener = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(Engine, "before_cursor_execute", listener)
    try:
        Store(url)
    finally:
        event.remove(Engine, "before_cursor_execute", listener)
    return [q for q in statements if q.lstrip().upper().startswith(("ALTER", "CREATE", "DROP"))]


def test_a_whole_thumbnail_index_from_an_older_pagekit_is_made_partial_once(
    empty_db: str,
) -> None:
    """Pages with no thumbnail (never processed) have no entry in its index, so queueing
    and cancelling them skips it; a database made before keeps its name, made again."""
    Store(empty_db)
    with engine_for(empty_db, write=True).begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_pages_thumbnail")
        conn.exec_driver_sql("CREATE INDEX ix_pages_thumbnail ON pages (thumbnail)")
    ddl = ddl_of_opening(empty_db)
    assert len(ddl) == 2 and ddl[0].startswith("DROP INDEX"), ddl
    assert "WHERE thumbnail IS NOT NULL" in ddl[1], ddl
    assert ddl_of_opening(empty_db) == []
