"""Deleting pages and projects: from the Client, the CLI and the HTTP API, on a real runtime.

Deletes are refused while a page is queued or processing, and race "Process All Pending"
safely on SQLite and PostgreSQL (two threads, many rounds, the database rows decide).
Stored bytes go when no page in any project names them, and never while an add of the
same bytes is under way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import new_project
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pagekit import _pagegen as gen
from pagekit import tokens
from pagekit.api import create_app
from pagekit.client import Client
from pagekit.errors import (
    InvalidInput,
    InvalidPageSelection,
    NoSuchPage,
    NoSuchProject,
    NoSuchTask,
    NothingToProcess,
    PageInUse,
)
from pagekit.store import Job, JobPage, Page, PageLayout

BIN = Path(sys.executable).parent
ROUNDS = 15


def unique_png(tag: str = "") -> bytes:
    """A small page whose bytes no other test has."""
    text = f"Deleted page {tag} {uuid.uuid4().hex}"
    return gen.image_bytes(gen.text_image(text, width=500, height=160, font_size=24), "PNG")


def text_pdf(n: int) -> bytes:
    """n pages with a text layer: processed in milliseconds, no OCR."""
    tag = uuid.uuid4().hex
    return gen.text_pdf([f"Ledger {tag} page {i}: the harbour master signed." for i in range(n)])


def add_pdf(client: Client, project: dict, n: int) -> list[int]:
    [out] = client.add_pages(project, [(f"{uuid.uuid4().hex[:6]}.pdf", text_pdf(n))])
    assert out["status"] == "added", out
    return out["page_ids"]


def blob_path(client: Client, key: str) -> Path:
    return client.blobs.root / key[:2] / key[2:]


def page_ids(client: Client, project: dict) -> list[int]:
    return [int(p) for p in client.pages(project).page_id]


def orphan_job_pages(client: Client) -> int:
    """job_pages rows whose page or job is gone (foreign keys should make this 0)."""
    with client.store.read() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(JobPage)
                .where(
                    ~select(Page.id).where(Page.id == JobPage.page_id).exists()
                    | ~select(Job.id).where(Job.id == JobPage.job_id).exists()
                )
            )
            or 0
        )


@pytest.fixture
def api(any_client: Client) -> Iterator[TestClient]:
    token = tokens.create(any_client.store, f"test-{uuid.uuid4().hex[:8]}")
    with TestClient(create_app(any_client), headers={"Authorization": f"Bearer {token}"}) as tc:
        yield tc


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    """``pagekit ARGS`` without a terminal (stdin is /dev/null)."""
    env = dict(os.environ, PAGEKIT_HOME=str(home))
    cmd = [str(BIN / "pagekit"), *args]
    return subprocess.run(
        cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )


# -- the Client -----------------------------------------------------------------------------


def test_delete_pages_by_id_or_by_number_and_the_others_keep_their_numbers(
    any_client: Client,
) -> None:
    client = any_client
    project = new_project(client)
    ids = add_pdf(client, project, 6)

    out = client.delete_pages(project, "2,4-5")
    assert out["deleted"] == 3 and out["page_ids"] == [ids[1], ids[3], ids[4]]
    assert out["project_id"] == project["project_id"] and out["blobs_removed"] == 3
    df = client.pages(project)
    assert list(df.page_number) == [1, 3, 6] and list(df.page_id) == [ids[0], ids[2], ids[5]]

    assert client.delete_pages(project, [ids[2]])["page_ids"] == [ids[2]]
    assert client.count_pages(project) == 2
    added = client.add_pages(project, ("new.png", unique_png()))[0]
    assert added["page_numbers"] == [7]  # numbers are not reused

    # All or nothing, and bad input is one clear error.
    with pytest.raises(NoSuchPage, match=str(ids[1])):
        client.delete_pages(project, [ids[0], ids[1]])
    assert client.count_pages(project) == 3
    with pytest.raises(InvalidPageSelection, match="no page 2 in this project"):
        client.delete_pages(project, "2")
    with pytest.raises(InvalidInput, match="no pages given"):
        client.delete_pages(project, [])
    with pytest.raises(InvalidInput, match="a page id is a whole number"):
        client.delete_pages(project, ["1"])
    with pytest.raises(NoSuchPage):  # a page of another project is not this project's
        client.delete_pages(new_project(client), [ids[0]])
    assert client.count_pages(project) == 3


def test_delete_project_takes_its_pages_jobs_and_layouts(any_client: Client) -> None:
    client = any_client
    project = new_project(client)
    ids = add_pdf(client, project, 3)
    job = client.process_pending(project)
    assert client.wait(job["task_id"], progress=False, timeout=120)["status"] == "completed"

    out = client.delete_project(project)
    # The pages' bytes; their thumbnails were written a moment ago, and stay a while.
    expected = {"project_id": project["project_id"], "name": project["name"], "deleted": 3}
    assert out == {**expected, "blobs_removed": 3}
    with pytest.raises(NoSuchProject):
        client.project(project["project_id"])
    with pytest.raises(NoSuchTask):
        client.status(job["task_id"])
    with client.store.read() as s:
        assert not s.scalar(select(func.count()).select_from(Page).where(Page.id.in_(ids)))
        assert not s.scalar(
            select(func.count()).select_from(PageLayout).where(PageLayout.page_id.in_(ids))
        )
    assert orphan_job_pages(client) == 0
    assert project["name"] not in set(client.projects().name)


def test_delete_is_refused_while_pages_are_queued_or_processing(
    any_client: Client, api: TestClient
) -> None:
    client = any_client
    project = new_project(client, ["slow"])  # 1.5 s a page: the last pages wait queued
    ids = add_pdf(client, project, 6)
    job = client.process_pending(project)
    last = ids[-1]
    assert client.page(last)["status"] in ("queued", "processing")

    with pytest.raises(PageInUse, match=f"queued or processing in task {job['task_id']}"):
        client.delete_pages(project, [ids[0], last])
    with pytest.raises(PageInUse, match="cannot delete project"):
        client.delete_project(project)
    busy = api.delete(f"/projects/{project['project_id']}/pages/{last}")
    assert busy.status_code == 409 and "pagekit task cancel" in busy.json()["detail"]
    assert api.delete(f"/projects/{project['project_id']}").status_code == 409
    assert client.count_pages(project) == 6  # nothing was deleted

    client.cancel(job["task_id"])
    client.wait(job["task_id"], progress=False, timeout=120)
    assert api.delete(f"/projects/{project['project_id']}/pages/{last}").status_code == 204
    assert api.delete(f"/projects/{project['project_id']}/pages/{last}").status_code == 404
    assert api.delete(f"/projects/{project['project_id']}").status_code == 204
    assert api.get(f"/projects/{project['project_id']}").status_code == 404
    assert api.delete(f"/projects/{project['project_id']}").status_code == 404


def test_a_finished_job_reports_on_the_pages_left_after_a_delete(any_client: Client) -> None:
    """A job's total shrinks by its deleted pages; a job left with none is deleted."""
    client = any_client
    project = new_project(client)
    ids = add_pdf(client, project, 4)
    job = client.process_pending(project)
    client.wait(job["task_id"], progress=False, timeout=120)

    client.delete_pages(project, ids[1:2])
    st = client.status(job["task_id"])
    assert st["status"] == "completed"
    r = st["result"]
    assert (r["total"], r["completed"], r["failed"]) == (3, 3, 0)
    assert [x["page_id"] for x in r["results"]] == [ids[0], *ids[2:]]
    row = client.jobs(project).set_index("task_id").loc[job["task_id"]]
    assert (row.status, row.total, row.completed) == ("completed", 3, 3)

    client.delete_pages(project, [ids[0], *ids[2:]])
    with pytest.raises(NoSuchTask):
        client.status(job["task_id"])
    assert client.job_ids(project) == []
    assert orphan_job_pages(client) == 0


