"""The project's pages as a grid: sort, filters, text search, a detail view, delete.

The grid is ipydatagrid's ``DataGrid`` (a canvas grid whose JavaScript ships in the pip
package's JupyterLab extension: nothing is fetched from the network). It only ever holds
one screen of rows, fetched with ``limit``/``offset`` (and ``count_pages`` for the
total), so a 10,000-page project stays responsive:

- sorting by a column (the header's menu) re-queries the whole project in that order, so
  each screen is a slice of the sorted project, not a sorted screen;
- the Status and "Needs review only" filters and the search box query the database;
- while a job runs, :meth:`PagesPanel.refresh` reloads the same screen and sends only the
  cells that changed, so the selection and the sort stay where they are.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..contract import PAGE_STATES, PAGE_SUMMARY_COLUMNS, PageState
from ..errors import PagekitError
from ..reports import flatten_extra
from ._base import Panel, emit, esc, project_id

if TYPE_CHECKING:
    import pandas as pd

    from ..client import Client

STATUSES = [str(state) for state in PAGE_STATES]
THUMB = "image"  # the column of thumbnails
SNIPPET = "snippet"
# Grid headers for the pages' columns (the columns themselves come from the contract).
HEADERS = {"page_number": "page", "needs_review": "review", "confidence": "conf"}
LIST_COLUMNS = [c for c in PAGE_SUMMARY_COLUMNS if c != "page_id"]
# The grid's thumbnails: small enough that a screen of 50 rows is a few dozen KB.
THUMB_SIZE = (52, 42)
ROW_HEIGHT = 46
VISIBLE_ROWS = 10  # the grid grows to this many rows, then scrolls
HEADER_HEIGHT = 20  # the grid's column headers (ipydatagrid's default)
# Pixels; the other columns get the grid's base_column_size.
COLUMN_WIDTHS = {
    THUMB: THUMB_SIZE[0] + 8, "page": 56, "source": 200, "status": 90, "error": 260, SNIPPET: 420,
}  # fmt: skip
# Thumbnails kept in the kernel (by page and processing time): a few screens' worth.
THUMB_CACHE = 2000
# While a job runs, at most one reload of the screen per this many seconds.
LIVE_GAP = 0.5
# The grid draws a thumbnail only when it repaints after the image has loaded (the
# datagrid's own repaint on load leaves the cell, and the cells right of it, blank), so
# the panel asks for whole repaints this many seconds after it sends thumbnails; the
# later ones cover a page that is still starting up when the rows are sent.
REPAINT_AFTER = (0.3, 1.0, 2.5, 5.0, 10.0)

_STATUS_COLOUR = (
    f"cell.value == '{PageState.FAILED}' ? '#b02a37' : "
    f"cell.value == '{PageState.COMPLETED}' ? '#1e7b34' : "
    f"cell.value == '{PageState.PROCESSING}' ? '#0b5ed7' : "
    f"cell.value == '{PageState.CANCELLED}' ? '#8a6d00' : '#212529'"
)
# Numbers without NaN: a blank cell for a page not processed yet (a space: the grid shows
# its own text for an empty one).
_WHOLE = "isValid(cell.value) && isFinite(cell.value) ? format(cell.value, 'd') : ' '"
_ROUND = "isValid(cell.value) && isFinite(cell.value) ? format(cell.value, '.0f') : ' '"


def small_thumbnail(data: bytes, size: tuple[int, int] = THUMB_SIZE) -> str:
    """A stored thumbnail scaled into ``size`` with a thin frame (a white page must still
    show as a page), centred on white, as a ``data:`` URI."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        page = im.convert("RGB")
    page.thumbnail((size[0] - 2, size[1] - 2))
    page = ImageOps.expand(page, border=1, fill=(170, 170, 170))
    cell = Image.new("RGB", size, (255, 255, 255))
    cell.paste(page, ((size[0] - page.width) // 2, (size[1] - page.height) // 2))
    out = io.BytesIO()
    cell.save(out, "JPEG", quality=75)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


class PagesPanel(Panel):
    """Pages of one project in a grid: a screen of ``page_size`` rows at a time.

    ``on_select(page_ids)`` runs when the selection changes, ``on_deleted(page_ids)`` after
    a delete. Select in code with :meth:`select`, sort with :meth:`sort_by` (the same
    path a click on a column header takes), search with :meth:`search`.
    """

    def __init__(
        self, client: Client, project: Any = None, *, page_size: int = 50, thumbnails: bool = True
    ):
        import ipywidgets as W
        from ipydatagrid import DataGrid, ImageRenderer, TextRenderer, VegaExpr

        self.client = client
        self.project = project_id(project)
        self.page_size = page_size
        self.thumbnails = thumbnails
        self.offset = 0
        self.sort: str | None = None  # "confidence" or "-confidence"; None: page order
        self.query = ""  # the text searched for; "" lists pages
        self.frame: pd.DataFrame | None = None  # the rows on screen, as the Client gave them
        self.shown = self._empty()  # the same rows as the grid shows them
        self.page_ids: list[int] = []  # their page ids, in the grid's data order
        self.total = 0
        self.on_select: list[Callable[[list[int]], Any]] = []
        self.on_deleted: list[Callable[[list[int]], Any]] = []
        self.on_refresh: list[Callable[[], Any]] = []
        self.status_counts: dict[str, int] = {}  # the project's pages by status, last read
        self._lock = threading.RLock()  # monitors refresh from their threads
        self._thumbs: OrderedDict[tuple[int, Any], str] = OrderedDict()
        self._quiet = False  # set while the panel itself changes the grid's transforms
        self._last_live = 0.0
        self._to_delete: list[int] = []
        self._repaints = 0  # the latest round of repaints; an older round stops

        self.status_filter = W.Dropdown(
            options=[("all", "")] + [(s, s) for s in STATUSES],
            value="",
            description="Status",
            layout=W.Layout(width="200px"),
        )
        self.status_filter.observe(lambda _c: self._filter_changed(), "value")
        self.review_filter = W.Checkbox(
            value=False, description="Needs review only", indent=False,
            layout=W.Layout(width="auto"),
        )  # fmt: skip
        self.review_filter.observe(lambda _c: self._filter_changed(), "value")
        self.search_box = W.Text(
            placeholder="Search text (Enter)",
            continuous_update=False,
            layout=W.Layout(width="220px"),
        )
        self.search_box.observe(lambda c: self.search(c["new"]), "value")
        self.prev_button = W.Button(description="Prev", icon="arrow-left", disabled=True)
        self.next_button = W.Button(description="Next", icon="arrow-right", disabled=True)
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.prev_button.on_click(lambda _b: self.go(self.offset - self.page_size))
        self.next_button.on_click(lambda _b: self.go(self.offset + self.page_size))
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.position = W.Label(value="")
        self.position.add_class("pk-position")
        self.counts = W.HTML(value="")  # the whole project's pages by status
        self.counts.add_class("pk-counts")

        self.delete_button = W.Button(
            description="Delete",
            icon="trash",
            disabled=True,
            tooltip="Delete the selected pages (asks first)",
        )
        self.delete_button.on_click(lambda _b: self.ask_delete())
        self.confirm_text = W.HTML("")
        self.confirm_button = W.Button(description="Delete", button_style="danger", icon="trash")
        self.confirm_button.on_click(lambda _b: self.confirm_delete())
        self.keep_button = W.Button(description="Cancel")
        self.keep_button.on_click(lambda _b: self._hide_confirm())
        self.confirm_box = W.HBox(
            [self.confirm_text, self.confirm_button, self.keep_button],
            layout=W.Layout(display="none", align_items="center"),
        )
        self.confirm_box.add_class("pk-confirm")
        self.message = W.HTML("")

        number = {"horizontal_alignment": "right"}
        self._renderers = {
            THUMB: ImageRenderer(height="100%", width="", placeholder=""),
            "status": TextRenderer(text_color=VegaExpr(_STATUS_COLOUR)),
            HEADERS["confidence"]: TextRenderer(text_value=VegaExpr(_ROUND), **number),
            "words": TextRenderer(text_value=VegaExpr(_WHOLE), **number),
            HEADERS["page_number"]: TextRenderer(**number),
        }
        self.grid = DataGrid(
            self._empty(),
            selection_mode="row",
            header_visibility="column",
            base_row_size=ROW_HEIGHT,
            base_column_size=80,
            column_widths=COLUMN_WIDTHS,
            renderers=self._renderers,
            layout=W.Layout(height=self._height(0), width="100%"),
        )
        self.grid.add_class("pk-grid")
        self.grid.observe(lambda _c: self._selection_changed(), "selections")
        self.grid.observe(self._transforms_changed, "_transforms")

        self.thumbnail = W.Image(format="png", layout=W.Layout(max_width="260px", width="260px"))
        self.details = W.HTML(value="<i>Select a page to see its text.</i>")
        self.text = W.Textarea(
            value="", disabled=True, layout=W.Layout(width="98%", height="260px")
        )
        self.thumbnail.layout.display = "none"  # no broken-image icon before a selection
        self.text.layout.display = "none"
        self.text.add_class("pk-text")
        detail = W.HBox(
            [self.thumbnail, W.VBox([self.details, self.text], layout=W.Layout(flex="1"))],
            layout=W.Layout(width="100%", align_items="flex-start"),
        )
        detail.add_class("pk-detail")
        self.widget = W.VBox(
            [
                W.HTML("<h4>Pages</h4>"),
                W.HBox(
                    [
                        self.status_filter,
                        self.review_filter,
                        self.search_box,
                        self.prev_button,
                        self.next_button,
                        self.refresh_button,
                        self.position,
                    ],
                    layout=W.Layout(align_items="center", flex_flow="row wrap"),
                ),
                self.counts,
                self.grid,
                W.HBox([self.delete_button, self.confirm_box, self.message]),
                detail,
            ]
        )
        self.widget.add_class("pk-pages")
        self.refresh()

    # -- what is shown ------------------------------------------------------------------

    @property
    def status(self) -> str | None:
        return self.status_filter.value or None

    @property
    def needs_review(self) -> bool | None:
        return True if self.review_filter.value else None

    @property
    def selected(self) -> list[int]:
        """Page ids selected in the grid, top to bottom."""
        ids = self.page_ids
        visible = list(self.grid._visible_rows)
        out: list[int] = []
        for rect in self.grid.selections:
            for r in range(rect["r1"], rect["r2"] + 1):
                i = visible[r] if r < len(visible) else r
                if 0 <= i < len(ids) and ids[i] not in out:
                    out.append(ids[i])
        return out

    def select(self, page_ids: list[int]) -> list[int]:
        """Select these pages where they are on screen; returns the ones selected."""
        visible = list(self.grid._visible_rows)
        where = {pid: i for i, pid in enumerate(self.page_ids)}
        rows = []
        for pid in page_ids:
            if pid in where:
                i = where[pid]
                rows.append(visible.index(i) if i in visible else i)
        last = len(self.shown.columns) - 1
        self.grid.selections = [{"r1": r, "r2": r, "c1": 0, "c2": last} for r in rows]
        return self.selected

    def set_project(self, project: Any) -> None:
        self.project = project_id(project)
        self.offset = 0
        self._hide_confirm()
        self.message.value = ""
        self.refresh()

    def go(self, offset: int) -> None:
        """Show the screen of rows starting at ``offset``."""
        self.offset = max(0, offset)
        self.refresh()

    def sort_by(self, column: str | None, descending: bool = False) -> None:
        """Order every page of the project by ``column`` (a grid header); None: page order."""
        transforms = (
            [] if column is None else [{"type": "sort", "column": column, "desc": descending}]
        )
        self.grid._transforms = transforms  # observed: re-queries like a header click

    def search(self, query: str) -> None:
        """List the pages whose text matches ``query`` (empty: list pages again)."""
        query = (query or "").strip()
        if self.search_box.value.strip() != query:
            self.search_box.value = query  # observed: comes back here
            return
        if query == self.query:
            return
        self.query = query
        self.offset = 0
        self.message.value = ""
        searching = bool(query)
        self.status_filter.disabled = self.review_filter.disabled = searching
        self.refresh()

    def live_refresh(self, _status: Any = None) -> None:
        """Reload the screen during a job, at most once every ``LIVE_GAP`` seconds (a job's
        end is refreshed anyway, by :meth:`refresh`)."""
        now = time.monotonic()
        if now - self._last_live < LIVE_GAP:
            return
        self._last_live = now
        self.refresh()

    def check(self) -> bool:
        """Refresh if the project's pages changed since the last refresh (pages added,
        deleted or processed from anywhere): one cheap query. True if it refreshed."""
        if self.project is None:
            return False
        try:
            counts = self.client.project(self.project)["counts"]
        except PagekitError:  # e.g. the project was deleted elsewhere
            return False
        if counts == self.status_counts:
            return False
        self.refresh()
        return True

    def refresh(self) -> None:
        """Reload the current screen of rows.

        The same pages as before: only the cells that changed go to the browser, and the
        selection stays. Other pages (paging, a filter, a sort, a search): a new screen.
        """
        with self._lock:
            if self.project is None:
                self._show_rows(None, self._empty(), [])
                self.position.value = "no project"
                self.counts.value = ""
                self._set_paging(0, False)
                return
            try:
                frame, ids, position, more = self._load()
                counts = self.client.project(self.project)["counts"]
            except PagekitError as exc:
                self.message.value = f"<span class='pk-bad'>{esc(exc)}</span>"
                return
            self._show_rows(frame, self._grid_frame(frame), ids)
            # After the rows: a browser that shows the new position has the new rows.
            self.position.value = position
            self._set_paging(self.offset, more)
            self.status_counts = counts
            total = sum(counts.values())
            parts = [f"{n} {esc(state)}" for state, n in counts.items() if n]
            self.counts.value = (
                f"<small>{total} page{'s' if total != 1 else ''}"
                + (": " + " · ".join(parts) if parts else "")
                + "</small>"
            )
        emit(self.on_refresh)

    def _load(self) -> tuple[pd.DataFrame, list[int], str, bool]:
        """The screen's rows, their page ids, where they are ("1-50 of 812 pages") and
        whether more follow."""
        if self.query:
            df = self.client.search(
                self.query, self.project, limit=self.page_size, offset=self.offset
            )
            ids = [int(i) for i in df["page_id"]]
            self.total = self.client.count_matches(self.query, self.project)
            last = self.offset + len(ids)
            position = (
                f"{self.offset + 1}-{last} of {self.total} pages matching “{self.query}”"
                if ids
                else f"no page matches “{self.query}”"
            )
            return df, ids, position, last < self.total
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
            sort=self.sort,
        )
        ids = [int(i) for i in df["page_id"]]
        last = min(self.offset + self.page_size, self.total)
        position = f"{self.offset + 1 if self.total else 0}-{last} of {self.total} pages"
        if self.sort:
            column = self.sort.lstrip("-")
            arrow = "↓" if self.sort.startswith("-") else "↑"
            position += f", by {HEADERS.get(column, column)} {arrow}"
        return df, ids, position, last < self.total

    def _set_paging(self, offset: int, more: bool) -> None:
        self.prev_button.disabled = offset == 0
        self.next_button.disabled = not more

    # -- the grid -----------------------------------------------------------------------

    def _empty(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({c: [] for c in [THUMB, *(HEADERS.get(c, c) for c in LIST_COLUMNS)]})

    def _grid_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """What the grid shows for these rows: a thumbnail, then the columns."""
        import pandas as pd

        out = pd.DataFrame({THUMB: [self._thumb(r) for r in df.itertuples()]})
        if self.query:
            columns = [c for c in ("page_number", "status", "confidence", SNIPPET) if c in df]
        else:
            columns = LIST_COLUMNS
        for c in columns:
            values = df[c].reset_index(drop=True)
            if c == "needs_review":  # True, or numpy's True; not None nor NaN
                values = values.map(lambda v: "yes" if v == 1 else "")
            elif c in ("words", "confidence"):
                values = pd.to_numeric(values, errors="coerce").astype(float)
            elif values.dtype == object:
                values = values.map(
                    lambda v: "" if v is None or v != v else str(v).splitlines()[0] if v else ""
                )
            out[HEADERS.get(c, c)] = values
        return out

    def _thumb(self, row: Any) -> str:
        if not self.thumbnails:
            return ""
        status = getattr(row, "status", None)
        if status is not None and status != PageState.COMPLETED and status != PageState.FAILED:
            return ""  # not processed (again) yet: no thumbnail, or a stale one
        key = (int(row.page_id), getattr(row, "finished_at", None))
        uri = self._thumbs.get(key)
        if uri is None:
            try:
                data = self.client.thumbnail(int(row.page_id))
                uri = small_thumbnail(data) if data else ""
            except Exception:  # a damaged thumbnail must not break the grid
                uri = ""
            self._thumbs[key] = uri
            if len(self._thumbs) > THUMB_CACHE:
                self._thumbs.popitem(last=False)
        return uri

    def _show_rows(self, frame: pd.DataFrame | None, shown: pd.DataFrame, ids: list[int]) -> None:
        before = self.shown
        same = bool(ids) and ids == self.page_ids and list(before.columns) == list(shown.columns)
        self.frame = frame
        self.shown = shown
        if same:
            changed = self._send_changes(before, shown)
            selected = self.selected
            if selected and selected[0] in changed:
                self.show(selected[0])  # e.g. the selected page just completed
            return
        self.page_ids = ids
        self.grid.selections = []  # other rows: the old selection means nothing here
        self.grid.data = shown
        self.grid.layout.height = self._height(len(ids))
        if any(shown[THUMB]):
            self._repaint_soon()

    @staticmethod
    def _height(rows: int) -> str:
        """The grid's height for ``rows`` rows: all of them, up to ``VISIBLE_ROWS``."""
        return f"{HEADER_HEIGHT + ROW_HEIGHT * max(1, min(rows, VISIBLE_ROWS)) + 12}px"

    def _send_changes(self, before: pd.DataFrame, after: pd.DataFrame) -> set[int]:
        """Send the cells that differ; returns the page ids of the changed rows."""
        changed: set[int] = set()
        if self.grid.comm is None:  # closed
            return changed
        thumbs = False
        for c in after.columns:
            old, new = before[c], after[c]
            for i in range(len(new)):
                a, b = old.iat[i], new.iat[i]
                if a == b or (a != a and b != b):  # equal, or both NaN
                    continue
                value = None if b != b else b.item() if hasattr(b, "item") else b  # JSON
                self.grid.set_cell_value_by_index(c, i, value)
                changed.add(self.page_ids[i])
                thumbs = thumbs or (c == THUMB and bool(value))
        if thumbs:  # one round of repaints for them all
            self._repaint_soon()
        return changed

    def _repaint_soon(self) -> None:
        """Have the browser repaint the whole grid a few times (see ``REPAINT_AFTER``)."""
        self._repaints += 1
        threading.Thread(
            target=self._repaint, args=(self._repaints,), name="grid repaint", daemon=True
        ).start()

    def _repaint(self, round_: int) -> None:
        started = time.monotonic()
        for delay in REPAINT_AFTER:
            time.sleep(max(0.0, started + delay - time.monotonic()))
            if round_ != self._repaints or self.grid.comm is None:
                return  # a newer round took over, or the grid is closed
            # The row headers are hidden: a new width changes nothing on screen, but the
            # grid repaints every cell.
            self.grid.base_row_header_size = 65 if self.grid.base_row_header_size == 64 else 64

    def _transforms_changed(self, change: dict[str, Any]) -> None:
        """A sort from a header's menu re-queries the project; the grid's own filters
        would only filter this screen, so they are undone with a pointer to ours."""
        if self._quiet:
            return
        transforms = change["new"] or []
        sorts = [t for t in transforms if t.get("type") == "sort"]
        others = [t for t in transforms if t.get("type") != "sort"]
        sort = self.sort
        if not self.query:  # search results come in rank order: sort them on screen only
            sort = None
            if sorts:
                header = sorts[-1].get("column")
                column = {v: k for k, v in HEADERS.items()}.get(header, header)
                if column in LIST_COLUMNS:
                    sort = ("-" if sorts[-1].get("desc") else "") + column
                else:
                    sorts = []  # e.g. the thumbnails: nothing to order by
        if others or len(sorts) > 1 or (transforms and not sorts and not others):
            self._set_transforms(sorts[-1:])
        if others:
            self.message.value = (
                "<small>Filter with Status, Needs review and Search above: they cover every "
                "page, not only this screen.</small>"
            )
        if sort != self.sort:
            self.sort = sort
            self.offset = 0
            self.refresh()

    def _set_transforms(self, transforms: list[dict[str, Any]]) -> None:
        self._quiet = True
        try:
            self.grid._transforms = transforms
        finally:
            self._quiet = False

    def _filter_changed(self) -> None:
        self.offset = 0
        self.refresh()

    def _selection_changed(self) -> None:
        ids = self.selected
        self.delete_button.disabled = not ids
        self.delete_button.button_style = "danger" if ids else ""
        if ids:
            self.show(ids[0])
        emit(self.on_select, ids)

    # -- one page -----------------------------------------------------------------------

    def show(self, page_id: int) -> None:
        """Show one page's thumbnail beside its numbers and text."""
        try:
            p = self.client.page(page_id)
        except PagekitError as exc:  # deleted meanwhile
            self.details.value = f"<span class='pk-bad'>{esc(exc)}</span>"
            return
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

    # -- delete -------------------------------------------------------------------------

    def ask_delete(self) -> None:
        """Ask before deleting the selected pages."""
        ids = self.selected
        if not ids:
            return
        self._to_delete = ids
        n = len(ids)
        self.confirm_text.value = (
            f"<b>Delete {n} page{'s' if n != 1 else ''}?</b> This cannot be undone.&nbsp;"
        )
        self.confirm_box.layout.display = ""
        self.delete_button.layout.display = "none"
        self.message.value = ""

    def confirm_delete(self) -> list[int]:
        """Delete the pages asked about; a refusal (e.g. a page is queued) is shown."""
        ids, self._to_delete = self._to_delete, []
        self._hide_confirm()
        if not ids:
            return []
        try:
            self.client.delete_pages(self.project, ids)
        except PagekitError as exc:
            self.message.value = f"<span class='pk-bad'>Not deleted: {esc(exc)}</span>"
            return []
        n = len(ids)
        self.message.value = f"Deleted {n} page{'s' if n != 1 else ''}."
        self.refresh()
        emit(self.on_deleted, ids)
        return ids

    def _hide_confirm(self) -> None:
        self.confirm_box.layout.display = "none"
        self.delete_button.layout.display = ""
