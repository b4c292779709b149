"""The Celery app, built from :class:`~pagekit.config.Settings`.

``celery -A pagekit.celery_app worker`` and ``celery -A pagekit.celery_app flower`` work:
the broker is ``PAGEKIT_BROKER_URL`` or, when unset, the embedded runtime of
``PAGEKIT_HOME`` (start it with ``pagekit up``).
"""

from __future__ import annotations

import logging

from celery import Celery, signals
from kombu import Queue

from .config import Settings
from .contract import QUEUE, QUEUES, TASK_PROCESS_PAGE

log = logging.getLogger(__name__)

__all__ = ["QUEUE", "QUEUES", "TASK_PROCESS_PAGE", "app", "configure", "make_app"]


def configure(app: Celery, settings: Settings, broker_url: str) -> Celery:
    """Apply pagekit's reliability rules (DESIGN.md) to ``app``."""
    transport = {"visibility_timeout": settings.visibility_timeout}
    app.conf.update(
        broker_url=broker_url,
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        # JSON only: nothing is unpickled across process boundaries.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        # The database is the source of truth; Celery keeps no results.
        task_ignore_result=True,
        result_backend=None,
        # A page is acknowledged only when done; a killed worker's page is redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_time_limit=settings.page_time_limit,
        task_soft_time_limit=max(1, int(settings.page_time_limit * 0.9)),
        task_default_queue=QUEUE,
        # Workers consume the main queue and the one orphans are re-queued on.
        task_queues=[Queue(name) for name in QUEUES],
        # Task events cost three broker messages per page; Flower switches them on
        # (enable_events) while it runs, so they are off otherwise.
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        timezone="UTC",
    )
    return app


def broker_from_env(settings: Settings) -> str:
    """The broker URL workers use: the setting, else the embedded runtime's."""
    if settings.broker_url:
        return settings.broker_url
    from .runtime import read_state

    state = read_state(settings)
    if state is not None:
        return state["broker_url"]
    # Nothing configured and no runtime: say how to fix it at the first connection.
    return "redis://127.0.0.1:6379/0"


def make_app(settings: Settings | None = None, broker_url: str | None = None) -> Celery:
    settings = settings or Settings.from_env()
    app = Celery("pagekit", set_as_current=False)
    configure(app, settings, broker_url or broker_from_env(settings))
    return app


app = make_app()
celery = app  # what `celery -A pagekit.celery_app` looks for

# Register the tasks on this app (tasks.py imports `app` from here).
from . import tasks as _tasks  # noqa: E402,F401


@signals.worker_init.connect
def _init_worker(**_: object) -> None:
    """Before the pool forks: import custom steps named in settings and entry points."""
    from .processing import import_step_modules, load_entry_points

    settings = Settings.from_env()
    load_entry_points()
    try:
        import_step_modules(list(settings.step_modules))
    except Exception:  # a broken step module fails its pages, not the worker
        log.exception("could not import PAGEKIT_STEP_MODULES=%s", settings.step_modules)


_watchdog = None


@signals.worker_ready.connect
def _start_watchdog(sender: object = None, **_: object) -> None:
    """In the worker's main process: heartbeats for held pages, orphan recovery."""
    global _watchdog
    from .worker import Watchdog

    consumer = sender
    name = getattr(consumer, "hostname", None) or "pagekit@unknown"
    pool = getattr(getattr(consumer, "controller", None), "concurrency", None)
    settings = Settings.from_env()
    _watchdog = Watchdog(app, settings, name, pool)
    _watchdog.start()


@signals.worker_shutdown.connect
def _stop_watchdog(**_: object) -> None:
    if _watchdog is not None:
        _watchdog.stop()
        _watchdog.join(timeout=10)
