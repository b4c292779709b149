"""The multi-machine configuration: a shared broker (RabbitMQ), PostgreSQL and a shared
blob directory, with workers started by `pagekit worker` and a Client that starts nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import need

from pagekit import _pagegen as gen
from pagekit.client import Client
from pagekit.errors import RuntimeUnavailable

RABBIT = "amqp://guest:guest@127.0.0.1:5672//"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def test_workers_on_a_shared_rabbitmq_and_postgresql(tmp_path: Path) -> None:
    pg = os.environ.get("PAGEKIT_TEST_POSTGRES")
    need(bool(pg), "set PAGEKIT_TEST_POSTGRES to run the multi-machine test")
    need(reachable("127.0.0.1", 5672), "RabbitMQ is not running on 127.0.0.1:5672")
    shared = {
        "PAGEKIT_BROKER_URL": RABBIT,
        "PAGEKIT_DATABASE_URL": pg,
        "PAGEKIT_BLOB_DIR": str(tmp_path / "shared-blobs"),
    }
    # "Another host": its own home directory, only the shared settings in common.
    env = dict(os.environ, PAGEKIT_HOME=str(tmp_path / "host-b"), **shared)
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("pagekit")), "worker", "-c", "2", "-n", "host-b@%h"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        client = Client(
            home=tmp_path / "host-a",
            broker_url=RABBIT,
            database_url=pg,
            blob_dir=shared["PAGEKIT_BLOB_DIR"],
        )
        assert not client.embedded
        assert not (tmp_path / "host-a" / "runtime" / "runtime.json").exists()  # started nothing
        deadline = time.monotonic() + 90
        while not any(w["name"].startswith("host-b@") for w in client.workers()):
            assert time.monotonic() < deadline, "the worker never answered on RabbitMQ"
        project = client.create_project(f"multi-{uuid.uuid4().hex[:8]}")
        pages = [
            (f"p{i}.png", gen.image_bytes(gen.text_image(f"Shared broker page {i} of the archive.",
                                                         width=900, height=300, font_size=30)))
            for i in range(4)
        ]  # fmt: skip
        client.add_pages(project, pages)
        final = client.wait(client.process_pending(project)["task_id"], progress=False, timeout=120)
        assert final["status"] == "completed" and final["result"]["completed"] == 4
        df = client.pages(project)
        assert all(w.startswith("host-b@") for w in df.worker)
        assert "archive" in client.page(int(df.page_id[0]))["text"]
        assert client.queue_depth() == 0
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


def test_a_client_with_an_unreachable_broker_says_how_to_fix_it(tmp_path: Path) -> None:
    client = Client(home=tmp_path, broker_url="redis://127.0.0.1:1/0")
    project = client.create_project("nowhere")
    client.add_pages(project, [("a.png", gen.image_bytes(gen.text_image("hello world")))])
    client.app.conf.broker_connection_max_retries = 0
    client.app.conf.broker_transport_options = {"max_retries": 0}
    with pytest.raises(RuntimeUnavailable, match="pagekit doctor"):
        client.process_pending(project)
    # Nothing is left stuck in "queued": the page can be processed later.
    assert list(client.pages(project).status) == ["pending"]
