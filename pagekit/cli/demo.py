"""``pagekit demo`` (``make demo``): the shipped sample pages processed end to end."""

from __future__ import annotations

from pathlib import Path

import click

from ..contract import JobState
from .context import CliContext


@click.command()
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), default=Path("demo-results.csv"),
    show_default=True, help="Where to write the results as CSV.",
)  # fmt: skip
@click.pass_context
def demo(ctx: click.Context, output: Path) -> None:
    """Process the shipped sample pages end to end (what `make demo` runs)."""
    from ..demo import run

    final = run(ctx.ensure_object(CliContext).client(), output)
    if final["status"] != JobState.COMPLETED:
        ctx.exit(1)
