"""Bytes or paths in, validated pages out.

The type is sniffed from the bytes (never the name), limits are enforced before anything
is decoded, PDFs are split into single-page PDFs and multi-page TIFFs into frames. A file
is accepted whole or refused with one :class:`~pagekit.errors.IngestError`. Its pages are
made one at a time as they are taken (:func:`open_pages`), so a 10,000-page PDF never
holds all its pages' bytes at once; nor does anything here grow with its pages but a few
bytes a page in arrays (pypdf's cross-reference tables, the page tree's kids, and the
keys of the pages made, :class:`PageKeys`).

A folder or a zip archive stands for its files (:func:`entries`), each added on its own:
a folder's files in natural order, hidden ones skipped; an archive's members read one at
a time, each under the upload limit and all of them under ``ARCHIVE_EXPANSION`` times it,
with names that point outside the archive refused (nothing is ever written under a
member's name, but such a name is a sign of a hostile archive).

Nothing here parses a PDF page's content: pypdf reads the file's objects and a page is
written out with the objects it reaches, content streams copied as stored, never decoded,
so a small PDF whose content inflates to gigabytes costs the caller nothing. Workers open
pages in PDFium under a memory cap (:mod:`pagekit.processing.pdf`).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import struct
import zipfile
import zlib
from array import array
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, replace
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import IO, Any

from pypdf import PdfReader
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NullObject,
    PdfObject,
    StreamObject,
)

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
    def size(self) -> int:
        return len(self.data)

    @property
    def label(self) -> str:
        """A human name: ``"box3.pdf page 2"``, or just ``"scan.jpg"`` for a one-page file."""
        return f"{self.source} page {self.index + 1}" if self.count > 1 else self.source


class PageKeys:
    """One file's pages once made and stored, as the transaction that adds them needs
    them: each page's sha256 (its bytes' key) and size in file order, 40 bytes a page
    (a PDF has at most ``TREE_ENTRIES_MAX`` pages), and what all its pages share."""

    def __init__(self, kind: str, mime: str) -> None:
        self.kind = kind
        self.mime = mime
        self._digests = bytearray()
        self._sizes = array("q")

    def append(self, page: IngestedPage) -> None:
        self._digests += bytes.fromhex(page.sha256)
        self._sizes.append(page.size)

    def __len__(self) -> int:
        return len(self._sizes)

    def key(self, index: int) -> str:
        """Page ``index``'s key: the hex sha256 of its bytes."""
        if not 0 <= index < len(self._sizes):
            raise IndexError(index)
        return self._digests[32 * index : 32 * index + 32].hex()

    def size(self, index: int) -> int:
        return self._sizes[index]


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
        name = item_name(item)
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
        name = item_name(item)
        return name, _read_limited(item, name, max_bytes), True
    raise TypeError(
        f"cannot ingest a {type(item).__name__}; pass a path, bytes, (name, bytes) or a file"
    )


# -- folders and zip archives ---------------------------------------------------------------

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with files, an empty zip
# Expanded only when the name agrees: .docx, .xlsx, .odt and .epub are zips too, not pages.
ARCHIVE_SUFFIXES = ("", ".zip")
# Never pages: skipped without a word, as is every name that starts with a dot.
JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})
# Files in one archive: each is an outcome, and the archive's directory is read whole
# before its first file (10,000 pages is a large scanned book).
ARCHIVE_FILES_MAX = 10_000
# The archive's directory, whatever count it declares: ~400 bytes a file with long names.
ARCHIVE_DIRECTORY_MAX = 4 * MiB
# What one archive may unpack to in all, in upload limits (PAGEKIT_MAX_UPLOAD_BYTES):
# scans compress a few times at most, a zip bomb a million times.
ARCHIVE_EXPANSION = 10
# pages.source is VARCHAR(300): a longer folder or archive path keeps its end.
SOURCE_MAX = 300


@dataclass(frozen=True)
class Entry:
    """One file to add: an item as given, or a file found in a folder or a zip archive.

    ``load()`` returns ``(name, data, is_upload)`` as :func:`load_item` does, or raises the
    :class:`~pagekit.errors.IngestError` that refuses the file. An archive is read as its
    entries are taken: load each entry before taking the next.
    """

    name: str  # "scan.jpg", "scans/ch1/page2.png", "box.zip/page2.png"
    container: str | None  # the folder or archive it was found in; None: given as it is
    load: Callable[[], tuple[str, bytes, bool]]


def item_name(item: object) -> str:
    """The name an item is shown under before it is read (a path's basename)."""
    if isinstance(item, (str, os.PathLike)):
        return Path(item).name or str(item)
    if isinstance(item, tuple) and item:
        return str(item[0])
    raw = getattr(item, "name", None)
    return (Path(raw).name if isinstance(raw, (str, os.PathLike)) else "") or "upload"


