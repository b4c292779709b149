"""The `pagekit` command against the session's runtime, as a user types it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from pagekit import _pagegen as gen
from pagekit import samples
from pagekit.client import Client

BIN = Path(sys.executable).parent


def run(home: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, PAGEKIT_HOME=str(home))
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_project_add_process_status_export_from_a_terminal(
    client: Client, runtime_home: Path, tmp_path: Path
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    created = run(runtime_home, "pagekit", "project", "create", name)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["name"] == name
    assert name in run(runtime_home, "pagekit", "project", "list").stdout

    jpg = next(p for p in samples.paths() if p.suffix == ".jpg")
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image at all")
    added = run(runtime_home, "pagekit", "add", name, str(jpg), str(bad))
    assert added.returncode == 5  # one file was rejected...
    assert f"added     {jpg.name}: 1 page(s)" in added.stdout  # ...the other was added
    assert "rejected  notes.png" in added.stderr and "not a supported" in added.stderr

    pdf = tmp_path / "two.pdf"
    pdf.write_bytes(gen.text_pdf(["One page of text here.", "And another page of text."]))
    numbered = run(runtime_home, "pagekit", "add", name, str(pdf), "--page-number", "10")
    assert numbered.returncode == 0 and "page number 10-11" in numbered.stdout

    processed = run(runtime_home, "pagekit", "process", name, "--pages", "1,10", "--wait")
    assert processed.returncode == 0, processed.stderr
    job = json.loads(processed.stdout[: processed.stdout.rindex("}") + 1])
    assert job["status"] == "queued" and job["total_pages"] == 2
    assert "completed: 2 completed, 0 failed of 2 pages" in processed.stdout
    assert "Processing page" in processed.stderr or "Completed" in processed.stderr

    status = run(runtime_home, "pagekit", "task", "status", job["task_id"])
    body = json.loads(status.stdout)
    assert body["status"] == "completed" and body["result"]["completed"] == 2

    rest = run(runtime_home, "pagekit", "process", name, "--all-pending", "--wait")
    assert rest.returncode == 0 and "1 completed" in rest.stdout

    out = tmp_path / "results.csv"
    exported = run(runtime_home, "pagekit", "export", name, "--format", "csv", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["page_number"] for r in rows] == ["1", "10", "11"]
    assert all(r["status"] == "completed" for r in rows)
    assert "another page of text" in rows[2]["text"]

    missing = run(runtime_home, "pagekit", "task", "status", "no-such-task")
    assert missing.returncode == 4 and "no such task" in missing.stderr


def test_doctor_walks_the_troubleshooting_list(client: Client, runtime_home: Path) -> None:
    doctor = run(runtime_home, "pagekit", "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    for check in ("redis", "workers", "broker url", "database", "ocr", "queue", "orphaned pages"):
        assert f"ok   {check}:" in doctor.stdout, doctor.stdout


def test_doctor_names_the_fix_when_nothing_runs(tmp_path: Path) -> None:
    doctor = run(tmp_path / "nothing-here", "pagekit", "doctor")
    assert doctor.returncode == 1
    assert "FAIL redis" in doctor.stdout and "pagekit up" in doctor.stdout


def test_celery_command_line_sees_pagekits_app(client: Client, runtime_home: Path) -> None:
    ping = run(runtime_home, "celery", "-A", "pagekit.celery_app", "inspect", "ping", timeout=60)
    assert ping.returncode == 0, ping.stderr
    assert "local@" in ping.stdout and "pong" in ping.stdout
