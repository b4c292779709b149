"""``pagekit delete PROJECT --pages 1,3-5`` and ``pagekit project delete NAME``.

Both ask before deleting, unless ``--yes``; without a terminal to ask on, they refuse
(exit 2) rather than guess.
"""

from __future__ import annotations

import sys

import click

from ..errors import InvalidInput
from .context import CliContext, pass_cli

_YES = click.option("--yes", is_flag=True, help="Delete without asking first.")


def confirm(ctx: click.Context, question: str, yes: bool) -> None:
    """Ask ``question`` on the terminal unless ``--yes``; "no" exits 1, deleting nothing."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInput("nothing deleted: not asking without a terminal; pass --yes to delete")
    if not click.confirm(question, default=False):
        click.echo("nothing deleted")
        ctx.exit(1)


@click.command()
@click.argument("project")
@click.option("--pages", "pages_", required=True, help="Page numbers to delete, e.g. 1,3-5.")
@_YES
@pass_cli
@click.pass_context
def delete(ctx: click.Context, cli: CliContext, project: str, pages_: str, yes: bool) -> None:
    """Delete pages of PROJECT with their results (refused while any of them is queued or
    processing). The other pages keep their numbers."""
    client = cli.client(start=False)
    name = client.project(project)["name"]
    ids = client.page_ids_for_numbers(project, pages_)
    what = f"{len(ids)} page(s) ({pages_})"
    confirm(ctx, f"Delete {what} of project {name!r} with their results?", yes)
    out = client.delete_pages(project, ids)
    click.echo(
        f"deleted {out['deleted']} page(s) ({pages_}) of project {name!r}; "
        f"removed {out['blobs_removed']} stored file(s)"
    )


@click.command("delete")
@click.argument("name")
@_YES
@pass_cli
@click.pass_context
def project_delete(ctx: click.Context, cli: CliContext, name: str, yes: bool) -> None:
    """Delete project NAME with all its pages, results and jobs (refused while any of its
    pages is queued or processing)."""
    client = cli.client(start=False)
    info = client.project(name)
    pages = sum(info["counts"].values())
    question = f"Delete project {info['name']!r} with its {pages} page(s), results and jobs?"
    confirm(ctx, question, yes)
    out = client.delete_project(info["project_id"])
    click.echo(
        f"deleted project {out['name']!r} and its {out['deleted']} page(s); "
        f"removed {out['blobs_removed']} stored file(s)"
    )