def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key that reads numbers as numbers: ``page2.png`` before ``page10.png``."""
    parts = re.split(r"(\d+)", name.casefold())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def is_container(item: object) -> bool:
    """Whether ``item`` is a folder or a zip archive (whose files are added one by one)."""
    if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
        return True
    return _is_archive(item_name(item), item)


def entries(item: Item, *, max_bytes: int) -> Iterator[Entry]:
    """The files ``item`` stands for, each to be added on its own.

    A folder gives its files, in its folders too, in natural order (``page2.png`` before
    ``page10.png``). A zip archive (the bytes say zip, and the name ends in ``.zip`` or has
    no extension) gives its files in the same order, read one at a time; an archive inside
    it is refused, not expanded. Hidden files and folders (``.DS_Store``) and system files
    (``Thumbs.db``, ``__MACOSX``) are skipped in both. Anything else is itself.
    """
    name = item_name(item)
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if path.is_dir():
            yield from _folder(path, max_bytes)
        elif _is_archive(name, path):
            yield from _archive_file(path, name, max_bytes)
        else:
            yield Entry(name, None, partial(load_item, item, max_bytes=max_bytes))
        return
    if not _is_archive(name, item):
        yield Entry(name, None, partial(load_item, item, max_bytes=max_bytes))
        return
    try:
        check_name(name)  # an uploaded archive's own name, as any upload's
    except IngestError as exc:
        yield _refused(name, None, exc)
        return
    data = item[1] if isinstance(item, tuple) else item
    fh = data if hasattr(data, "read") else io.BytesIO(bytes(data))  # type: ignore[arg-type]
    yield from _archive(fh, name, None, max_bytes)


def _head(item: object) -> bytes:
    """The first bytes of an item, read without consuming it (b"" if they cannot be)."""
    data = item[1] if isinstance(item, tuple) and len(item) == 2 else item
    try:
        if isinstance(data, (str, os.PathLike)):
            with Path(data).open("rb") as fh:
                return fh.read(4)
        if isinstance(data, (bytes, bytearray, memoryview)):
            return bytes(data[:4])
        if hasattr(data, "read") and data.seekable():
            here = data.tell()
            head = data.read(4)
            data.seek(here)
            return bytes(head)
    except (OSError, ValueError, AttributeError):
        pass  # reading it for real will say what is wrong
    return b""


def _is_archive(name: str, item: object) -> bool:
    """A zip by its bytes, named like one; the bytes are read only when the name agrees
    (a folder of scans is not opened twice)."""
    return Path(name).suffix.lower() in ARCHIVE_SUFFIXES and _head(item).startswith(ZIP_MAGIC)


def _skipped(name: str) -> bool:
    return name.startswith(".") or name.casefold() in JUNK_NAMES


def _shown(name: str) -> str:
    return name if len(name) <= SOURCE_MAX else "\u2026" + name[-(SOURCE_MAX - 1) :]


def _refused(name: str, container: str | None, error: IngestError) -> Entry:
    def load() -> tuple[str, bytes, bool]:
        raise error

    return Entry(name, container, load)


def _folder(root: Path, max_bytes: int) -> Iterator[Entry]:
    label = root.name or root.resolve().name or str(root)
    found = False
    for path, error in _walk(root):
        found = True
        rel = path.relative_to(root).as_posix()
        shown = _shown(label if rel == "." else f"{label}/{rel}")
        if error is not None:
            yield _refused(shown, label, IngestError(shown, error))
        elif _is_archive(path.name, path):
            yield from _archive_file(path, shown, max_bytes)
        else:
            yield Entry(shown, label, partial(_load_as, path, shown, max_bytes))
    if not found:
        what = "the folder holds no files to add (hidden files and folders are skipped)"
        yield _refused(str(root), None, IngestError(str(root), what))


def _walk(folder: Path) -> Iterator[tuple[Path, str | None]]:
    """Files under ``folder`` in natural order, hidden ones left out; links to folders are
    not followed (no loops), and only regular files are read (never a FIFO)."""
    try:
        with os.scandir(folder) as it:
            found = sorted(it, key=lambda e: natural_key(e.name))
    except OSError as exc:
        yield folder, f"cannot read the folder ({exc.strerror}); check its permissions"
        return
    for e in found:
        if _skipped(e.name):
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                yield from _walk(Path(e.path))
            elif e.is_file():
                yield Path(e.path), None
        except OSError as exc:
            yield Path(e.path), f"cannot read it ({exc.strerror}); check its permissions"


def _load_as(path: Path, shown: str, max_bytes: int) -> tuple[str, bytes, bool]:
    _, data, _ = load_item(path, max_bytes=max_bytes)
    return shown, data, False


def _archive_file(path: Path, shown: str, max_bytes: int) -> Iterator[Entry]:
    try:
        fh = path.open("rb")
    except OSError as exc:
        what = f"cannot read the file ({exc.strerror}); check its permissions"
        yield _refused(shown, None, IngestError(shown, what))
        return
    with fh:
        yield from _archive(fh, shown, shown, max_bytes)


def _archive(fh: IO[bytes], name: str, label: str | None, max_bytes: int) -> Iterator[Entry]:
    """The files of the zip archive ``fh``; ``name`` is how the archive is shown."""
    label = label or name
    repair = "re-create the archive"
    try:
        files, size = _directory_size(fh)
        if files > ARCHIVE_FILES_MAX or size > ARCHIVE_DIRECTORY_MAX:
            listed = f"{files} files" if files > ARCHIVE_FILES_MAX else f"{_mib(size)} MiB of names"
            raise FileTooLarge(
                name,
                f"the archive lists {listed}, over the limit of {ARCHIVE_FILES_MAX} files; "
                "split it into smaller archives",
            )
        archive = zipfile.ZipFile(fh)
    except IngestError as exc:
        yield _refused(name, None, exc)
        return
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        error = CorruptFile(name, f"the zip archive cannot be read ({exc}); {repair}")
        yield _refused(name, None, error)
        return
    with archive:
        members = []
        for info in archive.infolist():
            if info.is_dir():
                continue
            parts, problem = _member_parts(info.filename)
            if parts is not None and any(_skipped(part) for part in parts):
                continue
            members.append((parts, problem, info))
        if not members:
            what = "the archive holds no files to add (hidden files and folders are skipped)"
            yield _refused(name, None, IngestError(name, what))
            return
        members.sort(key=lambda m: [natural_key(p) for p in m[0] or [m[2].filename]])
        budget = ARCHIVE_EXPANSION * max_bytes
        for parts, problem, info in members:
            if parts is None:
                raw = info.filename
                shown = _shown(f"{name}/{raw}" if _printable(raw) else f"{name}/{raw!r:.80}")
                error: IngestError = BadFileName(
                    shown, f"the file name {problem}; refused: {repair} with relative names"
                )
                yield _refused(shown, label, error)
                continue
            shown = _shown(f"{name}/{'/'.join(parts)}")
            if info.file_size > max_bytes:
                yield _refused(shown, label, _too_large(shown, info.file_size, max_bytes))
            elif info.file_size > budget:
                error = FileTooLarge(
                    shown,
                    f"the archive unpacks to over {_mib(ARCHIVE_EXPANSION * max_bytes)} MiB "
                    f"in all ({ARCHIVE_EXPANSION} times PAGEKIT_MAX_UPLOAD_BYTES); split it "
                    "into smaller archives",
                    limit=ARCHIVE_EXPANSION * max_bytes,
                )
                yield _refused(shown, label, error)
            elif info.flag_bits & 0x1:
                what = f"the file is encrypted in the archive; {repair} without a password"
                error = IngestError(shown, what)
                yield _refused(shown, label, error)
            else:
                budget -= info.file_size
                yield Entry(shown, label, partial(_read_member, archive, info, shown))


def _printable(name: str) -> bool:
    return not any(ord(ch) < 32 or ord(ch) == 127 for ch in name) and not bidi_controls(name)


def _member_parts(raw: str) -> tuple[list[str] | None, str | None]:
    """A member name's path parts, or None and why the name is refused."""
    name = raw.replace("\\", "/")  # archives made on Windows
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return None, "is an absolute path"
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None, "points outside the archive ('..')"
    if not _printable(name):
        return None, "contains control or text-direction characters"
    return parts, None


