"""``pagekit dashboard``: the web dashboard with Voila (the notebook extra)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .. import dashboard as app
from .. import voila_template
from .context import CliContext, pass_cli

_POLICY = app.KernelPolicy()


def _policy_option(flag: str, text: str, minimum: int = 1) -> Any:
    """An option for a :class:`~pagekit.dashboard.KernelPolicy` field, with its
    ``PAGEKIT_DASHBOARD_*`` variable and default."""
    field = flag.removeprefix("--").replace("-", "_")
    return click.option(
        flag,
        type=click.IntRange(min=minimum),
        default=getattr(_POLICY, field),
        envvar=f"PAGEKIT_DASHBOARD_{field.upper()}",
        show_default=True,
        show_envvar=True,
        help=text,
    )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", type=int, default=None, help="Port (default: $PAGEKIT_DASHBOARD_PORT or 8866)."
)
@click.option(
    "--token",
    is_flag=False,
    flag_value=app.GENERATE,
    default=None,
    help="Require this token in the URL; --token alone generates one (on loopback too). "
    "Default: none on loopback; generated for other hosts.",
)
@click.option("--browser/--no-browser", default=False, show_default=True, help="Open a browser.")
@_policy_option(
    "--cull-disconnected",
    "Shut down a page's kernel once no browser has been connected to it this many "
    "seconds (a closed page's kernel goes at once).",
)
@_policy_option(
    "--cull-idle",
    "Shut down a kernel without a browser and without activity this many seconds.",
)
@_policy_option("--cull-interval", "Check the kernels every this many seconds.")
@_policy_option(
    "--max-kernels",
    "Pages open at once (one kernel, about 200 MB, each); one more gets HTTP 503. 0: no limit.",
    minimum=0,
)
@pass_cli
def dashboard(
    cli: CliContext,
    host: str,
    port: int | None,
    token: str | None,
    browser: bool,
    cull_disconnected: int,
    cull_idle: int,
    cull_interval: int,
    max_kernels: int,
) -> None:
    """Serve the pagekit dashboard with Voila (starts or reuses the embedded runtime).

    Each open page runs a kernel of its own. It is shut down when the page is closed,
    or once no browser has been connected to it for --cull-disconnected seconds, even
    while the page's progress bars poll a running job.
    """
    voila = app.voila_class()  # before anything starts: without the extra, say so at once

    settings = cli.settings
    port = port or settings.dashboard_port
    token = app.token_for(host, token)
    policy = app.KernelPolicy(
        cull_idle=cull_idle,
        cull_interval=cull_interval,
        cull_disconnected=cull_disconnected,
        max_kernels=max_kernels,
    )
    cli.client().connect()  # start (or reuse) Redis and workers before serving
    cli.close()  # the dashboard's kernel opens its own
    # The kernel runs in the notebook's directory: hand it the absolute data directory.
    os.environ["PAGEKIT_HOME"] = str(settings.home_abs)
    url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"pagekit dashboard: {url}  (data in {settings.home_abs}; Ctrl-C stops it)")
    argv = app.voila_argv(host=host, port=port, token=token, browser=browser)
    config = app.voila_config(settings, policy)
    voila_template.use(config)  # the page asks no CDN for anything
    sys.exit(voila.launch_instance(argv=argv, config=config))
