"""``pagekit export`` (CSV, JSONL, Parquet, Excel, a text bundle) and ``pagekit report``."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from ..contract import EXPORT_FORMATS as FORMATS
from ..contract import REPORT_MAX_PAGES
from .context import CliContext, pass_cli


@click.command()
@click.argument("project")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default=None,
    help="File format (default: from the --output extension).",
)  # fmt: skip
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True,
    help="The file to write, e.g. results.csv or letters.parquet.",
)  # fmt: skip
@pass_cli
def export(cli: CliContext, project: str, fmt: str | None, output: Path) -> None:
    """Export PROJECT's results to a file (format from --format or the extension)."""
    client = cli.client(start=False)
    path = client.export(project, output, fmt)
    click.echo(f"wrote {path}")
    _review_note(client, project)


def _review_note(client: Any, project: str) -> None:
    """Point at the pages flagged for review, when there are any."""
    flagged = client.count_pages(project, needs_review=True)
    if flagged:
        name = shlex.quote(project)
        click.echo(f"{flagged} page(s) need review: pagekit pages {name} --needs-review")


@click.command()
@click.argument("project")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Where to write it (default: <project>-report.html; a .pdf name writes a PDF only).",
)  # fmt: skip
@click.option("--notebook", is_flag=True, help="Build it by executing notebooks/report.ipynb.")
@click.option("--pdf", is_flag=True, help="Also print it to PDF (needs headless Chromium).")
@click.option(
    "--max-pages", type=int, default=REPORT_MAX_PAGES, show_default=True,
    help="Rows in the per-page table (every page is in `pagekit export`).",
)  # fmt: skip
@pass_cli
def report(
    cli: CliContext, project: str, output: Path | None, notebook: bool, pdf: bool,
    max_pages: int,
) -> None:  # fmt: skip
    """Write PROJECT's report: one self-contained HTML file (optionally a PDF too)."""
    if notebook:  # the notebook extra: say so before any work is done
        import nbconvert  # noqa: F401
        import papermill  # noqa: F401
    from ..report_html import make_report

    client = cli.client(start=False)
    written = make_report(
        client, project, output=output, notebook=notebook, pdf=pdf, max_pages=max_pages
    )
    for path in written:
        click.echo(f"wrote {path}")
    _review_note(client, project)
