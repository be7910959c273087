"""Self-service restores done at the PC (agent/daemon/localapi.py), written
to the audit log when the agent's report arrives (after a reconnect, from its
outbox). Everything in the report is untrusted: text is bounded and cleaned,
the state is one of a known few, numbers are clamped, and a report key is
applied once however often the agent replays it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from console.audit.services import Actor, record
from console.core.safejson import clean_text
from console.fleet.models import Device
from console.jobs import services as jobs

ACTION = "device.self_restore"
STATES = {"succeeded", "failed", "refused"}
MAX_PATHS = 20
MAX_TEXT = 1024
MAX_COUNT = 2**63 - 1


@dataclass(frozen=True)
class PcUser(Actor):
    """The person at the PC: an OS account, not a console user."""

    os_user: str = ""

    @property
    def name(self) -> str:
        return f"{self.os_user} (on the PC)"[:150]


def _text(value: str, limit: int = MAX_TEXT) -> str:
    return clean_text(str(value)[:limit])


def ingest(device_id: str, key: str, r) -> None:
    if not jobs.record_report_once(clean_text(f"{device_id}:{key}"[:200])):
        return
    device = Device.objects.filter(pk=device_id).first()
    at = None
    if r.at.seconds or r.at.nanos:
        at = r.at.ToDatetime(tzinfo=dt.UTC).isoformat()
    after = {
        "os_user": _text(r.os_user, 64),
        "uid": int(r.uid),
        "snapshot": _text(r.snapshot_id, 64),
        "paths": [_text(p) for p in list(r.paths)[:MAX_PATHS]],
        "paths_total": len(r.paths),
        "target": _text(r.target),
        "state": r.state if r.state in STATES else "unknown",
        "error": _text(r.error),
        "files": min(int(r.files), MAX_COUNT),
        "bytes": min(int(r.bytes), MAX_COUNT),
        "at": at,
    }
    actor = PcUser(os_user=after["os_user"] or f"uid {after['uid']}")
    if device is not None:
        record(actor, ACTION, device, after=after)
    else:
        record(actor, ACTION, target_type="device", target_id=str(device_id)[:64], after=after)
