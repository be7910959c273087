"""Restore onto another device and replace a device, end to end (issue 11):
console (runserver + REST API), gateway, Celery worker, moto's S3 server and
two agent daemon processes. Each agent's user profile is the HOME it is given
(ana's for A, bob's for B). A backs up and is revoked; a folder of A's
snapshot is restored onto B, mapped into bob's profile, and compared byte for
byte; B takes over A's history and its next backup adds only what changed."""

from __future__ import annotations

import os

import pytest

from tests.e2e.test_control_plane import Api, _files, platform, worker_env  # noqa: F401
from tests.gateway.harness import Agent, enroll_agent, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SPEC = {
    "sources": {"linux": ["{Documents}"], "windows": ["{Documents}"], "macos": ["{Documents}"]},
    "schedule": {"every_hours": 1, "catch_up": True},
    "limits": {"pause_on_battery": False, "pause_on_metered": False},
    "open_files": "off",
}


def test_restore_onto_b_then_b_takes_over_a(platform, tmp_path):  # noqa: F811
    from console.storage.models import RestoreAccess

    api: Api = platform["api"]
    gateway = platform["gateway"]
    procs: list = platform["procs"]
    laptops = api.post("/groups/", {"name": "laptops"})
    spare = api.post("/groups/", {"name": "spares"})  # no policy: B backs up nothing yet
    policy = api.post("/policies/", {"name": "docs", "spec": SPEC})
    api.post(f"/policies/{policy['id']}/assign/", {"group": laptops["id"], "precedence": 10})

    homes = {"a": tmp_path / "profiles" / "ana", "b": tmp_path / "profiles" / "bob"}
    docs_a = homes["a"] / "Documents"
    (docs_a / "Projects" / "deep").mkdir(parents=True)
    (docs_a / "Projects" / "plan.odt").write_bytes(os.urandom(1_500_000))
    (docs_a / "Projects" / "deep" / "notes.txt").write_bytes(b"minutes\n" * 50_000)
    (docs_a / "Projects" / "empty").write_bytes(b"")
    (docs_a / "private.txt").write_bytes(b"not asked for\n")
    (homes["b"] / "Documents").mkdir(parents=True)
    ids, agents = {}, {}
    for name, group in (("a", laptops), ("b", spare)):
        tok = api.post("/enrollment-tokens/", {"name": name, "group": group["id"]})["token"]
        home = tmp_path / f"agent-{name}"
        env = {"HOME": str(homes[name]), "XDG_CONFIG_HOME": str(homes[name] / ".config")}
        ids[name] = enroll_agent(home, gateway, tok, env)
        agents[name] = Agent(home, tmp_path / f"agent-{name}.log", env).start()
        procs.append(agents[name])

    def diag():
        return "\n".join(f"--- {p.name}\n{p.tail(2000)}" for p in procs)

    def jobs(name, **want):
        runs = api.results(f"/jobs/?device={ids[name]}")
        return [j for j in runs if all(j.get(k) == v for k, v in want.items())]

    # --- A backs up, then is revoked (the laptop is gone) -----------------------------------
    wait_for(lambda: jobs("a", kind="backup", state="succeeded"), 60, f"A's backup\n{diag()}")
    snap = api.results(f"/snapshots/?device={ids['a']}")[0]["snapshot_id"]
    api.post(f"/devices/{ids['a']}/revoke/", {"reason": "stolen"})
    agents["a"].stop()

    # --- a folder of A's snapshot onto B, into bob's profile --------------------------------
    cmd = api.post(
        f"/devices/{ids['a']}/restore/",
        {
            "snapshot_id": snap,
            "paths": [str(docs_a / "Projects")],
            "target_device": ids["b"],
            "source_home": str(homes["a"]),
        },
    )
    assert cmd["device"] == ids["b"] and "key_sealed" not in cmd["payload"]
    wait_for(
        lambda: jobs("b", kind="restore", state="succeeded") or jobs("b", state="failed"),
        60,
        f"B's restore\n{diag()}",
    )
    assert jobs("b", kind="restore", state="succeeded"), jobs("b")
    assert _files(homes["b"] / "Documents" / "Projects") == _files(docs_a / "Projects")
    assert not (homes["b"] / "Documents" / "private.txt").exists()
    wait_for(
        lambda: RestoreAccess.objects.filter(closed_at__isnull=False).exists(),
        30,
        "the access to close",
    )

    # --- B takes over A: history, policy, groups; its next backup adds only what changed ----
    (homes["b"] / "Documents" / "bob.txt").write_bytes(b"bob's own\n" * 100)
    (homes["b"] / "Documents" / "changed.bin").write_bytes(os.urandom(60_000))
    take = api.post(f"/devices/{ids['a']}/replace/", {"replacement": ids["b"]})
    assert take["kind"] == "takeover" and "key_sealed" not in take["payload"]
    wait_for(
        lambda: api.get(f"/commands/{take['id']}/")["state"] in ("acknowledged", "done"),
        60,
        f"B to take the key\n{diag()}",
    )
    device_b = api.get(f"/devices/{ids['b']}/")
    groups = {g["id"] if isinstance(g, dict) else g for g in device_b["groups"]}
    assert groups == {laptops["id"], spare["id"]}  # A's groups added to B's own
    wait_for(
        lambda: api.get(f"/devices/{ids['b']}/")["policy_in_sync"], 60, f"B's policy\n{diag()}"
    )
    api.post(f"/devices/{ids['b']}/backup/")
    wait_for(
        lambda: jobs("b", kind="backup", state="succeeded", trigger="manual"),
        60,
        f"B's backup after the takeover\n{diag()}",
    )
    run = jobs("b", kind="backup", state="succeeded", trigger="manual")[0]
    # every backup B ran since it took over (its policy's first scheduled run
    # may have come before the manual one): together they added the changes only
    assert not jobs("b", kind="backup", state="failed"), diag()
    added = sum(j["stats"]["bytes_added_raw"] for j in jobs("b", kind="backup", state="succeeded"))
    total = sum(len(v) for v in _files(homes["b"] / "Documents").values())
    print(f"after the takeover: {added} raw bytes added for {total} bytes backed up")
    assert total > 1_900_000 and 61_000 <= added < 150_000, added
    snaps = {s["snapshot_id"] for s in api.results(f"/snapshots/?device={ids['b']}")}
    assert snap in snaps and run["snapshot_id"] in snaps
    assert api.get(f"/devices/{ids['a']}/")["revoked"]
