"""Results as pandas DataFrames, and exports that stream (CSV, JSONL, Parquet).

Exports read the store in chunks of pages in page order, so a 100,000-page project
never needs all its text in memory at once.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from .errors import PagekitError
from .store import Job, JobPage, Page

if TYPE_CHECKING:
    import pandas as pd

    from .client import Client, ProjectRef

RESULT_COLUMNS = [
    "page_id",
    "page_number",
    "source",
    "source_index",
    "status",
    "text",
    "confidence",
    "words",
    "chars",
    "engine",
    "language",
    "width",
    "height",
    "seconds",
    "error",
    "job_id",
    "worker",
    "finished_at",
]
CHUNK = 500


def _row(p: Page) -> dict[str, Any]:
    timings = p.timings or {}
    return {
        "page_id": p.id,
        "page_number": p.page_number,
        "source": p.source,
        "source_index": p.source_index,
        "status": p.status,
        "text": p.text,
        "confidence": p.confidence,
        "words": p.words,
        "chars": p.chars,
        "engine": p.engine,
        "language": p.language,
        "width": p.width,
        "height": p.height,
        "seconds": timings.get("total"),
        "error": p.error,
        "job_id": p.job_id,
        "worker": p.worker,
        "finished_at": p.finished_at,
    }


def iter_results(client: Client, project: ProjectRef, chunk: int = CHUNK) -> Iterator[list[dict]]:
    """Chunks of result rows in page order (keyset pagination: constant memory)."""
    pid = client.store.project(project).id
    last = None
    while True:
        q = select(Page).where(Page.project_id == pid).order_by(Page.page_number).limit(chunk)
        if last is not None:
            q = q.where(Page.page_number > last)
        with client.store.read() as s:
            rows = [_row(p) for p in s.scalars(q)]
        if not rows:
            return
        yield rows
        last = rows[-1]["page_number"]


def results_frame(client: Client, project: ProjectRef) -> pd.DataFrame:
    import pandas as pd

    rows = [r for chunk in iter_results(client, project) for r in chunk]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def jobs_frame(client: Client, project: ProjectRef | None = None) -> pd.DataFrame:
    """One row per job, newest first."""
    import pandas as pd

    from .jobs import job_state

    q = select(Job).order_by(Job.created_at.desc())
    if project is not None:
        q = q.where(Job.project_id == client.store.project(project).id)
    rows = []
    with client.store.read() as s:
        for job in s.scalars(q):
            agg = s.execute(
                select(
                    JobPage.state,
                    func.count(),
                    func.min(JobPage.started_at),
                    func.max(JobPage.finished_at),
                )
                .where(JobPage.job_id == job.id)
                .group_by(JobPage.state)
            ).all()
            c = {st: 0 for st in ("queued", "processing", "completed", "failed", "cancelled")}
            starts, ends = [], []
            for state, n, st, en in agg:
                c[state] = n
                starts += [st] if st else []
                ends += [en] if en else []
            status = job_state(job, c)
            started = min(starts) if starts else None
            finished = max(ends) if ends and status not in ("queued", "processing") else None
            duration = (finished - started).total_seconds() if started and finished else None
            done = c["completed"] + c["failed"]
            rows.append(
                {
                    "task_id": job.id,
                    "project_id": job.project_id,
                    "kind": job.kind,
                    "status": status,
                    "total": job.total,
                    "completed": c["completed"],
                    "failed": c["failed"],
                    "cancelled": c["cancelled"],
                    "created_at": job.created_at,
                    "started_at": started,
                    "finished_at": finished,
                    "duration_s": duration,
                    "pages_per_min": (done / duration * 60) if duration else None,
                }
            )
    columns = [
        "task_id", "project_id", "kind", "status", "total", "completed", "failed",
        "cancelled", "created_at", "started_at", "finished_at", "duration_s", "pages_per_min",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def export(
    client: Client, project: ProjectRef, path: str | Path, format: str | None = None
) -> Path:
    """Write results to ``path``; the format is ``format`` or the file's extension."""
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise PagekitError(
            f"unknown export format {fmt!r} for {path.name}; use one of {', '.join(_WRITERS)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    writer(iter_results(client, project), tmp)
    tmp.replace(path)  # never leave half a file under the real name
    return path


def _write_csv(chunks: Iterator[list[dict]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS)
        w.writeheader()
        for chunk in chunks:
            w.writerows({k: _jsonable(v) for k, v in r.items()} for r in chunk)


def _write_jsonl(chunks: Iterator[list[dict]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for chunk in chunks:
            for r in chunk:
                fh.write(json.dumps({k: _jsonable(v) for k, v in r.items()}, ensure_ascii=False))
                fh.write("\n")


def _write_parquet(chunks: Iterator[list[dict]], path: Path) -> None:
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
            ("width", pa.int64()),
            ("height", pa.int64()),
            ("seconds", pa.float64()),
            ("error", pa.string()),
            ("job_id", pa.string()),
            ("worker", pa.string()),
            ("finished_at", pa.timestamp("us")),
        ]
    )
    with pq.ParquetWriter(path, schema) as writer:
        for chunk in chunks:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))


_WRITERS = {"csv": _write_csv, "jsonl": _write_jsonl, "parquet": _write_parquet}
FORMATS = tuple(_WRITERS)
