"""Page images: open safely (pixel limit before decoding), turn upright, prepare for OCR."""

from __future__ import annotations

import io
import re
import warnings

from PIL import Image, ImageOps

from ..errors import CorruptFile, DecompressionBomb, UnsupportedType

THUMBNAIL_SIZE = 256


def _too_many_pixels(source: str, width: int, height: int, max_pixels: int) -> DecompressionBomb:
    return DecompressionBomb(
        source,
        f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
        f"{max_pixels:,} (a likely decompression bomb); downscale it, or raise "
        "PAGEKIT_MAX_IMAGE_PIXELS if the image is genuine",
        limit=max_pixels,
    )


def check_pixels(img: Image.Image, source: str, max_pixels: int) -> None:
    """Raise DecompressionBomb if the (current frame of the) image is over ``max_pixels``."""
    width, height = img.size
    if width * height > max_pixels:
        raise _too_many_pixels(source, width, height, max_pixels)


def open_image(data: bytes, source: str, max_pixels: int) -> Image.Image:
    """Open image bytes lazily: the header is read and the size checked, nothing decoded."""
    try:
        with warnings.catch_warnings():
            # Our own limit (below) decides; Pillow's warning threshold is not ours.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        # Pillow's own hard limit (twice its MAX_IMAGE_PIXELS) fired before ours could.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise DecompressionBomb(
            source,
            f"image has {pixels}, over the limit of {max_pixels:,} (a likely decompression "
            "bomb); downscale it",
            limit=max_pixels,
        ) from None
    except Image.UnidentifiedImageError:
        raise UnsupportedType(source, "not a readable image; re-export it as PNG or JPEG") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptFile(
            source, f"image header is damaged ({exc}); re-scan or re-export the page"
        ) from None
    check_pixels(img, source, max_pixels)
    return img


def decode(img: Image.Image, source: str) -> None:
    """Decode the current frame fully, turning truncation or damage into CorruptFile."""
    try:
        img.load()
    except OSError as exc:
        if "truncated" in str(exc):
            raise CorruptFile(
                source, "image data is truncated; re-scan or re-export the page"
            ) from None
        raise CorruptFile(
            source, f"image data is damaged ({exc}); re-scan or re-export the page"
        ) from None
    except (SyntaxError, ValueError, EOFError) as exc:
        raise CorruptFile(
            source, f"image data is damaged ({exc}); re-scan or re-export the page"
        ) from None


def upright(img: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (phone photos); unchanged if none."""
    try:
        return ImageOps.exif_transpose(img)
    except (SyntaxError, ValueError, KeyError, TypeError, OSError):
        return img  # unreadable EXIF: use the pixels as stored


def load_page(data: bytes, source: str, max_pixels: int) -> Image.Image:
    """Open, check, decode and turn upright the first frame of an image page."""
    img = open_image(data, source, max_pixels)
    decode(img, source)
    return upright(img)


def for_ocr(img: Image.Image) -> Image.Image:
    """8-bit grayscale, transparency flattened onto white: what Tesseract reads best."""
    if img.mode == "L":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        if img.mode != "I":
            img = img.convert("I")
        return img.point(lambda v: v * (1 / 257)).convert("L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    if img.mode not in ("RGB", "1"):
        img = img.convert("RGB")
    return img.convert("L")


def thumbnail(img: Image.Image, size: int = THUMBNAIL_SIZE) -> bytes:
    """A JPEG of the page, its longest side at most ``size`` pixels."""
    if img.mode not in ("L", "RGB"):
        img = for_ocr(img)
    scale = size / max(img.size)
    if scale < 1:
        new_size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80, optimize=True)
    return buf.getvalue()
