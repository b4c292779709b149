"""The values that cross the worker boundary: :class:`PageInput` in, :class:`PageResult` out."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..config import _default_tessdata
from ..errors import PagekitError


@dataclass(frozen=True)
class PageInput:
    """One page to process, with every setting processing needs (no global config)."""

    page_id: int
    kind: str  # "image" | "pdf" (a single-page PDF)
    data: bytes
    source: str  # human name for messages, e.g. "box3.pdf page 2"
    steps: tuple[str, ...] = ()  # custom steps, run after the built-ins, in order
    lang: str = "eng"
    tessdata: str = field(default_factory=_default_tessdata)
    render_dpi: int = 300
    pdf_text_min_chars: int = 20
    max_image_pixels: int = 120_000_000
    time_limit: int = 0  # seconds a worker allows one page (for messages); 0: not known
    # MB of memory PDFium may use for one PDF page, in a child process; 0: no cap.
    memory_mb: int = 1024
    # "auto": a PDF text layer that passes the sanity check, else OCR; "force": always
    # render and OCR; "text-only": never OCR (image pages and rejected layers get no text).
    ocr_mode: str = "auto"
    rotate: bool = True  # detect orientation (Tesseract OSD) and turn the page upright
    deskew: bool = True  # straighten pages scanned a few degrees off
    review_threshold: float = 60.0  # mean confidence under this flags needs_review
    # A PDF page's text layer and thumbnail read ahead, with other pages, in one call to
    # the PDFium helper (pagekit.processing.pdf.text_layer_pages); None: read it here.
    pdf_read: Any = None


@dataclass
class PageResult:
    """What processing one page produced; ``ok=False`` pages carry a one-line ``error``."""

    ok: bool
    text: str = ""
    confidence: float | None = None  # mean Tesseract word confidence 0-100; None if no OCR
    words: int = 0
    chars: int = 0
    engine: str = ""  # "tesseract 5.5.4" or "pdf-text-layer"
    language: str = ""
    width: int | None = None  # pixels of the image OCR'd
    height: int | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, and "total"
    thumbnail: bytes | None = None  # JPEG, longest side <= 256 px
    extra: dict[str, Any] = field(default_factory=dict)  # custom step outputs by step name
    error: str | None = None  # what went wrong on this page, and the fix
    rotation: int = 0  # degrees clockwise turned before OCR: 0, 90, 180 or 270
    skew: float | None = None  # degrees rotated to straighten the page; None: not measured
    text_source: str = ""  # "ocr" | "text-layer" | "" (no text: text-only on an image)
    text_source_reason: str = ""  # one line: why this source, e.g. the check's figures
    needs_review: bool = False
    review_reason: str | None = None
    # OCR'd pages: {"width": px, "height": px, "dpi": n, "rotation": deg, "skew": deg,
    #  "words": [[text, x0, y0, x1, y1, conf, block, par, line], ...]} in pixels of the
    # image OCR read (upright and deskewed); text-layer pages: None.
    layout: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict; the thumbnail is base64 under ``thumbnail_b64``."""
        out = asdict(self)
        thumb = out.pop("thumbnail")
        out["thumbnail_b64"] = base64.b64encode(thumb).decode("ascii") if thumb else None
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PageResult:
        """The inverse of :meth:`to_json` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        thumb = d.get("thumbnail_b64")
        values["thumbnail"] = base64.b64decode(thumb) if thumb else None
        return cls(**values)


class Cancelled(PagekitError):
    """Processing of a page stopped because its job was cancelled."""

    def __init__(self, page_id: int, source: str):
        self.page_id = page_id
        self.source = source
        super().__init__(f"{source}: cancelled")
