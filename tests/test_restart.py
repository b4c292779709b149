"""A runtime restart under long-lived clients: Redis dies (kill -9), `pagekit up` restarts it.

The HTTP API (`pagekit serve`) and a notebook's `Client` stay open across the restart and
must keep working without being restarted: the new Redis keeps its port, password and
append-only file, and a client whose broker moved (the old port was taken) follows it.
Each test has its own runtime in its own home: it kills that runtime's Redis.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from pagekit import _pagegen as gen
from pagekit import runtime, tokens
from pagekit.client import Client
from pagekit.config import Settings
from pagekit.contract import RUNNING_JOB, JobState

PAGEKIT = str(Path(sys.executable).with_name("pagekit"))


def page_png(n: int) -> bytes:
    img = gen.text_image(f"The river flooded the lower fields. Page {n}.", width=700, height=200)
    return gen.image_bytes(img, "PNG")


def add_pages(client: Client, n: int) -> tuple[int, list[int]]:
    project = client.create_project("restart")
    outcomes = client.add_pages(project, [(f"p{i}.png", page_png(i)) for i in range(n)])
    return project["project_id"], [pid for o in outcomes for pid in o["page_ids"]]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def pagekit_cli(home: Path, *args: str) -> str:
    out = subprocess.run(
        [PAGEKIT, *args],
        env={**os.environ, "PAGEKIT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def kill_redis(settings: Settings) -> dict[str, Any]:
    """kill -9 the runtime's Redis; returns the state it had."""
    state = runtime.read_state(settings)
    assert state is not None and runtime.redis_ping(state["broker_url"])
    redis_server = runtime.process(settings, state, "redis")
    assert redis_server is not None, "the runtime's Redis is not running"
    redis_server.kill()
    wait_until(lambda: runtime.process(settings, state, "redis") is None, 10, "Redis to die")
    return state


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A home of its own; its runtime is stopped at the end whatever happened."""
    yield tmp_path / "home"
    runtime.stop(Settings.from_env(home=tmp_path / "home"))


@pytest.fixture
def taken_port() -> Iterator[Callable[[int], None]]:
    """Another program listening on a port: it accepts connections and closes them."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def take(port: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

        def bound() -> bool:  # for a few ms after a kill, the dead Redis's sockets hold it
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
            return True

        wait_until(bound, 10, f"port {port} to be free")
        sock.listen()
        sock.settimeout(0.1)

        def serve() -> None:
            with sock:
                while not stop.is_set():
                    try:
                        sock.accept()[0].close()
                    except TimeoutError:
                        pass

        threads.append(threading.Thread(target=serve, daemon=True))
        threads[-1].start()

    yield take
    stop.set()
    for t in threads:
        t.join(timeout=5)


def test_pagekit_serve_keeps_working_after_redis_is_killed_and_restarted(home: Path) -> None:
    pagekit_cli(home, "up", "--workers", "1")
    setup = Client(home=home, start=False)
    project_id, (first, second) = add_pages(setup, 2)
    auth = {"Authorization": f"Bearer {tokens.create(setup.store, 'restart')}"}
    setup.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [PAGEKIT, "serve", "--port", str(port)],
        env={**os.environ, "PAGEKIT_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def health() -> bool:
        assert server.poll() is None, "pagekit serve exited"
        try:
            return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def process(page_id: int) -> dict[str, Any]:
        r = httpx.post(
            f"{base}/tasks/projects/{project_id}/process-page/{page_id}", headers=auth, timeout=60
        )
        assert r.status_code == 200, r.text
        task_id = r.json()["task_id"]

        def finished() -> dict[str, Any] | None:
            status = httpx.get(f"{base}/tasks/status/{task_id}", headers=auth, timeout=10).json()
            return status if status["status"] not in RUNNING_JOB else None

        return wait_until(finished, 90, f"task {task_id} to finish")

    try:
        wait_until(health, 60, "pagekit serve to answer /health")
        assert process(first)["status"] == JobState.COMPLETED  # the server is connected to Redis

        before = kill_redis(Settings.from_env(home=home))
        pagekit_cli(home, "up", "--workers", "1")
        after = runtime.read_state(Settings.from_env(home=home))
        assert after is not None and after["redis_pid"] != before["redis_pid"]
        assert after["broker_url"] == before["broker_url"]  # same port, same password

        done = process(second)  # no 503 "broker unreachable", no restart of the server
        assert done["status"] == JobState.COMPLETED and done["result"]["completed"] == 1
        assert server.poll() is None
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def test_a_notebook_client_keeps_working_after_redis_is_killed_and_restarted(
    home: Path,
) -> None:
    client = Client(home=home, workers=1)
    try:
        client.wait_for_workers(timeout=90)
        project_id, _ = add_pages(client, 2)
        # Something Redis holds (as it holds queued pages), to see the append-only file kept.
        redis.Redis.from_url(client.broker_url).set("pagekit-test-marker", "kept")

        before = kill_redis(client.settings)
        pagekit_cli(home, "up", "--workers", "1")
        after = runtime.read_state(client.settings)
        assert after is not None and after["redis_port"] == before["redis_port"]
        assert redis.Redis.from_url(after["broker_url"]).get("pagekit-test-marker") == b"kept"
        # The old worker (cut off from its Redis) was replaced, not left to reconnect.
        assert runtime.process(client.settings, before, "worker") is None
        assert runtime.process(client.settings, after, "worker") is not None

        job = client.process_pending(project_id)
        final = client.wait(job["task_id"], timeout=90, progress=False)
        assert final["status"] == JobState.COMPLETED and final["result"]["completed"] == 2
        assert [w["concurrency"] for w in client.workers()] == [1]  # the new worker only
        assert client.queue_depth() == 0
    finally:
        client.shutdown()


def test_clients_follow_redis_to_a_new_port_when_the_old_one_is_taken(
    home: Path, taken_port: Callable[[int], None]
) -> None:
    """Each client's first call after the restart is a different broker operation."""
    enqueuer = Client(home=home, workers=1)
    counter, lister, waiter = (Client(home=home, start=False) for _ in range(3))
    try:
        enqueuer.wait_for_workers(timeout=90)
        project_id, _ = add_pages(enqueuer, 1)

        before = kill_redis(enqueuer.settings)
        taken_port(before["redis_port"])
        pagekit_cli(home, "up", "--workers", "1")
        after = runtime.read_state(enqueuer.settings)
        assert after is not None and after["redis_port"] != before["redis_port"]
        assert after["password"] == before["password"]

        job = enqueuer.process_pending(project_id)
        assert waiter.wait_for_workers(timeout=60)
        assert counter.queue_depth() in (0, 1)  # the page, or already taken by the worker
        assert [w["concurrency"] for w in lister.workers(timeout=2)] == [1]
        for c in (enqueuer, counter, lister, waiter):
            assert c.broker_url == after["broker_url"]
        final = enqueuer.wait(job["task_id"], timeout=90, progress=False)
        assert final["status"] == JobState.COMPLETED and final["result"]["completed"] == 1
    finally:
        for c in (counter, lister, waiter):
            c.close()
        enqueuer.shutdown()
