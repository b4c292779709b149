"""The ``pagekit`` command. Every subcommand is a thin call into :class:`pagekit.Client`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from . import runtime
from .config import Settings
from .errors import NothingToProcess, PagekitError
from .reports import FORMATS


def _client(ctx: click.Context, start: bool = True) -> Any:
    from .client import Client

    obj = ctx.ensure_object(dict)
    if "client" not in obj:
        obj["client"] = Client(home=obj.get("home"), start=start)
    return obj["client"]


def _settings(ctx: click.Context) -> Settings:
    return Settings.from_env(home=ctx.ensure_object(dict).get("home"))


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


class _Group(click.Group):
    """Turns PagekitError into one readable line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PagekitError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory (default: $PAGEKIT_HOME or ./pagekit-data).",
)
@click.version_option(package_name="pagekit")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """pagekit: upload document pages, process them on Celery workers, export results."""
    ctx.ensure_object(dict)["home"] = home


# -- the embedded runtime -------------------------------------------------------------------


@main.command()
@click.option("--workers", type=int, help="Worker processes (default: one per CPU).")
@click.pass_context
def up(ctx: click.Context, workers: int | None) -> None:
    """Start (or reuse) the embedded Redis and local workers."""
    settings = _settings(ctx).with_(workers=workers) if workers else _settings(ctx)
    if settings.broker_url:
        raise click.UsageError("PAGEKIT_BROKER_URL is set: there is no embedded runtime to start")
    state = runtime.ensure(settings)
    replies = runtime.wait_worker(state["broker_url"])
    click.echo(
        f"pagekit runtime up: Redis on 127.0.0.1:{state['redis_port']}, "
        f"{len(replies)} worker(s) answering, data in {settings.home_abs}"
    )


@main.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop the embedded Redis and workers (queued pages are kept on disk)."""
    if runtime.stop(_settings(ctx)):
        click.echo("pagekit runtime stopped")
    else:
        click.echo("pagekit runtime was not running")


@main.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show the runtime, workers and queue."""
    settings = _settings(ctx)
    info: dict[str, Any] = {"runtime": None, "broker": settings.broker_url and "external"}
    if not settings.broker_url:
        info["runtime"] = runtime.describe(settings)
        if not info["runtime"]["running"]:
            _echo_json(info)
            click.echo("not running: start it with `pagekit up`", err=True)
            ctx.exit(1)
    client = _client(ctx, start=False)
    info["workers"] = client.workers()
    info["queue_depth"] = client.queue_depth()
    orphans = client.orphans()
    info["pages_waiting_for_redelivery"] = len(orphans)
    _echo_json(info)
    if orphans:
        click.echo(
            f"{len(orphans)} page(s) wait for redelivery: their worker stopped sending "
            f"heartbeats; a live worker re-queues them within "
            f"{client.settings.heartbeat_timeout:.0f} s (`pagekit doctor --fix` does it now)",
            err=True,
        )


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", "-c", type=int, help="Processes (default: one per CPU).")
@click.option("--hostname", "-n", help="Worker name (default: pagekit@<host>).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def worker(
    ctx: click.Context, concurrency: int | None, hostname: str | None, celery_args: tuple
) -> None:
    """Run a worker in the foreground, e.g. on another host against a shared broker.

    Needs PAGEKIT_BROKER_URL, PAGEKIT_DATABASE_URL and PAGEKIT_BLOB_DIR pointing at the
    shared broker, database and blob directory (or a local runtime from `pagekit up`).
    """
    settings = _settings(ctx)
    from .celery_app import broker_from_env

    broker = broker_from_env(settings)
    name = hostname or "pagekit"
    cmd = runtime.worker_command(
        concurrency or settings.concurrency, name if "@" in name else f"{name}@%h"
    )
    env = runtime.worker_env(settings, broker)
    os.execvpe(cmd[0], [*cmd, *celery_args], env)


# -- projects and pages ---------------------------------------------------------------------


@main.group()
def project() -> None:
    """Create and list projects."""


@project.command("create")
@click.argument("name")
@click.option("--steps", default="", help="Custom steps to run on each page, comma-separated.")
@click.pass_context
def project_create(ctx: click.Context, name: str, steps: str) -> None:
    steps_list = [s.strip() for s in steps.split(",") if s.strip()]
    _echo_json(_client(ctx).create_project(name, steps_list))


@project.command("list")
@click.pass_context
def project_list(ctx: click.Context) -> None:
    df = _client(ctx).projects()
    click.echo(df.to_string(index=False) if len(df) else "no projects yet")


@main.command()
@click.argument("project")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--page-number", type=int, help="Page number for a single file.")
@click.pass_context
def add(ctx: click.Context, project: str, files: tuple[Path, ...], page_number: int | None) -> None:
    """Add image and PDF files to PROJECT (a PDF adds one page per PDF page)."""
    outcomes = _client(ctx).add_pages(project, list(files), page_number=page_number)
    rejected = 0
    for o in outcomes:
        if o["status"] == "added":
            nums = o["page_numbers"]
            span = f"{nums[0]}" if len(nums) == 1 else f"{nums[0]}-{nums[-1]}"
            click.echo(f"added     {o['source']}: {len(nums)} page(s), page number {span}")
            if o["duplicates"]:  # some pages were already in the project
                click.echo(f"          {o['error']}")
        elif o["status"] == "duplicate":
            click.echo(f"duplicate {o['error']}")
        else:
            rejected += 1
            click.secho(f"rejected  {o['error']}", fg="red", err=True)
    if rejected:
        ctx.exit(5)


