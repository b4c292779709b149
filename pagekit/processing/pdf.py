"""PDF pages through pypdfium2: open, read the text layer, render.

Workers call PDFium only in a child process under a memory cap: one long-lived helper
per worker process (:func:`served`), or a child per call (:func:`capped`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Any, TypeVar

import pypdfium2 as pdfium
from PIL import Image

from ..contract import OcrMode
from ..errors import CorruptFile, EncryptedPDF, ProcessingError
from . import _sandbox, textcheck

T = TypeVar("T")

POINTS_PER_INCH = 72


def open_document(data: bytes, source: str) -> pdfium.PdfDocument:
    """Open PDF bytes, turning PDFium's failures into CorruptFile or EncryptedPDF."""
    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise EncryptedPDF(
                source,
                "the PDF needs a password; remove it, e.g. "
                "`qpdf --decrypt --password=... in.pdf out.pdf`, and add the file again",
            ) from None
        raise CorruptFile(
            source, f"PDF cannot be read ({exc}); re-export or re-scan the document"
        ) from None
    if len(doc) == 0:
        doc.close()
        raise CorruptFile(source, "PDF has no pages; re-export or re-scan the document")
    return doc


def text_layer(page: pdfium.PdfPage) -> str:
    """The page's embedded text (empty for a scan without OCR).

    PDFium writes a hyphen that ends a line as U+0002; it is a hyphen again here.
    """
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_bounded()
    finally:
        textpage.close()
    return text.replace("\x02", "-").replace("\r\n", "\n").replace("\r", "\n").strip()


def fit_dpi(page: pdfium.PdfPage, dpi: float, max_pixels: int) -> float:
    """``dpi``, lowered if needed so the rendered page stays within ``max_pixels``."""
    width_pt, height_pt = page.get_size()
    pixels = width_pt * height_pt * (dpi / POINTS_PER_INCH) ** 2
    if pixels <= max_pixels:
        return dpi
    return dpi * (max_pixels / pixels) ** 0.5 * 0.999


def render(page: pdfium.PdfPage, dpi: float) -> Image.Image:
    """The page as an 8-bit grayscale image at ``dpi``."""
    bitmap = page.render(scale=dpi / POINTS_PER_INCH, grayscale=True)
    try:
        img = bitmap.to_pil()
        if img.mode != "L":
            img = img.convert("L")
        else:
            img = img.copy()  # detach from the bitmap's buffer before it is closed
    finally:
        bitmap.close()
    img.info["dpi"] = (dpi, dpi)
    return img


def render_to_fit(page: pdfium.PdfPage, size: int) -> Image.Image:
    """The page rendered so that its longest side is about ``size`` pixels."""
    width_pt, height_pt = page.get_size()
    return render(page, POINTS_PER_INCH * size / max(width_pt, height_pt, 1))


# -- in a child process under a memory cap ------------------------------------------------


@dataclass
class PageRead:
    """What a PDF page gives: its text layer, the check's verdict on it, and an image (full
    size for OCR, or a thumbnail's when the text layer is used)."""

    text: str
    image: Image.Image
    dpi: float | None  # the image's DPI when it is the page for OCR; None for a thumbnail's
    timings: dict[str, float] = field(default_factory=dict)
    check: textcheck.Verdict | None = None  # None in mode "force": the layer is not read