# -- stored bytes -----------------------------------------------------------------------------


def test_bytes_are_removed_only_when_no_page_in_any_project_names_them(
    any_client: Client,
) -> None:
    client = any_client
    data = unique_png("shared")
    a, b = new_project(client), new_project(client)
    [in_a] = client.add_pages(a, ("shared.png", data))
    [in_b] = client.add_pages(b, ("shared.png", data))
    key = client.store.page(in_a["page_ids"][0]).blob
    assert client.store.page(in_b["page_ids"][0]).blob == key
    assert blob_path(client, key).is_file()

    assert client.delete_pages(a, in_a["page_ids"])["blobs_removed"] == 0
    assert blob_path(client, key).is_file()  # project b still has the page
    assert client.page_bytes(in_b["page_ids"][0]) == data

    assert client.delete_project(b)["blobs_removed"] == 1
    assert not blob_path(client, key).exists()


def test_a_thumbnail_goes_with_its_last_page_once_it_is_no_longer_fresh(
    any_client: Client,
) -> None:
    """A thumbnail written in the last minutes is kept (a worker may be recording the same
    one for another page); an older one is removed with the last page that names it."""
    client = any_client
    data = unique_png("thumb")
    a, b = new_project(client), new_project(client)
    pages = [client.add_pages(p, ("t.png", data))[0]["page_ids"][0] for p in (a, b)]
    for p in (a, b):
        client.wait(client.process_pending(p)["task_id"], progress=False, timeout=120)
    thumbs = {client.store.page(pid).thumbnail for pid in pages}
    assert len(thumbs) == 1 and None not in thumbs, "the same page gives the same thumbnail"
    thumb = blob_path(client, thumbs.pop())

    client.delete_project(a)
    assert client.thumbnail(pages[1]) == thumb.read_bytes()  # b's page still names it

    an_hour_ago = time.time() - 3600
    os.utime(thumb, (an_hour_ago, an_hour_ago))  # as if processed an hour ago
    assert client.delete_project(b)["blobs_removed"] == 2  # the page's bytes, its thumbnail
    assert not thumb.exists()

    c = new_project(client)
    [pid] = client.add_pages(c, ("fresh.png", unique_png("fresh")))[0]["page_ids"]
    client.wait(client.process_pending(c)["task_id"], progress=False, timeout=120)
    fresh = blob_path(client, client.store.page(pid).thumbnail)
    assert client.delete_project(c)["blobs_removed"] == 1  # the fresh thumbnail stays
    assert fresh.is_file()


