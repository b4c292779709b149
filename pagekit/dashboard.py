"""``pagekit dashboard``: the Voila web app (upload, Process All Pending, live progress).

The notebook it serves ships inside the package (``pagekit/dashboards/pagekit.ipynb``;
the repository's ``dashboards/pagekit.ipynb`` is a link to it), so an installed pagekit
finds it. Voila runs on loopback without a token by default: only this machine's users
can reach it. ``--host`` on another interface requires a token (one is generated when
``--token`` is not given).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import click

from .config import MiB, Settings


def notebook_path() -> Path:
    """The dashboard notebook shipped with the package."""
    return Path(str(files("pagekit") / "dashboards" / "pagekit.ipynb"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def voila_argv(*, host: str, port: int, token: str | None, browser: bool) -> list[str]:
    """Voila's command line for the dashboard (tornado settings go in as config)."""
    argv = [
        str(notebook_path()),
        f"--Voila.ip={host}",
        f"--port={port}",
        "--Voila.open_browser=" + ("True" if browser else "False"),
        "--show_tracebacks=False",
    ]
    if token:
        argv.append(f"--token={token}")
    return argv


def voila_config(settings: Settings) -> Any:
    """Config for Voila's tornado app: uploads travel in one websocket message, so the
    message limit (tornado's default is 10 MiB) is ``websocket_max_message_mb``."""
    from traitlets.config import Config

    cfg = Config()
    cfg.Voila.tornado_settings = {
        "websocket_max_message_size": settings.websocket_max_message_mb * MiB
    }
    return cfg


@click.command("dashboard")
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
@click.pass_context
def dashboard_command(
    ctx: click.Context, host: str, port: int | None, token: str | None, browser: bool
) -> None:
    """Serve the pagekit dashboard with Voila (starts or reuses the embedded runtime)."""
    from voila.app import Voila

    from .client import Client

    home = (ctx.find_object(dict) or {}).get("home")
    settings = Settings.from_env(home=home)
    port = port or settings.dashboard_port
    if token is None and not _is_loopback(host):
        token = secrets.token_urlsafe(16)
    client = Client(settings=settings)  # start (or reuse) Redis and workers before serving
    client.close()
    # The kernel runs in the notebook's directory: hand it the absolute data directory.
    os.environ["PAGEKIT_HOME"] = str(settings.home_abs)
    url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"pagekit dashboard: {url}  (data in {settings.home_abs}; Ctrl-C stops it)")
    argv = voila_argv(host=host, port=port, token=token, browser=browser)
    sys.exit(Voila.launch_instance(argv=argv, config=voila_config(settings)))
