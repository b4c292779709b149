"""Job progress: one poller, and drawings of it.

Like dask's ``ProgressBar``: :class:`JobPoller` polls ``status``, keeps the numbers and
says what they mean (:attr:`~JobPoller.text`, :attr:`~JobPoller.clock`, :func:`bar_style`);
a drawing only implements :meth:`JobPoller._draw` and :meth:`JobPoller._draw_stop`.
:class:`TextProgressBar` draws on a terminal (stderr), :class:`WidgetProgressBar` in a
notebook (ipywidgets, imported only when one is made), and ``pagekit.widgets.JobMonitor``
in the dashboard. :func:`progress_bar` picks the drawing for where the code runs: that is
what ``Client.wait`` shows.

A new status and its drawing are one step (:meth:`JobPoller.poll`): whoever reads
``status`` sees it drawn, and a finished job's final drawing is done by then too.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from .contract import JobState
from .errors import InvalidInput, NoWorker, PagekitError, WaitTimeout

if TYPE_CHECKING:
    from .client import Client

DONE = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)
NO_WORKER = "no worker is running: start one with `pagekit up` or `pagekit worker`"


def progress_numbers(status: dict[str, Any]) -> tuple[int, int]:
    """(finished pages, total pages) of a job contract status dict."""
    if "result" in status:
        r = status["result"]
        return r["total"], r["total"]
    return status.get("current", 0), status.get("total", 0)


def describe(status: dict[str, Any]) -> str:
    """One line for a job contract status: "Processing page 3/10..." and friends."""
    current, total = progress_numbers(status)
    state = status["status"]
    if state == JobState.QUEUED:
        return f"Queued: {total} page{'s' if total != 1 else ''} waiting for a worker..."
    if state == JobState.PROCESSING:
        return f"Processing page {min(current + 1, total)}/{total}..."
    r = status["result"]
    parts = [f"{r['completed']} completed"]
    if r["failed"]:
        parts.append(f"{r['failed']} failed")
    if r.get("cancelled"):
        parts.append(f"{r['cancelled']} cancelled")
    return f"{state.capitalize()}: {', '.join(parts)} of {r['total']} pages"


def bar_style(status: dict[str, Any]) -> str:
    """A bar's colour (ipywidgets ``bar_style``) for a job contract status: ``success``
    when every page completed, ``danger`` when any failed, ``warning`` when the job was
    cancelled, ``info`` while it runs."""
    result = status.get("result")
    if not result:
        return "info"
    if result["failed"]:
        return "danger"
    return "warning" if status["status"] == JobState.CANCELLED else "success"


class JobPoller:
    """Polls one job's status every ``interval`` seconds and keeps the numbers.

    Nothing runs until :meth:`run` (in the caller's thread) or :meth:`start` (on a
    thread of its own), so a drawing's observers and callbacks attach first.
    """

    def __init__(self, client: Client, task_id: str, interval: float | None = None):
        self.client = client
        self.task_id = task_id
        self.interval = client.settings.poll_interval if interval is None else interval
        self.started = time.monotonic()
        self.warning: str | None = None  # e.g. no worker is running
        self.error: Exception | None = None  # why a background poller stopped
        self._status: dict[str, Any] = {}
        self._final_drawn = False
        # Held while a status is stored and drawn: a reader never sees one without the other.
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_progress = (time.monotonic(), -1)
        self._no_worker_after = client.settings.no_worker_after

    # -- numbers the drawings use -----------------------------------------------------

    @property
    def status(self) -> dict[str, Any]:
        """The last status polled (and drawn); ``{}`` before the first poll."""
        with self._lock:
            return self._status

    @property
    def current(self) -> int:
        return progress_numbers(self.status)[0] if self.status else 0

    @property
    def total(self) -> int:
        return progress_numbers(self.status)[1] if self.status else 0

    @property
    def done(self) -> bool:
        return self.status.get("status") in DONE

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far; None until a page has finished."""
        if self.done:
            return 0.0
        if not self.current or not self.total:
            return None
        return self.elapsed / self.current * (self.total - self.current)

    @property
    def fraction(self) -> float:
        return self.current / self.total if self.total else 0.0

    @property
    def text(self) -> str:
        line = describe(self.status) if self.status else "Waiting for status..."
        return f"{line} ({self.warning})" if self.warning else line

    @property
    def clock(self) -> str:
        return f"elapsed {format_seconds(self.elapsed)} eta {format_seconds(self.eta)}"

    # -- the loop ---------------------------------------------------------------------

    def poll(self) -> dict[str, Any]:
        """Fetch the status and draw it, as one step; a finished job is drawn final."""
        status = self.client.status(self.task_id)
        warning = self._warning(status)
        with self._lock:
            self._status, self.warning = status, warning
            self._draw()
            if self.done and not self._final_drawn:
                self._final_drawn = True
                self._draw_stop()
        return status

    def _warning(self, status: dict[str, Any]) -> str | None:
        current = progress_numbers(status)[0]
        now = time.monotonic()
        if current != self._last_progress[1]:
            self._last_progress = (now, current)
        if status.get("status") in DONE or now - self._last_progress[0] < self._no_worker_after:
            return None
        # Only read: recovery is the workers' job. Say so when none is left to do it.
        if self.client.live_workers(within=self._no_worker_after):
            return None
        return NO_WORKER

    def run(self, timeout: float | None = None) -> dict[str, Any]:
        """Poll until the job finishes (or ``timeout``); draw after every poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._stop.is_set():
                self.poll()
                if self.done:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    if self.warning:
                        raise NoWorker(
                            f"task {self.task_id} still {self.status['status']} after "
                            f"{timeout:g}s: {self.warning}"
                        )
                    raise WaitTimeout(
                        f"task {self.task_id} still {self.status['status']} after "
                        f"{timeout:g}s; it goes on: follow it with `pagekit task wait "
                        f"{self.task_id}`, or cancel it"
                    )
                wait = self.interval
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                self._stop.wait(wait)
        finally:
            with self._lock:
                if not self._final_drawn:  # stopped, timed out or failed: end the drawing
                    self._draw_stop()
        return self.status

    def start(self) -> JobPoller:
        """Draw the current status now, then poll on a background thread.

        The caller sees the job drawn when this returns; the notebook stays usable.
        """
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run_quietly, daemon=True)
        try:
            self.poll()
        except Exception as exc:
            self._failed(exc)
            return self
        if not self.done:
            self._thread.start()
        return self

    def _run_quietly(self) -> None:
        try:
            self.run()
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        """Drawn, not raised: a background poller has no caller to raise to."""
        with self._lock:
            self.error = exc
            self._draw_error(exc)

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None and self._thread.ident is not None:
            self._thread.join(timeout)

    # -- drawing hooks (called with the lock held) --------------------------------------

    def _draw(self) -> None:
        """Show the current numbers."""

    def _draw_stop(self) -> None:
        """Show the final state (once when the job finishes; also when polling stops)."""

    def _draw_error(self, exc: Exception) -> None:
        """Show that polling failed."""


def format_seconds(seconds: float | None) -> str:
    """``mm:ss`` for an elapsed time or ETA; ``--:--`` when unknown."""
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class TextProgressBar(JobPoller):
    """A progress bar on a terminal (stderr), redrawn in place."""

    def __init__(
        self,
        client: Client,
        task_id: str,
        interval: float | None = None,
        *,
        width: int = 30,
        file: TextIO | None = None,
    ):
        super().__init__(client, task_id, interval)
        self.width = width
        self.file = file or sys.stderr
        self._tty = bool(getattr(self.file, "isatty", lambda: False)())
        self._last_line = ""

    def _line(self) -> str:
        filled = int(round(self.fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        return f"[{bar}] {self.fraction:4.0%} {self.text} {self.clock}"

    def _draw(self) -> None:
        line = self._line()
        if self._tty:
            self.file.write("\r" + line.ljust(len(self._last_line)))
        elif line != self._last_line:
            self.file.write(line + "\n")
        self.file.flush()
        self._last_line = line

    def _draw_stop(self) -> None:
        if self._tty:
            self.file.write("\n")
            self.file.flush()

    def _draw_error(self, exc: Exception) -> None:
        self.file.write(f"\nprogress stopped: {exc}\n")


class WidgetProgressBar(JobPoller):
    """The bar ``Client.wait`` shows in a notebook: an ``IntProgress`` and a line of text.

    "Processing page 3/10...", elapsed and ETA; green (``success``) when every page
    completed, red (``danger``) when pages failed, amber (``warning``) when cancelled.
    ``.widget`` is the ipywidgets box. :meth:`show` displays it with its line as
    ``text/plain`` too, for frontends without widgets (nbconvert, ``jupyter console``),
    and that line is replaced by the final one when the job finishes.

    ``Client.wait`` draws it from the loop of the cell that waits: a widget's new value
    reaches the browser while the cell runs, so the bar moves though the kernel is busy.
    """

    def __init__(self, client: Client, task_id: str, interval: float | None = None):
        import ipywidgets as W

        super().__init__(client, task_id, interval)
        self.bar = W.IntProgress(value=0, min=0, max=1, description="0%", bar_style="info")
        self.label = W.Label(value="Waiting for status...")
        self.widget = W.HBox([self.bar, self.label])
        self._display: Any = None  # the display handle, once shown

    @property
    def line(self) -> str:
        """What the widget shows, as one line of text."""
        return f"{self.bar.description} {self.label.value}"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs))
        bundle["text/plain"] = self.line
        return bundle

    def show(self) -> WidgetProgressBar:
        """Display the bar in the cell's output (once)."""
        from IPython.display import display

        if self._display is None:
            self._display = display(self, display_id=True)
        return self

    def _draw(self) -> None:
        self.bar.max = max(self.total, 1)
        self.bar.value = self.current
        self.bar.description = f"{self.fraction:.0%}"
        self.bar.bar_style = bar_style(self.status)
        self.label.value = f"{self.text} · {self.clock}"

    def _draw_stop(self) -> None:
        if self.done:
            self.label.value = f"{self.text} · took {format_seconds(self.elapsed)}"
        else:  # timed out or interrupted: the bar stays where the job was
            self.label.value = f"{self.text} · stopped waiting (the job goes on)"
        self._update_display()

    def _draw_error(self, exc: Exception) -> None:
        self.bar.bar_style = "danger"
        self.label.value = f"progress stopped: {exc}"
        self._update_display()

    def _update_display(self) -> None:
        """Replace the displayed ``text/plain`` line (the widget view itself is live)."""
        if self._display is not None:
            self._display.update(self)


