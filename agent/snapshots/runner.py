"""The seam between snapshot providers and the OS's command-line tools.

Providers never call subprocess directly: they get a ``Runner``. The real one
runs the command; tests pass a runner that replays outputs recorded on the
real OS (tests/agent/open_files/recorded.py), so the orchestration around
``tmutil``, ``mount_apfs``, ``lvcreate`` and friends is exercised on any
machine.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        return (self.stdout + "\n" + self.stderr).strip()

    def describe(self) -> str:
        """One line for an error message: the command and what it said."""
        said = self.output.splitlines()
        tail = said[-1] if said else f"exit status {self.returncode}"
        return f"`{' '.join(self.argv)}` failed: {tail}"


class Runner(Protocol):
    def __call__(self, argv: Sequence[str], *, timeout: float = 120) -> Result: ...


def run(argv: Sequence[str], *, timeout: float = 120) -> Result:
    """Run a command without a shell; a missing binary is exit status 127."""
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        return Result(tuple(argv), 127, "", str(exc))
    except subprocess.TimeoutExpired:
        return Result(tuple(argv), 124, "", f"timed out after {timeout}s")
    return Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
