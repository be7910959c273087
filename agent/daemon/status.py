"""What the daemon tells the person at the PC: a status file it rewrites
every two seconds (private to the agent's user) and ``agent status``, which
reads that file and the local state database.

``StatusReporting`` is one facet of ``agent.daemon.daemon.Daemon``; it reads
the daemon's connection fields, ``current`` job, ``pause_reason`` and
``offline`` support.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import time

from agent.daemon.home import AgentHome, write_private
from agent.daemon.state import State

log = logging.getLogger("cairn.agent")

#: a status file older than this means the agent is not running any more
STALE_SECONDS = 30


class StatusReporting:
    async def _status_loop(self) -> None:
        while True:
            self.write_status()
            await asyncio.sleep(2)

    def write_status(self) -> None:
        try:
            write_private(self.home.status_file, json.dumps(self.status(), indent=1).encode())
        except OSError as exc:
            log.debug("status file: %s", exc)

    def status(self) -> dict:
        """The status file's content."""
        cur = self.current
        return {
            "device_id": self.identity.device_id,
            "gateway": self.identity.gateway_address,
            "connection": self.connection_state,
            "gateway_id": self.gateway_id,
            "last_error": self.last_error,
            "policy_revision": self.state.policy_revision,
            "last_backup_at": self.state.get("last_backup_finished"),
            "last_backup_state": self.state.get("last_backup_state"),
            "last_success_at": self.state.get("last_backup_success"),
            "next_backup_at": self.state.get("next_backup_at"),
            "pause_reason": self.pause_reason,
            "outbox": self.state.outbox_size(),
            "offline": self.offline.describe() if self.offline is not None else None,
            "current": None
            if cur is None
            else {
                "kind": cur.kind,
                "trigger": cur.trigger,
                "command_id": cur.command_id,
                "started_at": cur.started,
                **cur.progress,
            },
            "pid": 0 if self.stopped else os.getpid(),
            "updated_at": time.time(),
        }


def _when(epoch: float | None) -> str:
    if not epoch:
        return "never"
    return dt.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _running_pid(data: dict) -> int:
    """The agent's pid if it is alive and wrote its status lately, else 0."""
    pid = data.get("pid")
    if not pid:
        return 0
    try:
        os.kill(pid, 0)
    except OSError:
        return 0
    return pid if time.time() - data.get("updated_at", 0) < STALE_SECONDS else 0


def _offline_line(off: dict) -> str:
    left = (
        f"{off['slots_left']} objects until {_when(off['lease_expires_at'])}"
        if off.get("slots_left")
        else "not available yet"
    )
    waiting = off.get("waiting_for_promotion")
    return "offline uploads: " + left + (f", {waiting} waiting to be filed" if waiting else "")


def _current_line(cur: dict | None) -> str:
    if not cur:
        return "current job:     none"
    pct = cur.get("percent", 0.0) or 0.0
    return (
        f"current job:     {cur['kind']} ({cur['trigger']}) {pct:.0f}% "
        f"{cur.get('files_done', 0)} files, {cur.get('bytes_done', 0)} bytes"
    )


def format_status(home: AgentHome) -> str:
    """What `agent status` prints."""
    try:
        data = json.loads(home.status_file.read_text())
    except (OSError, ValueError):
        data = {}
    identity = None
    with contextlib.suppress(Exception):
        identity = home.load_identity()
    if identity is None:
        return f"not enrolled (home: {home.path})"
    state = State(home.state_db)
    try:
        last_jobs = state.jobs(1)
        revision = state.policy_revision
        outbox = state.outbox_size()
        last_ok = state.get("last_backup_success")
        last = state.get("last_backup_finished")
        last_state = state.get("last_backup_state")
        nxt = state.get("next_backup_at")
    finally:
        state.close()
    pid = _running_pid(data)
    connection = data.get("connection", "unknown") if pid else "offline (agent not running)"
    if pid and data.get("last_error"):
        connection += f" - {data['last_error']}"
    lines = [
        f"device:          {identity.device_id}",
        f"gateway:         {identity.gateway_address}",
        "agent:           " + (f"running (pid {pid})" if pid else "not running"),
        f"connection:      {connection}",
        f"policy revision: {revision[:12] if revision else 'none yet'}",
        f"last backup:     {_when(last)}" + (f" ({last_state})" if last_state else ""),
        f"last success:    {_when(last_ok)}",
        f"next backup:     {_when(nxt) if revision else 'when a policy arrives'}",
        f"paused:          {data.get('pause_reason') or 'no'}",
        f"unsent reports:  {outbox}",
    ]
    if pid and data.get("offline"):
        lines.append(_offline_line(data["offline"]))
    lines.append(_current_line(data.get("current") if pid else None))
    if last_jobs:
        j = last_jobs[0]
        lines.append(f"last job:        {j['kind']} {j['state']} {j['snapshot_id'] or j['error']}")
    return "\n".join(lines)
