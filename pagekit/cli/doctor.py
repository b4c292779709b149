"""``pagekit doctor``: the troubleshooting list, each failure with its fix."""

from __future__ import annotations

import click

from .context import CliContext


@click.command()
@click.option("--fix", is_flag=True, help="Re-queue orphaned pages (their worker stopped) now.")
@click.pass_context
def doctor(ctx: click.Context, fix: bool) -> None:
    """Walk the troubleshooting list: Redis, workers, broker URL, database, OCR, orphans."""
    from ..doctor import run_checks

    ok = True
    for check in run_checks(ctx.ensure_object(CliContext).settings, fix=fix):
        mark = click.style("ok  ", fg="green") if check.ok else click.style("FAIL", fg="red")
        click.echo(f"{mark} {check.name}: {check.detail}")
        if not check.ok:
            ok = False
            click.echo(f"     fix: {check.fix}")
    if not ok:
        ctx.exit(1)
