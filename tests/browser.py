"""What the browser tests share: headless Chromium through Playwright, free ports, and
waiting for a server they start (the dashboard, the API, JupyterLab) to answer."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conftest import need

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def playwright_api() -> Any:
    """Playwright's sync API, with headless Chromium there (else skip; fail on CI)."""
    need(Path(CHROMIUM).exists(), f"headless Chromium at {CHROMIUM} (apt install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
    need(sync_api is not None, "Playwright for Python (pip install playwright)")
    return sync_api


def launch(pw: Any) -> Any:
    """Headless Chromium from a running ``sync_playwright()``."""
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium (and its Playwright) for the ``with`` block: a fixture's browser."""
    with playwright_api().sync_playwright() as pw:
        browser = launch(pw)
        yield browser
        browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> None:
    """Raise OSError unless something listens on the loopback ``port``."""
    socket.create_connection(("127.0.0.1", port), timeout=5).close()


def wait_until_up(
    proc: subprocess.Popen[bytes], log_path: Path, ready: Callable[[], Any], timeout: float
) -> None:
    """Call ``ready()`` until it stops raising OSError; fail with the server's log if the
    server exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log_path.read_text()
        try:
            ready()
            return
        except OSError:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)


def _printed_url(log: str) -> str | None:
    match = re.search(r"^pagekit dashboard: (\S+)", log, re.MULTILINE)
    return match.group(1) if match else None


@contextlib.contextmanager
def serve_dashboard(
    runtime_home: Path, log_path: Path, *args: str, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`pagekit dashboard` on a free port against ``runtime_home``: (url, process)."""
    port = free_port()
    env = dict(os.environ, PAGEKIT_HOME=str(runtime_home), PAGEKIT_POLL_INTERVAL="0.5", **env)
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pagekit.cli", "dashboard", "--port", str(port), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Voila and its kernels go down together
    )
    url = None

    def ready() -> None:
        nonlocal url
        # The URL it prints (with the token when there is one).
        url = url or _printed_url(log_path.read_text())
        if url is None:
            raise OSError("no URL printed yet")
        listening(port)  # enough: a GET of the page would start a kernel

    try:
        wait_until_up(proc, log_path, ready, 120)
        assert url is not None
        yield url, proc
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()
