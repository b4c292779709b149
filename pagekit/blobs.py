"""Content-addressed page bytes: ``<root>/ab/cdef...`` named by sha256.

A local directory by default; point ``PAGEKIT_BLOB_DIR`` at a shared mount when workers
run on several hosts. Pages are private: directories are created 0700 and files 0600
(``mkstemp``), whatever the process umask. Bytes are removed once no page names them
(:mod:`pagekit.store.deletion` decides; :meth:`BlobStore.delete` removes).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path

from .errors import NotFound

log = logging.getLogger(__name__)

_HEX = frozenset("0123456789abcdef")


class BlobStore:
    """Storage of bytes keyed by their sha256: written once, removed when unused."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if len(key) != 64 or not _HEX.issuperset(key):
            raise ValueError(f"not a sha256 key: {key!r}")
        return self.root / key[:2] / key[2:]

    def put(self, data: bytes, key: str | None = None) -> str:
        """Store ``data`` (atomically, once) and return its key."""
        key = key or hashlib.sha256(data).hexdigest()
        path = self._path(key)
        if path.exists():
            # Fresh again: :meth:`delete` spares bytes written moments ago (a thumbnail a
            # worker is about to record).
            with contextlib.suppress(OSError):
                os.utime(path)
            return key
        self._mkdirs(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def _mkdirs(self, shard: Path) -> None:
        """Create the root and the shard 0700 (the root's parents as usual)."""
        if shard.is_dir():
            return
        self.root.parent.mkdir(parents=True, exist_ok=True)
        for path in (self.root, shard):
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=0o700)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"page bytes {key[:12]}... are missing from {self.root}; on several hosts, "
                "PAGEKIT_BLOB_DIR must point at the same shared directory everywhere"
            ) from None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

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
