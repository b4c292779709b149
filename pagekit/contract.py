"""Names the job contract shares across processes: queues and tasks (standard library only).

Workers, clients and the CLI on different hosts must agree on these, so they live in
one module that imports nothing heavy.
"""

from __future__ import annotations

# Pages queued by a client.
QUEUE = "pagekit"
# Orphaned pages re-queued by the workers' watchdogs. Workers consume both queues and
# Celery's Redis transport rotates a queue that just delivered to the back, so a page in
# this queue is taken next, ahead of a long main queue.
RECOVERY_QUEUE = "pagekit.requeued"
QUEUES = (QUEUE, RECOVERY_QUEUE)

TASK_PROCESS_PAGE = "pagekit.process_page"
