"""The HTML report: one self-contained file that opens offline and can be passed on.

Project summary, status breakdown, throughput over time, confidence distribution, the
failed pages with their errors, and a per-page table with thumbnails. Nothing is loaded
from anywhere: the CSS is inline, charts are inline SVG drawn here, thumbnails are
``data:`` URIs, and a Content-Security-Policy forbids any other source.

Three ways to the same report:

* :func:`write_report` (``pagekit report PROJECT -o report.html``) writes it directly,
  streaming the page table, so a large project never sits in memory;
* ``notebook=True`` (``--notebook``) executes ``notebooks/report.ipynb`` with papermill and
  exports it with nbconvert, without input cells;
* ``pdf=True`` (``--pdf``) prints the HTML to PDF with headless Chromium.

Aggregates come from SQL over the store (no text is loaded for them); the page table is
capped at ``max_pages`` rows because a report is read by people: every page is in
``pagekit export``.
"""

from __future__ import annotations

import base64
import html
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import func, select

from .errors import PagekitError
from .store import PAGE_STATES, Job, JobPage, Page, utcnow

if TYPE_CHECKING:
    from .client import ProjectRef

# Rows of the per-page table (with a thumbnail each, ~4 KB): about 4 MB of HTML.
MAX_PAGES = 1000
# Failed pages listed with their errors; a project where more fail has one bigger problem.
MAX_FAILED = 500
# Thumbnails are re-encoded this small for the report (the stored ones are 256 px).
THUMB_PX = 128
STATUS_COLORS = {
    "completed": "#1a7f37",
    "failed": "#cf222e",
    "processing": "#0969da",
    "queued": "#8c959f",
    "pending": "#d0d7de",
    "cancelled": "#bc4c00",
}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
NOTEBOOK = "report.ipynb"
_e = html.escape


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
    generated_at: datetime = field(default_factory=utcnow)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def pages_per_minute(self) -> float | None:
        done = self.counts["completed"] + self.counts["failed"]
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