def _directory_size(fh: IO[bytes]) -> tuple[int, int]:
    """``(files, bytes)`` that a zip's directory declares, from its end record, before
    :mod:`zipfile` reads the directory whole; (0, 0) if there is none (zipfile says so)."""
    end = fh.seek(0, os.SEEK_END)
    span = min(end, 22 + 0xFFFF + 20 + 56)  # end record, comment, zip64 locator and record
    fh.seek(end - span)
    tail = fh.read(span)
    fh.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return 0, 0
    files, size = struct.unpack("<HI", tail[at + 10 : at + 16])
    record, locator = tail[at - 76 : at - 72], tail[at - 20 : at - 16]
    if at >= 76 and record == b"PK\x06\x06" and locator == b"PK\x06\x07":  # zip64
        files64, size64 = struct.unpack("<QQ", tail[at - 44 : at - 28])
        files, size = max(files, files64), max(size, size64)
    return files, size


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str
) -> tuple[str, bytes, bool]:
    """A member's bytes: at most its declared size, which was checked against the limit
    (zipfile stops there, and checks the CRC)."""
    repair = "re-create the archive"
    try:
        with archive.open(info) as f:
            data = f.read()
    except NotImplementedError as exc:
        raise UnsupportedType(
            shown,
            f"the archive compresses it in a way pagekit cannot read ({exc}); "
            f"{repair} with ordinary (deflate) compression",
        ) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError) as exc:
        raise CorruptFile(shown, f"cannot be read from the archive ({exc}); {repair}") from None
    if data.startswith(ZIP_MAGIC):
        raise UnsupportedType(
            shown,
            "is a zip archive inside the archive, and archives are not expanded twice; "
            "unzip it and add its files",
        )
    # The name was checked above; it has a path, which an upload's name may not.
    return shown, data, False


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


