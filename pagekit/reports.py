"""Results as pandas DataFrames, and exports that stream (CSV, JSONL, Parquet, Excel,
a zip of text files).

Exports read the store in chunks of pages in page order, so a 100,000-page project
never needs all its text in memory at once. The HTML report is in ``report_html``.

Custom steps' outputs (``Page.extra``, by step name) become columns of their own after
``contract.RESULT_COLUMNS``, in ``results()`` and in every tabular export (CSV, JSONL,
Parquet, Excel) alike: ``{"upper_words": {"count": 3}}`` is a column
``extra.upper_words.count``, nested dicts are followed down (``extra.step.a.b``) and a list
is one JSON string (``'[1891, 1923]'``). A page a step did not run on has no value
there. JSONL lines carry the same flat keys as the CSV header, not a nested ``extra``.
Streaming exports learn the step columns first, from a pass over ``extra`` alone (no text
read); Parquet types a step column by its values (bool, int, float; mixed: string).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .contract import (
    EXPORT_FORMATS,
    EXTRA_PREFIX,
    FINISHED,
    JOB_COLUMNS,
    MANIFEST_COLUMNS,
    RESULT_COLUMNS,
    RUNNING_JOB,
    PageState,
)
from .errors import PagekitError
from .store import reporting
from .store.reporting import result_row as page_row

if TYPE_CHECKING:
    import pandas as pd

    from .client import Client, ProjectRef

__all__ = ["RESULT_COLUMNS", "JOB_COLUMNS", "FORMATS", "export", "extra_columns",
           "flatten_extra", "iter_results", "jobs_frame", "page_row",
           "results_frame"]  # fmt: skip

# Pages read from the store per round trip by every export.
CHUNK = 500
# ... and by results(), which holds every row in its frame anyway: fewer round trips.
FRAME_CHUNK = 2000


def flatten_extra(extra: dict[str, Any] | None) -> dict[str, Any]:
    """A page's custom step outputs as ``extra.<step>.<key>`` columns (see the module doc).

    >>> flatten_extra({"upper_words": {"count": 3, "top": ["A", "B"]}})
    {'extra.upper_words.count': 3, 'extra.upper_words.top': '["A", "B"]'}
    """
    out: dict[str, Any] = {}

    def walk(name: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{name}.{key}", inner)
        elif isinstance(value, list):
            out[name] = json.dumps(value, ensure_ascii=False)
        else:
            out[name] = value

    for step, value in (extra or {}).items():
        walk(f"{EXTRA_PREFIX}{step}", value)
    return out


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A store result row with its ``extra`` dict replaced by its step columns."""
    extra = row.pop("extra", None)
    row.update(flatten_extra(extra))
    return row


