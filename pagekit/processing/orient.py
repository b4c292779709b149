"""Page geometry before OCR: turn a page upright and straighten a skewed scan.

Orientation comes from Tesseract's OSD (:func:`pagekit.processing.ocr.orientation`);
skew from a projection profile here: the angle at which the rows of dark pixels line up
best, measured on a downscaled copy in a few milliseconds. Both conventions are the ones
:func:`pagekit.searchable_pdf.upright_image` replays to fit the layout's boxes: ``rotation``
degrees clockwise, then ``skew`` degrees counter-clockwise (Pillow's sense).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from .ocr import OcrText

# A first reading this sure of itself stands upright, and OSD (0.13 s a page) is not asked.
# Measured on generated letter pages: upright ones read at 88-96 mean confidence; lying
# upside down or turned 90 degrees counter-clockwise, at 36-47 (garbage text).
DOUBT_BELOW = 70.0
# Tesseract reads a page lying turned 90 degrees clockwise well, as vertical lines: word
# boxes taller than wide (among words of 3+ characters, at least 5 of them) give it away.
SIDEWAYS_SHARE = 0.5
# A reading of the page turned as OSD says is kept unless its mean confidence is more than
# this under the first reading's (about equal: the upright one, whose boxes are upright).
TURNED_MAY_LOSE = 2.0
# OSD's orient_conf (the gap between the best and the second-best orientation's scores)
# from which a turn is tried. Measured on generated 150-dpi letter pages (pagekit._pagegen):
# right answers on mixed-case text 6.9-16 (median 11), on 16 px text or ALL CAPS 1.4-6.4;
# wrong ones (ALL CAPS read as upside down, blurred text) up to 5.5. As the ranges overlap,
# a turn is only kept when OCR of the turned page is about as good (:func:`better`); this
# threshold spares the second OCR pass on the weakest answers. OCRmyPDF's default of 14
# (for tesseract --psm 0 on whole documents) would leave most 150-dpi letters unturned.
ORIENT_MIN_CONF = 3.0
# Under this mean confidence the first reading is near useless, and any turn OSD names is
# tried whatever its orient_conf: a short page (a line or two) gives OSD little to go on
# (a one-sentence upside-down page: 1.8), and :func:`better` still rejects a wrong turn.
HOPELESS_BELOW = 50.0

# Skew search: +-MAX_SKEW degrees, coarse steps then fine ones around the best.
MAX_SKEW = 10.0
_COARSE = 0.5
_FINE = 0.05
# Straighten only past this: under it, lines drift less than a pixel per 600 px.
MIN_SKEW = 0.1
# The best angle's profile must beat the median angle's by this factor, else the page has
# no clear lines (pictures, blank, text running sideways) and is left as it is. Measured:
# text pages 2.2-4.0 (samples and generated), sideways text 1.02-1.04, a page of shapes 1.25.
MIN_PEAK = 1.5
_MEASURE_SIDE = 1000  # downscale to about this many pixels on the longest side


def turn(img: Image.Image, degrees: int) -> Image.Image:
    """``img`` turned ``degrees`` clockwise (a lossless transpose for multiples of 90)."""
    return img.rotate(-degrees, expand=True) if degrees % 360 else img


def straighten(img: Image.Image, angle: float) -> Image.Image:
    """``img`` rotated ``angle`` degrees counter-clockwise, the canvas grown, corners white."""
    fill = 255 if img.mode == "L" else "white"
    return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


def _otsu(hist: np.ndarray) -> int:
    """The gray level that best splits ``hist`` into ink and paper (Otsu's method)."""
    levels = np.arange(hist.size, dtype=np.float64)
    weight = np.cumsum(hist, dtype=np.float64)
    mass = np.cumsum(hist * levels)
    total = weight[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mass[-1] * weight / total - mass) ** 2 / (weight * (total - weight))
    between[~np.isfinite(between)] = -1.0
    return int(np.argmax(between))


def measure_skew(img: Image.Image) -> float | None:
    """How many degrees counter-clockwise the text lines of an 8-bit page are tilted, to
    0.05 degrees; None when the page shows no clear lines within +-``MAX_SKEW`` degrees.

    The ink (darker than Otsu's threshold) of a copy about 1000 px tall is projected onto
    the vertical axis at each candidate angle; text lines make the sharpest profile (the
    largest sum of squared row counts) when the angle matches theirs.
    """
    factor = max(1, math.ceil(max(img.size) / _MEASURE_SIDE))
    small = img.reduce(factor) if factor > 1 else img
    pixels = np.asarray(small)
    hist = np.bincount(pixels.ravel(), minlength=256)
    ys, xs = np.nonzero(pixels <= _otsu(hist))
    if len(ys) < 100 or len(ys) > 0.5 * pixels.size:  # blank, or mostly dark: no lines
        return None
    xs = xs.astype(np.float64) - pixels.shape[1] / 2
    ys = ys.astype(np.float64) - pixels.shape[0] / 2

    def sharpness(degrees: float) -> float:
        theta = math.radians(degrees)
        rows = ys * math.cos(theta) + xs * math.sin(theta)
        counts = np.bincount((rows - rows.min()).astype(np.intp)).astype(np.float64)
        return float(counts @ counts)

    coarse = np.arange(-MAX_SKEW, MAX_SKEW + _COARSE / 2, _COARSE)
    scores = np.array([sharpness(a) for a in coarse])
    best = float(coarse[int(np.argmax(scores))])
    if scores.max() < MIN_PEAK * float(np.median(scores)) or abs(best) >= MAX_SKEW:
        return None
    fine = np.arange(best - _COARSE, best + _COARSE + _FINE / 2, _FINE)
    angle = float(fine[int(np.argmax([sharpness(a) for a in fine]))])
    return round(angle, 2) + 0.0  # no "-0.0"


def reads_sideways(words: list[list]) -> bool:
    """Whether Tesseract read the page's lines vertically (most word boxes taller than
    wide): the page lies turned 90 degrees."""
    long_words = [w for w in words if len(w[0]) >= 3]
    tall = sum(1 for _, x0, y0, x1, y1, *_ in long_words if y1 - y0 > x1 - x0)
    return len(long_words) >= 5 and tall > SIDEWAYS_SHARE * len(long_words)


def doubtful(found: OcrText) -> bool:
    """Whether a reading may come from a page that is not upright: no words, a low mean
    confidence, or lines read vertically."""
    if found.confidence is None or found.confidence < DOUBT_BELOW:
        return True
    return reads_sideways(found.words)


def worth_turning(osd_conf: float, first: OcrText) -> bool:
    """Whether to read the page again turned as OSD says (its answer is not 0)."""
    hopeless = first.confidence is None or first.confidence < HOPELESS_BELOW
    return osd_conf >= ORIENT_MIN_CONF or hopeless


def better(turned: OcrText, first: OcrText) -> bool:
    """Whether to keep the reading of the turned page rather than the first one."""
    if turned.confidence is None:
        return False
    return first.confidence is None or turned.confidence >= first.confidence - TURNED_MAY_LOSE
