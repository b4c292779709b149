"""Bytes or paths in, validated pages out.

The type is sniffed from the bytes (never the name), limits are enforced before anything
is decoded, PDFs are split into single-page PDFs (pypdf) and multi-page TIFFs into frames.
A file is accepted whole or refused with one :class:`~pagekit.errors.IngestError`.

Nothing here parses a PDF page's content: pypdf counts and splits pages without decoding
content streams, so a small PDF whose content inflates to gigabytes costs the caller
nothing. Workers open pages in PDFium under a memory cap (:mod:`pagekit.processing.pdf`).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pypdf import PdfReader, PdfWriter
from pypdf.generic import NullObject

from .errors import (
    BadFileName,
    CorruptFile,
    EmptyFile,
    EncryptedPDF,
    FileTooLarge,
    IngestError,
    UnsupportedType,
)
from .processing import images
from .validate import bidi_controls

MiB = 1024 * 1024
CHUNK = MiB  # file objects are read this much at a time, up to the limit
SUPPORTED = "PDF, JPEG, PNG, TIFF, WebP, BMP"
_DECRYPT_HINT = (
    "remove the password, e.g. `qpdf --decrypt --password=... in.pdf out.pdf`, and add it again"
)
_REPAIR_HINT = "re-export or re-scan it, or try repairing it with `qpdf in.pdf out.pdf`"

Item = str | os.PathLike[str] | tuple[str, bytes] | bytes | IO[bytes]


@dataclass(frozen=True)
class IngestedPage:
    """One page of an accepted file, ready to store and process."""

    data: bytes  # image bytes, or a single-page PDF
    kind: str  # "image" | "pdf"
    mime: str  # sniffed from the bytes
    source: str  # the file's (sanitized) name
    index: int  # 0-based page or frame index in the file
    count: int  # pages or frames in the file
    sha256: str  # hex sha256 of data

    @property
    def label(self) -> str:
        """A human name: ``"box3.pdf page 2"``, or just ``"scan.jpg"`` for a one-page file."""
        return f"{self.source} page {self.index + 1}" if self.count > 1 else self.source


def _mib(n: int) -> str:
    return f"{n / MiB:.3g}"


def _too_large(name: str, size: int | None, max_bytes: int) -> FileTooLarge:
    """``size`` None: a stream read up to the limit, whose full size is not known."""
    what = "file is over" if size is None else f"file is {_mib(size)} MiB, over"
    return FileTooLarge(
        name,
        f"{what} the limit of {_mib(max_bytes)} MiB; split it, or raise PAGEKIT_MAX_UPLOAD_BYTES",
        limit=max_bytes,
    )


def _remaining(f: IO[bytes]) -> int | None:
    """Bytes left from the file object's position, or None if it cannot seek."""
    try:
        if not f.seekable():
            return None
        here = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return max(0, end - here)


def _read_limited(f: IO[bytes], name: str, max_bytes: int | None) -> bytes:
    """Read a file object in chunks; refuse it as soon as it passes ``max_bytes``.

    A seekable file over the limit is refused from its size, before a byte is read.
    """
    if max_bytes is None:
        return f.read()
    size = _remaining(f)
    if size is not None and size > max_bytes:
        raise _too_large(name, size, max_bytes)
    chunks, seen = [], 0
    while True:
        chunk = f.read(min(CHUNK, max_bytes + 1 - seen))
        if not chunk:
            return b"".join(chunks)
        seen += len(chunk)
        if seen > max_bytes:
            raise _too_large(name, None, max_bytes)
        chunks.append(chunk)


def load_item(item: Item, *, max_bytes: int | None = None) -> tuple[str, bytes, bool]:
    """Read one input into ``(name, data, is_upload)``.

    ``item`` is a path (name = its basename; the size is checked with ``stat`` before
    reading), ``(name, bytes)`` or ``(name, file object)`` (an upload), ``bytes`` (name
    "upload"), or a binary file object (name from its ``name``, or "upload"). File objects
    are read in chunks and refused as soon as they pass ``max_bytes``. Paths are trusted
    as the caller's own files; everything else is an upload whose name :func:`split` checks.
    """
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        name = path.name or str(item)
        try:
            size = path.stat().st_size
            if path.is_dir():
                raise IngestError(str(item), "is a directory; pass the files inside it")
            if max_bytes is not None and size > max_bytes:
                raise _too_large(name, size, max_bytes)
            return name, path.read_bytes(), False
        except FileNotFoundError:
            raise IngestError(str(item), "file not found; check the path") from None
        except OSError as exc:
            raise IngestError(
                str(item), f"cannot read the file ({exc.strerror}); check its permissions"
            ) from None
    if isinstance(item, tuple):
        name, data = item
        if hasattr(data, "read"):  # an upload spooled to a file (the HTTP API)
            return name, _read_limited(data, name or "upload", max_bytes), True
        return name, bytes(data), True
    if isinstance(item, (bytes, bytearray, memoryview)):
        return "upload", bytes(item), True
    if hasattr(item, "read"):
        raw_name = getattr(item, "name", None)
        name = Path(raw_name).name if isinstance(raw_name, (str, os.PathLike)) else ""
        name = name or "upload"
        return name, _read_limited(item, name, max_bytes), True
    raise TypeError(
        f"cannot ingest a {type(item).__name__}; pass a path, bytes, (name, bytes) or a file"
    )


