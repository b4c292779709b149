"""``process_page``: one page from bytes to a :class:`PageResult`, built-ins then custom steps."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import perf_counter
from typing import Any, TypeVar

from PIL import Image

from ..errors import IngestError, PagekitError, ProcessingError
from . import images, ocr, pdf
from .steps import StepContext, get_step
from .types import Cancelled, PageInput, PageResult

TEXT_LAYER_ENGINE = "pdf-text-layer"
T = TypeVar("T")


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
        """Check for cancellation, then time the stage into ``result.timings[name]``."""
        if self.should_stop is not None and self.should_stop():
            raise Cancelled(self.inp.page_id, self.inp.source)
        started = perf_counter()
        try:
            yield
        finally:
            self.result.timings[name] = round(perf_counter() - started, 4)

    def set_text(self, text: str, engine: str, confidence: float | None) -> None:
        self.result.text = text
        self.result.engine = engine
        self.result.confidence = confidence
        self.result.words = len(text.split())
        self.result.chars = len(text.strip())

    def ocr(self, img: Image.Image, dpi: float | None = None) -> None:
        with self.stage("ocr"):
            gray = images.for_ocr(img)
            self.result.width, self.result.height = gray.size
            found = ocr.recognize(
                gray, tessdata=self.inp.tessdata, lang=self.inp.lang, dpi=round(dpi or 0) or None
            )
        self.set_text(found.text, ocr.engine_name(), found.confidence)

    def page_image(self) -> Image.Image:
        """For custom steps: the page image, rendered on demand for text-layer PDF pages."""
        if self.image is None:
            inp = self.inp
            self.image = self.pdfium(pdf.render_page, inp.render_dpi, inp.max_image_pixels)
        return self.image

    def pdfium(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """``fn(page data, source, *args, **kw)`` in a child process under the memory cap."""
        inp = self.inp
        return pdf.capped(
            fn,
            inp.data,
            inp.source,
            *args,
            source=inp.source,
            memory_mb=inp.memory_mb,
            time_limit=inp.time_limit,
            **kw,
        )


def _image_page(run: _Run) -> None:
    inp = run.inp
    with run.stage("load"):
        run.image = images.load_page(inp.data, inp.source, inp.max_image_pixels)
    run.ocr(run.image)
    with run.stage("thumbnail"):
        run.result.thumbnail = images.thumbnail(run.image)


def _pdf_page(run: _Run) -> None:
    inp = run.inp
    with run.stage("pdfium"):  # load, text layer and render, timed again inside
        got = run.pdfium(
            pdf.read_page,
            min_chars=inp.pdf_text_min_chars,
            dpi=inp.render_dpi,
            max_pixels=inp.max_image_pixels,
            thumb_size=images.THUMBNAIL_SIZE,
        )
    run.result.timings.update(got.timings)
    if got.dpi is None:  # the text layer is real text; the image is for the thumbnail
        run.set_text(got.text, TEXT_LAYER_ENGINE, None)
        with run.stage("thumbnail"):
            run.result.thumbnail = images.thumbnail(got.image)
        return
    run.image = got.image
    run.ocr(run.image, got.dpi)
    with run.stage("thumbnail"):
        run.result.thumbnail = images.thumbnail(run.image)


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
    """Process one page: load, text layer or render + OCR, thumbnail, then custom steps.

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
        if inp.kind == "image":
            _image_page(run)
        elif inp.kind == "pdf":
            _pdf_page(run)
        else:
            raise ProcessingError(
                f"{inp.source}: unknown page kind {inp.kind!r}; expected 'image' or 'pdf'"
            )
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
        run.result.timings["total"] = round(perf_counter() - started, 4)
    return run.result
