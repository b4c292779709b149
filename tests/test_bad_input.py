"""Every bad argument a user can type gets one clear line and the right code, quickly.

The rules live in :mod:`pagekit.validate` and are applied by the Client, so the CLI and
the HTTP API agree: the same input is refused by both, never with a traceback or a 500.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagekit import _pagegen, tokens
from pagekit.client import Client

BIN = Path(sys.executable).parent
BOUND = 60  # seconds: a bad argument never hangs (e.g. --pages 1-100000000)


def _png(text: str) -> bytes:
    img = _pagegen.text_image(text, width=400, height=200, font_size=24)
    return _pagegen.image_bytes(img, "PNG")


@pytest.fixture(scope="module")
def proj(client: Client, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A project with three pages, and two page files next to it."""
    p = client.create_project(f"bad-input-{uuid.uuid4().hex[:8]}")
    for n in range(3):
        client.add_pages(p, [(f"p{n}.png", _png(f"page {n} of the bad input test"))])
    folder = tmp_path_factory.mktemp("files")
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(_png(f"file {name} {uuid.uuid4().hex}"))
    return {**p, "dir": folder}


CLI_CASES = [
    # (arguments, exit code, words the one-line error must contain)
    (["project", "create", "  "], 2, "needs a name"),
    (["project", "create", "tab\there"], 2, "control"),
    (["project", "create", "x" * 201], 2, "at most 200"),
    (["project", "create", "{new}", "--steps", "no_such_step"], 2, "no processing step"),
    (["add", "{p}", "{dir}/a.png", "{dir}/b.png", "--page-number", "3"], 2, "one file"),
    (["add", "{p}", "{dir}/a.png", "--page-number", "-5"], 2, "out of range"),
    (["add", "{p}", "{dir}/a.png", "--page-number", "0"], 2, "out of range"),
    # A refused file is an outcome of `add` (the other files go on): exit 5, one line.
    (["add", "{p}", "{dir}/a.png", "--page-number", "2"], 5, "already used"),
    (["add", "no-such-project-x", "{dir}/a.png"], 4, "no such project"),
    (["process", "{p}", "--pages", "3-x"], 2, "cannot read '3-x'"),
    (["process", "{p}", "--pages", "abc"], 2, "cannot read 'abc'"),
    (["process", "{p}", "--pages", "-1"], 2, "cannot read '-1'"),
    (["process", "{p}", "--pages", "0"], 2, "cannot read '0'"),
    (["process", "{p}", "--pages", "3-1"], 2, "backwards"),
    (["process", "{p}", "--pages", "1-100000000"], 2, "no page 100000000"),
    (["process", "{p}", "--pages", "7"], 2, "no page 7"),
    (["process", "{p}", "--pages", ""], 2, "no pages given"),
    (["pages", "{p}", "--status", "bogus"], 2, "no page status 'bogus'"),
    (["pages", "{p}", "--limit", "-1"], 2, "limit"),
    (["pages", "no-such-project-x"], 4, "no such project"),
    (["task", "status", "not-a-task"], 4, "no such task"),
    (["task", "cancel", "00000000-0000-4000-8000-000000000000"], 4, "no such task"),
]


@pytest.mark.parametrize(("args", "code", "words"), CLI_CASES, ids=lambda c: repr(c)[:40])
def test_the_cli_answers_bad_arguments_with_one_line(
    client: Client, runtime_home: Path, proj: dict, args: list[str], code: int, words: str
) -> None:
    fill = {"p": proj["name"], "dir": str(proj["dir"]), "new": f"n-{uuid.uuid4().hex[:8]}"}
    argv = [a.format(**fill) if "{" in a else a for a in args]
    env = dict(os.environ, PAGEKIT_HOME=str(runtime_home))
    out = subprocess.run(
        [str(BIN / "pagekit"), *argv], env=env, capture_output=True, text=True, timeout=BOUND
    )
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    errors = [line for line in lines if line.startswith(("error:", "rejected"))]
    assert len(errors) == 1 and words in errors[0], out.stderr


def test_the_client_refuses_the_same_inputs_with_typed_errors(client: Client, proj: dict):
    from pagekit import errors

    with pytest.raises(errors.InvalidProjectName):
        client.create_project("   ")
    with pytest.raises(errors.UnknownStep):
        client.create_project(f"s-{uuid.uuid4().hex[:8]}", steps=["no_such_step"])
    with pytest.raises(errors.InvalidPageNumber):
        client.add_pages(proj, [proj["dir"] / "a.png", proj["dir"] / "b.png"], page_number=3)
    with pytest.raises(errors.InvalidPageNumber):
        client.add_pages(proj, proj["dir"] / "a.png", page_number=-5)
    with pytest.raises(errors.InvalidPageSelection):
        client.page_ids_for_numbers(proj, "1-100000000")
    with pytest.raises(errors.UnknownStatus):
        client.pages(proj, status="bogus")
    assert client.page_ids_for_numbers(proj, "1,3") == [
        int(i) for i in client.pages(proj).query("page_number in (1, 3)").page_id
    ]


