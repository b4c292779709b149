"""One error tree rooted at :class:`PagekitError`.

Every error says what went wrong and how to fix it. Each entry point maps an error by
its type: the CLI prints ``str(error)`` on one line and exits with ``error.exit_code``,
the HTTP API answers ``error.http_status`` with ``{"detail": str(error)}``, the widgets
show the message.
"""

from __future__ import annotations


class PagekitError(Exception):
    """Base of every error pagekit raises on purpose."""

    exit_code = 1
    http_status = 409  # the request conflicts with the current state


class ConfigError(PagekitError):
    """A setting is missing or malformed."""

    exit_code = 2
    http_status = 500


class InvalidInput(PagekitError, ValueError):
    """An argument a user typed breaks a rule (the same rule in the CLI, API and widgets)."""

    exit_code = 2
    http_status = 422


class InvalidProjectName(InvalidInput):
    """A project name is empty, too long or has control characters."""


class InvalidPageNumber(InvalidInput):
    """A page number is not a whole number in range, or is given for several files."""


class InvalidPageSelection(InvalidInput):
    """A page selection such as ``1,2,5`` or ``3-9`` cannot be read or names no page."""


class UnknownStatus(InvalidInput):
    """A page state that does not exist (see :class:`pagekit.contract.PageState`)."""


class InvalidLanguage(InvalidInput):
    """A language is not a Tesseract language code such as ``eng`` or ``chi_sim``."""


class MissingLanguage(InvalidInput):
    """A language has no Tesseract data here; the message names the pip package to install."""

    def __init__(self, languages: list[str], tessdata: str, message: str):
        self.languages = languages  # the codes with no .traineddata, e.g. ["tha"]
        self.tessdata = tessdata  # the directory that was searched
        super().__init__(message)


class InvalidOcrMode(InvalidInput):
    """An OCR mode other than ``auto``, ``force`` or ``text-only``."""


class InvalidReviewThreshold(InvalidInput):
    """A review threshold that is not a number from 0 to 100."""


class InvalidSearchQuery(InvalidInput):
    """A search query that is empty, too long, or only leaves pages out."""


class RuntimeUnavailable(PagekitError):
    """The broker or the embedded runtime cannot be reached or started."""

    exit_code = 3
    http_status = 503


class WaitTimeout(PagekitError, TimeoutError):
    """``wait()`` gave up before the job finished (the job itself goes on)."""

    exit_code = 6


class NoWorker(RuntimeUnavailable, TimeoutError):
    """A job waits, and no worker has sent a heartbeat for a while."""


class DatabaseUnavailable(PagekitError):
    """The database cannot be reached, or another process holds its write lock."""

    exit_code = 3
    http_status = 503

    def __init__(self, message: str, *, url: str | None = None):
        self.url = url  # the database URL, password redacted
        super().__init__(message)


class NotFound(PagekitError):
    """Something asked for by id or name does not exist."""

    exit_code = 4
    http_status = 404


class NoSuchProject(NotFound):
    """No project with that id or name."""

    def __init__(self, project: object):
        self.project = project
        super().__init__(f"no such project: {project!r}; list projects with `pagekit project list`")


class NoSuchPage(NotFound):
    """No page with that id (in that project)."""

    def __init__(self, page_id: object, project_id: object | None = None):
        self.page_id = page_id
        self.project_id = project_id
        where = f" in project {project_id}" if project_id is not None else ""
        super().__init__(f"no such page: {page_id!r}{where}")


class NoSuchTask(NotFound):
    """No job with that task id (never a silent "pending")."""

    def __init__(self, task_id: object):
        self.task_id = task_id
        super().__init__(
            f"no such task: {task_id!r}; task ids come from process/process-batch responses"
        )


