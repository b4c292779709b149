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

    Everything on it is live, read from the database and the broker:

    - the Jobs panel shows every unfinished job of the project, and any new one within a
      poll, whichever entry point started it (this page, another notebook, the CLI, the
      HTTP API); reloading the page finds them again;
    - while a job runs, the page grid reloads its screen of rows as pages finish; pages
      added or deleted elsewhere show within a poll too (one count query per poll);
    - the Workers panel refreshes itself every ``workers_interval`` seconds (None: once).

    It opens without waiting for the workers (asking them takes seconds, or starts the
    embedded runtime): everything else is read from the database, and the Workers panel
    says "Checking workers…" until their first answer, drawn from a background thread.

    :meth:`close` (or closing ``.widget``) stops every poller; the jobs go on.
    """

    def __init__(
        self,
        client: Client | None = None,
        project: Any = None,
        *,
        interval: float | None = None,
        workers_interval: float | None = 5.0,
        page_size: int = 50,
    ):
        import ipywidgets as W

        if client is None:
            from ..client import Client

            client = Client()
        self.client = client
        self.upload = UploadPanel(client, project)
        self.pages = PagesPanel(client, self.upload.project, page_size=page_size)
        self.launcher = LauncherPanel(client, self.upload.project, pages=self.pages)
        self.monitor = MonitorPanel(client, interval=interval)
        self.workers = WorkersPanel(client, interval=workers_interval)

        self.upload.on_project.append(self._project_changed)
        self.upload.on_added.append(lambda _o: self._refresh_tables())
        self.launcher.on_launch.append(lambda job: self.monitor.attach(job["task_id"]))
        self.monitor.on_progress.append(self.pages.live_refresh)
        self.monitor.on_tick.append(self.pages.check)  # pages added or deleted elsewhere
        self.monitor.on_done.append(lambda _s: self._refresh_tables())
        self.pages.on_deleted.append(lambda _ids: self._pages_deleted())

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
        self.widget.observe(lambda c: self.close() if c["new"] is None else None, "comm")
        self.reattach()

    @property
    def project(self) -> int | None:
        return self.upload.project

    def reattach(self) -> list[str]:
        """Show a monitor for each unfinished job of the current project, and watch it
        for new ones."""
        return self.monitor.watch(self.project)

    def close(self) -> None:
        """Stop polling (jobs keep running on the workers)."""
        self.monitor.close()
        self.workers.close()

    def _project_changed(self, project: int | None) -> None:
        self.pages.set_project(project)
        self.launcher.set_project(project)
        self.reattach()

    def _refresh_tables(self) -> None:
        self.pages.refresh()  # and the launcher, through pages.on_refresh

    def _pages_deleted(self) -> None:
        self.upload.refresh_projects()  # the page counts in the project list
