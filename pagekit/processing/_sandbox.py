"""Run one call in a forked child under a memory cap, and get its value back.

PDFium aborts its whole process when an allocation fails, so a page whose content needs
more memory than it should (a small PDF whose content stream inflates to hundreds of MB)
must be parsed in a process of its own: the child dies, its caller fails the page and
lives on, and whatever the child took goes back to the system at once.

The answer crosses the pipe as JSON plus raw byte blobs (no pickle): the called function
returns ``(meta, blobs)``, a JSON-able value and a list of ``bytes``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

MiB = 1024 * 1024
_PR_SET_PDEATHSIG = 1


class ChildFailed(Exception):
    """The child raised: ``kind`` is "pagekit" (a PagekitError, message as is) or the type."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


class ChildDied(Exception):
    """The child ended without an answer: ``why`` is "memory", "time" or "crash"."""

    def __init__(self, why: str, detail: str):
        self.why = why
        super().__init__(detail)


def _address_space() -> int:
    with open("/proc/self/statm") as f:  # noqa: PTH123 - Linux only, and hot
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _cap(memory_mb: int, cpu_seconds: int) -> None:
    """In the child: at most ``memory_mb`` more address space, ``cpu_seconds`` of CPU."""
    with contextlib.suppress(OSError, AttributeError):  # die with the parent (Linux)
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if memory_mb > 0:
        limit = _address_space() + memory_mb * MiB
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if cpu_seconds > 0:
        used = int(sum(os.times()[:2]))
        resource.setrlimit(resource.RLIMIT_CPU, (used + cpu_seconds, used + cpu_seconds + 5))


def _child(write_fd: int, fn: Callable[..., Any], args: tuple[Any, ...], caps: tuple[int, int]):
    code = 0
    try:
        _cap(*caps)
        try:
            meta, blobs = fn(*args)
            header: dict[str, Any] = {"ok": True, "meta": meta, "sizes": [len(b) for b in blobs]}
        except MemoryError:
            code = 3
            return
        except Exception as exc:
            from ..errors import PagekitError

            kind = "pagekit" if isinstance(exc, PagekitError) else type(exc).__name__
            header, blobs = {"ok": False, "kind": kind, "message": str(exc)}, []
        encoded = json.dumps(header).encode("utf-8")
        with os.fdopen(write_fd, "wb") as out:
            out.write(len(encoded).to_bytes(8, "big"))
            out.write(encoded)
            for blob in blobs:
                out.write(blob)
    except MemoryError:
        code = 3
    except BaseException:
        code = 4
    finally:
        os._exit(code)


def run_capped(
    fn: Callable[..., tuple[Any, list[bytes]]], *args: Any, memory_mb: int, cpu_seconds: int = 0
) -> tuple[Any, list[bytes]]:
    """``fn(*args)`` in a forked child with ``memory_mb`` MB more address space at most.

    ``fn`` returns ``(meta, blobs)``: a JSON-able value and a list of bytes; so does this.

    Raises :class:`ChildFailed` when ``fn`` raised, :class:`ChildDied` when the child was
    killed or aborted (PDFium's answer to a failed allocation). An exception in the caller
    while it waits (e.g. a time limit) kills the child first.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(read_fd)
        _child(write_fd, fn, args, (memory_mb, cpu_seconds))
    os.close(write_fd)
    status = None
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
    finally:
        if status is None:  # interrupted while waiting: do not leave the child behind
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
    if payload and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        size = int.from_bytes(payload[:8], "big")
        header = json.loads(payload[8 : 8 + size])
        if not header["ok"]:
            raise ChildFailed(header["kind"], header["message"])
        blobs, at = [], 8 + size
        for length in header["sizes"]:
            blobs.append(payload[at : at + length])
            at += length
        return header["meta"], blobs
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name
        if sig in (signal.SIGABRT, signal.SIGKILL):
            # PDFium aborts on a failed allocation; the kernel OOM killer sends SIGKILL.
            raise ChildDied("memory", f"killed by {name}")
        if sig == signal.SIGXCPU:
            raise ChildDied("time", "over its CPU time limit")
        raise ChildDied("crash", f"killed by {name}")
    code = os.WEXITSTATUS(status)
    raise ChildDied("memory" if code == 3 else "crash", f"exit status {code}")
