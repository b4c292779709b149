"""Shared fixtures: a real embedded runtime (private Redis + real Celery workers).

One runtime serves the whole session (starting one costs a few seconds); each test
gets its own project. PostgreSQL runs are opt-in with PAGEKIT_TEST_POSTGRES (a
SQLAlchemy URL); `.ci/run` sets it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# Before anything reads settings: a test that names no home writes here, never into the
# user's real data directory (~/.local/share/pagekit).
DEFAULT_HOME = Path(tempfile.mkdtemp(prefix="pagekit-test-home-"))
os.environ["PAGEKIT_HOME"] = str(DEFAULT_HOME)

import pytest  # noqa: E402
from sqlalchemy import create_engine, make_url, select  # noqa: E402

from pagekit import runtime  # noqa: E402
from pagekit.client import Client  # noqa: E402
from pagekit.config import Settings  # noqa: E402
from pagekit.store import Job, JobPage, Page, Store, engine_for  # noqa: E402

PLUGINS = Path(__file__).parent / "plugins"
ON_CI = os.environ.get("CI") == "true"

# Workers (child processes) import the test steps the way a user's workers would.
sys.path.insert(0, str(PLUGINS))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(PLUGINS), os.environ.get("PYTHONPATH", "")) if p
)
os.environ["PAGEKIT_STEP_MODULES"] = "pagekit_test_steps"
os.environ.pop("PAGEKIT_BROKER_URL", None)
os.environ.pop("PAGEKIT_DATABASE_URL", None)
import pagekit_test_steps  # noqa: E402,F401  (registers the steps in this process too)


def need(condition: bool, why: str) -> None:
    """Skip when a service is missing, but fail on CI (CI=true) where it must be there."""
    if condition:
        return
    if ON_CI:
        pytest.fail(f"required on CI: {why}")
    pytest.skip(why)


def one_error_line(out: subprocess.CompletedProcess) -> str:
    """The single line a failed command printed on stderr (never a traceback)."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def _start(home: Path, **kwargs: object) -> Client:
    client = Client(home=home, workers=2, **kwargs)  # type: ignore[arg-type]
    client.wait_for_workers(timeout=90)
    return client


@pytest.fixture(scope="session", autouse=True)
def _default_home() -> Iterator[Path]:
    """The session's PAGEKIT_HOME; whatever a test started there is stopped at the end."""
    yield DEFAULT_HOME
    runtime.stop(Settings.from_env(home=DEFAULT_HOME))
    shutil.rmtree(DEFAULT_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def runtime_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pagekit-home")


@pytest.fixture(scope="session")
def client(runtime_home: Path) -> Iterator[Client]:
    """A Client on a real embedded runtime (SQLite), shared by the session."""
    c = _start(runtime_home)
    yield c
    c.shutdown()


@pytest.fixture(scope="session")
def pg_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """The same, with PostgreSQL as the database (PAGEKIT_TEST_POSTGRES)."""
    url = os.environ.get("PAGEKIT_TEST_POSTGRES")
    need(bool(url), "set PAGEKIT_TEST_POSTGRES to a PostgreSQL URL to run the PostgreSQL jobs")
    c = _start(tmp_path_factory.mktemp("pagekit-pg"), database_url=url)
    yield c
    c.shutdown()


@pytest.fixture(params=["sqlite", "postgres"])
def any_client(request: pytest.FixtureRequest) -> Client:
    """Runs a job test once on SQLite and once on PostgreSQL (when configured)."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_client")
    return request.getfixturevalue("client")


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of this test's own (PostgreSQL: a temporary database)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    server = os.environ.get("PAGEKIT_TEST_POSTGRES")
    need(bool(server), "set PAGEKIT_TEST_POSTGRES to a PostgreSQL URL to run the PostgreSQL jobs")
    name = f"pagekit_migrate_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        engine_for(url).dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def new_project(client: Client, steps: list[str] | None = None) -> dict:
    return client.create_project(f"test-{uuid.uuid4().hex[:10]}", steps)


def add_page_rows(
    store: Store, project_id: int, n: int, first: int = 1, source: str = "big.pdf"
) -> list[int]:
    """``n`` page rows of a PDF, numbered from ``first``, straight into the database (for
    tests of the job rules with no worker: their bytes are never read); their ids."""
    with store.write() as s:
        pages = [
            Page(
                project_id=project_id,
                page_number=number,
                source=source,
                source_index=number - 1,
                kind="pdf",
                mime="application/pdf",
                blob=f"{number:064x}",
            )
            for number in range(first, first + n)
        ]
        s.add_all(pages)
        s.flush()
        return [p.id for p in pages]


def job_page_rows(store: Store, task_id: str) -> list[Any]:
    """The job's pages as stored: ``(page_id, state, attempts, status, words)`` rows from
    its job rows, then the pages a cancel took before any worker claimed them (listed on
    the job, with no job row: cancelled, never attempted)."""
    with store.read() as s:
        rows = s.execute(
            select(JobPage.page_id, JobPage.state, JobPage.attempts, Page.status, Page.words)
            .join(Page, Page.id == JobPage.page_id)
            .where(JobPage.job_id == task_id)
            .order_by(JobPage.position)
        ).all()
        listed = s.scalar(select(Job.unclaimed).where(Job.id == task_id))
        tail = json.loads(listed) if listed else []
        pages = {}
        for at in range(0, len(tail), 500):
            query = select(Page.id, Page.status, Page.words).where(Page.id.in_(tail[at : at + 500]))
            pages.update({row.id: row for row in s.execute(query)})
    unclaimed = [
        SimpleNamespace(page_id=pid, state="cancelled", attempts=0, **pages[pid]._asdict())
        for pid in tail
        if pid in pages  # not a page deleted since
    ]
    return [*rows, *unclaimed]


def check_cancel_counted(client: Client, task_id: str, cancelled: int, what: str) -> list[Any]:
    """After a cancel and the job's end: the cancel's count is exactly the pages that never
    started, none of them ran, and every page row agrees with its job page. The job's rows
    ``(state, attempts, status, words)``, for more checks."""
    rows = job_page_rows(client.store, task_id)
    never_started = [row for row in rows if row.state == "cancelled" and row.attempts == 0]
    assert len(never_started) == cancelled, (
        f"{what}: cancel reported {cancelled} pages, {len(never_started)} stayed cancelled"
    )
    assert all(row.words is None for row in never_started), f"{what}: a cancelled page ran"
    assert all(row.state == row.status for row in rows), f"{what}: page and job page disagree"
    return rows


@pytest.fixture
def project(client: Client) -> dict:
    return new_project(client)