class FilePages:
    """One accepted file's pages, each made when it is taken: iterating a 10,000-page PDF
    holds one page's bytes at a time, never all of them.

    :func:`open_pages` has checked everything that can be checked without making the pages
    (the name, the size, the type, that the file opens); making them may still raise the
    :class:`~pagekit.errors.CorruptFile` that refuses the file (a page whose content is
    lost, a truncated TIFF frame, a PDF with no pages), so the file is accepted only once
    every page was made. :meth:`page` makes a page already taken once more, the same bytes.
    """

    def __init__(
        self, name: str, kind: str, mime: str, count: int, make: Callable[[int], bytes]
    ) -> None:
        self.name = name
        self.kind = kind
        self.mime = mime
        self.count = count
        self._make = make

    def __iter__(self) -> Iterator[IngestedPage]:
        for index in range(self.count):
            yield self.page(index)

    def page(self, index: int) -> IngestedPage:
        """Page ``index`` (0-based) with its bytes."""
        data = self._make(index)
        return _page(data, self.kind, self.mime, self.name, index, self.count)


def split(
    data: bytes, name: str, *, max_bytes: int, max_pixels: int, is_upload: bool = True
) -> list[IngestedPage]:
    """Validate one file and split it into pages; raises one IngestError, never returns [].

    Every page's bytes at once: :func:`open_pages` makes them one at a time.
    """
    pages = list(
        open_pages(data, name, max_bytes=max_bytes, max_pixels=max_pixels, is_upload=is_upload)
    )
    if any(p.count != len(pages) for p in pages):  # a PDF that declares another count
        pages = [replace(p, count=len(pages)) for p in pages]
    return pages


def open_pages(
    data: bytes, name: str, *, max_bytes: int, max_pixels: int, is_upload: bool = True
) -> FilePages:
    """Validate one file and open it as pages, made as they are taken (:class:`FilePages`);
    raises one IngestError."""
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
        return _open_pdf(data, name)
    return _open_image(data, mime, name, max_pixels)


def _open_image(data: bytes, mime: str, name: str, max_pixels: int) -> FilePages:
    img = images.open_image(data, name, max_pixels)
    frames = getattr(img, "n_frames", 1) if mime == "image/tiff" else 1
    if frames <= 1:
        images.decode(img, name)  # catch truncation now, not on a worker
        return FilePages(name, "image", mime, 1, lambda _index: data)

    def frame_png(index: int) -> bytes:
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
        return buf.getvalue()

    return FilePages(name, "image", "image/png", frames, frame_png)


class _SharedBytes(io.BytesIO):
    """A file's bytes as a stream, not copied: :class:`io.BytesIO` shares the bytes it is
    given until it is written to or asked for ``getbuffer()``, which pypdf asks for to learn
    the size (a 70 MB copy of a 100,000-page PDF). Hidden here, pypdf seeks to the end."""

    @property
    def getbuffer(self) -> Any:  # type: ignore[override]
        raise AttributeError("getbuffer")  # hasattr() says no


# An object number with no offset in an :class:`_Offsets` array.
_ABSENT = -(1 << 63)
_OFFSET_MAX = (1 << 63) - 1
# How far past its end the array of an :class:`_Offsets` may grow for one number: at least
# half of what it spans holds numbers (a file cannot make it large from a few numbers).
_OFFSETS_SLACK = 4096


class _Offsets(MutableMapping[Any, Any]):
    """pypdf's table of where each object (of one generation) starts in the file, as an
    array indexed by object number: 8 bytes an object instead of some 100 in a dict of
    ints (a 100,000-page PDF has 200,000 objects). Numbers far past the others, and
    values that are not offsets, go to a dict of their own."""

    __slots__ = ("_at", "_count", "_other")

    def __init__(self, items: Any = ()) -> None:
        self._at = array("q")
        self._count = 0  # numbers held in _at
        self._other: dict[Any, Any] = {}
        self.update(items)

    def _held(self, num: Any) -> bool:
        return type(num) is int and 0 <= num < len(self._at) and self._at[num] != _ABSENT

    def __contains__(self, num: object) -> bool:
        return self._held(num) or num in self._other

    def __getitem__(self, num: Any) -> Any:
        if type(num) is int and 0 <= num < len(self._at):
            offset = self._at[num]
            if offset != _ABSENT:
                return offset
        return self._other[num]

    def __setitem__(self, num: Any, offset: Any) -> None:
        at = self._at
        if (
            type(num) is int
            and type(offset) is int
            and _ABSENT < offset <= _OFFSET_MAX
            and 0 <= num < 2 * self._count + _OFFSETS_SLACK
        ):
            if self._other:
                self._other.pop(num, None)
            if num >= len(at):  # numbers mostly come in order: the array grows by one
                at.extend(repeat(_ABSENT, num - len(at) + 1))
            self._count += at[num] == _ABSENT
            at[num] = offset
            return
        if self._held(num):
            at[num] = _ABSENT
            self._count -= 1
        self._other[num] = offset

    def __delitem__(self, num: Any) -> None:
        if self._held(num):
            self._at[num] = _ABSENT
            self._count -= 1
        else:
            del self._other[num]

    def __iter__(self) -> Iterator[Any]:
        for num, offset in enumerate(self._at):
            if offset != _ABSENT:
                yield num
        yield from list(self._other)

    def __len__(self) -> int:
        return self._count + len(self._other)


