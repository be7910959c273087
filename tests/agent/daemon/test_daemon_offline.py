"""The agent backs up on its schedule with the console unreachable, keeps
the result in its outbox, and restores without overwriting newer files."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.daemon import jobs
from agent.daemon.daemon import Daemon
from agent.daemon.home import AgentHome, Identity
from agent.daemon.repo import init_repository, open_repository
from agent.daemon.state import State
from agent.daemon.status import format_status
from agent.engine.store import LocalStore
from tests.support import free_port


def _self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return (
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
    )


@pytest.fixture
def offline_agent(tmp_path):
    """An enrolled-looking agent whose gateway address has nobody listening,
    with a direct (local) repository and a policy already applied."""
    repo_dir = tmp_path / "repo"
    device_key = os.urandom(32)
    init_repository(LocalStore(repo_dir), org_key=os.urandom(32), device_key=device_key)
    home = AgentHome(tmp_path / "home")
    home.ensure()
    key, cert = _self_signed()
    home.keys.put("device.key", key)
    home.keys.put("repo.key", device_key)
    (home.path / "device.crt").write_bytes(cert)
    (home.path / "ca.crt").write_bytes(cert)
    home.save_identity(
        Identity(
            device_id="00000000-0000-0000-0000-000000000001",
            gateway_address=f"127.0.0.1:{free_port()}",
            repository_url=repo_dir.as_uri(),
            storage_access="direct",
        )
    )
    data = tmp_path / "Documents"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha\n" * 1000)
    (data / "sub" / "b.bin").write_bytes(os.urandom(200_000))
    state = State(home.state_db)
    state.apply_policy(
        "rev-1",
        {
            "sources": {"linux": [str(data)], "macos": [str(data)], "windows": [str(data)]},
            "excludes": [],
            "schedule": {"every_hours": 4, "catch_up": True},
            # Uploads go through the throttle and the pause gate (no battery here).
            "limits": {"upload_kbps": 800_000, "pause_on_battery": True, "pause_on_metered": False},
            "open_files": "off",
        },
    )
    # The last scheduled run was 5 hours ago: the 4-hour slot was missed.
    state.set("last_scheduled_start", time.time() - 5 * 3600)
    state.close()
    return home, data, repo_dir, device_key


def test_scheduled_catch_up_backup_runs_offline_and_waits_in_the_outbox(offline_agent):
    home, data, repo_dir, device_key = offline_agent

    async def scenario():
        daemon = Daemon(home, tick=0.2)
        task = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            if State(home.state_db).get("last_backup_state"):
                break
        daemon.stop()
        await asyncio.wait_for(task, 30)

    asyncio.run(scenario())
    state = State(home.state_db)
    assert state.get("last_backup_state") == "succeeded"
    job = state.jobs(1)[0]
    assert job["trigger"] == "catch_up" and job["snapshot_id"]
    # Not delivered (no gateway): the result waits in the outbox, with its key.
    assert [k for k, _ in state.outbox_pending()] == [f"result:{job['id']}"]
    repo = open_repository(LocalStore(repo_dir), device_key)
    assert [s.id if hasattr(s, "id") else s for s in repo.snapshot_ids()]
    text = format_status(home)
    assert "offline" in text and "succeeded" in text and "unsent reports:  1" in text


def test_restore_keeps_newer_local_files_unless_told(offline_agent, tmp_path):
    home, data, repo_dir, device_key = offline_agent
    repo = open_repository(LocalStore(repo_dir), device_key)
    ctx = jobs.JobContext.new("backup", "manual")
    outcome = jobs.run_backup(ctx, repo, State(home.state_db).policy)
    assert outcome.state == "succeeded"
    original = (data / "a.txt").read_bytes()

    # Restore to the original paths: a locally newer file is kept...
    (data / "a.txt").write_text("edited after the backup\n")
    future = time.time() + 60
    os.utime(data / "a.txt", (future, future))
    (data / "sub" / "b.bin").unlink()
    repo = open_repository(LocalStore(repo_dir), device_key)
    ctx = jobs.JobContext.new("restore", "manual", args={"snapshot_id": outcome.snapshot_id})
    restored = jobs.run_restore(ctx, repo)
    assert restored.state == "succeeded", restored.error
    assert (data / "a.txt").read_text() == "edited after the backup\n"
    assert (data / "sub" / "b.bin").exists()  # the missing file came back

    # ...unless overwrite is asked for.
    ctx = jobs.JobContext.new(
        "restore", "manual", args={"snapshot_id": outcome.snapshot_id, "overwrite": True}
    )
    assert jobs.run_restore(ctx, repo).state == "succeeded"
    assert (data / "a.txt").read_bytes() == original

    # Restore into a target folder: files keep their absolute path below it.
    target = tmp_path / "elsewhere"
    ctx = jobs.JobContext.new(
        "restore", "manual", args={"snapshot_id": outcome.snapshot_id, "target": str(target)}
    )
    assert jobs.run_restore(ctx, repo).state == "succeeded"
    assert (target / Path(str(data)).relative_to("/") / "a.txt").read_bytes() == original
