"""Clear errors: a locked or unreachable database, and a page over its time limit.

The lock is a real one (a second sqlite3 connection holding ``BEGIN EXCLUSIVE``, what a
stuck process does), the unreachable server a real refused connection, the slow page a
real step on a real worker past a small PAGEKIT_PAGE_TIME_LIMIT.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import need
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError

from pagekit import _pagegen, tokens
from pagekit.api import create_app
from pagekit.client import Client
from pagekit.config import Settings
from pagekit.errors import DatabaseUnavailable
from pagekit.processing import PageInput, process_page
from pagekit.store import Project, Store

BIN = Path(sys.executable).parent
BUSY = "0.5"  # PAGEKIT_DB_BUSY_TIMEOUT for these tests: the lock is given up on at once
UNREACHABLE = "postgresql+psycopg://pagekit:s3cret-pw@127.0.0.1:1/pagekit"


def small_png(text: str = "hello world") -> bytes:
    img = _pagegen.text_image(text, width=600, height=300, font_size=36)
    return _pagegen.image_bytes(img, "PNG")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory with its database created, and a short busy timeout."""
    monkeypatch.setenv("PAGEKIT_DB_BUSY_TIMEOUT", BUSY)
    Store(Settings.from_env(home=tmp_path).db_url)
    return tmp_path


@contextmanager
def write_lock(db: Path) -> Iterator[None]:
    """Another connection's write lock on ``db``: what a stuck process holds."""
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.rollback()
        other.close()


def assert_says_locked(message: str, db: Path) -> None:
    assert f"the database {db} is locked" in message
    assert "another process holds a write lock" in message
    assert "network file system" in message
    assert f"gave up after {BUSY} s (PAGEKIT_DB_BUSY_TIMEOUT)" in message
    assert "stop the other process" in message


# -- a locked SQLite database ---------------------------------------------------------------


def test_locked_database_raises_a_clear_error_from_the_client(client: Client, home: Path) -> None:
    # Joins the session's broker (it needs no runtime of its own to create a project).
    c = Client(home=home, broker_url=client.broker_url)
    db = home / "pagekit.db"
    started = time.monotonic()
    with write_lock(db), pytest.raises(DatabaseUnavailable) as caught:
        c.create_project("letters")
    assert time.monotonic() - started < 10  # the busy timeout, not 60 s
    assert_says_locked(str(caught.value), db)
    assert caught.value.exit_code == 3
    assert c.create_project("letters")["name"] == "letters"  # lock gone: it works again
    c.close()


