"""PDF pages through pypdfium2: open, read the text layer, render."""

from __future__ import annotations

import pypdfium2 as pdfium
from PIL import Image

from ..errors import CorruptFile, EncryptedPDF

POINTS_PER_INCH = 72


def open_document(data: bytes, source: str) -> pdfium.PdfDocument:
    """Open PDF bytes, turning PDFium's failures into CorruptFile or EncryptedPDF."""
    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise EncryptedPDF(
                source,
                "the PDF needs a password; remove it, e.g. "
                "`qpdf --decrypt --password=... in.pdf out.pdf`, and add the file again",
            ) from None
        raise CorruptFile(
            source, f"PDF cannot be read ({exc}); re-export or re-scan the document"
        ) from None
    if len(doc) == 0:
        doc.close()
        raise CorruptFile(source, "PDF has no pages; re-export or re-scan the document")
    return doc


def text_layer(page: pdfium.PdfPage) -> str:
    """The page's embedded text (empty for a scan without OCR)."""
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_bounded()
    finally:
        textpage.close()
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def significant_chars(text: str) -> int:
    """Letters and digits: what decides whether a text layer is real text."""
    return sum(ch.isalnum() for ch in text)


def fit_dpi(page: pdfium.PdfPage, dpi: float, max_pixels: int) -> float:
    """``dpi``, lowered if needed so the rendered page stays within ``max_pixels``."""
    width_pt, height_pt = page.get_size()
    pixels = width_pt * height_pt * (dpi / POINTS_PER_INCH) ** 2
    if pixels <= max_pixels:
        return dpi
    return dpi * (max_pixels / pixels) ** 0.5 * 0.999


def render(page: pdfium.PdfPage, dpi: float) -> Image.Image:
    """The page as an 8-bit grayscale image at ``dpi``."""
    bitmap = page.render(scale=dpi / POINTS_PER_INCH, grayscale=True)
    try:
        img = bitmap.to_pil()
        if img.mode != "L":
            img = img.convert("L")
        else:
            img = img.copy()  # detach from the bitmap's buffer before it is closed
    finally:
        bitmap.close()
    img.info["dpi"] = (dpi, dpi)
    return img


def render_to_fit(page: pdfium.PdfPage, size: int) -> Image.Image:
    """The page rendered so that its longest side is about ``size`` pixels."""
    width_pt, height_pt = page.get_size()
    return render(page, POINTS_PER_INCH * size / max(width_pt, height_pt, 1))
