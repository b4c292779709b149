"""hOCR 1.2 and ALTO v4 from a page's word layout, and the zips that hold one file per page.

A layout is what OCR stored for a page (``pagekit.store.PageLayout``): pixel boxes in the
image OCR read (upright and deskewed), words grouped by Tesseract's block, paragraph and
line numbers. Blocks become ``ocr_carea`` / ``TextBlock`` (ALTO has no paragraph level:
one ``TextBlock`` per paragraph), lines ``ocr_line`` / ``TextLine``, words ``ocrx_word`` /
``String`` with ``SP`` between them.

Every project page gets a file, so ``page-0007.xml`` is always page 7. A page without
OCR words (a PDF page read from its own text layer, a page not processed or failed) is
an empty page: its size when known, no text; its text is in the other exports.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import replace
from html import escape
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .store.layouts import LayoutPage, iter_layout_pages
from .store.reporting import last_page_number

if TYPE_CHECKING:
    from .client import Client

log = logging.getLogger(__name__)

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
ALTO_SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-2.xsd"
HOCR_CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf ocrp_lang"
# File name extension inside the zip, by format.
EXTENSIONS = {"hocr": "hocr", "alto": "xml"}

_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# xsd:language, which ALTO's LANG must be ("eng" is; Tesseract's "chi_sim", "eng+deu" are not).
_XSD_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")


class Word(NamedTuple):
    """One word of a layout, in pixels of the image OCR read."""

    text: str
    x0: int
    y0: int
    x1: int
    y1: int
    conf: float  # Tesseract's 0-100
    block: int
    par: int
    line: int


def words(layout: dict[str, Any]) -> list[Word]:
    """The layout's words in reading order, empty ones and XML-illegal characters left out."""
    out = []
    for text, x0, y0, x1, y1, conf, block, par, line in layout.get("words") or []:
        text = _XML_ILLEGAL.sub("", str(text)).strip()
        if text:
            box = round(x0), round(y0), round(x1), round(y1)
            out.append(Word(text, *box, float(conf), int(block), int(par), int(line)))
    return out


def bbox(items: Iterable[Word]) -> tuple[int, int, int, int]:
    """The box around the words: ``(x0, y0, x1, y1)``."""
    items = list(items)
    return (
        min(w.x0 for w in items), min(w.y0 for w in items),
        max(w.x1 for w in items), max(w.y1 for w in items),
    )  # fmt: skip


def lines(items: list[Word]) -> Iterator[list[Word]]:
    """The words line by line, in order (consecutive words of one block, par and line)."""
    for _, line in groupby(items, key=lambda w: (w.block, w.par, w.line)):
        yield list(line)


def _blocks(items: list[Word]) -> Iterator[list[Word]]:
    for _, block in groupby(items, key=lambda w: w.block):
        yield list(block)


def _pars(items: list[Word]) -> Iterator[list[Word]]:
    for _, par in groupby(items, key=lambda w: (w.block, w.par)):
        yield list(par)


def _size(page: LayoutPage) -> tuple[int, int] | None:
    if page.ocr_layout:
        return int(page.ocr_layout["width"]), int(page.ocr_layout["height"])
    if page.width and page.height:
        return page.width, page.height
    return None


def _words_of(page: LayoutPage) -> list[Word]:
    layout = page.ocr_layout
    return words(layout) if layout else []


def _attr(value: object) -> str:
    return escape(_XML_ILLEGAL.sub("", str(value)), quote=True)


# -- hOCR ------------------------------------------------------------------------------------


def _title_bbox(box: tuple[int, int, int, int]) -> str:
    return "bbox {} {} {} {}".format(*box)


def hocr_page(page: LayoutPage, software: str) -> str:
    """One page as an XHTML hOCR 1.2 document."""
    items = _words_of(page)
    props = []
    size = _size(page)
    if size:
        props.append(_title_bbox((0, 0, *size)))
    props.append(f"ppageno {page.page_number - 1}")
    dpi = (page.ocr_layout or {}).get("dpi")
    if dpi:
        props.append(f"scan_res {round(dpi)} {round(dpi)}")
    lang = f" lang='{_attr(page.language)}'" if page.language else ""
    n = page.page_number
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n'
        '    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
        " <head>\n"
        f"  <title>{_attr(page.source)}</title>\n"
        '  <meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n'
        f"  <meta name='ocr-system' content='{_attr(software)}'/>\n"
        f"  <meta name='ocr-capabilities' content='{HOCR_CAPABILITIES}'/>\n"
        " </head>\n"
        " <body>\n"
        f"  <div class='ocr_page' id='page_{n}' title='{'; '.join(props)}'>\n"
    ]
    ids = {"block": 0, "par": 0, "line": 0, "word": 0}

    def next_id(kind: str) -> str:
        ids[kind] += 1
        return f"{kind}_{n}_{ids[kind]}"

    for block in _blocks(items):
        out.append(f"   <div class='ocr_carea' id='{next_id('block')}' "
                   f"title='{_title_bbox(bbox(block))}'>\n")  # fmt: skip
        for par in _pars(block):
            out.append(f"    <p class='ocr_par' id='{next_id('par')}'{lang} "
                       f"title='{_title_bbox(bbox(par))}'>\n")  # fmt: skip
            for line in lines(par):
                out.append(f"     <span class='ocr_line' id='{next_id('line')}' "
                           f"title='{_title_bbox(bbox(line))}'>")  # fmt: skip
                out.append(" ".join(
                    f"<span class='ocrx_word' id='{next_id('word')}' title='"
                    f"{_title_bbox((w.x0, w.y0, w.x1, w.y1))}; x_wconf {_wconf(w)}'>"
                    f"{escape(w.text, quote=False)}</span>"
                    for w in line
                ))  # fmt: skip
                out.append("</span>\n")
            out.append("    </p>\n")
        out.append("   </div>\n")
    out.append("  </div>\n </body>\n</html>\n")
    return "".join(out)


