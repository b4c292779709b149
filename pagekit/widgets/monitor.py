"""Live job progress: :class:`JobMonitor` draws a :class:`~pagekit.progress.JobPoller`.

The poller owns the polling (a background thread, every ``settings.poll_interval``
seconds) and the numbers; this module only turns them into widget values. Times come
from the database (when the job's first page started, when its last one finished), so
every monitor of a job, in any notebook or browser, shows the same elapsed time and the
same duration as ``pagekit jobs``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..contract import JobState
from ..errors import PagekitError
from ..progress import JobPoller, bar_style, format_seconds
from ..store import utcnow
from ._base import Panel, Ticker, emit, esc, project_id

if TYPE_CHECKING:
    from ..client import Client

# The Cancel button once the job is over: what happened, not what could be done.
_FINAL_BUTTON = {
    JobState.COMPLETED: ("Done", "check"),
    JobState.FAILED: ("Done", "check"),
    JobState.CANCELLED: ("Cancelled", "ban"),
}


def _when(value: Any) -> datetime | None:
    """A timestamp from a jobs() row (pandas Timestamp, NaT or None) as a datetime."""
    if value is None or value != value:  # None or NaT
        return None
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value


class JobMonitor(JobPoller, Panel):
    """One job's bar: "Processing page 3/10...", elapsed and ETA, counts, Cancel.

    ``on_done(status)`` callbacks run once when the job finishes (e.g. to refresh a
    table), ``on_progress(status)`` whenever the job's state or page count changes.
    Polling starts at once unless ``start=False``: then attach observers to the widgets
    first and call :meth:`start`, which draws the job before it returns.
    """

    def __init__(
        self,
        client: Client,
        task_id: str,
        interval: float | None = None,
        *,
        on_done: Callable[[dict[str, Any]], Any] | None = None,
        start: bool = True,
        project: Any = None,
    ):
        import ipywidgets as W

        super().__init__(client, task_id, interval)
        self.project = project_id(project)
        self.on_done: list[Callable[[dict[str, Any]], Any]] = [on_done] if on_done else []
        self.on_progress: list[Callable[[dict[str, Any]], Any]] = []
        # The job's times from the database: created, first page started, last finished.
        self.created_at: datetime | None = None
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self._times_read = False
        self._cancelling = False  # this monitor asked to cancel: draw real page counts
        self._last_seen: tuple[Any, int] | None = None
        self.title = W.HTML(f"<b>Job</b> <span class='pk-mono'>{esc(task_id[:8])}</span>")
        self.bar = W.IntProgress(
            value=0,
            min=0,
            max=1,
            description="0%",
            bar_style="info",
            layout=W.Layout(width="50%"),
        )
        gap = W.Layout(margin="0 16px 0 0")
        self.bar_text = W.HTML(value="Waiting for status...", layout=gap)
        self.counts = W.Label(value="", layout=gap)
        self.timing = W.Label(value="", layout=gap)  # elapsed, ETA, took
        self.cancel_button = W.Button(
            description="Cancel",
            icon="stop",
            button_style="warning",
            tooltip="Cancel this job: queued pages are cancelled now, running ones next step",
        )
        self.cancel_button.on_click(self._on_cancel)
        self.widget = W.VBox(
            [
                W.HBox([self.title, self.bar, self.cancel_button]),
                W.HBox([self.bar_text, self.counts, self.timing]),
            ],
            layout=W.Layout(border="1px solid #ddd", padding="4px", margin="2px 0"),
        )
        self.widget.add_class("pk-job")
        if start:
            self.start()

    # -- numbers ------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Seconds since the job's first page started (to its last page's end once done),
        from the database: the same in every monitor of the job."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.done and self.finished_at else utcnow()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def duration(self) -> float | None:
        """How long the finished job ran (first page started to last page finished)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - self.started_at).total_seconds())

    def _read_times(self) -> dict[str, Any] | None:
        """This job's row of ``client.jobs()``: times and per-state page counts."""
        rows = self.client.jobs(self.project, task_id=self.task_id)
        if rows.empty:
            return None
        row = rows.iloc[0].to_dict()
        self.created_at = _when(row["created_at"])
        self.started_at = _when(row["started_at"])
        self.finished_at = _when(row["finished_at"])
        self._times_read = True
        return row

    def _times_stale(self) -> bool:
        if not self._times_read:
            return True
        if self.started_at is None and self.status.get("status") != JobState.QUEUED:
            return True  # a page started since
        return self.done and self.finished_at is None

    # -- drawing ------------------------------------------------------------------------

    def _draw(self) -> None:
        status = self.status
        state = status.get("status")
        row = None
        if self._times_stale() or (self._cancelling and not self.done):
            row = self._read_times()
        total, current = self.total, self.current
        result = status.get("result")
        if result:
            # Pages processed, not pages cancelled: a cancelled job's bar stays where the
            # work stopped instead of jumping to the end.
            value = result["completed"] + result["failed"]
        elif self._cancelling and row is not None:
            value = int(row[JobState.COMPLETED] + row[JobState.FAILED])
        else:
            value = current
        value = min(max(value, 0), total)
        self.bar.max = max(total, 1)
        self.bar.value = value
        self.bar.description = f"{(value / total if total else 0):.0%}"
        if self._cancelling and not self.done:
            self.bar_text.value = "Cancelling: waiting for the running pages to stop..."
        else:
            self.bar_text.value = esc(self.text)
        if state == JobState.QUEUED and self.created_at is not None:
            waited = (utcnow() - self.created_at).total_seconds()
            self.timing.value = f"waiting {format_seconds(max(0.0, waited))}"
        elif not self.done:
            self.timing.value = (
                f"elapsed {format_seconds(self.elapsed)} · ETA {format_seconds(self.eta)}"
            )
        if result:
            parts = [f"{result['completed']} completed", f"{result['failed']} failed"]
            if result.get("cancelled"):
                parts.append(f"{result['cancelled']} cancelled")
            self.counts.value = " · ".join(parts)
            self.bar_style = bar_style(status)
        else:
            self.counts.value = f"{value} of {total} pages done"
        seen = (state, current)
        if seen != self._last_seen:
            self._last_seen = seen
            emit(self.on_progress, status)

    @property
    def bar_style(self) -> str:
        return self.bar.bar_style

    @bar_style.setter
    def bar_style(self, value: str) -> None:
        self.bar.bar_style = value

    def _draw_stop(self) -> None:
        if not self.done:  # polling stopped, the job goes on: the bar stays as it is
            return
        took = self.duration
        self.timing.value = "no page ran" if took is None else f"took {format_seconds(took)}"
        label, icon = _FINAL_BUTTON[self.status["status"]]
        self.cancel_button.disabled = True
        self.cancel_button.description = label
        self.cancel_button.icon = icon
        self.cancel_button.button_style = ""
        self.cancel_button.tooltip = "The job is over"
        self._cancelling = False
        emit(self.on_done, self.status)

    def _draw_error(self, exc: Exception) -> None:
        self.bar_style = "danger"
        self.bar_text.value = f"<span class='pk-bad'>progress stopped: {esc(exc)}</span>"
        self.cancel_button.disabled = True

    # -- actions ------------------------------------------------------------------------

    def _on_cancel(self, _button: Any = None) -> None:
        try:
            self.cancel()
        except PagekitError as exc:  # shown, not raised: a click has no caller
            self.bar_text.value = f"<span class='pk-bad'>{esc(exc)}</span>"

    def cancel(self) -> dict[str, Any]:
        """Cancel the job and redraw at once (the poller thread finishes the rest)."""
        self.cancel_button.disabled = True
        self.cancel_button.description = "Cancelling..."
        with self._lock:  # before the pages move: no drawing may count them as done
            self._cancelling = True
        try:
            out = self.client.cancel(self.task_id)
        except Exception:
            with self._lock:
                self._cancelling = False
            self.cancel_button.disabled = False
            self.cancel_button.description = "Cancel"
            raise
        self.poll()
        return out


