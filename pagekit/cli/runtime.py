"""``pagekit up | down | status | worker``: the embedded runtime and workers."""

from __future__ import annotations

import os
from typing import Any

import click

from .. import runtime
from .context import CliContext, pass_cli


@click.command()
@click.option("--workers", type=int, help="Worker processes (default: one per CPU).")
@pass_cli
def up(cli: CliContext, workers: int | None) -> None:
    """Start (or reuse) the embedded Redis and local workers."""
    settings = cli.settings.with_(workers=workers) if workers else cli.settings
    if settings.broker_url:
        raise click.UsageError("PAGEKIT_BROKER_URL is set: there is no embedded runtime to start")
    state = runtime.ensure(settings)
    replies = runtime.wait_worker(state["broker_url"], settings=settings)
    click.echo(
        f"pagekit runtime up: Redis on 127.0.0.1:{state['redis_port']}, "
        f"{len(replies)} worker(s) answering, data in {settings.home_abs}"
    )


@click.command()
@pass_cli
def down(cli: CliContext) -> None:
    """Stop the embedded Redis and workers (queued pages are kept on disk)."""
    if runtime.stop(cli.settings):
        click.echo("pagekit runtime stopped")
    else:
        click.echo("pagekit runtime was not running")


@click.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show the data directory, the runtime, workers and queue (starts nothing)."""
    cli = ctx.ensure_object(CliContext)
    settings = cli.settings
    info: dict[str, Any] = {
        "home": str(settings.home_abs),
        "runtime": None,
        "broker": settings.broker_url and "external",
    }
    if not settings.broker_url:
        info["runtime"] = runtime.describe(settings)
        if not info["runtime"]["running"]:
            cli.echo_json(info)
            click.echo("not running: start it with `pagekit up`", err=True)
            ctx.exit(1)
    client = cli.client(start=False)
    info["workers"] = client.workers()
    info["queue_depth"] = client.queue_depth()
    orphans = client.orphans()
    info["pages_waiting_for_redelivery"] = len(orphans)
    cli.echo_json(info)
    if orphans:
        click.echo(
            f"{len(orphans)} page(s) wait for redelivery: their worker stopped sending "
            f"heartbeats; a live worker re-queues them within "
            f"{settings.heartbeat_timeout:.0f} s (`pagekit doctor --fix` does it now)",
            err=True,
        )


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", "-c", type=int, help="Processes (default: one per CPU).")
@click.option("--hostname", "-n", help="Worker name (default: pagekit@<host>).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def worker(
    cli: CliContext, concurrency: int | None, hostname: str | None, celery_args: tuple[str, ...]
) -> None:
    """Run a worker in the foreground, e.g. on another host against a shared broker.

    Needs PAGEKIT_BROKER_URL, PAGEKIT_DATABASE_URL and PAGEKIT_BLOB_DIR pointing at the
    shared broker, database and blob directory (or a local runtime from `pagekit up`).
    """
    settings = cli.settings
    broker = runtime.broker_url(settings)
    name = hostname or "pagekit"
    cmd = runtime.worker_command(
        concurrency or settings.concurrency, name if "@" in name else f"{name}@%h"
    )
    env = runtime.worker_env(settings, broker)
    os.execvpe(cmd[0], [*cmd, *celery_args], env)