@main.command()
@click.argument("project")
@click.option("--status", "status_", help="Only pages with this status.")
@click.option("--limit", type=int, default=None)
@click.pass_context
def pages(ctx: click.Context, project: str, status_: str | None, limit: int | None) -> None:
    """List PROJECT's pages."""
    df = _client(ctx).pages(project, status=status_, limit=limit)
    cols = ["page_id", "page_number", "source", "status", "words", "confidence", "error"]
    click.echo(df[cols].to_string(index=False) if len(df) else "no pages")


def _parse_numbers(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


@main.command()
@click.argument("project")
@click.option("--pages", "pages_", help="Page numbers to process, e.g. 1,2,5 or 3-9.")
@click.option("--all-pending", is_flag=True, help="Process every pending page (the default).")
@click.option("--retry-failed", is_flag=True, help="Process failed and cancelled pages again.")
@click.option("--wait", "wait_", is_flag=True, help="Wait with a progress bar.")
@click.option(
    "--timeout", type=float, default=None, help="With --wait: give up after this many seconds."
)
@click.pass_context
def process(
    ctx: click.Context, project: str, pages_: str | None, all_pending: bool, retry_failed: bool,
    wait_: bool, timeout: float | None,
) -> None:  # fmt: skip
    """Queue PROJECT's pages for processing; prints the job contract JSON (task_id ...)."""
    client = _client(ctx)
    if pages_:
        wanted = set(_parse_numbers(pages_))
        df = client.pages(project)
        found = df[df.page_number.isin(wanted)]
        missing = sorted(wanted - set(found.page_number))
        if missing:
            raise click.BadParameter(
                f"no page number(s) {missing} in {project}", param_hint="--pages"
            )
        job = client.process_batch(project, [int(i) for i in found.page_id])
    elif retry_failed:
        job = client.retry_failed(project)
    else:
        try:
            job = client.process_pending(project)
        except NothingToProcess as exc:
            click.echo(str(exc))
            return
    _echo_json(job)
    if wait_:
        final = client.wait(job["task_id"], timeout=timeout)
        _print_final(final)


def _print_final(final: dict[str, Any]) -> None:
    r = final.get("result", {})
    click.echo(
        f"{final['status']}: {r.get('completed', 0)} completed, {r.get('failed', 0)} failed "
        f"of {r.get('total', 0)} pages (task {final['task_id']})"
    )


@main.group()
def task() -> None:
    """Status, cancel or wait for a task (prints the job contract JSON)."""


@task.command("status")
@click.argument("task_id")
@click.pass_context
def task_status(ctx: click.Context, task_id: str) -> None:
    _echo_json(_client(ctx).status(task_id))


@task.command("cancel")
@click.argument("task_id")
@click.pass_context
def task_cancel(ctx: click.Context, task_id: str) -> None:
    _echo_json(_client(ctx).cancel(task_id))


@task.command("wait")
@click.argument("task_id")
@click.option("--timeout", type=float, default=None)
@click.pass_context
def task_wait(ctx: click.Context, task_id: str, timeout: float | None) -> None:
    _echo_json(_client(ctx).wait(task_id, timeout=timeout))


@main.command()
@click.argument("project")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.pass_context
def export(ctx: click.Context, project: str, fmt: str | None, output: Path) -> None:
    """Export PROJECT's results to a file (format from --format or the extension)."""
    path = _client(ctx).export(project, output, fmt)
    click.echo(f"wrote {path}")


@main.command()
@click.option("--fix", is_flag=True, help="Re-queue orphaned pages (their worker stopped) now.")
@click.pass_context
def doctor(ctx: click.Context, fix: bool) -> None:
    """Walk the troubleshooting list: Redis, workers, broker URL, database, OCR, orphans."""
    from .doctor import run_checks

    ok = True
    for check in run_checks(_settings(ctx), fix=fix):
        mark = click.style("ok  ", fg="green") if check.ok else click.style("FAIL", fg="red")
        click.echo(f"{mark} {check.name}: {check.detail}")
        if not check.ok:
            ok = False
            click.echo(f"     fix: {check.fix}")
    if not ok:
        ctx.exit(1)


# Commands that live in their own modules, next to what they run.
_COMMANDS = [
    ("pagekit.demo", "demo_command"),
    ("pagekit.dashboard", "dashboard_command"),
    ("pagekit.api", "serve_command"),
    ("pagekit.tokens", "token_group"),
    ("pagekit.monitor", "flower_command"),
    ("pagekit.report_html", "report_command"),
]


def _register_optional_commands() -> None:
    import importlib

    for module, attr in _COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a missing dependency inside it is a real error
                raise
            continue
        main.add_command(getattr(mod, attr))


_register_optional_commands()

if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
