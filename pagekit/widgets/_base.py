"""What every panel shares: ``.widget``, notebook display, and callbacks that cannot break it."""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pagekit.widgets")


class Panel:
    """A panel draws into ``self.widget``; displaying the panel displays the widget."""

    widget: Any

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def emit(callbacks: list[Callable[..., Any]], *args: Any) -> None:
    """Call each callback; one that fails is logged, not fatal (dramatiq's emit_after)."""
    for cb in list(callbacks):
        try:
            cb(*args)
        except Exception:
            log.exception("pagekit widget callback %r failed", cb)


def project_id(project: Any) -> int | str | None:
    """Accept a project dict (from ``create_project``), an id or a name."""
    if isinstance(project, dict):
        return project["project_id"]
    return project


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def in_background(call: Callable[[], Any], name: str) -> threading.Thread:
    """Run ``call()`` once on a daemon thread and return at once; a failure is logged.

    For what may wait on the broker (asking the workers takes seconds), so that it never
    holds up the notebook's own thread: a cell, a button click, opening the dashboard.
    """

    def run() -> None:
        try:
            call()
        except Exception:
            log.exception("pagekit %s failed", name)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


class Ticker:
    """Calls ``tick()`` every ``interval`` seconds on a daemon thread until :meth:`stop`.

    A tick that fails is logged and the next one runs: a panel that refreshes itself
    must not die of one unreachable broker. ``start(now=True)`` runs the first tick at
    once, on the thread (a panel that draws its first answer without making its caller
    wait). ``stop_with(widget)`` stops it when the widget is closed (a re-run cell,
    ``Dashboard.close()``).
    """

    def __init__(self, tick: Callable[[], Any], interval: float, name: str):
        self.tick = tick
        self.interval = interval
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._now = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, now: bool = False) -> Ticker:
        """Start ticking; ``now``: the first tick runs at once rather than after an interval."""
        if self._thread is None:
            self._now = now
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def stop_with(self, widget: Any) -> Ticker:
        widget.observe(lambda change: self.stop() if change["new"] is None else None, "comm")
        return self

    def _loop(self) -> None:
        if self._now and not self._stop.is_set():
            self._tick()
        while not self._stop.wait(self.interval):
            self._tick()

    def _tick(self) -> None:
        try:
            self.tick()
        except Exception:
            log.exception("pagekit %s: refresh failed", self.name)


# Notebook-wide CSS for the panels (an HTML widget with a <style> works in Lab and Voila).
# A disabled button must look it: ipywidgets only dims it slightly, and a primary (blue)
# one still reads as "click me".
STYLE = """<style>
.pk-dashboard .jupyter-button:disabled {
  opacity: 0.4; cursor: not-allowed; filter: grayscale(1); box-shadow: none; }
.pk-summary { margin: 2px 0; }
.pk-detail img { border: 1px solid #bbb; margin-right: 8px; }
.pk-warn { background: #fff3cd; border: 1px solid #e0c36a; padding: 6px 10px; border-radius: 4px; }
.pk-ok { color: #1e7b34; } .pk-bad { color: #b02a37; }
.pk-mono { font-family: ui-monospace, Menlo, Consolas, monospace; }
</style>"""
