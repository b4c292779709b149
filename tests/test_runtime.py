"""The embedded runtime: a private Redis with the reliability settings, shared and managed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from pagekit import runtime
from pagekit.client import Client
from pagekit.config import Settings
from pagekit.errors import RuntimeUnavailable

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
    ids = ("redis_pid", "redis_started", "worker_pid", "worker_started")
    assert [after[k] for k in ids] == [before[k] for k in ids]
    same_process = Client(home=client.settings.home_abs)
    assert same_process.broker_url == client.broker_url


def test_up_status_down_and_stale_pid_files(tmp_path: Path) -> None:
    home = tmp_path / "data"
    settings = Settings.from_env(home=home)
    settings.runtime_dir.mkdir(parents=True)
    # What a crash leaves behind: a state file whose processes are long gone. Its port is
    # reused by `up`, so it is a free one (not a fixed port other tests expect closed).
    port = runtime._free_port()
    (settings.runtime_dir / runtime.STATE_FILE).write_text(
        json.dumps(
            {
                "redis_pid": 2**22 + 17,
                "worker_pid": 2**22 + 18,
                "redis_port": port,
                "broker_url": f"redis://:stale@127.0.0.1:{port}/0",
                "password": "stale-password",
            }
        )
    )
    assert runtime.describe(settings)["stale"] is True

    try:
        up = run_cli(home, "up", "--workers", "1")
        assert up.returncode == 0, up.stderr
        assert "worker(s) answering" in up.stdout
        state = runtime.read_state(settings)
        assert state["redis_pid"] != 2**22 + 17
        assert runtime.process(settings, state, "redis") is not None
        assert runtime.process(settings, state, "worker") is not None

        status = run_cli(home, "status", "--json")
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert info["runtime"]["running"] is True and info["workers"][0]["concurrency"] == 1

        down = run_cli(home, "down")
        assert down.returncode == 0 and "stopped" in down.stdout
        assert runtime.process(settings, state, "redis") is None
        assert runtime.process(settings, state, "worker") is None
        after = run_cli(home, "status")
        assert after.returncode == 1 and "pagekit up" in after.stderr
    finally:  # a failed assertion must not leave a Redis and a worker running
        run_cli(home, "down")


# -- process identity: a pid is not enough ----------------------------------------------------


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen]:
    """An unrelated live program, as one that got a crashed worker's pid would be."""
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def _pretend_pid_of(stranger: subprocess.Popen, state: dict, recorded: str) -> dict:
    """``state`` with its worker's pid now the stranger's, as a reused pid would be."""
    state = dict(state, worker_pid=stranger.pid)
    if recorded == "wrong start time":
        state["worker_started"] = psutil.Process(stranger.pid).create_time() - 3600
    else:  # a state file written before start times were recorded
        state.pop("worker_started")
        state.pop("redis_started")
    return state


@pytest.mark.parametrize("recorded", ["wrong start time", "no start time"])
def test_up_starts_a_worker_when_its_pid_belongs_to_another_program(
    tmp_path: Path, stranger: subprocess.Popen, recorded: str
) -> None:
    home = tmp_path / "data"
    settings = Settings.from_env(home=home)
    try:
        assert run_cli(home, "up", "--workers", "1").returncode == 0
        before = runtime.read_state(settings)
        worker = runtime.process(settings, before, "worker")
        assert worker is not None
        worker.terminate()  # the worker is gone; the system gave its pid to `sleep`
        worker.wait(timeout=60)
        state_file = settings.runtime_dir / runtime.STATE_FILE
        state_file.write_text(json.dumps(_pretend_pid_of(stranger, before, recorded)))
        assert runtime.describe(settings)["worker"]["up"] is False

        up = run_cli(home, "up", "--workers", "1")
        assert up.returncode == 0, up.stderr
        assert "1 worker(s) answering" in up.stdout
        after = runtime.read_state(settings)
        assert after["redis_pid"] == before["redis_pid"]  # Redis is ours, and reused
        assert after["worker_pid"] != stranger.pid
        new_worker = runtime.process(settings, after, "worker")
        assert new_worker is not None and "pagekit.celery_app" in new_worker.cmdline()
        assert stranger.poll() is None
    finally:
        down = run_cli(home, "down")
    assert down.returncode == 0, down.stderr
    assert stranger.poll() is None, "`pagekit down` signalled a process that is not its own"


@pytest.mark.parametrize("recorded", ["wrong start time", "no start time"])
def test_stop_never_signals_a_process_that_took_a_recorded_pid(
    tmp_path: Path, stranger: subprocess.Popen, recorded: str
) -> None:
    settings = Settings.from_env(home=tmp_path / "data")
    settings.runtime_dir.mkdir(parents=True)
    state = {
        "redis_pid": stranger.pid,
        "redis_started": 0.0,
        "worker_pid": stranger.pid,
        "worker_started": 0.0,
        "broker_url": "redis://:x@127.0.0.1:1/0",
    }
    state = _pretend_pid_of(stranger, state, recorded)
    (settings.runtime_dir / runtime.STATE_FILE).write_text(json.dumps(state))

    assert runtime.running(settings) is None
    assert runtime.stop(settings) is True  # it cleans up the stale state file
    time.sleep(0.2)  # a signal, had one been sent, would have ended `sleep` by now
    assert stranger.poll() is None
    assert runtime.read_state(settings) is None


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen(["true"])
    try:
        zombie = psutil.Process(child.pid)
        deadline = time.monotonic() + 10
        while zombie.status() != psutil.STATUS_ZOMBIE:  # exited, not yet reaped
            assert time.monotonic() < deadline, "`true` did not exit within 10 s"
            time.sleep(0.01)
        assert not runtime.pid_alive(child.pid)
        assert not runtime.pid_alive(child.pid, zombie.create_time())
    finally:
        child.wait(timeout=10)


def test_broker_url_is_the_setting_or_the_running_runtime_never_a_guess(
    client: Client, tmp_path: Path
) -> None:
    assert runtime.broker_url(client.settings) == client.broker_url
    external = Settings.from_env(home=tmp_path / "x", broker_url="redis://broker:6379/0")
    assert runtime.broker_url(external) == "redis://broker:6379/0"
    with pytest.raises(RuntimeUnavailable) as err:
        runtime.broker_url(Settings.from_env(home=tmp_path / "nothing-runs-here"))
    assert str(err.value) == (
        "no broker: start the local runtime with `pagekit up`, or set PAGEKIT_BROKER_URL"
    )
