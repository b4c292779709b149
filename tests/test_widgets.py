"""The notebook panels, asserted through their widget values on a real runtime."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from conftest import new_project

from pagekit import _pagegen
from pagekit.client import Client
from pagekit.widgets import (
    Dashboard,
    JobMonitor,
    LauncherPanel,
    MonitorPanel,
    PagesPanel,
    UploadPanel,
    WorkersPanel,
)

pytest.importorskip("ipywidgets")


def until(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def png(text: str) -> bytes:
    """A small page with known text (fast to OCR)."""
    return _pagegen.image_bytes(_pagegen.text_image(text, width=500, height=260, font_size=28))


def entry(name: str, mime: str, data: bytes) -> dict:
    """One file as ipywidgets 8 puts it in FileUpload.value (content is a memoryview)."""
    return {
        "name": name,
        "type": mime,
        "size": len(data),
        "content": memoryview(data),
        "last_modified": datetime.now(timezone.utc),
    }


WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def add(client: Client, project: dict, n: int, tag: str) -> list[int]:
    outcomes = client.add_pages(
        project, [(f"{tag}-{i}.png", png(f"{tag} page {WORDS[i]}")) for i in range(n)]
    )
    return [pid for o in outcomes for pid in o["page_ids"]]


def test_upload_takes_fileupload_values_and_shows_each_outcome(client: Client) -> None:
    proj = new_project(client)
    panel = UploadPanel(client, proj)
    assert panel.project == proj["project_id"]
    added: list = []
    panel.on_added.append(added.append)
    page = png("upload panel words")
    pdf = _pagegen.text_pdf(["first pdf page text", "second pdf page text"])
    # What ipywidgets 8 puts in FileUpload.value: a tuple of dicts with memoryview content.
    panel.upload.value = (
        entry("one.png", "image/png", page),
        entry("two.pdf", "application/pdf", pdf),
        entry("junk.png", "image/png", b"not a png"),
    )
    assert [o["status"] for o in added[0]] == ["added", "added", "rejected"]
    html = panel.result.value
    assert "one.png: added 1 page (page 1)" in html
    assert "two.pdf: added 2 pages (page 2-3)" in html
    assert "rejected" in html and "junk.png" in html
    assert panel.upload.value == ()  # cleared for the next files
    assert client.count_pages(proj) == 3
    # Same bytes again: a duplicate, nothing stored twice.
    panel.add_files([("again.png", page)])
    assert "duplicate" in panel.result.value
    # A page number for a single file.
    panel.page_number.value = 40
    [o] = panel.add_files([("forty.png", png("page forty"))])
    assert o["page_numbers"] == [40] and "(page 40)" in panel.result.value
    assert panel.page_number.value == 0


def test_upload_creates_and_selects_a_new_project(client: Client) -> None:
    panel = UploadPanel(client)
    seen: list = []
    panel.on_project.append(seen.append)
    panel.new_name.value = "widget-made-project"
    panel.create_button.click()
    pid = client.project("widget-made-project")["project_id"]
    assert panel.project == pid and seen == [pid]
    assert not panel.upload.disabled
    panel.add_files([("new.png", png("a page for the new project"))])
    assert seen == [pid]  # relabelled options ("1 page") are not a project change
    assert panel.project_picker.label == "widget-made-project (1 page)"


def test_pages_table_pages_filters_and_shows_a_page(client: Client) -> None:
    proj = new_project(client)
    ids = add(client, proj, 7, "tbl")
    panel = PagesPanel(client, proj, page_size=3)
    assert len(panel.table.options) == 3
    assert panel.position.value == "1-3 of 7 pages"
    assert panel.prev_button.disabled and not panel.next_button.disabled
    panel.next_button.click()
    panel.next_button.click()
    assert panel.position.value == "7-7 of 7 pages" and panel.next_button.disabled
    assert [v for _, v in panel.table.options] == [ids[6]]
    assert "pending" in panel.table.options[0][0]
    # Process one page, then filter on "completed".
    job = client.process_batch(proj, [ids[0]])
    client.wait(job["task_id"], timeout=120, progress=False)
    panel.status_filter.value = "completed"
    assert panel.position.value == "1-1 of 1 pages"
    label, value = panel.table.options[0]
    assert value == ids[0] and "completed" in label
    panel.table.value = (ids[0],)
    assert "tbl page alpha" in panel.text.value.lower()
    assert panel.thumbnail.value[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb")
    assert "<b>completed</b>" in panel.details.value


def test_launcher_is_disabled_with_nothing_pending_and_launches(client: Client) -> None:
    proj = new_project(client)
    pages = PagesPanel(client, proj)
    launcher = LauncherPanel(client, proj, pages=pages)
    assert launcher.process_all.disabled and launcher.process_selected.disabled
    assert launcher.retry.disabled
    ids = add(client, proj, 2, "launch")
    launcher.refresh()
    pages.refresh()
    assert not launcher.process_all.disabled and "2 pending" in launcher.summary.value
    pages.table.value = (ids[1],)
    assert not launcher.process_selected.disabled
    jobs: list = []
    launcher.on_launch.append(jobs.append)
    launcher.process_selected.click()
    assert jobs[-1]["page_ids"] == [ids[1]]
    launcher.process_all.click()
    assert jobs[-1]["page_ids"] == [ids[0]]
    assert launcher.process_all.disabled  # nothing pending any more
    assert "Queued 1 page" in launcher.message.value


def test_monitor_draws_progress_and_goes_green(client: Client) -> None:
    proj = new_project(client, ["slow"])  # 1.5 s a page: the job is surely running at first
    add(client, proj, 3, "mon")
    job = client.process_pending(proj)
    done: list = []
    mon = JobMonitor(client, job["task_id"], interval=0.2, on_done=done.append, start=False)
    texts: list[str] = []
    mon.bar_text.observe(lambda c: texts.append(c["new"]), "value")
    mon.start()
    assert texts and texts[0].startswith(("Queued", "Processing page")), texts
    until(lambda: bool(done), 120, "the job to finish")
    assert mon.bar.value == 3 and mon.bar.max == 3 and mon.bar.description == "100%"
    assert mon.bar.bar_style == "success"
    assert mon.bar_text.value == "Completed: 3 completed of 3 pages"
    assert texts[-1] == mon.bar_text.value
    assert any(t.startswith("Processing page") for t in texts), texts
    assert mon.counts.value == "3 completed · 0 failed"
    assert mon.cancel_button.disabled and mon.clock.value.startswith("took ")
    assert [d["status"] for d in done] == ["completed"]  # on_done ran once


def test_monitor_goes_red_when_pages_fail(client: Client) -> None:
    proj = new_project(client, ["crash"])
    add(client, proj, 2, "red")
    job = client.process_pending(proj)
    mon = JobMonitor(client, job["task_id"], interval=0.2)
    until(lambda: mon.cancel_button.disabled, 120, "the job to finish")
    assert mon.bar.bar_style == "danger"
    assert "2 failed" in mon.counts.value


def test_cancel_button_cancels_a_running_job(client: Client) -> None:
    proj = new_project(client, ["slow"])
    add(client, proj, 6, "cancel")
    job = client.process_pending(proj)
    mon = JobMonitor(client, job["task_id"], interval=0.2)
    until(lambda: mon.status.get("status") == "processing", 60, "the job to start")
    # A status is drawn before anyone can read it.
    assert mon.bar_text.value.startswith("Processing page ")
    assert "ETA" in mon.clock.value
    mon.cancel_button.click()
    until(lambda: mon.done, 60, "the job to stop")
    # ... and a finished job is drawn final by then.
    assert mon.cancel_button.disabled and mon.bar.description == "100%"
    assert mon.status["status"] == "cancelled"
    assert mon.bar.bar_style == "warning"
    assert "cancelled" in mon.counts.value
    assert client.count_pages(proj, "cancelled") >= 1


def test_dashboard_reattaches_running_jobs_and_refreshes_pages(client: Client) -> None:
    proj = new_project(client, ["slow"])
    add(client, proj, 6, "reattach")  # ~3 rounds of 1.5 s on 2 workers
    job = client.process_pending(proj)  # started "in another kernel"
    dash = Dashboard(client, proj, interval=0.2)
    try:
        assert job["task_id"] in dash.monitor.monitors
        mon = dash.monitor.monitors[job["task_id"]]
        until(lambda: mon.cancel_button.disabled, 120, "the job to finish")
        # The Pages table refreshed itself when the job completed.
        until(
            lambda: all("completed" in label for label, _ in dash.pages.table.options),
            10,
            "the table to show completed pages",
        )
        assert len(dash.pages.table.options) == 6
        assert dash.launcher.process_all.disabled
    finally:
        dash.close()


def test_monitor_panel_keeps_one_bar_per_job(client: Client) -> None:
    proj = new_project(client)
    add(client, proj, 1, "panel")
    job = client.process_pending(proj)
    panel = MonitorPanel(client, interval=0.2)
    a = panel.attach(job["task_id"])
    assert panel.attach(job["task_id"]) is a and len(panel.box.children) == 1
    until(lambda: a.cancel_button.disabled, 120, "the job to finish")
    panel.clear_finished()
    assert panel.monitors == {} and "No jobs running" in panel.box.children[0].value


def test_workers_panel_lists_workers_and_queue(client: Client) -> None:
    panel = WorkersPanel(client)
    assert panel.workers and panel.warning.value == ""
    assert "concurrency" in panel.table.value and "queue depth" in panel.table.value
    assert f"http://127.0.0.1:{client.settings.flower_port}/" in panel.flower.value


def test_workers_panel_warns_with_the_fix_when_no_worker_answers(client: Client) -> None:
    # The session's Redis, another database number: a broker no worker listens on
    # (a wrong PAGEKIT_BROKER_URL, "Tasks stuck in PENDING").
    base, _db = client.broker_url.rsplit("/", 1)
    lonely = Client(
        broker_url=f"{base}/9",
        database_url=client.settings.db_url,
        blob_dir=client.settings.blob_path,
    )
    try:
        panel = WorkersPanel(lonely, timeout=0.5)
        assert panel.workers == []
        assert "No worker is answering" in panel.warning.value
        assert "pagekit up" in panel.warning.value and "pagekit doctor" in panel.warning.value
    finally:
        lonely.close()