def sniff(data: bytes) -> str | None:
    """The MIME type from the magic bytes (never from a file name); None if unsupported."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"BM"):
        return "image/bmp"
    if b"%PDF-" in data[:1024]:  # PDF readers allow junk before the header
        return "application/pdf"
    return None


def check_name(name: str) -> str:
    """Refuse upload names that carry a path or control characters; return the name."""
    fix = "upload it under a plain name like 'page.png'"
    source = repr(name)[:80]
    if not name or not name.strip():
        raise BadFileName("upload", f"the file name is empty; {fix}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise BadFileName(source, f"the file name contains control characters; {fix}")
    _refuse_bidi(name, fix)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise BadFileName(source, f"the file name contains a path; {fix}")
    if len(name.encode("utf-8")) > 255:
        raise BadFileName(source, f"the file name is longer than 255 bytes; {fix}")
    return name


def _refuse_bidi(name: str, fix: str) -> None:
    """A name that displays differently from what it is (uploads and local files alike)."""
    bidi = bidi_controls(name)
    if bidi:
        raise BadFileName(
            repr(name)[:80],
            f"the file name contains bidirectional control characters ({', '.join(bidi)}) "
            f"that make it display differently from what it is; {fix}",
        )


def _page(data: bytes, kind: str, mime: str, name: str, index: int, count: int) -> IngestedPage:
    sha = hashlib.sha256(data).hexdigest()
    return IngestedPage(data, kind, mime, name, index, count, sha)


def split(
    data: bytes, name: str, *, max_bytes: int, max_pixels: int, is_upload: bool = True
) -> list[IngestedPage]:
    """Validate one file and split it into pages; raises one IngestError, never returns []."""
    if is_upload:
        check_name(name)
    else:  # a local file's name is the user's own: refuse only what misleads the eye
        _refuse_bidi(name, "rename the file")
    if not data:
        raise EmptyFile(name, "the file is empty (0 bytes); add it again once fully copied")
    if len(data) > max_bytes:
        raise _too_large(name, len(data), max_bytes)
    mime = sniff(data)
    if mime is None:
        raise UnsupportedType(
            name,
            f"not a supported file type (the contents decide, not the name); "
            f"supported: {SUPPORTED}",
        )
    if mime == "application/pdf":
        return _split_pdf(data, name)
    return _split_image(data, mime, name, max_pixels)


def _split_image(data: bytes, mime: str, name: str, max_pixels: int) -> list[IngestedPage]:
    img = images.open_image(data, name, max_pixels)
    frames = getattr(img, "n_frames", 1) if mime == "image/tiff" else 1
    if frames <= 1:
        images.decode(img, name)  # catch truncation now, not on a worker
        return [_page(data, "image", mime, name, 0, 1)]
    pages = []
    for index in range(frames):
        source = f"{name} frame {index + 1}"
        try:
            img.seek(index)
        except EOFError:
            raise CorruptFile(
                source, "TIFF frame is missing (file truncated?); re-scan or re-export"
            ) from None
        images.check_pixels(img, source, max_pixels)
        images.decode(img, source)
        frame = images.upright(img)
        if frame.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
            frame = frame.convert("RGB")
        buf = io.BytesIO()
        dpi = img.info.get("dpi")
        frame.save(buf, "PNG", **({"dpi": dpi} if dpi else {}))
        pages.append(_page(buf.getvalue(), "image", "image/png", name, index, frames))
    return pages


def _split_pdf(data: bytes, name: str) -> list[IngestedPage]:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # an owner-only password opens with ""
            except Exception:  # e.g. AES without a crypto library: treat as locked
                opened = 0
            if not opened:
                raise EncryptedPDF(name, f"the PDF needs a password; {_DECRYPT_HINT}")
        count = len(reader.pages)
    except IngestError:
        raise
    except Exception as exc:
        raise CorruptFile(
            name, f"PDF cannot be read ({type(exc).__name__}: {exc}); {_REPAIR_HINT}"
        ) from None
    if count == 0:
        raise CorruptFile(name, f"the PDF has no pages; {_REPAIR_HINT}")
    return [
        _page(_pdf_page(reader, i, name), "pdf", "application/pdf", name, i, count)
        for i in range(count)
    ]


def _pdf_page(reader: PdfReader, index: int, name: str) -> bytes:
    """Page ``index`` as a one-page PDF (content streams are copied, never decoded)."""
    source = f"{name} page {index + 1}"
    try:
        page = reader.pages[index]
        contents = page.get("/Contents")
        parts = contents.get_object() if contents is not None else []
        if not isinstance(parts, list):
            parts = [parts]
        # A damaged file can lose a page's content object; pypdf would write a blank page.
        if any(part is None or isinstance(part.get_object(), NullObject) for part in parts):
            raise CorruptFile(source, f"the page's content is missing; {_REPAIR_HINT}")
        writer = PdfWriter()
        writer.add_page(page)
        buf = io.BytesIO()
        writer.write(buf)
        out = buf.getvalue()
    except IngestError:
        raise
    except Exception as exc:
        raise CorruptFile(
            source, f"page cannot be read ({type(exc).__name__}: {exc}); {_REPAIR_HINT}"
        ) from None
    return out
