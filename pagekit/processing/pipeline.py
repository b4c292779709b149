"""``process_page``: one page from bytes to a :class:`PageResult`, built-ins then custom steps."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import Any, TypeVar

from PIL import Image

from ..contract import OCR_MODES, OcrMode, TextSource
from ..errors import IngestError, PagekitError, ProcessingError
from . import images, ocr, orient, pdf
from .steps import StepContext, get_step
from .types import Cancelled, PageInput, PageResult

TEXT_LAYER_ENGINE = "pdf-text-layer"
T = TypeVar("T")


@dataclass
class _Reading:
    """One OCR pass over the page: what was read, from which image, turned how."""

    found: ocr.OcrText
    image: Image.Image  # the 8-bit image Tesseract read: upright and straightened
    rotation: int  # degrees turned clockwise
    skew: float | None  # degrees rotated counter-clockwise to straighten; None: not measured


class _Run:
    """The state of one page while it is processed."""

    def __init__(
        self,
        inp: PageInput,
        should_stop: Callable[[], bool] | None,
        timeouts: tuple[type[BaseException], ...],
    ):
        self.inp = inp
        self.should_stop = should_stop
        self.timeouts = timeouts
        self.result = PageResult(ok=False, language=inp.lang)
        self.image: Image.Image | None = None  # the upright page image, once there is one

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Check for cancellation, then time the stage into ``result.timings[name]`` (a
        stage run twice, as when a turned page is read again, adds up)."""
        if self.should_stop is not None and self.should_stop():
            raise Cancelled(self.inp.page_id, self.inp.source)
        started = perf_counter()
        try:
            yield
        finally:
            spent = perf_counter() - started + self.result.timings.get(name, 0.0)
            self.result.timings[name] = round(spent, 4)

    def set_text(self, text: str, engine: str, confidence: float | None) -> None:
        self.result.text = text
        self.result.engine = engine
        self.result.confidence = confidence
        self.result.words = len(text.split())
        self.result.chars = len(text.strip())

    def read(self, gray: Image.Image, dpi: int, rotation: int) -> _Reading:
        """Straighten ``gray`` (if deskew is on and it is tilted), then OCR it."""
        skew = None
        if self.inp.deskew:
            with self.stage("deskew"):
                tilt = orient.measure_skew(gray)
                if tilt is not None:
                    skew = -tilt if abs(tilt) > orient.MIN_SKEW else 0.0
                    if skew:
                        gray = orient.straighten(gray, skew)
        with self.stage("ocr"):
            found = ocr.recognize(gray, tessdata=self.inp.tessdata, lang=self.inp.lang, dpi=dpi)
        return _Reading(found, gray, rotation, skew)

    def ocr(self, img: Image.Image, dpi: float | None = None) -> None:
        """OCR the page image, straightened; when the reading is doubtful, ask Tesseract's
        OSD which way is up and read the page again turned, keeping the better reading."""
        inp = self.inp
        with self.stage("ocr"):
            gray = images.for_ocr(img)
        dpi = dpi or ocr.resolution(img)
        reading = self.read(gray, round(dpi), 0)
        if inp.rotate and orient.doubtful(reading.found):
            with self.stage("orient"):
                osd = ocr.orientation(gray, tessdata=inp.tessdata, dpi=round(dpi))
            if osd is not None and osd[0] and orient.worth_turning(osd[1], reading.found):
                turned = self.read(orient.turn(gray, osd[0]), round(dpi), osd[0])
                if orient.better(turned.found, reading.found):
                    reading = turned
        found, result = reading.found, self.result
        self.set_text(found.text, ocr.engine_name(), found.confidence)
        result.text_source = TextSource.OCR
        result.rotation, result.skew = reading.rotation, reading.skew
        result.width, result.height = reading.image.size
        result.layout = {
            "width": reading.image.width,
            "height": reading.image.height,
            "dpi": int(dpi) if float(dpi).is_integer() else dpi,
            "rotation": reading.rotation,
            "skew": reading.skew or 0.0,
            "words": found.words,
        }
        if reading.rotation and self.image is not None:
            self.image = orient.turn(self.image, reading.rotation)

    def page_image(self) -> Image.Image:
        """For custom steps: the page image, rendered on demand for text-layer PDF pages."""
        if self.image is None:
            inp = self.inp
            self.image = self.pdfium(
                pdf.render_page, dpi=inp.render_dpi, max_pixels=inp.max_image_pixels
            )
        return self.image

    def pdfium(self, fn: Callable[..., T], **kw: Any) -> T:
        """``fn(page data, source, **kw)`` in the PDFium child, under the memory cap."""
        inp = self.inp
        return pdf.served(
            fn, inp.data, inp.source, memory_mb=inp.memory_mb, time_limit=inp.time_limit, **kw
        )


def _image_page(run: _Run) -> None:
    inp = run.inp
    with run.stage("load"):
        run.image = images.load_page(inp.data, inp.source, inp.max_image_pixels)
    if inp.ocr_mode == OcrMode.TEXT_ONLY:
        run.result.width, run.result.height = run.image.size
        run.result.text_source_reason = "text-only mode: image pages are not OCR'd"
    else:
        run.ocr(run.image)
        run.result.text_source_reason = (
            "ocr mode force" if inp.ocr_mode == OcrMode.FORCE else "image page"
        )
    with run.stage("thumbnail"):
        run.result.thumbnail = images.thumbnail(run.image)


