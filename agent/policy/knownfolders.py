"""Known-folder tokens (``{Documents}``, ``{OutlookData}`` …) to paths on this PC.

Each OS is asked through its own API, so a folder an admin or OneDrive moved
is found where it is now:

* Windows: ``SHGetKnownFolderPath`` (shell32, through ctypes) with the
  FOLDERID of each token. Folder redirection and OneDrive's "known folder
  move" change what it answers, not the profile layout, which is why no
  path is ever built from ``%USERPROFILE%`` when the API answers.
* Linux: the XDG user directories (``XDG_*_DIR`` in the environment or
  ``user-dirs.dirs``), read by platformdirs.
* macOS: Apple's fixed home layout (``NSSearchPathForDirectoriesInDomains``
  answers ``~/Documents`` etc.; the folders cannot be relocated).

The Windows call sits behind :class:`Shell`, a one-method seam, so tests
replay recorded answers of real machines (a redirected Documents, OneDrive
known-folder move) on any OS.
"""

from __future__ import annotations

import ntpath
import os
import sys
from pathlib import Path
from typing import Protocol

from agent.policy.sources import KNOWN_FOLDERS, split_token

# FOLDERID_* (KnownFolders.h)
FOLDERID = {
    "Profile": "5E6C858F-0E22-4760-9AFE-EA3317B67173",
    "Documents": "FDD39AD0-238F-46AF-ADB4-6C85480369C7",
    "Desktop": "B4BFCC3A-DB2C-424C-B029-7FE99A87C641",
    "Pictures": "33E28130-4E1E-4676-835A-98395C3BC3BB",
    "Downloads": "374DE290-123F-4565-9164-39C4925E467B",
    "Music": "4BD8D571-6D19-48D3-BE97-422220080E43",
    "Videos": "18989B1D-99B5-455B-841C-AB7C74E4DDFC",
    "Favorites": "1777F761-68AD-4D8A-87BD-30B759FA33DD",
    "SkyDrive": "A52BBA46-E9E1-435F-B3D9-28DAA648C0F6",
    "RoamingAppData": "3EB685DB-65F9-4CF6-A03A-E3EF65729F3D",
    "LocalAppData": "F1B32785-6FBA-4FCF-9D55-7B8E7F157091",
}

# token -> (FOLDERID name, sub-path below it)
_WINDOWS = {
    "{UserProfile}": [("Profile", "")],
    "{Documents}": [("Documents", "")],
    "{Desktop}": [("Desktop", "")],
    "{Pictures}": [("Pictures", "")],
    "{Downloads}": [("Downloads", "")],
    "{Music}": [("Music", "")],
    "{Videos}": [("Videos", "")],
    "{Favorites}": [("Favorites", "")],
    "{OneDrive}": [("SkyDrive", "")],
    "{AppDataRoaming}": [("RoamingAppData", "")],
    # Outlook's default .pst locations: new profiles, then older Outlook.
    "{OutlookData}": [("Documents", "Outlook Files"), ("LocalAppData", r"Microsoft\Outlook")],
}

_MACOS = {
    "{Home}": "",
    "{Documents}": "Documents",
    "{Desktop}": "Desktop",
    "{Pictures}": "Pictures",
    "{Downloads}": "Downloads",
    "{Music}": "Music",
    "{Movies}": "Movies",
    "{OutlookData}": "Library/Group Containers/UBF8T346G9.Office/Outlook",
}

_XDG = {
    "{Documents}": "user_documents_dir",
    "{Desktop}": "user_desktop_dir",
    "{Pictures}": "user_pictures_dir",
    "{Downloads}": "user_downloads_dir",
    "{Music}": "user_music_dir",
    "{Videos}": "user_videos_dir",
}


class Shell(Protocol):
    def known_folder_path(self, folder_id: str) -> str | None:
        """The folder's current path, or None when Windows has none for it."""


class Win32Shell:
    """The real ``SHGetKnownFolderPath`` (Windows only)."""

    def known_folder_path(self, folder_id: str) -> str | None:  # pragma: no cover - Windows
        import ctypes
        import uuid
        from ctypes import wintypes

        class GUID(ctypes.Structure):
            _fields_ = [
                ("Data1", wintypes.DWORD),
                ("Data2", wintypes.WORD),
                ("Data3", wintypes.WORD),
                ("Data4", ctypes.c_ubyte * 8),
            ]

        u = uuid.UUID(folder_id)
        guid = GUID(u.time_low, u.time_mid, u.time_hi_version, (ctypes.c_ubyte * 8)(*u.bytes[8:]))
        get = ctypes.windll.shell32.SHGetKnownFolderPath  # type: ignore[attr-defined]
        get.argtypes = [
            ctypes.POINTER(GUID),
            wintypes.DWORD,
            wintypes.HANDLE,
            ctypes.POINTER(ctypes.c_wchar_p),
        ]
        free = ctypes.windll.ole32.CoTaskMemFree  # type: ignore[attr-defined]
        free.argtypes, free.restype = [ctypes.c_void_p], None
        out = ctypes.c_wchar_p()
        # KF_FLAG_DONT_VERIFY (0x4000): a folder not created yet is still named.
        result = get(ctypes.byref(guid), 0x4000, None, ctypes.byref(out))
        try:
            return out.value if result == 0 else None
        finally:
            free(out)


def os_name() -> str:
    return {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")


def _windows(token: str, shell: Shell) -> list[str]:
    out = []
    for name, sub in _WINDOWS.get(token, []):
        base = shell.known_folder_path(FOLDERID[name])
        if base is None and name == "SkyDrive":
            base = os.environ.get("ONEDRIVE")  # set by OneDrive, even before the shell knows it
        if base:
            out.append(ntpath.join(base, sub) if sub else base)
    return out


def _linux(token: str) -> list[str]:
    import platformdirs

    if token == "{Home}":
        return [str(Path.home())]
    getter = _XDG.get(token)
    return [getattr(platformdirs, getter)()] if getter else []


def _macos(token: str) -> list[str]:
    sub = _MACOS.get(token)
    if sub is None:
        return []
    return [str(Path.home() / sub) if sub else str(Path.home())]


def resolve_token(token: str, system: str | None = None, shell: Shell | None = None) -> list[str]:
    """Paths of a known folder on this PC ([] for a token unknown on its OS)."""
    system = system or os_name()
    if token not in KNOWN_FOLDERS[system]:
        return []
    if system == "windows":
        return _windows(token, shell or Win32Shell())
    if system == "macos":
        return _macos(token)
    return _linux(token)


def resolve_entry(entry: str, system: str | None = None, shell: Shell | None = None) -> list[str]:
    """A source entry as candidate paths: a token with its sub-path, or the entry itself."""
    parts = split_token(entry)
    if parts is None:
        return [entry]
    token, rest = parts
    return [base + rest for base in resolve_token(token, system, shell)]
