"""``pagekit process``, ``pagekit task status | cancel | wait`` (the job contract) and
``pagekit jobs``, the list to find a job again."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .context import CliContext, pass_cli
from .group import INTERRUPTED
from .table import ago, format_table, is_missing

if TYPE_CHECKING:
    from ..client import Client


@click.command()
@click.argument("project")
@click.option("--pages", "pages_", help="Page numbers to process, e.g. 1,2,5 or 3-9.")
@click.option("--all-pending", is_flag=True, help="Process every pending page (the default).")
@click.option("--retry-failed", is_flag=True, help="Process failed and cancelled pages again.")
@click.option(
    "--ocr-mode",
    help="For this job only: auto, force (OCR even pages with a text layer) or text-only. "
    "Default: the project's.",
)
@click.option("--wait", "wait_", is_flag=True, help="Wait with a progress bar.")
@click.option(
    "--timeout", type=float, default=None, help="With --wait: give up after this many seconds."
)
@pass_cli
def process(
    cli: CliContext, project: str, pages_: str | None, all_pending: bool, retry_failed: bool,
    ocr_mode: str | None, wait_: bool, timeout: float | None,
) -> None:  # fmt: skip
    """Queue PROJECT's pages for processing (starting the local runtime if it is down);
    prints the job contract JSON (task_id ...).

    With no page to process, says so and exits 0. Ctrl-C during --wait stops waiting,
    not the job.
    """
    client = cli.client()
    if pages_ is not None:
        ids = client.page_ids_for_numbers(project, pages_)
        job = client.process_batch(project, ids, ocr_mode=ocr_mode)
    elif retry_failed:
        job = client.retry_failed(project, ocr_mode=ocr_mode)
    else:
        job = client.process_pending(project, ocr_mode=ocr_mode)
    cli.echo_json(job)
    if wait_:
        final = _wait(client, job["task_id"], timeout)
        click.echo(_summary(final))


def _wait(client: Client, task_id: str, timeout: float | None) -> dict[str, Any]:
    """``client.wait`` with a progress bar; Ctrl-C says the job goes on and how to reach it."""
    try:
        return client.wait(task_id, timeout=timeout)
    except KeyboardInterrupt:
        _detached(task_id)


def _detached(task_id: str) -> NoReturn:
    ref = shlex.quote(task_id)
    click.echo(
        f"stopped waiting; task {task_id} goes on in the background\n"
        f"  follow it: pagekit task wait {ref}\n"
        f"  cancel it: pagekit task cancel {ref}",
        err=True,
    )
    raise click.exceptions.Exit(INTERRUPTED)


def _summary(final: dict[str, Any]) -> str:
    r = final.get("result", {})
    return (
        f"{final['status']}: {r.get('completed', 0)} completed, {r.get('failed', 0)} failed "
        f"of {r.get('total', 0)} pages (task {final['task_id']})"
    )


@click.group()
def task() -> None:
    """Status, cancel or wait for a task (prints the job contract JSON); `pagekit jobs`
    lists the task ids."""


@task.command("status")
@click.argument("task_id")
@pass_cli
def task_status(cli: CliContext, task_id: str) -> None:
    """Where TASK_ID is: queued, processing (current/total) or its result."""
    cli.echo_json(cli.client(start=False).status(task_id))


@task.command("cancel")
@click.argument("task_id")
@pass_cli
def task_cancel(cli: CliContext, task_id: str) -> None:
    """Cancel TASK_ID; prints the job contract JSON with cancelled_pages."""
    cli.echo_json(cli.client(start=False).cancel(task_id))


@task.command("wait")
@click.argument("task_id")
@click.option(
    "--timeout", type=float, default=None, help="Give up after this many seconds (exit code 6)."
)
@pass_cli
def task_wait(cli: CliContext, task_id: str, timeout: float | None) -> None:
    """Wait for TASK_ID with a progress bar, then print its result. Ctrl-C stops waiting,
    not the task."""
    cli.echo_json(_wait(cli.client(start=False), task_id, timeout))


@click.command("jobs")
@click.argument("project", required=False)
@click.option("--active", is_flag=True, help="Only unfinished jobs (queued or processing).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show at most this many jobs, the newest.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON list instead: the columns of Client.jobs() and the project's name.",
)
@pass_cli
def job_list(cli: CliContext, project: str | None, active: bool, limit: int, as_json: bool) -> None:
    """List jobs, newest first, to find one again.

    Each with its task id, project, state, pages done/total, failed, cancelled and age.
    With PROJECT, only that project's jobs. The task id is what `pagekit task status |
    wait | cancel` take.
    """
    from ..contract import FINISHED, RUNNING_JOB
    from ..store import utcnow

    client = cli.client(start=False)
    df = client.jobs(project)
    if active:
        df = df[df["status"].isin([str(s) for s in RUNNING_JOB])]
    projects = client.projects()
    names = dict(zip(projects["project_id"], projects["name"], strict=True))
    found = len(df)
    jobs = df.head(limit).to_dict("records")
    for job in jobs:
        job["project"] = names.get(job["project_id"])
    if as_json:
        cli.echo_json([{k: _jsonable(v) for k, v in job.items()} for job in jobs])
    elif not jobs:
        click.echo("no unfinished jobs" if active else "no jobs yet")
    else:
        now = utcnow()
        rows = [
            {
                "task_id": job["task_id"],
                "project": job["project"],
                "state": job["status"],
                "done": f"{sum(job[state] for state in FINISHED)}/{job['total']}",
                **{str(state): job[state] for state in FINISHED[1:]},
                "age": ago(job["created_at"], now),
            }
            for job in jobs
        ]
        click.echo(format_table(rows))
    if found > limit:
        click.echo(f"{found - limit} older job(s) not shown: --limit {found} shows them", err=True)


def _jsonable(value: Any) -> Any:
    if is_missing(value):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else value
