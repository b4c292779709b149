"""The embedded runtime: a private Redis with the reliability settings, shared and managed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from pagekit import runtime
from pagekit.client import Client
from pagekit.config import Settings

PAGEKIT = str(Path(sys.executable).with_name("pagekit"))


def run_cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PAGEKIT_HOME=str(home))
    return subprocess.run(
        [PAGEKIT, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_embedded_redis_has_password_loopback_aof_and_noeviction(client: Client) -> None:
    state = runtime.read_state(client.settings)
    assert state is not None
    port = state["redis_port"]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port).ping()
    r = redis.Redis.from_url(state["broker_url"])
    assert r.config_get("appendonly") == {"appendonly": "yes"}
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert r.config_get("bind")["bind"] == "127.0.0.1"
    state_file = client.settings.runtime_dir / runtime.STATE_FILE
    assert oct(state_file.stat().st_mode & 0o777) == "0o600"  # it holds the password


def test_a_second_client_in_another_process_reuses_the_runtime(client: Client) -> None:
    before = runtime.read_state(client.settings)
    code = (
        "import json; from pagekit.client import Client; c = Client(); "
        "print(json.dumps({'broker': c.broker_url, 'projects': len(c.projects())}))"
    )
    env = dict(os.environ, PAGEKIT_HOME=str(client.settings.home_abs))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["broker"] == client.broker_url
    after = runtime.read_state(client.settings)
    assert (after["redis_pid"], after["worker_pid"]) == (before["redis_pid"], before["worker_pid"])
    same_process = Client(home=client.settings.home_abs)
    assert same_process.broker_url == client.broker_url


def test_up_status_down_and_stale_pid_files(tmp_path: Path) -> None:
    home = tmp_path / "data"
    settings = Settings.from_env(home=home)
    settings.runtime_dir.mkdir(parents=True)
    # What a crash leaves behind: a state file whose processes are long gone.
    (settings.runtime_dir / runtime.STATE_FILE).write_text(
        json.dumps(
            {
                "redis_pid": 2**22 + 17,
                "worker_pid": 2**22 + 18,
                "redis_port": 1,
                "broker_url": "redis://:stale@127.0.0.1:1/0",
                "password": "stale-password",
            }
        )
    )
    assert runtime.describe(settings)["stale"] is True

    up = run_cli(home, "up", "--workers", "1")
    assert up.returncode == 0, up.stderr
    assert "worker(s) answering" in up.stdout
    state = runtime.read_state(settings)
    assert state["redis_pid"] != 2**22 + 17 and runtime.pid_alive(state["redis_pid"])

    status = run_cli(home, "status")
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["runtime"]["running"] is True and info["workers"][0]["concurrency"] == 1

    down = run_cli(home, "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not runtime.pid_alive(state["redis_pid"])
    assert not runtime.pid_alive(state["worker_pid"])
    after = run_cli(home, "status")
    assert after.returncode == 1 and "pagekit up" in after.stderr