def test_locked_database_is_one_line_and_exit_code_3_in_the_cli(client: Client, home: Path) -> None:
    db = home / "pagekit.db"
    env = dict(os.environ, PAGEKIT_HOME=str(home), PAGEKIT_BROKER_URL=client.broker_url)
    with write_lock(db):
        out = subprocess.run(
            [str(BIN / "pagekit"), "project", "create", "letters"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 3, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert_says_locked(lines[0], db)


def test_locked_database_is_503_with_the_message_from_the_api(client: Client, home: Path) -> None:
    c = Client(home=home, broker_url=client.broker_url)
    token = tokens.create(c.store, "test")
    db = home / "pagekit.db"
    with TestClient(create_app(c), headers={"Authorization": f"Bearer {token}"}) as api:
        with write_lock(db):
            r = api.post("/projects", json={"name": "letters"})
        assert r.status_code == 503, r.text
        assert_says_locked(r.json()["detail"], db)
        assert api.post("/projects", json={"name": "letters"}).status_code == 201
    c.close()


def test_an_upload_to_a_locked_database_is_503_not_a_refused_file(
    client: Client, home: Path
) -> None:
    c = Client(home=home, broker_url=client.broker_url)
    token = tokens.create(c.store, "test")
    pid = c.create_project("letters")["project_id"]
    with TestClient(create_app(c), headers={"Authorization": f"Bearer {token}"}) as api:
        with write_lock(home / "pagekit.db"):
            r = api.post(f"/projects/{pid}/pages", files={"file": ("p.png", small_png())})
        assert r.status_code == 503, r.text
        assert_says_locked(r.json()["detail"], home / "pagekit.db")
    c.close()


# -- an unreachable PostgreSQL server -------------------------------------------------------


def test_unreachable_postgres_names_the_url_without_its_password(
    client: Client, tmp_path: Path
) -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        Client(home=tmp_path, database_url=UNREACHABLE, broker_url=client.broker_url)
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "cannot connect to the database postgresql+psycopg://pagekit:***@127.0.0.1:1/" in (
        message
    )
    assert "Connection refused" in message
    assert "check PAGEKIT_DATABASE_URL" in message and "server is up" in message
    assert caught.value.url is not None and "s3cret-pw" not in caught.value.url


def test_unreachable_postgres_is_one_line_in_the_cli(client: Client, tmp_path: Path) -> None:
    env = dict(
        os.environ,
        PAGEKIT_HOME=str(tmp_path),
        PAGEKIT_DATABASE_URL=UNREACHABLE,
        PAGEKIT_BROKER_URL=client.broker_url,
    )
    out = subprocess.run(
        [str(BIN / "pagekit"), "project", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 3, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot connect"), out.stderr
    assert "s3cret-pw" not in out.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_integrity_errors_still_pass_through(backend: str, tmp_path: Path) -> None:
    """Callers catch IntegrityError (a concurrent add took the same number): not translated."""
    if backend == "postgres":
        url = os.environ.get("PAGEKIT_TEST_POSTGRES", "")
        need(bool(url), "set PAGEKIT_TEST_POSTGRES to a PostgreSQL URL")
    else:
        url = f"sqlite:///{tmp_path / 'pagekit.db'}"
    store = Store(url)
    name = f"dup-{uuid.uuid4().hex[:10]}"
    store.create_project(name)
    with pytest.raises(IntegrityError), store.write() as s:
        s.add(Project(name=name, steps=[]))


# -- a page over its time limit -------------------------------------------------------------


class PageTimeout(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded: raised from a signal handler."""


@contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """A PageTimeout raised from a signal handler, the way Celery's soft limit arrives."""

    def fire(signum: int, frame: object) -> None:
        raise PageTimeout()

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    ("time_limit", "said"), [(7, "took longer than 7 s"), (0, "took longer than the page time")]
)
def test_a_time_limit_fails_the_page_with_the_limit_and_the_fix(time_limit: int, said: str) -> None:
    inp = PageInput(
        page_id=1,
        kind="image",
        data=small_png(),
        source="p.png",
        steps=("overtime",),  # sleeps 60 s; the alarm stops it
        time_limit=time_limit,
    )
    with alarm(1.0):
        result = process_page(inp, timeouts=(PageTimeout,))
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith(f"p.png: {said}")
    assert "(PAGEKIT_PAGE_TIME_LIMIT)" in result.error
    assert "raise PAGEKIT_PAGE_TIME_LIMIT" in result.error and "split the page" in result.error
    assert result.timings["total"] < 10


def test_a_page_over_the_time_limit_on_a_worker_fails_saying_so(tmp_path: Path) -> None:
    settings = Settings.from_env(home=tmp_path, workers=1, page_time_limit=6)
    c = Client(settings=settings)
    try:
        c.wait_for_workers(timeout=90)
        project = c.create_project("slow", ["overtime"])
        c.add_pages(project, [("p.png", small_png())])
        job = c.process_pending(project)
        final = c.wait(job["task_id"], timeout=120)
        assert final["status"] == "failed", final
        [page] = final["result"]["results"]
        assert page["status"] == "failed"
        assert "p.png: took longer than 6 s (PAGEKIT_PAGE_TIME_LIMIT)" in page["error"]
    finally:
        c.shutdown()