class _Free(dict):  # type: ignore[type-arg]
    """pypdf's record of which object numbers (of one generation) the file says are free,
    read as ``.get(num, False)``: only the free ones are kept (pypdf records every number)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__()
        for num, free in dict(items).items():
            self[num] = free

    def __setitem__(self, num: Any, free: Any) -> None:
        if free:
            super().__setitem__(num, free)
        else:
            self.pop(num, None)


class _Tables(dict):  # type: ignore[type-arg]
    """A table per generation, each made a ``kind`` as it is put in (pypdf puts in ``{}``)."""

    def __init__(self, kind: type, tables: Any = ()) -> None:
        super().__init__()
        self.kind = kind
        for generation, table in dict(tables).items():
            self[generation] = table

    def __setitem__(self, generation: Any, table: Any) -> None:
        super().__setitem__(generation, table if type(table) is self.kind else self.kind(table))


def _compact(kind: type) -> Any:
    """A reader attribute that keeps the tables put in it as :class:`_Tables` of ``kind``."""
    name = f"_pagekit_{kind.__name__}"

    def get(reader: Any) -> Any:
        return getattr(reader, name)

    def put(reader: Any, tables: Any) -> None:
        setattr(reader, name, _Tables(kind, tables))

    return property(get, put)


class _Reader(PdfReader):
    """pypdf's reader, its cross-reference tables kept compact (:class:`_Offsets`,
    :class:`_Free`) from the moment it reads them: pypdf's own dicts take some 200 bytes
    an object, 40 MB for a 100,000-page PDF. pypdf assigns ``xref`` and
    ``xref_free_entry`` afresh (``{}``) and puts a ``{}`` in for each generation it
    finds: both are made compact as they are put in."""

    xref = _compact(_Offsets)
    xref_free_entry = _compact(_Free)


def _open_pdf(data: bytes, name: str) -> FilePages:
    try:
        reader = _Reader(_SharedBytes(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # an owner-only password opens with ""
            except Exception:  # e.g. AES without a crypto library: treat as locked
                opened = 0
            if not opened:
                raise EncryptedPDF(name, f"the PDF needs a password; {_DECRYPT_HINT}")
    except IngestError:
        raise
    except Exception as exc:
        raise _unreadable(name, exc) from None
    return _PdfPages(reader, _page_root(reader, name), name)


def _page_root(reader: PdfReader, name: str) -> DictionaryObject:
    """The root of the PDF's page tree."""
    try:
        tree = reader.root_object.get("/Pages", NullObject()).get_object()
        if not isinstance(tree, DictionaryObject):
            raise ValueError("Invalid object in /Pages")
    except Exception as exc:
        raise _unreadable(name, exc) from None
    return tree


def _unreadable(name: str, exc: Exception) -> CorruptFile:
    return CorruptFile(name, f"PDF cannot be read ({type(exc).__name__}: {exc}); {_REPAIR_HINT}")


# A page tree is walked as pypdf's reader walks it, within the same limits: deeper than
# this is refused, and so is a tree of more entries (pages and nodes), e.g. a small file
# that lists one page a million times.
TREE_DEPTH_MAX = 100
TREE_ENTRIES_MAX = 100_000
# What a page takes from the nodes above it when it does not say it itself.
_INHERITED = tuple(NameObject(k) for k in ("/Resources", "/MediaBox", "/CropBox", "/Rotate"))
# Pages made between two clears of the reader's cache of parsed objects.
_CACHE_PAGES = 100


