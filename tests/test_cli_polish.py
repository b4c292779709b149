"""The CLI reads well: summaries, tables, help, exit codes and Ctrl-C, as a user meets them.

Pure formatting is checked on its own; the rest runs against the session's real runtime
(tests/conftest.py), in-process with click's CliRunner, or as a subprocess where a signal
is sent.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import click
import pandas as pd
from click.testing import CliRunner, Result

from pagekit import _pagegen as gen
from pagekit.cli import COMMANDS, main
from pagekit.cli.group import EXIT_CODES
from pagekit.cli.table import ago, format_table
from pagekit.client import Client
from pagekit.contract import JOB_COLUMNS

BIN = Path(sys.executable).parent
README = Path(__file__).parents[1] / "README.md"
# What an empty cell must never show.
JUNK = re.compile(r"\b(None|NaN|nan|NaT|<NA>)\b")
STATUS_KEYS = {
    "home",
    "runtime",
    "broker",
    "workers",
    "queue_depth",
    "pages_waiting_for_redelivery",
}


def cli(home: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *args], prog_name="pagekit")


def png(text: str) -> bytes:
    return gen.image_bytes(gen.text_image(text), "PNG")


def slow_project(client: Client, pages: int) -> dict:
    """A project whose pages each take the `slow` step's 1.5 s: its jobs stay running a while."""
    proj = client.create_project(f"polish-{uuid.uuid4().hex[:8]}", ["slow"])
    tag = uuid.uuid4().hex[:6]
    client.add_pages(proj, [(f"{i}.png", png(f"Slow page {i} {tag}")) for i in range(pages)])
    return proj


# -- tables (pure) -------------------------------------------------------------------------


def test_a_table_rounds_numbers_and_leaves_missing_values_blank() -> None:
    df = pd.DataFrame(
        {
            "page_number": [1, 2, 3],
            "words": [120, None, 7],  # pandas holds these as floats: 120.0, NaN, 7.0
            "confidence": [84.990196, None, 71.25],
            "needs_review": [None, True, False],
            "finished_at": [datetime(2024, 1, 2, 3, 4, 5), None, None],
            "steps": [["ocr", "shout"], [], None],
        }
    )
    df["finished_at"] = pd.to_datetime(df["finished_at"])  # None becomes NaT
    lines = format_table(df).splitlines()
    assert lines[0].split() == list(df.columns)
    assert lines[1].split() == ["1", "120", "85.0", "2024-01-02", "03:04", "ocr,", "shout"]
    assert lines[2].split() == ["2", "yes"]
    assert lines[3].split() == ["3", "7", "71.2"]  # 71.25 to one decimal (half to even)
    assert not JUNK.search("\n".join(lines))
    # Numbers align right under their header, text left.
    assert lines[2].index("yes") == lines[0].index("needs_review")
    assert lines[1].index("120") + 3 == lines[0].index("words") + len("words")


def test_a_table_of_plain_rows_and_an_empty_table() -> None:
    rows = [{"name": "a", "n": 2.5, "error": "line one\nline two"}, {"name": "bb", "n": None}]
    assert format_table(rows).splitlines() == [
        "name    n  error",
        "a     2.5  line one line two",
        "bb",
    ]
    assert format_table([], ["name", "n"]) == "name  n"


def test_ages_read_as_a_person_says_them() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0)
    said = [ago(now - timedelta(seconds=s), now) for s in (4, 200, 7300, 86400, 3 * 86400)]
    assert said == ["4 s ago", "3 min ago", "2 h ago", "1 day ago", "3 days ago"]
    assert ago(None, now) == "" and ago(pd.NaT, now) == ""  # type: ignore[arg-type]


# -- help and the exit-code rule --------------------------------------------------------------


def every_command() -> Iterator[tuple[str, click.Command]]:
    """Every command in COMMANDS, loaded, and the subcommands of the groups among them."""
    ctx = click.Context(main)
    pending: list[tuple[str, click.Command | None]] = [
        (name, main.get_command(ctx, name)) for name in COMMANDS
    ]
    while pending:
        name, command = pending.pop(0)
        assert command is not None, f"pagekit {name} does not load"
        yield name, command
        if isinstance(command, click.Group):
            pending += [(f"{name} {sub}", c) for sub, c in command.commands.items()]


