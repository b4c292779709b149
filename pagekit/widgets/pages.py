"""The project's pages as a paged, filterable table; selecting one shows it.

Only one screen of rows is ever loaded (``limit``/``offset`` and ``count_pages``), so a
10,000-page project stays responsive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..contract import PAGE_STATES
from ..reports import flatten_extra
from ._base import Panel, emit, esc, project_id

if TYPE_CHECKING:
    import pandas as pd

    from ..client import Client

STATUSES = [str(state) for state in PAGE_STATES]
_COLS = "{:>6}  {:<28}  {:<10}  {:<6}  {:>6}  {:>5}  {}"
HEADER = _COLS.format("page", "source", "status", "review", "words", "conf", "error")


def _row(r: Any) -> str:
    words = "" if r.words is None or r.words != r.words else int(r.words)
    conf = "" if r.confidence is None or r.confidence != r.confidence else f"{r.confidence:.0f}"
    source = str(r.source)
    if len(source) > 28:
        source = source[:12] + "…" + source[-15:]
    error = (r.error or "").splitlines()[0][:60] if r.error else ""
    review = "yes" if r.needs_review == 1 else ""  # True or numpy's True; not None nor NaN
    return _COLS.format(r.page_number, source, r.status, review, words, conf, error)


class PagesPanel(Panel):
    """Pages of one project: status and needs-review filters, paging, and a detail view of
    the selection."""

    def __init__(self, client: Client, project: Any = None, *, page_size: int = 25):
        import ipywidgets as W

        self.client = client
        self.project = project_id(project)
        self.page_size = page_size
        self.offset = 0
        self.frame: pd.DataFrame | None = None
        self.total = 0
        self.on_select: list[Callable[[list[int]], Any]] = []
        self._lock = threading.RLock()  # monitors refresh from their threads

        self.status_filter = W.Dropdown(
            options=[("all", "")] + [(s, s) for s in STATUSES], value="", description="Status"
        )
        self.status_filter.observe(lambda _c: self._filter_changed(), "value")
        self.review_filter = W.Checkbox(
            value=False, description="Needs review only", indent=False,
            layout=W.Layout(width="auto"),
        )  # fmt: skip
        self.review_filter.observe(lambda _c: self._filter_changed(), "value")
        self.prev_button = W.Button(description="Prev", icon="arrow-left", disabled=True)
        self.next_button = W.Button(description="Next", icon="arrow-right", disabled=True)
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.prev_button.on_click(lambda _b: self.go(self.offset - self.page_size))
        self.next_button.on_click(lambda _b: self.go(self.offset + self.page_size))
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.position = W.Label(value="")
        self.header = W.HTML(f"<div class='pk-head'>{esc(HEADER)}</div>")
        self.table = W.SelectMultiple(options=[], rows=12, layout=W.Layout(width="98%"))
        self.table.add_class("pk-table")
        self.table.observe(lambda _c: self._selection_changed(), "value")
        self.thumbnail = W.Image(format="png", layout=W.Layout(max_width="260px"))
        self.details = W.HTML(value="<i>Select a page to see its text.</i>")
        self.text = W.Textarea(
            value="", disabled=True, layout=W.Layout(width="98%", height="220px")
        )
        self.thumbnail.layout.display = "none"  # no broken-image icon before a selection
        self.text.layout.display = "none"
        detail = W.HBox(
            [self.thumbnail, W.VBox([self.details, self.text], layout=W.Layout(flex="1"))]
        )
        self.widget = W.VBox(
            [
                W.HTML("<h4>Pages</h4>"),
                W.HBox(
                    [
                        self.status_filter,
                        self.review_filter,
                        self.prev_button,
                        self.next_button,
                        self.refresh_button,
                        self.position,
                    ]
                ),
                self.header,
                self.table,
                detail,
            ]
        )
        if self.project is not None:
            self.refresh()

    # -- data ---------------------------------------------------------------------------

    @property
    def status(self) -> str | None:
        return self.status_filter.value or None

    @property
    def needs_review(self) -> bool | None:
        """True when only pages flagged for review are shown; None: every page."""
        return True if self.review_filter.value else None

    @property
    def selected(self) -> list[int]:
        """Page ids selected in the table."""
        return list(self.table.value)

    def set_project(self, project: Any) -> None:
        self.project = project_id(project)
        self.offset = 0
        self.refresh()

    def go(self, offset: int) -> None:
        """Show the screen of rows starting at ``offset``."""
        self.offset = max(0, offset)
        self.refresh()

    def refresh(self) -> None:
        """Reload the current screen of rows (keeps the selection where it still shows)."""
        with self._lock:
            if self.project is None:
                self.table.options = []
                self.position.value = "no project"
                return
            flag = self.needs_review
            self.total = self.client.count_pages(self.project, self.status, needs_review=flag)
            if self.offset >= self.total:
                self.offset = max(0, (self.total - 1) // self.page_size * self.page_size)
            df = self.client.pages(
                self.project,
                self.status,
                needs_review=flag,
                limit=self.page_size,
                offset=self.offset,
            )
            self.frame = df
            keep = [i for i in self.table.value if i in set(df.page_id)]
            options = [(_row(r), int(r.page_id)) for r in df.itertuples()]
            # Same labels and ids: leave the widget alone (no flicker, no lost selection).
            if list(self.table.options) != options:
                self.table.value = ()
                self.table.options = options
                self.table.value = tuple(keep)
            last = min(self.offset + self.page_size, self.total)
            self.position.value = (
                f"{self.offset + 1 if self.total else 0}-{last} of {self.total} pages"
            )
            self.prev_button.disabled = self.offset == 0
            self.next_button.disabled = last >= self.total
            if keep:
                self.show(keep[0])

    def _filter_changed(self) -> None:
        self.offset = 0
        self.refresh()

    def _selection_changed(self) -> None:
        ids = self.selected
        if ids:
            self.show(ids[0])
        emit(self.on_select, ids)

    def show(self, page_id: int) -> None:
        """Show one page's thumbnail, numbers and text."""
        p = self.client.page(page_id)
        thumb = self.client.thumbnail(page_id) if p["has_thumbnail"] else None
        if thumb:
            self.thumbnail.format = "jpeg" if thumb[:2] == b"\xff\xd8" else "png"
            self.thumbnail.value = thumb
            self.thumbnail.layout.display = ""
        else:
            self.thumbnail.value = b""
            self.thumbnail.layout.display = "none"
        self.text.layout.display = ""
        conf = "" if p["confidence"] is None else f" · confidence {p['confidence']:.0f}"
        words = "" if p["words"] is None else f" · {p['words']} words"
        err = f"<br><span class='pk-bad'>{esc(p['error'])}</span>" if p["error"] else ""
        review = ""
        if p["needs_review"]:
            why = f": {esc(p['review_reason'])}" if p["review_reason"] else ""
            review = f"<div class='pk-warn'><b>Needs review</b>{why}</div>"
        steps = "".join(
            f"<br><span class='pk-mono'>{esc(name)}</span> = {esc(value)}"
            for name, value in flatten_extra(p["extra"]).items()
        )
        self.details.value = (
            f"<b>Page {p['page_number']}</b> · {esc(p['source'])} · "
            f"<b>{esc(p['status'])}</b>{words}{conf}{err}{review}{steps}"
        )
        self.text.value = p["text"] or ""
