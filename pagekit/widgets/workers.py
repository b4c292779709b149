"""Workers online, their concurrency, queue depth; a warning with the fix when none answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Panel, esc

if TYPE_CHECKING:
    from ..client import Client

NO_WORKER = (
    "<div class='pk-warn'><b>⚠ No worker is answering.</b> Queued pages will wait "
    '("Tasks stuck in PENDING").<br><b>Fix:</b> start workers with '
    "<code>pagekit up</code> (the embedded runtime), or <code>pagekit worker</code> on a host "
    "whose <code>PAGEKIT_BROKER_URL</code> is this dashboard's broker; "
    "<code>pagekit doctor</code> checks Redis, workers and the broker URL.</div>"
)


class WorkersPanel(Panel):
    """Refresh on demand: asking workers takes up to ``timeout`` seconds."""

    def __init__(self, client: Client, *, timeout: float = 1.0, refresh: bool = True):
        import ipywidgets as W

        self.client = client
        self.timeout = timeout
        self.workers: list[dict[str, Any]] = []
        self.queue_depth: int | None = None
        port = client.settings.flower_port
        self.flower_url = f"http://127.0.0.1:{port}/"
        self.table = W.HTML(value="")
        self.warning = W.HTML(value="")
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.flower = W.HTML(
            f"<a href='{self.flower_url}' target='_blank'>Flower</a> "
            f"<small>(task-level monitoring; start it with <code>pagekit flower</code>)</small>"
        )
        self.widget = W.VBox(
            [
                W.HTML("<h4>Workers</h4>"),
                self.warning,
                self.table,
                W.HBox([self.refresh_button, self.flower]),
            ]
        )
        if refresh:
            self.refresh()

    def refresh(self) -> None:
        try:
            self.workers = self.client.workers(timeout=self.timeout)
            self.queue_depth = self.client.queue_depth()
        except Exception as exc:  # the broker itself is down
            self.workers, self.queue_depth = [], None
            self.warning.value = NO_WORKER.replace("</div>", f"<br>Broker error: {esc(exc)}</div>")
            self.table.value = ""
            return
        self.warning.value = "" if self.workers else NO_WORKER
        rows = "".join(
            f"<tr><td class='pk-mono'>{esc(w['name'])}</td><td>{esc(w['concurrency'])}</td>"
            f"<td>{w['active']}</td><td>{w['processed']}</td></tr>"
            for w in self.workers
        )
        slots = sum(w["concurrency"] or 0 for w in self.workers)
        self.table.value = (
            "<table><tr><th>worker</th><th>concurrency</th><th>active</th><th>processed</th>"
            f"</tr>{rows}</table>"
            f"<p>{len(self.workers)} worker(s) online, {slots} process(es); "
            f"queue depth: <b>{self.queue_depth}</b></p>"
        )
