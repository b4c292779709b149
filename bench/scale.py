"""Scale: what a 100,000-page project costs (issue #13), each figure next to its goal.

    .venv/bin/python bench/scale.py [--pages 10000] [--processes 2]
    .venv/bin/python bench/scale.py --pages 100000 [--on-postgres]
    .venv/bin/python bench/scale.py --two-hosts [--ocr-pages 40] [--processes 2]

The default mode starts a fresh embedded runtime (private Redis, Celery workers, SQLite)
in a temporary PAGEKIT_HOME and goes through the public API only (``pagekit.client.Client``
and, for the dashboard, ``pagekit.widgets``). Its pages are PDF pages with a real text
layer (generated with ``pagekit._pagegen.text_pdf``, every page's text different), so no
OCR runs and what is measured is pagekit's own cost. Two projects: one of 2,000 pages
(the issue's small figures, and the processing run) and one of N pages (``--pages``).
Each line prints the figure, what was measured, the goal and PASS or MISS; goals given
"at 10,000" or "at 100,000" pages are scaled linearly to N.

- ingest: ``client.add_pages`` of one N-page PDF (one 2,000-page PDF first, for scale),
  and the peak growth of the resident memory of the process doing it (a fresh child
  process each, so each ingest starts from the same memory). Flat: the N-page growth is at most the
  2,000-page growth plus 32 MB.
- ``pages()``: every row of the 2,000-page and of the N-page project, median of 3.
- dashboard: ``pagekit.widgets.Dashboard(client, project)`` on the N-page project, until
  it is constructed and returned (what the notebook cell or the Voila page waits for: the
  grid loads one screen of rows; the Workers panel shows "Checking workers…" and asks the
  workers on a background thread), the grid alone (``PagesPanel``), and the grid's jump to
  its last screen. For information: from the same start until the Workers panel has drawn
  its first answer, and one ``client.workers()``. Opened once untimed first: a kernel pays
  the widget libraries' imports once, whatever the project.
- text-layer pages/s: "Process All Pending" on the 2,000-page project with
  ``--processes`` worker processes, from ``process_pending`` to the last page's recorded
  finish, against a plain loop (a multiprocessing pool of as many processes, one page
  per task) extracting the text of the same one-page PDFs with pypdf; each side best of
  ``--rounds`` (pagekit's later rounds queue the same pages again with ``process_batch``).
  Goal: >= 0.3 of the plain loop. The enqueue of the 2,000 pages (``process_pending``
  returning) is its own figure; a line says how much of pagekit's time per page its
  pipeline spends (the pages' own ``timings``) and on what.
- worker RSS: each worker process's resident memory (``/proc/<pid>/status`` VmRSS of the
  Celery main process and its pool processes, from ``client.workers()``) before the first
  round and after at least 5,000 pages (untimed rounds are added when the timed ones
  process fewer).
- enqueue N: ``process_pending`` on the N-page project.
- ``status(task_id)``: median of many calls on a 100-page job and on the N-page job, both
  unfinished (the 100 pages queued behind the N pages); and, for information, on the
  finished 2,000-page job, whose answer carries every page's result.
- HTTP: the API's ``process-pending`` and ``process-batch`` (all N ids) on the N-page
  project, in-process (FastAPI's ``TestClient``), from the request until the reply is
  read; the project's pages are set back to pending before each, and each job cancelled.
- cancel: from ``cancel()`` on the N-page job until its status is final (what a progress
  bar sees), once after the status figures (seconds after the enqueue: a worker has
  claimed most pages) and once the moment ``process_pending`` returns (the cancel takes
  the pages nobody claimed yet itself). Then, for information, how fast the workers
  discard the cancelled job's messages still in the broker (a job queued after the cancel
  waits behind them).

``--on-postgres``: the same run with the embedded runtime's database a scratch PostgreSQL
database (made on the ``--postgres`` server, dropped afterwards) instead of SQLite: every
process of the run, ingest and workers included, uses it.

``--two-hosts`` (issue point 6): a shared broker and PostgreSQL, and `pagekit worker`
processes named as hosts (``-n host-a@%h``, ``-n host-b@%h``), each with a home of its
own and a shared blob directory, as on separate machines. The broker is RabbitMQ on a
scratch virtual host made with ``rabbitmqctl`` and deleted afterwards (``--broker URL``
for another; nothing else may consume its queues); the database is a scratch database
made on the ``--postgres`` server and dropped afterwards. The same generated image pages
(real OCR, ``--ocr-pages``) are OCR'd by one host running ``--processes`` worker
processes, then by two hosts running half as many each, ``--rounds`` times (the best of
each counts: the machine's load drifts). It prints pages/s of each and the ratio, and
checks that every page was done exactly once (the page tasks each host's worker ran,
from ``client.workers()``, against the pages it is recorded for in the ``worker``
column of ``client.pages()``) and that both hosts got pages. Both ways the same
processes share this machine's cores: the ratio shows what splitting the work across
hosts costs, not a speed-up.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

from pagekit import _pagegen as gen  # noqa: E402

if TYPE_CHECKING:
    from pagekit.client import Client

SMALL = 2_000  # the small figures: enqueue, pages() and the processing run
MB = 1024 * 1024
RUNNING = ("queued", "processing")
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RABBIT_HOST = "127.0.0.1:5672"
HOSTS = ["host-a", "host-b"]


# -- output -------------------------------------------------------------------------------


def line(name: str, value: str, goal: str = "", ok: bool | None = None) -> None:
    """One figure: name, what was measured, the goal, and PASS / MISS (none: information)."""
    verdict = "" if ok is None else "PASS" if ok else "MISS"
    print(f"{name:<44} {value:<24} {goal:<34} {verdict}".rstrip(), flush=True)


def note(text: str) -> None:
    """A remark under the figures, wrapped."""
    print(textwrap.fill(text, 100, initial_indent="  ", subsequent_indent="    "), flush=True)


def load_average() -> str:
    """The machine's load: timings on a busy machine (other work, CPUs shared) vary."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def secs(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def utcnow() -> datetime:
    """Naive UTC, as pagekit stores times."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def median_time(call: Callable[[], Any], *, runs: int = 3, budget: float = 0.0) -> float:
    """Median seconds of ``call``: ``runs`` times, or as many as fit in ``budget`` seconds."""
    times: list[float] = []
    stop = time.perf_counter() + budget
    while len(times) < runs or time.perf_counter() < stop:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- pages ----------------------------------------------------------------------------------


def text_pdf(n: int, label: str) -> bytes:
    """An ``n``-page PDF with a text layer; every page's text (and so its bytes) differs."""
    texts = gen.SAMPLE_TEXTS
    return gen.text_pdf(
        [f"{texts[i % len(texts)]} Folio {i + 1} of the {label} box." for i in range(n)]
    )


