"""One searchable PDF of a project: each page's image under an invisible OCR text layer.

As OCRmyPDF does with ``--rotate-pages --deskew``: an OCR'd page shows the image OCR read
(turned upright and straightened: :func:`upright_image`) with every word written over
itself in text render mode 3 (invisible), so that selecting and searching hit the words
where they are. The text uses a glyphless TrueType font (Type0, Identity-H, a ToUnicode
CMap) as Tesseract's PDF renderer does, so any script extracts as Unicode.

What each page becomes; one page never fails the whole export:

- OCR'd (it has a layout): its image and the text layer. A PDF page is rendered at the
  DPI OCR used, in a memory-capped child process as on the workers.
- A PDF page read from its own text layer, or never OCR'd: the original page, copied.
- An image page without a layout (pending, failed, text-only): the image alone.
- A page whose bytes are missing or cannot be read: a placeholder page saying so (with the
  text layer, if there is one), and a warning in the log. Page *i* of the PDF is always
  the project's *i*-th page; page labels give the project's page numbers when they have
  gaps.

Objects go to the file as they are made (:class:`PdfFile` keeps their offsets only), so
a project of thousands of pages never sits in memory: one page is read, encoded, written
and dropped at a time.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import struct
import zlib
from array import array
from collections import deque
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from PIL import Image

from .layout_xml import bbox, lines, words
from .processing import images, orient
from .processing import pdf as pdfium_pages
from .processing.ocr import resolution
from .store.layouts import LayoutPage, iter_layout_pages

if TYPE_CHECKING:
    from .client import Client
    from .config import Settings

log = logging.getLogger(__name__)

POINTS_PER_INCH = pdfium_pages.POINTS_PER_INCH
JPEG_QUALITY = 85  # scans stay legible and a page stays a few hundred KB at 300 DPI
LETTER = (612.0, 792.0)  # a placeholder's size when nothing says how large the page was
FONT = b"/F0"  # the glyphless font, in every OCR'd page's resources
NOTE_FONT = b"/F1"  # Helvetica, for a placeholder's visible note
_GLYPH_EM = 0.5  # every glyph's advance, in em: DW 500 of 1000 units

# -- the PDF file ----------------------------------------------------------------------------


class PdfFile:
    """A PDF written to ``fh`` object by object; the xref and trailer come at :meth:`close`."""

    def __init__(self, fh: IO[bytes]):
        self._fh = fh
        self._offsets = array("q", [-1])  # by object number; -1: reserved, not written
        fh.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")

    def reserve(self) -> int:
        """A new object number, to refer to before the object is written."""
        self._offsets.append(-1)
        return len(self._offsets) - 1

    def write(self, num: int, body: bytes, stream: bytes | None = None) -> int:
        """Write object ``num``: ``body`` (a dictionary when there is a ``stream``)."""
        self._offsets[num] = self._fh.tell()
        self._fh.write(b"%d 0 obj\n" % num)
        if stream is None:
            self._fh.write(body)
        else:
            self._fh.write(body[:-2] + b" /Length %d >>\nstream\n" % len(stream))
            self._fh.write(stream)
            self._fh.write(b"\nendstream")
        self._fh.write(b"\nendobj\n")
        return num

    def add(self, body: bytes, stream: bytes | None = None) -> int:
        """Write a new object and return its number."""
        return self.write(self.reserve(), body, stream)

    def close(self, root: int, info: int) -> None:
        """The cross-reference table and the trailer (objects never written are free)."""
        start = self._fh.tell()
        self._fh.write(b"xref\n0 %d\n" % len(self._offsets))
        for offset in self._offsets:
            self._fh.write(
                b"%010d 00000 n \n" % offset if offset >= 0 else b"0000000000 65535 f \n"
            )
        self._fh.write(
            b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(self._offsets), root, info, start)
        )


def _num(value: float) -> bytes:
    return (b"%.3f" % value).rstrip(b"0").rstrip(b".") or b"0"


def _text_string(text: str) -> bytes:
    """A PDF text string (UTF-16BE with a byte order mark, in hex)."""
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


# -- the glyphless font ----------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    data += b"\0" * (-len(data) % 4)
    return sum(struct.unpack(f">{len(data) // 4}L", data)) & 0xFFFFFFFF


@functools.cache
def glyphless_font() -> bytes:
    """A TrueType font whose every character is one box, 500 units wide: for text that is
    never drawn (render mode 3), as Tesseract's ``pdf.ttf``.

    Built here (about 700 bytes) rather than shipped: the pip-installed language data has
    no ``pdf.ttf``, and the fields are those the TrueType spec requires.
    """
    upm, advance = 1000, 500
    strings, records = b"", b""
    for name_id, text in ((1, "GlyphLessFont"), (2, "Regular"), (4, "GlyphLessFont"),
                          (5, "Version 1.0"), (6, "GlyphLessFont")):  # fmt: skip
        raw = text.encode("utf-16-be")
        records += struct.pack(">6H", 3, 1, 0x409, name_id, len(raw), len(strings))
        strings += raw
    # fmt: off
    # Glyph 1: one contour, a box as wide as the advance and an em high. Viewers take a
    # character's bounds from its glyph, so a selection covers the word it lies over.
    box = struct.pack(">h4hHH4B8h", 1, 0, 0, advance, upm, 3, 0, 1, 1, 1, 1,
                      0, 0, advance, 0,  0, upm, 0, -upm)
    tables = {
        b"head": struct.pack(">4L2H2q4h2H3h",
                             0x10000, 0x10000, 0, 0x5F0F3CF5,  # versions, checksum (below)
                             0b1011, upm, 0, 0,  # flags, units per em, created, modified
                             0, 0, advance, upm,  # bounding box
                             0, 8, 2, 0, 0),  # style, smallest size, direction, formats
        b"hhea": struct.pack(">L3hH3h3h4hhH",
                             0x10000, upm, 0, 0, advance,  # ascender, descender, gap
                             0, 0, advance, 1, 0, 0,  # bearings, extent, caret
                             0, 0, 0, 0, 0, 2),  # reserved, 2 metrics
        b"maxp": struct.pack(">LH13H", 0x10000, 2, 4, 1, 0, 0, 2, *([0] * 8)),
        b"hmtx": struct.pack(">4H", advance, 0, advance, 0),
        b"loca": struct.pack(">3H", 0, 0, len(box) // 2),  # .notdef is empty
        b"glyf": box,
        # one Windows Unicode subtable (format 4) holding only the closing segment
        b"cmap": struct.pack(">4HL7H5H", 0, 1, 3, 1, 12,
                             4, 24, 0, 2, 2, 0, 0, 0xFFFF, 0, 0xFFFF, 1, 0),
        b"OS/2": struct.pack(">hHHHh10hh10s4L4sHHHhhhHH2L",
                             1, advance, 400, 5, 0,  # version 1, installable embedding
                             *([0] * 11), bytes(10), 0, 0, 0, 0, b"PGKT",
                             0x40, 0, 0xFFFF, upm, 0, 0, upm, 0, 1, 0),
        b"name": struct.pack(">3H", 0, 5, 6 + len(records)) + records + strings,
        b"post": struct.pack(">LLhhL4L", 0x30000, 0, -100, 50, 1, 0, 0, 0, 0),
    }
    # fmt: on
    tags = sorted(tables)
    entry = 1 << (len(tags).bit_length() - 1)
    font = bytearray(struct.pack(">LHHHH", 0x10000, len(tags), entry * 16,
                                 entry.bit_length() - 1, (len(tags) - entry) * 16))  # fmt: skip
    offset = 12 + 16 * len(tags)
    body = b""
    for tag in tags:
        data = tables[tag]
        if tag == b"head":
            head_at = offset + len(body)
        font += struct.pack(">4sLLL", tag, _checksum(data), offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    font += body
    font[head_at + 8 : head_at + 12] = struct.pack(">L", (0xB1B0AFBA - _checksum(font)) % 2**32)
    return bytes(font)


def _to_unicode() -> bytes:
    """Codes are UTF-16 code units of the BMP: map each to itself (surrogates left out)."""
    ranges = [b"<%02X00> <%02XFF> <%02X00>" % (hi, hi, hi) for hi in range(256)
              if not 0xD8 <= hi <= 0xDF]  # fmt: skip
    blocks = [ranges[i : i + 100] for i in range(0, len(ranges), 100)]
    return b"\n".join(
        [
            b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap",
            b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
            b"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def",
            b"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange",
            *(b"%d beginbfrange\n%s\nendbfrange" % (len(b), b"\n".join(b)) for b in blocks),
            b"endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n",
        ]
    )


def _write_fonts(pdf: PdfFile) -> tuple[int, int]:
    """The glyphless Type0 font and Helvetica, written once; their object numbers."""
    ttf = glyphless_font()
    fontfile = pdf.add(b"<< /Length1 %d /Filter /FlateDecode >>" % len(ttf), zlib.compress(ttf))
    descriptor = pdf.add(
        b"<< /Type /FontDescriptor /FontName /GlyphLessFont /Flags 5 /FontBBox [0 0 500 1000] "
        b"/ItalicAngle 0 /Ascent 1000 /Descent -1 /CapHeight 1000 /StemV 80 "
        b"/FontFile2 %d 0 R >>" % fontfile
    )
    # Every CID to glyph 1, not 0: Acrobat will not copy text shown with .notdef.
    cid_to_gid = pdf.add(b"<< /Filter /FlateDecode >>", zlib.compress(b"\0\1" * 65536, 9))
    to_unicode = pdf.add(b"<< /Filter /FlateDecode >>", zlib.compress(_to_unicode(), 9))
    cid_font = pdf.add(
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /GlyphLessFont "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
        b"/FontDescriptor %d 0 R /DW 500 /CIDToGIDMap %d 0 R >>" % (descriptor, cid_to_gid)
    )
    glyphless = pdf.add(
        b"<< /Type /Font /Subtype /Type0 /BaseFont /GlyphLessFont /Encoding /Identity-H "
        b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (cid_font, to_unicode)
    )
    helvetica = pdf.add(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    return glyphless, helvetica


# -- the page image --------------------------------------------------------------------------


def upright_image(image: Image.Image, layout: dict[str, Any]) -> Image.Image:
    """The page image as OCR read it, so that the layout's pixel boxes fit it.

    ``image`` is the page as stored, EXIF orientation applied (``images.load_page``), or
    a PDF page rendered at ``layout["dpi"]``. It is turned ``layout["rotation"]`` degrees
    clockwise, then rotated ``layout["skew"]`` degrees counter-clockwise (Pillow's sense,
    bicubic, the canvas grown to hold it, the corners white): :mod:`pagekit.processing.orient`
    turns the page OCR reads with the same two functions.
    """
    image = orient.turn(image, int(layout.get("rotation") or 0) % 360)
    skew = float(layout.get("skew") or 0.0)
    return orient.straighten(image, skew) if skew else image


def _flattened(img: Image.Image) -> Image.Image:
    """Mode 1, L or RGB, transparency flattened onto white: what a PDF image takes as is."""
    if img.mode in ("1", "L", "RGB"):
        return img
    if img.mode.startswith("I") or img.mode in ("F", "LA", "La"):
        return images.for_ocr(img)
    if img.mode in ("P", "PA", "RGBA", "RGBa"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def _image_xobject(img: Image.Image, jpeg: bytes | None = None) -> tuple[bytes, bytes]:
    """An image XObject's dictionary and data: bilevel images lossless, others JPEG.

    ``jpeg``: the page's own JPEG bytes, embedded as they are when the pixels are unchanged.
    """
    w, h = img.size
    if img.mode == "1":
        return (
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
            b"/BitsPerComponent 1 /Filter /FlateDecode >>" % (w, h),
            zlib.compress(img.tobytes()),
        )
    space = b"/DeviceGray" if img.mode == "L" else b"/DeviceRGB"
    if jpeg is None:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=JPEG_QUALITY)
        jpeg = buf.getvalue()
    return (
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s "
        b"/BitsPerComponent 8 /Filter /DCTDecode >>" % (w, h, space),
        jpeg,
    )


def _stored_image(
    data: bytes, page: LayoutPage, settings: Settings
) -> tuple[Image.Image, bytes | None]:
    """An image page upright (EXIF), ready for a PDF, and its JPEG bytes if usable as they are."""
    img = images.open_image(data, page.name, settings.max_image_pixels)
    as_is = img.format == "JPEG" and img.mode in ("L", "RGB")
    as_is = as_is and img.getexif().get(0x0112, 1) == 1
    images.decode(img, page.name)
    dpi = resolution(img)
    img = _flattened(images.upright(img))
    img.info["dpi"] = (dpi, dpi)
    return img, data if as_is else None


# -- the text layer --------------------------------------------------------------------------


def _codes(text: str) -> bytes:
    """``text`` as Identity-H codes in hex (characters outside the BMP become U+FFFD)."""
    bmp = "".join(ch if ord(ch) <= 0xFFFF else "\ufffd" for ch in text)
    return bmp.encode("utf-16-be").hex().upper().encode()


def text_layer(layout: dict[str, Any], page_height: float) -> bytes:
    """Content-stream operators placing every word of ``layout`` invisibly over its box.

    A line's words share its bottom as baseline and its height as font size, so that a
    viewer sees one line of text; each word starts at its box's left edge, stretched to
    the box's width, and a space stretched over the gap follows it. The stretch is in the
    text matrix rather than ``Tz``, which extractors such as pypdf leave out when they
    measure text and then see gaps that are not there.
    """
    scale = POINTS_PER_INCH / float(layout["dpi"])
    ops = [b"BT 3 Tr %s 1 Tf" % FONT]
    for line in lines(words(layout)):
        _, top, _, bottom = bbox(line)
        size = max((bottom - top) * scale, 1.0)
        base = page_height - bottom * scale
        for word, after in zip(line, [*line[1:], None], strict=True):
            _show(ops, _codes(word.text), word.x0 * scale, word.x1 * scale, base, size)
            if after is not None:
                end = max(after.x0, word.x1 + 1) * scale
                _show(ops, b"0020", word.x1 * scale, end, base, size)
    ops.append(b"ET")
    return b"\n".join(ops)


def _show(ops: list[bytes], codes: bytes, x0: float, x1: float, base: float, size: float) -> None:
    """Show ``codes`` (hex) from ``x0`` to ``x1`` on the baseline ``base``, ``size`` high."""
    glyphs = len(codes) // 4
    if glyphs and x1 > x0:
        stretch = (x1 - x0) / (glyphs * _GLYPH_EM)
        ops.append(b"%s 0 0 %s %s %s Tm <%s> Tj"
                   % (_num(stretch), _num(size), _num(x0), _num(base), codes))  # fmt: skip


def _page_size(layout: dict[str, Any]) -> tuple[float, float]:
    scale = POINTS_PER_INCH / float(layout["dpi"])
    return float(layout["width"]) * scale, float(layout["height"]) * scale


# -- pages -----------------------------------------------------------------------------------


class _Writer:
    """One export: the file, the shared fonts and the pages written so far."""

    def __init__(self, pdf: PdfFile, client: Client):
        self.pdf = pdf
        self.client = client
        self.settings = client.settings
        self.pages_root = pdf.reserve()
        self.glyphless, self.helvetica = _write_fonts(pdf)
        self.kids = array("q")
        self.labels: list[tuple[int, int]] = []  # (PDF page index, project page number)

    def page(self, page: LayoutPage) -> None:
        """Write one project page as one PDF page, a placeholder if it cannot be read."""
        try:
            num = self._page(page)
        except Exception as exc:  # one page never fails the export
            why = str(exc) or type(exc).__name__
            log.warning("%s: not in the PDF, a placeholder stands in: %s", page.name, why)
            num = self._placeholder(page, why)
        index = len(self.kids)
        self.kids.append(num)
        last = self.labels[-1] if self.labels else (0, 1)
        if page.page_number != last[1] + index - last[0]:  # numbering jumps: a new label
            self.labels.append((index, page.page_number))

    def _page(self, page: LayoutPage) -> int:
        data = self.client.blobs.get(page.blob)
        layout = page.ocr_layout
        if page.kind == "pdf":
            if layout is None:
                return copy_pdf_page(self.pdf, data, self.pages_root)
            img = pdfium_pages.capped(
                pdfium_pages.render_page, data, page.name, layout["dpi"],
                self.settings.max_image_pixels, source=page.name,
                memory_mb=self.settings.page_memory_mb, time_limit=0,
            )  # fmt: skip
            jpeg = None
        else:
            img, jpeg = _stored_image(data, page, self.settings)
        if layout is None:
            dpi = img.info["dpi"][0]
            size = (img.width * POINTS_PER_INCH / dpi, img.height * POINTS_PER_INCH / dpi)
            return self._image_page(img, jpeg, size, b"")
        turned = upright_image(img, layout)
        if turned.size != (int(layout["width"]), int(layout["height"])):
            log.warning("%s: the image is %dx%d, its layout %sx%s; stretched to fit",
                        page.name, *turned.size, layout["width"], layout["height"])  # fmt: skip
        size = _page_size(layout)
        return self._image_page(
            turned, jpeg if turned is img else None, size, text_layer(layout, size[1])
        )

    def _image_page(
        self, img: Image.Image, jpeg: bytes | None, size: tuple[float, float], hidden: bytes
    ) -> int:
        """A page showing ``img`` (mode 1, L or RGB) at ``size``, ``hidden`` text over it."""
        image = self.pdf.add(*_image_xobject(img, jpeg))
        content = b"q %s 0 0 %s 0 0 cm /Im0 Do Q\n" % (_num(size[0]), _num(size[1]))
        resources = b"/XObject << /Im0 %d 0 R >> /Font << %s %d 0 R >>" % (
            image, FONT, self.glyphless
        )  # fmt: skip
        return self._add_page(size, content + hidden, resources)

    def _placeholder(self, page: LayoutPage, why: str) -> int:
        (w, h), hidden = LETTER, b""
        if page.ocr_layout is not None:
            with contextlib.suppress(Exception):  # a damaged layout: the note alone
                w, h = _page_size(page.ocr_layout)
                hidden = text_layer(page.ocr_layout, h)
        note = f"Page {page.page_number} ({page.source}) could not be included: {why}"
        safe = note[:300].encode("cp1252", "replace")
        safe = safe.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        content = b"BT %s 9 Tf 36 %s Td (%s) Tj ET\n" % (NOTE_FONT, _num(h - 48), safe)
        fonts = b"%s %d 0 R %s %d 0 R" % (FONT, self.glyphless, NOTE_FONT, self.helvetica)
        return self._add_page((w, h), content + hidden, b"/Font << %s >>" % fonts)

    def _add_page(self, size: tuple[float, float], content: bytes, resources: bytes) -> int:
        """The page object and its content stream, under the page tree."""
        contents = self.pdf.add(b"<< /Filter /FlateDecode >>", zlib.compress(content))
        return self.pdf.add(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %s %s] /Contents %d 0 R "
            b"/Resources << %s >> >>"
            % (self.pages_root, _num(size[0]), _num(size[1]), contents, resources)
        )

    def close(self, title: str) -> None:
        from . import __version__

        kids = b" ".join(b"%d 0 R" % k for k in self.kids)
        self.pdf.write(
            self.pages_root, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(self.kids))
        )
        labels = b""
        if self.labels:
            if self.labels[0][0] != 0:
                self.labels.insert(0, (0, 1))
            nums = b" ".join(b"%d << /S /D /St %d >>" % pair for pair in self.labels)
            labels = b" /PageLabels << /Nums [%s] >>" % nums
        root = self.pdf.add(b"<< /Type /Catalog /Pages %d 0 R%s >>" % (self.pages_root, labels))
        info = self.pdf.add(
            b"<< /Title %s /Producer %s >>"
            % (_text_string(title), _text_string(f"pagekit {__version__}"))
        )
        self.pdf.close(root, info)


# -- copying a PDF page ----------------------------------------------------------------------


def copy_pdf_page(pdf: PdfFile, data: bytes, parent: int) -> int:
    """Copy the page of a one-page PDF into ``pdf`` under ``parent``; its object number.

    Every object the page reaches is written with a new number; streams are copied as
    stored, never decoded. References to the source's page tree or catalog become null.
    """
    from pypdf import PdfReader
    from pypdf.generic import DictionaryObject, IndirectObject

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted and not reader.decrypt(""):
        raise ValueError("the PDF needs a password")
    page = reader.pages[0]
    page_key = (page.indirect_reference.idnum, page.indirect_reference.generation)
    found: dict[tuple[int, int], Any] = {}  # reachable objects, in order of discovery
    todo: deque[Any] = deque([page])
    while todo:  # find them all first: a damaged object fails the page before any is written
        for ref in _references(todo.popleft()):
            key = (ref.idnum, ref.generation)
            if key == page_key or key in found:
                continue
            target = ref.get_object()
            if isinstance(target, DictionaryObject) and target.get("/Type") in (
                "/Pages", "/Catalog"
            ):  # fmt: skip
                found[key] = None
                continue
            found[key] = target
            todo.append(target)
    numbers = {key: pdf.reserve() for key, obj in found.items() if obj is not None}
    numbers[page_key] = pdf.reserve()

    def ref(obj: IndirectObject) -> bytes:
        num = numbers.get((obj.idnum, obj.generation))
        return b"%d 0 R" % num if num else b"null"

    for key, obj in found.items():
        if obj is not None:
            _write_object(pdf, numbers[key], obj, ref)
    body = io.BytesIO()
    body.write(b"<< /Parent %d 0 R" % parent)
    for name, value in page.items():
        if name != "/Parent":
            body.write(b" " + _serialize(name, ref) + b" " + _serialize(value, ref))
    body.write(b" >>")
    return pdf.write(numbers[page_key], body.getvalue())


def _references(obj: Any) -> list[Any]:
    """The indirect references directly inside ``obj`` (not inside what they point to)."""
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    out: list[Any] = []
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, IndirectObject):
            out.append(item)
        elif isinstance(item, DictionaryObject):
            stack.extend(v for k, v in item.items() if not (item is obj and k == "/Parent"))
        elif isinstance(item, ArrayObject):
            stack.extend(item)
    return out


def _write_object(pdf: PdfFile, num: int, obj: Any, ref: Any) -> None:
    from pypdf.generic import StreamObject

    if isinstance(obj, StreamObject):
        entries = b" ".join(
            _serialize(k, ref) + b" " + _serialize(v, ref) for k, v in obj.items() if k != "/Length"
        )
        pdf.write(num, b"<< " + entries + b" >>", obj._data)  # the stored (encoded) bytes
    else:
        pdf.write(num, _serialize(obj, ref))


def _serialize(obj: Any, ref: Any) -> bytes:
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject

    if isinstance(obj, IndirectObject):
        return ref(obj)
    if isinstance(obj, StreamObject):  # a direct stream cannot be: the spec forbids it
        raise ValueError("a stream object that is not an indirect object")
    if isinstance(obj, DictionaryObject):
        items = (_serialize(k, ref) + b" " + _serialize(v, ref) for k, v in obj.items())
        return b"<< " + b" ".join(items) + b" >>"
    if isinstance(obj, ArrayObject):
        return b"[" + b" ".join(_serialize(v, ref) for v in obj) + b"]"
    buf = io.BytesIO()
    obj.write_to_stream(buf)
    return buf.getvalue()


# -- the export ------------------------------------------------------------------------------


def write_pdf(client: Client, project_id: int, path: Path) -> None:
    """Write the project's pages, in page order, as one searchable PDF at ``path``."""
    title = client.store.project(project_id).name
    with path.open("wb") as fh:
        writer = _Writer(PdfFile(fh), client)
        for page in iter_layout_pages(client.store, project_id):
            writer.page(page)
        writer.close(title)
