"""Default excludes: what a PC backup should skip unless a policy says otherwise.

A plain list of glob patterns (with the reason for each), so the console's
policy defaults can mirror it verbatim. Pattern rules, shared with
``is_excluded``:

* paths use ``/`` (Windows backslashes are converted); matching is
  case-insensitive, as on Windows and macOS by default;
* a pattern without ``/`` matches a file or directory name anywhere;
  a pattern with ``/`` is written ``*/A/B`` and matches a directory ``A/B``
  anywhere (``*/Library/Caches`` matches ``/Users/a/Library/Caches``);
  either excludes what it names and everything below it;
* ``*`` and ``?`` stay within one component, ``**`` crosses components.

The same patterns mean the same thing to the engine's ExcludeMatcher
(fnmatch on the name, or on the whole path for patterns with ``/``), which
is why path patterns start with ``*/``; tests/agent/open_files/
test_excludes.py checks the two agree.

Outlook ``.pst`` files are deliberately *not* excluded: they are the user's
only copy of archived mail. ``.ost`` (and ``.nst``) are caches Exchange or
Microsoft 365 re-downloads, and Windows already empties them in shadow copies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

# (pattern, why) - the console shows the why next to each default.
DEFAULT_EXCLUDES: list[tuple[str, str]] = [
    # Office and editor lock/owner files: tiny, meaningless once the app closes.
    ("~$*", "Office owner (lock) file of an open document"),
    (".~lock.*#", "LibreOffice lock file"),
    ("*.tmp", "temporary file"),
    ("*.temp", "temporary file"),
    ("~*.tmp", "Office temporary save file"),
    ("*.swp", "editor swap file"),
    ("*.crdownload", "unfinished Chrome/Edge download"),
    ("*.part", "unfinished Firefox download"),
    ("*.partial", "unfinished download"),
    ("Thumbs.db", "Windows thumbnail cache"),
    (".DS_Store", "macOS Finder metadata"),
    # Outlook: OST/NST are re-downloadable caches; PST is kept (see above).
    ("*.ost", "Outlook offline cache (Exchange re-downloads it)"),
    ("*.nst", "Outlook groups cache (re-downloaded)"),
    # OS files that are not user data.
    ("pagefile.sys", "Windows page file"),
    ("hiberfil.sys", "Windows hibernation file"),
    ("swapfile.sys", "Windows swap file"),
    ("$RECYCLE.BIN", "Windows recycle bin"),
    ("System Volume Information", "Windows system data (shadow copies live here)"),
    (".Trash", "macOS trash"),
    (".Trashes", "macOS trash on other volumes"),
    ("*/.local/share/Trash", "Linux desktop trash"),
    # Temp directories and caches: applications rebuild them.
    ("*/AppData/Local/Temp", "Windows per-user temp directory"),
    ("*/AppData/Local/Microsoft/Windows/INetCache", "Windows/Edge legacy web cache"),
    ("*/AppData/Local/Microsoft/Windows/Explorer/thumbcache_*.db", "Explorer thumbnail cache"),
    ("*/AppData/Local/CrashDumps", "application crash dumps"),
    ("*/AppData/Local/Packages/*/AC/INetCache", "store apps' web cache"),
    ("*/AppData/Local/Packages/*/LocalCache", "store apps' cache"),
    ("Cache", "browser/application cache directory (Chrome, Edge, Brave, Electron apps)"),
    ("Code Cache", "Chromium/Electron compiled-code cache"),
    ("GPUCache", "Chromium/Electron GPU cache"),
    ("*/Service Worker/CacheStorage", "Chromium web-app cache"),
    ("cache2", "Firefox cache"),
    ("*/Library/Caches", "macOS application caches"),
    ("*/Library/Containers/*/Data/Library/Caches", "sandboxed macOS app caches"),
    ("*/Library/Logs/DiagnosticReports", "macOS crash reports"),
    (".cache", "Linux per-user cache (XDG)"),
    (".thumbnails", "Linux thumbnail cache"),
    # The agent's own btrfs snapshots inside a subvolume (agent/snapshots).
    (".cairn-snapshots", "the agent's own point-in-time snapshots"),
]

DEFAULT_PATTERNS: list[str] = [p for p, _ in DEFAULT_EXCLUDES]

# Never excluded by the defaults, stated so the console can show it.
ALWAYS_INCLUDED_NOTE = "Outlook .pst files are backed up (they are the only copy of archived mail)"


def glob_to_regex(pattern: str) -> str:
    """The regex (without anchors) for one pattern, per the module's rules."""
    out, i = [], 0
    pattern = pattern.replace("\\", "/").strip("/")
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=64)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    body = "|".join(f"(?:{glob_to_regex(p)})" for p in patterns)
    return re.compile(f"(?:^|/)(?:{body})(?:/|$)", re.IGNORECASE)


def is_excluded(path: str, patterns: Iterable[str] | None = None) -> bool:
    """Whether ``path`` (or a directory above it) matches one of ``patterns``
    (the defaults when None)."""
    rx = _compiled(tuple(DEFAULT_PATTERNS if patterns is None else patterns))
    return bool(rx and rx.search(path.replace("\\", "/")))