def _wconf(w: Word) -> int:
    return max(0, min(100, round(w.conf)))


# -- ALTO ------------------------------------------------------------------------------------


def _pos(box: tuple[int, int, int, int]) -> str:
    x0, y0, x1, y1 = box
    return f'HPOS="{x0}" VPOS="{y0}" WIDTH="{x1 - x0}" HEIGHT="{y1 - y0}"'


def alto_page(page: LayoutPage, software: str, version: str) -> str:
    """One page as an ALTO v4 document (MeasurementUnit pixel)."""
    items = _words_of(page)
    size = _size(page)
    n = page.page_number
    lang = page.language or ""
    lang_attr = f' LANG="{lang}"' if _XSD_LANGUAGE.fullmatch(lang) else ""
    engine = ""
    if page.engine:
        engine = f"<applicationDescription>{_attr(page.engine)}</applicationDescription>"
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<alto xmlns="{ALTO_NS}" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{ALTO_NS} {ALTO_SCHEMA}">\n'
        " <Description>\n"
        "  <MeasurementUnit>pixel</MeasurementUnit>\n"
        f"  <sourceImageInformation><fileName>{_attr(page.source)}</fileName>"
        "</sourceImageInformation>\n"
        '  <Processing ID="processing_1"><processingCategory>contentGeneration'
        "</processingCategory><processingSoftware>"
        f"<softwareName>{_attr(software)}</softwareName>"
        f"<softwareVersion>{_attr(version)}</softwareVersion>{engine}"
        "</processingSoftware></Processing>\n"
        " </Description>\n"
        " <Layout>\n"
    ]
    page_size = f' WIDTH="{size[0]}" HEIGHT="{size[1]}"' if size else ""
    out.append(f'  <Page ID="page_{n}" PHYSICAL_IMG_NR="{n}"{page_size}>\n')
    space = f' HPOS="0" VPOS="0" WIDTH="{size[0]}" HEIGHT="{size[1]}"' if size else ""
    out.append(f"   <PrintSpace{space}>\n")
    counts = {"block": 0, "line": 0, "string": 0}

    def next_id(kind: str) -> str:
        counts[kind] += 1
        return f"{kind}_{n}_{counts[kind]}"

    for par in _pars(items):
        out.append(f'    <TextBlock ID="{next_id("block")}" {_pos(bbox(par))}{lang_attr}>\n')
        for line in lines(par):
            out.append(f'     <TextLine ID="{next_id("line")}" {_pos(bbox(line))}>')
            for i, w in enumerate(line):
                if i:
                    gap_x0 = line[i - 1].x1
                    out.append(f'<SP HPOS="{gap_x0}" VPOS="{w.y0}" '
                               f'WIDTH="{max(0, w.x0 - gap_x0)}"/>')  # fmt: skip
                wc = max(0.0, min(1.0, w.conf / 100))
                out.append(
                    f'<String ID="{next_id("string")}" {_pos((w.x0, w.y0, w.x1, w.y1))} '
                    f'WC="{wc:.2f}" CONTENT="{_attr(w.text)}"/>'
                )
            out.append("</TextLine>\n")
        out.append("    </TextBlock>\n")
    out.append("   </PrintSpace>\n  </Page>\n </Layout>\n</alto>\n")
    return "".join(out)


# -- the zips --------------------------------------------------------------------------------


def write_zip(client: Client, project_id: int, path: Path, fmt: str) -> None:
    """A zip of one hOCR (``fmt="hocr"``) or ALTO (``"alto"``) file per page, in page order.

    Pages are read from the store a chunk at a time and each file goes into the zip as it
    is made, so memory holds one chunk of layouts whatever the project's size.
    """
    from . import __version__

    ext = EXTENSIONS[fmt]
    width = max(4, len(str(last_page_number(client.store, project_id))))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for page in iter_layout_pages(client.store, project_id):
            try:
                doc = _document(page, fmt, __version__)
            except (KeyError, TypeError, ValueError) as exc:  # one page never fails the zip
                log.warning("%s: layout unreadable (%s), written without words", page.name, exc)
                doc = _document(replace(page, layout=None), fmt, __version__)
            zf.writestr(f"page-{page.page_number:0{width}d}.{ext}", doc.encode("utf-8"))


def _document(page: LayoutPage, fmt: str, version: str) -> str:
    if fmt == "hocr":
        engine = f" ({page.engine})" if page.engine else ""
        return hocr_page(page, f"pagekit {version}{engine}")
    return alto_page(page, "pagekit", version)
