"""Restore onto another device: a snapshot's paths mapped onto the target
user's profile and OS (issue 11, "replace a device").

Two steps, so each side does what only it knows:

1. :func:`plan` (the console, or any side that knows the source device's OS
   and user profile) classifies each repository path of the snapshot: under
   a known folder of the source profile (``/C/Users/ana/Documents/x`` →
   ``{Documents}`` + ``/x``; OneDrive's "known folder move" layout
   ``…/OneDrive/Documents`` likewise), elsewhere in the profile
   (``{UserProfile}`` / ``{Home}`` + rest), or outside it (kept as it is, and
   only onto the same OS).
2. :func:`destination` (the target agent) turns a planned entry into a
   native path on its own machine, resolving the token with
   agent/policy/knownfolders.py (so a redirected Documents on the target is
   honoured). Across OSes the tokens are translated (Windows ``{Videos}`` ⇄
   macOS ``{Movies}``, ``{UserProfile}`` ⇄ ``{Home}``); a Windows-only folder
   (``{AppDataRoaming}``, ``{Favorites}``, ``{OneDrive}``, Outlook data) goes
   under the target's home in ``From <source OS>/<folder>`` rather than being
   dropped or guessed.

Paths are repository paths (agent/engine/paths.py): ``/``-separated, drive
as the first component on Windows. Comparisons of Windows paths fold case.
"""

from __future__ import annotations

import ntpath
import posixpath
from collections.abc import Callable
from dataclasses import dataclass

#: known folder -> its directory below the profile in the default layout
_LAYOUT = {
    "windows": {
        "{Documents}": "Documents",
        "{Desktop}": "Desktop",
        "{Pictures}": "Pictures",
        "{Downloads}": "Downloads",
        "{Music}": "Music",
        "{Videos}": "Videos",
        "{Favorites}": "Favorites",
        "{AppDataRoaming}": "AppData/Roaming",
        "{OneDrive}": "OneDrive",
    },
    "macos": {
        "{Documents}": "Documents",
        "{Desktop}": "Desktop",
        "{Pictures}": "Pictures",
        "{Downloads}": "Downloads",
        "{Music}": "Music",
        "{Movies}": "Movies",
    },
    "linux": {
        "{Documents}": "Documents",
        "{Desktop}": "Desktop",
        "{Pictures}": "Pictures",
        "{Downloads}": "Downloads",
        "{Music}": "Music",
        "{Videos}": "Videos",
    },
}
HOME_TOKEN = {"windows": "{UserProfile}", "macos": "{Home}", "linux": "{Home}"}
#: OneDrive's known folder move keeps these under the OneDrive folder
_ONEDRIVE_MOVED = ("{Documents}", "{Desktop}", "{Pictures}")
#: a token of one OS under its name on another
_TRANSLATE = {"{Videos}": "{Movies}", "{Movies}": "{Videos}"}


class RemapError(ValueError):
    """A path that cannot be restored onto the target (said in words)."""


@dataclass(frozen=True)
class Profile:
    os: str  # "windows" | "macos" | "linux"
    home: str  # repository path of the user's profile: /C/Users/ana, /Users/ana

    def __post_init__(self):
        if self.os not in _LAYOUT:
            raise RemapError(f"unknown OS {self.os!r}")
        if not self.home.startswith("/") or self.home.rstrip("/") == "":
            raise RemapError(f"a profile is an absolute repository path, not {self.home!r}")


def default_home(os_name: str, user: str) -> str:
    """The profile of ``user`` in the OS's default layout (``DOMAIN\\ana`` → ``ana``)."""
    name = user.replace("/", "\\").split("\\")[-1].split("@")[0].strip()
    if not name or name in (".", ".."):
        raise RemapError(f"no user name in {user!r}")
    return {"windows": f"/C/Users/{name}", "macos": f"/Users/{name}", "linux": f"/home/{name}"}[
        os_name
    ]


@dataclass(frozen=True)
class Entry:
    source: str  # the repository path in the snapshot
    token: str  # known folder token, or "" for a path outside the profile
    rest: str  # below the token ("" or "/a/b"), or the whole path when token is ""


def _key(path: str, os_name: str) -> str:
    path = path.rstrip("/") or "/"
    return path.lower() if os_name == "windows" else path


def _under(path: str, base: str, os_name: str) -> str | None:
    """``path`` below ``base`` as ``""`` or ``/rest`` (None when not under it)."""
    p, b = _key(path, os_name), _key(base, os_name)
    if p == b:
        return ""
    if p.startswith(b + "/"):
        return path.rstrip("/")[len(b) :]
    return None


def classify(path: str, src: Profile) -> Entry:
    rest = _under(path, src.home, src.os)
    if rest is None:
        return Entry(path, "", path)
    layout = _LAYOUT[src.os]
    candidates = []
    for token, sub in layout.items():
        candidates.append((token, f"{src.home}/{sub}"))
        if src.os == "windows" and token in _ONEDRIVE_MOVED:
            candidates.append((token, f"{src.home}/OneDrive/{sub}"))
    # the deepest folder wins (OneDrive/Documents before OneDrive)
    for token, base in sorted(candidates, key=lambda c: -len(c[1])):
        below = _under(path, base, src.os)
        if below is not None:
            return Entry(path, token, below)
    return Entry(path, HOME_TOKEN[src.os], rest)


def plan(paths: list[str], src: Profile) -> list[Entry]:
    """Each repository path of the snapshot, classified against the source profile."""
    return [classify(p, src) for p in paths]


Resolve = Callable[[str], list[str]]


def _join(base: str, rest: str, os_name: str) -> str:
    if not rest:
        return base
    parts = [p for p in rest.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise RemapError(f"unsafe path {rest!r}")
    mod = ntpath if os_name == "windows" else posixpath
    return mod.join(base, *parts)


def destination(
    entry: Entry, src_os: str, dst_os: str, resolve: Resolve, source_label: str = ""
) -> str:
    """The native path on the target machine for one planned entry.
    ``resolve(token)`` answers the target's known folder paths
    (``knownfolders.resolve_token`` with the target's OS)."""
    if not entry.token:
        if src_os != dst_os:
            raise RemapError(
                f"{entry.source} is outside the user's profile: it can be restored onto "
                f"another {src_os} device or into a folder, not onto {dst_os}"
            )
        return _native(entry.rest, dst_os)
    token = entry.token
    if token == HOME_TOKEN[src_os]:
        token = HOME_TOKEN[dst_os]
    elif src_os != dst_os:
        token = _TRANSLATE.get(token, token)
    if token == HOME_TOKEN[dst_os] or token in _LAYOUT[dst_os]:
        found = resolve(token)
        if found:
            return _join(found[0], entry.rest, dst_os)
    home = resolve(HOME_TOKEN[dst_os])
    if not home:
        raise RemapError(f"the target has no {HOME_TOKEN[dst_os]} folder")
    label = source_label or f"From {src_os.capitalize()}"
    folder = entry.token.strip("{}")
    return _join(home[0], f"/{label}/{folder}{entry.rest}", dst_os)


def _native(repo_path: str, os_name: str) -> str:
    if os_name != "windows":
        return repo_path
    parts = [p for p in repo_path.split("/") if p]
    if not parts or len(parts[0]) != 1:
        raise RemapError(f"{repo_path} is not a path on a Windows drive")
    return ntpath.join(parts[0] + ":\\", *parts[1:])
