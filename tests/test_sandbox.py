"""The memory-capped helper child that reads PDF pages for a worker process.

A worker forks it once and sends it page after page; what a user would notice if it went
wrong: a page over its memory or CPU cap must fail alone (and the next page be read), a
time limit in the worker must not leave a child behind, and a long run must not grow.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psutil
import pytest

from pagekit import _pagegen as g
from pagekit.errors import ProcessingError
from pagekit.processing import PageInput, _sandbox, pdf, process_page

MiB = 1024 * 1024
_hoard: list[bytes] = []


def _handler(meta: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """A test handler: what ``meta["do"]`` says, answering with the child's pid."""
    do = meta["do"]
    if do == "allocate":
        bytearray(meta["mb"] * MiB)
    elif do == "spin":
        while True:
            pass
    elif do == "burn":  # this much CPU, then answer
        until = time.process_time() + meta["s"]
        while time.process_time() < until:
            pass
    elif do == "sleep":
        time.sleep(meta["s"])
    elif do == "raise":
        raise ValueError("no such thing")
    elif do == "hoard":
        _hoard.append(os.urandom(meta["mb"] * MiB))
    return {"pid": os.getpid()}, [blob[::-1] for blob in blobs]


@pytest.fixture
def helper():
    h = _sandbox.Helper(_handler, recycle_mb=32)
    yield h
    h.stop()


def ask(h: _sandbox.Helper, memory_mb: int = 256, cpu_seconds: int = 0, **meta: Any) -> int:
    got, _ = h.call(meta, [], memory_mb=memory_mb, cpu_seconds=cpu_seconds)
    return got["pid"]


def test_one_child_answers_call_after_call(helper) -> None:
    meta, blobs = helper.call({"do": "echo"}, [b"abc", b""], memory_mb=256)
    assert blobs == [b"cba", b""]
    pids = {ask(helper, do="echo") for _ in range(20)} | {meta["pid"]}
    assert len(pids) == 1 and pids != {os.getpid()}


def test_a_call_over_its_memory_cap_fails_alone(helper) -> None:
    first = ask(helper, do="echo")
    with pytest.raises(_sandbox.ChildDied) as died:
        ask(helper, memory_mb=64, do="allocate", mb=512)
    assert died.value.why == "memory"
    assert not psutil.pid_exists(first) or psutil.Process(first).status() == "zombie"
    # The cap is per call: the next child takes as much as it is allowed.
    assert ask(helper, memory_mb=256, do="allocate", mb=128) != first


def test_a_call_over_its_cpu_cap_is_stopped(helper) -> None:
    started = time.monotonic()
    with pytest.raises(_sandbox.ChildDied) as died:
        ask(helper, cpu_seconds=1, do="spin")
    assert died.value.why == "time"
    assert time.monotonic() - started < 30
    # Each call has its own second: a child's calls may use more than one in all.
    pid = ask(helper, cpu_seconds=1, do="echo")
    assert {ask(helper, cpu_seconds=1, do="burn", s=0.6) for _ in range(3)} == {pid}


def test_an_exception_fails_the_call_and_keeps_the_child(helper) -> None:
    pid = ask(helper, do="echo")
    with pytest.raises(_sandbox.ChildFailed, match="no such thing") as failed:
        ask(helper, do="raise")
    assert failed.value.kind == "ValueError"
    assert ask(helper, do="echo") == pid