class _PdfPages(FilePages):
    """A PDF's pages, found by walking its page tree as they are taken. What the reader
    parsed for a page is let go soon after, and nothing is kept for a page once it is
    made, so a PDF takes the same memory whatever its number of pages; ``count`` is the
    declared number until every page was taken."""

    def __init__(self, reader: PdfReader, tree: DictionaryObject, name: str) -> None:
        declared = tree.get("/Count")
        count = int(declared) if isinstance(declared, int) and declared > 0 else 1
        super().__init__(name, "pdf", "application/pdf", count, self._again)
        self.reader = reader
        self.header = _pdf_header(reader)
        # The tree, until a walk takes it: not held while its pages are made (a flat tree
        # lists every page), found again for another walk.
        self._tree: DictionaryObject | None = tree
        # A walk of the tree making pages again (:meth:`_again`), and its next page's index.
        self._walk: Iterator[tuple[Any, IndirectObject | None, dict[str, Any]]] | None = None
        self._next = 0

    def __iter__(self) -> Iterator[IngestedPage]:
        taken = 0
        for index, (node, ref, inherited) in enumerate(self._pages()):
            data = _pdf_page(self.reader, node, ref, inherited, self.name, index, self.header)
            yield _page(data, self.kind, self.mime, self.name, index, self.count)
            taken = index + 1
        if not taken:
            raise CorruptFile(self.name, f"the PDF has no pages; {_REPAIR_HINT}")
        self.count = taken

    def _pages(self) -> Iterator[tuple[Any, IndirectObject | None, dict[str, Any]]]:
        """The tree's pages in order, the reader's cache cleared every ``_CACHE_PAGES``.
        The tree is not held here: its kids are, as numbers (:func:`_kids`)."""
        tree, self._tree = self._tree, None
        walk = _page_tree(
            tree if tree is not None else _page_root(self.reader, self.name), self.name
        )
        del tree
        for index, found in enumerate(walk):
            yield found
            if index % _CACHE_PAGES == _CACHE_PAGES - 1:
                self.reader.resolved_objects.clear()  # parsed again when needed again

    def _again(self, index: int) -> bytes:
        """Page ``index``, taken before, made again: the tree is walked to it afresh, or on
        from the page asked for last (pages asked for in order cost one walk in all)."""
        if self._walk is None or index < self._next:
            self._walk, self._next = self._pages(), 0
        try:
            for node, ref, inherited in self._walk:
                self._next += 1
                if self._next > index:
                    return _pdf_page(
                        self.reader, node, ref, inherited, self.name, index, self.header
                    )
        except Exception:
            self._walk = None
            raise
        self._walk = None
        raise IndexError(f"{self.name} has no page {index + 1}")


def _page_tree(
    tree: DictionaryObject, name: str
) -> Iterator[tuple[Any, IndirectObject | None, dict[str, Any]]]:
    """``(page, its reference or None, what it inherits)`` for every page under ``tree``,
    in order, as pypdf's reader finds them: a node without /Type is a page unless it has
    /Kids; an entry that is not a dictionary, or is empty, is skipped. A cycle, a tree
    deeper than ``TREE_DEPTH_MAX`` or of more than ``TREE_ENTRIES_MAX`` entries refuses
    the file. The nodes on the way are held here: the reader's cache may be cleared."""
    try:
        entries = 0
        root = _node_key(tree, getattr(tree, "indirect_reference", None))
        stack = [_enter(tree, {}, frozenset({root}))]  # (inherited, kids, ancestors' keys)
        del tree  # its kids are in the stack
        while stack:
            inherit, kids, ancestors = stack[-1]
            for kid in kids:
                node = kid.get_object()
                if not isinstance(node, DictionaryObject) or not node:
                    continue  # damaged files list other things; an empty page is none
                ref = kid if isinstance(kid, IndirectObject) else None
                key = _node_key(node, ref)
                if key in ancestors:
                    raise ValueError("Detected cyclic page references.")
                entries += 1
                if entries > TREE_ENTRIES_MAX:
                    raise ValueError(f"the page tree has over {TREE_ENTRIES_MAX} entries")
                if "/Type" in node:
                    kind = node["/Type"]
                else:  # as pypdf: a page, unless it lists kids
                    kind = "/Pages" if "/Kids" in node else "/Page"
                if kind == "/Pages":
                    if len(stack) >= TREE_DEPTH_MAX:
                        raise ValueError(f"the page tree is over {TREE_DEPTH_MAX} levels deep")
                    stack.append(_enter(node, inherit, ancestors | {key}))
                    break
                if kind == "/Page":
                    yield node, ref, inherit
            else:
                stack.pop()
    except IngestError:
        raise
    except Exception as exc:
        raise _unreadable(name, exc) from None


def _enter(
    node: DictionaryObject, inherit: dict[str, Any], ancestors: frozenset[Any]
) -> tuple[dict[str, Any], Iterator[Any], frozenset[Any]]:
    """A node of the page tree to walk: what its pages inherit (its own attributes over
    its ancestors'), and its kids."""
    inherit = {**inherit, **{key: node[key] for key in _INHERITED if key in node}}
    kids = node.get("/Kids", ArrayObject()).get_object()
    if isinstance(kids, NullObject):
        kids = ArrayObject()
    elif not isinstance(kids, ArrayObject):
        raise ValueError(f"Expected /Kids to be an array, got {type(kids).__name__}.")
    return inherit, _kids(kids), ancestors