def _pdf_page(run: _Run) -> None:
    inp = run.inp
    got = inp.pdf_read  # read ahead with other pages (their share of it is in its timings)
    if got is None:
        with run.stage("pdfium"):  # load, text layer and render, timed again inside
            got = run.pdfium(
                pdf.read_page,
                mode=inp.ocr_mode,
                min_chars=inp.pdf_text_min_chars,
                dpi=inp.render_dpi,
                max_pixels=inp.max_image_pixels,
                thumb_size=images.THUMBNAIL_SIZE,
            )
    run.result.timings.update(got.timings)
    reason = got.check.reason if got.check is not None else "ocr mode force"
    if got.dpi is None:  # the text layer is used; the image is for the thumbnail
        run.set_text(got.text, TEXT_LAYER_ENGINE, None)
        run.result.text_source = TextSource.TEXT_LAYER if got.text else ""
        if inp.ocr_mode == OcrMode.TEXT_ONLY:
            reason = f"text-only mode (not OCR'd); the check says: {reason}"
        run.result.text_source_reason = reason
        with run.stage("thumbnail"):
            run.result.thumbnail = images.thumbnail(got.image)
        return
    run.image = got.image
    run.ocr(run.image, got.dpi)
    run.result.text_source_reason = reason
    with run.stage("thumbnail"):
        run.result.thumbnail = images.thumbnail(run.image)


def _flag_for_review(result: PageResult, threshold: float) -> None:
    """Flag an OCR'd page that found no text, or whose mean confidence is under
    ``threshold`` (0 turns the confidence rule off); text-layer pages are not flagged."""
    if result.text_source != TextSource.OCR:
        return
    if result.words == 0:
        result.needs_review, result.review_reason = True, "OCR found no text"
    elif threshold > 0 and result.confidence is not None and result.confidence < threshold:
        result.needs_review = True
        result.review_reason = f"mean confidence {result.confidence:.1f} is under {threshold:g}"


def _custom_step(run: _Run, name: str, ctx: StepContext) -> None:
    fn = get_step(name)
    with run.stage(name):
        try:
            out = fn(ctx)
        except (Cancelled, *run.timeouts):
            raise
        except Exception as exc:
            raise ProcessingError(
                f"{run.inp.source}: step {name!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
    if out is None:
        return
    if not isinstance(out, dict):
        raise ProcessingError(
            f"{run.inp.source}: step {name!r} returned {type(out).__name__}; "
            "a step must return a dict or None"
        )
    try:
        json.dumps(out)
    except (TypeError, ValueError) as exc:
        raise ProcessingError(
            f"{run.inp.source}: step {name!r} returned data that is not JSON-able ({exc}); "
            "return only dicts, lists, strings, numbers, booleans and None"
        ) from None
    run.result.extra[name] = out


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _too_slow(inp: PageInput) -> str:
    limit = f"{inp.time_limit} s" if inp.time_limit else "the page time limit"
    return (
        f"{inp.source}: took longer than {limit} (PAGEKIT_PAGE_TIME_LIMIT) and was stopped; "
        "raise PAGEKIT_PAGE_TIME_LIMIT on the workers, or split the page into smaller ones"
    )


def process_page(
    inp: PageInput,
    should_stop: Callable[[], bool] | None = None,
    *,
    timeouts: tuple[type[BaseException], ...] = (),
) -> PageResult:
    """Process one page: load, text layer or render + OCR (turned upright and straightened,
    see :meth:`_Run.ocr`), review flag, thumbnail, then custom steps.

    Never raises for a bad page: the result has ``ok=False`` and a one-line ``error``
    naming the page and the fix. Raises :class:`Cancelled` only when ``should_stop()``
    returns True, which is checked before every stage. An exception of a type in
    ``timeouts`` (the caller's time limit, e.g. Celery's ``SoftTimeLimitExceeded``) fails
    the page with "took longer than ``inp.time_limit`` s".
    """
    run = _Run(inp, should_stop, timeouts)
    started = perf_counter()
    try:
        for name in inp.steps:  # an unknown step fails the page before any slow work
            get_step(name)
        if inp.ocr_mode not in OCR_MODES:
            raise ProcessingError(
                f"{inp.source}: unknown OCR mode {inp.ocr_mode!r}; use one of "
                + ", ".join(OCR_MODES)
            )
        if inp.kind == "image":
            _image_page(run)
        elif inp.kind == "pdf":
            _pdf_page(run)
        else:
            raise ProcessingError(
                f"{inp.source}: unknown page kind {inp.kind!r}; expected 'image' or 'pdf'"
            )
        _flag_for_review(run.result, inp.review_threshold)
        ctx = StepContext(inp.page_id, inp.source, inp.kind, run.result, run.page_image)
        for name in inp.steps:
            _custom_step(run, name, ctx)
        run.result.ok = True
    except Cancelled:
        raise
    except timeouts:
        run.result.error = _too_slow(inp)
    except IngestError as exc:
        run.result.error = _one_line(str(exc))  # already "<source>: <message>"
    except PagekitError as exc:
        message = str(exc)
        prefix = f"{inp.source}: "
        run.result.error = _one_line(message if message.startswith(prefix) else prefix + message)
    except MemoryError:
        run.result.error = (
            f"{inp.source}: out of memory while processing the page; lower "
            "PAGEKIT_RENDER_DPI or PAGEKIT_MAX_IMAGE_PIXELS, or give the worker more memory"
        )
    except Exception as exc:
        run.result.error = _one_line(
            f"{inp.source}: unexpected {type(exc).__name__}: {exc}; "
            "re-export the page, and report this if it persists"
        )
    finally:
        # A page read ahead with others counts its share of that read.
        ahead = inp.pdf_read.timings.get("pdfium", 0.0) if inp.pdf_read is not None else 0.0
        run.result.timings["total"] = round(perf_counter() - started + ahead, 4)
    return run.result
