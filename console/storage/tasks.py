"""Celery tasks of the storage app: thin wrappers around service functions."""

from __future__ import annotations

from celery import shared_task

from console.storage import maintenance


@shared_task(name="storage.maintain_device", acks_late=True)
def maintain_device(device_id: str) -> str:
    """Retention and prune of one device repository (a JobRun of kind prune)."""
    run = maintenance.maintain_device(device_id)
    return run.state if run is not None else "skipped"


@shared_task(name="storage.maintain_all")
def maintain_all() -> int:
    """Beat (daily): queue the maintenance of every device."""
    ids = maintenance.devices_due()
    for device_id in ids:
        maintain_device.delay(device_id)
    return len(ids)