def read_page(
    data: bytes,
    source: str,
    *,
    mode: str = "auto",
    min_chars: int,
    dpi: int | None,
    max_pixels: int,
    thumb_size: int,
) -> PageRead | None:
    """Open a one-page PDF, read and check its text layer, and render the page: only for a
    thumbnail when the text layer is to be used (mode "text-only", or mode "auto" and the
    layer passes :func:`pagekit.processing.textcheck.check`), else at ``dpi`` for OCR.
    ``dpi=None``: never render for OCR; None when the page needs it (read it again)."""
    timings: dict[str, float] = {}
    started = perf_counter()
    doc = open_document(data, source)
    try:
        page = doc[0]
        timings["load"] = round(perf_counter() - started, 4)
        text, verdict = "", None
        if mode != OcrMode.FORCE:
            started = perf_counter()
            text = text_layer(page)
            verdict = textcheck.check(text, min_chars)
            timings["text_layer"] = round(perf_counter() - started, 4)
        started = perf_counter()
        if mode == OcrMode.TEXT_ONLY or (verdict is not None and verdict.ok):
            return PageRead(text, render_to_fit(page, thumb_size), None, timings, verdict)
        if dpi is None:
            return None
        fitted = fit_dpi(page, dpi, max_pixels)
        image = render(page, fitted)
        timings["render"] = round(perf_counter() - started, 4)
        return PageRead(text, image, fitted, timings, verdict)
    finally:
        doc.close()


def render_page(data: bytes, source: str, dpi: int, max_pixels: int) -> Image.Image:
    """Open a one-page PDF and render it at ``dpi`` (lowered to fit ``max_pixels``)."""
    doc = open_document(data, source)
    try:
        page = doc[0]
        return render(page, fit_dpi(page, dpi, max_pixels))
    finally:
        doc.close()


def _to_wire(value: PageRead | Image.Image) -> tuple[dict[str, Any], list[bytes]]:
    """A page read or an image as JSON plus raw pixels, to cross the child's pipe."""
    image = value.image if isinstance(value, PageRead) else value
    meta: dict[str, Any] = {"mode": image.mode, "size": list(image.size)}
    if isinstance(value, PageRead):
        check = asdict(value.check) if value.check is not None else None
        meta.update(text=value.text, dpi=value.dpi, timings=value.timings, check=check)
    return meta, [image.tobytes()]


def _from_wire(meta: dict[str, Any], blobs: list[bytes]) -> PageRead | Image.Image:
    image = Image.frombytes(meta["mode"], tuple(meta["size"]), blobs[0])
    if "text" in meta:
        check = textcheck.Verdict(**meta["check"]) if meta["check"] is not None else None
        return PageRead(meta["text"], image, meta["dpi"], meta["timings"], check)
    return image


def capped(
    fn: Callable[..., T], *args: Any, source: str, memory_mb: int, time_limit: int, **kw: Any
) -> T:
    """``fn(*args, **kw)`` in a child process with at most ``memory_mb`` MB of memory.

    PDFium parses a page's content in full before it draws, and aborts its process when an
    allocation fails; in a child, a page that needs too much fails alone, with a message.
    """
    try:
        meta, blobs = _sandbox.run_capped(
            lambda: _to_wire(fn(*args, **kw)), memory_mb=memory_mb, cpu_seconds=time_limit
        )
    except (_sandbox.ChildFailed, _sandbox.ChildDied) as exc:
        raise _failure(exc, source, memory_mb, time_limit) from None
    return _from_wire(meta, blobs)  # type: ignore[return-value]


# What the helper may be asked to run, by name: the request is JSON, not code.
_SERVED: dict[str, Callable[..., PageRead | Image.Image]] = {
    "read_page": read_page,
    "render_page": render_page,
}


