"""Notebook panels (ipywidgets 8) over :class:`pagekit.Client`.

Each panel draws and exposes ``.widget``; :class:`Dashboard` composes them::

    from pagekit.widgets import Dashboard
    Dashboard(client)          # displays itself in a notebook cell

Progress is a drawing of :class:`pagekit.progress.JobPoller`, like the CLI bar.
"""

from __future__ import annotations

from .dashboard import Dashboard
from .launcher import LauncherPanel
from .monitor import JobMonitor, MonitorPanel
from .pages import PagesPanel
from .upload import UploadPanel
from .workers import WorkersPanel

__all__ = [
    "Dashboard",
    "JobMonitor",
    "LauncherPanel",
    "MonitorPanel",
    "PagesPanel",
    "UploadPanel",
    "WorkersPanel",
]