def test_every_command_and_option_has_help() -> None:
    seen = []
    for name, command in [("(main)", main), *every_command()]:
        seen.append(name)
        text = " ".join((command.help or "").split())
        assert text, f"pagekit {name} has no help text"
        for param in command.params:
            if isinstance(param, click.Option):
                assert (param.help or "").strip(), f"pagekit {name} {param.opts[0]} has no help"
            elif isinstance(param, click.Argument):
                # click gives arguments no help: the command's text names them.
                metavar = param.human_readable_name
                assert metavar in text, f"pagekit {name}: its help never names {metavar}"
    assert {"jobs", "task wait", "project list", "token create"} <= set(seen)


def test_the_exit_code_rule_is_in_help_and_in_the_readme() -> None:
    helped = CliRunner().invoke(main, ["--help"], prog_name="pagekit")
    assert helped.exit_code == 0
    rule = [line.strip() for line in EXIT_CODES.splitlines()[1:] if line.strip()]
    assert rule[0] == "Exit codes:" and any(line.startswith("0 ") for line in rule)
    readme = README.read_text(encoding="utf-8")
    tour = readme.split("## A tour of the CLI", 1)[1].split("\n## ", 1)[0]
    for line in rule:
        assert line in helped.output, line
        assert line in tour, f"README's CLI tour lacks: {line}"


def test_nothing_to_process_is_exit_0_and_one_line_whatever_was_asked(
    client: Client, runtime_home: Path
) -> None:
    proj = client.create_project(f"polish-{uuid.uuid4().hex[:8]}")
    client.add_pages(proj, [("one.png", png(f"Only page {uuid.uuid4().hex[:6]}"))])
    client.wait(client.process_pending(proj)["task_id"], progress=False, timeout=120)
    for flags in (["--all-pending"], ["--retry-failed"], [], ["--retry-failed", "--wait"]):
        out = cli(runtime_home, "process", proj["name"], *flags)
        assert out.exit_code == 0, (flags, out.output)
        assert out.stdout == "", (flags, out.stdout)  # no job JSON: no job
        (line,) = out.stderr.splitlines()
        assert line.startswith("nothing to process: no "), (flags, line)
    assert client.count_pages(proj, "completed") == 1  # and nothing was queued again


# -- status ------------------------------------------------------------------------------------


def test_status_is_a_short_summary_and_json_keeps_its_keys(
    client: Client, runtime_home: Path
) -> None:
    out = cli(runtime_home, "status")
    assert out.exit_code == 0, out.output
    lines = dict(line.split(":", 1) for line in out.stdout.splitlines())
    assert list(lines) == ["home", "runtime", "workers", "queue", "database", "jobs"]
    fields = {k: v.strip() for k, v in lines.items()}
    assert fields["home"] == str(client.settings.home_abs)
    port = re.fullmatch(r"up: Redis on 127\.0\.0\.1:(\d+) \(pid \d+\)", fields["runtime"])
    assert port and f":{port[1]}/" in client.broker_url, fields["runtime"]
    workers = client.workers()
    alive = re.match(r"(\d+) alive: ", fields["workers"])
    assert alive and int(alive[1]) == len(workers) >= 1, fields["workers"]
    assert f"{workers[0]['name']} (concurrency {workers[0]['concurrency']}," in fields["workers"]
    assert re.fullmatch(r"\d+ page\(s\) waiting for a worker", fields["queue"])
    assert fields["database"] == client.settings.db_url
    jobs = client.jobs()
    assert fields["jobs"].startswith(f"0 running, {len(jobs)} in all"), fields["jobs"]
    assert not out.stdout.lstrip().startswith("{")

    raw = cli(runtime_home, "status", "--json")
    assert raw.exit_code == 0, raw.output
    body = json.loads(raw.stdout)
    assert set(body) == STATUS_KEYS
    assert body["runtime"]["running"] is True and body["workers"][0]["name"] == workers[0]["name"]


