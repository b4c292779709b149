"""``pagekit flower``: Celery's monitor on loopback, behind a password (the monitor extra)."""

from __future__ import annotations

import os
import sys

import click

from .. import monitor
from .context import CliContext, pass_cli


@click.command()
@click.option("--port", type=int, default=None, help="Port (default: $PAGEKIT_FLOWER_PORT, 5555).")
@pass_cli
def flower(cli: CliContext, port: int | None) -> None:
    """Run Flower (Celery's monitor) on loopback, with a password, in the foreground."""
    import flower  # noqa: F401  (without the monitor extra, say so before anything else)

    settings = cli.settings if port is None else cli.settings.with_(flower_port=port)
    broker = monitor.watched_broker(settings)
    user, password, stored = monitor.credentials(settings)
    where = f"stored in {stored}" if stored else "from PAGEKIT_FLOWER_PASSWORD"
    click.echo(f"Flower: {monitor.flower_url(settings)}")
    click.echo(f"  user:     {user}")
    click.echo(f"  password: {password}  ({where})")
    click.echo("Stop it with Ctrl-C.", err=True)
    sys.stdout.flush()
    cmd = monitor.flower_command_line(settings.flower_port)
    from ..runtime import UMASK

    os.umask(UMASK)  # this process becomes Flower: what it writes is private, like the home
    # Same pid after exec: the dashboard's Workers panel finds this Flower by it.
    monitor.record_running(settings)
    os.execvpe(cmd[0], cmd, monitor.flower_env(settings, broker, user, password))