def ocr_pages(n: int) -> list[bytes]:
    """Letter-size page images with known text, that need real OCR (as bench/throughput.py)."""
    texts = gen.SAMPLE_TEXTS
    out = []
    for i in range(n):
        text = " ".join(texts[j % len(texts)] for j in range(i, i + 2))
        img = gen.text_image(f"{text} Page {i}.", width=1275, height=1650, font_size=28)
        out.append(gen.image_bytes(img, "PNG"))
    return out


# -- memory ---------------------------------------------------------------------------------


def vm_kb(field: str, pid: int | str = "self") -> int | None:
    """A ``/proc/<pid>/status`` field in kB (VmRSS, VmHWM), None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:  # noqa: PTH123
            for row in f:
                if row.startswith(field + ":"):
                    return int(row.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> None:
    """Start the peak resident size (VmHWM) afresh from the current one (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:  # noqa: PTH123
        f.write("5")


def _ingest_child(home: str, project: str, name: str, data: bytes, conn: Any) -> None:
    """In a child process: add one PDF; send back (seconds, peak RSS growth, pages, outcome)."""
    from pagekit.client import Client

    client = Client(home=home, start=False)
    reset_peak_rss()
    before = vm_kb("VmRSS") or 0
    t0 = time.perf_counter()
    out = client.add_pages(project, [(name, data)])
    elapsed = time.perf_counter() - t0
    growth = ((vm_kb("VmHWM") or 0) - before) * 1024
    conn.send((elapsed, growth, len(out[0]["page_ids"]), out[0]["status"], out[0]["error"]))
    conn.close()


def ingest(home: str, project: str, name: str, data: bytes) -> tuple[float, int]:
    """``client.add_pages`` of one PDF in a fresh child: (seconds, peak RSS growth bytes)."""
    ctx = get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_ingest_child, args=(home, project, name, data, child))
    proc.start()
    child.close()
    elapsed, growth, pages, status, error = parent.recv()
    proc.join()
    assert status == "added", (status, error)
    note(f"{name}: {pages} pages {status}")
    return elapsed, growth


