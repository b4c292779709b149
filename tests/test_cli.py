"""The `pagekit` command against the session's runtime, as a user types it."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import tomllib
from conftest import one_error_line

from pagekit import _pagegen as gen
from pagekit import samples
from pagekit.cli import COMMANDS
from pagekit.cli.group import EXTRAS
from pagekit.client import Client

BIN = Path(sys.executable).parent
# What a command that never touches a page must not pay for at start-up.
HEAVY = ("celery", "kombu", "sqlalchemy", "pandas", "fastapi", "uvicorn", "voila", "PIL")


def run(home: Path, *args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PAGEKIT_HOME=str(home), **env)
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
    assert "local-" in ping.stdout and "pong" in ping.stdout


# -- start-up: commands load lazily, settings are read when a command needs them ----------


def test_help_loads_no_heavy_module_and_lists_every_command(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from pagekit.cli import COMMANDS, main
        for args in (["--help"], ["--version"], *([c, "--help"] for c in COMMANDS)):
            try:
                main(args, prog_name="pagekit")
            except SystemExit as exc:
                assert exc.code == 0, (args, exc.code)
        print("loaded:", *[m for m in {HEAVY!r} if m in sys.modules])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "loaded:", out.stdout.splitlines()[-1]
    listed = re.findall(r"^  (\S+)  ", out.stdout.split("Commands:")[1], flags=re.M)
    assert sorted(set(listed) & set(COMMANDS)) == sorted(COMMANDS)
    for name in ("up", "add", "process", "export", "serve", "dashboard", "flower", "token"):
        assert f"Usage: pagekit {name} " in out.stdout


def test_help_names_the_default_data_directory(tmp_path: Path) -> None:
    helped = run(tmp_path, "pagekit", "--help")
    text = " ".join(helped.stdout.split())  # click wraps the option text
    assert "$PAGEKIT_HOME, else the user data directory" in text, text
    assert "~/.local/share/pagekit" in text and "pagekit-data" not in text


def test_a_bad_setting_spoils_only_the_commands_that_read_it(tmp_path: Path) -> None:
    helped = run(tmp_path, "pagekit", "--help", PAGEKIT_WORKERS="two")
    assert helped.returncode == 0 and "Usage: pagekit" in helped.stdout, helped.stderr
    assert helped.stderr == ""
    listed = run(tmp_path, "pagekit", "pages", "letters", PAGEKIT_WORKERS="two")
    assert listed.returncode == 2
    assert one_error_line(listed).startswith("error: PAGEKIT_WORKERS='two' is not a number")


# -- errors: one line, never a traceback ----------------------------------------------------


def test_errors_the_client_raises_are_one_line_with_their_exit_code(
    client: Client, runtime_home: Path
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    client.create_project(name)
    (added,) = client.add_pages(
        name, [("p.png", gen.image_bytes(gen.text_image("Page one"), "PNG"))]
    )
    assert added["status"] == "added"

    unknown = run(runtime_home, "pagekit", "pages", name, "--status", "finished")
    assert unknown.returncode == 2 and "finished" in one_error_line(unknown)
    bad_spec = run(runtime_home, "pagekit", "process", name, "--pages", "1-x")
    assert bad_spec.returncode == 2 and "1-x" in one_error_line(bad_spec)
    no_page = run(runtime_home, "pagekit", "process", name, "--pages", "7")
    assert no_page.returncode == 2 and "7" in one_error_line(no_page)
    assert client.count_pages(name, "queued") == 0  # nothing was queued by mistake
    no_project = run(runtime_home, "pagekit", "pages", "no-such-project-here")
    assert no_project.returncode == 4 and "no such project" in one_error_line(no_project)


def test_an_unexpected_error_is_one_line_unless_debugging(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    home = tmp_path / "a-file" / "home"  # the database cannot be created under a file
    out = run(home, "pagekit", "token", "list")
    assert out.returncode == 1
    line = one_error_line(out)
    assert re.match(r"error: internal error: (NotADirectoryError|FileExistsError): ", line), line
    assert line.endswith("(set PAGEKIT_DEBUG=1 for the traceback)")

    debug = run(home, "pagekit", "token", "list", PAGEKIT_DEBUG="1")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "Error: [Errno" in debug.stderr


@pytest.mark.parametrize(
    ("args", "missing", "extra"),
    [
        (["serve"], ["uvicorn", "fastapi"], "api"),
        (["dashboard"], ["voila"], "notebook"),
        (["flower"], ["flower"], "monitor"),
        (["report", "letters", "--notebook"], ["papermill", "nbconvert"], "notebook"),
    ],
)
def test_a_missing_extra_names_the_extra_to_install(
    tmp_path: Path, args: list[str], missing: list[str], extra: str
) -> None:
    # As if the extra were not installed: importing its modules fails (tests/
    # test_base_install.py checks the same in a real environment without extras).
    code = textwrap.dedent(
        f"""
        import sys
        for name in {missing!r}:
            sys.modules[name] = None
        from pagekit.cli import main
        main({args!r}, prog_name="pagekit")
        """
    )
    env = dict(os.environ, PAGEKIT_HOME=str(tmp_path / "home"))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 1
    assert one_error_line(out) == (
        f"error: pagekit {args[0]} needs the {extra} extra: pip install 'pagekit[{extra}]'"
    )
    assert not (tmp_path / "home" / "runtime").exists()  # it said so before starting anything


def test_every_optional_dependency_has_its_extra_named() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    optional = pyproject["project"]["optional-dependencies"]
    for extra in ("api", "notebook", "monitor", "postgres"):
        for req in optional[extra]:
            module = re.match(r"[A-Za-z0-9_.-]+", req)[0].lower().replace("-", "_")  # type: ignore[index]
            assert EXTRAS.get(module) == extra, f"{req} (pagekit[{extra}])"


# -- no silent default broker -----------------------------------------------------------------


def _connections_to_6379() -> tuple[Callable[[], int], Callable[[], None]]:
    """Count connections made to 127.0.0.1:6379 from now on: through the Redis that listens
    there, or, when none does, through a plain listener of our own on that port."""
    try:
        local = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
        start = local.info("stats")["total_connections_received"]
    except (redis.RedisError, OSError):
        pass
    else:
        return (lambda: local.info("stats")["total_connections_received"] - start), local.close
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 6379))
    listener.listen(16)
    listener.setblocking(False)

    def accepted() -> int:
        count = 0
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    return accepted, listener.close


def test_a_worker_without_a_broker_says_what_to_set_and_never_guesses(tmp_path: Path) -> None:
    """With neither PAGEKIT_BROKER_URL nor `pagekit up`, a worker must not fall back to a
    Redis on localhost:6379 (one may run on this machine): it stops at once and says why."""
    connections, close = _connections_to_6379()
    home = tmp_path / "no-runtime"
    fix = "start the local runtime with `pagekit up`, or set PAGEKIT_BROKER_URL"
    try:
        for command in (["pagekit", "worker"], ["celery", "-A", "pagekit.celery_app", "worker"]):
            started = time.monotonic()
            out = run(home, *command, timeout=60)
            assert out.returncode != 0, (command, out.stdout, out.stderr)
            assert time.monotonic() - started < 30, command  # it did not sit on a broker
            assert fix in out.stderr, (command, out.stderr)
            if command[0] == "pagekit":
                assert one_error_line(out) == f"error: no broker: {fix}"
        assert connections() == 0, "a worker connected to 127.0.0.1:6379"
    finally:
        close()
    assert not (home / "runtime").exists()  # and started no runtime of its own