def in_jupyter_kernel() -> bool:
    """True inside a Jupyter kernel that has ipywidgets: where a widget bar can be drawn.

    Detected as tqdm.autonotebook does; IPython is only looked at if already imported,
    so a terminal or a worker never imports it.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    kernel = type(shell).__name__ == "ZMQInteractiveShell" or "IPKernelApp" in shell.config
    return kernel and importlib.util.find_spec("ipywidgets") is not None


def progress_bar(
    client: Client, task_id: str, interval: float | None = None, kind: bool | str = True
) -> JobPoller:
    """The drawing of a job's progress for where this code runs, shown and ready to run.

    ``kind``: ``True`` or ``"auto"`` draws a :class:`WidgetProgressBar` inside a Jupyter
    kernel with ipywidgets, else a :class:`TextProgressBar` on stderr; ``"text"`` or
    ``"widget"`` chooses; ``False`` draws nothing (a bare :class:`JobPoller`).
    """
    if kind is False:
        return JobPoller(client, task_id, interval)
    if kind is True or kind == "auto":
        kind = "widget" if in_jupyter_kernel() else "text"
    if kind == "text":
        return TextProgressBar(client, task_id, interval)
    if kind == "widget":
        if importlib.util.find_spec("ipywidgets") is None:
            raise PagekitError(
                "progress='widget' needs ipywidgets: pip install 'pagekit[notebook]'"
            )
        return WidgetProgressBar(client, task_id, interval).show()
    raise InvalidInput(f"progress is True, False, 'auto', 'text' or 'widget', not {kind!r:.40}")
