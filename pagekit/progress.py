"""Job progress: a poller that owns the polling and the state, and drawings of it.

Like dask's ``ProgressBar``: :class:`JobPoller` polls ``status`` and keeps the numbers;
subclasses only implement :meth:`JobPoller._draw` and :meth:`JobPoller._draw_stop`.
:class:`TextProgressBar` is the terminal drawing; ``pagekit.widgets`` has the notebook one.

A new status and its drawing are one step (:meth:`JobPoller.poll`): whoever reads
``status`` sees it drawn, and a finished job's final drawing is done by then too.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from .contract import JobState
from .errors import NoWorker, WaitTimeout

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
    def text(self) -> str:
        line = describe(self.status) if self.status else "Waiting for status..."
        return f"{line} ({self.warning})" if self.warning else line

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
        frac = self.current / self.total if self.total else 0.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        return (
            f"[{bar}] {frac:4.0%} {self.text} "
            f"elapsed {format_seconds(self.elapsed)} eta {format_seconds(self.eta)}"
        )

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
