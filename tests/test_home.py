"""One home per user, found from any folder; reading it never starts the runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pagekit import _pagegen as gen
from pagekit import runtime
from pagekit.client import Client
from pagekit.config import Settings

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

BIN = Path(sys.executable).parent

NOTEBOOK = [
    "import pagekit",
    "client = pagekit.Client()",
    "print('home:', client.settings.home_abs)",
    "print('projects:', sorted(client.projects()['name']))",
]


def cli(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "pagekit"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_notebook(cwd: Path, env: dict[str, str]) -> str:
    """Execute a small notebook in ``cwd`` with a kernel whose environment is ``env``."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK])
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    with pytest.MonkeyPatch.context() as mp:  # the kernel inherits this process's environment
        for key in ("PAGEKIT_HOME", "XDG_DATA_HOME", "HOME"):
            mp.delenv(key, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        client.execute()
    # Stream outputs as the notebook shows them: a print may reach it in several pieces
    # (the kernel flushes on a timer), each carrying its own newlines.
    return "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []))


def user_env(**set_: str) -> dict[str, str]:
    """This environment without PAGEKIT_HOME / XDG_DATA_HOME, plus ``set_``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PAGEKIT_HOME", "XDG_DATA_HOME")}
    return {**env, **set_}


@pytest.mark.parametrize("set_by", ["PAGEKIT_HOME", "HOME"])
def test_a_notebook_in_another_folder_sees_the_project_made_in_a_terminal(
    tmp_path: Path, set_by: str
) -> None:
    """With PAGEKIT_HOME, or with neither it nor XDG_DATA_HOME set (the user's data
    directory under HOME), a terminal and a notebook in other folders share one home."""
    user = tmp_path / "user"
    user.mkdir()
    home = tmp_path / "pagekit-home" if set_by == "PAGEKIT_HOME" else None
    env = {"PAGEKIT_HOME": str(home)} if home else {"HOME": str(user)}
    terminal, notebooks = tmp_path / "terminal", tmp_path / "elsewhere" / "notebooks"
    terminal.mkdir()
    notebooks.mkdir(parents=True)
    name = f"home-{uuid.uuid4().hex[:8]}"
    made = cli(user_env(**env), terminal, "project", "create", name)
    assert made.returncode == 0, made.stderr

    text = run_notebook(notebooks, env)
    assert f"projects: ['{name}']" in text
    seen = Path(text.split("home: ", 1)[1].splitlines()[0])
    if home is not None:
        assert seen == home
    else:
        assert seen.is_relative_to(user) and (seen / "pagekit.db").exists()
        if sys.platform.startswith("linux"):
            assert seen == user / ".local" / "share" / "pagekit"
    assert not (terminal / "pagekit-data").exists() and not (notebooks / "pagekit-data").exists()
    assert runtime.running(Settings.from_env(home=seen)) is None  # looking started nothing

    status = cli(user_env(**env), tmp_path, "status", "--json")
    assert json.loads(status.stdout)["home"] == str(seen)


# -- reading never starts anything --------------------------------------------------------


def runtime_processes(settings: Settings) -> list[psutil.Process]:
    """Any redis-server or Celery worker of this home, whatever the state file says."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "redis-server" in (proc.info["name"] or "") + cmdline:
                if Path(proc.cwd()) == settings.runtime_dir:
                    found.append(proc)
            elif "celery" in cmdline and "worker" in cmdline:
                if proc.environ().get("PAGEKIT_HOME") == str(settings.home_abs):
                    found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A data directory whose runtime, if a test leaves one running, is stopped after it."""
    yield tmp_path / "data"
    runtime.stop(Settings.from_env(home=tmp_path / "data"))


def test_reading_a_home_with_the_runtime_down_starts_nothing(tmp_path: Path, home: Path) -> None:
    settings = Settings.from_env(home=home)
    env = user_env(PAGEKIT_HOME=str(home))
    with Client(home=home, workers=1) as client:
        name = f"read-{uuid.uuid4().hex[:8]}"
        client.create_project(name)
        png = gen.image_bytes(gen.text_image("Reading is not writing"), "PNG")
        client.add_pages(name, [("p.png", png)])
        task_id = client.process_pending(name)["task_id"]
        final = client.wait(task_id, timeout=120, progress=False)
        assert final["status"] == "completed", final
    down = cli(env, tmp_path, "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert runtime.running(settings) is None and not runtime_processes(settings)

    report = tmp_path / "report.html"
    reads = {
        ("project", "list"): name,
        ("pages", name): "completed",
        ("pages", name, "--status", "completed"): "completed",
        ("task", "status", task_id): '"completed"',
        ("task", "wait", task_id): '"completed"',
        ("export", name, "-o", str(tmp_path / "out.csv")): "wrote",
        ("report", name, "-o", str(report)): "wrote",
        ("report", name, "--notebook", "-o", str(tmp_path / "nb.html")): "wrote",
    }
    for args, expected in reads.items():
        out = cli(env, tmp_path, *args)
        assert out.returncode == 0 and expected in out.stdout, (args, out.stdout, out.stderr)
    assert "Reading is not writing" in (tmp_path / "out.csv").read_text()
    assert name in report.read_text()

    # Commands about the runtime say it is down, with the fix, and leave it so.
    status = cli(env, tmp_path, "status", "--json")
    assert status.returncode == 1 and "pagekit up" in status.stderr
    assert json.loads(status.stdout)["runtime"]["running"] is False
    doctor = cli(env, tmp_path, "doctor")
    assert doctor.returncode == 1 and "FAIL redis" in doctor.stdout

    # A notebook's Client (start=True by default) reads without starting anything too.
    reader = Client(home=home)
    assert list(reader.projects()["name"]) == [name]
    assert reader.results(name)["text"].str.contains("Reading").all()
    assert reader.status(task_id)["status"] == "completed"
    assert reader.wait(task_id, timeout=5, progress=False)["status"] == "completed"
    assert len(reader.jobs(name)) == 1
    reader.close()

    assert runtime.running(settings) is None
    assert not runtime_processes(settings)
    assert not (settings.runtime_dir / runtime.STATE_FILE).exists()
