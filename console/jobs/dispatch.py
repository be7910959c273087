"""The single seam between "the console wants a device to do something" and
"the control plane delivers it".

Service functions (console/jobs/services.py, console/policies/services.py)
create durable Command rows and then call ``enqueue_delivery(command)`` (or
``enqueue_deliveries(commands)`` for a rollout). Nothing else in the console
talks to agents.

What happens next:

1. After the surrounding transaction commits (never before: a worker must
   find the row), a Celery task ``jobs.deliver_command`` /
   ``jobs.deliver_commands`` (console/jobs/tasks.py) is queued.
2. The task calls ``console.jobs.services.deliver_command(command_id)``.
   That function is the control plane's to fill in: look up the gateway that
   holds the device's stream (Redis registry), push the command over gRPC,
   and move the row pending → sent (``mark_command_sent``). An offline device
   keeps its pending commands; the gateway sends them when it reconnects
   (``pending_commands_for``). Delivery is at-least-once; agents treat
   command ids idempotently.
3. Acknowledgements and results come back through the report functions in
   console/jobs/services.py (``mark_command_acknowledged``,
   ``mark_command_finished``, ``record_job_*``, ``record_heartbeat``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction

BATCH = 500
log = logging.getLogger(__name__)


def send_task(task, *args) -> None:
    """Queue a task; a broker outage must not fail the caller (an admin's
    request, a report ingest). What the task does is also done by a sweep: a
    command row stays pending until a later delivery (reconnect, or the
    ``jobs.redeliver_pending`` sweep); a spool waits for maintenance."""
    try:
        task.delay(*args)
    except Exception:  # broker down or misconfigured
        log.warning("could not queue %s%r; a later sweep does it", task.name, args, exc_info=True)


def enqueue_delivery(command) -> None:
    """Queue delivery of one command once the current transaction commits."""
    from console.jobs.tasks import deliver_command

    command_id = str(command.pk)
    transaction.on_commit(lambda: send_task(deliver_command, command_id))


def enqueue_deliveries(commands: Iterable) -> None:
    """Queue delivery of many commands (a policy rollout) in batches of BATCH."""
    from console.jobs.tasks import deliver_commands

    ids = [str(c.pk) for c in commands]
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        transaction.on_commit(lambda chunk=chunk: send_task(deliver_commands, chunk))
