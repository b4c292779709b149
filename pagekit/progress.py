"""Job progress: a poller that owns the polling and the state, and drawings of it.

Like dask's ``ProgressBar``: :class:`JobPoller` polls ``status`` and keeps the numbers;
subclasses only implement :meth:`JobPoller._draw` and :meth:`JobPoller._draw_stop`.
:class:`TextProgressBar` is the terminal drawing; ``pagekit.widgets`` has the notebook one.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from .errors import NoWorker, WaitTimeout

if TYPE_CHECKING:
    from .client import Client

DONE = ("completed", "failed", "cancelled")
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
    if state == "queued":
        return f"Queued: {total} page{'s' if total != 1 else ''} waiting for a worker..."
    if state == "processing":
        return f"Processing page {min(current + 1, total)}/{total}..."
    r = status["result"]
    parts = [f"{r['completed']} completed"]
    if r["failed"]:
        parts.append(f"{r['failed']} failed")
    if r.get("cancelled"):
        parts.append(f"{r['cancelled']} cancelled")
    return f"{state.capitalize()}: {', '.join(parts)} of {r['total']} pages"


class JobPoller:
    """Polls one job's status every ``interval`` seconds and keeps the numbers."""

    def __init__(self, client: Client, task_id: str, interval: float | None = None):
        self.client = client
        self.task_id = task_id
        self.interval = client.settings.poll_interval if interval is None else interval
        self.status: dict[str, Any] = {}
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_progress = (time.monotonic(), -1)
        self._no_worker_after = client.settings.no_worker_after
        self.warning: str | None = None  # e.g. no worker is running

    # -- numbers the drawings use -----------------------------------------------------

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
        self.status = self.client.status(self.task_id)
        current = self.current
        now = time.monotonic()
        if current != self._last_progress[1]:
            self._last_progress = (now, current)
        self.warning = None
        if not self.done and now - self._last_progress[0] >= self._no_worker_after:
            # Only read: recovery is the workers' job. Say so when none is left to do it.
            if not self.client.live_workers(within=self._no_worker_after):
                self.warning = NO_WORKER
        return self.status

    def run(self, timeout: float | None = None) -> dict[str, Any]:
        """Poll until the job finishes (or ``timeout``); draw after every poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._stop.is_set():
                self.poll()
                self._draw()
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
            self._draw_stop()
        return self.status

    def start(self) -> JobPoller:
        """Poll on a background thread (so a notebook stays usable)."""
        self._thread = threading.Thread(target=self._run_quietly, daemon=True)
        self._thread.start()
        return self

    def _run_quietly(self) -> None:
        try:
            self.run()
        except Exception as exc:  # drawn, not raised: there is no caller to raise to
            self.error = exc
            self._draw_error(exc)

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- drawing hooks ------------------------------------------------------------------

    def _draw(self) -> None:
        """Show the current numbers."""

    def _draw_stop(self) -> None:
        """Show the final state."""

    def _draw_error(self, exc: Exception) -> None:
        """Show that polling failed."""


def _fmt_seconds(seconds: float | None) -> str:
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
            f"elapsed {_fmt_seconds(self.elapsed)} eta {_fmt_seconds(self.eta)}"
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
