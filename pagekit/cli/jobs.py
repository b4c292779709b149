"""``pagekit process`` and ``pagekit task status | cancel | wait``: the job contract."""

from __future__ import annotations

from typing import Any

import click

from ..errors import NothingToProcess
from .context import CliContext, pass_cli


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
    prints the job contract JSON (task_id ...)."""
    client = cli.client()
    if pages_ is not None:
        ids = client.page_ids_for_numbers(project, pages_)
        job = client.process_batch(project, ids, ocr_mode=ocr_mode)
    elif retry_failed:
        job = client.retry_failed(project, ocr_mode=ocr_mode)
    else:
        try:
            job = client.process_pending(project, ocr_mode=ocr_mode)
        except NothingToProcess as exc:
            click.echo(str(exc))
            return
    cli.echo_json(job)
    if wait_:
        final = client.wait(job["task_id"], timeout=timeout)
        click.echo(_summary(final))


def _summary(final: dict[str, Any]) -> str:
    r = final.get("result", {})
    return (
        f"{final['status']}: {r.get('completed', 0)} completed, {r.get('failed', 0)} failed "
        f"of {r.get('total', 0)} pages (task {final['task_id']})"
    )


@click.group()
def task() -> None:
    """Status, cancel or wait for a task (prints the job contract JSON)."""


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
@click.option("--timeout", type=float, default=None)
@pass_cli
def task_wait(cli: CliContext, task_id: str, timeout: float | None) -> None:
    """Wait for TASK_ID with a progress bar, then print its result."""
    cli.echo_json(cli.client(start=False).wait(task_id, timeout=timeout))