class MonitorPanel(Panel):
    """One :class:`JobMonitor` per job, newest on top.

    :meth:`watch` follows a project: every unfinished job of it is shown, and within one
    poll every new one, whoever started it (this dashboard, another notebook, the CLI,
    the HTTP API), since jobs are read from the database.
    """

    def __init__(self, client: Client, *, interval: float | None = None, project: Any = None):
        import ipywidgets as W

        self.client = client
        self.interval = client.settings.poll_interval if interval is None else interval
        self.project = project_id(project)
        self.monitors: dict[str, JobMonitor] = {}
        self.on_done: list[Callable[[dict[str, Any]], Any]] = []
        self.on_progress: list[Callable[[dict[str, Any]], Any]] = []
        self.on_tick: list[Callable[[], Any]] = []  # each poll of the watched project
        self._seen: set[str] = set()  # jobs of the project known when last looked
        self._lock = threading.RLock()  # attach() runs from the watcher thread too
        self.empty = W.HTML("<i>No jobs running.</i>")
        self.clear_button = W.Button(description="Clear finished", icon="trash")
        self.clear_button.on_click(lambda _b: self.clear_finished())
        self.box = W.VBox([self.empty])
        self.widget = W.VBox([W.HTML("<h4>Jobs</h4>"), self.box, self.clear_button])
        self.watcher = Ticker(self._tick, self.interval, "job watcher")
        # Closed (a re-run cell, a closed dashboard): stop watching and polling.
        self.widget.observe(lambda c: self.close() if c["new"] is None else None, "comm")
        if self.project is not None:
            self.watch(self.project)

    def attach(self, task_id: str) -> JobMonitor:
        """Show and poll the job (again, if it is already shown: returns that monitor)."""
        with self._lock:
            if task_id in self.monitors:
                return self.monitors[task_id]
            mon = JobMonitor(self.client, task_id, self.interval, start=False, project=self.project)
            mon.on_done.append(lambda status: emit(self.on_done, status))
            mon.on_progress.append(lambda status: emit(self.on_progress, status))
            self.monitors[task_id] = mon
            self._seen.add(task_id)
            self._redraw()
        mon.start()
        return mon

    def watch(self, project: Any) -> list[str]:
        """Follow ``project``: show its unfinished jobs now, and any new job within a poll.

        Returns the unfinished jobs' ids. Monitors of another project's jobs are dropped.
        """
        with self._lock:
            self.project = project_id(project)
            for task_id, mon in list(self.monitors.items()):
                if mon.project != self.project:
                    mon.stop()
                    mon.widget.close()
                    del self.monitors[task_id]
            self._redraw()
            if self.project is None:
                self._seen = set()
                return []
            self._seen = set(self.client.job_ids(self.project))
            active = self.client.job_ids(self.project, active=True)
        for task_id in reversed(active):  # oldest first, so the newest ends on top
            self.attach(task_id)
        self.watcher.start()
        return active

    def discover(self) -> list[str]:
        """Attach the project's jobs created since the last look (one cheap query)."""
        if self.project is None:
            return []
        project = self.project
        new = [i for i in self.client.job_ids(project) if i not in self._seen]
        for task_id in reversed(new):
            if self.project == project:
                self.attach(task_id)
        return new

    def _tick(self) -> None:
        self.discover()
        emit(self.on_tick)

    def clear_finished(self) -> None:
        with self._lock:
            for task_id, mon in list(self.monitors.items()):
                if mon.done or mon.error is not None:
                    del self.monitors[task_id]
                    mon.widget.close()
            self._redraw()

    def close(self) -> None:
        """Stop watching and every poller (the jobs themselves go on)."""
        self.watcher.stop()
        for mon in list(self.monitors.values()):
            mon.stop()

    def _redraw(self) -> None:
        mons = [m.widget for m in reversed(self.monitors.values())]
        self.box.children = mons or [self.empty]
