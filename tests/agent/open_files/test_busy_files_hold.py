"""Issue 15, item 1, when there is no local room to hold a re-read attempt:
the backup still succeeds (real btrfs, real writer, a real full tmpfs)."""

from __future__ import annotations

import subprocess
import tempfile

from agent.engine.backup import run_backup
from tests.agent.open_files.test_busy_files_btrfs import (  # noqa: F401 (fixtures)
    MAILBOX,
    home,
    mailbox,
    make_repo,
    passes,
    stored,
)


def test_no_local_room_to_hold_an_attempt_stores_it_as_read(mailbox, tmp_path, monkeypatch):  # noqa: F811
    # The held attempt spills to a temporary file past 16 MiB; here its disk is
    # a 4 MiB tmpfs, full long before the 64 MiB mailbox is read. The backup
    # must still succeed, storing the rest as it reads it (the old cost).
    pst = mailbox()
    small = tmp_path / "small-tmp"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=True)
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(small))
        repo = make_repo(tmp_path / "repo")
        for _ in range(5):
            result = run_backup(repo, [str(pst.parent)], parent=None)
            if result.stats.retries:
                break
        _, data = stored(repo, result.snapshot.tree, pst)
        assert result.stats.retries >= 1 and len(data) == MAILBOX
        # Past the 16 MiB in memory and the 4 MiB on disk, a rejected attempt's
        # chunks were stored as read: the old cost, not a failed backup.
        assert result.stats.bytes_added > 1.2 * MAILBOX
        # flagged or not, from the result: independent of the tree node's form
        if not any(w.kind == "changed-during-read" for w in result.warnings):
            assert len(passes(data)) == 1
        assert list(small.iterdir()) == [], "the spill files are gone"
    finally:
        subprocess.run(["umount", str(small)], check=True)
