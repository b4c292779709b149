"""Generate pages with known text: for tests, benchmarks and the shipped samples.

Pillow and pypdf only, no system fonts (Pillow's bundled default TrueType font), so the
output is the same on every machine.
"""

from __future__ import annotations

import io
import random
import re
import textwrap
from collections import Counter
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFilter, ImageFont

# Invented letters in the style of the 1890s: plain ASCII, mostly common dictionary words,
# so OCR of a clean rendering is near perfect and tests can compare words.
SAMPLE_TEXTS: list[str] = [
    "Dear Margaret, We arrived in the city on Tuesday evening after a long and dusty ride "
    "from the coast. The hotel is small but clean, and the rooms look out over a quiet "
    "square where children play until dark. Father has gone to see the bank about the "
    "land near the river, and he hopes to settle the matter before the end of the month. "
    "Please tell mother that the weather is mild and that I wear my warm coat every day.",
    "Dear Sir, I write to inform you that the cargo of wheat and flour which left the mill "
    "on the third of June has reached the harbour in good order. The captain reports fair "
    "winds for most of the voyage and only one night of heavy rain. We shall unload the "
    "ship on Monday and send the goods by rail to the market towns in the north. Kindly "
    "forward the remaining payment to our office at your earliest convenience.",
    "My dear brother, The farm is doing better this year than we had any reason to expect. "
    "The apple trees are full, the corn stands tall in the lower field, and the new horse "
    "has proved strong and willing. Our neighbour helped us mend the old barn roof before "
    "the storms came. We often speak of you at supper and wonder how you find life in the "
    "great city. Write soon and tell us all your news.",
    "Dear Mrs Holloway, Thank you for your kind letter and for the parcel of books, which "
    "came safely on Friday. The children have already read the story of the lighthouse "
    "keeper twice over and now ask for it each night. School begins again next week, and "
    "the teacher has asked me to help with the reading class in the mornings. I hope your "
    "garden has recovered from the late frost and that your health is good.",
    "Gentlemen, In reply to your letter of the twelfth, we regret that we cannot supply the "
    "iron pipes at the price you name. The cost of coal has risen sharply since the spring, "
    "and the works must run longer hours to meet the orders already in hand. We can offer "
    "a small reduction if you will accept delivery in two parts, the first in August and "
    "the second before the close of the year. We await your answer.",
    "Dearest Anna, The wedding was a happy day in every way. The church was filled with "
    "white flowers from the garden, the sun came out just as we walked to the door, and "
    "the old minister spoke so warmly that many of the guests were moved to tears. After "
    "the service we all went down to the lake for a long dinner under the trees. I wish "
    "with all my heart that you could have been there with us.",
    "Dear Doctor Bell, I am glad to report that the patient in the north ward has made a "
    "steady recovery since your last visit. His fever broke on Sunday night, he sleeps "
    "well, and this morning he asked for bread and a cup of tea. The nurse keeps the "
    "windows open for fresh air as you advised. We shall watch him closely for another "
    "week before he returns home to his family in the valley.",
    "To the Editor, Sir, I wish to draw the attention of your readers to the poor state of "
    "the road between the station and the market square. After every rain the deep holes "
    "fill with water, and only last week a cart lost a wheel and spilled its whole load of "
    "potatoes across the street. Surely the town council can find the money to repair a "
    "road that is used by so many people every day. Yours, a resident.",
    "Dear Uncle Robert, Many thanks for the silver watch, which I shall keep all my life. "
    "I have begun work as a clerk in the shipping office near the docks, where I copy "
    "letters, keep the books, and carry messages to the captains. The hours are long but "
    "the work is honest, and the manager says that I may rise to a better post if I am "
    "careful and quick. I send my love to aunt Clara and the little ones.",
    "Dear Miss Porter, The committee met on Wednesday and agreed to hold the summer fair in "
    "the park on the last Saturday of July. We shall need tables for the cakes and jams, a "
    "stand for the band, and several strong men to raise the large tent. Mr Grant has "
    "kindly offered the use of his wagon. Please let me know whether your sisters will "
    "once again take charge of the flower stall, which was so admired last year.",
    "My dear Thomas, The snow has been falling for three days, and the village is quite cut "
    "off from the world. We have plenty of wood for the fire and enough flour and salt to "
    "last the month, so you need not worry about us. The boys spend the short days "
    "building a fort in the yard and come in red and hungry at dusk. Mother knits by the "
    "window and says the winter reminds her of her childhood in the hills.",
    "Dear Sirs, Please find enclosed a list of the goods required for the new store, "
    "namely twelve barrels of sugar, twenty sacks of coffee, fifty boxes of soap, and a "
    "quantity of lamp oil. We should be obliged if you would ship them by the first "
    "steamer and send the account to this address. The store will open on the first day "
    "of next month, and we expect a good trade from the farmers of the district.",
    "Dear Helen, Yesterday we climbed the hill behind the house and looked out across the "
    "whole valley. We could see the river shining in the sun, the church tower in the "
    "distance, and the smoke rising from the chimneys of the town. We ate our bread and "
    "cheese on a flat rock and watched the clouds drift slowly over the fields. It was the "
    "finest day of the summer, and I thought of you the whole time.",
    "Dear Professor Lane, I have completed the survey of the old stone bridge as you asked. "
    "The arches are sound, but the water has worn away part of the eastern wall, and "
    "several of the large stones have moved out of line. I would suggest that the work of "
    "repair begin before the autumn floods. I enclose my drawings and notes, and I shall "
    "call at your office on Thursday to answer any questions you may have.",
]


