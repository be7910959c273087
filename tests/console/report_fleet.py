"""A fleet with a known job history over a closed period, for the report
document, schedule and page tests: devices enrolled through the service
functions, their history written as JobRun rows at known times, the daily
history filled by console/reports/history.py (as the beat does).

Timeline (period = the ``days`` closed UTC days ending ``end``):
- ``pc-000``: never backed up (enrolled, seen, no success);
- ``pc-001``: a backup every day at 01:00 but each of the last three days
  failed (out of RPO at the end), one verification that found a damaged file;
- every other device: a backup every day at 01:00 (within a 24 h RPO all
  period), a clean verification and a test restore of 12.5 s at 80 MB/s.
- one device's host name is hostile text, as a PC may report it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone

from console.fleet.models import Device
from console.jobs.models import JobKind, JobRun, JobState
from console.reports import history

HOSTILE = '<b>evil</b> & "x" \x07host'


@dataclass
class ReportFleet:
    start: date
    end: date
    devices: list
    never: object
    failing: object
    hostile: object


def _run(device, kind, state, at, **extra):
    return JobRun(
        device=device,
        kind=kind,
        state=state,
        started_at=at - timedelta(minutes=5),
        finished_at=at,
        updated_at=at,
        **extra,
    )


def build(
    enroll, plaintext: str, n: int, *, days: int = 14, end: date | None = None, prepare=None
) -> ReportFleet:
    """Enroll ``n`` more devices and give them all a known history;
    ``prepare(devices)`` runs before the history is filled (e.g. groups)."""
    enroll(plaintext, n, prefix="rp")
    end = end or (timezone.now().astimezone(UTC).date() - timedelta(days=1))
    start = end - timedelta(days=days - 1)
    enrolled = datetime.combine(start - timedelta(days=3), time(12), tzinfo=UTC)
    Device.objects.update(
        enrolled_at=enrolled, last_seen_at=datetime.combine(end, time(22), tzinfo=UTC)
    )
    devices = list(Device.objects.order_by("hostname"))
    never, failing, hostile = devices[0], devices[1], devices[-1]
    Device.objects.filter(pk=hostile.pk).update(hostname=HOSTILE)
    runs = []
    day = start - timedelta(days=2)
    while day <= end:
        at = datetime.combine(day, time(1), tzinfo=UTC)
        for d in devices[1:]:
            failed = d.pk == failing.pk and day > end - timedelta(days=3)
            state = JobState.FAILED if failed else JobState.SUCCEEDED
            runs.append(_run(d, JobKind.BACKUP, state, at, bytes_added=0 if failed else 1_000_000))
        day += timedelta(days=1)
    check_at = datetime.combine(end - timedelta(days=1), time(3), tzinfo=UTC)
    for d in devices[1:]:
        damaged = ["C:/Users/a/report.docx"] if d.pk == failing.pk else []
        runs.append(
            _run(
                d,
                JobKind.VERIFY,
                JobState.SUCCEEDED,
                check_at,
                stats={"damaged": [], "damaged_files": damaged},
            )
        )
        if d.pk != failing.pk:
            runs.append(
                _run(
                    d,
                    JobKind.TEST_RESTORE,
                    JobState.SUCCEEDED,
                    check_at + timedelta(hours=1),
                    stats={
                        "damaged": [],
                        "damaged_files": [],
                        "duration_s": 12.5,
                        "throughput_bps": 80e6,
                    },
                )
            )
    JobRun.objects.bulk_create(runs)
    if prepare is not None:
        prepare(devices)
    history.fill_days(start - timedelta(days=2), end)
    devices = list(Device.objects.order_by("hostname"))
    return ReportFleet(start, end, devices, never, failing, Device.objects.get(pk=hostile.pk))
