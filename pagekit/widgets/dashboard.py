"""All panels in one: the notebook and Voila face of pagekit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import STYLE, Panel
from .launcher import LauncherPanel
from .monitor import MonitorPanel
from .pages import PagesPanel
from .upload import UploadPanel
from .workers import WorkersPanel

if TYPE_CHECKING:
    from ..client import Client


class Dashboard(Panel):
    """Upload, launch, watch and browse one project at a time.

    On creation (and whenever the project changes) it re-attaches monitors to the
    project's unfinished jobs, which come from the store: reopening a notebook or
    reloading the Voila page finds jobs started earlier.
    """

    def __init__(
        self, client: Client | None = None, project: Any = None, *, interval: float | None = None
    ):
        import ipywidgets as W

        if client is None:
            from ..client import Client

            client = Client()
        self.client = client
        self.upload = UploadPanel(client, project)
        self.pages = PagesPanel(client, self.upload.project)
        self.launcher = LauncherPanel(client, self.upload.project, pages=self.pages)
        self.monitor = MonitorPanel(client, interval=interval)
        self.workers = WorkersPanel(client)

        self.upload.on_project.append(self._project_changed)
        self.upload.on_added.append(lambda _o: self._refresh_tables())
        self.launcher.on_launch.append(lambda job: self.monitor.attach(job["task_id"]))
        self.monitor.on_done.append(lambda _s: self._refresh_tables())

        self.widget = W.VBox(
            [
                W.HTML(STYLE + "<h3>pagekit</h3>"),
                self.upload.widget,
                self.launcher.widget,
                self.monitor.widget,
                self.pages.widget,
                self.workers.widget,
            ]
        )
        self.widget.add_class("pk-dashboard")
        self.reattach()

    @property
    def project(self) -> int | None:
        return self.upload.project

    def reattach(self) -> list[str]:
        """Show a monitor for each unfinished job of the current project."""
        if self.project is None:
            return []
        ids = self.client.job_ids(self.project, active=True)
        for task_id in reversed(ids):  # oldest first, so the newest ends on top
            self.monitor.attach(task_id)
        return ids

    def close(self) -> None:
        """Stop polling (jobs keep running on the workers)."""
        self.monitor.close()

    def _project_changed(self, project: int | None) -> None:
        self.pages.set_project(project)
        self.launcher.set_project(project)
        self.reattach()

    def _refresh_tables(self) -> None:
        self.pages.refresh()
        self.launcher.refresh()
