"""Issue 15, item 3, for the providers that mount their snapshots in the
agent's state directory (LVM, APFS): a source holding that directory (a
backup of / or of the disk the state lives on) never stores the mounted
snapshot, whatever the policy's excludes. btrfs: test_busy_files_btrfs.py."""

from __future__ import annotations

import os

from agent.daemon import jobs
from agent.snapshots import own_folders_excludes
from agent.snapshots.linux_btrfs import SNAPSHOT_DIR
from tests.agent.open_files.test_busy_files_btrfs import make_repo


def test_snapshot_mount_roots_in_the_state_dir_are_never_backed_up(tmp_path):
    source = tmp_path / "disk"
    state = source / "var" / "lib" / "cairn"
    mounted = state / "lvm-snapshots" / "cairn-home-1" / "ana"  # what a mounted snapshot shows
    mounted.mkdir(parents=True)
    (mounted / "thesis.docx").write_text("a whole second copy of the volume")
    (source / "notes.txt").write_text("keep me")
    assert os.path.join(state, "lvm-snapshots") in own_folders_excludes(str(state))
    assert SNAPSHOT_DIR in own_folders_excludes(str(state))

    repo = make_repo(tmp_path / "repo")
    ctx = jobs.JobContext.new("backup", "manual", args={"paths": [str(source)]})
    outcome = jobs.run_backup(ctx, repo, {"open_files": "off", "excludes": ["*.tmp"]},
                              state_dir=str(state))  # fmt: skip
    assert outcome.state == "succeeded", outcome.error
    names = [p.decode() for p, _ in repo.walk(repo.load_snapshot(outcome.snapshot_id).tree)]
    assert f"{source}/notes.txt" in names
    assert not [n for n in names if "lvm-snapshots" in n], names
