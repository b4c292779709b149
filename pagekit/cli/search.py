"""``pagekit search PROJECT QUERY``: the pages whose text matches, best first."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..contract import SEARCH_SUMMARY_COLUMNS
from .context import CliContext, pass_cli
from .table import format_table

# How wide the source column may get before it is cut (the snippet matters more).
SOURCE_WIDTH = 30


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("project")
@click.argument("query", nargs=-1, required=True)
@click.option("--limit", type=int, default=20, show_default=True, help="Matches to show.")
@click.option("--offset", type=int, default=0, help="Skip this many matches first.")
@click.option("--json", "as_json", is_flag=True, help="Print the matches as JSON.")
@pass_cli
def search(
    cli: CliContext, project: str, query: tuple[str, ...], limit: int, offset: int, as_json: bool
) -> None:
    """Find PROJECT's pages whose text matches QUERY, best first.

    \b
    harbour ship      pages with both words
    '"the harbour"'   the words in this order
    ship OR boat      either word
    harb*             words starting with harb
    harbour -storm    pages with harbour, without storm
    """
    client = cli.client(start=False)
    text = " ".join(query)
    found = client.search(text, project, limit=limit, offset=offset)
    total = client.count_matches(text, project)
    records = found.astype(object).where(found.notna(), None).to_dict("records")
    if as_json:
        pid = client.project(project)["project_id"]
        cli.echo_json(
            {
                "project_id": pid,
                "query": text,
                "total": total,
                "limit": limit,
                "offset": offset,
                "results": records,
            }
        )
        return
    if not records:
        more = f" after the first {offset}" if offset and total else ""
        click.echo(f"no pages match {text!r}{more}")
        return
    bold = sys.stdout.isatty()
    for row in records:
        row["snippet"] = _snippet(row, bold)
        if len(row["source"]) > SOURCE_WIDTH:
            row["source"] = row["source"][: SOURCE_WIDTH - 1] + "\u2026"
    click.echo(f"{total} page(s) match {text!r}, best first:")
    table = format_table(records, SEARCH_SUMMARY_COLUMNS, headers=HEADERS)
    click.echo(table, color=bold)


HEADERS = {"page_number": "page", "confidence": "conf"}


def _snippet(row: dict[str, Any], bold: bool) -> str:
    """The matches in bold on a terminal, else in ``[`` ``]`` (the plain snippet)."""
    if not bold:
        return str(row["snippet"])
    from ..search import marked_parts

    return "".join(
        click.style(part, bold=True) if match else part
        for part, match in marked_parts(row["snippet_html"])
    )
