"""What every panel shares: ``.widget``, notebook display, and callbacks that cannot break it."""

from __future__ import annotations

import html
import logging
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


# Notebook-wide CSS for the panels (an HTML widget with a <style> works in Lab and Voila).
STYLE = """<style>
.pk-table select { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
.pk-head { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px;
           white-space: pre; font-weight: 600; padding-left: 4px; }
.pk-warn { background: #fff3cd; border: 1px solid #e0c36a; padding: 6px 10px; border-radius: 4px; }
.pk-ok { color: #1e7b34; } .pk-bad { color: #b02a37; }
.pk-mono { font-family: ui-monospace, Menlo, Consolas, monospace; }
</style>"""
