"""``pagekit serve``: the HTTP API (the api extra: FastAPI and uvicorn)."""

from __future__ import annotations

import click

from .context import CliContext, pass_cli


@click.command()
@click.option("--host", default=None, help="Interface (default: $PAGEKIT_API_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: $PAGEKIT_API_PORT or 8001).")
@pass_cli
def serve(cli: CliContext, host: str | None, port: int | None) -> None:
    """Serve the HTTP API (upload, process, status, cancel) with uvicorn."""
    import uvicorn  # before anything starts: without the api extra, say so at once

    from .. import api, tokens

    host = host or cli.settings.api_host
    port = port or cli.settings.api_port
    client = cli.client()
    client.connect()  # start (or reuse) the runtime before the first request
    app = api.create_app(client)
    click.echo(f"pagekit API on http://{host}:{port}  (OpenAPI docs: http://{host}:{port}/docs)")
    if not tokens.any_active(client.store):
        click.echo("no API tokens yet: create one with `pagekit token create NAME`")
    else:
        click.echo("every route but /health needs `Authorization: Bearer <token>`")
    uvicorn.run(app, host=host, port=port, log_level="info")
