"""The demo (``pagekit demo``, ``make demo``): the main job end to end on the embedded runtime.

Starts the runtime, creates a project from the sample pages shipped with pagekit,
processes every pending page with a live progress bar, prints a summary and the job contract
status JSON, and writes a CSV.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from . import samples
from .cli.table import format_table
from .contract import DEMO_COLUMNS

if TYPE_CHECKING:
    from .client import Client


def run(client: Client, csv_path: Path, out: TextIO | None = None) -> dict:
    """Run the demo on ``client``; returns the final job contract status."""

    def say(msg: str = "") -> None:
        print(msg, file=out or sys.stdout, flush=True)

    say(f"pagekit demo: data in {client.settings.home_abs}")
    say("Waiting for the local worker to answer...")
    client.wait_for_workers()
    name = time.strftime("demo-%Y%m%d-%H%M%S")
    project = client.create_project(name)
    files = samples.paths()
    say(f"Created project {name!r}; adding {len(files)} sample files...")
    for o in client.add_pages(project, files):
        say(f"  {o['status']:9} {o['source']}: {len(o['page_ids'])} page(s)")
    job = client.process_pending(project)
    say(f"Process All Pending -> {json.dumps(job)}")
    final = client.wait(job["task_id"])
    df = client.pages(project)
    say()
    say(format_table(df, DEMO_COLUMNS))
    say()
    shown = dict(final, result=dict(final["result"], results=f"[{len(df)} pages]"))
    say("Completed status (job contract JSON, results abbreviated):")
    say(json.dumps(shown, indent=2))
    client.export(project, csv_path)
    say()
    say(f"Wrote {csv_path}")
    say("Next: `.venv/bin/pagekit dashboard` (or `make dashboard`) opens the web dashboard;")
    say("      `.venv/bin/pagekit down` (or `make down`) stops the runtime.")
    return final