def test_a_tuple_of_two_paths_is_two_files_not_one_upload(client: Client, tmp_path: Path):
    p = client.create_project(f"tuple-{uuid.uuid4().hex[:8]}")
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(_png("first tuple page"))
    b.write_bytes(_png("second tuple page"))
    outcomes = client.add_pages(p, (str(a), str(b)))
    assert [o["status"] for o in outcomes] == ["added", "added"]
    assert [o["source"] for o in outcomes] == ["a.png", "b.png"]
    (one,) = client.add_pages(p, ("c.png", _png("an upload pair")))  # (name, bytes): one file
    assert one["status"] == "added" and one["source"] == "c.png"


@pytest.fixture(scope="module")
def api(client: Client) -> Iterator:
    pytest.importorskip("fastapi", reason="the api extra is not installed")
    from fastapi.testclient import TestClient

    from pagekit.api import create_app

    token = tokens.create(client.store, f"bad-input-{uuid.uuid4().hex[:8]}")
    with TestClient(create_app(client), headers={"Authorization": f"Bearer {token}"}) as tc:
        yield tc


def _files(name: str, data: bytes) -> dict:
    return {"file": (name, io.BytesIO(data))}


API_CASES = [
    # (method, path, keyword arguments, status, words in "detail")
    ("post", "/projects", {"json": {"name": "  "}}, 422, ""),
    ("post", "/projects", {"json": {"name": "tab\there"}}, 422, ""),
    ("post", "/projects", {"json": {"name": "{new}", "steps": ["no_such_step"]}}, 422, "step"),
    ("post", "/projects/{pid}/pages", {"data": {"page_number": "-5"}, "files": 1}, 422, "page"),
    ("post", "/projects/{pid}/pages", {"data": {"page_number": "abc"}, "files": 1}, 422, "page"),
    ("post", "/projects/{pid}/pages", {"data": {"page_number": "2"}, "files": 1}, 409, "used"),
    ("get", "/projects/{pid}/pages?status=bogus", {}, 422, ""),
    ("get", "/projects/{pid}/pages?limit=-1", {}, 422, ""),
    ("get", "/projects/999999/pages", {}, 404, "no such project"),
    ("post", "/tasks/projects/{pid}/process-batch", {"json": {"page_ids": []}}, 422, ""),
    ("post", "/tasks/projects/{pid}/process-batch", {"json": {"page_ids": ["a"]}}, 422, ""),
    ("post", "/tasks/projects/{pid}/process-batch", {"json": {"page_ids": [-1]}}, 422, ""),
    ("post", "/tasks/projects/{pid}/process-batch", {"json": {"page_ids": [999999]}}, 404, "page"),
    ("get", "/tasks/status/not-a-task", {}, 404, "no such task"),
]


@pytest.mark.timeout(BOUND)  # a bad input never hangs a request
@pytest.mark.parametrize(("method", "path", "kw", "code", "words"), API_CASES, ids=str)
def test_the_api_answers_the_same_bad_inputs_with_4xx(
    api, proj: dict, method: str, path: str, kw: dict, code: int, words: str
) -> None:
    kw = dict(kw)
    if kw.pop("files", None):
        kw["files"] = _files("a.png", (proj["dir"] / "a.png").read_bytes())
    if "json" in kw and isinstance(kw["json"].get("name"), str):
        kw["json"] = {**kw["json"], "name": kw["json"]["name"].replace("{new}", uuid.uuid4().hex)}
    r = getattr(api, method)(path.format(pid=proj["project_id"]), **kw)
    assert r.status_code == code, r.text
    detail = r.json()["detail"]
    assert words.lower() in str(detail).lower(), detail


def test_steps_that_only_the_workers_can_import_are_not_refused(client: Client):
    """With a step module importable only on the workers, names cannot be checked here."""
    settings = client.settings.with_(step_modules=("only_on_the_workers_xyz",))
    elsewhere = Client(settings=settings, start=False)
    assert elsewhere.known_steps() is None
    made = elsewhere.create_project(f"remote-{uuid.uuid4().hex[:8]}", steps=["dates"])
    assert made["steps"] == ["dates"]


def test_the_openapi_document_lists_the_registered_steps(api) -> None:
    steps = api.get("/openapi.json").json()["components"]["schemas"]["ProjectIn"]
    listed = steps["properties"]["steps"]["items"]["enum"]
    assert {"slow", "crash", "shout"} <= set(listed)
    r = api.post("/projects", json={"name": uuid.uuid4().hex, "steps": ["slow"]})
    assert r.status_code == 201 and r.json()["steps"] == ["slow"]
