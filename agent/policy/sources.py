"""What a policy backs up: folders per OS (known-folder tokens or paths) and
the default excludes.

A source is a known-folder token (optionally followed by a sub-path), ``~``
(the user's home), or an absolute path on its OS. Anything else would be
resolved against the agent service's working directory, which is nobody's
intent. Windows: drive-absolute (``C:\\`` or ``C:/``) or UNC
(``\\\\server\\share``); a rooted ``\\x`` depends on the current drive, so it is
refused too. Tokens are resolved on the PC by agent/policy/knownfolders.py.

Excludes are glob patterns matched by the engine's ExcludeMatcher
(agent/engine/excludes): a pattern without ``/`` matches a file or folder
name anywhere, one with ``/`` is written ``*/A/B`` and matches that folder
anywhere; either excludes everything below what it names. Outlook ``.pst``
files are deliberately *not* excluded: they are the user's only copy of
archived mail. ``.ost`` (and ``.nst``) are caches Exchange or Microsoft 365
re-downloads, and Windows already empties them in shadow copies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.policy._fields import Errors, string_list, strings

OSES = ("windows", "macos", "linux")

# Known-folder tokens per OS, with where the agent finds them (hints shown to
# admins; the agent asks the OS: agent/policy/knownfolders.py).
KNOWN_FOLDERS: dict[str, dict[str, str]] = {
    "windows": {
        "{UserProfile}": r"%USERPROFILE% (FOLDERID_Profile)",
        "{Documents}": r"%USERPROFILE%\Documents (FOLDERID_Documents)",
        "{Desktop}": r"%USERPROFILE%\Desktop (FOLDERID_Desktop)",
        "{Pictures}": r"%USERPROFILE%\Pictures (FOLDERID_Pictures)",
        "{Downloads}": r"%USERPROFILE%\Downloads (FOLDERID_Downloads)",
        "{Music}": r"%USERPROFILE%\Music (FOLDERID_Music)",
        "{Videos}": r"%USERPROFILE%\Videos (FOLDERID_Videos)",
        "{Favorites}": r"%USERPROFILE%\Favorites (FOLDERID_Favorites)",
        "{OneDrive}": r"%OneDrive% (FOLDERID_SkyDrive)",
        "{AppDataRoaming}": r"%APPDATA% (FOLDERID_RoamingAppData)",
        "{OutlookData}": r"Outlook .pst files: Documents\Outlook Files and %LOCALAPPDATA%\Microsoft\Outlook",
    },
    "macos": {
        "{Home}": "~",
        "{Documents}": "~/Documents",
        "{Desktop}": "~/Desktop",
        "{Pictures}": "~/Pictures",
        "{Downloads}": "~/Downloads",
        "{Music}": "~/Music",
        "{Movies}": "~/Movies",
        "{OutlookData}": "~/Library/Group Containers/UBF8T346G9.Office/Outlook",
    },
    "linux": {
        "{Home}": "~",
        "{Documents}": "XDG_DOCUMENTS_DIR (~/Documents)",
        "{Desktop}": "XDG_DESKTOP_DIR (~/Desktop)",
        "{Pictures}": "XDG_PICTURES_DIR (~/Pictures)",
        "{Downloads}": "XDG_DOWNLOAD_DIR (~/Downloads)",
        "{Music}": "XDG_MUSIC_DIR (~/Music)",
        "{Videos}": "XDG_VIDEOS_DIR (~/Videos)",
    },
}

DEFAULT_SOURCES: dict[str, tuple[str, ...]] = {
    "windows": ("{Documents}", "{Desktop}", "{Pictures}", "{OutlookData}"),
    "macos": ("{Documents}", "{Desktop}", "{Pictures}", "{OutlookData}"),
    "linux": ("{Documents}", "{Desktop}", "{Pictures}"),
}

# (pattern, why): the console shows the why next to each default.
DEFAULT_EXCLUDES: tuple[tuple[str, str], ...] = (
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
)
DEFAULT_PATTERNS: tuple[str, ...] = tuple(p for p, _ in DEFAULT_EXCLUDES)
EXCLUDE_REASONS: dict[str, str] = dict(DEFAULT_EXCLUDES)
# Never excluded by the defaults, stated so the console can show it.
ALWAYS_INCLUDED_NOTE = "Outlook .pst files are backed up (they are the only copy of archived mail)"


@dataclass(frozen=True)
class Sources:
    """Folders to back up, per OS."""

    windows: tuple[str, ...] = strings(DEFAULT_SOURCES["windows"])
    macos: tuple[str, ...] = strings(DEFAULT_SOURCES["macos"])
    linux: tuple[str, ...] = strings(DEFAULT_SOURCES["linux"])

    def for_os(self, os_name: str) -> tuple[str, ...]:
        return getattr(self, os_name)


_TOKEN_RE = re.compile(r"\{[^{}]*\}")
_ABSOLUTE = {
    "windows": re.compile(r"^([A-Za-z]:[\\/]|[\\/]{2}[^\\/]+[\\/][^\\/]+)"),
    "macos": re.compile(r"^/"),
    "linux": re.compile(r"^/"),
}
_HOME_RE = re.compile(r"^~([\\/]|$)")
_TOKEN_START_RE = re.compile(r"^\{[^{}]*\}([\\/]|$)")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def split_token(entry: str) -> tuple[str, str] | None:
    """``("{Documents}", "/Projects")`` for a token entry, None for a path."""
    m = _TOKEN_START_RE.match(entry)
    return (entry[: entry.index("}") + 1], entry[entry.index("}") + 1 :]) if m else None


def _path_problem(os_name: str, entry: str) -> str | None:
    """Why ``entry`` is not a usable source on ``os_name`` (None when it is)."""
    if _CONTROL_RE.search(entry):
        return f"{entry!r} contains a control character."
    if ".." in re.split(r"[\\/]", entry):
        return f"{entry!r}: '..' is not allowed in a source path."
    if _TOKEN_RE.match(entry):
        if not _TOKEN_START_RE.match(entry):
            return f"{entry!r}: a known folder is followed by nothing or by a path separator."
        return None
    if entry.startswith("{"):
        return None  # an unbalanced brace, reported by the caller
    if _HOME_RE.match(entry) or _ABSOLUTE[os_name].match(entry):
        return None
    example = r"C:\Data" if os_name == "windows" else "/srv/data"
    return (
        f"{entry!r} is not an absolute path on {os_name}: use a known folder such as "
        f"{{Documents}}, ~ for the user's home, or a full path like {example}."
    )


def _check_entry(errors: Errors, os_name: str, entry: str, stored: bool) -> bool:
    path = f"sources.{os_name}"
    # Path rules came after the first revisions: a stored one is not re-judged.
    problem = None if stored else _path_problem(os_name, entry)
    if problem:
        errors.add(path, problem)
        return False
    for token in _TOKEN_RE.findall(entry):
        if token not in KNOWN_FOLDERS[os_name]:
            known = ", ".join(KNOWN_FOLDERS[os_name])
            errors.add(path, f"{token} is not a known folder on {os_name}. Known: {known}.")
    rest = _TOKEN_RE.sub("", entry)
    if "{" in rest or "}" in rest:
        errors.add(path, f"{entry!r} has an unbalanced brace.")
    return True


def parse_sources(errors: Errors, data: dict, *, stored: bool = False) -> Sources:
    raw = data.get("sources", DEFAULT_SOURCES)
    if not isinstance(raw, dict):
        errors.add("sources", "Must map each OS (windows, macos, linux) to a list of folders.")
        raw = {}
    for key in sorted(set(raw) - set(OSES)):
        errors.add("sources", f"Unknown OS {key!r}: use windows, macos or linux.")
    per_os: dict[str, tuple[str, ...]] = {}
    for os_name in OSES:
        entries = string_list(errors, f"sources.{os_name}", raw.get(os_name, []))
        for entry in entries:
            _check_entry(errors, os_name, entry, stored)
        per_os[os_name] = entries
    if not any(per_os.values()) and "sources" not in errors:
        errors.add("sources", "Back up at least one folder on at least one OS.")
    return Sources(**per_os)


def parse_excludes(errors: Errors, data: dict) -> tuple[str, ...]:
    return string_list(errors, "excludes", data.get("excludes", list(DEFAULT_PATTERNS)))
