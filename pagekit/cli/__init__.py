"""The ``pagekit`` command. Every subcommand is a thin call into :class:`pagekit.Client`.

Subcommands live in modules named for what they hold and are imported only when they
run (see :mod:`pagekit.cli.group`); ``COMMANDS`` says where each one is.
"""

from __future__ import annotations

from pathlib import Path

import click

from .context import CliContext
from .group import EXIT_CODES, LazyGroup

# command -> "module:attribute"
COMMANDS = {
    "up": "pagekit.cli.runtime:up",
    "down": "pagekit.cli.runtime:down",
    "status": "pagekit.cli.runtime:status",
    "worker": "pagekit.cli.runtime:worker",
    "project": "pagekit.cli.projects:project",
    "add": "pagekit.cli.projects:add",
    "pages": "pagekit.cli.projects:pages",
    "delete": "pagekit.cli.delete:delete",
    "search": "pagekit.cli.search:search",
    "process": "pagekit.cli.jobs:process",
    "task": "pagekit.cli.jobs:task",
    "jobs": "pagekit.cli.jobs:job_list",
    "export": "pagekit.cli.exports:export",
    "report": "pagekit.cli.exports:report",
    "doctor": "pagekit.cli.doctor:doctor",
    "token": "pagekit.cli.token:token",
    "serve": "pagekit.cli.serve:serve",
    "dashboard": "pagekit.cli.dashboard:dashboard",
    "lab": "pagekit.cli.lab:lab",
    "flower": "pagekit.cli.flower:flower",
    "demo": "pagekit.cli.demo:demo",
}

__all__ = ["COMMANDS", "main"]


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, epilog=EXIT_CODES)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory (default: $PAGEKIT_HOME, else the user data directory, "
    "e.g. ~/.local/share/pagekit).",
)
@click.version_option(package_name="pagekit")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """pagekit: upload document pages, process them on Celery workers, export results."""
    ctx.obj = CliContext(home=home)