def _serve(meta: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """In the helper: ``meta["call"](page bytes, source, **meta["kw"])``, ready for the pipe;
    or, for ``"text_layer_pages"``, :func:`read_page` without OCR rendering for each page
    given."""
    if meta["call"] == "text_layer_pages":
        return _serve_text_layer_pages(meta["sources"], blobs, meta["kw"])
    return _to_wire(_SERVED[meta["call"]](blobs[0], meta["source"], **meta["kw"]))


def _serve_text_layer_pages(
    sources: list[str], pages: list[bytes], kw: dict[str, Any]
) -> tuple[dict[str, Any], list[bytes]]:
    """Each page's read (None: read it on its own), all in one reply."""
    reads: list[dict[str, Any] | None] = []
    images: list[bytes] = []
    for source, data in zip(sources, pages, strict=True):
        try:
            got = read_page(data, source, dpi=None, max_pixels=0, **kw)
        except Exception:  # the page's own read says what is wrong with it
            got = None
        if got is None:
            reads.append(None)
            continue
        meta, blob = _to_wire(got)
        reads.append(meta)
        images.extend(blob)
    return {"reads": reads}, images


_helper = _sandbox.Helper(_serve)


def served(
    fn: Callable[..., T], data: bytes, source: str, *, memory_mb: int, time_limit: int, **kw: Any
) -> T:
    """``fn(data, source, **kw)`` (:func:`read_page` or :func:`render_page`) as :func:`capped`
    does, in this process's long-lived helper child: a worker forks once, not per page,
    and PDFium stays warm. Other threads than the main one get a child per call."""
    if _SERVED.get(fn.__name__) is not fn:
        raise ValueError(f"{fn.__name__} is not one of the helper's calls: {sorted(_SERVED)}")
    if threading.current_thread() is not threading.main_thread():
        return capped(
            fn, data, source, source=source, memory_mb=memory_mb, time_limit=time_limit, **kw
        )
    request = {"call": fn.__name__, "source": source, "kw": kw}
    try:
        meta, blobs = _helper.call(request, [data], memory_mb=memory_mb, cpu_seconds=time_limit)
    except (_sandbox.ChildFailed, _sandbox.ChildDied) as exc:
        raise _failure(exc, source, memory_mb, time_limit) from None
    return _from_wire(meta, blobs)  # type: ignore[return-value]


def text_layer_pages(
    pages: list[tuple[bytes, str]], *, memory_mb: int, time_limit: int, **kw: Any
) -> list[PageRead | None]:
    """:func:`read_page` with ``dpi=None`` for several pages in one call to the helper
    (``kw``: its ``mode``, ``min_chars`` and ``thumb_size``): a page's read, or None for a
    page to read on its own (it needs OCR, or it failed). If the helper fails or dies, every page is
    None: each is then read alone, so a bad page fails by itself, with its message."""
    if not pages or threading.current_thread() is not threading.main_thread():
        return [None] * len(pages)
    request = {"call": "text_layer_pages", "sources": [src for _, src in pages], "kw": kw}
    try:
        meta, blobs = _helper.call(
            request, [data for data, _ in pages], memory_mb=memory_mb, cpu_seconds=time_limit
        )
    except (_sandbox.ChildFailed, _sandbox.ChildDied):
        return [None] * len(pages)
    out: list[PageRead | None] = []
    images = iter(blobs)
    for read in meta["reads"]:
        out.append(None if read is None else _from_wire(read, [next(images)]))  # type: ignore[misc]
    return out


def _failure(
    exc: _sandbox.ChildFailed | _sandbox.ChildDied, source: str, memory_mb: int, time_limit: int
) -> ProcessingError:
    """What a child's failure or death means for the page, and the fix."""
    if isinstance(exc, _sandbox.ChildFailed):
        if exc.kind == "pagekit":
            return ProcessingError(str(exc))
        return ProcessingError(
            f"{source}: unexpected {exc.kind}: {exc}; re-export the page, and report this "
            "if it persists"
        )
    if exc.why == "memory":
        return ProcessingError(
            f"{source}: page needs more than {memory_mb} MB to render "
            "(PAGEKIT_PAGE_MEMORY_MB) and was stopped; its content may be a decompression "
            "bomb: re-export the page, or raise PAGEKIT_PAGE_MEMORY_MB on the workers"
        )
    if exc.why == "time":
        return ProcessingError(
            f"{source}: rendering took longer than {time_limit} s of CPU "
            "(PAGEKIT_PAGE_TIME_LIMIT) and was stopped; re-export the page, or raise "
            "PAGEKIT_PAGE_TIME_LIMIT on the workers"
        )
    return ProcessingError(
        f"{source}: PDFium crashed on the page ({exc}); re-export or re-scan the page"
    )