def iter_results(
    client: Client,
    project: ProjectRef,
    chunk: int | None = None,
    *,
    needs_review: bool | None = None,
    states: list[PageState] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[list[dict]]:
    """Chunks of result rows in page order (keyset pagination: constant memory).

    A row has the keys of ``RESULT_COLUMNS`` and the ``extra.*`` step columns that page has
    values for; ``needs_review`` keeps only pages flagged (True) or not (False), ``states``
    the pages in those states; ``limit`` rows (None: all) from ``offset``.
    """
    chunk = chunk or CHUNK
    pid = client.store.project(project).id
    last = None
    while limit is None or limit > 0:
        size = chunk if limit is None else min(chunk, limit)
        rows = reporting.result_rows(
            client.store,
            pid,
            after=last,
            limit=size,
            needs_review=needs_review,
            states=states,
            offset=offset if last is None else 0,
        )
        if not rows:
            return
        last = rows[-1]["page_number"]
        if limit is not None:
            limit -= len(rows)
        yield [_flat(r) for r in rows]
        if len(rows) < size:
            return


def _kind(seen: set[type]) -> str:
    """What a step column holds, for a typed format (Parquet), from its values' types."""
    if seen == {bool}:
        return "bool"
    if seen and seen <= {int}:
        return "int"
    if seen and seen <= {int, float}:
        return "float"
    return "string"  # text, JSON lists, a mix of types, or no value at all


def extra_columns(
    client: Client, project: ProjectRef, *, needs_review: bool | None = None
) -> dict[str, str]:
    """The project's ``extra.*`` step columns, in the order pages first show them, each
    with the kind of its values (``bool``, ``int``, ``float`` or ``string``).

    One pass over the steps' outputs alone, in chunks: what a streaming export reads
    before it writes a header or a schema.
    """
    pid = client.store.project(project).id
    seen: dict[str, set[type]] = {}
    for extra in reporting.iter_extras(client.store, pid, needs_review=needs_review):
        for column, value in flatten_extra(extra).items():
            types = seen.setdefault(column, set())
            if value is not None:
                types.add(type(value))
    return {column: _kind(types) for column, types in seen.items()}


# A step value a page does not have: NaN, as pandas gives a key a row's dict lacks.
_MISSING = float("nan")


def results_frame(
    client: Client,
    project: ProjectRef,
    *,
    needs_review: bool | None = None,
    states: list[PageState] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> pd.DataFrame:
    """One row per page: ``RESULT_COLUMNS``, then the ``extra.*`` step columns.

    Read in chunks, each turned into columns as it comes: a chunk's rows are the only
    rows held at a time, beside the columns of the frame being made.
    """
    import pandas as pd

    columns: dict[str, list[Any]] = {name: [] for name in RESULT_COLUMNS}
    steps: dict[str, list[Any]] = {}  # in the order pages first show them
    rows = 0
    for part in iter_results(
        client,
        project,
        FRAME_CHUNK,
        needs_review=needs_review,
        states=states,
        limit=limit,
        offset=offset,
    ):
        for name, values in columns.items():
            values.extend([r[name] for r in part])
        found = dict.fromkeys(
            key
            for r in part
            if len(r) > len(RESULT_COLUMNS)  # its own step columns after the others
            for key in r
            if key.startswith(EXTRA_PREFIX)
        )
        for name in found:
            steps.setdefault(name, [_MISSING] * rows)
        for name, values in steps.items():
            values.extend([r.get(name, _MISSING) for r in part] if name in found else
                          [_MISSING] * len(part))  # fmt: skip
        rows += len(part)
    return pd.DataFrame({**columns, **steps}, columns=[*RESULT_COLUMNS, *steps])


def jobs_frame(
    client: Client, project: ProjectRef | None = None, task_id: str | None = None
) -> pd.DataFrame:
    """One row per job, newest first (only ``task_id``'s when given)."""
    import pandas as pd

    from .jobs import job_state

    pid = client.store.project(project).id if project is not None else None
    rows = []
    for stats in reporting.job_stats(client.store, pid, task_id):
        job, c = stats.job, stats.counts
        status = job_state(job, c)
        started = stats.started_at
        finished = stats.finished_at if status not in RUNNING_JOB else None
        duration = (finished - started).total_seconds() if started and finished else None
        done = c[PageState.COMPLETED] + c[PageState.FAILED]
        rows.append(
            {
                "task_id": job.id,
                "project_id": job.project_id,
                "kind": job.kind,
                "status": str(status),
                "total": job.total,
                **{str(state): c[state] for state in FINISHED},
                "created_at": job.created_at,
                "started_at": started,
                "finished_at": finished,
                "duration_s": duration,
                "pages_per_min": (done / duration * 60) if duration else None,
            }
        )
    return pd.DataFrame(rows, columns=list(JOB_COLUMNS))


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass(frozen=True)
class _Source:
    """What a writer reads: the project's rows, chunk by chunk, in page order."""

    client: Client
    project_id: int

    def chunks(self) -> Iterator[list[dict]]:
        """Rows as :func:`iter_results` gives them (a page's own step columns only)."""
        return iter_results(self.client, self.project_id)

    @cached_property
    def extra(self) -> dict[str, str]:
        """The step columns and their kinds (:func:`extra_columns`), read once."""
        return extra_columns(self.client, self.project_id)

    @property
    def columns(self) -> list[str]:
        """Every column of a tabular export: ``RESULT_COLUMNS``, then the step columns."""
        return [*RESULT_COLUMNS, *self.extra]

    def last_page_number(self) -> int:
        return reporting.last_page_number(self.client.store, self.project_id)


def export(
    client: Client, project: ProjectRef, path: str | Path, format: str | None = None
) -> Path:
    """Write results to ``path``; the format is ``format`` or the file's extension.

    Formats: ``csv``, ``jsonl``, ``parquet``, ``xlsx`` (Excel), ``zip`` (one UTF-8
    ``.txt`` per page plus the whole text in page order), ``pdf`` (one searchable PDF,
    :mod:`pagekit.searchable_pdf`), ``hocr`` and ``alto`` (a zip of one hOCR or ALTO v4
    file per page, :mod:`pagekit.layout_xml`). The file appears under its real name only
    when it is complete.
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    fmt = _ALIASES.get(fmt, fmt)
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise PagekitError(
            f"unknown export format {fmt!r} for {path.name}; use one of {', '.join(_WRITERS)}"
        )
    source = _Source(client, client.store.project(project).id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        writer(source, tmp)
        tmp.replace(path)  # never leave half a file under the real name
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_csv(source: _Source, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        # A step column first seen after the header was written (a page finished
        # meanwhile) is left out of this file rather than failing it.
        w = csv.DictWriter(fh, fieldnames=source.columns, extrasaction="ignore")
        w.writeheader()
        for chunk in source.chunks():
            w.writerows({k: _jsonable(v) for k, v in r.items()} for r in chunk)


def _write_jsonl(source: _Source, path: Path) -> None:
    columns = source.columns  # every line has every key, as the CSV has every column
    with path.open("w", encoding="utf-8") as fh:
        for chunk in source.chunks():
            for r in chunk:
                line = {c: _jsonable(r.get(c)) for c in columns}
                fh.write(json.dumps(line, ensure_ascii=False))
                fh.write("\n")


def _write_parquet(source: _Source, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("page_id", pa.int64()),
            ("page_number", pa.int64()),
            ("source", pa.string()),
            ("source_index", pa.int64()),
            ("status", pa.string()),
            ("text", pa.string()),
            ("confidence", pa.float64()),
            ("words", pa.int64()),
            ("chars", pa.int64()),
            ("engine", pa.string()),
            ("language", pa.string()),
            ("text_source", pa.string()),
            ("text_source_reason", pa.string()),
            ("rotation", pa.int64()),
            ("skew", pa.float64()),
            ("width", pa.int64()),
            ("height", pa.int64()),
            ("seconds", pa.float64()),
            ("needs_review", pa.bool_()),
            ("review_reason", pa.string()),
            ("error", pa.string()),
            ("job_id", pa.string()),
            ("worker", pa.string()),
            ("finished_at", pa.timestamp("us")),
        ]
    )
    types = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "string": pa.string()}
    for column, kind in source.extra.items():
        schema = schema.append(pa.field(column, types[kind]))
    # A step column of mixed values is text: anything not a string is written as JSON.
    mixed = [c for c, kind in source.extra.items() if kind == "string"]

    def typed(r: dict[str, Any]) -> dict[str, Any]:
        for c in mixed:
            v = r.get(c)
            if v is not None and not isinstance(v, str):
                r[c] = json.dumps(v)
        return r

    with pq.ParquetWriter(path, schema) as writer:
        for chunk in source.chunks():
            writer.write_table(pa.Table.from_pylist([typed(r) for r in chunk], schema=schema))


# Excel refuses a cell longer than this; longer text is cut with a note saying so.
XLSX_MAX_CELL = 32_767
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # XML 1.0 forbids these
_XLSX_WIDTHS = {"source": 24, "text": 80, "error": 40, "job_id": 38, "finished_at": 20,
                "text_source_reason": 40, "review_reason": 40}  # fmt: skip


def _xlsx_text(value: str) -> str:
    value = _XLSX_ILLEGAL.sub("", value)
    if len(value) > XLSX_MAX_CELL:
        note = f" [... cut at Excel's cell limit; {len(value)} characters in the other exports]"
        value = value[: XLSX_MAX_CELL - len(note)] + note
    return value


def _write_xlsx(source: _Source, path: Path) -> None:
    """Excel, written row by row (openpyxl write-only mode keeps no rows in memory).

    Text goes in as inline strings, never as formulas, so OCR text that starts with
    ``=`` stays text. Times are UTC.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    bold = Font(bold=True)

    def sheet(title: str, columns: Sequence[str], rows: Iterator[list[Any]]) -> None:
        ws = wb.create_sheet(title)
        ws.freeze_panes = "A2"
        for i, col in enumerate(columns, start=1):
            ws.column_dimensions[get_column_letter(i)].width = _XLSX_WIDTHS.get(col, 12)
        header = []
        for col in columns:
            cell = WriteOnlyCell(ws, value=col)
            cell.font = bold
            header.append(cell)
        ws.append(header)
        for values in rows:
            row: list[Any] = []
            for v in values:
                if isinstance(v, str):
                    cell = WriteOnlyCell(ws, value=_xlsx_text(v))
                    cell.data_type = "s"  # a string, even when it starts with "="
                    row.append(cell)
                else:
                    row.append(v)
            ws.append(row)

    columns = source.columns

    def page_rows() -> Iterator[list[Any]]:
        for chunk in source.chunks():
            for r in chunk:
                yield [r.get(c) for c in columns]

    sheet("pages", columns, page_rows())
    jobs = jobs_frame(source.client, source.project_id)
    jobs = jobs.astype(object).where(jobs.notna(), None)
    sheet("jobs", list(jobs.columns), (list(r) for r in jobs.itertuples(index=False)))
    wb.save(path)


# The text bundle: names inside the zip.
TEXT_DIR = "pages"
TEXT_COMBINED = "all-pages.txt"
TEXT_MANIFEST = "manifest.csv"


def _write_text_zip(source: _Source, path: Path) -> None:
    """A zip: ``pages/0001.txt`` per page (UTF-8), ``all-pages.txt`` with every page's
    text in page order under a ``=== page N ===`` line, and ``manifest.csv``
    (``contract.MANIFEST_COLUMNS``: the page, its file and status, and its review flag).

    One pass over the store: page files go straight into the zip; the combined text and
    the manifest grow in temporary files (spilled to disk when large) and are copied in
    at the end, since a zip takes one open entry at a time.
    """
    width = max(4, len(str(source.last_page_number())))
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        _spool() as combined,
        _spool() as manifest,
    ):
        m = csv.writer(manifest, lineterminator="\n")
        m.writerow(MANIFEST_COLUMNS)
        first = True
        for chunk in source.chunks():
            for r in chunk:
                name = f"{TEXT_DIR}/{r['page_number']:0{width}d}.txt"
                text = r["text"] or ""
                zf.writestr(name, text.encode("utf-8"))
                m.writerow(
                    [r["page_number"], name, r["source"], r["status"], r["words"],
                     r["confidence"], r["text_source"] or "", r["needs_review"],
                     r["review_reason"] or "", r["error"] or ""]
                )  # fmt: skip
                if not first:
                    combined.write("\n\n")
                first = False
                combined.write(f"=== page {r['page_number']} ({r['source']}) ===\n")
                if r["status"] != PageState.COMPLETED:
                    combined.write(f"[{r['status']}{': ' + r['error'] if r['error'] else ''}]\n")
                combined.write(text)
        combined.write("\n")
        for name, spool in ((TEXT_COMBINED, combined), (TEXT_MANIFEST, manifest)):
            spool.seek(0)
            with zf.open(name, "w") as out, io.TextIOWrapper(out, encoding="utf-8") as text_out:
                shutil.copyfileobj(spool, text_out)


def _spool() -> IO[str]:
    # In memory up to 16 MiB, then on disk.
    return tempfile.SpooledTemporaryFile(
        max_size=16 * 1024 * 1024, mode="w+", encoding="utf-8", newline=""
    )


def _write_pdf(source: _Source, path: Path) -> None:
    from .searchable_pdf import write_pdf

    write_pdf(source.client, source.project_id, path)


def _write_layout_zip(fmt: str) -> Callable[[_Source, Path], None]:
    def write(source: _Source, path: Path) -> None:
        from .layout_xml import write_zip

        write_zip(source.client, source.project_id, path, fmt)

    return write


_WRITERS: dict[str, Callable[[_Source, Path], None]] = {
    "csv": _write_csv,
    "jsonl": _write_jsonl,
    "parquet": _write_parquet,
    "xlsx": _write_xlsx,
    "zip": _write_text_zip,
    "pdf": _write_pdf,
    "hocr": _write_layout_zip("hocr"),
    "alto": _write_layout_zip("alto"),
}
_ALIASES = {"excel": "xlsx", "ndjson": "jsonl", "text": "zip"}
FORMATS = EXPORT_FORMATS
assert set(_WRITERS) == set(FORMATS), "contract.EXPORT_FORMATS and the writers differ"