def _wrap(text: str, font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and font.getlength(candidate) > max_width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def _layout(text: str, width: int, height: int, font_size: int) -> list[tuple[int, int, str]]:
    """Where :func:`text_image` draws each line: ``(x, y, line)``, top left in pixels."""
    font = ImageFont.load_default(size=font_size)
    margin = width // 10
    y = height // 12
    placed = []
    for line in _wrap(text, font, width - 2 * margin):
        if y + font_size > height - height // 12:
            break
        placed.append((margin, y, line))
        y += int(font_size * 1.5)
    return placed


def text_image(
    text: str,
    *,
    width: int = 1700,
    height: int = 2200,
    font_size: int = 40,
    rotate: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> Image.Image:
    """A grayscale page with ``text`` wrapped inside margins, black on white.

    ``rotate`` tilts the page by that many degrees (like a skewed scan); ``noise`` is the
    fraction of pixels turned into dark or light specks.
    """
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=font_size)
    for x, y, line in _layout(text, width, height, font_size):
        draw.text((x, y), line, fill=0, font=font)
    if rotate:
        img = img.rotate(rotate, resample=Image.Resampling.BICUBIC, fillcolor=255)
    if noise > 0:
        rng = random.Random(seed)
        draw = ImageDraw.Draw(img)
        for _ in range(int(noise * width * height)):
            xy = (rng.randrange(width), rng.randrange(height))
            draw.point(xy, fill=rng.choice((40, 90, 200)))
    return img


def lying(img: Image.Image, degrees: int) -> Image.Image:
    """The page as a scanner fed it, turned ``degrees`` (90, 180, 270) counter-clockwise:
    pagekit should turn it back ``degrees`` clockwise and record ``rotation == degrees``."""
    return img.rotate(degrees, expand=True)


def low_contrast_image(
    text: str,
    *,
    width: int = 1275,
    height: int = 1650,
    font_size: int = 24,
    ink: int = 170,
    paper: int = 225,
    blur: float = 2.6,
) -> Image.Image:
    """A faint, blurred page: gray ``ink`` on gray ``paper``, small type. Tesseract reads
    part of it with a low mean confidence (about 48 and half the words, as generated)."""
    img = text_image(text, width=width, height=height, font_size=font_size)
    img = img.point(lambda v: round(ink + (paper - ink) * v / 255))
    return img.filter(ImageFilter.GaussianBlur(blur))


def word_box(
    text: str, word: str, *, width: int, height: int, font_size: int
) -> tuple[int, int, int, int]:
    """Where :func:`text_image` draws the first ``word`` of ``text``: ``(x0, y0, x1, y1)``
    in pixels, from the font's metrics."""
    font = ImageFont.load_default(size=font_size)
    for x, y, line in _layout(text, width, height, font_size):
        before, found, _ = f" {line} ".partition(f" {word} ")
        if found:
            left = x + font.getlength(before[1:] + " ") if before.strip() else x
            x0, y0, x1, y1 = font.getbbox(word)
            return round(left + x0), y + y0, round(left + x1), y + y1
    raise ValueError(f"{word!r} is not a word of the page")


# Transposes that turn an upright image into the pixels a camera stores with each EXIF
# orientation (the inverse of what ImageOps.exif_transpose applies).
_STORE_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def image_bytes(
    img: Image.Image, fmt: str = "PNG", exif_orientation: int | None = None, **save: object
) -> bytes:
    """Encode ``img``; with ``exif_orientation`` the pixels are stored turned, plus the EXIF
    tag that turns them upright again (as phone cameras do)."""
    exif = Image.Exif()
    if exif_orientation and exif_orientation != 1:
        img = img.transpose(_STORE_AS[exif_orientation])
        exif[0x0112] = exif_orientation
    buf = io.BytesIO()
    if exif_orientation:
        save["exif"] = exif.tobytes()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def _pdf_string(line: str) -> str:
    safe = line.encode("latin-1", "replace").decode("latin-1")
    return safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _stream(entries: str, data: bytes) -> bytes:
    head = f"<< {entries} /Length {len(data)} >>" if entries else f"<< /Length {len(data)} >>"
    return f"{head}\nstream\n".encode() + data + b"\nendstream"


def _pdf(objects: Sequence[bytes]) -> bytes:
    """A PDF file of ``objects`` (object n is ``objects[n - 1]``; 1 is the catalog)."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def text_pdf(pages: Sequence[str], *, font_size: int = 12) -> bytes:
    """A US Letter PDF whose pages carry ``pages`` as a real text layer (Helvetica)."""
    objects: list[bytes] = []  # object n is objects[n - 1]
    n_pages = len(pages)
    font_obj = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, text in enumerate(pages):
        ops = [f"BT /F1 {font_size} Tf {font_size * 1.4:.1f} TL 72 720 Td"]
        # Helvetica averages about half an em per character.
        for line in textwrap.wrap(text, width=int(468 / (font_size * 0.5))) or [""]:
            ops.append(f"({_pdf_string(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_obj} 0 R >> >> >>".encode()
        )
        objects.append(_stream("", stream))
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    return _pdf(objects)


def _to_unicode(mapping: dict[int, str]) -> bytes:
    """A ToUnicode CMap sending one-byte codes to the given characters."""
    lines = [
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        "/CMapName /Adobe-Identity-UCS def /CMapType 2 def",
        "1 begincodespacerange <00> <FF> endcodespacerange",
    ]
    items = sorted(mapping.items())
    for start in range(0, len(items), 100):  # at most 100 entries per block
        chunk = items[start : start + 100]
        lines.append(f"{len(chunk)} beginbfchar")
        lines += [f"<{code:02X}> <{ord(ch):04X}>" for code, ch in chunk]
        lines.append("endbfchar")
    lines.append("endcmap CMapName currentdict /CMap defineresource pop end end")
    return "\n".join(lines).encode("ascii")


# What a broken font's text layer turns each printable ASCII code into (space stays).
WRONG_LAYERS = {
    # Unmapped glyphs that a converter put in the private use area.
    "private-use": lambda code: chr(0xE000 + code),
    # UTF-16 read with its bytes swapped: "Dear" becomes "䐀攀愀爀", CJK-looking garbage.
    "cjk": lambda code: chr(code << 8),
}


def wrong_layer_pdf(
    text: str,
    *,
    layer: str = "cjk",
    width: int = 1275,
    height: int = 1650,
    font_size: int = 34,
    dpi: int = 150,
) -> bytes:
    """A one-page letter PDF that shows ``text`` (an image, as a scan) under an invisible
    text layer (render mode 3) whose font maps every letter to the wrong character
    (``layer``: a key of :data:`WRONG_LAYERS`), as PDFs with broken fonts do.

    The page renders as real text, while its extracted text is garbage.
    """
    wrong = WRONG_LAYERS[layer]
    img = text_image(text, width=width, height=height, font_size=font_size)
    jpeg = io.BytesIO()
    img.save(jpeg, "JPEG", quality=85)
    w_pt, h_pt = width * 72 / dpi, height * 72 / dpi
    size_pt = font_size * 72 / dpi
    ops = [f"q {w_pt:.2f} 0 0 {h_pt:.2f} 0 0 cm /Im1 Do Q", f"BT 3 Tr /F1 {size_pt:.2f} Tf"]
    for x, y, line in _layout(text, width, height, font_size):
        baseline = h_pt - (y + font_size * 0.8) * 72 / dpi
        ops.append(f"1 0 0 1 {x * 72 / dpi:.2f} {baseline:.2f} Tm ({_pdf_string(line)}) Tj")
    ops.append("ET")
    mapping = {code: wrong(code) for code in range(0x21, 0x7F)}
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w_pt:.2f} {h_pt:.2f}] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> /XObject << /Im1 6 0 R >> >> >>".encode(),
        _stream("", "\n".join(ops).encode("latin-1")),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding "
        b"/ToUnicode 7 0 R >>",
        _stream(
            f"/Type /XObject /Subtype /Image /Width {width} /Height {height} "
            "/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode",
            jpeg.getvalue(),
        ),
        _stream("", _to_unicode(mapping)),
    ]
    return _pdf(objects)


def scanned_pdf(images: Sequence[Image.Image], *, dpi: int = 150, quality: int = 75) -> bytes:
    """An image-only PDF (no text layer), one page per image, as a scanner makes."""
    first, *rest = images
    buf = io.BytesIO()
    first.save(buf, "PDF", resolution=dpi, save_all=True, append_images=rest, quality=quality)
    return buf.getvalue()


def merge_pdfs(parts: Sequence[bytes]) -> bytes:
    """The pages of every PDF in ``parts``, in order, as one PDF."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for part in parts:
        writer.append(io.BytesIO(part))
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def multipage_tiff(images: Sequence[Image.Image], *, dpi: int = 150) -> bytes:
    """A multi-frame TIFF (deflate-compressed), one frame per image."""
    first, *rest = images
    buf = io.BytesIO()
    first.save(
        buf,
        "TIFF",
        save_all=True,
        append_images=rest,
        compression="tiff_adobe_deflate",
        dpi=(dpi, dpi),
    )
    return buf.getvalue()


def _words(text: str) -> Counter[str]:
    return Counter(re.sub(r"[^a-z0-9\s]", " ", text.lower()).split())


def word_recall(expected: str, found: str) -> float:
    """The share of ``expected``'s words (a multiset; case and punctuation ignored) that
    ``found`` contains: how tests and benchmarks score OCR."""
    want = _words(expected)
    total = sum(want.values())
    return sum((want & _words(found)).values()) / total if total else 1.0
