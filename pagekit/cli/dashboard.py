"""``pagekit dashboard``: the web dashboard with Voila (the notebook extra)."""

from __future__ import annotations

import os
import sys

import click

from .. import dashboard as app
from .context import CliContext, pass_cli


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", type=int, default=None, help="Port (default: $PAGEKIT_DASHBOARD_PORT or 8866)."
)
@click.option(
    "--token",
    default=None,
    help="Require this token in the URL. Default: none on loopback; generated for other hosts.",
)
@click.option("--browser/--no-browser", default=False, show_default=True, help="Open a browser.")
@pass_cli
def dashboard(
    cli: CliContext, host: str, port: int | None, token: str | None, browser: bool
) -> None:
    """Serve the pagekit dashboard with Voila (starts or reuses the embedded runtime)."""
    from voila.app import Voila  # before anything starts: without the extra, say so at once

    settings = cli.settings
    port = port or settings.dashboard_port
    token = app.token_for(host, token)
    cli.client()  # start (or reuse) Redis and workers before serving
    cli.close()  # the dashboard's kernel opens its own
    # The kernel runs in the notebook's directory: hand it the absolute data directory.
    os.environ["PAGEKIT_HOME"] = str(settings.home_abs)
    url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"pagekit dashboard: {url}  (data in {settings.home_abs}; Ctrl-C stops it)")
    argv = app.voila_argv(host=host, port=port, token=token, browser=browser)
    sys.exit(Voila.launch_instance(argv=argv, config=app.voila_config(settings)))
