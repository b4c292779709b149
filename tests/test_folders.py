"""Folders and zip archives as input: from the Client, the CLI, the HTTP API and the widget.

A folder's files go in natural order with hidden and system files skipped; a zip's too,
read one file at a time, with names that point outside it refused, sizes capped per file
and in all, and archives inside it not expanded.
"""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import new_project
from fastapi.testclient import TestClient

from pagekit import _pagegen as gen
from pagekit import ingest, tokens
from pagekit.api import create_app
from pagekit.client import Client
from pagekit.errors import InvalidPageNumber

BIN = Path(sys.executable).parent
MiB = 1024 * 1024


def png(tag: str) -> bytes:
    """A small page whose bytes are its own."""
    text = f"{tag} {uuid.uuid4().hex[:12]}"
    return gen.image_bytes(gen.text_image(text, width=400, height=120, font_size=22), "PNG")


def zip_of(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def outcomes_by_source(outcomes: list[dict]) -> dict[str, dict]:
    return {o["source"]: o for o in outcomes}


@pytest.fixture
def scans(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A folder as a scanner or a phone leaves it: numbered pages in sub-folders, hidden
    files, system files, and a note that is not a page."""
    root = tmp_path / "scans"
    pages = {
        "page1.png": png("one"),
        "page2.png": png("two"),
        "page10.png": png("ten"),
        "ch2/page3.png": png("three"),
        "ch10/page1.png": png("ch10"),
    }
    for rel, data in pages.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.png").write_bytes(png("hidden"))
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "._page1.png").write_bytes(b"AppleDouble")
    (root / "notes.txt").write_text("scanned on Tuesday")
    return root, pages


def test_a_folder_adds_its_files_in_natural_order_skipping_hidden_ones(
    client: Client, scans: tuple[Path, dict[str, bytes]]
) -> None:
    root, pages = scans
    project = new_project(client)
    outcomes = client.add_pages(project, str(root))
    assert [o["source"] for o in outcomes] == [
        "scans/ch2/page3.png",
        "scans/ch10/page1.png",
        "scans/notes.txt",
        "scans/page1.png",
        "scans/page2.png",
        "scans/page10.png",
    ]
    by = outcomes_by_source(outcomes)
    assert by["scans/notes.txt"]["status"] == "rejected"
    assert "not a supported file type" in by["scans/notes.txt"]["error"]
    assert {o["container"] for o in outcomes} == {"scans"}
    added = [o for o in outcomes if o["status"] == "added"]
    assert [o["page_numbers"] for o in added] == [[1], [2], [3], [4], [5]]
    df = client.pages(project)
    assert list(df.source) == [o["source"] for o in added]
    for o in added:
        rel = o["source"].removeprefix("scans/")
        assert client.page_bytes(o["page_ids"][0]) == pages[rel]

    # The same folder again: every page is a duplicate, nothing is stored twice.
    again = client.add_pages(project, root)  # a Path works as well as a str
    assert [o["status"] for o in again if o["source"] != "scans/notes.txt"] == ["duplicate"] * 5
    assert client.count_pages(project) == 5

    with pytest.raises(InvalidPageNumber, match="scans is a folder or an archive"):
        client.add_pages(project, root, page_number=9)


def test_an_empty_folder_is_one_rejected_outcome(client: Client, tmp_path: Path) -> None:
    (tmp_path / "empty" / ".git").mkdir(parents=True)
    [o] = client.add_pages(new_project(client), tmp_path / "empty")
    assert o["status"] == "rejected" and "the folder holds no files to add" in o["error"]


def test_a_zip_adds_each_file_in_natural_order_and_refuses_unsafe_names(client: Client) -> None:
    pages = {"book/p10.png": png("p10"), "book/p2.png": png("p2"), "cover.png": png("cover")}
    archive = zip_of(
        {
            **pages,
            "../evil.png": png("evil"),
            "/etc/abs.png": png("abs"),
            "C:/windows/drive.png": png("drive"),
            "book/..\\..\\sneaky.png": png("sneaky"),
            "__MACOSX/book/._p2.png": b"AppleDouble",
            "book/.DS_Store": b"junk",
            "inner.zip": zip_of({"x.png": png("x")}),
            "readme.txt": b"hello",
        }
    )
    project = new_project(client)
    outcomes = client.add_pages(project, ("box.zip", archive))
    by = outcomes_by_source(outcomes)
    added = [o["source"] for o in outcomes if o["status"] == "added"]
    assert added == ["box.zip/book/p2.png", "box.zip/book/p10.png", "box.zip/cover.png"]
    for name in ("../evil.png", "/etc/abs.png", "C:/windows/drive.png", "book/..\\..\\sneaky.png"):
        o = by[f"box.zip/{name}"]
        assert o["status"] == "rejected" and o["reason"] == "bad file name", o
    assert "points outside the archive" in by["box.zip/../evil.png"]["error"]
    assert "is an absolute path" in by["box.zip//etc/abs.png"]["error"]
    assert "archives are not expanded twice" in by["box.zip/inner.zip"]["error"]
    assert "not a supported file type" in by["box.zip/readme.txt"]["error"]
    assert not any("MACOSX" in s or "DS_Store" in s for s in by)
    assert {o["container"] for o in outcomes} == {"box.zip"}
    for o in outcomes:
        if o["status"] == "added":
            rel = o["source"].removeprefix("box.zip/")
            assert client.page_bytes(o["page_ids"][0]) == pages[rel]
    assert client.count_pages(project) == 3


def test_a_zip_given_by_path_or_found_in_a_folder_is_expanded_too(
    client: Client, tmp_path: Path
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "box.zip").write_bytes(zip_of({"b.png": png("b"), "a.png": png("a")}))
    (tmp_path / "folder" / "inside.zip").write_bytes(zip_of({"c.png": png("c")}))
    (tmp_path / "folder" / "d.png").write_bytes(png("d"))
    outcomes = client.add_pages(new_project(client), [tmp_path / "box.zip", tmp_path / "folder"])
    assert [(o["source"], o["container"], o["status"]) for o in outcomes] == [
        ("box.zip/a.png", "box.zip", "added"),
        ("box.zip/b.png", "box.zip", "added"),
        ("folder/d.png", "folder", "added"),
        ("folder/inside.zip/c.png", "folder/inside.zip", "added"),
    ]


def test_zip_limits_refuse_a_bomb_file_by_file(client: Client, tmp_path: Path) -> None:
    """A file over the upload limit unpacked is refused from its declared size, unread;
    the whole archive unpacks to at most ARCHIVE_EXPANSION times the limit."""
    small = Client(settings=dataclasses.replace(client.settings, max_upload_bytes=MiB), start=False)
    project = new_project(small)
    zeros = b"\x00" * (MiB - 1024)  # each compresses to ~1 KB
    bomb = zip_of({"a-big.png": b"\x00" * (3 * MiB), **{f"f{i:02d}.bin": zeros for i in range(12)}})
    assert len(bomb) < 100_000
    outcomes = small.add_pages(project, ("bomb.zip", bomb))
    by = outcomes_by_source(outcomes)
    assert by["bomb.zip/a-big.png"]["reason"] == "too large"
    assert "3 MiB, over the limit of 1 MiB" in by["bomb.zip/a-big.png"]["error"]
    unsupported = [o for o in outcomes if o.get("reason") == "unsupported type"]
    in_all = [o for o in outcomes if "in all" in (o["error"] or "")]
    assert len(unsupported) == ingest.ARCHIVE_EXPANSION and len(in_all) == 2, outcomes
    assert all(o["reason"] == "too large" for o in in_all)

    # Too many files: refused whole, before its directory is read.
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(ingest.ARCHIVE_FILES_MAX + 1):
            zf.writestr(f"{i}.png", b"")
    [o] = small.add_pages(project, many)
    assert o["status"] == "rejected" and o["reason"] == "too large"
    assert f"lists {ingest.ARCHIVE_FILES_MAX + 1} files" in o["error"]

    [corrupt] = small.add_pages(project, ("broken.zip", b"PK\x03\x04" + b"\x00" * 100))
    assert corrupt["reason"] == "corrupt" and "cannot be read" in corrupt["error"]
    [docx] = small.add_pages(project, ("report.docx", zip_of({"word/media/a.png": png("d")})))
    assert docx["reason"] == "unsupported type"  # a zip by its bytes, but not an archive
    assert small.count_pages(project) == 0


def test_natural_order() -> None:
    names = ["page10.png", "Page2.png", "page1.png", "page1a.png", "p", "page02.png"]
    assert sorted(names, key=ingest.natural_key) == [
        "p",
        "page1.png",
        "page1a.png",
        "Page2.png",
        "page02.png",
        "page10.png",
    ]


# -- the CLI, the HTTP API, the widget ----------------------------------------------------


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PAGEKIT_HOME=str(home))
    cmd = [str(BIN / "pagekit"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_cli_adds_a_folder_and_a_zip(
    client: Client, runtime_home: Path, scans: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    root, _ = scans
    name = new_project(client)["name"]
    out = run(runtime_home, "add", name, str(root))
    assert out.returncode == 5, out.stderr  # notes.txt was rejected; the pages were added
    assert out.stdout.splitlines() == [
        "added     scans/ch2/page3.png: 1 page(s), page number 1",
        "added     scans/ch10/page1.png: 1 page(s), page number 2",
        "added     scans/page1.png: 1 page(s), page number 3",
        "added     scans/page2.png: 1 page(s), page number 4",
        "added     scans/page10.png: 1 page(s), page number 5",
    ]
    assert "rejected  scans/notes.txt: not a supported file type" in out.stderr

    box = tmp_path / "box.zip"
    box.write_bytes(zip_of({"b.png": png("b"), "a.png": png("a")}))
    zipped = run(runtime_home, "add", name, str(box))
    assert zipped.returncode == 0, zipped.stderr
    assert "box.zip/a.png: 1 page(s), page number 6" in zipped.stdout
    assert "box.zip/b.png: 1 page(s), page number 7" in zipped.stdout


@pytest.fixture(scope="module")
def api(client: Client) -> Iterator[TestClient]:
    token = tokens.create(client.store, f"test-{uuid.uuid4().hex[:8]}")
    with TestClient(create_app(client), headers={"Authorization": f"Bearer {token}"}) as tc:
        yield tc


def test_api_upload_of_a_zip_answers_one_outcome_per_file(client: Client, api: TestClient) -> None:
    pid = new_project(client)["project_id"]
    archive = zip_of({"p2.png": png("two"), "p10.png": png("ten"), "../evil.png": png("evil")})

    def upload(name: str, data: bytes, **form: str):  # type: ignore[no-untyped-def]
        return api.post(f"/projects/{pid}/pages", files={"file": (name, data)}, data=form)

    r = upload("box.zip", archive)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["source"], body["status"]) == ("box.zip", "added")
    files = {f["source"]: f for f in body["files"]}
    assert list(files) == ["box.zip/../evil.png", "box.zip/p2.png", "box.zip/p10.png"]
    assert files["box.zip/p2.png"]["page_numbers"] == [1]
    assert files["box.zip/p10.png"]["page_numbers"] == [2]
    assert files["box.zip/../evil.png"]["reason"] == "bad file name"

    again = upload("box.zip", archive)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"

    refused = upload("bad.zip", zip_of({"../evil.png": png("evil"), "x.txt": b"x"}))
    assert refused.status_code == 422 and refused.json()["status"] == "rejected"
    assert "none of its 2 file(s) could be added" in refused.json()["detail"]
    numbered = upload("box.zip", archive, page_number="9")
    assert numbered.status_code == 422 and "is a folder or an archive" in numbered.text
    broken = upload("broken.zip", b"PK\x03\x04broken")
    assert broken.status_code == 422 and broken.json()["reason"] == "corrupt"
    assert client.count_pages(pid) == 2


def test_the_upload_widget_takes_several_files_and_a_zip(client: Client) -> None:
    pytest.importorskip("ipywidgets")
    from pagekit.widgets import UploadPanel

    project = new_project(client)
    panel = UploadPanel(client, project)
    assert panel.upload.multiple and ".zip" in panel.upload.accept.split(",")
    archive = zip_of({"z10.png": png("z10"), "z9.png": png("z9")})
    panel.page_number.value = 30  # one file, but an archive: its files take the next numbers

    def picked(name: str, data: bytes) -> dict:
        """One file as ipywidgets 8 puts it in FileUpload.value."""
        now = datetime.now(timezone.utc)
        content = memoryview(data)
        return {
            "name": name,
            "type": "",
            "size": len(data),
            "content": content,
            "last_modified": now,
        }

    panel.upload.value = (picked("box.zip", archive),)
    assert [(o["source"], o["page_numbers"]) for o in panel.outcomes] == [
        ("box.zip/z9.png", [1]),
        ("box.zip/z10.png", [2]),
    ]
    panel.upload.value = (picked("a.png", png("a")), picked("b.png", png("b")))
    assert [o["page_numbers"] for o in panel.outcomes] == [[3], [4]]
    assert client.count_pages(project) == 4
