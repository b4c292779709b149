"""`pip install pagekit` without extras: the core commands work, the others name their extra.

A slow packaging test: it builds a fresh virtual environment, installs this checkout
into it with the base dependencies only (from pip's cache and the configured indexes),
and runs `pagekit` from there against its own runtime, as a user who never asked for
FastAPI, Voila or Flower would.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need

from pagekit import _pagegen as gen

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
# pip's words when it cannot reach an index, as opposed to a broken package.
UNREACHABLE = (
    "Could not find a version that satisfies",
    "No matching distribution found",
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Network is unreachable",
)
# Commands that need an extra, and the line they print instead of running.
NEEDS_EXTRA = [
    (["serve"], "api"),
    (["dashboard"], "notebook"),
    (["flower"], "monitor"),
    (["report", "base", "--notebook"], "notebook"),
]


def _source_copy(dest: Path) -> Path:
    """The checkout's package files, so the build writes nothing into the work tree."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "pagekit", dest / "pagekit", ignore=shutil.ignore_patterns("__pycache__")
    )
    return dest


@pytest.fixture(scope="module")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with `pip install pagekit`, no extras; returns its bin/."""
    where = tmp_path_factory.mktemp("base-install")
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    src = _source_copy(where / "src")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--no-input", str(src)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    if pip.returncode != 0:
        tail = "\n".join((pip.stdout + pip.stderr).strip().splitlines()[-15:])
        need(
            not any(word in tail for word in UNREACHABLE),
            f"pip cannot reach the package index to install the base dependencies:\n{tail}",
        )
        pytest.fail(f"pip install {src} failed:\n{tail}")
    return bin_dir


@pytest.fixture(scope="module")
def pagekit_cmd(base_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Runs the fresh environment's `pagekit` with its own home; stops its runtime after."""
    home = tmp_path_factory.mktemp("base-home")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAGEKIT_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(PAGEKIT_HOME=str(home), PAGEKIT_WORKERS="1", PATH=f"{base_env}:{env['PATH']}")

    def pagekit(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(base_env / "pagekit"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=home,
        )

    try:
        yield pagekit
    finally:
        down = pagekit("down")
        assert down.returncode == 0, down.stderr


def test_no_extra_is_installed(base_env: Path) -> None:
    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])"
    mods = ("fastapi", "uvicorn", "voila", "flower", "papermill", "ipywidgets")
    out = subprocess.run(
        [str(base_env / "python"), "-c", probe % (mods,)], capture_output=True, text=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_core_commands_work_without_extras(pagekit_cmd, tmp_path: Path) -> None:
    helped = pagekit_cmd("--help")
    assert helped.returncode == 0 and "serve" in helped.stdout, helped.stderr

    up = pagekit_cmd("up")
    assert up.returncode == 0 and "1 worker(s) answering" in up.stdout, up.stderr
    status = pagekit_cmd("status")
    assert status.returncode == 0 and "runtime:  up: Redis on" in status.stdout, status.stderr
    raw = pagekit_cmd("status", "--json")
    assert raw.returncode == 0 and '"running": true' in raw.stdout, raw.stderr

    assert pagekit_cmd("project", "create", "base").returncode == 0
    assert "base" in pagekit_cmd("project", "list").stdout

    image = tmp_path / "letter.png"
    image.write_bytes(gen.image_bytes(gen.text_image("Dear reader, the harvest was good."), "PNG"))
    added = pagekit_cmd("add", "base", str(image))
    assert added.returncode == 0 and "added     letter.png: 1 page(s)" in added.stdout, added.stderr

    processed = pagekit_cmd("process", "base", "--wait", "--timeout", "120")
    assert processed.returncode == 0, processed.stderr
    assert "completed: 1 completed, 0 failed of 1 pages" in processed.stdout

    pages = pagekit_cmd("pages", "base")
    assert pages.returncode == 0 and "letter.png" in pages.stdout and "completed" in pages.stdout

    out = tmp_path / "base.csv"
    exported = pagekit_cmd("export", "base", "--format", "csv", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    (row,) = list(csv.DictReader(out.open(encoding="utf-8")))
    assert row["status"] == "completed" and "harvest" in row["text"]

    doctor = pagekit_cmd("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr

    report = tmp_path / "base.html"
    written = pagekit_cmd("report", "base", "-o", str(report))
    assert written.returncode == 0 and report.exists(), written.stderr


@pytest.mark.parametrize(("args", "extra"), NEEDS_EXTRA, ids=[a[0] for a, _ in NEEDS_EXTRA])
def test_a_command_that_needs_an_extra_names_it(pagekit_cmd, args: list[str], extra: str) -> None:
    out = pagekit_cmd(*args, timeout=60)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr == (
        f"error: pagekit {args[0]} needs the {extra} extra: pip install 'pagekit[{extra}]'\n"
    )
