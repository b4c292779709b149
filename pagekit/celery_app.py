"""The worker entry point: ``celery -A pagekit.celery_app worker`` (and ``flower``).

This is the one module that builds a Celery app when imported. Its broker is
``PAGEKIT_BROKER_URL`` or, when unset, the embedded runtime of ``PAGEKIT_HOME`` (start it
with ``pagekit up``). Clients never import it: they build their own app with
:func:`pagekit.broker.make_app` and send tasks by name.
"""

from __future__ import annotations

import logging

from celery import signals

from . import tasks
from .broker import make_app
from .config import Settings
from .runtime import broker_url

log = logging.getLogger(__name__)

__all__ = ["app", "celery", "dispatch_job", "process_page", "process_pages"]

_settings = Settings.from_env()
app = make_app(_settings, broker_url(_settings))
celery = app  # what `celery -A pagekit.celery_app` looks for
process_page = app.task(**tasks.OPTIONS)(tasks.process_page)
process_pages = app.task(**tasks.chunk_options(_settings))(tasks.process_pages)
dispatch_job = app.task(**tasks.DISPATCH_OPTIONS)(tasks.dispatch_job)


@signals.worker_init.connect
def _init_worker(**_: object) -> None:
    """Before the pool forks: import custom steps named in settings and entry points."""
    from .processing import import_step_modules, load_entry_points

    load_entry_points()
    try:
        import_step_modules(list(_settings.step_modules))
    except Exception:  # a broken step module fails its pages, not the worker
        log.exception("could not import PAGEKIT_STEP_MODULES=%s", _settings.step_modules)


_watchdog = None


@signals.worker_ready.connect
def _start_watchdog(sender: object = None, **_: object) -> None:
    """In the worker's main process: heartbeats for held pages, orphan recovery."""
    global _watchdog
    from .worker import Watchdog

    consumer = sender
    name = getattr(consumer, "hostname", None) or "pagekit@unknown"
    pool = getattr(getattr(consumer, "controller", None), "concurrency", None)
    _watchdog = Watchdog(app, _settings, name, pool)
    _watchdog.start()


@signals.worker_shutdown.connect
def _stop_watchdog(**_: object) -> None:
    if _watchdog is not None:
        _watchdog.stop()
        _watchdog.join(timeout=10)
