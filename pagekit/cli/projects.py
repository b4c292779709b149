"""``pagekit project create | list``, ``pagekit add``, ``pagekit pages``."""

from __future__ import annotations

from pathlib import Path

import click

from ..contract import PAGE_SUMMARY_COLUMNS
from ..errors import IngestError
from .context import CliContext, pass_cli


@click.group()
def project() -> None:
    """Create and list projects."""


@project.command("create")
@click.argument("name")
@click.option("--steps", default="", help="Custom steps to run on each page, comma-separated.")
@pass_cli
def project_create(cli: CliContext, name: str, steps: str) -> None:
    """Create a project called NAME; prints it as JSON."""
    steps_list = [s.strip() for s in steps.split(",") if s.strip()]
    cli.echo_json(cli.client(start=False).create_project(name, steps_list))


@project.command("list")
@pass_cli
def project_list(cli: CliContext) -> None:
    """List projects with their page counts."""
    df = cli.client(start=False).projects()
    click.echo(df.to_string(index=False) if len(df) else "no projects yet")


@click.command()
@click.argument("project")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--page-number", type=int, help="Page number for a single file.")
@click.pass_context
def add(ctx: click.Context, project: str, files: tuple[Path, ...], page_number: int | None) -> None:
    """Add image and PDF files to PROJECT (a PDF adds one page per PDF page)."""
    client = ctx.ensure_object(CliContext).client(start=False)
    rejected = 0
    for o in client.add_pages(project, list(files), page_number=page_number):
        if o["status"] == "added":
            nums = o["page_numbers"]
            span = f"{nums[0]}" if len(nums) == 1 else f"{nums[0]}-{nums[-1]}"
            click.echo(f"added     {o['source']}: {len(nums)} page(s), page number {span}")
            if o["duplicates"]:  # some pages were already in the project
                click.echo(f"          {o['error']}")
        elif o["status"] == "duplicate":
            click.echo(f"duplicate {o['error']}")
        else:
            rejected += 1
            click.secho(f"rejected  {o['error']}", fg="red", err=True)
    if rejected:
        ctx.exit(IngestError.exit_code)


@click.command()
@click.argument("project")
@click.option("--status", "status_", help="Only pages with this status.")
@click.option("--limit", type=int, default=None)
@pass_cli
def pages(cli: CliContext, project: str, status_: str | None, limit: int | None) -> None:
    """List PROJECT's pages."""
    df = cli.client(start=False).pages(project, status=status_, limit=limit)
    click.echo(df[list(PAGE_SUMMARY_COLUMNS)].to_string(index=False) if len(df) else "no pages")