def worker_rss(client: Client) -> dict[int, int | None]:
    """VmRSS (kB) of every worker process: each Celery main process and its pool."""
    out: dict[int, int | None] = {}
    for w in client.workers():
        for pid in [w["pid"], *w["processes"]]:
            out[int(pid)] = vm_kb("VmRSS", pid)
    return out


# -- the plain loop ---------------------------------------------------------------------------


def _plain_text(data: bytes) -> int:
    """What a hand-written loop does: open the one-page PDF, extract its text, count words."""
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(data)).pages[0].extract_text().split())


def plain(pages: list[bytes], processes: int) -> float:
    """Seconds for a pool of ``processes`` to extract the text of ``pages`` with pypdf.

    Spawned, not forked: a child forked from a process holding broker connections runs
    kombu's after-fork clean-up on the inherited sockets, and can hang there.
    """
    with get_context("spawn").Pool(processes) as pool:
        pool.map(_plain_text, pages[: processes * 4], chunksize=1)  # warm up: imports
        t0 = time.perf_counter()
        words = pool.map(_plain_text, pages, chunksize=1)
        elapsed = time.perf_counter() - t0
    assert all(w > 20 for w in words)
    return elapsed


# -- jobs through the public API ---------------------------------------------------------------


def finished_at(client: Client, task_id: str) -> datetime:
    """When the job's last page was recorded as finished."""
    return client.jobs(task_id=task_id).iloc[0]["finished_at"]


def cancel_until_final(client: Client, task_id: str) -> tuple[float, float, dict[str, Any]]:
    """Seconds from ``cancel()`` until the job's status is final, of which ``cancel()``
    itself, and that status."""
    t0 = time.perf_counter()
    status: dict[str, Any] = dict(client.cancel(task_id))
    call = time.perf_counter() - t0
    while status["status"] in RUNNING:
        time.sleep(0.01)
        status = dict(client.status(task_id))
    return time.perf_counter() - t0, call, status


def drain(client: Client, limit: float) -> tuple[int, int, float]:
    """Watch the broker's queue shrink for at most ``limit`` s: (start, end, seconds)."""
    start = client.queue_depth()
    t0 = time.perf_counter()
    depth = start
    while depth and time.perf_counter() - t0 < limit:
        time.sleep(1.0)
        depth = client.queue_depth()
    return start, depth, time.perf_counter() - t0


def open_dashboard(client: Client, project: dict[str, Any], n: int, warm: dict[str, Any]) -> None:
    """Time the dashboard opening on the project, and its grid's jump to the last screen.

    The opening is timed until ``Dashboard(...)`` returns; the Workers panel's first
    answer (drawn from a background thread) is timed from the same start, for
    information. It is opened once on ``warm`` first, untimed: the widget libraries'
    imports are paid once per kernel, whatever the project.
    """
    try:
        from pagekit.widgets import Dashboard, PagesPanel
    except ImportError as exc:
        line("dashboard open", "not measured here", f"needs pagekit[notebook] ({exc.name})")
        return
    warm_board = Dashboard(client, warm["project_id"])
    warm_board.workers.wait(30)  # its background check would overlap the timed open
    warm_board.close()
    t0 = time.perf_counter()
    board = Dashboard(client, project["project_id"])
    opened = time.perf_counter() - t0
    answered = board.workers.wait(30)
    first_answer = time.perf_counter() - t0
    try:
        line(f"dashboard open ({n:,} pages)", secs(opened), "< 2 s", opened < 2)
        line(
            "  workers panel's first answer (background)",
            secs(first_answer) if answered else "none within 30 s",
        )
        t0 = time.perf_counter()
        PagesPanel(client, project["project_id"])
        alone = time.perf_counter() - t0
        line("  the grid alone (PagesPanel)", secs(alone), "< 2 s", alone < 2)
        t = median_time(lambda: client.workers(timeout=1.0))
        line("  client.workers() (what the panel asks)", secs(t))
        grid = board.pages
        t0 = time.perf_counter()
        grid.go(n - grid.page_size)
        last = time.perf_counter() - t0
        assert grid.page_ids, "the grid's last screen is empty"
        line("grid: jump to the last screen", secs(last), "< 2 s", last < 2)
    finally:
        board.close()


