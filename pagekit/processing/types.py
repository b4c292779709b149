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
