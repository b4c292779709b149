"""The "Process All Pending" button, plus "Process selected" and "Retry failed"."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..contract import RETRYABLE, PageState
from ..errors import PagekitError
from ._base import Panel, emit, esc, project_id

if TYPE_CHECKING:
    from ..client import Client
    from .pages import PagesPanel


class LauncherPanel(Panel):
    """Queue pages; each new job goes to the ``on_launch(job)`` callbacks (e.g. a monitor).

    Buttons are disabled (and look it) while there is nothing to queue.
    """

    def __init__(self, client: Client, project: Any = None, *, pages: PagesPanel | None = None):
        import ipywidgets as W

        self.client = client
        self.project = project_id(project)
        self.pages = pages
        self.on_launch: list[Callable[[dict[str, Any]], Any]] = []
        self.last_job: dict[str, Any] | None = None
        self.process_all = W.Button(
            description="Process All Pending",
            icon="play",
            button_style="primary",
            layout=W.Layout(width="auto"),
        )
        self.process_selected = W.Button(
            description="Process selected", icon="play-circle", layout=W.Layout(width="auto")
        )
        self.retry = W.Button(
            description="Retry failed", icon="repeat", layout=W.Layout(width="auto")
        )
        self.process_all.on_click(lambda _b: self._launch(self.client.process_pending))
        self.process_selected.on_click(lambda _b: self._launch_selected())
        self.retry.on_click(lambda _b: self._launch(self.client.retry_failed))
        self.summary = W.HTML(value="")
        self.message = W.HTML(value="")
        self.widget = W.VBox(
            [
                W.HBox([self.process_all, self.process_selected, self.retry, self.summary]),
                self.message,
            ]
        )
        if pages is not None:
            # The grid says what is selected, and its refresh reads the page counts.
            pages.on_select.append(lambda _ids: self._draw_selected())
            pages.on_refresh.append(self._pages_refreshed)
        self.refresh()

    def set_project(self, project: Any) -> None:
        self.project = project_id(project)
        self.message.value = ""
        self.refresh()

    def refresh(self, counts: dict[str, int] | None = None) -> None:
        """Enable the buttons that have something to do; show how many pages wait.

        ``counts``: the project's pages by status, when the caller has just read them.
        """
        if self.project is None:
            pending = retry = 0
        else:
            if counts is None:
                counts = self.client.project(self.project)["counts"]
            pending = counts[PageState.PENDING]
            retry = sum(counts[state] for state in RETRYABLE)
        self.pending = pending
        self.process_all.disabled = pending == 0
        # A blue button reads as "click me" even when disabled: grey it out.
        self.process_all.button_style = "" if pending == 0 else "primary"
        self.retry.disabled = retry == 0
        self._draw_selected()
        self.summary.value = (
            f"&nbsp;{pending} pending" + (f", {retry} failed/cancelled" if retry else "")
            if self.project is not None
            else "&nbsp;choose a project"
        )

    def _draw_selected(self) -> None:
        self.process_selected.disabled = not (self.pages and self.pages.selected)

    def _pages_refreshed(self) -> None:
        pages = self.pages
        if pages is not None and pages.project == self.project:
            self.refresh(pages.status_counts)  # read by that refresh: no query here
        else:
            self.refresh()

    def _launch_selected(self) -> None:
        ids = self.pages.selected if self.pages else []
        self._launch(lambda project: self.client.process_batch(project, ids))

    def _launch(self, queue: Callable[[Any], dict[str, Any]]) -> None:
        for b in (self.process_all, self.process_selected, self.retry):
            b.disabled = True  # no double clicks while the job is queued
        try:
            job = queue(self.project)
        except PagekitError as exc:
            self.message.value = f"<span class='pk-bad'>{esc(exc)}</span>"
        else:
            self.last_job = job
            n = job.get("total_pages", 1)
            plural = "s" if n != 1 else ""
            self.message.value = f"Queued {n} page{plural} (job {job['task_id'][:8]})"
            emit(self.on_launch, job)
        finally:
            self.refresh()
            if self.pages is not None:
                self.pages.refresh()