def _kids(kids: list[Any]) -> Iterator[Any]:
    """A node's kids to walk, not pypdf's objects for them: references are kept as their
    numbers (16 bytes a kid instead of some 120), so a flat tree's 100,000 kids are not
    all held while its pages are made. Kids of a damaged file that are not all references
    are kept as they are."""
    pdf = getattr(kids[0], "pdf", None) if kids else None
    if all(type(kid) is IndirectObject and kid.pdf is pdf for kid in kids):
        try:
            numbers = array("q", (n for kid in kids for n in (kid.idnum, kid.generation)))
        except (TypeError, OverflowError):  # not numbers an array holds
            pass
        else:
            return _references(pdf, numbers)
    return iter(list(kids))


def _references(pdf: Any, numbers: array[int]) -> Iterator[IndirectObject]:
    for at in range(0, len(numbers), 2):
        yield IndirectObject(numbers[at], numbers[at + 1], pdf)


def _node_key(node: DictionaryObject, ref: IndirectObject | None) -> tuple[str, int]:
    """A node's identity that outlives the reader's cache: its object number if it has one."""
    return ("ref", ref.idnum) if ref is not None else ("id", id(node))


# The versions a page's header may say: its file's, and at least 1.3.
_PDF_VERSIONS = (b"%PDF-1.3", b"%PDF-1.4", b"%PDF-1.5", b"%PDF-1.6", b"%PDF-1.7", b"%PDF-2.0")


def _pdf_header(reader: PdfReader) -> bytes:
    """A page's ``%PDF-1.x`` line: the file's own version (its first bytes), at least 1.3."""
    try:
        head = reader.pdf_header.encode()
    except Exception:  # unreadable first bytes: the lowest version
        head = b""
    return head if head in _PDF_VERSIONS else _PDF_VERSIONS[0]


def _pdf_page(
    reader: PdfReader,
    node: DictionaryObject,
    ref: IndirectObject | None,
    inherited: dict[str, Any],
    name: str,
    index: int,
    header: bytes,
) -> bytes:
    """A page of ``reader`` as a one-page PDF (content streams are copied, never decoded).

    ``node`` is the page's dictionary in the file; the attributes it does not set itself
    come from ``inherited``, after its own (as pypdf's reader orders them).
    """
    source = f"{name} page {index + 1}"
    try:
        page = [*node.items(), *((k, v) for k, v in inherited.items() if k not in node)]
        contents = node.get("/Contents")
        parts = contents.get_object() if contents is not None else []
        if not isinstance(parts, list):
            parts = [parts]
        # A damaged file can lose a page's content object; it would make a blank page.
        if any(part is None or isinstance(part.get_object(), NullObject) for part in parts):
            raise CorruptFile(source, f"the page's content is missing; {_REPAIR_HINT}")
        return _PagePdf(reader, page, ref).write(header)
    except IngestError:
        raise
    except Exception as exc:
        raise CorruptFile(
            source, f"page cannot be read ({type(exc).__name__}: {exc}); {_REPAIR_HINT}"
        ) from None


# -- one page as a PDF of its own -------------------------------------------------------------

# Keys left out wherever they are in what the page reaches: the page tree the page hangs
# in (the copy has its own) and its entry in the document's structure tree (not copied).
_DROPPED = frozenset({"/Parent", "/StructParents"})
# A reference to one of these is written as null: another page (a link to page 7 would
# copy page 7, and its links the pages they point to), the page tree, the catalog.
_NOT_FOLLOWED = frozenset({"/Page", "/Pages", "/Catalog"})
# The objects every page file starts with: its info, page tree and catalog; then the page.
_HEAD_OBJECTS = (
    b"1 0 obj\n<<\n/Producer (pypdf)\n>>\nendobj\n",
    b"2 0 obj\n<<\n/Type /Pages\n/Count 1\n/Kids [ 4 0 R ]\n>>\nendobj\n",
    b"3 0 obj\n<<\n/Type /Catalog\n/Pages 2 0 R\n>>\nendobj\n",
)
_PAGE_NUMBER = 4


