"""Run calls in a forked child under a memory cap, and get their values back.

PDFium aborts its whole process when an allocation fails, so a page whose content needs
more memory than it should (a small PDF whose content stream inflates to hundreds of MB)
must be parsed in a process of its own: the child dies, its caller fails the page and
lives on, and whatever the child took goes back to the system at once.

Two ways: :func:`run_capped` forks a child for one call; a :class:`Helper` forks one child
that answers call after call, each under its own caps, and is forked again after it dies
or grows. Workers use a helper: a fresh child per page, warming PDFium up again and
copying every memory page it writes to, cost ten times the work of a text-layer page.

Values cross the pipes as JSON plus raw byte blobs (no pickle): a message is an 8-byte
length, a JSON header that lists the blobs' sizes, then the blobs.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import gc
import json
import math
import os
import resource
import signal
from collections.abc import Callable
from typing import IO, Any

MiB = 1024 * 1024
_PR_SET_PDEATHSIG = 1
_PAGE = os.sysconf("SC_PAGE_SIZE")

# A handler answers a request: (meta, blobs) in, (meta, blobs) out; meta is JSON-able.
Handler = Callable[[Any, list[bytes]], tuple[Any, list[bytes]]]


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


# -- messages ------------------------------------------------------------------------------


def _write(out: IO[bytes], header: dict[str, Any], blobs: list[bytes]) -> None:
    encoded = json.dumps({**header, "sizes": [len(b) for b in blobs]}).encode("utf-8")
    out.write(len(encoded).to_bytes(8, "big"))
    out.write(encoded)
    for blob in blobs:
        out.write(blob)
    out.flush()


def _read(inp: IO[bytes]) -> tuple[dict[str, Any], list[bytes]] | None:
    """The next message; None at the end of the pipe or when it is cut short."""
    head = inp.read(8)
    if len(head) < 8:
        return None
    size = int.from_bytes(head, "big")
    encoded = inp.read(size)
    if len(encoded) < size:
        return None
    header = json.loads(encoded)
    blobs = []
    for n in header["sizes"]:
        blobs.append(inp.read(n))
        if len(blobs[-1]) < n:
            return None
    return header, blobs


# -- in the child --------------------------------------------------------------------------


def _address_space() -> int:
    with open("/proc/self/statm") as f:  # noqa: PTH123 - Linux only, and hot
        return int(f.read().split()[0]) * _PAGE


def _rss() -> int:
    with open("/proc/self/statm") as f:  # noqa: PTH123 - Linux only, and hot
        return int(f.read().split()[1]) * _PAGE


def _setup_child(parent: int) -> None:
    """Die with the parent, write no core file, leave inherited objects alone."""
    with contextlib.suppress(OSError, AttributeError):  # die with the parent (Linux)
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(4)
    # A page that aborts PDFium (over the memory cap) is expected: no core file with the
    # worker's memory in it, no Python traceback in the worker's log.
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    faulthandler.disable()
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)  # the CPU cap kills, whatever was inherited
    # The parent's objects are not ours to collect (a database connection's finalizer
    # must not run here); freezing them also spares copying the memory pages they live in.
    gc.freeze()


def _within(soft: int, hard: int) -> int:
    return soft if hard == resource.RLIM_INFINITY else min(soft, hard)


def _cap(memory_mb: int, cpu_seconds: int) -> None:
    """At most ``memory_mb`` more address space and ``cpu_seconds`` more CPU from now (0:
    no cap). Only soft limits, so a helper can set them again for its next call."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = _address_space() + memory_mb * MiB if memory_mb > 0 else hard
    resource.setrlimit(resource.RLIMIT_AS, (_within(soft, hard), hard))
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    # Whole seconds: rounded up, so a call never gets less than its ``cpu_seconds``.
    soft = math.ceil(sum(os.times()[:2])) + cpu_seconds if cpu_seconds > 0 else hard
    resource.setrlimit(resource.RLIMIT_CPU, (_within(soft, hard), hard))


def _answer(fn: Callable[[], tuple[Any, list[bytes]]]) -> tuple[dict[str, Any], list[bytes]]:
    """``fn()``'s value as a reply; an exception as a failure reply. MemoryError is raised:
    the child may be in no state to go on."""
    try:
        meta, blobs = fn()
    except MemoryError:
        raise
    except Exception as exc:
        from ..errors import PagekitError

        kind = "pagekit" if isinstance(exc, PagekitError) else type(exc).__name__
        return {"ok": False, "kind": kind, "message": str(exc)}, []
    return {"ok": True, "meta": meta}, blobs


def _child_main(parent: int, body: Callable[[], None]) -> None:
    """Run ``body`` in the child and leave with an exit status the parent reads: 3 for
    MemoryError, 4 for anything else that escaped."""
    code = 0
    try:
        _setup_child(parent)
        body()
    except MemoryError:
        code = 3
    except BaseException:
        code = 4
    finally:
        os._exit(code)


def _serve(inp: IO[bytes], out: IO[bytes], handler: Handler) -> None:
    """A helper's loop: each request under its own caps, until the pipe closes."""
    while (request := _read(inp)) is not None:
        header, blobs = request
        _cap(header["memory_mb"], header["cpu_seconds"])
        reply, answer = _answer(lambda h=header, b=blobs: handler(h["meta"], b))
        _cap(0, 0)  # the caps were for that call: the next request is read without them
        _write(out, {**reply, "rss": _rss()}, answer)


# -- in the parent -------------------------------------------------------------------------


