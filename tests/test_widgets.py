"""The notebook panels, asserted through their widget values on a real runtime."""

from __future__ import annotations

import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from conftest import new_project
from test_flower import flower  # noqa: F401  (a real `pagekit flower`, as a fixture)

from pagekit import _pagegen
from pagekit.client import Client
from pagekit.config import Settings
from pagekit.errors import PagekitError
from pagekit.progress import format_seconds
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


def tiny_png(i: int) -> bytes:
    """A 1x1 PNG made unique by a text chunk: a page that costs nothing to store."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"tEXt", b"n\x00" + str(i).encode())
        + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + chunk(b"IEND", b"")
    )


def grid_column(panel: PagesPanel, header: str) -> list:
    """A column of the rows on screen, in the grid's data order."""
    return list(panel.shown[header])


# -- upload ---------------------------------------------------------------------------------


def test_upload_sums_up_outcomes_in_one_line_with_details_on_demand(client: Client) -> None:
    proj = new_project(client)
    panel = UploadPanel(client, proj)
    assert panel.project == proj["project_id"]
    assert panel.details_box.layout.display == "none"  # nothing uploaded yet
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
    assert "2 added (3 pages)" in panel.result.value and "1 rejected" in panel.result.value
    assert "<br>" not in panel.result.value  # one line, whatever the number of files
    # Each file's outcome is under "Details", folded.
    assert panel.details_box.layout.display == "" and panel.details_box.selected_index is None
    html = panel.details.value
    assert "one.png: added 1 page (page 1)" in html
    assert "two.pdf: added 2 pages (page 2-3)" in html
    assert "rejected" in html and "junk.png" in html
    assert panel.upload.value == ()  # cleared for the next files
    assert client.count_pages(proj) == 3
    # Same bytes again: a duplicate, nothing stored twice.
    panel.add_files([("again.png", page)])
    assert panel.result.value == "1 duplicate"
    assert "duplicate" in panel.details.value
    # A page number for a single file.
    panel.page_number.value = 40
    [o] = panel.add_files([("forty.png", png("page forty"))])
    assert o["page_numbers"] == [40] and "(page 40)" in panel.details.value
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


# -- the page grid --------------------------------------------------------------------------


