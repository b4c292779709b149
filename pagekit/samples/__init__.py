"""Demo pages shipped with pagekit: photos and scans of invented 1890s letters, and a
mixed PDF (``box3.pdf``: one text-layer page, three scanned pages).

Regenerate them with ``python -m pagekit.samples.make_samples``.

:func:`page_image` and :func:`page_pdf` make new pages with the text you choose (the
tutorials use them): no scanner needed to try pagekit, and OCR should read them back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).parent
PAGE_SUFFIXES = frozenset({".jpg", ".png", ".pdf", ".tif", ".tiff", ".webp", ".bmp"})


def paths() -> list[Path]:
    """The sample files, sorted by name."""
    return sorted(p for p in HERE.iterdir() if p.suffix.lower() in PAGE_SUFFIXES)


def expected_text(name: str) -> str:
    """The text printed on sample ``name`` (pages separated by a blank line)."""
    expected = json.loads((HERE / "expected.json").read_text())
    return "\n\n".join(expected[name])


def page_image(
    text: str, *, width: int = 700, height: int = 300, font_size: int = 34, fmt: str = "PNG"
) -> bytes:
    """An image file (``fmt``: PNG, JPEG, TIFF...) of a page with ``text`` printed on it.

    Black on white in a bundled font, wrapped inside margins: the same bytes on every
    machine, so adding it twice to a project is a ``duplicate``.
    """
    from .. import _pagegen  # Pillow, only when pages are made

    img = _pagegen.text_image(text, width=width, height=height, font_size=font_size)
    return _pagegen.image_bytes(img, fmt)


def page_pdf(pages: Sequence[str]) -> bytes:
    """A PDF with a real text layer, one page per string (pagekit reads it without OCR)."""
    from .. import _pagegen

    return _pagegen.text_pdf(pages)