def test_status_of_a_home_whose_runtime_is_down(tmp_path: Path) -> None:
    home = tmp_path / "never-started"
    out = cli(home, "status")
    assert out.exit_code == 1
    lines = [line.split(":", 1)[0] for line in out.stdout.splitlines()]
    assert lines == ["home", "runtime", "database"] and "runtime:  down" in out.stdout
    assert out.stderr.strip() == "not running: start it with `pagekit up`"
    assert not home.exists()  # it looked; it created nothing
    raw = cli(home, "status", "--json")
    assert raw.exit_code == 1 and json.loads(raw.stdout)["runtime"]["running"] is False


# -- tables from the CLI ------------------------------------------------------------------------


def test_pages_and_project_list_print_rounded_numbers_and_blank_cells(
    client: Client, runtime_home: Path
) -> None:
    proj = client.create_project(f"polish-{uuid.uuid4().hex[:8]}")
    tag = uuid.uuid4().hex[:6]
    client.add_pages(proj, [("read.png", png(f"The harvest was good {tag}"))])
    client.wait(client.process_pending(proj)["task_id"], progress=False, timeout=120)
    client.add_pages(proj, [("later.png", png(f"Still pending {tag}"))])
    done = client.pages(proj, "completed").iloc[0]
    assert done["confidence"] != round(done["confidence"], 1)  # there is something to round

    out = cli(runtime_home, "pages", proj["name"])
    assert out.exit_code == 0, out.output
    header, first, second = out.stdout.splitlines()
    assert not JUNK.search(out.stdout), out.stdout
    assert not re.search(r"\d\.\d\d", out.stdout), out.stdout  # nothing past one decimal
    assert f" {done['confidence']:.1f} " in f" {first} " and f" {int(done['words'])} " in first
    assert second.split()[1:] == ["2", "later.png", "pending"]  # words, confidence: blank

    listed = cli(runtime_home, "project", "list")
    assert listed.exit_code == 0 and not JUNK.search(listed.stdout), listed.stdout
    row = next(line for line in listed.stdout.splitlines() if f" {proj['name']} " in line)
    assert re.search(rf" {proj['name']}\s+2\s+\d{{4}}-\d\d-\d\d \d\d:\d\d\s+default ", row), row


def test_jobs_lists_jobs_newest_first_and_finds_the_running_one(
    client: Client, runtime_home: Path
) -> None:
    proj = slow_project(client, 2)
    first = client.process_pending(proj)["task_id"]
    client.wait(first, progress=False, timeout=120)
    client.add_pages(
        proj, [(f"more-{i}.png", png(f"More {i} {uuid.uuid4().hex}")) for i in range(6)]
    )
    second = client.process_pending(proj)["task_id"]
    try:
        active = cli(runtime_home, "jobs", proj["name"], "--active")
        assert active.exit_code == 0, active.output
        header, *rows = active.stdout.splitlines()
        assert header.split() == [
            "task_id",
            "project",
            "state",
            "done",
            "failed",
            "cancelled",
            "age",
        ]
        assert [r.split()[:2] for r in rows] == [[second, proj["name"]]]
        assert re.search(r" (queued|processing) +[0-5]/6 ", rows[0]), rows[0]
        everywhere = cli(runtime_home, "jobs", "--active")
        assert second in everywhere.stdout and first not in everywhere.stdout
    finally:
        client.cancel(second)
    client.wait(second, progress=False, timeout=120)

    out = cli(runtime_home, "jobs", proj["name"])
    assert out.exit_code == 0 and not JUNK.search(out.stdout), out.output
    header, newest, oldest = out.stdout.splitlines()
    assert newest.split()[:3] == [second, proj["name"], "cancelled"]
    done, failed, cancelled = newest.split()[3:6]
    assert done == "6/6" and failed == "0" and int(cancelled) >= 1
    assert re.fullmatch(rf"{first}\s+{proj['name']}\s+completed\s+2/2\s+0\s+0\s+\d+ s ago", oldest)

    limited = cli(runtime_home, "jobs", proj["name"], "--limit", "1")
    assert limited.stdout.splitlines()[1].startswith(second)
    assert len(limited.stdout.splitlines()) == 2
    assert limited.stderr.strip() == "1 older job(s) not shown: --limit 2 shows them"

    raw = cli(runtime_home, "jobs", proj["name"], "--json")
    body = json.loads(raw.stdout)
    assert [j["task_id"] for j in body] == [second, first]
    assert set(body[0]) == {*JOB_COLUMNS, "project"} and body[1]["project"] == proj["name"]
    assert body[1]["completed"] == 2 and datetime.fromisoformat(body[1]["created_at"])

    none = cli(runtime_home, "jobs", proj["name"], "--active")
    assert none.exit_code == 0 and none.stdout.strip() == "no unfinished jobs"


