"""Content-addressed page bytes: ``<root>/ab/cdef...`` named by sha256.

A local directory by default; point ``PAGEKIT_BLOB_DIR`` at a shared mount when workers
run on several hosts.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .errors import NotFound


class BlobStore:
    """Write-once storage of bytes keyed by their sha256."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a sha256 key: {key!r}")
        return self.root / key[:2] / key[2:]

    def put(self, data: bytes, key: str | None = None) -> str:
        """Store ``data`` (atomically, once) and return its key."""
        key = key or hashlib.sha256(data).hexdigest()
        path = self._path(key)
        if path.exists():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

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