def _died(status: int) -> ChildDied:
    """Why a child that gave no answer ended, from its wait status."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name
        if sig in (signal.SIGABRT, signal.SIGKILL):
            # PDFium aborts on a failed allocation; the kernel OOM killer sends SIGKILL.
            return ChildDied("memory", f"killed by {name}")
        if sig == signal.SIGXCPU:
            return ChildDied("time", "over its CPU time limit")
        return ChildDied("crash", f"killed by {name}")
    code = os.WEXITSTATUS(status)
    return ChildDied("memory" if code == 3 else "crash", f"exit status {code}")


def _reap(pid: int, kill: bool) -> int | None:
    """Wait for the child (killed first if ``kill``); its wait status, None if unknown."""
    if kill:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


def _outcome(reply: dict[str, Any], blobs: list[bytes]) -> tuple[Any, list[bytes]]:
    if not reply["ok"]:
        raise ChildFailed(reply["kind"], reply["message"])
    return reply["meta"], blobs


def run_capped(
    fn: Callable[..., tuple[Any, list[bytes]]], *args: Any, memory_mb: int, cpu_seconds: int = 0
) -> tuple[Any, list[bytes]]:
    """``fn(*args)`` in a forked child with ``memory_mb`` MB more address space at most.

    ``fn`` returns ``(meta, blobs)``: a JSON-able value and a list of bytes; so does this.

    Raises :class:`ChildFailed` when ``fn`` raised, :class:`ChildDied` when the child was
    killed or aborted (PDFium's answer to a failed allocation). An exception in the caller
    while it waits (e.g. a time limit) kills the child first.
    """
    parent = os.getpid()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(read_fd)

        def once() -> None:
            _cap(memory_mb, cpu_seconds)
            reply, blobs = _answer(lambda: fn(*args))
            with os.fdopen(write_fd, "wb") as out:
                _write(out, reply, blobs)

        _child_main(parent, once)
    os.close(write_fd)
    waited = False
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            got = _read(pipe)
        status, waited = _reap(pid, kill=False), True
    finally:
        if not waited:  # interrupted while waiting: do not leave the child behind
            _reap(pid, kill=True)
    if got is not None and status is not None and os.WIFEXITED(status):
        if os.WEXITSTATUS(status) == 0:
            return _outcome(*got)
    raise _died(status or 0)


class _Child:
    """A helper's child process, and the ends of its two pipes this process holds."""

    def __init__(self, handler: Handler):
        self.owner = os.getpid()
        to_child, requests = os.pipe()
        replies, from_child = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child never returns
            os.close(requests)
            os.close(replies)
            inp, out = os.fdopen(to_child, "rb"), os.fdopen(from_child, "wb")
            _child_main(self.owner, lambda: _serve(inp, out, handler))
        os.close(to_child)
        os.close(from_child)
        self.requests = os.fdopen(requests, "wb")
        self.replies = os.fdopen(replies, "rb")
        self.reaped = False  # its pid may belong to another process once reaped
        self.base_rss: int | None = None  # after its first answer: PDFium warmed up

    def ask(
        self, header: dict[str, Any], blobs: list[bytes]
    ) -> tuple[dict[str, Any], list[bytes]] | None:
        """Send a request and read the reply; None if the child ended first."""
        try:
            _write(self.requests, header, blobs)
        except (BrokenPipeError, ConnectionResetError):
            return None
        return _read(self.replies)

    def ended(self) -> bool:
        """Whether the child has ended (reaped here if so)."""
        try:
            self.reaped = os.waitpid(self.pid, os.WNOHANG)[0] != 0
        except ChildProcessError:
            self.reaped = True
        return self.reaped

    def close(self, *, kill: bool) -> int | None:
        """Close the pipes; with ``kill``, kill and reap the child (its wait status)."""
        for pipe in (self.requests, self.replies):
            with contextlib.suppress(OSError):
                pipe.close()
        if not kill or self.reaped:
            return None
        self.reaped = True
        return _reap(self.pid, kill=True)


class Helper:
    """One long-lived child that runs ``handler`` for call after call, each under its caps.

    The child is forked on the first call, and again after it died (a page over its caps
    fails alone, as with :func:`run_capped`), after the caller was interrupted while it
    worked (a time limit), in a forked copy of this process, and once its memory grew
    ``recycle_mb`` MB past what it held after its first answer, so a long run stays flat.
    Not for several threads at once.
    """

    def __init__(self, handler: Handler, *, recycle_mb: int = 32):
        self.handler = handler
        self.recycle_mb = recycle_mb
        self._child: _Child | None = None

    def call(
        self, meta: Any, blobs: list[bytes], *, memory_mb: int, cpu_seconds: int = 0
    ) -> tuple[Any, list[bytes]]:
        """``handler(meta, blobs)`` in the child with ``memory_mb`` MB more address space
        and ``cpu_seconds`` of CPU at most; raises as :func:`run_capped` does."""
        child = self._running()
        header = {"meta": meta, "memory_mb": memory_mb, "cpu_seconds": cpu_seconds}
        try:
            got = child.ask(header, blobs)
        except BaseException:  # interrupted: the child may be half-way through the page
            self.stop()
            raise
        if got is None:
            self._child = None
            status = child.close(kill=True)
            raise _died(status or 0)
        reply, answer = got
        self._recycle(child, reply["rss"])
        return _outcome(reply, answer)

    def stop(self) -> None:
        """End the child now (the next call forks a new one)."""
        child, self._child = self._child, None
        if child is not None:
            child.close(kill=child.owner == os.getpid())

    def _running(self) -> _Child:
        child = self._child
        if child is not None and (child.owner != os.getpid() or child.ended()):
            self.stop()  # another process's child is only let go; an ended one is reaped
            child = None
        if child is None:
            child = self._child = _Child(self.handler)
        return child

    def _recycle(self, child: _Child, rss: int) -> None:
        if child.base_rss is None:
            child.base_rss = rss
        elif rss - child.base_rss > self.recycle_mb * MiB:
            self.stop()
