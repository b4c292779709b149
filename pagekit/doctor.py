"""``pagekit doctor``: the troubleshooting list, as checks that print their fix."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .config import Settings, redact
from .contract import TASK_PROCESS_PAGE, TASK_PROCESS_PAGES


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(settings: Settings, *, fix: bool = False) -> Iterator[Check]:
    """Yield one :class:`Check` per item; later checks are skipped when the broker is down."""
    from . import runtime
    from .broker import make_app

    # 1. Redis / broker reachable ("ConnectionRefusedError: [Errno 111]").
    if settings.broker_url:
        broker = settings.broker_url
    else:
        state = runtime.running(settings)
        if state is None:
            yield Check(
                "redis",
                False,
                f"the embedded runtime in {settings.home_abs} is not running",
                "start it with `pagekit up` (or set PAGEKIT_BROKER_URL to your broker)",
            )
            return
        broker = state["broker_url"]
    app = make_app(settings, broker)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
        yield Check("redis", True, f"broker {redact(broker)} answers")
    except Exception as exc:
        yield Check(
            "redis",
            False,
            f"cannot connect to {redact(broker)}: {exc}",
            "make sure the broker runs (`redis-cli ping` should print PONG; `pagekit up` "
            "for the embedded one) and PAGEKIT_BROKER_URL is right",
        )
        return

    # 2. A worker answering ("Tasks stuck in PENDING": check the worker is running).
    replies = app.control.ping(timeout=2.0) or []
    if replies:
        names = ", ".join(sorted(k for r in replies for k in r))
        yield Check("workers", True, f"{len(replies)} worker(s) answering: {names}")
    else:
        yield Check(
            "workers",
            False,
            "no worker answers on this broker: queued pages will wait forever",
            "start one: `pagekit up` (embedded) or `pagekit worker` (shared broker); "
            f"check its log ({settings.runtime_dir / 'worker.log'})",
        )

    # 3. Broker URL matches ("Verify Redis URL matches worker connection").
    if replies:
        yield from _check_registered(app)
    elif not settings.broker_url:
        st = runtime.read_state(settings) or {}
        if runtime.process(settings, st, "worker") is not None:
            yield Check(
                "broker url",
                False,
                "the local worker process runs but does not answer on the runtime's broker",
                "restart the runtime: `pagekit down && pagekit up`",
            )

    # 4. Database.
    yield from _check_database(settings)

    # 5. OCR language data.
    yield _check_ocr(settings)

    # 6. Queue depth and orphaned pages (held by a worker that stopped).
    try:
        from .client import Client

        client = Client(settings=settings.with_(broker_url=broker), start=False)
        depth = client.queue_depth()
        yield Check("queue", True, f"{depth} page task(s) waiting in the queue")
        yield from _check_orphans(client, settings, fix)
    except Exception as exc:
        yield Check("queue", False, f"cannot read the queue: {exc}", "run `pagekit doctor` again")


def _check_registered(app: Any) -> Iterator[Check]:
    registered = app.control.inspect(timeout=2.0).registered() or {}
    missing = [w for w, tasks in registered.items() if TASK_PROCESS_PAGE not in tasks]
    if missing:
        yield Check(
            "broker url",
            False,
            f"worker(s) {', '.join(missing)} on this broker are not pagekit workers",
            "give pagekit its own broker database (e.g. redis://host:6379/3), or start the "
            "workers with `pagekit worker`",
        )
        return
    old = [w for w, tasks in registered.items() if TASK_PROCESS_PAGES not in tasks]
    if old:
        yield Check(
            "workers",
            False,
            f"worker(s) {', '.join(old)} run an older pagekit that cannot take a big job's "
            "chunks of pages (their pages wait for the watchdog to send them one by one)",
            "upgrade pagekit on those hosts and restart their workers",
        )
    else:
        yield Check("broker url", True, "every answering worker runs pagekit's tasks")


def _check_database(settings: Settings) -> Iterator[Check]:
    from .store import Store

    try:
        Store(settings.db_url).ping()
        yield Check("database", True, f"{redact(settings.db_url)} reachable")
    except Exception as exc:
        yield Check(
            "database",
            False,
            f"{redact(settings.db_url)}: {exc}",
            "check PAGEKIT_DATABASE_URL (PostgreSQL: is the server up, does the database "
            "exist, is psycopg installed: pip install 'pagekit[postgres]')",
        )


def _check_ocr(settings: Settings) -> Check:
    from .processing import engine_info

    try:
        info = engine_info(settings.tessdata, settings.ocr_lang)
    except Exception as exc:
        return Check("ocr", False, f"Tesseract failed to start: {exc}", "pip install tesserocr")
    if info["error"]:
        return Check("ocr", False, f"no language data for {settings.ocr_lang}", info["error"])
    return Check("ocr", True, f"{info['engine']} with {settings.ocr_lang} ({info['tessdata']})")


def _check_orphans(client: Any, settings: Settings, fix: bool) -> Iterator[Check]:
    """Orphaned pages: held by a worker that stopped sending heartbeats, or lost messages."""
    from .store import utcnow

    found = client.orphans()
    now = utcnow()
    if fix:
        requeued = client.reconcile()
        yield Check(
            "orphaned pages",
            True,
            f"re-queued {len(requeued)} orphaned page(s) at the front of the queue",
        )
        return
    if not found:
        yield Check(
            "orphaned pages",
            True,
            "every queued or processing page is waiting in the queue or held by a live worker",
        )
        return
    by_state: dict[str, int] = {}
    for row in found:
        by_state[row["state"]] = by_state.get(row["state"], 0) + 1
    oldest = max(
        (now - (row["heartbeat_at"] or row["started_at"] or row["queued_at"])).total_seconds()
        for row in found
    )
    parts = ", ".join(f"{n} {state}" for state, n in sorted(by_state.items()))
    yield Check(
        "orphaned pages",
        False,
        f"{len(found)} page(s) ({parts}) held by a worker that stopped: no heartbeat for up "
        f"to {oldest:.0f} s (a live worker re-queues them within "
        f"{settings.heartbeat_timeout:.0f} s)",
        "start a worker (`pagekit up` or `pagekit worker`), or run `pagekit doctor --fix` "
        "to re-queue them now",
    )