def test_grid_pages_filters_and_shows_a_page_beside_its_text(client: Client) -> None:
    proj = new_project(client)
    ids = add(client, proj, 7, "tbl")
    panel = PagesPanel(client, proj, page_size=3)
    assert panel.page_ids == ids[:3] and len(panel.grid.get_visible_data()) == 3
    assert panel.position.value == "1-3 of 7 pages"
    assert panel.prev_button.disabled and not panel.next_button.disabled
    panel.next_button.click()
    panel.next_button.click()
    assert panel.position.value == "7-7 of 7 pages" and panel.next_button.disabled
    assert panel.page_ids == [ids[6]]
    assert grid_column(panel, "status") == ["pending"]
    # Process one page, then filter on "completed".
    job = client.process_batch(proj, [ids[0]])
    client.wait(job["task_id"], timeout=120, progress=False)
    panel.status_filter.value = "completed"
    assert panel.position.value == "1-1 of 1 pages"
    assert panel.page_ids == [ids[0]] and grid_column(panel, "status") == ["completed"]
    assert panel.counts.value == "<small>7 pages: 6 pending · 1 completed</small>"
    assert grid_column(panel, "words") == [3.0]
    # Its thumbnail is in the row; pending pages have none.
    assert grid_column(panel, "image")[0].startswith("data:image/jpeg;base64,")
    seen: list = []
    panel.on_select.append(seen.append)
    assert panel.select([ids[0]]) == [ids[0]] and seen == [[ids[0]]]
    assert "tbl page alpha" in panel.text.value.lower()
    assert panel.thumbnail.value[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb")
    assert "<b>completed</b>" in panel.details.value
    panel.status_filter.value = "pending"
    assert panel.position.value == "1-3 of 6 pages" and panel.selected == []


def test_grid_sorts_the_whole_project_not_the_screen(client: Client) -> None:
    proj = new_project(client)
    ids = add(client, proj, 7, "sort")
    job = client.process_batch(proj, [ids[5]])
    client.wait(job["task_id"], timeout=120, progress=False)
    panel = PagesPanel(client, proj, page_size=3)
    panel.sort_by("page", descending=True)  # what the header menu's "Sort Descending" sends
    assert panel.sort == "-page_number"
    assert grid_column(panel, "page") == [7, 6, 5]
    panel.next_button.click()
    assert grid_column(panel, "page") == [4, 3, 2]  # the next slice of the sorted project
    panel.sort_by("status")  # "completed" sorts first, from the second screen of pages
    assert panel.page_ids[0] == ids[5] and panel.position.value == "1-3 of 7 pages, by status ↑"
    panel.sort_by("image")  # nothing to order by: page order
    assert panel.sort is None and panel.grid._transforms == []
    assert grid_column(panel, "page") == [1, 2, 3]
    # The grid's own filters would filter one screen only: undone, with a pointer.
    panel.grid._transforms = [{"type": "filter", "column": "status", "operator": "=", "value": "x"}]
    assert panel.grid._transforms == [] and "Status, Needs review and Search" in (
        panel.message.value
    )
    panel.sort_by(None)
    assert grid_column(panel, "page") == [1, 2, 3]
    with pytest.raises(PagekitError, match="cannot sort pages by 'nonsense'"):
        client.pages(proj, sort="nonsense")


def test_grid_of_a_large_project_loads_one_screen(client: Client) -> None:
    """Only ``page_size`` rows are ever loaded, sorted and counted by the database; the
    grid stays as fast at 10,000 pages (2,000 keep the test quick to set up)."""
    proj = new_project(client)
    started = time.monotonic()
    client.add_pages(proj, [(f"bulk-{i}.png", tiny_png(i)) for i in range(2000)])
    added = time.monotonic() - started
    started = time.monotonic()
    panel = PagesPanel(client, proj)
    opened = time.monotonic() - started
    assert len(panel.grid.data) == 50 and panel.position.value == "1-50 of 2000 pages"
    started = time.monotonic()
    panel.sort_by("page", descending=True)
    panel.go(1000)
    moved = time.monotonic() - started
    assert grid_column(panel, "page")[0] == 1000 and len(panel.grid.data) == 50
    started = time.monotonic()
    panel.refresh()  # what a running job triggers: same rows, nothing changed
    again = time.monotonic() - started
    print(f"\nadd 2,000 pages {added:.1f}s; open {opened:.2f}s; sort+page {moved:.2f}s; "
          f"refresh {again:.2f}s")  # fmt: skip
    assert opened < 2 and moved < 2 and again < 1


def test_grid_search_lists_matching_pages_with_snippets(client: Client) -> None:
    proj = new_project(client)
    ids = add(client, proj, 4, "find")
    client.wait(client.process_pending(proj)["task_id"], timeout=120, progress=False)
    panel = PagesPanel(client, proj, page_size=2)
    panel.search_box.value = "charlie"  # Enter in the search box
    assert panel.page_ids == [ids[2]]
    assert "charlie" in grid_column(panel, "snippet")[0].lower()
    assert panel.position.value == "1-1 of 1 pages matching “charlie”"
    assert panel.status_filter.disabled  # the search covers every status
    panel.select([ids[2]])
    assert "find page charlie" in panel.text.value.lower()
    panel.search("nosuchwordanywhere")
    assert panel.page_ids == [] and "no page matches" in panel.position.value
    panel.search("")
    assert panel.page_ids == ids[:2] and panel.position.value == "1-2 of 4 pages"
    assert not panel.status_filter.disabled


def test_grid_deletes_selected_pages_after_confirmation(client: Client) -> None:
    proj = new_project(client)
    ids = add(client, proj, 4, "del")
    panel = PagesPanel(client, proj)
    assert panel.delete_button.disabled  # nothing selected
    panel.select(ids[1:3])
    assert not panel.delete_button.disabled
    deleted: list = []
    panel.on_deleted.append(deleted.append)
    panel.delete_button.click()
    assert panel.confirm_box.layout.display == ""
    assert "Delete 2 pages?" in panel.confirm_text.value
    assert "This cannot be undone" in panel.confirm_text.value
    panel.keep_button.click()  # Cancel: nothing happens
    assert panel.confirm_box.layout.display == "none" and client.count_pages(proj) == 4
    panel.delete_button.click()
    panel.confirm_button.click()
    assert deleted == [ids[1:3]] and client.count_pages(proj) == 2
    assert panel.page_ids == [ids[0], ids[3]] and "Deleted 2 pages" in panel.message.value


def test_grid_shows_why_a_delete_is_refused(client: Client) -> None:
    proj = new_project(client, ["slow"])
    ids = add(client, proj, 8, "busy")  # 2 workers, 1.5 s a page: the last ones wait
    job = client.process_pending(proj)
    try:
        panel = PagesPanel(client, proj)
        panel.select([ids[7]])
        assert client.page(ids[7])["status"] == "queued"
        panel.ask_delete()
        assert panel.confirm_delete() == []
        assert "Not deleted" in panel.message.value and client.count_pages(proj) == 8
        with pytest.raises(PagekitError) as refused:
            client.delete_pages(proj, [ids[7]])
        assert str(refused.value).split(":")[0] in panel.message.value
    finally:
        client.cancel(job["task_id"])


def test_grid_refreshes_changed_cells_and_keeps_the_selection(client: Client) -> None:
    proj = new_project(client)
    ids = add(client, proj, 3, "live")
    panel = PagesPanel(client, proj)
    panel.select([ids[1]])
    sent: list = []
    panel.grid.on_cell_change(sent.append)
    client.wait(client.process_batch(proj, [ids[1]])["task_id"], timeout=120, progress=False)
    panel.refresh()
    assert panel.selected == [ids[1]]  # same rows: the selection stays
    assert {c["row"] for c in sent} == {1}  # only the changed row went to the browser
    assert {"status", "words", "conf", "image"} <= {c["column"] for c in sent}
    assert grid_column(panel, "status") == ["pending", "completed", "pending"]
    assert "live page bravo" in panel.text.value.lower()  # the detail view followed


# -- launcher -------------------------------------------------------------------------------


def test_launcher_is_disabled_with_nothing_pending_and_launches(client: Client) -> None:
    proj = new_project(client)
    pages = PagesPanel(client, proj)
    launcher = LauncherPanel(client, proj, pages=pages)
    assert launcher.process_all.disabled and launcher.process_selected.disabled
    assert launcher.process_all.button_style == ""  # not a blue "click me"
    assert launcher.retry.disabled
    ids = add(client, proj, 2, "launch")
    launcher.refresh()
    pages.refresh()
    assert not launcher.process_all.disabled and "2 pending" in launcher.summary.value
    assert launcher.process_all.button_style == "primary"
    pages.select([ids[1]])
    assert not launcher.process_selected.disabled
    jobs: list = []
    launcher.on_launch.append(jobs.append)
    launcher.process_selected.click()
    assert jobs[-1]["page_ids"] == [ids[1]]
    launcher.process_all.click()
    assert jobs[-1]["page_ids"] == [ids[0]]
    assert launcher.process_all.disabled  # nothing pending any more
    assert "Queued 1 page" in launcher.message.value


# -- job monitors ---------------------------------------------------------------------------


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
    assert mon.cancel_button.disabled and mon.cancel_button.description == "Done"
    assert mon.timing.value.startswith("took ")
    assert [d["status"] for d in done] == ["completed"]  # on_done ran once


def test_two_monitors_of_a_job_show_the_same_duration(client: Client) -> None:
    proj = new_project(client, ["slow"])
    add(client, proj, 2, "twice")
    job = client.process_pending(proj)
    first = JobMonitor(client, job["task_id"], interval=0.2, project=proj)
    time.sleep(1.5)  # the second one opens later (another tab, a reloaded page)
    second = JobMonitor(client, job["task_id"], interval=0.3)
    until(lambda: first.done and second.done, 120, "the job to finish")
    row = client.jobs(proj).set_index("task_id").loc[job["task_id"]]
    took = f"took {format_seconds(row['duration_s'])}"
    assert first.timing.value == second.timing.value == took
    assert first.duration == second.duration == pytest.approx(row["duration_s"])


def test_jobs_of_one_task_is_that_jobs_row(client: Client) -> None:
    """What a monitor reads about its job: the same row as the project's jobs() has."""
    proj = new_project(client)
    add(client, proj, 2, "one")
    first = client.wait(client.process_pending(proj)["task_id"], progress=False)
    add(client, proj, 1, "two")
    client.wait(client.process_pending(proj)["task_id"], progress=False)
    everything = client.jobs(proj)
    one = client.jobs(proj, task_id=first["task_id"])
    assert len(everything) == 2 and len(one) == 1
    mine = everything[everything.task_id == first["task_id"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(one.reset_index(drop=True), mine)
    assert client.jobs(task_id=first["task_id"]).total.tolist() == [2]


def test_monitor_goes_red_when_pages_fail(client: Client) -> None:
    proj = new_project(client, ["crash"])
    add(client, proj, 2, "red")
    job = client.process_pending(proj)
    mon = JobMonitor(client, job["task_id"], interval=0.2)
    until(lambda: mon.cancel_button.disabled, 120, "the job to finish")
    assert mon.bar.bar_style == "danger"
    assert "2 failed" in mon.counts.value


def test_cancel_keeps_the_bar_where_work_stopped_and_says_cancelled(client: Client) -> None:
    proj = new_project(client, ["slow"])
    add(client, proj, 6, "cancel")
    job = client.process_pending(proj)
    mon = JobMonitor(client, job["task_id"], interval=0.2, project=proj)
    values: list[int] = []
    mon.bar.observe(lambda c: values.append(c["new"]), "value")
    until(lambda: mon.status.get("status") == "processing", 60, "the job to start")
    # A status is drawn before anyone can read it.
    assert mon.bar_text.value.startswith("Processing page ")
    assert "ETA" in mon.timing.value
    mon.cancel_button.click()
    assert mon.cancel_button.disabled
    until(lambda: mon.done, 60, "the job to stop")
    result = mon.status["result"]
    # The bar shows the pages processed, not the cancelled ones: no jump to the end,
    # never backwards.
    assert mon.bar.value == result["completed"] + result["failed"] < 6
    assert values == sorted(values), values
    assert mon.status["status"] == "cancelled" and mon.bar.bar_style == "warning"
    assert mon.cancel_button.disabled and mon.cancel_button.description == "Cancelled"
    assert mon.bar_text.value.startswith("Cancelled: ")
    assert "cancelled" in mon.counts.value
    assert client.count_pages(proj, "cancelled") >= 1


def test_dashboard_shows_jobs_started_elsewhere_and_refreshes_the_grid(client: Client) -> None:
    proj = new_project(client, ["slow"])
    ids = add(client, proj, 8, "elsewhere")  # 4 rounds of 1.5 s on 2 workers
    first = client.process_batch(proj, ids[:6])  # started "in another kernel"
    started = time.monotonic()
    dash = Dashboard(client, proj, interval=0.2, workers_interval=None)
    try:
        assert time.monotonic() - started < 4, "the job may be over: make it longer"
        assert first["task_id"] in dash.monitor.monitors
        # A job started after the dashboard opened (the CLI, the API): within one poll.
        second = client.process_batch(proj, ids[6:])
        until(lambda: second["task_id"] in dash.monitor.monitors, 2, "the new job's monitor")
        mons = [dash.monitor.monitors[j["task_id"]] for j in (first, second)]
        until(lambda: all(m.done for m in mons), 120, "the jobs to finish")
        # The grid followed, without anyone pressing Refresh.
        until(
            lambda: grid_column(dash.pages, "status") == ["completed"] * 8,
            10,
            "the grid to show completed pages",
        )
        assert dash.launcher.process_all.disabled
    finally:
        dash.close()
    dash.monitor.watcher.join(5)
    assert not dash.monitor.watcher.running


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


# -- workers --------------------------------------------------------------------------------


def held_workers(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """Make ``client.workers()`` wait until the test says so: ``(asked, release)``.

    The real call runs once released; the hold only fixes the order of events (the
    panel is looked at while the workers have not answered yet), it times nothing.
    """
    asked, release = threading.Event(), threading.Event()
    real = client.workers

    def workers(timeout: float = 1.0) -> list[dict]:
        asked.set()
        if not release.wait(30):  # asked on the constructing thread: it would hang here
            raise AssertionError("client.workers() was held for 30 s")
        return real(timeout=timeout)

    monkeypatch.setattr(client, "workers", workers)
    return asked, release


def test_dashboard_opens_before_the_workers_answer_then_lists_them(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking the workers takes seconds: the dashboard shows without waiting for it."""
    proj = new_project(client)
    add(client, proj, 2, "opening")
    names = [w["name"] for w in client.workers()]
    asked, release = held_workers(client, monkeypatch)
    dash = Dashboard(client, proj)  # the default: the panel refreshes every 5 s
    try:
        # Returned while the workers are being asked (and have not answered): the grid
        # and the launcher are there, the Workers panel says it is checking, no warning.
        assert asked.wait(10), "nobody asked the workers"
        panel = dash.workers
        assert not panel.answered.is_set() and panel.refreshed_at is None
        assert dash.pages.position.value == "1-2 of 2 pages"
        assert "2 pending" in dash.launcher.summary.value
        assert "Checking workers…" in panel.table.value
        assert panel.warning.value == "" and panel.updated.value == ""
        release.set()
        assert panel.wait(30), "the workers' answer was never drawn"
        assert "Checking" not in panel.table.value and panel.warning.value == ""
        assert [w["name"] for w in panel.workers] == names
        assert all(name in panel.table.value for name in names)
        assert f"{len(names)} worker(s) online" in panel.table.value
        assert "pk-updated" in panel.updated.value
    finally:
        release.set()
        dash.close()
    dash.workers.ticker.join(10)
    assert not dash.workers.ticker.running


def test_workers_refresh_button_asks_in_the_background(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = WorkersPanel(client, interval=None)
    assert panel.wait(30)
    first = panel.refreshed_at
    asked, release = held_workers(client, monkeypatch)
    try:
        panel.refresh_button.click()  # returns while the workers are asked
        assert asked.wait(10)
        assert "checking…" in panel.updated.value and panel.refreshed_at == first
        assert panel.refresh_soon() is panel.refresh_soon()  # clicks while asking: one ask
        release.set()
        until(lambda: panel.refreshed_at != first, 30, "the answer to the click")
        assert "updated" in panel.updated.value and panel.workers
    finally:
        release.set()
        panel.close()


def test_workers_panel_refreshes_itself_until_closed(client: Client) -> None:
    panel = WorkersPanel(client, interval=0.3)
    assert panel.wait(30), "no first answer"
    assert panel.workers and panel.warning.value == ""
    assert "concurrency" in panel.table.value and "queue depth" in panel.table.value
    assert "0 active" in panel.table.value
    first = panel.refreshed_at
    until(lambda: panel.refreshed_at != first, 10, "a refresh on its own")
    panel.widget.close()  # a re-run cell, a closed page
    panel.ticker.join(5)
    assert not panel.ticker.running


def test_workers_panel_links_to_the_running_flower_only(
    client: Client,
    runtime_home: Path,
    flower: tuple[str, str, subprocess.Popen],  # noqa: F811  (the fixture)
) -> None:
    """`pagekit flower` records where it serves; the link goes when it exits."""
    url, _port, proc = flower
    panel = WorkersPanel(client, interval=None)
    assert panel.flower_url == url + "/" and f"href='{url}/'" in panel.flower.value
    proc.terminate()
    proc.wait(20)
    record = Settings.from_env(home=runtime_home).runtime_dir / "flower-running.json"
    assert not record.exists()  # removed on exit
    panel.refresh()
    assert panel.flower_url is None and "href" not in panel.flower.value
    assert "not running" in panel.flower.value


def test_workers_panel_warns_with_the_fix_when_no_worker_answers(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The session's Redis, another database number: a broker no worker listens on
    # (a wrong PAGEKIT_BROKER_URL, "Tasks stuck in PENDING").
    base, _db = client.broker_url.rsplit("/", 1)
    lonely = Client(
        broker_url=f"{base}/9",
        database_url=client.settings.db_url,
        blob_dir=client.settings.blob_path,
    )
    try:
        asked, release = held_workers(lonely, monkeypatch)
        panel = WorkersPanel(lonely, timeout=0.5, interval=None)
        assert asked.wait(10)
        # No warning while checking: only an answer says that no worker answers.
        assert panel.warning.value == "" and "Checking workers…" in panel.table.value
        release.set()
        assert panel.wait(30)
        assert panel.workers == []
        assert "No worker is answering" in panel.warning.value
        assert "pagekit up" in panel.warning.value and "pagekit doctor" in panel.warning.value
    finally:
        lonely.close()
