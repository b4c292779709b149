"""Hostile input: PDF content bombs, huge uploads and bodies, names that lie about themselves.

Each test checks what a user (or an operator watching memory) would notice: the caller's
and the server's memory stay flat, a bomb fails only its own page with a message, and
the worker goes on to finish the normal page beside it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import new_project
from pypdf import PdfWriter
from pypdf.generic import NameObject, StreamObject

from pagekit import _pagegen as g
from pagekit import tokens
from pagekit.client import Client
from pagekit.errors import BadFileName
from pagekit.ingest import check_name, load_item

MiB = 1024 * 1024


def bomb_pdf(inflated_mb: int, pages: int = 1) -> bytes:
    """A small PDF whose pages share one content stream inflating to ``inflated_mb`` MB of
    drawing operators (compressed a chunk at a time, so building it costs no memory)."""
    unit = b"0 0 m 1 1 l S\n"
    chunk = unit * (MiB // len(unit))
    deflate = zlib.compressobj(9)
    parts = [deflate.compress(chunk) for _ in range(inflated_mb)]
    parts.append(deflate.flush())
    stream = StreamObject()
    stream._data = b"".join(parts)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    writer = PdfWriter()
    ref = writer._add_object(stream)
    for _ in range(pages):
        writer.add_blank_page(612, 792)[NameObject("/Contents")] = ref
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def rss() -> int:
    return psutil.Process().memory_info().rss


def wait_done(client: Client, task_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.status(task_id)
        if status["status"] not in ("queued", "processing"):
            return status
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} not finished after {timeout} s: {status}")


def test_pdf_content_bombs_cost_the_caller_nothing_and_fail_only_their_pages(
    client: Client,
) -> None:
    project = new_project(client)
    one = bomb_pdf(400)
    shared = bomb_pdf(300, pages=20)  # other bytes: not a duplicate of the first
    assert len(one) < 1 * MiB and len(shared) < 1 * MiB  # tiny files, 300-400 MB of content
    normal = g.text_pdf([g.SAMPLE_TEXTS[0]])
    before = rss()
    started = time.monotonic()
    added = client.add_pages(
        project, [("bomb.pdf", one), ("bomb20.pdf", shared), ("letter.pdf", normal)]
    )
    took = time.monotonic() - started
    grew = (rss() - before) / MiB
    print(f"\ningest of 2 bombs (21 pages) + 1 page: {took:.2f} s, caller RSS +{grew:.0f} MB")
    assert [a["status"] for a in added] == ["added", "added", "added"], added
    assert [len(a["page_ids"]) for a in added] == [1, 20, 1]
    assert grew < 100

    job = client.process_pending(project)
    status = wait_done(client, job["task_id"])
    results = {r["page_id"]: r for r in status["result"]["results"]}
    (letter,) = added[2]["page_ids"]
    assert results[letter]["status"] == "completed", results[letter]
    assert g.word_recall(g.SAMPLE_TEXTS[0], client.page(letter)["text"]) == 1.0
    bombs = added[0]["page_ids"] + added[1]["page_ids"]
    for page_id in bombs:
        assert results[page_id]["status"] == "failed", results[page_id]
        assert "page needs more than" in results[page_id]["error"]
        assert "PAGEKIT_PAGE_MEMORY_MB" in results[page_id]["error"]
    assert results[added[1]["page_ids"][4]]["error"].startswith("bomb20.pdf page 5: ")
    print(f"processing: {status['result']['failed']} bombs failed, 1 page completed")
    # The workers survived: they still take work.
    again = client.process_page(project, letter)
    assert wait_done(client, again["task_id"], timeout=60)["status"] == "completed"


@pytest.mark.parametrize(
    "name",
    ["invoice\u202egnp.exe", "a\u202ab.png", "a\u202cb.png", "\u2066x\u2069.pdf", "a\u2068.jpg"],
)
def test_names_with_bidi_controls_are_refused(name: str) -> None:
    with pytest.raises(BadFileName, match=r"bidirectional control characters \(U\+20") as err:
        check_name(name)
    message = str(err.value)
    assert "\\u20" in message  # the name is shown escaped, not reordered on screen
    assert "upload it under a plain name like 'page.png'" in message


def test_a_bidi_name_is_refused_by_the_client_and_stores_nothing(
    client: Client, project: dict
) -> None:
    (out,) = client.add_pages(project, [("cod\u202egnp.exe", g.image_bytes(g.text_image("x")))])
    assert out["status"] == "rejected" and out["reason"] == "bad file name", out
    assert "U+202E" in out["error"]
    assert client.pages(project).empty


class CountingFile(io.RawIOBase):
    """A file of ``size`` zero bytes after a PNG header that counts what is read from it."""

    def __init__(self, size: int, seekable: bool):
        self.size, self.pos, self.read_total, self._seekable = size, 0, 0, seekable
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def seek(self, offset: int, whence: int = 0) -> int:
        if not self._seekable:
            raise OSError("not seekable")
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        self.largest_read = max(self.largest_read, n)
        head = b"\x89PNG\r\n\x1a\n"
        out = (head + bytes(n))[:n] if self.pos == 0 else bytes(n)
        self.pos += n
        self.read_total += n
        return out


@pytest.mark.parametrize("seekable", [True, False])
def test_file_objects_are_read_in_chunks_and_only_to_the_limit(seekable: bool) -> None:
    limit = 8 * MiB
    f = CountingFile(1024 * MiB, seekable)
    with pytest.raises(Exception, match="over the limit of 8 MiB") as err:
        load_item(f, max_bytes=limit)
    assert err.value.limit == limit  # type: ignore[attr-defined]
    # A seekable file is refused from its size; a stream is read one chunk past the limit
    # at most, never the limit plus one byte in one read.
    assert f.read_total == (0 if seekable else limit + 1)
    assert f.largest_read <= MiB


def _serve(home: Path, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("pagekit")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pagekit.cli"]
    server = subprocess.Popen(
        [*cmd, "serve", "--port", str(port)],
        env={**os.environ, **env, "PAGEKIT_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, server.stdout.read() if server.stdout else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "pagekit serve did not answer /health"
        time.sleep(0.2)


def test_server_memory_stays_flat_for_huge_uploads_and_bodies(
    client: Client, runtime_home: Path, tmp_path: Path
) -> None:
    from test_api import _free_port

    limit = 256 * MiB
    token = tokens.create(client.store, f"hostile-{uuid.uuid4().hex[:8]}")
    pid = new_project(client)["project_id"]
    big = tmp_path / "big.pdf"
    with big.open("wb") as f:
        f.write(b"%PDF-1.7\n")
        f.truncate(limit + 1024)  # just over the limit (sparse on disk)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(runtime_home, port, {"PAGEKIT_MAX_UPLOAD_BYTES": str(limit)})
    headers = {"Authorization": f"Bearer {token}"}
    try:
        proc = psutil.Process(server.pid)
        before = proc.memory_info().rss
        with big.open("rb") as f:  # httpx streams the file: nothing big in this process
            r = httpx.post(
                f"{base}/projects/{pid}/pages", files={"file": ("big.pdf", f)}, headers=headers,
                timeout=300,
            )  # fmt: skip
        assert r.status_code == 413 and r.json()["reason"] == "too large", r.text
        upload_growth = (proc.memory_info().rss - before) / MiB

        # 50 MiB of JSON, streamed without a Content-Length: refused while reading.
        def json_chunks():
            yield b'{"page_ids": ['
            for _ in range(50):
                yield b"1," * (MiB // 2)
            yield b"1]}"

        r = httpx.post(
            f"{base}/tasks/projects/{pid}/process-batch",
            content=json_chunks(),
            headers={**headers, "Content-Type": "application/json"},
            timeout=120,
        )
        assert r.status_code == 413 and "over the limit" in r.json()["detail"], r.text
        json_growth = (proc.memory_info().rss - before) / MiB
        print(
            f"\nserver RSS {before / MiB:.0f} MB; +{upload_growth:.0f} MB after a "
            f"{(limit + 1024) / MiB:.0f} MiB upload, +{json_growth:.0f} MB after 50 MiB of JSON"
        )
        assert upload_growth < 100
        assert json_growth < 100
        # A content bomb uploaded through the API is stored without being rendered.
        bomb_project = new_project(client)["project_id"]
        r = httpx.post(
            f"{base}/projects/{bomb_project}/pages",
            files={"file": ("bomb20.pdf", bomb_pdf(300, pages=20))},
            headers=headers,
            timeout=120,
        )
        assert r.status_code == 201 and len(r.json()["page_ids"]) == 20, r.text
        bomb_growth = (proc.memory_info().rss - before) / MiB
        print(f"server RSS +{bomb_growth:.0f} MB after a 20-page content bomb upload")
        assert bomb_growth < 100
        # A normal JSON body still goes through.
        r = httpx.post(
            f"{base}/tasks/projects/{pid}/process-batch",
            json={"page_ids": [999_999]},
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 404, r.text
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert client.pages(pid).empty  # the refused upload stored nothing


def test_a_local_file_with_a_bidi_name_is_refused_too(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "invoice\u202egnp.png"
    path.write_bytes(g.image_bytes(g.text_image("a page with a misleading name"), "PNG"))
    (out,) = client.add_pages(new_project(client), [path])
    assert out["status"] == "rejected" and "U+202E" in out["error"], out
    assert out["reason"] == "bad file name"