# -- the default mode: one host, the embedded runtime ------------------------------------------


def scale(n: int, processes: int, rounds: int, drain_limit: float, database: str | None) -> None:
    from pagekit.client import Client

    small_n = min(SMALL, n)
    where = "PostgreSQL (a scratch database)" if database else "SQLite"
    print(
        f"{n:,} text-layer PDF pages; {processes} worker processes; embedded runtime ({where}); "
        f"processing run: {min(SMALL, n):,} pages, best of {rounds}"
    )
    t0 = time.perf_counter()
    small_pdf, big_pdf = text_pdf(small_n, "small"), text_pdf(n, "big")
    note(f"generated the PDFs in {time.perf_counter() - t0:.1f} s ({len(big_pdf) / MB:.1f} MB)")
    line("figure", "measured", "goal")
    # A fresh embedded runtime, whatever the environment names.
    for var in ("PAGEKIT_BROKER_URL", "PAGEKIT_DATABASE_URL", "PAGEKIT_BLOB_DIR"):
        os.environ.pop(var, None)
    if database:  # every process of the run (ingest children, workers) reads it
        os.environ["PAGEKIT_DATABASE_URL"] = database
    with tempfile.TemporaryDirectory(prefix="pagekit-scale-") as home:
        client = Client(home=home, workers=processes)
        try:
            small = client.create_project("small")
            big = client.create_project("big")

            # Ingest, before the runtime starts: only this process works.
            t_small, grow_small = ingest(home, "small", "small.pdf", small_pdf)
            t_big, grow_big = ingest(home, "big", "big.pdf", big_pdf)
            del small_pdf, big_pdf
            goal = 5 * n / 10_000
            line(
                f"ingest {n:,}-page PDF (add_pages)",
                secs(t_big),
                f"< {goal:g} s (5 s per 10,000)",
                t_big < goal,
            )
            line(f"  ingest {small_n:,}-page PDF, for scale", secs(t_small))
            line(
                f"ingest peak RSS growth, {n:,} pages",
                f"{grow_big / MB:.0f} MB",
                f"flat: <= {grow_small / MB:.0f} + 32 MB",
                grow_big <= grow_small + 32 * MB,
            )
            line(f"  ingest peak RSS growth, {small_n:,} pages", f"{grow_small / MB:.0f} MB")

            # Every row of each project (not processed yet: the same columns, some empty).
            client.pages(small, limit=1)  # imports pandas
            t = median_time(lambda: client.pages(small))
            line(f"pages(), {small_n:,} rows", secs(t), "< 100 ms", t < 0.1)
            goal = max(0.1, 2 * n / 100_000)
            t = median_time(lambda: client.pages(big))
            line(f"pages(), {n:,} rows", secs(t), f"< {secs(goal)} (2 s per 100,000)", t < goal)
            t = median_time(lambda: client.pages(big, limit=50, offset=n - 50))
            line("  pages(limit=50), the last screen", secs(t))

            client.wait_for_workers(timeout=90)
            open_dashboard(client, big, n, warm=small)
            text_layer_run(client, small, small_n, processes, rounds)
            big_job(client, small, big, n, drain_limit)
        finally:
            client.shutdown()


# Pages the workers process between the two readings of their memory (the issue's "RSS
# growth over 5,000 pages"): the timed rounds, then untimed ones if those are fewer.
RSS_PAGES = 5000


