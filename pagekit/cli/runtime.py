"""``pagekit up | down | status | worker``: the embedded runtime and workers."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from .. import runtime
from .context import CliContext, pass_cli

if TYPE_CHECKING:
    from ..client import Client
    from ..config import Settings


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
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the raw JSON instead: home, runtime, broker, workers, queue_depth, "
    "pages_waiting_for_redelivery.",
)
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the runtime, workers, queue and jobs (starts nothing).

    One line each for the data directory, the runtime (up or down, Redis's address),
    the workers alive and their concurrency, the queue depth, the database and the jobs
    running. Exit code 1 when the embedded runtime is not running.
    """
    cli = ctx.ensure_object(CliContext)
    settings = cli.settings
    info: dict[str, Any] = {
        "home": str(settings.home_abs),
        "runtime": None,
        "broker": settings.broker_url and "external",
    }
    if not settings.broker_url:
        info["runtime"] = runtime.describe(settings)
        if not info["runtime"]["running"]:  # the database is not even opened
            _show(info, as_json, settings)
            click.echo("not running: start it with `pagekit up`", err=True)
            ctx.exit(1)
    client = cli.client(start=False)
    info["workers"] = client.workers()
    info["queue_depth"] = client.queue_depth()
    orphans = client.orphans()
    info["pages_waiting_for_redelivery"] = len(orphans)
    _show(info, as_json, settings, client)
    if orphans:
        click.echo(
            f"{len(orphans)} page(s) wait for redelivery: their worker stopped sending "
            f"heartbeats; a live worker re-queues them within "
            f"{settings.heartbeat_timeout:.0f} s (`pagekit doctor --fix` does it now)",
            err=True,
        )


def _show(
    info: dict[str, Any], as_json: bool, settings: Settings, client: Client | None = None
) -> None:
    if as_json:
        CliContext.echo_json(info)
    else:
        click.echo(_summary(info, settings, client))


def _summary(info: dict[str, Any], settings: Settings, client: Client | None = None) -> str:
    """``pagekit status`` for a person: one line per part, a label in front. Without a
    ``client`` (the runtime is down), nothing is read from the database."""
    from ..config import redact
    from ..contract import RUNNING_JOB

    lines = [("home", info["home"])]
    described = info["runtime"]
    if described is None:
        lines.append(("broker", f"{redact(settings.broker_url or '')} (external)"))
    elif described["running"]:
        redis = described["redis"]
        lines.append(("runtime", f"up: Redis on 127.0.0.1:{redis['port']} (pid {redis['pid']})"))
    else:
        lines.append(("runtime", "down"))
    if "workers" in info:
        workers = info["workers"]
        named = ", ".join(
            f"{w['name']} (concurrency {w['concurrency']}, {w['active']} busy)" for w in workers
        )
        named = named or "start one with `pagekit up` or `pagekit worker`"
        lines.append(("workers", f"{len(workers)} alive: {named}"))
        lines.append(("queue", f"{info['queue_depth']} page(s) waiting for a worker"))
    lines.append(("database", redact(settings.db_url)))
    if client is not None:
        jobs = client.jobs()
        running = int(jobs["status"].isin([str(s) for s in RUNNING_JOB]).sum())
        hint = " (pagekit jobs --active)" if running else ""
        lines.append(("jobs", f"{running} running, {len(jobs)} in all{hint}"))
    width = max(len(label) for label, _ in lines) + 2
    return "\n".join(f"{label + ':':<{width}}{value}" for label, value in lines)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", "-c", type=int, help="Processes (default: one per CPU).")
@click.option("--hostname", "-n", help="Worker name (default: pagekit@<host>).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def worker(
    cli: CliContext, concurrency: int | None, hostname: str | None, celery_args: tuple[str, ...]
) -> None:
    """Run a worker in the foreground, e.g. on another host against a shared broker.

    CELERY_ARGS are passed on to `celery worker` as they are (e.g. --loglevel debug).
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