def collect(source: Any, project: ProjectRef) -> ReportData:
    """Aggregate the project for the report: SQL counts, sums and histograms."""
    from .reports import jobs_frame

    proj = source.store.project(project)
    pid = proj.id
    counts = source.store.status_counts(pid)
    with source.store.read() as s:
        words, chars, mean_conf = s.execute(
            select(func.sum(Page.words), func.sum(Page.chars), func.avg(Page.confidence)).where(
                Page.project_id == pid, Page.status == "completed"
            )
        ).one()
        engines = s.execute(
            select(Page.engine, func.count())
            .where(Page.project_id == pid, Page.engine.is_not(None))
            .group_by(Page.engine)
            .order_by(func.count().desc())
        ).all()

        finished = (
            select(JobPage.finished_at, JobPage.state)
            .join(Job, Job.id == JobPage.job_id)
            .where(
                Job.project_id == pid,
                JobPage.state.in_(("completed", "failed")),
                JobPage.finished_at.is_not(None),
            )
        )
        lo, hi = s.execute(
            select(func.min(JobPage.started_at), func.max(JobPage.finished_at))
            .join(Job, Job.id == JobPage.job_id)
            .where(Job.project_id == pid)
        ).one()
        sub = finished.subquery()
        span_lo, span_hi = s.execute(
            select(func.min(sub.c.finished_at), func.max(sub.c.finished_at))
        ).one()
        throughput: list[tuple[datetime, int, int]] = []
        size = 1
        if span_lo is not None:
            size = _bucket_size((span_hi - span_lo).total_seconds())
            origin = _floor(span_lo, size)
            n = int((span_hi - origin).total_seconds() // size) + 1
            done = [0] * n
            bad = [0] * n
            for at, state in s.execute(finished).yield_per(5000):
                i = int((at - origin).total_seconds() // size)
                (done if state == "completed" else bad)[i] += 1
            throughput = [
                (origin + timedelta(seconds=i * size), done[i], bad[i]) for i in range(n)
            ]

        bins = [0] * 10
        conf = select(Page.confidence).where(
            Page.project_id == pid, Page.status == "completed", Page.confidence.is_not(None)
        )
        for (c,) in s.execute(conf).yield_per(5000):
            bins[min(9, max(0, int(c // 10)))] += 1
        lowest = [
            {"page_id": i, "page_number": n, "source": src, "confidence": c, "words": w}
            for i, n, src, c, w in s.execute(
                select(Page.id, Page.page_number, Page.source, Page.confidence, Page.words)
                .where(
                    Page.project_id == pid,
                    Page.status == "completed",
                    Page.confidence.is_not(None),
                )
                .order_by(Page.confidence, Page.page_number)
                .limit(10)
            )
        ]
    jobs = jobs_frame(source, pid)
    jobs = jobs.astype(object).where(jobs.notna(), None)
    return ReportData(
        project_id=pid,
        name=proj.name,
        created_at=proj.created_at,
        counts=counts,
        words=int(words or 0),
        chars=int(chars or 0),
        mean_confidence=float(mean_conf) if mean_conf is not None else None,
        engines=[(str(e), int(n)) for e, n in engines],
        jobs=jobs.to_dict("records"),
        first_start=lo,
        last_finish=hi,
        bucket_seconds=size,
        throughput=throughput,
        confidence_bins=bins,
        no_confidence=counts["completed"] - sum(bins),
        lowest=lowest,
    )


def _floor(at: datetime, seconds: int) -> datetime:
    epoch = datetime(1970, 1, 1)
    return epoch + timedelta(seconds=int((at - epoch).total_seconds() // seconds) * seconds)


# -- formatting -----------------------------------------------------------------------------


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


def _status(state: str) -> str:
    return f'<span class="pk-status pk-s-{_e(state)}">{_e(state)}</span>'


def _thumb(source: Any, key: str | None, alt: str) -> str:
    """A thumbnail as an ``<img>`` with a data: URI (re-encoded small), or nothing."""
    if not key:
        return ""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(source.blobs.get(key))) as img:
            img.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "JPEG", quality=70, optimize=True)
    except Exception:  # a missing or unreadable thumbnail must not stop the report
        return ""
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img class="pk-thumb" alt="{_e(alt)}" src="data:image/jpeg;base64,{data}">'


# -- charts (inline SVG) --------------------------------------------------------------------


def _columns_svg(
    stacks: list[list[int]],
    colors: list[str],
    tips: list[str],
    x_labels: list[tuple[int, str]],
    *,
    label: str,
    width: int = 860,
    height: int = 220,
) -> str:
    """A stacked column chart: one column per entry of ``stacks`` (bottom to top)."""
    left, right, top, bottom = 44, 10, 10, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((sum(s) for s in stacks), default=0) or 1
    col_w = plot_w / max(1, len(stacks))
    gap = min(2.0, col_w * 0.15)
    out = [
        f'<svg class="pk-chart" role="img" aria-label="{_e(label)}" '
        f'viewBox="0 0 {width} {height}">'
    ]
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        value = peak * frac
        text = _n(value, 1) if value != int(value) else _n(value)
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#d1d9e0" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>'
        )
    for i, (stack, tip) in enumerate(zip(stacks, tips, strict=True)):
        x = left + i * col_w + gap / 2
        y = top + plot_h
        out.append(f"<g><title>{_e(tip)}</title>")
        for value, color in zip(stack, colors, strict=True):
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(1.0, col_w - gap):.1f}" '
                f'height="{h:.1f}" fill="{color}"/>'
            )
        out.append("</g>")
    for i, text in x_labels:
        x = left + (i + 0.5) * col_w
        out.append(
            f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{_e(text)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _legend(items: list[tuple[str, str]]) -> str:
    spans = "".join(
        f'<span><span class="pk-swatch" style="background:{c}"></span>{_e(t)}</span>'
        for t, c in items
    )
    return f'<div class="pk-legend">{spans}</div>'


# -- sections -------------------------------------------------------------------------------


def header_html(data: ReportData) -> str:
    return (
        f"<h1>{_e(data.name)}</h1>"
        f'<p class="pk-sub">pagekit report · project {data.project_id} · generated '
        f"{_t(data.generated_at)} UTC · all times UTC</p>"
    )


def summary_html(data: ReportData) -> str:
    """The numbers a reader wants first, as cards (``data-key`` names each number)."""
    c = data.counts
    cards = [
        ("pages", "pages", _n(data.total)),
        ("completed", "completed", _n(c["completed"])),
        ("failed", "failed", _n(c["failed"])),
        ("waiting", "pending / queued / processing",
         _n(c["pending"] + c["queued"] + c["processing"])),
        ("cancelled", "cancelled", _n(c["cancelled"])),
        ("words", "words", _n(data.words)),
        ("chars", "characters", _n(data.chars)),
        ("confidence", "mean OCR confidence", _n(data.mean_confidence, 1)),
        ("rate", "pages / minute", _n(data.pages_per_minute, 1)),
    ]  # fmt: skip
    body = "".join(
        f'<div class="pk-card pk-{key}" data-key="{key}"><span class="pk-n">{value}</span>'
        f'<span class="pk-k">{_e(title)}</span></div>'
        for key, title, value in cards
    )
    engines = ", ".join(f"{_e(e)} ({_n(n)} pages)" for e, n in data.engines) or "–"
    return (
        f'<section id="summary"><div class="pk-cards">{body}</div>'
        f'<p class="pk-note">Project created {_t(data.created_at)}; processing from '
        f"{_t(data.first_start)} to {_t(data.last_finish)} in {len(data.jobs)} job(s). "
        f"Engines: {engines}.</p></section>"
    )


def status_html(data: ReportData) -> str:
    total = data.total or 1
    parts, rows = [], []
    x = 0.0
    for state in PAGE_STATES:
        n = data.counts[state]
        rows.append(
            f'<tr data-status="{state}"><td>{_status(state)}</td><td class="pk-num">{_n(n)}</td>'
            f'<td class="pk-num">{100 * n / total:.1f}%</td></tr>'
        )
        if n:
            w = 860 * n / total
            parts.append(
                f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="24" '
                f'fill="{STATUS_COLORS[state]}"><title>{state}: {_n(n)}</title></rect>'
            )
            x += w
    bar = (
        '<svg class="pk-chart" role="img" aria-label="pages by status" viewBox="0 0 860 24">'
        + "".join(parts)
        + "</svg>"
    )
    return (
        f'<section id="status"><h2>Status</h2>{bar}'
        '<table class="pk-table" style="max-width:420px"><tr><th>status</th><th>pages</th>'
        f'<th>share</th></tr>{"".join(rows)}</table></section>'
    )


def throughput_html(data: ReportData) -> str:
    head = '<section id="throughput"><h2>Throughput over time</h2>'
    if not data.throughput:
        return head + '<p class="pk-note">No page has finished processing yet.</p></section>'
    size = data.bucket_seconds
    unit = f"{size} s" if size < 60 else f"{size // 60} min" if size < 3600 else f"{size // 3600} h"
    stacks = [[done, bad] for _, done, bad in data.throughput]
    tips = [
        f"{_t(at)}: {done} completed, {bad} failed" for at, done, bad in data.throughput
    ]
    n = len(data.throughput)
    fmt = "%H:%M:%S" if size < 60 else "%m-%d %H:%M" if size < 86400 else "%Y-%m-%d"
    ticks = sorted({0, n // 2, n - 1})
    labels = [(i, data.throughput[i][0].strftime(fmt)) for i in ticks]
    svg = _columns_svg(
        stacks, [STATUS_COLORS["completed"], STATUS_COLORS["failed"]], tips, labels,
        label=f"pages finished per {unit}",
    )  # fmt: skip
    peak = max(d + b for _, d, b in data.throughput)
    return (
        head
        + svg
        + _legend([("completed", STATUS_COLORS["completed"]), ("failed", STATUS_COLORS["failed"])])
        + f'<p class="pk-note">Pages finished per {unit} (UTC); peak {_n(peak)} per {unit}, '
        f"overall {_n(data.pages_per_minute, 1)} pages per minute. Reprocessed pages count "
        "each time they finish.</p></section>"
    )


def confidence_html(data: ReportData) -> str:
    head = '<section id="confidence"><h2>OCR confidence</h2>'
    scored = sum(data.confidence_bins)
    note = (
        f"{_n(data.no_confidence)} completed page(s) have no OCR confidence (text taken from a "
        "PDF text layer, or no words found)."
        if data.no_confidence
        else ""
    )
    if not scored:
        return head + f'<p class="pk-note">No OCR confidence to show. {note}</p></section>'
    colors = ["#cf222e"] * 5 + ["#bf8700"] * 2 + ["#1a7f37"] * 3
    tips = [f"{10 * i}-{10 * i + 10}: {n} page(s)" for i, n in enumerate(data.confidence_bins)]
    labels = [(i, f"{10 * i}-{10 * i + 10}") for i in range(10)]
    # One colour per bin: each column is a stack whose only non-zero layer is its own.
    layered = [[n if j == i else 0 for j in range(10)] for i, n in enumerate(data.confidence_bins)]
    svg = _columns_svg(layered, colors, tips, labels, label="pages by mean OCR confidence")
    low = "".join(
        f'<tr><td class="pk-num">{r["page_number"]}</td><td>{_e(r["source"])}</td>'
        f'<td class="pk-num">{_n(r["confidence"], 1)}</td><td class="pk-num">{_n(r["words"])}</td>'
        "</tr>"
        for r in data.lowest
    )
    return (
        head
        + svg
        + f'<p class="pk-note">Mean Tesseract word confidence per page, {_n(scored)} page(s); '
        f"mean {_n(data.mean_confidence, 1)}. {note}</p>"
        + "<h3>Lowest confidence</h3>"
        '<table class="pk-table" style="max-width:640px"><tr><th>page</th><th>source</th>'
        f"<th>confidence</th><th>words</th></tr>{low}</table></section>"
    )


def failed_html(source: Any, data: ReportData, limit: int = MAX_FAILED) -> str:
    head = '<section id="failed"><h2>Failed pages</h2>'
    n = data.counts["failed"]
    if not n:
        return head + '<p class="pk-note">No page failed.</p></section>'
    with source.store.read() as s:
        rows = s.execute(
            select(Page.page_number, Page.source, Page.error, Page.job_id, Page.thumbnail)
            .where(Page.project_id == data.project_id, Page.status == "failed")
            .order_by(Page.page_number)
            .limit(limit)
        ).all()
    body = "".join(
        f'<tr><td class="pk-num">{num}</td><td>{_thumb(source, thumb, f"page {num}")}</td>'
        f'<td>{_e(src)}</td><td class="pk-error">{_e(err or "")}</td>'
        f"<td><code>{_e(job or '')}</code></td></tr>"
        for num, src, err, job, thumb in rows
    )
    more = f"The first {_n(limit)} of {_n(n)} failed pages." if n > limit else ""
    more = f'<p class="pk-note">{more}</p>' if more else ""
    return (
        head
        + f'<p class="pk-note">{_n(n)} page(s) failed. Retry them with '
        "<code>pagekit process PROJECT --retry-failed</code>.</p>"
        '<table class="pk-table"><tr><th>page</th><th></th><th>source</th><th>error</th>'
        f"<th>job</th></tr>{body}</table>{more}</section>"
    )


def _rate(job: dict[str, Any]) -> str:
    # A one-page job that took milliseconds has no meaningful rate.
    if not job["duration_s"] or job["duration_s"] < 1:
        return "–"
    return _n(job["pages_per_min"], 1)


def jobs_html(data: ReportData) -> str:
    if not data.jobs:
        return ""
    body = "".join(
        f"<tr><td><code>{_e(j['task_id'])}</code></td><td>{_e(j['kind'])}</td>"
        f"<td>{_status(j['status'])}</td><td class=\"pk-num\">{_n(j['total'])}</td>"
        f"<td class=\"pk-num\">{_n(j['completed'])}</td><td class=\"pk-num\">{_n(j['failed'])}</td>"
        f"<td class=\"pk-num\">{_n(j['cancelled'])}</td><td>{_t(j['started_at'])}</td>"
        f"<td class=\"pk-num\">{_duration(j['duration_s'])}</td>"
        f"<td class=\"pk-num\">{_rate(j)}</td></tr>"
        for j in data.jobs
    )
    return (
        '<section id="jobs"><h2>Jobs</h2><table class="pk-table"><tr><th>task</th><th>kind</th>'
        "<th>status</th><th>pages</th><th>completed</th><th>failed</th><th>cancelled</th>"
        f"<th>started</th><th>duration</th><th>pages/min</th></tr>{body}</table></section>"
    )


_EXCERPT = 240


def _text_cell(text: str | None) -> str:
    if not text:
        return ""
    if len(text) <= _EXCERPT:
        return _e(text)
    return f"<details><summary>{_e(text[:_EXCERPT])}…</summary>{_e(text[_EXCERPT:])}</details>"


def iter_pages_html(source: Any, data: ReportData, max_pages: int = MAX_PAGES) -> Iterator[str]:
    """The per-page table, in pieces (keyset-paginated, a few hundred rows at a time)."""
    yield (
        '<section id="pages"><h2>Pages</h2><table class="pk-table"><tr><th>page</th><th></th>'
        "<th>source</th><th>status</th><th>words</th><th>confidence</th><th>engine</th>"
        "<th>seconds</th><th>text</th></tr>"
    )
    last, shown = None, 0
    while shown < max_pages:
        q = (
            select(
                Page.page_number, Page.source, Page.source_index, Page.status, Page.words,
                Page.confidence, Page.engine, Page.timings, Page.text, Page.error,
                Page.thumbnail,
            )  # fmt: skip
            .where(Page.project_id == data.project_id)
            .order_by(Page.page_number)
            .limit(min(200, max_pages - shown))
        )
        if last is not None:
            q = q.where(Page.page_number > last)
        with source.store.read() as s:
            rows = s.execute(q).all()
        if not rows:
            break
        out = []
        for num, src, idx, status, words, conf, engine, timings, text, err, thumb in rows:
            where = f"{src} (p. {idx + 1})" if idx else src
            seconds = (timings or {}).get("total")
            text_cell = (
                f'<span class="pk-error">{_e(err)}</span>' if err else _text_cell(text)
            )
            out.append(
                f'<tr data-page="{num}"><td class="pk-num">{num}</td>'
                f"<td>{_thumb(source, thumb, f'page {num}')}</td><td>{_e(where)}</td>"
                f'<td>{_status(status)}</td><td class="pk-num">{_n(words)}</td>'
                f'<td class="pk-num">{_n(conf, 1)}</td><td>{_e(engine or "")}</td>'
                f'<td class="pk-num">{_n(seconds, 2)}</td>'
                f'<td class="pk-text">{text_cell}</td></tr>'
            )
        yield "".join(out)
        shown += len(rows)
        last = rows[-1][0]
    yield "</table>"
    if data.total > shown:
        yield (
            f'<p class="pk-note">The first {_n(shown)} of {_n(data.total)} pages. Every page, '
            "with its full text, is in <code>pagekit export</code> (CSV, Excel, Parquet, "
            "JSONL, zip of text files).</p>"
        )
    yield "</section>"


def css() -> str:
    return resources.files("pagekit").joinpath("templates", "report.css").read_text("utf-8")


def iter_html(source: Any, project: ProjectRef, *, max_pages: int = MAX_PAGES) -> Iterator[str]:
    """The whole report document, in pieces."""
    from . import __version__

    data = collect(source, project)
    yield (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(data.name)} · pagekit report</title><style>{css()}</style></head><body>"
    )
    yield header_html(data)
    yield summary_html(data)
    yield status_html(data)
    yield throughput_html(data)
    yield confidence_html(data)
    yield failed_html(source, data)
    yield jobs_html(data)
    yield from iter_pages_html(source, data, max_pages)
    yield f"<footer>Made with pagekit {_e(__version__)}.</footer></body></html>\n"


# -- writing it -----------------------------------------------------------------------------


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
                    for piece in iter_html(client, project, max_pages=max_pages):
                        fh.write(piece)
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
    body, _ = exporter.from_notebook_node(
        nb, resources={"pagekit_css": css(), "pagekit_csp": CSP}
    )
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


# -- the command ----------------------------------------------------------------------------


@click.command("report")
@click.argument("project")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Where to write it (default: <project>-report.html; a .pdf name writes a PDF only).",
)  # fmt: skip
@click.option("--notebook", is_flag=True, help="Build it by executing notebooks/report.ipynb.")
@click.option("--pdf", is_flag=True, help="Also print it to PDF (needs headless Chromium).")
@click.option(
    "--max-pages", type=int, default=MAX_PAGES, show_default=True,
    help="Rows in the per-page table (every page is in `pagekit export`).",
)  # fmt: skip
@click.pass_context
def report_command(
    ctx: click.Context, project: str, output: Path | None, notebook: bool, pdf: bool,
    max_pages: int,
) -> None:  # fmt: skip
    """Write PROJECT's report: one self-contained HTML file (optionally a PDF too)."""
    from .cli import _client

    client = _client(ctx)
    if output is None:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in project)
        output = Path(f"{safe}-report.html")
    written = write_report(
        client, project, output, notebook=notebook, pdf=pdf, max_pages=max_pages
    )
    if written.suffix == ".pdf" and output.suffix.lower() != ".pdf":
        click.echo(f"wrote {output}")
    click.echo(f"wrote {written}")
