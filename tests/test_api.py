"""The HTTP API against the real runtime: every route, the auth rules, the error cases.

Most tests call the app in-process (``TestClient``) on the session's real Redis, workers
and database; ``test_serve_walks_the_seed_with_curl`` runs ``pagekit serve`` and walks
the curl walk-through steps with real curl.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from conftest import need, new_project
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from pagekit import _pagegen, tokens
from pagekit.api import FORM_OVERHEAD, create_app, router
from pagekit.cli import main as cli
from pagekit.client import Client
from pagekit.store import PAGE_STATES, ApiToken

MISSING = 999_999  # an id no test creates
NO_TASK = "00000000-0000-4000-8000-000000000000"


def page_png(text: str) -> bytes:
    """A small page with known text (small so OCR stays quick)."""
    img = _pagegen.text_image(text, width=900, height=500, font_size=36)
    return _pagegen.image_bytes(img, "PNG")


def page_jpeg(text: str) -> bytes:
    img = _pagegen.text_image(text, width=900, height=500, font_size=36)
    return _pagegen.image_bytes(img, "JPEG", quality=90)


@pytest.fixture(scope="module")
def token(client: Client) -> str:
    return tokens.create(client.store, f"test-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def api(client: Client, token: str) -> Iterator[TestClient]:
    """The app on the session runtime, sending a valid token."""
    with TestClient(create_app(client), headers={"Authorization": f"Bearer {token}"}) as tc:
        yield tc


@pytest.fixture(scope="module")
def anon(client: Client) -> Iterator[TestClient]:
    """The same app without a token."""
    with TestClient(create_app(client)) as tc:
        yield tc


def upload(api: TestClient, pid: int, name: str, data: bytes, **form: Any) -> httpx.Response:
    return api.post(f"/projects/{pid}/pages", files={"file": (name, data)}, data=form)


def wait_done(api: TestClient, task_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"/tasks/status/{task_id}").json()
        if body["status"] not in ("queued", "processing"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"task {task_id} not finished after {timeout}s: {body}")


def blob_files(client: Client) -> set[Path]:
    root = client.settings.blob_path
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


# -- the job contract flow ---------------------------------------------------------------------


def test_upload_queue_status_and_result_keep_the_seed_shapes(
    api: TestClient, client: Client
) -> None:
    pid = new_project(client)["project_id"]

    r = upload(api, pid, "page28.jpg", page_jpeg("Dear Sir the harvest was late"), page_number=28)
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["status"] == "added" and up["page_number"] == 28 and up["source"] == "page28.jpg"
    assert up["page_ids"] == [up["page_id"]] and up["page_numbers"] == [28]
    page_id = up["page_id"]

    r = api.post(f"/tasks/projects/{pid}/process-page/{page_id}")
    assert r.status_code == 200, r.text
    queued = r.json()
    assert set(queued) == {"task_id", "status", "page_id", "page_number"}
    assert queued["status"] == "queued"
    assert (queued["page_id"], queued["page_number"]) == (page_id, 28)

    done = wait_done(api, queued["task_id"])
    assert set(done) == {"task_id", "status", "result"}
    assert done["status"] == "completed"
    assert set(done["result"]) == {"total", "completed", "failed", "results"}
    assert (done["result"]["total"], done["result"]["completed"]) == (1, 1)
    assert done["result"]["results"][0]["page_id"] == page_id

    r = api.get(f"/projects/{pid}/pages/{page_id}")
    assert r.status_code == 200
    page = r.json()
    assert page["status"] == "completed" and page["page_number"] == 28
    assert "harvest" in page["text"].lower()
    assert page["words"] >= 4 and page["engine"].startswith("tesseract")


def test_process_pending_queues_every_pending_page_once_and_then_says_none_left(
    api: TestClient, client: Client
) -> None:
    pid = new_project(client)["project_id"]
    for i in range(3):
        assert upload(api, pid, f"q{i}.png", page_png(f"pending page {i}")).status_code == 201
    r = api.post(f"/tasks/projects/{pid}/process-pending")
    assert r.status_code == 200, r.text
    queued = r.json()
    assert set(queued) == {"task_id", "status", "total_pages", "page_ids"}  # as process-batch
    assert (queued["status"], queued["total_pages"], len(queued["page_ids"])) == ("queued", 3, 3)
    again = api.post(f"/tasks/projects/{pid}/process-pending")  # a second user, same moment
    assert again.status_code == 409, again.text
    assert "no pending pages" in again.json()["detail"]
    done = wait_done(api, queued["task_id"])
    assert (done["status"], done["result"]["completed"]) == ("completed", 3)


def test_batch_reports_progress_while_running_and_cancel_stops_it(
    api: TestClient, client: Client
) -> None:
    pid = new_project(client, steps=["slow"])["project_id"]
    ids = []
    for i in range(6):
        r = upload(api, pid, f"p{i}.png", page_png(f"batch page number {i} of six"))
        assert r.status_code == 201, r.text
        ids.append(r.json()["page_id"])

    r = api.post(f"/tasks/projects/{pid}/process-batch", json={"page_ids": ids})
    assert r.status_code == 200, r.text
    batch = r.json()
    assert batch == {
        "task_id": batch["task_id"],
        "status": "queued",
        "total_pages": 6,
        "page_ids": ids,
    }

    running = api.get(f"/tasks/status/{batch['task_id']}").json()
    assert set(running) == {"task_id", "status", "current", "total"}
    assert running["status"] in ("queued", "processing") and running["total"] == 6

    # Queueing a page that is already queued is a conflict, not a second task.
    r = api.post(f"/tasks/projects/{pid}/process-page/{ids[-1]}")
    assert r.status_code == 409 and "already queued" in r.json()["detail"]

    r = api.post(f"/tasks/cancel/{batch['task_id']}")
    assert r.status_code == 200, r.text
    cancelled = r.json()
    assert cancelled["cancelled_pages"] >= 1  # 2 workers x 1.5 s cannot finish 6 pages yet

    done = wait_done(api, batch["task_id"])
    assert done["status"] == "cancelled"
    result = done["result"]
    assert result["cancelled"] >= cancelled["cancelled_pages"]
    assert result["completed"] + result["failed"] + result["cancelled"] == 6


def test_projects_create_list_and_detail(api: TestClient) -> None:
    name = f"api-{uuid.uuid4().hex[:8]}"
    r = api.post("/projects", json={"name": name, "steps": ["shout"]})
    assert r.status_code == 201
    created = r.json()
    assert created == {"project_id": created["project_id"], "name": name, "steps": ["shout"]}

    assert api.post("/projects", json={"name": name}).status_code == 409
    listed = {p["name"]: p for p in api.get("/projects").json()}
    assert listed[name]["pages"] == 0 and listed[name]["project_id"] == created["project_id"]

    detail = api.get(f"/projects/{created['project_id']}").json()
    assert detail["name"] == name and detail["counts"]["pending"] == 0


def test_pages_list_filters_and_pages(api: TestClient, client: Client) -> None:
    pid = new_project(client)["project_id"]
    for i in range(5):
        assert upload(api, pid, f"s{i}.png", page_png(f"listing page {i}")).status_code == 201

    first = api.get(f"/projects/{pid}/pages", params={"limit": 2}).json()
    assert first["total"] == 5 and [p["page_number"] for p in first["pages"]] == [1, 2]
    rest = api.get(f"/projects/{pid}/pages", params={"limit": 10, "offset": 2}).json()
    assert [p["page_number"] for p in rest["pages"]] == [3, 4, 5]
    assert all(p["status"] == "pending" and p["words"] is None for p in rest["pages"])

    done = api.get(f"/projects/{pid}/pages", params={"status": "completed"}).json()
    assert done["total"] == 0 and done["pages"] == []
    assert api.get(f"/projects/{pid}/pages", params={"status": "bogus"}).status_code == 422
    assert api.get(f"/projects/{pid}/pages", params={"limit": 0}).status_code == 422
    # A typo is refused rather than silently listing every page.
    assert api.get(f"/projects/{pid}/pages", params={"stauts": "failed"}).status_code == 422


def test_a_pdf_upload_creates_one_page_per_pdf_page(api: TestClient, client: Client) -> None:
    pid = new_project(client)["project_id"]
    pdf = _pagegen.text_pdf(["first page text", "second page text", "third page text"])
    r = upload(api, pid, "box3.pdf", pdf, page_number=10)
    assert r.status_code == 201
    assert r.json()["page_numbers"] == [10, 11, 12] and len(r.json()["page_ids"]) == 3

    again = upload(api, pid, "box3-copy.pdf", pdf)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["duplicates"] == r.json()["page_ids"]
    assert api.get(f"/projects/{pid}/pages").json()["total"] == 3


# -- auth -------------------------------------------------------------------------------------


# Every route that needs a token: all of the router's (health lives outside it).
ROUTES = sorted(
    (method, route.path)
    for route in router.routes
    if isinstance(route, APIRoute)
    for method in route.methods
)


def _fill(path: str, project_id: int, page_id: int) -> str:
    return (
        path.replace("{project_id}", str(project_id))
        .replace("{page_id}", str(page_id))
        .replace("{task_id}", NO_TASK)
    )


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_but_health_needs_a_valid_token(
    anon: TestClient, client: Client, token: str, method: str, path: str
) -> None:
    pid = new_project(client)["project_id"]
    (out,) = client.add_pages(pid, [("a.png", page_png(f"auth {uuid.uuid4().hex}"))])
    page_id = out["page_ids"][0]
    revoked_name = f"revoked-{uuid.uuid4().hex[:8]}"
    revoked = tokens.create(client.store, revoked_name)
    tokens.revoke(client.store, revoked_name)
    bodies = []
    for headers in (
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": f"Bearer {revoked}"},
    ):
        for project in (pid, MISSING):  # an existing and a missing project look the same
            r = anon.request(
                method,
                _fill(path, project, page_id),
                headers=headers,
                json={"page_ids": [page_id], "name": "x"},
            )
            assert r.status_code == 401, (headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            bodies.append(r.json())
    assert all(b == bodies[0] for b in bodies)
    # Nothing was touched: the page is still pending, not queued.
    assert client.page(page_id)["status"] == "pending"


def test_health_needs_no_token(anon: TestClient) -> None:
    r = anon.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_tokens_are_stored_hashed_and_revocable(client: Client) -> None:
    name = f"life-{uuid.uuid4().hex[:8]}"
    token = tokens.create(client.store, name)
    assert len(token) >= 43  # token_urlsafe(32)
    with client.store.read() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.name == name))
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token

    with TestClient(create_app(client)) as tc:
        headers = {"Authorization": f"Bearer {token}"}
        assert tc.get("/projects", headers=headers).status_code == 200
        assert tokens.revoke(client.store, name) is True
        assert tc.get("/projects", headers=headers).status_code == 401
    assert tokens.revoke(client.store, name) is False  # already revoked
    listed = {t["name"]: t for t in tokens.list_tokens(client.store)}
    assert listed[name]["revoked_at"] is not None and "token_hash" not in listed[name]
    with pytest.raises(Exception, match="already exists"):
        tokens.create(client.store, name)


def test_token_command_creates_lists_and_revokes(client: Client, runtime_home: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    home = ["--home", str(runtime_home)]
    runner = CliRunner()
    created = runner.invoke(cli, [*home, "token", "create", name])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert tokens.verify(client.store, token) == name

    listed = runner.invoke(cli, [*home, "token", "list"])
    assert re.search(rf"^{name}\s+active\s+\d{{4}}-\d\d-\d\d \d\d:\d\d$", listed.output, re.M)
    assert token not in listed.output

    revoked = runner.invoke(cli, [*home, "token", "revoke", name])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert tokens.verify(client.store, token) is None
    missing = runner.invoke(cli, [*home, "token", "revoke", "no-such-token-name"])
    assert missing.exit_code != 0 and "no such token" in missing.output


# -- errors -----------------------------------------------------------------------------------


def test_unknown_things_are_404_with_a_readable_message(api: TestClient, client: Client) -> None:
    pid = new_project(client)["project_id"]
    other = new_project(client)["project_id"]
    (out,) = client.add_pages(other, [("o.png", page_png("another project's page"))])
    foreign = out["page_ids"][0]
    cases = [
        ("GET", f"/projects/{MISSING}", None, "no such project"),
        ("GET", f"/projects/{MISSING}/pages", None, "no such project"),
        ("GET", f"/projects/{MISSING}/pages/{foreign}", None, "no such project"),
        ("POST", f"/tasks/projects/{MISSING}/process-page/{foreign}", None, "no such project"),
        ("POST", f"/tasks/projects/{MISSING}/process-batch", [foreign], "no such project"),
        ("GET", f"/projects/{pid}/pages/{MISSING}", None, "no such page"),
        ("GET", f"/projects/{pid}/pages/{foreign}", None, "no such page"),
        ("POST", f"/tasks/projects/{pid}/process-page/{foreign}", None, "no such page"),
        ("POST", f"/tasks/projects/{pid}/process-batch", [foreign], "no such page"),
        ("GET", f"/tasks/status/{NO_TASK}", None, "no such task"),
        ("POST", f"/tasks/cancel/{NO_TASK}", None, "no such task"),
        ("GET", "/tasks/status/not-a-task", None, "no such task"),
    ]
    for method, path, page_ids, message in cases:
        body = {"page_ids": page_ids} if page_ids else None
        r = api.request(method, path, json=body)
        assert r.status_code == 404, (path, r.text)
        assert message in r.json()["detail"], (path, r.json())
    r = api.post(f"/projects/{MISSING}/pages", files={"file": ("a.png", page_png("x"))})
    assert r.status_code == 404 and "no such project" in r.json()["detail"]
    assert client.page(foreign)["status"] == "pending"  # never queued from the wrong project


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"page_ids": []},
        {"page_ids": ["one"]},
        {"page_ids": [0]},
        {"page_ids": 3},
        "not json",
        b"\xff\xfe not even text",
    ],
    ids=["missing", "empty", "strings", "zero", "not-a-list", "not-json", "not-utf8"],
)
def test_bad_batch_bodies_are_422(api: TestClient, client: Client, body: Any) -> None:
    pid = new_project(client)["project_id"]
    if isinstance(body, (str, bytes)):
        r = api.post(
            f"/tasks/projects/{pid}/process-batch",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    else:
        r = api.post(f"/tasks/projects/{pid}/process-batch", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_bad_project_bodies_are_422(api: TestClient) -> None:
    for body in ({}, {"name": ""}, {"name": "   "}, {"name": "a\x00b"}, {"name": "x" * 201}):
        assert api.post("/projects", json=body).status_code == 422, body
    assert api.get("/projects/0").status_code == 422
    assert api.get(f"/projects/{2**40}").status_code == 422


REFUSED = [
    ("notes.txt", b"just some text, not a page", 415, "unsupported type"),
    ("fake.png", b"MZ\x90\x00 an executable renamed to png", 415, "unsupported type"),
    ("empty.png", b"", 422, "empty"),
    ("broken.png", page_png("truncated")[:400], 422, "corrupt"),
    ("../../etc/passwd.png", page_png("hostile name"), 422, "bad file name"),
    ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", 422, "corrupt"),
]


@pytest.mark.parametrize(
    ("name", "data", "status", "reason"), REFUSED, ids=[r[3] + ":" + r[0] for r in REFUSED]
)
def test_refused_uploads_say_why_and_store_nothing(
    api: TestClient, client: Client, name: str, data: bytes, status: int, reason: str
) -> None:
    pid = new_project(client)["project_id"]
    before = blob_files(client)
    r = upload(api, pid, name, data)
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason and r.json()["detail"]
    assert api.get(f"/projects/{pid}/pages").json()["total"] == 0
    assert blob_files(client) == before


def test_uploads_over_the_limit_are_413_without_storing(client: Client, token: str) -> None:
    limit = 200_000
    small = Client(settings=client.settings.with_(max_upload_bytes=limit), start=False)
    pid = new_project(small)["project_id"]
    before = blob_files(small)
    url = f"/projects/{pid}/pages"
    with TestClient(create_app(small), headers={"Authorization": f"Bearer {token}"}) as tc:
        # The file is over the limit, the body is within the framing slack: ingest says so.
        r = tc.post(url, files={"file": ("big.png", b"\x89PNG\r\n\x1a\n" + b"0" * limit)})
        assert r.status_code == 413 and r.json()["reason"] == "too large", r.text
        # A declared Content-Length over the limit is refused before the body is read.
        r = tc.post(url, files={"file": ("huge.png", b"0" * (limit + FORM_OVERHEAD + 1))})
        assert r.status_code == 413 and "over the limit" in r.json()["detail"]

    # A streamed body without Content-Length is cut off once it passes the limit.
    sent = asyncio.run(_stream_upload(create_app(small), url, token, chunks=100))
    assert sent < 10  # of 100 chunks of 64 KiB: stopped early instead of reading all
    assert small.pages(pid).empty
    assert blob_files(small) == before


async def _stream_upload(app: Any, url: str, token: str, chunks: int) -> int:
    """POST a chunked multipart body lazily; how many 64 KiB chunks the app pulled."""
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b"--b\r\nContent-Disposition: form-data; name=file; filename=s.png\r\n\r\n"
        for _ in range(chunks):
            sent += 1
            yield b"0" * 65536
        yield b"\r\n--b--\r\n"

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as ac:
        r = await ac.post(
            url,
            content=body(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "multipart/form-data; boundary=b",
            },
        )
    assert r.status_code == 413, r.text
    return sent


def test_malformed_upload_requests(api: TestClient, client: Client) -> None:
    pid = new_project(client)["project_id"]
    url = f"/projects/{pid}/pages"
    png = page_png("well formed page")
    r = api.post(url, content=png, headers={"Content-Type": "image/png"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    r = api.post(url, data={"page_number": "3"}, files={"other": ("a.png", png)})
    assert r.status_code == 422 and "file" in r.json()["detail"]
    r = api.post(url, data={"file": "not a file"}, files={"x": ("a.png", png)})
    assert r.status_code == 422
    for bad in ("abc", "0", "-1", "1.5", str(2**40)):
        r = upload(api, pid, "a.png", png, page_number=bad)
        assert r.status_code == 422 and "page_number" in r.json()["detail"], bad

    assert upload(api, pid, "a.png", png, page_number=7).status_code == 201
    r = upload(api, pid, "b.png", page_png("another page, same number"), page_number=7)
    assert r.status_code == 409 and "already used" in r.json()["detail"]
    assert api.get(url).json()["total"] == 1


# -- the OpenAPI document ---------------------------------------------------------------------


def test_openapi_documents_every_route_schema_and_the_bearer_scheme(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["HTTPBearer"]["description"],
    }
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert set(ROUTES) <= documented and ("GET", "/health") in documented
    for method, path in ROUTES:
        op = doc["paths"][path][method.lower()]
        assert op["security"] == [{"HTTPBearer": []}], path
        assert "401" in op["responses"], path
        if method == "DELETE":  # 204, no body
            assert "204" in op["responses"] and "409" in op["responses"], path
            continue
        ok = op["responses"].get("200") or op["responses"]["201"]
        assert "$ref" in str(ok["content"]["application/json"]["schema"]), path
    assert "security" not in doc["paths"]["/health"]["get"]
    schemas = doc["components"]["schemas"]
    for name in ("PageQueued", "BatchQueued", "TaskRunning", "TaskDone", "Uploaded", "Problem"):
        assert name in schemas
    upload_op = doc["paths"]["/projects/{project_id}/pages"]["post"]
    form = upload_op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and set(form["properties"]) == {"file", "page_number"}
    assert {"413", "415"} <= set(upload_op["responses"])
    assert schemas["PageRow"]["properties"]["status"]["enum"] == list(PAGE_STATES)


# -- `pagekit serve` and the curl walk-through ----------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _curl(*args: str, cwd: Path) -> dict[str, Any]:
    import json

    out = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail-with-body", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def test_serve_walks_the_seed_with_curl(client: Client, runtime_home: Path, tmp_path: Path) -> None:
    need(shutil.which("curl") is not None, "curl is needed for the curl walk-through")
    token = tokens.create(client.store, f"curl-{uuid.uuid4().hex[:8]}")
    pid = new_project(client)["project_id"]
    (tmp_path / "page28.jpg").write_bytes(page_jpeg("Page twenty eight of the ledger"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("pagekit")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pagekit.cli"]
    env = {**os.environ, "PAGEKIT_HOME": str(runtime_home)}
    server = subprocess.Popen(
        [*cmd, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "pagekit serve did not answer /health"
            time.sleep(0.2)
        auth = f"Authorization: Bearer {token}"

        # 2. Upload pages via API (the documented command, with our project id).
        up = _curl(
            "-X", "POST", f"{base}/projects/{pid}/pages",
            "-H", auth,
            "-F", "file=@page28.jpg",
            "-F", "page_number=28",
            cwd=tmp_path,
        )  # fmt: skip
        assert up["page_number"] == 28 and up["status"] == "added"
        # 3. Queue for processing.
        queued = _curl(
            "-X", "POST", f"{base}/tasks/projects/{pid}/process-page/{up['page_id']}",
            "-H", auth,
            cwd=tmp_path,
        )  # fmt: skip
        assert queued["status"] == "queued" and queued["page_number"] == 28
        # 4. Check status (with the token: status results carry page data).
        deadline = time.monotonic() + 120
        while True:
            status = _curl(f"{base}/tasks/status/{queued['task_id']}", "-H", auth, cwd=tmp_path)
            if status["status"] not in ("queued", "processing"):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        assert status["status"] == "completed" and status["result"]["completed"] == 1
        page = _curl(f"{base}/projects/{pid}/pages/{up['page_id']}", "-H", auth, cwd=tmp_path)
        assert "ledger" in page["text"].lower()
        # And without the token, the same status call is refused.
        r = httpx.get(f"{base}/tasks/status/{queued['task_id']}")
        assert r.status_code == 401
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}" in output