# -- messages name page numbers ------------------------------------------------------------------


def test_messages_name_page_numbers_never_internal_ids(
    client: Client, runtime_home: Path, tmp_path: Path
) -> None:
    proj = slow_project(client, 0)
    tag = uuid.uuid4().hex
    scan = tmp_path / "scan.png"
    scan.write_bytes(png(f"A page added at number 28 {tag}"))
    pdf = tmp_path / "box.pdf"
    pdf.write_bytes(gen.text_pdf([f"Box page one {tag}", f"Box page two {tag}"]))
    assert cli(runtime_home, "add", proj["name"], str(scan), "--page-number", "28").exit_code == 0
    assert cli(runtime_home, "add", proj["name"], str(pdf)).exit_code == 0
    ids = dict(zip(client.pages(proj)["page_number"], client.pages(proj)["page_id"], strict=True))
    assert sorted(ids) == [28, 29, 30] and all(i not in (28, 29, 30) for i in ids.values())

    again = cli(runtime_home, "add", proj["name"], str(scan), str(pdf))
    assert again.exit_code == 0, again.output
    assert (
        "duplicate scan.png: identical content is already in this project: as page 28"
        in again.stdout
    )
    assert "its page 1 is page 29, its page 2 is page 30" in again.stdout
    for page_id in ids.values():
        assert not re.search(rf"\b{page_id}\b", again.stdout), (page_id, again.stdout)

    job = client.process_pending(proj)["task_id"]
    try:
        busy = cli(runtime_home, "process", proj["name"], "--pages", "29")
        assert busy.exit_code == 1
        assert busy.stderr.strip() == (
            f"error: page number(s) 29 are already queued or processing (task {job}); "
            "wait for that task or cancel it first"
        )
    finally:
        client.cancel(job)


# -- Ctrl-C: the job goes on, and the user is told how to reach it ---------------------------------


def interrupt(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `pagekit ARGS`, wait for its progress bar, then press Ctrl-C (SIGINT)."""
    env = dict(os.environ, PAGEKIT_HOME=str(home))
    proc = subprocess.Popen(
        [str(BIN / "pagekit"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        bar = proc.stderr.readline()  # the bar's first line: it is waiting now
        assert "Queued" in bar or "Processing page" in bar, bar
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(args, proc.returncode, stdout, bar + stderr)


def test_ctrl_c_while_waiting_leaves_the_job_running_and_says_how_to_reach_it(
    client: Client, runtime_home: Path
) -> None:
    proj = slow_project(client, 8)
    out = interrupt(runtime_home, "process", proj["name"], "--all-pending", "--wait")
    assert out.returncode == 130, (out.stdout, out.stderr)
    task_id = json.loads(out.stdout)["task_id"]
    assert "Traceback" not in out.stderr and "Aborted" not in out.stderr
    assert f"task {task_id} goes on in the background" in out.stderr, out.stderr
    assert f"pagekit task wait {task_id}" in out.stderr
    assert f"pagekit task cancel {task_id}" in out.stderr

    again = interrupt(runtime_home, "task", "wait", task_id)
    assert again.returncode == 130 and again.stdout == "", again.stderr
    assert "Traceback" not in again.stderr and "Aborted" not in again.stderr
    assert "error" not in again.stderr
    assert f"pagekit task wait {task_id}" in again.stderr
    assert f"pagekit task cancel {task_id}" in again.stderr

    final = client.wait(task_id, progress=False, timeout=120)  # it went on, to the end
    assert final["status"] == "completed" and final["result"]["completed"] == 8
