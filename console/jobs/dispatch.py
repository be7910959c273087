"""The single seam between "the console wants a device to do something" and
"the control plane delivers it".

Service functions (console/jobs/services.py, console/policies/services.py)
create durable Command rows and then call ``enqueue_delivery(command)`` (or
``enqueue_deliveries(commands)`` for a rollout). Nothing else in the console
talks to agents.

What happens next:

1. After the surrounding transaction commits (never before: a worker must
   find the row), the Celery task ``jobs.deliver_command`` /
   ``jobs.deliver_commands`` (below) is queued.
2. The task calls ``deliver(command_id)``, which hands the command to the
   *transport* the control plane registered at start-up
   (``set_transport``: console/gateway/apps.py registers
   console/gateway/services/delivery.py ``deliver``, which publishes it to the
   gateway holding the device's stream; that gateway writes it to the stream
   and moves it pending → sent). The domain never imports the gateway: the
   dependency points from the adapter to this seam. An offline device keeps
   its pending commands; the gateway sends them when it reconnects
   (console/jobs/commands.py ``deliverable_for``). Delivery is at-least-once;
   agents treat command ids idempotently.
3. Acknowledgements and results come back through console/jobs/commands.py
   (batched, from the streams) and the report functions in
   console/jobs/services.py (``record_job_*``, ``record_heartbeat``).

The delivery tasks live here, not in tasks.py, because this module queues
them: tasks.py imports the services, which import this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from celery import shared_task
from django.db import transaction

BATCH = 500
log = logging.getLogger(__name__)


class DeliveryRetry(Exception):
    """Raised by a transport when delivery should be retried later (the task
    retries with backoff)."""


#: command id → outcome ("missing", "skipped", "expired", "offline",
#: "published"); raises DeliveryRetry on a transient failure
Transport = Callable[[str], str]
_transport: Transport | None = None


def set_transport(transport: Transport | None) -> None:
    """Called once by the control plane's AppConfig.ready()."""
    global _transport
    _transport = transport


def deliver(command_id: str) -> str:
    """Deliver one command through the registered transport. Without one (a
    process with no control plane installed) the command stays pending and
    is sent when its device's stream opens: "offline"."""
    if _transport is None:
        return "offline"
    return _transport(command_id)


@shared_task(
    name="jobs.deliver_command",
    autoretry_for=(DeliveryRetry,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
)
def deliver_command(command_id: str) -> str:
    return deliver(command_id)


@shared_task(name="jobs.deliver_commands")
def deliver_commands(command_ids: list[str]) -> dict:
    results: dict[str, int] = {}
    for command_id in command_ids:
        try:
            outcome = deliver(command_id)
        except DeliveryRetry:
            deliver_command.apply_async((command_id,), countdown=5)
            outcome = "retry"
        results[outcome] = results.get(outcome, 0) + 1
    return results


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
    command_id = str(command.pk)
    transaction.on_commit(lambda: send_task(deliver_command, command_id))


def enqueue_deliveries(commands: Iterable) -> None:
    """Queue delivery of many commands (a policy rollout) in batches of BATCH."""
    ids = [str(c.pk) for c in commands]
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        transaction.on_commit(lambda chunk=chunk: send_task(deliver_commands, chunk))
