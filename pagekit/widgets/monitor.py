"""Live job progress: :class:`JobMonitor` draws a :class:`~pagekit.progress.JobPoller`.

The poller owns the polling (a background thread, every ``settings.poll_interval``
seconds) and the numbers; this module only turns them into widget values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..contract import JobState
from ..progress import JobPoller, format_seconds
from ._base import Panel, emit, esc

if TYPE_CHECKING:
    from ..client import Client

# bar_style per final job state ("danger" also when only some pages failed).
_FINAL_STYLE = {
    JobState.COMPLETED: "success",
    JobState.FAILED: "danger",
    JobState.CANCELLED: "warning",
}


class JobMonitor(JobPoller, Panel):
    """One job's bar: "Processing page 3/10...", elapsed and ETA, counts, Cancel.

    ``on_done(status)`` callbacks run once when the job finishes (e.g. to refresh a
    table). Polling starts at once unless ``start=False``: then attach observers to the
    widgets first and call :meth:`start`, which draws the job before it returns.
    """

    def __init__(
        self,
        client: Client,
        task_id: str,
        interval: float | None = None,
        *,
        on_done: Callable[[dict[str, Any]], Any] | None = None,
        start: bool = True,
    ):
        import ipywidgets as W

        super().__init__(client, task_id, interval)
        self.on_done: list[Callable[[dict[str, Any]], Any]] = [on_done] if on_done else []
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
        self.clock = W.Label(value="", layout=gap)
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
                W.HBox([self.bar_text, self.counts, self.clock]),
            ],
            layout=W.Layout(border="1px solid #ddd", padding="4px", margin="2px 0"),
        )
        if start:
            self.start()

    # -- drawing ------------------------------------------------------------------------

    def _draw(self) -> None:
        total, current = self.total, self.current
        self.bar.max = max(total, 1)
        self.bar.value = current
        self.bar.description = f"{(current / total if total else 0):.0%}"
        self.bar_text.value = esc(self.text)
        self.clock.value = (
            f"elapsed {format_seconds(self.elapsed)} · ETA {format_seconds(self.eta)}"
        )
        result = self.status.get("result")
        if result:
            parts = [f"{result['completed']} completed", f"{result['failed']} failed"]
            if result.get("cancelled"):
                parts.append(f"{result['cancelled']} cancelled")
            self.counts.value = " · ".join(parts)
            failed = result["failed"] > 0
            self.bar_style = "danger" if failed else _FINAL_STYLE[self.status["status"]]
        else:
            self.counts.value = f"{current} of {total} pages done"

    @property
    def bar_style(self) -> str:
        return self.bar.bar_style

    @bar_style.setter
    def bar_style(self, value: str) -> None:
        self.bar.bar_style = value

    def _draw_stop(self) -> None:
        if not self.done:  # polling stopped, the job goes on: the bar stays as it is
            return
        self.clock.value = f"took {format_seconds(self.elapsed)}"
        self.cancel_button.disabled = True
        emit(self.on_done, self.status)

    def _draw_error(self, exc: Exception) -> None:
        self.bar_style = "danger"
        self.bar_text.value = f"<span class='pk-bad'>progress stopped: {esc(exc)}</span>"
        self.cancel_button.disabled = True

    # -- actions ------------------------------------------------------------------------

    def _on_cancel(self, _button: Any = None) -> None:
        self.cancel()

    def cancel(self) -> dict[str, Any]:
        """Cancel the job and redraw at once (the poller thread finishes the rest)."""
        self.cancel_button.disabled = True
        self.cancel_button.description = "Cancelling..."
        out = self.client.cancel(self.task_id)
        self.poll()
        return out


class MonitorPanel(Panel):
    """One :class:`JobMonitor` per running job, newest on top."""

    def __init__(self, client: Client, *, interval: float | None = None):
        import ipywidgets as W

        self.client = client
        self.interval = interval
        self.monitors: dict[str, JobMonitor] = {}
        self.on_done: list[Callable[[dict[str, Any]], Any]] = []
        self.empty = W.HTML("<i>No jobs running.</i>")
        self.clear_button = W.Button(description="Clear finished", icon="trash")
        self.clear_button.on_click(lambda _b: self.clear_finished())
        self.box = W.VBox([self.empty])
        self.widget = W.VBox([W.HTML("<h4>Jobs</h4>"), self.box, self.clear_button])

    def attach(self, task_id: str) -> JobMonitor:
        """Show and poll the job (again, if it is already shown: returns that monitor)."""
        if task_id in self.monitors:
            return self.monitors[task_id]
        mon = JobMonitor(self.client, task_id, self.interval, start=False)
        mon.on_done.append(lambda status: emit(self.on_done, status))
        self.monitors[task_id] = mon
        self._redraw()
        mon.start()
        return mon

    def clear_finished(self) -> None:
        for task_id, mon in list(self.monitors.items()):
            if mon.done or mon.error is not None:
                del self.monitors[task_id]
                mon.widget.close()
        self._redraw()

    def close(self) -> None:
        """Stop every poller (the jobs themselves go on)."""
        for mon in self.monitors.values():
            mon.stop()

    def _redraw(self) -> None:
        mons = [m.widget for m in reversed(self.monitors.values())]
        self.box.children = mons or [self.empty]
