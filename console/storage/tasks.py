"""Celery tasks of the storage app: thin wrappers around service functions."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from agent.engine.store import StoreError
from console.audit.services import SYSTEM
from console.storage import maintenance, recovery, restore_access, spool, verification


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
    # restores onto another device that never ran: their one-time keys go (issue 11)
    restore_access.close_expired()
    return len(ids)


@shared_task(
    name="storage.promote_spool",
    acks_late=True,
    autoretry_for=(StoreError, ConnectionError, TimeoutError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
)
def promote_spool(device_id: str) -> dict:
    """Promote a device's offline spool uploads (queued when a backup result
    says it spooled objects; maintenance also runs it)."""
    return spool.promote(device_id).to_dict()


@shared_task(name="storage.verify_device", acks_late=True)
def verify_device(device_id: str, run_id: int | None = None) -> str:
    """Verification of one device repository (a JobRun of kind verify): the
    Verify button's (``run_id``), or a scheduled one if still due."""
    if run_id is None and not verification.still_due(device_id, "verify"):
        return "not due"
    run = verification.verify_device(device_id, run_id=run_id)
    return run.state if run is not None else "skipped"


@shared_task(name="storage.test_restore_device", acks_late=True)
def test_restore_device(device_id: str) -> str:
    """Test restore of a sample of one device's files (a JobRun of kind test_restore)."""
    if not verification.still_due(device_id, "test_restore"):
        return "not due"
    run = verification.test_restore_device(device_id)
    return run.state if run is not None else "skipped"


@shared_task(name="storage.verify_due")
def verify_due() -> int:
    """Beat (hourly): queue the verifications and test restores the policies make due."""
    due = verification.due()
    for device_id, kind in due:
        task = verify_device if kind == "verify" else test_restore_device
        task.delay(device_id)
    return len(due)


@shared_task(name="storage.backup_console")
def backup_console() -> str:
    """Beat (every CAIRN_CONSOLE_BACKUP_HOURS): the console's sealed bundle to
    the storage target (console/storage/recovery.py); returns where it went."""
    result = recovery.backup(
        SYSTEM, recovery.passphrase_from_settings(), keep=settings.CAIRN_CONSOLE_BACKUP_KEEP
    )
    return result.location
