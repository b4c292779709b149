"""The HTML report: one self-contained file that opens offline and can be passed on.

Project summary, status breakdown, throughput over time, confidence distribution, the
failed pages with their errors, the pages flagged for review with their reasons, and a
per-page table with thumbnails and the custom steps' outputs. Nothing is loaded
from anywhere: the CSS is inline, charts are inline SVG, thumbnails are ``data:`` URIs,
and a Content-Security-Policy forbids any other source.

The markup is in Jinja2 templates (``pagekit/templates/report/``) rendered with
autoescape on, so a project name, file name, OCR text or error message is always shown as
text. Python computes the numbers and the chart geometry; the templates only draw them.

Three ways to the same report, all through :func:`make_report` (``pagekit report``) or
:func:`write_report`:

* the HTML written directly, streaming the page table, so a large project never sits in
  memory;
* ``notebook=True`` (``--notebook``) executes ``notebooks/report.ipynb`` with papermill and
  exports it with nbconvert, without input cells;
* ``pdf=True`` (``--pdf``) prints the HTML to PDF with headless Chromium.

Aggregates come from SQL over the store (:mod:`pagekit.store.reporting`, no text is
loaded for them); the page table is capped at ``max_pages`` rows because a report is read
by people: every page is in ``pagekit export``.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup

from .contract import EXTRA_PREFIX, FINISHED, PAGE_STATES, REPORT_MAX_PAGES, PageState
from .errors import PagekitError
from .store import reporting, utcnow

if TYPE_CHECKING:
    from .client import ProjectRef

# Rows of the per-page table (with a thumbnail each, ~5 KB): about 5 MB of HTML.
MAX_PAGES = REPORT_MAX_PAGES
# Failed pages listed with their errors; a project where more fail has one bigger problem.
MAX_FAILED = 500
# Pages flagged for review listed with their reasons (the rest: `pagekit pages --needs-review`).
MAX_REVIEW = 500
# Custom step columns (``extra.*``) in the page table; every one is in the exports.
MAX_STEP_COLUMNS = 12
# Characters of a step's value shown in a cell.
STEP_VALUE_CHARS = 120
# Page rows read from the store per round trip while the page table streams.
PAGE_CHUNK = 200
# Thumbnails are embedded as stored (processing.images.THUMBNAIL_SIZE, a JPEG of 3-4 KB),
# so a heading stays readable at the 180 px the report shows them; a bigger one is shrunk.
THUMB_PX = 256
# Characters of a page's text shown before "more" (the rest folds into <details>).
EXCERPT = 240
STATUS_COLORS = {
    PageState.COMPLETED: "#1a7f37",
    PageState.FAILED: "#cf222e",
    PageState.PROCESSING: "#0969da",
    PageState.QUEUED: "#8c959f",
    PageState.PENDING: "#d0d7de",
    PageState.CANCELLED: "#bc4c00",
}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
NOTEBOOK = "report.ipynb"


# -- what the report reads ------------------------------------------------------------------


@dataclass
class Source:
    """The store and blobs of one pagekit home, read-only; no broker, no runtime needed."""

    store: Any
    blobs: Any


def open_home(
    home: str | Path | None = None,
    *,
    database_url: str | None = None,
    blob_dir: str | Path | None = None,
) -> Source:
    """A :class:`Source` for a data directory, e.g. in a notebook that only reports."""
    from .blobs import BlobStore
    from .config import Settings
    from .store import Store

    settings = Settings.from_env(home=home, database_url=database_url, blob_dir=blob_dir)
    return Source(Store(settings.db_url, create=False), BlobStore(settings.blob_path))


@dataclass
class ReportData:
    """Everything the report shows except the page rows (those are streamed)."""

    project_id: int
    name: str
    created_at: datetime
    counts: dict[str, int]
    words: int
    chars: int
    mean_confidence: float | None
    engines: list[tuple[str, int]]
    jobs: list[dict[str, Any]]
    first_start: datetime | None
    last_finish: datetime | None
    bucket_seconds: int
    throughput: list[tuple[datetime, int, int]]  # (bucket start, completed, failed)
    confidence_bins: list[int]  # 10 bins of 10 points, 0-100
    no_confidence: int  # completed pages without an OCR confidence (text layer, blank)
    lowest: list[dict[str, Any]]
    needs_review: int  # pages flagged for review
    step_columns: list[str]  # the ``extra.*`` columns of the project's results
    generated_at: datetime = field(default_factory=utcnow)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def pages_per_minute(self) -> float | None:
        done = self.counts[PageState.COMPLETED] + self.counts[PageState.FAILED]
        if not (self.first_start and self.last_finish) or not done:
            return None
        seconds = (self.last_finish - self.first_start).total_seconds()
        return done / seconds * 60 if seconds > 0 else None


_BUCKETS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
            43200, 86400, 7 * 86400]  # fmt: skip


def _bucket_size(span: float, most: int = 60) -> int:
    for size in _BUCKETS:
        if span / size <= most:
            return size
    return _BUCKETS[-1] * max(1, int(span / (_BUCKETS[-1] * most)) + 1)


def _floor(at: datetime, seconds: int) -> datetime:
    epoch = datetime(1970, 1, 1)
    return epoch + timedelta(seconds=int((at - epoch).total_seconds() // seconds) * seconds)


def _throughput(store: Any, project_id: int) -> tuple[int, list[tuple[datetime, int, int]]]:
    """Pages completed and failed per time bucket: (bucket seconds, buckets)."""
    lo, hi = reporting.finished_span(store, project_id)
    if lo is None or hi is None:
        return 1, []
    size = _bucket_size((hi - lo).total_seconds())
    origin = _floor(lo, size)
    n = int((hi - origin).total_seconds() // size) + 1
    done, bad = [0] * n, [0] * n
    for at, state in reporting.iter_finished(store, project_id):
        i = min(n - 1, int((at - origin).total_seconds() // size))
        (done if state == PageState.COMPLETED else bad)[i] += 1
    return size, [(origin + timedelta(seconds=i * size), done[i], bad[i]) for i in range(n)]


def collect(source: Any, project: ProjectRef) -> ReportData:
    """Aggregate the project for the report: SQL counts, sums and histograms."""
    from .reports import extra_columns, jobs_frame

    proj = source.store.project(project)
    pid = proj.id
    counts = source.store.status_counts(pid)
    totals = reporting.totals(source.store, pid)
    size, throughput = _throughput(source.store, pid)
    bins = [0] * 10
    for c in reporting.iter_confidences(source.store, pid):
        bins[min(9, max(0, int(c // 10)))] += 1
    jobs = jobs_frame(source, pid)
    jobs = jobs.astype(object).where(jobs.notna(), None)
    return ReportData(
        project_id=pid,
        name=proj.name,
        created_at=proj.created_at,
        counts=counts,
        words=totals.words,
        chars=totals.chars,
        mean_confidence=totals.mean_confidence,
        engines=totals.engines,
        jobs=jobs.to_dict("records"),
        first_start=totals.first_start,
        last_finish=totals.last_finish,
        bucket_seconds=size,
        throughput=throughput,
        confidence_bins=bins,
        no_confidence=counts[PageState.COMPLETED] - sum(bins),
        lowest=reporting.lowest_confidence(source.store, pid),
        needs_review=source.store.count_pages(pid, needs_review=True),
        step_columns=list(extra_columns(source, pid)),
    )


# -- formatting (Jinja filters) -------------------------------------------------------------


def _n(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if digits else f"{int(value):,}"


def _t(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "–"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s" if m else f"{s}s"


@cache
def environment() -> Environment:
    """The report's Jinja environment: package templates, autoescape on, strict names."""
    env = Environment(
        loader=PackageLoader("pagekit", "templates"),
        autoescape=select_autoescape(("html", "j2", "svg"), default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_n, when=_t, duration=_duration)
    return env


def _template(name: str) -> Template:
    return environment().get_template(f"report/{name}.html.j2")


def _thumb(source: Any, key: str | None) -> str | None:
    """A thumbnail as a ``data:`` URI: the stored JPEG, or re-encoded when it is another
    format or larger than ``THUMB_PX``; None when it is missing or unreadable."""
    if not key:
        return None
    try:
        from PIL import Image

        data = source.blobs.get(key)
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "JPEG" or max(img.size) > THUMB_PX:
                img.thumbnail((THUMB_PX, THUMB_PX))
                buf = io.BytesIO()
                mode = img.mode if img.mode in ("L", "RGB") else "RGB"
                img.convert(mode).save(buf, "JPEG", quality=80, optimize=True)
                data = buf.getvalue()
    except Exception:  # a missing or unreadable thumbnail must not stop the report
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


# -- charts: geometry here, drawing in templates/report/macros.html.j2 ------------------------

# Chart labels are 11 px (report.css). The widest characters they hold (digits, "-", ":")
# are about 0.6 em in the sans-serif fonts browsers pick; 0.7 em leaves a margin for wider
# fonts, so a label laid out with it stays inside the chart.
CHART_FONT_PX = 11
CHART_CHAR_EM = 0.7


def _text_width(text: str) -> float:
    """A generous estimate of a chart label's width in SVG units."""
    return len(text) * CHART_FONT_PX * CHART_CHAR_EM


class Rect(NamedTuple):
    x: float
    y: float
    width: float
    height: float
    color: str


class Column(NamedTuple):
    tip: str
    rects: list[Rect]


class GridLine(NamedTuple):
    y: float
    text_y: float
    text: str


class Label(NamedTuple):
    x: float
    y: float
    text: str


class Columns(NamedTuple):
    """A stacked column chart, laid out."""

    label: str
    width: int
    height: int
    x1: int
    x2: int
    grid: list[GridLine]
    columns: list[Column]
    x_labels: list[Label]


class BarPart(NamedTuple):
    x: float
    width: float
    color: str
    tip: str


class Bar(NamedTuple):
    """A horizontal bar split by share."""

    label: str
    width: int
    height: int
    parts: list[BarPart]


def columns_chart(
    stacks: list[list[int]],
    colors: list[str],
    tips: list[str],
    x_labels: list[tuple[int, str]],
    *,
    label: str,
    width: int = 860,
    height: int = 220,
) -> Columns:
    """Lay out a stacked column chart: one column per entry of ``stacks`` (bottom to top).

    The margins make room for the labels: the y axis's values end left of the plot, and an
    x label centred under the first or last column may reach past the plot's edges.
    """
    peak = max((sum(s) for s in stacks), default=0) or 1
    ticks = []
    for frac in (0, 0.5, 1):
        value = peak * frac
        ticks.append((frac, _n(value, 1) if value != int(value) else _n(value)))
    first = _text_width(min(x_labels)[1]) / 2 if x_labels else 0
    last = _text_width(max(x_labels)[1]) / 2 if x_labels else 0
    left = round(max(44, 6 + max(_text_width(t) for _, t in ticks) + 2, first + 2))
    right = round(max(10, last + 2))
    top, bottom = 10, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    col_w = plot_w / max(1, len(stacks))
    gap = min(2.0, col_w * 0.15)
    grid = []
    for frac, text in ticks:
        y = top + plot_h * (1 - frac)
        grid.append(GridLine(round(y, 1), round(y + 4, 1), text))
    columns = []
    for i, (stack, tip) in enumerate(zip(stacks, tips, strict=True)):
        x = left + i * col_w + gap / 2
        y = float(top + plot_h)
        rects = []
        for value, color in zip(stack, colors, strict=True):
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            rects.append(Rect(round(x, 1), round(y, 1), round(max(1.0, col_w - gap), 1),
                              round(h, 1), color))  # fmt: skip
        columns.append(Column(tip, rects))
    labels = [Label(round(left + (i + 0.5) * col_w, 1), height - bottom + 16, text)
              for i, text in x_labels]  # fmt: skip
    return Columns(label, width, height, left, width - right, grid, columns, labels)


# -- sections: the data each template gets ---------------------------------------------------


def _summary(data: ReportData) -> dict[str, Any]:
    c = data.counts
    waiting = (PageState.PENDING, PageState.QUEUED, PageState.PROCESSING)

    def count(state: PageState) -> tuple[str, str, str]:
        return str(state), str(state), _n(c[state])

    cards = [
        ("pages", "pages", _n(data.total)),
        count(PageState.COMPLETED),
        count(PageState.FAILED),
        ("waiting", " / ".join(waiting), _n(sum(c[s] for s in waiting))),
        count(PageState.CANCELLED),
        ("words", "words", _n(data.words)),
        ("chars", "characters", _n(data.chars)),
        ("review", "need review", _n(data.needs_review)),
        ("confidence", "mean OCR confidence", _n(data.mean_confidence, 1)),
        ("rate", "pages / minute", _n(data.pages_per_minute, 1)),
    ]
    return {"data": data, "cards": cards}


def _status(data: ReportData) -> dict[str, Any]:
    total = data.total or 1
    rows, parts, x = [], [], 0.0
    for state in PAGE_STATES:
        n = data.counts[state]
        rows.append((str(state), n, 100 * n / total))
        if n:
            w = 860 * n / total
            parts.append(BarPart(round(x, 1), round(w, 1), STATUS_COLORS[state],
                                 f"{state}: {_n(n)}"))  # fmt: skip
            x += w
    return {"status_rows": rows, "status_bar": Bar("pages by status", 860, 24, parts)}


def _throughput_view(data: ReportData) -> dict[str, Any]:
    if not data.throughput:
        return {"data": data, "throughput": None}
    size = data.bucket_seconds
    unit = f"{size} s" if size < 60 else f"{size // 60} min" if size < 3600 else f"{size // 3600} h"
    fmt = "%H:%M:%S" if size < 60 else "%m-%d %H:%M" if size < 86400 else "%Y-%m-%d"
    n = len(data.throughput)
    colors = [STATUS_COLORS[PageState.COMPLETED], STATUS_COLORS[PageState.FAILED]]
    chart = columns_chart(
        [[done, bad] for _, done, bad in data.throughput],
        colors,
        [f"{_t(at)}: {done} completed, {bad} failed" for at, done, bad in data.throughput],
        [(i, data.throughput[i][0].strftime(fmt)) for i in sorted({0, n // 2, n - 1})],
        label=f"pages finished per {unit}",
    )
    return {
        "data": data,
        "throughput": {
            "chart": chart,
            "legend": [(str(PageState.COMPLETED), colors[0]), (str(PageState.FAILED), colors[1])],
            "unit": unit,
            "peak": max(d + b for _, d, b in data.throughput),
        },
    }


def _confidence(data: ReportData) -> dict[str, Any]:
    if not sum(data.confidence_bins):
        return {"data": data, "confidence": None}
    colors = ["#cf222e"] * 5 + ["#bf8700"] * 2 + ["#1a7f37"] * 3
    # One colour per bin: each column is a stack whose only non-zero layer is its own.
    bins = data.confidence_bins
    chart = columns_chart(
        [[n if j == i else 0 for j in range(10)] for i, n in enumerate(bins)],
        colors,
        [f"{10 * i}-{10 * i + 10}: {n} page(s)" for i, n in enumerate(bins)],
        [(i, f"{10 * i}-{10 * i + 10}") for i in range(10)],
        label="pages by mean OCR confidence",
    )
    return {"data": data, "confidence": chart}


def _failed(source: Any, data: ReportData, limit: int) -> dict[str, Any]:
    count = data.counts[PageState.FAILED]
    rows = reporting.failed_pages(source.store, data.project_id, limit) if count else []
    failed = ({**r, "thumb": _thumb(source, r["thumbnail"])} for r in rows)
    return {"failed_rows": failed, "failed_count": count, "failed_limit": limit}


def _review(source: Any, data: ReportData, limit: int) -> dict[str, Any]:
    count = data.needs_review
    rows = reporting.review_pages(source.store, data.project_id, limit) if count else []
    review = ({**r, "where": _where(r), "thumb": _thumb(source, r["thumbnail"])} for r in rows)
    return {"review_rows": review, "review_count": count, "review_limit": limit}


def _where(r: dict[str, Any]) -> str:
    idx = r["source_index"]
    return f"{r['source']} (p. {idx + 1})" if idx else r["source"]


def _step_value(value: Any) -> str:
    """A step's value as a table cell shows it: short, and empty for no value."""
    if value is None:
        return ""
    text = str(value)
    return text if len(text) <= STEP_VALUE_CHARS else text[: STEP_VALUE_CHARS - 1] + "…"


def _jobs(data: ReportData) -> dict[str, Any]:
    jobs = [
        {
            **j,
            "finished": [j[str(state)] for state in FINISHED],
            # A one-page job that took milliseconds has no meaningful rate.
            "rate": j["pages_per_min"] if j["duration_s"] and j["duration_s"] >= 1 else None,
        }
        for j in data.jobs
    ]
    return {"data": data, "jobs": jobs}


def _page_rows(source: Any, data: ReportData, max_pages: int) -> Iterator[dict[str, Any]]:
    """The page table's rows, read a chunk at a time (keyset pagination)."""
    from .reports import flatten_extra

    steps = data.step_columns[:MAX_STEP_COLUMNS]
    last, shown = None, 0
    while shown < max_pages:
        rows = reporting.report_rows(
            source.store, data.project_id, after=last, limit=min(PAGE_CHUNK, max_pages - shown)
        )
        if not rows:
            return
        for r in rows:
            flat = flatten_extra(r["extra"]) if steps else {}
            yield {
                **r,
                "where": _where(r),
                "seconds": (r["timings"] or {}).get("total"),
                "thumb": _thumb(source, r["thumbnail"]),
                "steps": [_step_value(flat.get(c)) for c in steps],
            }
        shown += len(rows)
        last = rows[-1]["page_number"]


def _pages(source: Any, data: ReportData, max_pages: int) -> dict[str, Any]:
    steps = data.step_columns
    return {
        "data": data,
        "pages": _page_rows(source, data, max_pages),
        "excerpt": EXCERPT,
        # Headers without the "extra." every one of them starts with.
        "step_names": [c.removeprefix(EXTRA_PREFIX) for c in steps[:MAX_STEP_COLUMNS]],
        "steps_left_out": max(0, len(steps) - MAX_STEP_COLUMNS),
    }


# -- sections as HTML (the notebook displays these one by one) -------------------------------


def header_html(data: ReportData) -> str:
    return _template("header").render(data=data)


def summary_html(data: ReportData) -> str:
    """The numbers a reader wants first, as cards (``data-key`` names each number)."""
    return _template("summary").render(_summary(data))


def status_html(data: ReportData) -> str:
    return _template("status").render(_status(data))


def throughput_html(data: ReportData) -> str:
    return _template("throughput").render(_throughput_view(data))


def confidence_html(data: ReportData) -> str:
    return _template("confidence").render(_confidence(data))


def failed_html(source: Any, data: ReportData, limit: int = MAX_FAILED) -> str:
    return _template("failed_pages").render(_failed(source, data, limit))


def review_html(source: Any, data: ReportData, limit: int = MAX_REVIEW) -> str:
    """The pages flagged for review, with thumbnails and reasons."""
    return _template("review").render(_review(source, data, limit))


def jobs_html(data: ReportData) -> str:
    return _template("jobs").render(_jobs(data))


def iter_pages_html(source: Any, data: ReportData, max_pages: int = MAX_PAGES) -> Iterator[str]:
    """The per-page table, in pieces, as the rows are read."""
    return _template("pages").generate(_pages(source, data, max_pages))


def css() -> str:
    return resources.files("pagekit").joinpath("templates", "report.css").read_text("utf-8")


def iter_html(source: Any, project: ProjectRef, *, max_pages: int = MAX_PAGES) -> Iterator[str]:
    """The whole report document, in pieces (the page table streams)."""
    from . import __version__

    data = collect(source, project)
    context = {
        "data": data,
        "csp": CSP,
        "css": Markup(css()),  # the packaged stylesheet: ours, not data
        "version": __version__,
        **_summary(data),
        **_status(data),
        **_throughput_view(data),
        **_confidence(data),
        **_failed(source, data, MAX_FAILED),
        **_review(source, data, MAX_REVIEW),
        **_jobs(data),
        **_pages(source, data, max_pages),
    }
    return _template("document").generate(context)


# -- writing it -----------------------------------------------------------------------------


def make_report(
    client: Any,
    project: ProjectRef,
    *,
    output: Path | None = None,
    notebook: bool = False,
    pdf: bool = False,
    max_pages: int = MAX_PAGES,
) -> list[Path]:
    """What ``pagekit report`` does; returns every file written (the HTML, then the PDF).

    ``output`` defaults to ``<project>-report.html`` in the working directory; a ``.pdf``
    name writes a PDF only.
    """
    if max_pages < 0:
        raise PagekitError(f"max_pages must be 0 or more, not {max_pages}")
    if output is None:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(project))
        output = Path(f"{safe}-report.html")
    written = write_report(client, project, output, notebook=notebook, pdf=pdf,
                           max_pages=max_pages)  # fmt: skip
    if written.suffix == ".pdf" and output.suffix.lower() != ".pdf":
        return [output, written]
    return [written]


def write_report(
    client: Any,
    project: ProjectRef,
    path: str | Path,
    *,
    notebook: bool = False,
    pdf: bool = False,
    max_pages: int = MAX_PAGES,
) -> Path:
    """Write the project's report to ``path`` and return the file written.

    ``path`` ending in ``.pdf`` means a PDF only. ``pdf=True`` with an ``.html`` path
    writes both, the PDF next to the HTML, and returns the PDF's path. ``notebook=True``
    builds the HTML by executing ``notebooks/report.ipynb`` instead.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    want_pdf = pdf or path.suffix.lower() == ".pdf"
    html_path = path if path.suffix.lower() != ".pdf" else path.with_suffix(".html")
    with tempfile.TemporaryDirectory(prefix="pagekit-report-") as tmp:
        if path.suffix.lower() == ".pdf":
            html_path = Path(tmp) / "report.html"
        part = html_path.with_name(html_path.name + ".part")
        try:
            if notebook:
                _notebook_html(client, project, part, max_pages=max_pages)
            else:
                with part.open("w", encoding="utf-8") as fh:
                    fh.writelines(iter_html(client, project, max_pages=max_pages))
            part.replace(html_path)
        finally:
            part.unlink(missing_ok=True)
        if not want_pdf:
            return html_path
        out = path if path.suffix.lower() == ".pdf" else path.with_suffix(".pdf")
        print_pdf(html_path, out)
        return out


def _notebook_path() -> Path:
    """``notebooks/report.ipynb`` of the source tree, else the packaged copy."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "notebooks" / NOTEBOOK, here / "templates" / NOTEBOOK):
        if candidate.exists():
            return candidate
    raise PagekitError(f"cannot find {NOTEBOOK}; reinstall pagekit")


def _notebook_html(client: Any, project: ProjectRef, out: Path, *, max_pages: int) -> None:
    """Execute the report notebook with papermill, export it without input cells."""
    try:
        import nbformat
        import papermill
        from nbconvert import HTMLExporter
    except ImportError as exc:
        raise PagekitError(
            f"the notebook report needs {exc.name}: pip install 'pagekit[notebook]'"
        ) from exc

    settings = client.settings
    params = {
        "pagekit_home": str(settings.home_abs),
        "project": client.store.project(project).name,
        "database_url": settings.db_url,
        "blob_dir": str(settings.blob_path),
        "max_pages": max_pages,
    }
    with tempfile.TemporaryDirectory(prefix="pagekit-nb-") as tmp:
        executed = Path(tmp) / NOTEBOOK
        papermill.execute_notebook(
            str(_notebook_path()),
            str(executed),
            parameters=params,
            kernel_name=_kernel_name(),
            progress_bar=False,
            cwd=tmp,
        )
        nb = nbformat.read(executed, as_version=4)
    nb.metadata["title"] = f"{params['project']} · pagekit report"
    exporter = HTMLExporter(
        template_name="lab",
        template_file=str(resources.files("pagekit").joinpath("templates", "nb_report.html.j2")),
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(nb, resources={"pagekit_css": css(), "pagekit_csp": CSP})
    out.write_text(body, encoding="utf-8")


def _kernel_name() -> str:
    """A kernel that runs this Python (the one pagekit is installed in).

    Jupyter may know several kernels called ``python3``; the user's own can shadow the
    environment's. ``python3`` is used when it runs this interpreter, else a kernelspec
    for ``sys.executable`` is installed into this environment once.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    ksm = KernelSpecManager()
    for name in ("python3", "pagekit"):
        try:
            argv = ksm.get_kernel_spec(name).argv
        except Exception:
            continue
        # jupyter_client runs a bare "python" as sys.executable.
        if argv and (argv[0] in ("python", "python3") or Path(argv[0]) == Path(sys.executable)):
            return name
    from ipykernel.kernelspec import install

    install(kernel_name="pagekit", display_name="Python (pagekit)", prefix=sys.prefix)
    return "pagekit"


_CHROMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    for name in _CHROMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def print_pdf(html_path: Path, pdf_path: Path, *, timeout: float = 180) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium (or Chrome)."""
    browser = find_chromium()
    if browser is None:
        raise PagekitError(
            f"a PDF needs headless Chromium or Chrome on PATH (e.g. `apt install chromium`); "
            f"the HTML report is at {html_path}: open it and print it to PDF"
        )
    pdf_path = Path(pdf_path).resolve()
    part = pdf_path.with_name(pdf_path.name + ".part")
    with tempfile.TemporaryDirectory(prefix="pagekit-chromium-") as profile:
        cmd = [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={part}",
            Path(html_path).resolve().as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium refuses to run as root otherwise
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            part.unlink(missing_ok=True)
            raise PagekitError(f"Chromium did not print the report in {timeout:.0f} s") from exc
    if proc.returncode != 0 or not part.exists() or part.stat().st_size == 0:
        part.unlink(missing_ok=True)
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        raise PagekitError(f"Chromium could not print the report: {' '.join(tail)}")
    part.replace(pdf_path)
    return pdf_path
