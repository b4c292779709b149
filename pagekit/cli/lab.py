"""``pagekit lab``: JupyterLab on a folder of notebooks, set up for pagekit (notebook extra).

The kernels get the data directory as ``PAGEKIT_HOME``, uploads get the websocket limit
the dashboard has, and JupyterLab fetches nothing from the internet.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from .context import CliContext, pass_cli

# What JupyterLab would fetch from the internet, turned off: the news feed and the "a newer
# version is available" check (both read by the server), and the extension manager's PyPI
# search ("readonly" lists the installed extensions only).
OFFLINE = (
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument(
    "directory",
    default=".",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=None, help="Port (default: JupyterLab's, 8888).")
@click.option(
    "--token",
    default=None,
    help="Require this token in the URL (default: JupyterLab generates one and prints it).",
)
@click.option("--browser/--no-browser", default=True, show_default=True, help="Open a browser.")
@click.argument("lab_args", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def lab(
    cli: CliContext,
    directory: Path,
    host: str,
    port: int | None,
    token: str | None,
    browser: bool,
    lab_args: tuple[str, ...],
) -> None:
    """JupyterLab on DIRECTORY (default: here); `pagekit lab notebooks` opens the tutorials.

    Notebooks get pagekit's data directory (--home, else $PAGEKIT_HOME, else the user
    data directory) as PAGEKIT_HOME, so they share the CLI's runtime. Uploads may be
    PAGEKIT_WEBSOCKET_MAX_MESSAGE_MB large. Nothing is fetched from the internet: no news
    feed, no update check, no PyPI search. LAB_ARGS (--Class.trait=value options) go to
    JupyterLab.
    """
    from jupyterlab.labapp import LabApp

    settings = cli.settings
    os.environ["PAGEKIT_HOME"] = str(settings.home_abs)  # the kernels inherit it
    argv = [*OFFLINE, f"--ServerApp.root_dir={directory.resolve()}", f"--ServerApp.ip={host}"]
    if port is not None:
        argv.append(f"--ServerApp.port={port}")
    if token is not None:
        argv.append(f"--IdentityProvider.token={token}")
    if not browser:
        argv.append("--no-browser")
    # An upload travels in one websocket message: tornado's default limit is 10 MiB. (The
    # command line can only give this setting as a string, hence a keyword here.)
    server = LabApp.initialize_server(
        argv=[*argv, *lab_args], tornado_settings=settings.tornado_settings
    )
    server.start()