# -- races ------------------------------------------------------------------------------------


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` at the same moment, one thread each; their results or exceptions."""
    barrier = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def go(i: int, call: Callable[[], Any]) -> None:
        barrier.wait(timeout=30)
        try:
            out[i] = call()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=go, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return out


def test_deleting_pages_racing_process_all_pending_never_splits_them(
    any_client: Client,
) -> None:
    """Either the job took the pages and the delete was refused, or they are gone and the
    job does not have them; the job then finishes with exactly the pages it has."""
    client = any_client
    deleter = Client(settings=client.settings, start=False)
    seen = set()
    for rnd in range(ROUNDS):
        project = new_project(client)
        ids = add_pdf(client, project, 6)
        doomed = ids[::2]
        deleted, job = race(
            lambda: deleter.delete_pages(project, doomed),  # noqa: B023
            lambda: client.process_pending(project),  # noqa: B023
        )
        assert isinstance(job, dict), f"round {rnd}: process_pending failed: {job!r}"
        if isinstance(deleted, PageInUse):
            seen.add("job first")
            assert sorted(job["page_ids"]) == sorted(ids), f"round {rnd}"
            assert page_ids(client, project) == ids
        else:
            assert isinstance(deleted, dict), f"round {rnd}: delete failed: {deleted!r}"
            seen.add("delete first")
            kept = [pid for pid in ids if pid not in doomed]
            assert sorted(job["page_ids"]) == kept, f"round {rnd}: the job has deleted pages"
            assert page_ids(client, project) == kept
        final = client.wait(job["task_id"], progress=False, timeout=120)
        r = final["result"]
        assert final["status"] == "completed", f"round {rnd}: {final}"
        assert r["total"] == r["completed"] == len(job["page_ids"]), f"round {rnd}: {r}"
        assert orphan_job_pages(client) == 0, f"round {rnd}"
    print(f"outcomes seen: {sorted(seen)}")


def test_deleting_a_project_racing_process_all_pending(any_client: Client) -> None:
    """The project is gone and no job was made for it, or the job has every page."""
    client = any_client
    deleter = Client(settings=client.settings, start=False)
    for rnd in range(ROUNDS):
        project = new_project(client)
        ids = add_pdf(client, project, 4)
        deleted, job = race(
            lambda: deleter.delete_project(project),  # noqa: B023
            lambda: client.process_pending(project),  # noqa: B023
        )
        if isinstance(deleted, PageInUse):
            assert isinstance(job, dict), f"round {rnd}: {job!r}"
            assert sorted(job["page_ids"]) == ids
            final = client.wait(job["task_id"], progress=False, timeout=120)
            assert final["result"]["completed"] == 4, f"round {rnd}: {final}"
        else:
            assert isinstance(deleted, dict), f"round {rnd}: delete failed: {deleted!r}"
            if isinstance(job, dict):
                # Made first and finished before the delete looked (a delete refuses a
                # project whose pages run): it had every page.
                assert sorted(job["page_ids"]) == ids, f"round {rnd}: {job!r}"
            else:  # never made: its caller is told the project (or its pages) is gone
                assert isinstance(job, (NoSuchProject, NothingToProcess)), f"round {rnd}: {job!r}"
            with client.store.read() as s:
                jobs = s.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.project_id == project["project_id"])
                )
            assert jobs == 0, f"round {rnd}: a job was made for a deleted project"
        assert orphan_job_pages(client) == 0, f"round {rnd}"


def test_deleting_a_page_while_its_bytes_are_added_elsewhere_keeps_them(
    any_client: Client,
) -> None:
    """The bytes of a deleted page stay when another project adds the same bytes at the
    same moment: that add either commits first (the bytes are named, and kept) or writes
    them again after they were removed."""
    client = any_client
    deleter = Client(settings=client.settings, start=False)
    for rnd in range(ROUNDS):
        data = unique_png(f"race {rnd}")
        a, b = new_project(client), new_project(client)
        [first] = client.add_pages(a, ("same.png", data))
        deleted, added = race(
            lambda: deleter.delete_pages(a, first["page_ids"]),  # noqa: B023
            lambda: client.add_pages(b, ("same.png", data)),  # noqa: B023
        )
        assert isinstance(deleted, dict), f"round {rnd}: {deleted!r}"
        assert isinstance(added, list) and added[0]["status"] == "added", f"round {rnd}"
        assert client.page_bytes(added[0]["page_ids"][0]) == data, f"round {rnd}"


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_deletes_pages_and_projects_and_asks_first(client: Client, runtime_home: Path) -> None:
    project = new_project(client)
    name = project["name"]
    ids = add_pdf(client, project, 5)

    unasked = run(runtime_home, "delete", name, "--pages", "1,3-4")
    assert unasked.returncode == 2 and "Traceback" not in unasked.stderr
    assert unasked.stderr.strip() == (
        "error: nothing deleted: not asking without a terminal; pass --yes to delete"
    )
    assert client.count_pages(project) == 5

    done = run(runtime_home, "delete", name, "--pages", "1,3-4", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"deleted 3 page(s) (1,3-4) of project {name!r}")
    assert page_ids(client, project) == [ids[1], ids[4]]

    missing = run(runtime_home, "delete", name, "--pages", "1", "--yes")
    assert missing.returncode == 2 and "no page 1 in this project" in missing.stderr

    answered_no = asked(runtime_home, "n\n", "project", "delete", name)
    assert answered_no.returncode == 1 and "nothing deleted" in answered_no.stdout
    assert f"Delete project {name!r} with its 2 page(s)" in answered_no.stdout
    assert client.count_pages(project) == 2

    answered_yes = asked(runtime_home, "y\n", "project", "delete", name)
    assert answered_yes.returncode == 0, answered_yes.stdout
    assert f"deleted project {name!r} and its 2 page(s)" in answered_yes.stdout
    gone = run(runtime_home, "project", "delete", name, "--yes")
    assert gone.returncode == 4 and "no such project" in gone.stderr


def test_cli_refuses_to_delete_pages_being_processed(client: Client, runtime_home: Path) -> None:
    project = new_project(client, ["slow"])
    add_pdf(client, project, 4)
    job = client.process_pending(project)
    try:
        out = run(runtime_home, "delete", project["name"], "--pages", "4", "--yes")
        assert out.returncode == 1, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: cannot delete these pages")
        assert f"pagekit task cancel {job['task_id']}" in lines[0]
        assert client.count_pages(project) == 4
    finally:
        client.cancel(job["task_id"])
        client.wait(job["task_id"], progress=False, timeout=120)


def asked(home: Path, answer: str, *args: str) -> subprocess.CompletedProcess:
    """Run a command on a terminal (a pty) and type ``answer`` when it asks."""
    import pty

    leader, follower = pty.openpty()
    env = dict(os.environ, PAGEKIT_HOME=str(home))
    cmd = [str(BIN / "pagekit"), *args]
    proc = subprocess.Popen(cmd, env=env, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += _read_some(leader)
    os.write(leader, answer.encode())
    while proc.poll() is None and time.monotonic() < deadline:
        seen += _read_some(leader)
    seen += _read_some(leader)
    os.close(leader)
    proc.wait(timeout=30)
    text = seen.decode(errors="replace").replace("\r\n", "\n")
    return subprocess.CompletedProcess(args, proc.returncode, text, "")


def _read_some(fd: int) -> bytes:
    import select as io_select

    ready, _, _ = io_select.select([fd], [], [], 0.2)
    if not ready:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:  # the other end is closed
        return b""
