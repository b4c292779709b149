"""``Client``: the one façade that notebooks, widgets, the CLI and the HTTP API call.

    >>> client = pagekit.Client()          # starts or reuses the embedded runtime
    >>> proj = client.create_project("letters-1891")
    >>> client.add_pages(proj, ["scan-028.jpg", "box3.pdf"])
    >>> job = client.process_pending(proj)
    >>> client.wait(job["task_id"])

With ``broker_url=`` (or ``PAGEKIT_BROKER_URL``) it joins existing infrastructure and
starts nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from . import ingest, jobs, runtime
from .blobs import BlobStore
from .celery_app import QUEUE, make_app
from .config import Settings
from .errors import IngestError, NothingToProcess, PagekitError, RuntimeUnavailable
from .store import ACTIVE, Job, Page, Store

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

ProjectRef = int | str | dict[str, Any]

PAGE_COLUMNS = [
    "page_id",
    "page_number",
    "source",
    "source_index",
    "kind",
    "status",
    "words",
    "chars",
    "confidence",
    "engine",
    "error",
    "job_id",
    "worker",
    "created_at",
    "started_at",
    "finished_at",
]


class Client:
    """Projects, pages and jobs on one pagekit installation."""

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        broker_url: str | None = None,
        database_url: str | None = None,
        blob_dir: str | Path | None = None,
        workers: int | None = None,
        start: bool = True,
        settings: Settings | None = None,
    ):
        self.settings = settings or Settings.from_env(
            home=home,
            broker_url=broker_url,
            database_url=database_url,
            blob_dir=blob_dir,
            workers=workers,
        )
        self.store = Store(self.settings.db_url)
        self.blobs = BlobStore(self.settings.blob_path)
        self.embedded = self.settings.broker_url is None
        if self.embedded:
            state = runtime.ensure(self.settings) if start else runtime.running(self.settings)
            if state is None:
                raise RuntimeUnavailable(
                    "the embedded runtime is not running; start it with `pagekit up`"
                )
            self.broker_url = state["broker_url"]
        else:
            self.broker_url = self.settings.broker_url  # type: ignore[assignment]
        self.app = make_app(self.settings, self.broker_url)

    def __repr__(self) -> str:
        where = "embedded runtime" if self.embedded else _redact(self.broker_url)
        return f"<pagekit.Client home={str(self.settings.home_abs)!r} broker={where}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release broker connections (the runtime keeps running; see :meth:`shutdown`)."""
        self.app.close()

    def shutdown(self) -> bool:
        """Stop the embedded runtime (Redis and workers) this client uses."""
        self.close()
        return runtime.stop(self.settings)

    # -- projects -----------------------------------------------------------------------

    def create_project(self, name: str, steps: list[str] | None = None) -> dict[str, Any]:
        """Create a project; ``steps`` are custom step names run after OCR on each page."""
        p = self.store.create_project(name, steps)
        return {"project_id": p.id, "name": p.name, "steps": list(p.steps or [])}

    def project(self, project: ProjectRef) -> dict[str, Any]:
        p = self.store.project(project)
        return {
            "project_id": p.id,
            "name": p.name,
            "steps": list(p.steps or []),
            "counts": self.store.status_counts(p.id),
        }

    def get_or_create_project(self, name: str, steps: list[str] | None = None) -> dict[str, Any]:
        try:
            return self.project(name)
        except PagekitError:
            return self.create_project(name, steps)

    def set_steps(self, project: ProjectRef, steps: list[str]) -> None:
        self.store.set_steps(self.store.project(project).id, steps)

    def projects(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            self.store.projects(), columns=["project_id", "name", "pages", "steps", "created_at"]
        )

    # -- pages --------------------------------------------------------------------------

    def add_pages(
        self,
        project: ProjectRef,
        items: Iterable[Any] | Any,
        *,
        page_number: int | None = None,
    ) -> list[dict[str, Any]]:
        """Add files (paths, bytes, ``(name, bytes)`` uploads or file objects).

        Returns one outcome per item: ``{"source", "status": "added" | "duplicate" |
        "rejected", "page_ids", "page_numbers", "duplicates", "error"}``. A rejected item
        stores nothing and never stops the others. ``page_number`` is for a single item;
        a multi-page file takes consecutive numbers from it.
        """
        pid = self.store.project(project).id
        if isinstance(items, (str, Path, bytes, tuple)) or hasattr(items, "read"):
            items = [items]
        items = list(items)
        if page_number is not None and len(items) != 1:
            raise ValueError("page_number is for adding a single file")
        return [self._add_one(pid, item, page_number) for item in items]

    def _add_one(self, project_id: int, item: Any, page_number: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": _item_name(item),
            "status": "rejected",
            "page_ids": [],
            "page_numbers": [],
            "duplicates": [],
            "error": None,
        }
        try:
            name, data, is_upload = ingest.load_item(item, max_bytes=self.settings.max_upload_bytes)
            out["source"] = name
            pages = ingest.split(
                data,
                name,
                max_bytes=self.settings.max_upload_bytes,
                max_pixels=self.settings.max_image_pixels,
                is_upload=is_upload,
            )
            del data
            self._insert_pages(project_id, pages, page_number, out)
        except IngestError as exc:
            out["error"] = str(exc)
            out["reason"] = exc.reason
        except PagekitError as exc:
            out["error"] = str(exc)
        return out

    def _insert_pages(
        self,
        project_id: int,
        pages: list[ingest.IngestedPage],
        page_number: int | None,
        out: dict[str, Any],
    ) -> None:
        keys = [p.sha256 for p in pages]
        try:
            with self.store.write() as s:
                existing = dict(
                    s.execute(
                        select(Page.blob, Page.id).where(
                            Page.project_id == project_id, Page.blob.in_(keys)
                        )
                    ).all()
                )
                number = page_number or self.store.next_page_number(s, project_id)
                fresh = [(p, k) for p, k in zip(pages, keys, strict=True) if k not in existing]
                if page_number is not None and fresh:
                    wanted = list(range(number, number + len(fresh)))
                    taken = list(
                        s.scalars(
                            select(Page.page_number).where(
                                Page.project_id == project_id, Page.page_number.in_(wanted)
                            )
                        )
                    )
                    if taken:
                        raise PagekitError(
                            f"{out['source']}: page number {taken[0]} is already used in this "
                            "project; choose another page number or leave it out"
                        )
                for p, key in fresh:  # bytes first: a committed row always has its blob
                    self.blobs.put(p.data, key)
                    page = Page(
                        project_id=project_id,
                        page_number=number,
                        source=p.source,
                        source_index=p.index,
                        kind=p.kind,
                        mime=p.mime,
                        blob=key,
                        size=len(p.data),
                    )
                    s.add(page)
                    s.flush()
                    out["page_ids"].append(page.id)
                    out["page_numbers"].append(number)
                    number += 1
                out["duplicates"] = [existing[k] for k in keys if k in existing]
        except IntegrityError as exc:  # a concurrent upload took the same number
            raise PagekitError(f"{out['source']}: could not add ({exc.orig}); try again") from exc
        out["status"] = "added" if out["page_ids"] else "duplicate"
        if out["status"] == "duplicate":
            out["error"] = (
                f"{out['source']}: identical content is already in this project "
                f"(page id {out['duplicates'][0]}); not stored twice"
            )

    def pages(
        self,
        project: ProjectRef,
        status: str | list[str] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> pd.DataFrame:
        """The project's pages, in page order, as a DataFrame (one row per page)."""
        import pandas as pd

        pid = self.store.project(project).id
        q = select(*[getattr(Page, c if c != "page_id" else "id") for c in PAGE_COLUMNS]).where(
            Page.project_id == pid
        )
        if status:
            q = q.where(Page.status.in_([status] if isinstance(status, str) else status))
        q = q.order_by(Page.page_number).offset(offset)
        if limit is not None:
            q = q.limit(limit)
        with self.store.read() as s:
            rows = s.execute(q).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=PAGE_COLUMNS)

    def count_pages(self, project: ProjectRef, status: str | list[str] | None = None) -> int:
        pid = self.store.project(project).id
        q = select(func.count()).select_from(Page).where(Page.project_id == pid)
        if status:
            q = q.where(Page.status.in_([status] if isinstance(status, str) else status))
        with self.store.read() as s:
            return int(s.scalar(q) or 0)

    def page(self, page_id: int, project: ProjectRef | None = None) -> dict[str, Any]:
        """One page with its full result (text, timings, custom step output)."""
        pid = self.store.project(project).id if project is not None else None
        p = self.store.page(int(page_id), pid)
        from .reports import page_row

        return {
            **page_row(p),
            "project_id": p.project_id,
            "kind": p.kind,
            "mime": p.mime,
            "timings": p.timings,
            "extra": p.extra,
            "has_thumbnail": bool(p.thumbnail),
        }

    def thumbnail(self, page_id: int) -> bytes | None:
        p = self.store.page(int(page_id))
        return self.blobs.get(p.thumbnail) if p.thumbnail else None

    def page_bytes(self, page_id: int) -> bytes:
        """The stored page itself (an image, or a one-page PDF)."""
        return self.blobs.get(self.store.page(int(page_id)).blob)

    # -- jobs: the seed contract --------------------------------------------------------

    def process_page(self, project: ProjectRef, page_id: int) -> dict[str, Any]:
        """Queue one page: ``{"task_id", "status": "queued", "page_id", "page_number"}``."""
        pid = self.store.project(project).id
        job = jobs.enqueue(self.store, self.app, pid, [int(page_id)], kind="page")
        return {
            "task_id": job["task_id"],
            "status": "queued",
            "page_id": int(page_id),
            "page_number": job["page_number"],
        }

    def process_batch(self, project: ProjectRef, page_ids: list[int]) -> dict[str, Any]:
        """Queue pages: ``{"task_id", "status": "queued", "total_pages", "page_ids"}``."""
        pid = self.store.project(project).id
        job = jobs.enqueue(self.store, self.app, pid, page_ids)
        return {
            "task_id": job["task_id"],
            "status": "queued",
            "total_pages": len(job["page_ids"]),
            "page_ids": job["page_ids"],
        }

    def process_pending(self, project: ProjectRef) -> dict[str, Any]:
        """"Process All Pending": queue every page that has not been processed yet."""
        p = self.store.project(project)
        ids = self.store.page_ids(p.id, ["pending"])
        if not ids:
            raise NothingToProcess(
                f"no pending pages in project {p.name!r}; "
                "add pages first, or use retry_failed / process_batch to reprocess"
            )
        return self.process_batch(p.id, ids)

    def retry_failed(self, project: ProjectRef) -> dict[str, Any]:
        """Queue the project's failed and cancelled pages again."""
        pid = self.store.project(project).id
        ids = self.store.page_ids(pid, ["failed", "cancelled"])
        if not ids:
            raise NothingToProcess("no failed or cancelled pages to retry")
        return self.process_batch(pid, ids)

    def status(self, task_id: str) -> dict[str, Any]:
        """The seed status: ``current``/``total`` while running, ``result`` when done."""
        return jobs.status(self.store, task_id)

    def cancel(self, task_id: str) -> dict[str, Any]:
        """Cancel a job: queued pages are cancelled now, running ones at their next step."""
        return jobs.cancel(self.store, task_id)

    def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        progress: bool = True,
        interval: float | None = None,
    ) -> dict[str, Any]:
        """Block until the job finishes (with a progress bar) and return its status."""
        from .progress import JobPoller, TextProgressBar

        if interval is None:
            interval = min(self.settings.poll_interval, 1.0)
        poller = (TextProgressBar if progress else JobPoller)(self, task_id, interval)
        return poller.run(timeout=timeout)

    def jobs(self, project: ProjectRef | None = None) -> pd.DataFrame:
        """One row per job: status, totals, started, finished, duration, pages/min."""
        from .reports import jobs_frame

        return jobs_frame(self, project)

    def job_ids(self, project: ProjectRef | None = None, *, active: bool = False) -> list[str]:
        """Job ids, newest first; ``active=True`` keeps the unfinished ones (to re-attach)."""
        q = select(Job.id).order_by(Job.created_at.desc())
        if project is not None:
            q = q.where(Job.project_id == self.store.project(project).id)
        with self.store.read() as s:
            ids = list(s.scalars(q))
        if active:
            ids = [i for i in ids if jobs.job_state(*jobs.counts(self.store, i)) in ACTIVE]
        return ids

    # -- results --------------------------------------------------------------------------

    def results(self, project: ProjectRef) -> pd.DataFrame:
        """One row per page with its text and every result field."""
        from .reports import results_frame

        return results_frame(self, project)

    def export(self, project: ProjectRef, path: str | Path, format: str | None = None) -> Path:
        """Write the project's results to ``path`` (csv, jsonl, parquet, xlsx, zip)."""
        from .reports import export

        return export(self, project, path, format)

    def report(
        self,
        project: ProjectRef,
        path: str | Path,
        *,
        notebook: bool = False,
        pdf: bool = False,
        max_pages: int = 1000,
    ) -> Path:
        """Write the self-contained HTML report (``pdf=True``: a PDF next to it) to ``path``."""
        from .report_html import write_report

        return write_report(self, project, path, notebook=notebook, pdf=pdf, max_pages=max_pages)

    # -- workers and health ---------------------------------------------------------------

    def workers(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        """Workers answering on the broker: name, concurrency, active and processed tasks."""
        inspect = self.app.control.inspect(timeout=timeout)
        stats = inspect.stats() or {}
        active = inspect.active() or {}
        out = []
        for name, st in sorted(stats.items()):
            pool = st.get("pool", {})
            out.append(
                {
                    "name": name,
                    "concurrency": pool.get("max-concurrency"),
                    "processes": pool.get("processes", []),
                    "active": len(active.get(name, [])),
                    "processed": sum((st.get("total") or {}).values()),
                    "pid": st.get("pid"),
                }
            )
        return out

    def queue_depth(self) -> int:
        """Messages waiting in the pagekit queue on the broker."""
        from kombu.exceptions import ChannelError

        with self.app.connection_for_read() as conn, conn.channel() as channel:
            try:
                _, count, _ = channel.queue_declare(queue=QUEUE, passive=True)
            except ChannelError:  # no such queue yet: nothing was ever queued
                return 0
            return int(count)

    def reconcile(self) -> list[tuple[str, int]]:
        """Re-queue pages stuck without a live task (see :func:`pagekit.jobs.reconcile`)."""
        idle = False
        try:
            inspect = self.app.control.inspect(timeout=1.0)
            active, reserved = inspect.active(), inspect.reserved()
            busy = any((active or {}).values()) or any((reserved or {}).values())
            idle = active is not None and not busy and self.queue_depth() == 0
        except Exception as exc:  # the broker is down: only the time rule applies
            log.warning("reconcile: cannot inspect workers (%s)", exc)
        return jobs.reconcile(self.store, self.app, self.settings, idle=idle)

    def wait_for_workers(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        return runtime.wait_worker(self.broker_url, timeout)


def _item_name(item: Any) -> str:
    if isinstance(item, (str, Path)):
        return Path(item).name
    if isinstance(item, tuple) and item:
        return str(item[0])
    return str(getattr(item, "name", "upload"))


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url

