"""Every tutorial notebook runs top to bottom against a real runtime (nbclient).

01 and 02 use the session's runtime through PAGEKIT_HOME; 03 starts and stops its own
(its workers must import the step module the notebook writes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pagekit.client import Client

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def run(name: str, cwd: Path, timeout: int = 180) -> str:
    """Execute a notebook (fails on the first error); return all its text outputs."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", ""))
            out.extend(f"{k}: {v}" for k, v in o.get("data", {}).items())
    return "\n".join(out)


@pytest.fixture
def session_home(client: Client, runtime_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAGEKIT_HOME", str(runtime_home))  # the kernel inherits it
    return runtime_home


def test_kernel_is_this_python() -> None:
    """The notebooks' kernel must be the environment pagekit is installed in."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    km = KernelManager(kernel_name="python3")
    cmd = km.format_kernel_cmd()
    assert spec.argv[0] in ("python", "python3") or Path(spec.argv[0]).exists()
    assert Path(cmd[0]).resolve() == Path(sys.executable).resolve()


def test_01_quickstart(session_home: Path, client: Client, tmp_path: Path) -> None:
    text = run("01-quickstart.ipynb", tmp_path)
    assert "added     letter-1.png" in text
    assert "rejected  broken.png" in text
    assert "completed {'total': 4, 'completed': 4, 'failed': 0}" in text
    assert "harvest" in text  # OCR text in the results DataFrame
    assert client.count_pages("quickstart", "completed") == 4


def test_02_batch_processing(session_home: Path, client: Client, tmp_path: Path) -> None:
    text = run("02-batch-processing.ipynb", tmp_path)
    assert "24 pages added; 24 pending" in text
    assert "Completed: 24 completed of 24 pages | bar: 24 / 24 success" in text
    assert "application/vnd.jupyter.widget-view+json" in text  # the live monitor was shown
    assert "cancelled - " in text and "of 12 pages cancelled" in text
    assert client.count_pages("batch-demo", "completed") == 24


def test_03_custom_steps(tmp_path: Path) -> None:
    text = run("03-custom-steps.ipynb", tmp_path)
    assert "{'years': [1891, 1923], 'earliest': 1891}" in text  # the step, in the kernel
    assert "[1914, 1918]" in text  # the step's output from the workers
    assert (tmp_path / "my_steps.py").exists()
    assert not (tmp_path / "custom-steps-data" / "runtime" / "runtime.json").exists()
