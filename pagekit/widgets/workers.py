"""Workers online, their concurrency, queue depth; a warning with the fix when none answers.

The panel refreshes itself every ``interval`` seconds on a background thread (asking the
workers takes up to ``timeout`` seconds, so never on the notebook's own thread), and
stops when its widget is closed. It shows at once, saying it is checking; the first
answer fills it in from that thread (no "no worker" warning before an answer says so).
The Refresh button asks in the background too. The Flower link points at the Flower
that runs for this home (``pagekit flower`` records where it serves) and is hidden
while none runs.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from ..monitor import running_url
from ._base import Panel, Ticker, esc, in_background

if TYPE_CHECKING:
    from ..client import Client

NO_WORKER = (
    "<div class='pk-warn'><b>⚠ No worker is answering.</b> Queued pages will wait "
    '("Tasks stuck in PENDING").<br><b>Fix:</b> start workers with '
    "<code>pagekit up</code> (the embedded runtime), or <code>pagekit worker</code> on a host "
    "whose <code>PAGEKIT_BROKER_URL</code> is this dashboard's broker; "
    "<code>pagekit doctor</code> checks Redis, workers and the broker URL.</div>"
)
# Until the workers' first answer: nothing is known yet, so no warning either.
CHECKING = "<p class='pk-checking'><i>Checking workers…</i></p>"
NO_FLOWER = (
    "<small>Flower (task-level monitoring) is not running; start it with "
    "<code>pagekit flower</code>.</small>"
)


class WorkersPanel(Panel):
    """Workers, queue depth and Flower, refreshed every ``interval`` seconds (None: only
    on demand, with the Refresh button or :meth:`refresh`).

    Constructing it never waits for the workers: with ``refresh`` (the default) it shows
    "Checking workers…" and asks them on a background thread, which draws the answer;
    :attr:`answered` is set then (:meth:`wait` waits for it). :meth:`refresh` asks on
    the caller's thread and returns once the answer is drawn.
    """

    def __init__(
        self,
        client: Client,
        *,
        timeout: float = 1.0,
        refresh: bool = True,
        interval: float | None = 5.0,
    ):
        import ipywidgets as W

        self.client = client
        self.timeout = timeout
        self.workers: list[dict[str, Any]] = []
        self.queue_depth: int | None = None
        self.flower_url: str | None = None
        self.refreshed_at: float | None = None  # time.time() of the last refresh
        self.answered = threading.Event()  # set once the first answer is drawn
        self._lock = threading.Lock()  # the button and the ticker may refresh at once
        self._soon: threading.Thread | None = None  # a background refresh asked for
        self._soon_lock = threading.Lock()  # not self._lock: a click must not wait on a tick
        self._closed = False
        self.table = W.HTML(value=CHECKING if refresh else "")
        self.warning = W.HTML(value="")  # only once an answer says no worker answers
        self.updated = W.HTML(value="")
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh_soon())
        self.flower = W.HTML(NO_FLOWER)
        self.widget = W.VBox(
            [
                W.HTML("<h4>Workers</h4>"),
                self.warning,
                self.table,
                W.HBox([self.refresh_button, self.flower, self.updated]),
            ]
        )
        self.widget.add_class("pk-workers")
        self.widget.observe(lambda c: self.close() if c["new"] is None else None, "comm")
        self._draw_flower(running_url(client.settings))  # a file read: no need to wait
        self.ticker = None
        if interval:
            self.ticker = Ticker(self.refresh, interval, "workers panel").stop_with(self.widget)
            self.ticker.start(now=refresh)  # the first answer comes from its thread
        elif refresh:
            self.refresh_soon()

    def close(self) -> None:
        """Stop refreshing."""
        self._closed = True
        if self.ticker is not None:
            self.ticker.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the first answer to be drawn; whether it was within ``timeout``."""
        return self.answered.wait(timeout)

    def refresh(self) -> None:
        """Ask the workers and the broker now, and draw the answer (blocks up to about
        twice ``timeout``: from a background thread in a notebook, see :meth:`refresh_soon`)."""
        with self._lock:
            self._refresh()
        self.answered.set()

    def refresh_soon(self) -> threading.Thread:
        """Refresh on a background thread and return at once (the Refresh button). Asked
        again while one is on its way, it returns that one."""
        with self._soon_lock:
            if self._soon is not None and self._soon.is_alive():
                return self._soon
            if self.answered.is_set():
                self.updated.value = "<small class='pk-updated'>&nbsp;checking…</small>"
            self._soon = in_background(self._refresh_unless_closed, "workers panel refresh")
            return self._soon

    def _refresh_unless_closed(self) -> None:
        if not self._closed:
            self.refresh()

    def _refresh(self) -> None:
        self._draw_flower(running_url(self.client.settings))
        try:
            self.workers = self.client.workers(timeout=self.timeout)
            self.queue_depth = self.client.queue_depth()
        except Exception as exc:  # the broker itself is down
            self.workers, self.queue_depth = [], None
            self.warning.value = NO_WORKER.replace("</div>", f"<br>Broker error: {esc(exc)}</div>")
            self.table.value = ""
            self._stamp()
            return
        self.warning.value = "" if self.workers else NO_WORKER
        rows = "".join(
            f"<tr><td class='pk-mono'>{esc(w['name'])}</td><td>{esc(w['concurrency'])}</td>"
            f"<td>{w['active']}</td><td>{w['processed']}</td></tr>"
            for w in self.workers
        )
        slots = sum(w["concurrency"] or 0 for w in self.workers)
        active = sum(w["active"] for w in self.workers)
        self.table.value = (
            "<table><tr><th>worker</th><th>concurrency</th><th>active</th><th>processed</th>"
            f"</tr>{rows}</table>"
            f"<p>{len(self.workers)} worker(s) online, {slots} process(es), "
            f"<span class='pk-active'>{active} active</span>; "
            f"queue depth: <b class='pk-queue'>{self.queue_depth}</b></p>"
        )
        self._stamp()

    def _stamp(self) -> None:
        self.refreshed_at = time.time()
        self.updated.value = (
            f"<small class='pk-updated'>&nbsp;updated {time.strftime('%H:%M:%S')}</small>"
        )

    def _draw_flower(self, url: str | None) -> None:
        if url == self.flower_url and self.flower.value:
            return
        self.flower_url = url
        self.flower.value = (
            NO_FLOWER
            if url is None
            else f"<a href='{esc(url)}' target='_blank' rel='noopener'>Flower</a> "
            "<small>(task-level monitoring; it asks for the password "
            "<code>pagekit flower</code> printed)</small>"
        )