class ProjectExists(PagekitError):
    """A project with that name already exists."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"project {name!r} already exists; use it, or pick another name")


class NothingToProcess(PagekitError):
    """A request to process found no pages to queue."""

    exit_code = 0  # nothing to do is not a failure: the CLI says "nothing to process: ..."
    http_status = 409  # the project's current state (no pending page), not the request


class PageNumberTaken(PagekitError):
    """A page number asked for is already used in the project."""

    reason = "page number taken"


class PageBusy(PagekitError):
    """Pages asked for are queued or processing in another task."""

    def __init__(
        self, page_ids: list[int], task_id: str | None, page_numbers: list[int] | None = None
    ):
        self.page_ids = page_ids
        self.page_numbers = page_numbers  # what the message names, when known
        self.task_id = task_id
        named = page_numbers if page_numbers is not None else page_ids
        shown = ", ".join(str(p) for p in named[:10]) + (" ..." if len(named) > 10 else "")
        what = "page number(s)" if page_numbers is not None else "page(s)"
        super().__init__(self._message(f"{what} {shown}"))

    def _message(self, pages: str) -> str:
        return (
            f"{pages} are already queued or processing (task {self.task_id}); "
            "wait for that task or cancel it first"
        )


class PageInUse(PageBusy):
    """Pages to delete are queued or processing in a task; nothing was deleted."""

    def __init__(
        self,
        page_ids: list[int],
        task_id: str | None,
        page_numbers: list[int] | None = None,
        what: str = "these pages",
    ):
        self.what = what  # "these pages", "project 'scans'"
        super().__init__(page_ids, task_id, page_numbers)

    def _message(self, pages: str) -> str:
        task = f"task {self.task_id}" if self.task_id else "a task"
        cancel = f" (`pagekit task cancel {self.task_id}`)" if self.task_id else ""
        return (
            f"cannot delete {self.what}: {pages} are queued or processing in {task}; "
            f"wait for it to finish or cancel it{cancel}, then delete again"
        )


AlreadyQueued = PageBusy  # the name before 0.2


class IngestError(PagekitError):
    """A file or upload was refused; nothing of it was stored."""

    exit_code = 5
    http_status = 422
    reason = "refused"

    def __init__(self, source: str, message: str, *, limit: int | None = None):
        self.source = source
        self.limit = limit
        self.message = message
        super().__init__(f"{source}: {message}")


class EmptyFile(IngestError):
    """The file has no bytes."""

    reason = "empty"


class UnsupportedType(IngestError):
    """The bytes are not a supported image or PDF (whatever the file name says)."""

    http_status = 415
    reason = "unsupported type"


class FileTooLarge(IngestError):
    """The file is over the upload limit."""

    http_status = 413
    reason = "too large"


class DecompressionBomb(IngestError):
    """The image has more pixels than the limit allows."""

    reason = "too many pixels"


class CorruptFile(IngestError):
    """The file is truncated or damaged and cannot be read."""

    reason = "corrupt"


class EncryptedPDF(IngestError):
    """The PDF needs a password."""

    reason = "encrypted"


class BadFileName(IngestError):
    """The upload's file name contains a path or control characters."""

    reason = "bad file name"


class StepNotFound(PagekitError):
    """A project names a processing step that is not registered (a page fails with it)."""

    def __init__(self, name: str | list[str], known: list[str]):
        self.names = [name] if isinstance(name, str) else list(name)
        self.name = self.names[0]
        shown = ", ".join(repr(n) for n in self.names)
        super().__init__(
            f"no processing step named {shown} (known: {', '.join(sorted(known)) or 'none'}); "
            "register it with @pagekit.step, the pagekit.steps entry point, or "
            "PAGEKIT_STEP_MODULES on the workers"
        )


class UnknownStep(StepNotFound, InvalidInput):
    """The same, found when the project is created: refused as bad input (exit 2, 422)."""


class ProcessingError(PagekitError):
    """A page could not be processed (the page is marked failed with this message)."""


class SearchUnavailable(PagekitError):
    """The database cannot run full-text search (SQLite without FTS5, another database)."""

    http_status = 501


def _with_subclasses(cls: type[PagekitError]) -> list[type[PagekitError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _with_subclasses(sub))]


# A refused file's ``reason`` -> the HTTP status of its error (the API's upload route).
REASON_STATUS: dict[str, int] = {
    cls.reason: cls.http_status  # type: ignore[attr-defined]
    for cls in _with_subclasses(PagekitError)
    if "reason" in vars(cls)
}
