"""``pagekit flower``: Flower on the session runtime, on loopback, behind basic auth."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pagekit.client import Client
from pagekit.config import Settings
from pagekit.errors import ConfigError
from pagekit.monitor import credentials, flower_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def flower(client: Client, runtime_home: Path) -> Iterator[tuple[str, str, subprocess.Popen]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAGEKIT_FLOWER")}
    env["PAGEKIT_HOME"] = str(runtime_home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pagekit.cli", "flower", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                httpx.get(url + "/healthcheck", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "Flower did not start in 60 s"
                time.sleep(0.5)
        yield url, str(port), proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_flower_lists_the_workers_with_credentials(
    client: Client, runtime_home: Path, flower: tuple[str, str, subprocess.Popen]
) -> None:
    url, _, _ = flower
    user, password, stored = credentials(Settings.from_env(home=runtime_home))
    assert stored == runtime_home / "runtime" / "flower.json"
    names = {w["name"] for w in client.workers()}
    assert names
    deadline = time.monotonic() + 45
    while True:  # Flower fills its worker list from broadcast replies; give it time
        r = httpx.get(f"{url}/api/workers", params={"refresh": 1}, auth=(user, password),
                      timeout=15)  # fmt: skip
        assert r.status_code == 200, r.text
        if names <= set(r.json()):
            break
        assert time.monotonic() < deadline, f"workers {names} not in {sorted(r.json())}"
        time.sleep(1)


def test_flower_refuses_without_or_with_wrong_credentials(
    runtime_home: Path, flower: tuple[str, str, subprocess.Popen]
) -> None:
    url, _, _ = flower
    user, password, _ = credentials(Settings.from_env(home=runtime_home))
    for page in ("/api/workers", "/", "/metrics"):
        assert httpx.get(url + page, timeout=10).status_code == 401, page
        wrong = httpx.get(url + page, auth=(user, password + "x"), timeout=10)
        assert wrong.status_code == 401, page


def test_flower_metrics_need_the_same_credentials(
    runtime_home: Path, flower: tuple[str, str, subprocess.Popen]
) -> None:
    """Prometheus metrics name tasks and workers: they are behind the password too."""
    url, _, _ = flower
    user, password, _ = credentials(Settings.from_env(home=runtime_home))
    r = httpx.get(f"{url}/metrics", auth=(user, password), timeout=10)
    assert r.status_code == 200, r.text
    assert "flower_events_total" in r.text or "flower_worker_online" in r.text
    assert httpx.get(f"{url}/healthcheck", timeout=10).text == "OK"  # says nothing more


def test_flower_is_on_loopback_and_keeps_the_password_off_its_command_line(
    runtime_home: Path, flower: tuple[str, str, subprocess.Popen]
) -> None:
    _, port, proc = flower
    _, password, stored = credentials(Settings.from_env(home=runtime_home))
    assert stored is not None and stat.S_IMODE(stored.stat().st_mode) == 0o600
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode().split("\0")
    assert "flower" in cmdline and "--address=127.0.0.1" in cmdline
    assert not any(password in arg for arg in cmdline)
    assert flower_url(Settings.from_env(home=runtime_home, flower_port=int(port))) == (
        f"http://127.0.0.1:{port}/"
    )


def test_credentials_from_settings_or_generated_once(tmp_path: Path) -> None:
    mine = Settings.from_env(home=tmp_path, flower_user="ada", flower_password="s3cret")
    assert credentials(mine) == ("ada", "s3cret", None)
    assert not (tmp_path / "runtime" / "flower.json").exists()
    first = credentials(Settings.from_env(home=tmp_path))
    again = credentials(Settings.from_env(home=tmp_path))
    assert first == again and len(first[1]) >= 20
    assert json.loads(first[2].read_text()) == {"password": first[1]}
    with pytest.raises(ConfigError, match="without ','"):
        credentials(Settings.from_env(home=tmp_path, flower_password="a,b"))
