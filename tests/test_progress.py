"""`Client.wait`'s progress bar: a widget in a notebook, text on a terminal, one poller.

The notebook runs in a real kernel (nbclient) and the terminal is a child Python
process, both on the session's runtime, as a user's would. That the widget bar moves in
a browser while the cell runs is tests/test_jupyterlab.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import new_project

from pagekit import samples
from pagekit.client import Client
from pagekit.errors import InvalidInput

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipywidgets")

VIEW = "application/vnd.jupyter.widget-view+json"
TEXT_BAR = r"\[#{30}\] 100% Completed: 3 completed of 3 pages elapsed \d\d:\d\d eta 00:00"


def queue(client: Client, pages: int, steps: list[str] | None = None) -> str:
    project = new_project(client, steps)
    client.add_pages(
        project, [(f"p{i}.png", samples.page_image(f"progress page {i}")) for i in range(pages)]
    )
    return client.process_pending(project)["task_id"]


@pytest.fixture(scope="module")
def jobs(client: Client) -> dict[str, str]:
    """Task ids: every page completed; every page failed; cancelled while queued."""
    cancelled = queue(client, 6, ["slow"])
    client.cancel(cancelled)
    return {
        "completed": queue(client, 3),
        "failed": queue(client, 2, ["crash"]),
        "cancelled": cancelled,
    }


def run_notebook(home: Path, *cells: str) -> Any:
    """Execute ``cells`` after a cell making ``client`` on ``home``; the executed notebook."""
    setup = f"from pagekit.client import Client\nclient = Client(home={str(home)!r}, start=False)"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in (setup, *cells)]
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3").execute()
    return nb


def wait_cell(task_id: str, progress: str = "") -> str:
    return f'final = client.wait({task_id!r}, timeout=120{progress})\nprint(final["status"])'


def bar(nb: Any, output: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The IntProgress and Label behind a displayed bar, from the notebook's widget state."""
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    box = state[output["data"][VIEW]["model_id"]]["state"]
    progress, label = (state[ref.removeprefix("IPY_MODEL_")]["state"] for ref in box["children"])
    return progress, label


def test_wait_in_a_notebook_draws_a_widget_bar_coloured_by_the_outcome(
    client: Client, runtime_home: Path, jobs: dict[str, str]
) -> None:
    nb = run_notebook(
        runtime_home,
        wait_cell(jobs["completed"]),
        wait_cell(jobs["failed"]),
        wait_cell(jobs["cancelled"]),
    )
    outcomes = {}
    for (name, _), cell in zip(jobs.items(), nb.cells[1:], strict=True):
        shown, printed = cell.outputs  # the bar, then the status: nothing on stderr
        assert printed["name"] == "stdout" and printed["text"] == f"{name}\n", cell.outputs
        assert shown["output_type"] == "display_data" and VIEW in shown["data"]
        progress, label = bar(nb, shown)
        # nbconvert and frontends without widgets read the final line as text/plain.
        assert shown["data"]["text/plain"] == f"{progress['description']} {label['value']}"
        assert progress["value"] == progress["max"] and progress["description"] == "100%"
        outcomes[name] = (progress["bar_style"], label["value"])

    assert outcomes["completed"][0] == "success"
    assert outcomes["completed"][1].startswith("Completed: 3 completed of 3 pages · took ")
    assert outcomes["failed"][0] == "danger"
    assert outcomes["failed"][1].startswith("Failed: 0 completed, 2 failed of 2 pages · took ")
    assert outcomes["cancelled"][0] == "warning"
    assert re.match(
        r"Cancelled: \d completed, [1-6] cancelled of 6 pages", outcomes["cancelled"][1]
    )


def test_wait_in_a_notebook_can_be_told_to_draw_text_or_nothing(
    runtime_home: Path, jobs: dict[str, str]
) -> None:
    nb = run_notebook(
        runtime_home,
        wait_cell(jobs["completed"], ', progress="text"'),
        wait_cell(jobs["completed"], ", progress=False"),
    )
    text, nothing = nb.cells[1].outputs, nb.cells[2].outputs
    assert [o["name"] for o in text] == ["stderr", "stdout"], text
    assert re.fullmatch(TEXT_BAR + r"\n", text[0]["text"]), text[0]["text"]
    assert [(o["name"], o["text"]) for o in nothing] == [("stdout", "completed\n")]


def test_wait_on_a_terminal_draws_the_text_bar_on_stderr(
    runtime_home: Path, jobs: dict[str, str]
) -> None:
    """ipywidgets is installed and IPython imported, but no kernel runs: text, as before."""
    script = (
        "import sys, IPython\n"
        "from pagekit.client import Client\n"
        "client = Client(home=sys.argv[1], start=False)\n"
        "print(client.wait(sys.argv[2], timeout=120)['status'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(runtime_home), jobs["completed"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "completed\n"
    assert re.fullmatch(TEXT_BAR, out.stderr.splitlines()[-1]), out.stderr


def test_wait_refuses_an_unknown_kind_of_bar(client: Client, jobs: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="progress is True, False, 'auto', 'text' or 'widget'"):
        client.wait(jobs["completed"], progress="fancy")
