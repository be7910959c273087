"""Listing directories for backup, and exclude patterns.

Exclude patterns (``--exclude``), matched with shell wildcards (``*``, ``?``,
``[...]``) against byte paths:

* a pattern without ``/`` matches an entry's name anywhere in the tree
  (``*.tmp``, ``node_modules``);
* a pattern with ``/`` matches the entry's absolute original path
  (``/home/*/.cache``), and everything under it;
* ``**`` is accepted and means the same as ``*`` here (``*`` also crosses
  ``/`` in absolute patterns).

Paths are repository paths (docs/format.md, "Paths"). On Windows patterns
may be written natively (``C:\\Users\\*\\AppData``: backslashes become ``/``,
the drive ``/C``) and match case-insensitively.

An excluded directory is not descended into.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable

from agent.engine import paths as pathmap


class ExcludeMatcher:
    def __init__(
        self, patterns: Iterable[str | bytes] = (), flavour: pathmap.Flavour | None = None
    ):
        self.patterns = [p if isinstance(p, str) else os.fsdecode(p) for p in patterns]
        flavour = flavour or pathmap.current()
        names, paths = [], []
        for p in self.patterns:
            raw = os.fsencode(pathmap.repo_pattern(p, flavour).replace("**", "*"))
            target = paths if b"/" in raw.rstrip(b"/") else names
            target.append(fnmatch.translate(os.fsdecode(raw.rstrip(b"/") or raw)))
        flags = re.IGNORECASE if flavour.case_insensitive else 0
        self._name = re.compile("|".join(names), flags) if names else None
        self._path = re.compile("|".join(paths), flags) if paths else None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: bytes, name: bytes) -> bool:
        if self._name is not None and self._name.match(os.fsdecode(name)):
            return True
        return self._path is not None and self._path.match(os.fsdecode(path)) is not None


def list_dir(path: bytes) -> list[tuple[bytes, os.DirEntry]]:
    """(name, entry) of a directory, sorted by name bytes. Raises OSError."""
    with os.scandir(path) as it:
        entries = [(e.name, e) for e in it]
    entries.sort(key=lambda item: item[0])
    return entries
