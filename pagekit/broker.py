"""Celery apps for clients and workers, configured by pagekit's reliability rules.

Nothing here builds an app at import time: a client builds one for its broker URL when
it first sends, and the worker entry point (:mod:`pagekit.celery_app`) builds its own.
The rules are described in docs/design.md ("Reliability").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .contract import QUEUE, QUEUES

if TYPE_CHECKING:
    from celery import Celery

    from .config import Settings


def soft_time_limit(settings: Settings) -> int:
    """A page's soft time limit: a tenth before the hard one, so the page fails with a
    message rather than losing its process."""
    return max(1, int(settings.page_time_limit * 0.9))


def configure(app: Celery, settings: Settings, broker_url: str) -> Celery:
    """Apply pagekit's reliability rules (docs/design.md) to ``app``."""
    from kombu import Queue

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
        task_soft_time_limit=soft_time_limit(settings),
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


def make_app(settings: Settings, broker_url: str) -> Celery:
    """A Celery app on ``broker_url`` (clients send tasks by name; none is registered)."""
    from celery import Celery

    app = Celery("pagekit", set_as_current=False)
    return configure(app, settings, broker_url)