def test_an_interrupted_call_leaves_no_child_behind(helper) -> None:
    """A worker's soft time limit arrives as an exception while it waits."""
    pid = ask(helper, do="echo")

    def time_is_up(*_: Any) -> None:
        raise TimeoutError("soft time limit")

    old = signal.signal(signal.SIGALRM, time_is_up)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(TimeoutError):
            ask(helper, do="sleep", s=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert not psutil.pid_exists(pid)
    assert ask(helper, do="echo") != pid


def test_a_child_that_grew_is_replaced(helper) -> None:
    pid = ask(helper, do="echo")
    ask(helper, do="hoard", mb=48)  # the child keeps it: over recycle_mb
    again = ask(helper, do="echo")
    assert again != pid
    assert not psutil.pid_exists(pid)


def test_a_child_that_died_between_calls_is_replaced(helper) -> None:
    pid = ask(helper, do="echo")
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    assert ask(helper, do="echo") != pid


def test_a_forked_copy_of_the_caller_gets_its_own_child(helper) -> None:
    parents = ask(helper, do="echo")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the forked copy
        code = 1
        try:
            os.close(read_fd)
            mine = ask(helper, do="echo")
            os.write(write_fd, str(mine).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        theirs = int(pipe.read() or 0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert theirs not in (0, parents)
    assert ask(helper, do="echo") == parents  # the copy left ours alone


def test_text_layer_pages_share_one_child_and_stay_flat() -> None:
    """No fork per page: a worker reads page after page in the same child, and neither
    it nor the caller grows."""
    pages = [g.text_pdf([f"{g.SAMPLE_TEXTS[i % 5]} Page {i}."]) for i in range(300)]
    process_page(PageInput(1, "pdf", pages[0], "a.pdf page 1"))
    child = pdf._helper._child
    assert child is not None
    me, helper_process = psutil.Process(), psutil.Process(child.pid)
    before = me.memory_info().rss, helper_process.memory_info().rss
    for i, data in enumerate(pages):
        result = process_page(PageInput(1, "pdf", data, f"a.pdf page {i + 1}"))
        assert result.ok and result.text_source == "text-layer" and result.thumbnail
    assert pdf._helper._child is child
    grew = [(after - was) / MiB for after, was in zip((me.memory_info().rss,
            helper_process.memory_info().rss), before, strict=True)]  # fmt: skip
    assert max(grew) < 20, grew


def test_a_content_bomb_fails_its_page_and_the_next_page_is_read() -> None:
    from test_hostile_input import bomb_pdf

    bomb = bomb_pdf(300)
    with pytest.raises(ProcessingError, match="page needs more than 256 MB"):
        pdf.served(pdf.render_page, bomb, "bomb.pdf page 1", memory_mb=256, time_limit=0,
                   dpi=72, max_pixels=10_000_000)  # fmt: skip
    result = process_page(PageInput(1, "pdf", g.text_pdf([g.SAMPLE_TEXTS[0]]), "a.pdf page 1"))
    assert result.ok and g.word_recall(g.SAMPLE_TEXTS[0], result.text) == 1.0


def test_pages_read_ahead_in_one_call_give_what_each_read_alone_gives() -> None:
    """A chunk's text layers are read in one call to the helper; the results are those of
    pages read one by one, and a scanned page (no layer) is left to be OCR'd on its own."""
    texts = [f"{g.SAMPLE_TEXTS[i % 5]} Page {i}." for i in range(5)]
    pages = [(g.text_pdf([t]), f"a.pdf page {i + 1}") for i, t in enumerate(texts)]
    scan = g.scanned_pdf([g.text_image("Scanned leaf.", width=800, height=1000)])
    reads = pdf.text_layer_pages(
        [*pages, (scan, "a.pdf page 6")],
        memory_mb=256,
        time_limit=10,
        mode="auto",
        min_chars=20,
        thumb_size=160,
    )
    assert reads[-1] is None, "a page that needs OCR is not read ahead"
    for (data, source), read in zip(pages, reads, strict=False):
        assert read is not None
        ahead = process_page(PageInput(1, "pdf", data, source, pdf_read=read))
        alone = process_page(PageInput(1, "pdf", data, source))
        assert ahead.ok and ahead.text == alone.text and ahead.text_source == "text-layer"
        assert ahead.thumbnail and ahead.text_source_reason == alone.text_source_reason


def test_a_bomb_in_a_read_ahead_leaves_every_page_to_be_read_alone() -> None:
    """The helper dying on one page of a group reads nothing ahead: each page is then read
    alone, so the bomb fails by itself, with its own message, and the others are read."""
    from test_hostile_input import bomb_pdf

    good = g.text_pdf([g.SAMPLE_TEXTS[0]])
    group = [(good, "a.pdf page 1"), (bomb_pdf(300), "a.pdf page 2"), (good, "a.pdf page 3")]
    reads = pdf.text_layer_pages(
        group, memory_mb=256, time_limit=10, mode="text-only", min_chars=20, thumb_size=160
    )
    if any(reads):  # the bomb's text layer read without rendering it: its thumbnail is None
        assert reads[1] is None
    results = [
        process_page(PageInput(1, "pdf", d, s, memory_mb=256, ocr_mode="text-only", pdf_read=r))
        for (d, s), r in zip(group, reads, strict=True)
    ]
    assert results[0].ok and results[2].ok
    assert not results[1].ok and "a.pdf page 2" in results[1].error
    assert "needs more than 256 MB" in results[1].error
