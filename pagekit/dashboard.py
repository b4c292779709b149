"""What ``pagekit dashboard`` serves: the Voila web app (upload, process, live progress).

The notebook it serves ships inside the package (``pagekit/dashboards/pagekit.ipynb``;
the repository's ``dashboards/pagekit.ipynb`` is a link to it), so an installed pagekit
finds it. Voila runs on loopback without a token by default: only this machine's users
can reach it. ``--host`` on another interface requires a token (one is generated when
``--token`` is not given).
"""

from __future__ import annotations

import ipaddress
import secrets
from importlib.resources import files
from pathlib import Path
from typing import Any

from .config import MiB, Settings


def notebook_path() -> Path:
    """The dashboard notebook shipped with the package."""
    return Path(str(files("pagekit") / "dashboards" / "pagekit.ipynb"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_for(host: str, token: str | None) -> str | None:
    """The URL token: ``token`` if given, none on loopback, else a generated one."""
    if token is None and not is_loopback(host):
        return secrets.token_urlsafe(16)
    return token


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
