"""Celery tasks of the alerts app: thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task

from console.alerts import evaluation, notify

#: seconds before retry n (1, 2, …): 30 s, 60 s, 2 min, … capped at an hour
BACKOFF_BASE = 30
BACKOFF_CAP = 3600


def backoff(retries: int) -> int:
    return min(BACKOFF_CAP, BACKOFF_BASE * 2**retries)


@shared_task(name="alerts.evaluate")
def evaluate() -> dict:
    """Beat: one evaluation pass, then each queued notification as its own task."""
    result = evaluation.evaluate()
    for delivery_id in result.deliveries:
        deliver.delay(delivery_id)
    return {
        "conditions": result.conditions,
        "fired": len(result.fired),
        "resolved": len(result.resolved),
        "deliveries": len(result.deliveries),
    }


@shared_task(name="alerts.digest")
def digest() -> int:
    """Beat (hourly): daily digests that are due."""
    ids = notify.queue_digests()
    for delivery_id in ids:
        deliver.delay(delivery_id)
    return len(ids)


@shared_task(bind=True, name="alerts.deliver", max_retries=notify.MAX_ATTEMPTS)
def deliver(self, delivery_id: int) -> str:
    try:
        return notify.send(delivery_id).state
    except notify.RetryLater as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
