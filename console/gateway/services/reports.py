"""Agent reports, applied through the console's report service functions
(console/jobs/services.py), which are idempotent by the run's key.

* progress: ``record_job_started`` (first time) + ``record_job_progress``;
  last-write-wins, a finished run never moves backwards;
* result: ``record_job_result`` (idempotent by run key; it also records the
  snapshot, the device's protection state, daily statistics, the command);
* snapshot: ``record_snapshot``, guarded by ``record_report_once``;
* self_restore: an audit event (``selfrestore.ingest``, once per key).

A backup result whose stats count ``spooled_objects`` (uploaded offline
through a spool lease) queues ``storage.promote_spool`` after commit.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction

from console.core.safejson import UntrustedJSONError, clean_text
from console.core.safejson import loads as untrusted_json
from console.gateway.services import selfrestore
from console.jobs import services as jobs
from console.jobs.dispatch import send_task
from console.jobs.models import Command, JobRun
from console.restore import onto
from console.storage.tasks import promote_spool

log = logging.getLogger(__name__)

TRIGGERS = {"schedule", "catch_up", "manual"}
KINDS = {"backup", "restore", "verify", "prune"}


def _ts(value) -> dt.datetime | None:
    if value is None or (not value.seconds and not value.nanos):
        return None
    return value.ToDatetime(tzinfo=dt.UTC)


def run_key(device_id: str, job_id: str) -> str:
    return clean_text(f"{device_id}:{job_id}"[:128])


def _command_pk(device_id: str, command_id: str):
    if not command_id or command_id.startswith("policy:"):
        return None
    try:
        return (
            Command.objects.filter(pk=command_id, device_id=device_id)
            .values_list("pk", flat=True)
            .first()
        )
    except Exception:
        return None


def ingest(device_id: str, report) -> bool:
    """Apply one Report. True when durable (applied now or before)."""
    body = report.WhichOneof("body")
    if body == "progress":
        _progress(device_id, report.progress)
        return True
    if body == "result":
        _result(device_id, report.result)
        return True
    if body == "snapshot":
        s = report.snapshot
        if jobs.record_report_once(clean_text(f"{device_id}:{report.idempotency_key}")):
            jobs.record_snapshot(
                device_id,
                clean_text(s.snapshot_id),
                taken_at=_ts(s.time),
                file_count=s.files,
                size_bytes=s.bytes,
                paths=[clean_text(p) for p in s.paths],
                tags=[clean_text(t) for t in s.tags],
            )
        return True
    if body == "self_restore":
        selfrestore.ingest(device_id, report.idempotency_key, report.self_restore)
        return True
    return False


def ingest_progress(items) -> None:
    """A batch of the latest progress report per (device, job)."""
    for (device_id, _job), report in items:
        try:
            _progress(device_id, report.progress)
        except Exception:  # one bad report must not drop the others
            log.exception("progress report of %s dropped", device_id)


def _progress(device_id: str, p) -> None:
    key = run_key(device_id, p.job_id)
    if not JobRun.objects.filter(idempotency_key=key).exists():
        jobs.record_job_started(
            device_id,
            key,
            kind=p.kind if p.kind in KINDS else "backup",
            trigger=p.trigger if p.trigger in TRIGGERS else "schedule",
            command_id=_command_pk(device_id, p.command_id),
            started_at=_ts(p.started_at),
        )
    jobs.record_job_progress(
        device_id,
        key,
        progress=(p.percent or 0.0) / 100.0,
        detail={
            "files_done": p.files_done,
            "files_total": p.files_total,
            "bytes_done": p.bytes_done,
            "bytes_total": p.bytes_total,
            "current_path": clean_text(p.current_path[-300:]),
        },
    )


def _stats(device_id: str, stats_json: str) -> tuple[dict, str]:
    """(stats, why they were refused or ""). The agent's statistics are
    untrusted JSON: too deep, NUL-carrying or not an object is refused (the
    result itself is still recorded), never an exception that fails the
    report on every retry."""
    if not stats_json:
        return {}, ""
    try:
        stats = untrusted_json(stats_json)
    except UntrustedJSONError as exc:
        reason = str(exc)
    else:
        if isinstance(stats, dict):
            return stats, ""
        reason = "not a JSON object"
    log.warning("device %s sent job statistics that were refused: %s", device_id, reason)
    return {}, f"statistics refused: {reason}"


def _result(device_id: str, r) -> None:
    stats, refused = _stats(device_id, r.stats_json)
    # first, so it survives the cap on kept warnings
    warnings = ([refused] if refused else []) + [clean_text(w) for w in r.warnings]
    stats.setdefault("size_bytes", stats.get("total_bytes", 0))
    stats.setdefault("files_processed", stats.get("files_read", 0))
    if r.files_total and "files_total" not in stats:
        stats["files_total"] = r.files_total
    if r.bytes_added and "bytes_added" not in stats:
        stats["bytes_added"] = r.bytes_added
    jobs.record_job_result(
        device_id,
        run_key(device_id, r.job_id),
        ok=r.state in ("succeeded", "partial"),
        cancelled=r.state == "cancelled",
        kind=r.kind if r.kind in KINDS else "backup",
        trigger=r.trigger if r.trigger in TRIGGERS else "schedule",
        command_id=_command_pk(device_id, r.command_id),
        started_at=_ts(r.started_at),
        finished_at=_ts(r.finished_at),
        stats=stats,
        warnings=warnings,
        snapshot_id=clean_text(r.snapshot_id),
        error=clean_text(r.error),
        revision_hash=clean_text(r.policy_revision),
    )
    spooled = stats.get("spooled_objects")
    if isinstance(spooled, int) and spooled > 0:
        _queue_promotion(device_id)
    if r.kind == "restore" and r.state in FINISHED:
        _close_restore_access(device_id, _command_pk(device_id, r.command_id))


#: a restore onto another device that ended: its one-time key stops working
FINISHED = {"succeeded", "partial", "failed", "cancelled"}


def _close_restore_access(device_id: str, command_pk) -> None:
    command = (
        Command.objects.filter(pk=command_pk, device_id=device_id).first() if command_pk else None
    )
    if command is None or not (command.payload or {}).get("restore_access"):
        return
    try:
        onto.close_for_command(command)
    except Exception:  # the access still expires; never fail the ingest
        log.exception("could not close the restore access of command %s", command_pk)


def _queue_promotion(device_id: str) -> None:
    """Promote the objects the backup spooled offline, once the result is
    committed; a broker outage never fails the ingest (maintenance promotes
    them at the latest)."""
    transaction.on_commit(lambda: send_task(promote_spool, str(device_id)))
