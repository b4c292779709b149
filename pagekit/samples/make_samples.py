"""Write the shipped demo pages: ``python -m pagekit.samples.make_samples``.

Deterministic: the same files every run. Letter-size pages at 150 dpi, so OCR of all of
them takes seconds, not minutes.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageOps

from pagekit import _pagegen as g

HERE = Path(__file__).parent
WIDTH, HEIGHT, DPI = 1275, 1650, 150  # US Letter at 150 dpi
FONT = 34


def _page(text: str, *, rotate: float = 0.0, noise: float = 0.0, seed: int = 0) -> Image.Image:
    return g.text_image(
        text, width=WIDTH, height=HEIGHT, font_size=FONT, rotate=rotate, noise=noise, seed=seed
    )


def _photo(img: Image.Image) -> Image.Image:
    """A camera's view of an old letter: warm paper, brownish ink."""
    return ImageOps.colorize(img, black=(45, 35, 25), white=(238, 228, 205))


def build() -> dict[str, list[str]]:
    """Write every sample into this folder; return the text of each file's pages."""
    texts = g.SAMPLE_TEXTS
    expected: dict[str, list[str]] = {}
    photos = [  # (text index, tilt in degrees, noise, EXIF orientation)
        (0, 0.0, 0.0, None),
        (1, 0.8, 0.001, None),
        (2, 0.0, 0.0, 6),  # stored sideways, as a phone held in portrait saves it
        (3, -1.2, 0.002, None),
        (4, 0.4, 0.0, None),
    ]
    for n, (i, tilt, noise, orientation) in enumerate(photos, start=1):
        img = _photo(_page(texts[i], rotate=tilt, noise=noise, seed=i))
        data = g.image_bytes(
            img, "JPEG", exif_orientation=orientation, quality=70, dpi=(DPI, DPI), optimize=True
        )
        name = f"letter-{n:02d}.jpg"
        (HERE / name).write_bytes(data)
        expected[name] = [texts[i]]
    for n, i in enumerate(range(5, 9), start=1):
        img = _page(texts[i], rotate=0.5 * (n % 2), noise=0.001 * (n % 3), seed=i)
        name = f"scan-{n:02d}.png"
        (HERE / name).write_bytes(g.image_bytes(img, "PNG", dpi=(DPI, DPI), optimize=True))
        expected[name] = [texts[i]]
    scans = [_page(texts[i], rotate=0.3, noise=0.001, seed=i) for i in (10, 11, 12)]
    box = g.merge_pdfs([g.text_pdf([texts[9]]), g.scanned_pdf(scans, dpi=DPI, quality=60)])
    (HERE / "box3.pdf").write_bytes(box)
    expected["box3.pdf"] = [texts[9], texts[10], texts[11], texts[12]]
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    return expected


if __name__ == "__main__":
    for name, pages in build().items():
        size = (HERE / name).stat().st_size
        print(f"{name}: {len(pages)} page(s), {size / 1024:.0f} KiB")
