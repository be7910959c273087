"""Fixtures for the open-file tests: a real loop-backed btrfs filesystem, and
a command runner that replays outputs in the format the real tools print."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

import pytest

from agent.snapshots.runner import Result
from tests.support import need_service


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


@pytest.fixture
def btrfs_mount(tmp_path):
    """A fresh btrfs filesystem in a 512 MiB (sparse) image file, loop-mounted:
    room for a 64 MiB mailbox rewritten while snapshots of it are held.

    Needs root, btrfs-progs and loop devices; without them the test is
    skipped with the reason (a failure under CI=true).
    """
    if os.geteuid() != 0:
        need_service("root, to loop-mount a btrfs image")
    for tool in ("mkfs.btrfs", "btrfs", "mount", "umount", "findmnt"):
        if shutil.which(tool) is None:
            need_service(f"the {tool} command (make os-tools: btrfs-progs / util-linux)")
    image, mnt = tmp_path / "btrfs.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(512 * 1024 * 1024)
    made = _sh("mkfs.btrfs", "-q", str(image), check=False)
    if made.returncode:
        need_service(f"mkfs.btrfs ({made.stderr.strip()})")
    mounted = _sh("mount", "-o", "loop", str(image), str(mnt), check=False)
    if mounted.returncode:
        need_service(f"a loop-mounted btrfs image ({mounted.stderr.strip()})")
    try:
        yield mnt
    finally:
        # Any snapshot a failed test left is inside the image: unmounting
        # drops it all; mount -o loop sets autoclear, so the loop device goes too.
        if _sh("umount", str(mnt), check=False).returncode:
            _sh("umount", "-l", str(mnt), check=False)


class Recorded:
    """A Runner that answers commands from a script of recorded outputs.

    ``script`` is a list of (argv prefix, Result-or-callable). Each call takes
    the first unused entry whose prefix matches; unmatched commands fail the
    test, so the provider cannot run anything the recording did not cover.
    """

    def __init__(self, script: Sequence[tuple[Sequence[str], object]]):
        self.script = [(tuple(prefix), answer) for prefix, answer in script]
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], *, timeout: float = 120) -> Result:
        argv = tuple(argv)
        self.calls.append(argv)
        for i, (prefix, answer) in enumerate(self.script):
            if argv[: len(prefix)] == prefix:
                del self.script[i]
                if callable(answer):
                    answer = answer(argv)
                rc, out, err = answer
                return Result(argv, rc, out, err)
        pytest.fail(f"command not in the recording: {argv}")

    def ran(self, *prefix: str) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[: len(prefix)] == prefix]


@pytest.fixture
def recorded() -> Callable[..., Recorded]:
    return Recorded