class _PagePdf:
    """One page of a :class:`PdfReader`, its dictionary's ``items`` given (inherited
    attributes included), written as a PDF file of its own.

    The file is laid out as pypdf's ``PdfWriter`` (7.x) lays out a one-page file: the same
    object numbers (in the order a depth-first walk from the page first reaches each
    object), the same syntax, so a page reads the same bytes as it did when pagekit used
    it, and adding a file again finds its pages already there. Unlike it, references to
    other pages become null instead of copying them. Streams are copied as stored (never
    decoded), and dropped from the reader's cache once written: a large scan's images are
    not all kept there (a stream two pages share is read twice).
    """

    def __init__(self, reader: PdfReader, items: list[tuple[Any, Any]], own: Any) -> None:
        self.reader = reader
        self.items = [(k, v) for k, v in items if k not in _DROPPED]
        self.numbers: dict[int, int] = {}  # object number in the file: here (0: null)
        self.objects: list[PdfObject] = []  # objects 5, 6, ...: in the order reached
        if own is not None:
            self.numbers[own.idnum] = _PAGE_NUMBER
        self._number()

    def _number(self) -> None:
        """Number what the page reaches, depth first and in order, as pypdf's clone does
        (a stack of iterators, not recursion: a long chain of objects is not too deep).

        An object of the file that the page holds as a value rather than by reference (an
        attribute inherited from the page tree) is numbered too, and written both in place
        and as an object of its own, as pypdf does.
        """
        stack: list[Iterator[Any]] = [(v for _, v in self.items)]
        while stack:
            for value in stack[-1]:
                ref = getattr(value, "indirect_reference", None)
                if isinstance(ref, IndirectObject):
                    if ref.idnum in self.numbers:
                        continue
                    target = value.get_object() if value is ref else value
                    if value is ref and (
                        target is None
                        or isinstance(target, NullObject)
                        or (
                            isinstance(target, DictionaryObject)
                            and target.get("/Type") in _NOT_FOLLOWED
                        )
                    ):
                        self.numbers[ref.idnum] = 0
                        continue
                    self.objects.append(target)
                    self.numbers[ref.idnum] = _PAGE_NUMBER + len(self.objects)
                    stack.append(self._inside(target))
                    break
                if isinstance(value, (DictionaryObject, ArrayObject)):
                    stack.append(self._inside(value))
                    break
            else:
                stack.pop()

    @staticmethod
    def _inside(obj: Any) -> Iterator[Any]:
        if isinstance(obj, DictionaryObject):
            return (v for k, v in obj.items() if k not in _DROPPED)
        if isinstance(obj, ArrayObject):
            return iter(obj)
        return iter(())

    def write(self, header: bytes) -> bytes:
        """The file: ``header`` (``%PDF-1.x``), the objects, the cross-reference table."""
        out = io.BytesIO()
        out.write(header + b"\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for head in _HEAD_OBJECTS:
            offsets.append(out.tell())
            out.write(head)
        try:
            offsets.append(out.tell())
            out.write(b"%d 0 obj\n" % _PAGE_NUMBER)
            self._dict(out, self.items, b"/Parent 2 0 R\n")  # its own page tree, last
            out.write(b"\nendobj\n")
            for number, obj in enumerate(self.objects, _PAGE_NUMBER + 1):
                offsets.append(out.tell())
                out.write(b"%d 0 obj\n" % number)
                if isinstance(obj, StreamObject):
                    data = obj._data  # as stored (still encoded)
                    items = [(k, v) for k, v in obj.items() if k not in _DROPPED and k != "/Length"]
                    self._dict(out, items, b"/Length %d\n" % len(data))
                    out.write(b"\nstream\n")
                    out.write(data)
                    out.write(b"\nendstream")
                else:
                    self._value(out, obj)
                out.write(b"\nendobj\n")
        finally:
            for obj in self.objects:  # a large page's images are not kept
                ref = obj.indirect_reference
                if isinstance(obj, StreamObject) and ref is not None:
                    self.reader.resolved_objects.pop((ref.generation, ref.idnum), None)
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
        out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
        out.write(b"trailer\n<<\n/Size %d\n/Root 3 0 R\n/Info 1 0 R\n>>\n" % (len(offsets) + 1))
        out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
        return out.getvalue()

    def _dict(self, out: IO[bytes], items: list[tuple[Any, Any]], last: bytes = b"") -> None:
        out.write(b"<<\n")
        for key, value in items:
            if len(key) > 2 and key[1] == "%" and key[-1] == "%":
                continue  # pypdf's own bookkeeping, never written
            out.write(_name(key))
            out.write(b" ")
            self._value(out, value)
            out.write(b"\n")
        out.write(last + b">>")

    def _value(self, out: IO[bytes], obj: Any) -> None:
        if isinstance(obj, IndirectObject):
            number = self.numbers.get(obj.idnum, 0)
            out.write(b"%d 0 R" % number if number else b"null")
        elif isinstance(obj, NameObject):
            out.write(_name(obj))
        elif isinstance(obj, StreamObject):  # the spec allows streams only as objects
            ref = getattr(obj, "indirect_reference", None)
            number = self.numbers.get(ref.idnum, 0) if isinstance(ref, IndirectObject) else 0
            if not number:
                raise ValueError("a stream that is not an indirect object")
            out.write(b"%d 0 R" % number)
        elif isinstance(obj, DictionaryObject):
            self._dict(out, [(k, v) for k, v in obj.items() if k not in _DROPPED])
        elif isinstance(obj, ArrayObject):
            out.write(b"[")
            for item in obj:
                out.write(b" ")
                self._value(out, item)
            out.write(b" ]")
        else:
            obj.write_to_stream(out)


@functools.lru_cache(maxsize=4096)
def _name(name: NameObject) -> bytes:
    return name.renumber()  # escapes what a name cannot hold as it is (#xx)
