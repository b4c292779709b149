"""Every notebook in notebooks/ runs top to bottom twice in a row, as a user's second
"Run All" does (nbclient, a real runtime).

They share one fresh temporary PAGEKIT_HOME and start the runtime there themselves, as on
a new machine; 03 keeps its step module and its own runtime in a folder of that home.
The kernels run in an empty folder that must stay empty: a tutorial writes only under
the home (or a temporary folder), never next to the notebook.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagekit import runtime
from pagekit.client import Client
from pagekit.config import Settings

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
DASHBOARD = Path(__file__).resolve().parent.parent / "dashboards" / "pagekit.ipynb"
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def run(name: str, cwd: Path, timeout: int = 300, parameters: str = "") -> str:
    """Execute a notebook (fails on the first error); return all its text outputs.

    ``parameters`` is code run right after the cell tagged ``parameters``, as papermill
    injects it.
    """
    nb = nbformat.read(NOTEBOOKS / name if "/" not in name else name, as_version=4)
    if parameters:
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(parameters))
    nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", ""))
            out.extend(f"{k}: {v}" for k, v in o.get("data", {}).items())
    return "\n".join(out)


def run_twice(name: str, cwd: Path, **kwargs: str) -> tuple[str, str]:
    first = run(name, cwd, **kwargs)
    second = run(name, cwd, **kwargs)
    assert list(cwd.iterdir()) == [], f"{name} wrote next to the notebook"
    return first, second


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh data directory, PAGEKIT_HOME for the kernels; its runtimes stop at the end."""
    path = tmp_path_factory.mktemp("notebooks-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAGEKIT_HOME", str(path))  # the kernels inherit it
        try:
            yield path
        finally:
            for data in (path, path / "tutorials" / "custom-steps" / "data"):
                runtime.stop(Settings.from_env(home=data))


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    folder = tmp_path / "notebook-folder"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def quickstart(home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """01 run twice (the report notebook reads its project)."""
    return run_twice("01-quickstart.ipynb", tmp_path_factory.mktemp("notebook-folder"))


def pages(home: Path, project: str, status: str) -> int:
    client = Client(home=home, start=False)
    try:
        return client.count_pages(project, status)
    finally:
        client.close()


def test_kernel_is_this_python() -> None:
    """The notebooks' kernel must be the environment pagekit is installed in."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    km = KernelManager(kernel_name="python3")
    cmd = km.format_kernel_cmd()
    assert spec.argv[0] in ("python", "python3") or Path(spec.argv[0]).exists()
    assert Path(cmd[0]).resolve() == Path(sys.executable).resolve()


def test_01_quickstart(home: Path, quickstart: tuple[str, str]) -> None:
    first, second = quickstart
    assert f"home={str(home)!r}" in first  # the client's repr: the home it was given
    assert "added     letter-1.png" in first
    assert "rejected  broken.png" in first
    assert "completed {'total': 4, 'completed': 4, 'failed': 0}" in first
    # client.wait's bar: a widget, with its final line as text for frontends without one
    assert "application/vnd.jupyter.widget-view+json" in first
    assert "text/plain: 100% Completed: 4 completed of 4 pages · took " in first
    assert "duplicate letter-1.png" in second  # nothing stored twice
    assert "nothing pending: every page was processed in an earlier run" in second
    for text in (first, second):
        assert "harvest" in text  # OCR text in the results DataFrame
    assert pages(home, "quickstart", "completed") == 4


def test_02_batch_processing(home: Path, cwd: Path) -> None:
    first, second = run_twice("02-batch-processing.ipynb", cwd)
    assert "24 pages added; 24 pending" in first
    assert "0 pages added; 0 pending" in second
    for text in (first, second):
        assert "Completed: 24 completed of 24 pages | bar: 24 / 24 success" in text
        assert "application/vnd.jupyter.widget-view+json" in text  # the live monitor
        assert "cancelled - " in text and "of 12 pages cancelled" in text
    assert pages(home, "batch-demo", "completed") == 24


def test_03_custom_steps(home: Path, cwd: Path) -> None:
    first, second = run_twice("03-custom-steps.ipynb", cwd)
    for text in (first, second):
        assert "{'years': [1891, 1923], 'earliest': 1891}" in text  # the step, in the kernel
        assert "[1914, 1918]" in text  # the step's output from the workers
        assert "extra.dates.years" in text  # as a column of results()
    tutorial = home / "tutorials" / "custom-steps"
    assert (tutorial / "my_steps.py").exists()
    assert not (tutorial / "data" / "runtime" / "runtime.json").exists()  # it shut down


def test_report_notebook(home: Path, quickstart: tuple[str, str], cwd: Path) -> None:
    """The papermill template runs by hand too: its home defaults to $PAGEKIT_HOME."""
    for text in run_twice("report.ipynb", cwd, parameters='project = "quickstart"'):
        assert "quickstart" in text and "harvest" in text


def test_the_dashboard_notebook_runs_twice(home: Path, quickstart: tuple[str, str], cwd: Path):
    """dashboards/pagekit.ipynb (what Voila serves) builds its panels again on a used home."""
    first, second = run_twice(str(DASHBOARD), cwd)
    for out in (first, second):
        assert "application/vnd.jupyter.widget-view+json" in out
        assert "Traceback" not in out
