"""The data directory is private: pages, their text, logs and the Redis password are
readable by their owner only, whatever the umask of the user who runs pagekit.

The `make demo` path on a real runtime: start it on a fresh home, add and process a page,
`pagekit down`; then a home left readable by an older pagekit is tightened by `pagekit up`.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagekit import samples
from pagekit.client import Client

DIR, FILE = 0o700, 0o600


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def tree(root: Path) -> Iterator[Path]:
    yield root
    yield from root.rglob("*")


def open_to_others(*roots: Path) -> list[str]:
    """Every path under ``roots`` whose mode lets group or others in."""
    return [f"{p} {oct(mode(p))}" for root in roots for p in tree(root) if mode(p) & 0o077]


def pagekit_cli(home: Path, *args: str) -> None:
    env = {**os.environ, "PAGEKIT_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "pagekit.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def wide_umask() -> Iterator[None]:
    """The common default (files 0644, directories 0755): pagekit must not rely on 077."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_home_is_private_from_the_first_page_to_pagekit_down(
    tmp_path: Path, wide_umask: None
) -> None:
    home = tmp_path / "pagekit-data"
    client = Client(home=home, workers=1)
    try:
        client.wait_for_workers(timeout=90)
        project = client.create_project("private")
        added = client.add_pages(project, [("letter.png", samples.page_image("Dear Margaret"))])
        assert added[0]["status"] == "added"
        job = client.process_pending(project)
        final = client.wait(job["task_id"], timeout=180, progress=False)
        assert final["result"]["completed"] == 1
        assert "Margaret" in (client.page(added[0]["page_ids"][0])["text"] or "")
        # While it runs: the database with its WAL and shared memory, the runtime's state.
        rt = home / "runtime"
        for name in ("pagekit.db", "pagekit.db-wal", "pagekit.db-shm"):
            assert mode(home / name) == FILE, name
        for name in ("runtime.json", "redis.conf", "lock", "worker.log", "redis.log"):
            assert mode(rt / name) == FILE, name
    finally:
        client.close()
    pagekit_cli(home, "down")

    rt = home / "runtime"
    assert mode(home) == DIR and mode(rt) == DIR
    aof = rt / "appendonlydir"  # Redis 7; older Redis writes appendonly.aof
    aof_files = list(aof.iterdir()) if aof.exists() else [rt / "appendonly.aof"]
    assert aof_files and all(mode(p) == FILE for p in aof_files), aof_files
    blobs = [p for p in tree(home / "blobs") if p.is_file()]
    assert blobs, "the page's bytes are stored as a blob"
    assert all(mode(p) == FILE for p in blobs)
    assert open_to_others(home) == []


def test_pagekit_up_tightens_a_home_left_readable(tmp_path: Path, wide_umask: None) -> None:
    home = tmp_path / "old-home"
    client = Client(home=home, workers=1)
    try:
        project = client.create_project("old")
        client.add_pages(project, [("page.png", samples.page_image("An older home"))])
        client.wait_for_workers(timeout=90)
    finally:
        client.close()
    pagekit_cli(home, "down")
    for path in tree(home):  # what an older pagekit under umask 022 left behind
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert open_to_others(home)

    pagekit_cli(home, "up", "--workers", "1")
    try:
        assert open_to_others(home) == []
    finally:
        pagekit_cli(home, "down")
