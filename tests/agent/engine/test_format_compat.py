"""A repository written by an earlier release (tests/agent/fixtures/repo-v1,
made by the engine of 2026-12-05 before the engine was split into units)
still checks, restores and takes new backups: the format is a contract, not
an implementation detail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.agent.conftest import run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SNAPSHOT = "680efb134219bc318e6c8e13020ebc3de01c0e9efda64b2e845f10f26a858002"


def test_an_old_repository_checks_restores_and_backs_up(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "repo-v1", repo)
    chk = json.loads(run_cli("check", "--repo", repo, "--read-data", "--json", check=0).stdout)
    assert chk["errors"] == []

    out = tmp_path / "out"
    run_cli("restore", "--repo", repo, SNAPSHOT, "--target", out, check=0)
    [report] = out.rglob("docs/report.txt")
    source = FIXTURES / "src-v1"
    assert report.read_bytes() == (source / "docs" / "report.txt").read_bytes()
    assert (report.parent / "photo.bin").read_bytes() == (
        source / "docs" / "photo.bin"
    ).read_bytes()
    link = report.parent.parent / "shortcut"
    assert link.is_symlink() and str(link.readlink()) == "docs/report.txt"

    # A new backup of the same content deduplicates against the old packs.
    again = tmp_path / "src"
    shutil.copytree(source, again, symlinks=True)
    (again / "new.txt").write_text("written after the upgrade\n")
    snap = json.loads(run_cli("backup", "--repo", repo, "--json", again, check=0).stdout)
    assert snap["stats"]["files_new"] == 3
    assert snap["stats"]["bytes_added"] < 10_000  # only new.txt and trees, not the photo
    chk = json.loads(run_cli("check", "--repo", repo, "--read-data", "--json", check=0).stdout)
    assert chk["errors"] == []
    snaps = json.loads(run_cli("snapshots", "--repo", repo, "--json", check=0).stdout)
    assert [s["id"] for s in snaps][0] == SNAPSHOT and len(snaps) == 2
