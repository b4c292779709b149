"""Demo pages shipped with pagekit: photos and scans of invented 1890s letters, and a
mixed PDF (``box3.pdf``: one text-layer page, three scanned pages).

Regenerate them with ``python -m pagekit.samples.make_samples``.
"""

from __future__ import annotations

import json
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