def text_layer_run(
    client: Client, small: dict[str, Any], n: int, processes: int, rounds: int
) -> None:
    """Process the small project's text-layer pages, best of ``rounds``; against pypdf in a
    plain pool, best of as many. Worker memory is read before the first and after the last."""
    warm = client.create_project("warm-up")
    client.add_pages(warm, [("warm.pdf", text_pdf(4 * processes, "warm-up"))])
    client.wait(client.process_pending(warm)["task_id"], progress=False, interval=0.1)

    rss_before = worker_rss(client)
    runs: list[float] = []
    ids: list[int] = []
    for round_ in range(rounds):
        t0 = utcnow()
        t = time.perf_counter()
        # The first round is "Process All Pending"; the next ones queue the same pages again.
        job = client.process_batch(small, ids) if ids else client.process_pending(small)
        enqueued = time.perf_counter() - t
        final = client.wait(job["task_id"], progress=False, interval=0.5)
        runs.append((finished_at(client, job["task_id"]) - t0).total_seconds())
        assert final["status"] == "completed", final["status"]
        assert final["result"]["completed"] == n, final["result"]
        if round_ == 0:
            line(
                f"enqueue {n:,} pages (process_pending)", secs(enqueued), "< 0.2 s", enqueued < 0.2
            )
            df = client.pages(small)
            sources = df.text_source.value_counts().to_dict()
            assert sources == {"text-layer": n}, f"not all pages used their text layer: {sources}"
            ids = [int(i) for i in df.page_id]
    processed = rounds * n
    while processed < RSS_PAGES:  # untimed rounds, until the workers have done enough pages
        job = client.process_batch(small, ids)
        client.wait(job["task_id"], progress=False, interval=0.5)
        processed += n
    rss_after = worker_rss(client)

    data = [client.page_bytes(i) for i in ids]
    elapsed, t_plain = min(runs), min(plain(data, processes) for _ in range(rounds))
    kit, base = n / elapsed, n / t_plain
    line(
        f"text-layer pages/s, {processes} processes",
        f"{kit:.1f} pages/s ({elapsed:.0f} s)",
        f">= 0.3 x plain = {0.3 * base:.0f}",
        kit >= 0.3 * base,
    )
    line("  plain pypdf loop, same pages", f"{base:.1f} pages/s ({t_plain:.1f} s)")
    line("  ratio pagekit / plain", f"{kit / base:.3f}", ">= 0.3")
    # Where a page's time goes: the pipeline's own timings, against the wall time per page.
    sample = ids[:: max(1, n // 50)]
    stages: dict[str, list[float]] = {}
    for pid in sample:
        for stage, s in (client.page(pid)["timings"] or {}).items():
            stages.setdefault(stage, []).append(s)
    inside = statistics.median(stages.pop("total", [0.0]))
    parts = ", ".join(f"{k} {statistics.median(v) * 1000:.1f}" for k, v in stages.items())
    note(
        f"per page and process: {processes / kit * 1000:.0f} ms wall, of which the pipeline's "
        f"own total {inside * 1000:.0f} ms (median ms by stage: {parts})"
    )

    note(f"worker memory read before and after {processed:,} pages")
    for pid, before in sorted(rss_before.items()):
        after = rss_after.get(pid)
        if before is None or after is None:
            line(f"worker RSS growth, pid {pid}", "process gone or new", "< 50 MB", False)
            continue
        grew = (after - before) / 1024
        line(
            f"worker RSS growth, pid {pid}",
            f"{grew:+.1f} MB ({after / 1024:.0f} MB)",
            "< 50 MB per process",
            grew < 50,
        )
    for pid in sorted(set(rss_after) - set(rss_before)):
        line(f"worker RSS growth, pid {pid}", "new process during the run", "< 50 MB", False)


def big_job(
    client: Client, small: dict[str, Any], big: dict[str, Any], n: int, drain_limit: float
) -> None:
    """Enqueue the N-page project, read its status, cancel it."""
    t = time.perf_counter()
    job = client.process_pending(big)
    enqueued = time.perf_counter() - t
    goal = n / 10_000
    line(
        f"enqueue {n:,} pages (process_pending)",
        secs(enqueued),
        f"< {goal:g} s (1 s per 10,000)",
        enqueued < goal,
    )
    first = [int(i) for i in client.pages(small, limit=100).page_id]
    job100 = client.process_batch(small, first)  # queued behind the N pages: unfinished

    t_small = median_time(lambda: client.status(job100["task_id"]), budget=2.0)
    t_big = median_time(lambda: client.status(job["task_id"]), budget=2.0)
    line(
        f"status(), {n:,}-page job",
        secs(t_big),
        "< 5 ms, <= 2 x the 100-page job",
        t_big < 0.005 and t_big <= 2 * t_small,
    )
    line("  status(), 100-page job", secs(t_small), "< 5 ms", t_small < 0.005)
    done = client.jobs(small).iloc[-1]  # the finished processing run, the oldest job
    t = median_time(lambda: client.status(done["task_id"]))
    line(
        f"  status(), finished {done['total']:,}-page job", secs(t), "(carries each page's result)"
    )

    took, call, final = cancel_until_final(client, job["task_id"])
    line(f"cancel {n:,}-page job until final", secs(took), "< 2 s", took < 2)
    result = final["result"]
    t = median_time(lambda: client.status(job["task_id"]))
    note(
        f"final: {final['status']}, {result.get('cancelled', 0):,} cancelled, "
        f"{result['completed']:,} completed of {result['total']:,}; cancel() itself took "
        f"{secs(call)}, and status() of the cancelled job (every page's result) takes {secs(t)}"
    )
    took, _, _ = cancel_until_final(client, job100["task_id"])
    line("  cancel 100-page job until final", secs(took), "< 2 s", took < 2)
    cancel_at_once(client, big, n)
    http_enqueue(client, big, n)

    if drain_limit <= 0:
        return
    start, left, spent = drain(client, drain_limit)
    rate = (start - left) / spent if spent else 0.0
    line("  cancelled jobs' messages in the broker", f"{start:,} -> {left:,} in {spent:.0f} s")
    wait = "for none" if not left else f"~{left / rate:.0f} s more" if rate else "(not draining)"
    note(f"the workers discard them at {rate:.0f}/s; a job queued now waits {wait}")


def all_pending(client: Client, project_id: int) -> None:
    """Set every page of the project back to pending (a benchmark's shortcut: no user
    does this)."""
    from sqlalchemy import update

    from pagekit.store import Page

    with client.store.write() as s:
        s.execute(
            update(Page)
            .where(Page.project_id == project_id)
            .values(status="pending", job_id=None, error=None)
        )


def cancel_at_once(client: Client, big: dict[str, Any], n: int) -> None:
    """Cancel the N-page job the moment ``process_pending`` returns: the pages a worker has
    not claimed yet are taken by the cancel itself, straight into ``cancelled``."""
    from pagekit.store import jobs as rows

    all_pending(client, big["project_id"])
    job = client.process_pending(big)
    found = rows.reservation(client.store, job["task_id"])
    claimed = n if found is None else found[1]
    took, _, final = cancel_until_final(client, job["task_id"])
    line(f"cancel {n:,}-page job right after enqueue", secs(took), "< 2 s", took < 2)
    note(
        f"{claimed:,} of {n:,} pages claimed when the cancel began; final: {final['status']}, "
        f"{final['result'].get('cancelled', 0):,} cancelled"
    )


def http_enqueue(client: Client, big: dict[str, Any], n: int) -> None:
    """The HTTP API's process-pending and process-batch on the N-page project, each from
    the request until the reply is read (in-process, as the tests call it: the route's
    work and the reply's JSON, without a network hop). The project's pages are set back
    to pending before each (a benchmark's shortcut: no user does this), and each job is
    cancelled after."""
    try:
        with warnings.catch_warnings():  # Starlette >= 1.x asks for httpx2; either works
            warnings.filterwarnings("ignore", message="Using `httpx` with `starlette")
            from fastapi.testclient import TestClient

        from pagekit import tokens
        from pagekit.api import create_app
    except ImportError as exc:
        line("HTTP enqueue", "not measured here", f"needs pagekit[api] ({exc.name})")
        return
    from sqlalchemy import select

    from pagekit.store import Job

    pid = big["project_id"]
    ids = [int(i) for i in client.pages(big).page_id]
    token = tokens.create(client.store, f"bench-{uuid.uuid4().hex[:8]}")
    with TestClient(create_app(client), headers={"Authorization": f"Bearer {token}"}) as api:
        for route, body in (("process-pending", None), ("process-batch", {"page_ids": ids})):
            all_pending(client, pid)
            t = time.perf_counter()
            reply = api.post(f"/tasks/projects/{pid}/{route}", json=body)
            took = time.perf_counter() - t
            assert reply.status_code == 200, reply.text
            assert reply.json()["total_pages"] == n
            label = f"HTTP {route}, {n:,} pages"
            line(label, secs(took), "< 1 s (issue: at 100,000)", took < 1)
            task_id = reply.json()["task_id"]
            reserved = select(Job.id).where(Job.id == task_id, Job.reserved.is_not(None))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with client.store.read() as s:
                    if s.scalar(reserved) is None:
                        break
                time.sleep(0.02)
            claimed = time.perf_counter() - t
            note(f"a worker had claimed all {n:,} pages {secs(claimed)} after the request")
            cancel_until_final(client, task_id)


# -- --two-hosts: a shared broker and PostgreSQL, workers as two hosts --------------------------


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@contextmanager
def scratch_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of our own (nobody else's tasks, queues or workers)."""
    vhost = f"pagekit-scale-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBIT_HOST}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """A PostgreSQL database of our own on ``server``, dropped afterwards (as the tests do)."""
    from sqlalchemy import create_engine, make_url

    name = f"pagekit_scale_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def start_host(name: str, tmp: Path, shared: dict[str, str], concurrency: int) -> Any:
    """`pagekit worker -n NAME@%h` with a home of its own, as on another machine.

    In a process group of its own (to stop it with its pool) but in this session: Linux
    shares the CPU fairly between sessions first (autogroups), so a host per session
    would get a bigger share of a busy machine the more hosts there are.
    """
    env = dict(os.environ, PAGEKIT_HOME=str(tmp / name), **shared)
    cmd = [str(Path(sys.executable).with_name("pagekit")), "worker"]
    cmd += ["-c", str(concurrency), "-n", f"{name}@%h"]
    group: dict[str, Any] = (
        {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    )
    with (tmp / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **group
        )


def stop_host(proc: Any) -> None:
    """SIGTERM the worker's process group (its pool), SIGKILL it if it lingers."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def hosts(client: Client, tmp: Path, shared: dict[str, str], **concurrency: int) -> Iterator[None]:
    """Run a worker per host (``host_a=2``: host-a with 2 processes) until the block ends."""
    names = {name.replace("_", "-"): c for name, c in concurrency.items()}
    procs = [start_host(name, tmp, shared, c) for name, c in names.items()]
    try:
        deadline = time.monotonic() + 90
        while not set(names) <= {w["name"].split("@")[0] for w in client.workers()}:
            assert time.monotonic() < deadline, f"workers {list(names)} never answered"
        yield
    finally:
        for proc in procs:
            stop_host(proc)


def tasks_run(client: Client) -> dict[str, int]:
    """Tasks each host's worker has run since it started (Celery's own count)."""
    return {w["name"].split("@")[0]: w["processed"] for w in client.workers()}


def ocr_run(client: Client, label: str, pages: list[bytes], names: list[str]) -> float:
    """OCR ``pages`` with the running hosts; checks exactly-once; returns pages/s."""
    n = len(pages)
    warm = client.create_project(f"warm-up for {label}")
    client.add_pages(warm, [(f"w{i}.png", p) for i, p in enumerate(pages[: 4 * len(names)])])
    client.wait(client.process_pending(warm)["task_id"], progress=False, timeout=300)

    project = client.create_project(label)
    client.add_pages(project, [(f"p{i:03d}.png", p) for i, p in enumerate(pages)])
    before = tasks_run(client)
    t0 = utcnow()
    job = client.process_pending(project)
    final = client.wait(job["task_id"], progress=False, interval=0.5, timeout=600)
    elapsed = (finished_at(client, job["task_id"]) - t0).total_seconds()
    after = tasks_run(client)

    assert final["status"] == "completed" and final["result"]["completed"] == n, final
    df = client.pages(project)
    assert list(df.status) == ["completed"] * n and df.text_source.eq("ocr").all()
    by_host = df.worker.str.split("@").str[0].value_counts().to_dict()
    ran = {h: after.get(h, 0) - before.get(h, 0) for h in names}
    # Exactly once: the workers ran as many page tasks as there are pages, and each host
    # ran as many as the pages it is recorded for (a page run twice shows as one more).
    once = sum(ran.values()) == n and all(ran[h] == by_host.get(h, 0) for h in names)
    line(f"{label}: OCR pages/s", f"{n / elapsed:.2f} pages/s ({elapsed:.1f} s)")
    line(
        "  each page done exactly once",
        f"{sum(ran.values())} tasks, {n} pages",
        "tasks run == pages, per host",
        once,
    )
    note(", ".join(f"{h}: {by_host.get(h, 0)} pages, {ran[h]} tasks run" for h in names))
    if len(names) > 1:
        got = sum(1 for h in names if by_host.get(h))
        line("  every host got pages", f"{got} of {len(names)} hosts", "all", got == len(names))
    return n / elapsed


def two_hosts(n: int, processes: int, rounds: int, broker: str | None, postgres: str) -> None:
    """One host, then two hosts, ``rounds`` times (the best of each counts: the machine's
    load drifts). Both ways run ``processes`` worker processes in all."""
    from pagekit.client import Client

    half = max(1, processes // 2)
    pages = ocr_pages(n)
    print(
        f"{n} OCR pages (1275x1650 PNG); one host `pagekit worker -c {processes}`, or two "
        f"hosts `-c {half}` each; best of {rounds}; PostgreSQL; a shared blob directory"
    )
    with (
        scratch_vhost() if broker is None else _given(broker) as broker_url,
        scratch_database(postgres) as db_url,
        tempfile.TemporaryDirectory(prefix="pagekit-scale-hosts-") as tmp_name,
    ):
        tmp = Path(tmp_name)
        shared = {
            "PAGEKIT_BROKER_URL": broker_url,
            "PAGEKIT_DATABASE_URL": db_url,
            "PAGEKIT_BLOB_DIR": str(tmp / "shared-blobs"),
        }
        note(f"broker {broker_url.split('@')[-1]}, database {db_url.rsplit('/', 1)[-1]}")
        client = Client(
            home=tmp / "client",
            broker_url=broker_url,
            database_url=db_url,
            blob_dir=shared["PAGEKIT_BLOB_DIR"],
        )
        try:
            line("figure", "measured", "goal")
            one = two = 0.0
            for r in range(1, rounds + 1):
                with hosts(client, tmp, shared, host_a=processes):
                    one = max(one, ocr_run(client, f"one host, round {r}", pages, ["host-a"]))
                with hosts(client, tmp, shared, host_a=half, host_b=half):
                    two = max(two, ocr_run(client, f"two hosts, round {r}", pages, HOSTS))
        finally:
            client.close()
    line("two hosts / one host", f"{two:.2f} / {one:.2f} = {two / one:.2f}", "(best of each)")
    note(
        f"Both ways {processes} worker processes share this machine's {os.cpu_count()} "
        "cores: this shows correct sharing (every page done exactly once, both hosts got "
        "pages) and what splitting the work across hosts costs, not a speed-up; on two "
        "machines each host brings its own cores."
    )


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=10_000, help="pages in the big project")
    ap.add_argument(
        "--processes",
        type=int,
        default=2,
        help="worker processes (--two-hosts: in all, on one host or split over two)",
    )
    ap.add_argument(
        "--drain-limit",
        type=float,
        default=60.0,
        help="seconds to watch cancelled messages drain (0: skip)",
    )
    ap.add_argument(
        "--rounds", type=int, default=2, help="best of N rounds of the processing runs, each side"
    )
    ap.add_argument("--two-hosts", action="store_true", help="the multi-host run instead")
    ap.add_argument("--ocr-pages", type=int, default=40, help="--two-hosts: pages to OCR")
    ap.add_argument("--broker", help="--two-hosts: broker URL (default: a scratch RabbitMQ vhost)")
    ap.add_argument(
        "--on-postgres",
        action="store_true",
        help="the default run with a scratch PostgreSQL database instead of SQLite",
    )
    ap.add_argument(
        "--postgres",
        default=POSTGRES,
        help="--two-hosts, --on-postgres: PostgreSQL server URL to make a scratch database on",
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    note(load_average())
    if args.two_hosts:
        two_hosts(args.ocr_pages, args.processes, args.rounds, args.broker, args.postgres)
    elif args.on_postgres:
        with scratch_database(args.postgres) as db_url:
            scale(args.pages, args.processes, args.rounds, args.drain_limit, db_url)
    else:
        scale(args.pages, args.processes, args.rounds, args.drain_limit, None)
    note(load_average())
    print(f"(whole run: {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
