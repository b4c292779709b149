"""Content-addressed page bytes: ``<root>/ab/cdef...`` named by sha256.

A local directory by default; point ``PAGEKIT_BLOB_DIR`` at a shared mount when workers
run on several hosts. Pages are private: directories are created 0700 and files 0600
(``mkstemp``), whatever the process umask. Bytes are removed once no page names them
(:mod:`pagekit.store.deletion` decides; :meth:`BlobStore.delete` removes).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import secrets
import tempfile
import time
from pathlib import Path

from .errors import NotFound

log = logging.getLogger(__name__)

_HEX = frozenset("0123456789abcdef")

# A temporary file's name: this process's random token and a count (a name taken, by a
# file a crashed process left, falls back to ``mkstemp``'s random names).
_TOKEN = secrets.token_hex(4)
_COUNT = itertools.count()
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _temporary(shard: str) -> tuple[int, str]:
    """A new file in ``shard``, mode 0600, opened for writing: ``(fd, path)``. As
    ``tempfile.mkstemp``, without drawing a random name for each file."""
    tmp = f"{shard}/.tmp-{_TOKEN}-{os.getpid()}-{next(_COUNT)}"
    try:
        return os.open(tmp, _FLAGS, 0o600), tmp
    except FileExistsError:
        return tempfile.mkstemp(dir=shard, prefix=".tmp-")


class BlobStore:
    """Storage of bytes keyed by their sha256: written once, removed when unused.

    Paths are plain strings (``os.path``) and temporary names are counted, not drawn:
    an add of 100,000 pages stores 100,000 files, which took 17-25 s of CPU with
    ``pathlib`` objects and ``mkstemp`` for each, and takes 12-19 s so."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._root = str(self.root)

    def _file(self, key: str) -> str:
        if len(key) != 64 or not _HEX.issuperset(key):
            raise ValueError(f"not a sha256 key: {key!r}")
        return f"{self._root}/{key[:2]}/{key[2:]}"

    def _path(self, key: str) -> Path:
        return Path(self._file(key))

    def put(self, data: bytes, key: str | None = None) -> str:
        """Store ``data`` (atomically, once) and return its key."""
        key = key or hashlib.sha256(data).hexdigest()
        path = self._file(key)
        if os.path.exists(path):
            # Fresh again: :meth:`delete` spares bytes written moments ago (a thumbnail a
            # worker is about to record).
            with contextlib.suppress(OSError):
                os.utime(path)
            return key
        shard = os.path.dirname(path)
        self._mkdirs(shard)
        fd, tmp = _temporary(shard)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return key

    def _mkdirs(self, shard: str) -> None:
        """Create the root and the shard 0700 (the root's parents as usual)."""
        if os.path.isdir(shard):
            return
        self.root.parent.mkdir(parents=True, exist_ok=True)
        for path in (self._root, shard):
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, mode=0o700)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"page bytes {key[:12]}... are missing from {self.root}; on several hosts, "
                "PAGEKIT_BLOB_DIR must point at the same shared directory everywhere"
            ) from None

    def exists(self, key: str) -> bool:
        return os.path.exists(self._file(key))

    def delete(self, key: str, *, min_age: float = 0.0) -> bool:
        """Remove the bytes stored under ``key``, unless they were written (or written
        again) less than ``min_age`` seconds ago; True if removed.

        The caller knows that no page names them any more (:mod:`pagekit.store.deletion`).
        A file that cannot be removed is logged and kept.
        """
        path = self._path(key)
        try:
            if min_age and time.time() - path.stat().st_mtime < min_age:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("cannot remove %s (%s); it stays", path, exc.strerror or exc)
            return False
        return True
