"""Known folders resolved through each OS's own answer.

Windows is replayed from recorded SHGetKnownFolderPath answers of real
configurations (a plain profile, Documents/Desktop/Pictures moved into
OneDrive by its known-folder move, Documents redirected to a file server by
group policy), so the resolution is proven on any OS; Linux reads a real
user-dirs.dirs through platformdirs.
"""

import os
import sys

import pytest

from agent.policy import knownfolders as kf
from agent.policy.sources import KNOWN_FOLDERS


class Recorded:
    """A Shell answering from a recording: FOLDERID name -> path (absent = none)."""

    def __init__(self, answers: dict[str, str]):
        self.by_guid = {kf.FOLDERID[name]: path for name, path in answers.items()}
        self.asked: list[str] = []

    def known_folder_path(self, folder_id: str) -> str | None:
        self.asked.append(folder_id)
        return self.by_guid.get(folder_id)


PLAIN = {
    "Profile": r"C:\Users\alice",
    "Documents": r"C:\Users\alice\Documents",
    "Desktop": r"C:\Users\alice\Desktop",
    "Pictures": r"C:\Users\alice\Pictures",
    "Downloads": r"C:\Users\alice\Downloads",
    "Music": r"C:\Users\alice\Music",
    "Videos": r"C:\Users\alice\Videos",
    "Favorites": r"C:\Users\alice\Favorites",
    "RoamingAppData": r"C:\Users\alice\AppData\Roaming",
    "LocalAppData": r"C:\Users\alice\AppData\Local",
}
# OneDrive's known-folder move: the shell answers the new places.
ONEDRIVE_MOVED = {
    **PLAIN,
    "SkyDrive": r"C:\Users\alice\OneDrive - Contoso",
    "Documents": r"C:\Users\alice\OneDrive - Contoso\Documents",
    "Desktop": r"C:\Users\alice\OneDrive - Contoso\Desktop",
    "Pictures": r"C:\Users\alice\OneDrive - Contoso\Pictures",
}
# Folder redirection by group policy: Documents on a file server.
REDIRECTED = {**PLAIN, "Documents": r"\\files.contoso.local\home$\alice\Documents"}


def resolve(token, answers):
    return kf.resolve_token(token, "windows", Recorded(answers))


def test_windows_plain_profile():
    assert resolve("{Documents}", PLAIN) == [r"C:\Users\alice\Documents"]
    assert resolve("{UserProfile}", PLAIN) == [r"C:\Users\alice"]
    assert resolve("{AppDataRoaming}", PLAIN) == [r"C:\Users\alice\AppData\Roaming"]


def test_windows_onedrive_moved_folders_are_found_where_they_are():
    assert resolve("{Documents}", ONEDRIVE_MOVED) == [
        r"C:\Users\alice\OneDrive - Contoso\Documents"
    ]
    assert resolve("{Desktop}", ONEDRIVE_MOVED) == [r"C:\Users\alice\OneDrive - Contoso\Desktop"]
    assert resolve("{OneDrive}", ONEDRIVE_MOVED) == [r"C:\Users\alice\OneDrive - Contoso"]
    # Outlook's own folder follows Documents.
    assert resolve("{OutlookData}", ONEDRIVE_MOVED)[0].startswith(
        r"C:\Users\alice\OneDrive - Contoso\Documents"
    )


def test_windows_redirected_documents_are_found_on_the_server():
    assert resolve("{Documents}", REDIRECTED) == [r"\\files.contoso.local\home$\alice\Documents"]


def test_windows_outlook_data_lists_both_pst_homes():
    assert resolve("{OutlookData}", PLAIN) == [
        r"C:\Users\alice\Documents\Outlook Files",
        r"C:\Users\alice\AppData\Local\Microsoft\Outlook",
    ]


def test_windows_asks_the_shell_by_folderid_not_the_profile_layout(monkeypatch):
    monkeypatch.setenv("USERPROFILE", r"C:\Users\wrong")
    shell = Recorded(REDIRECTED)
    kf.resolve_token("{Documents}", "windows", shell)
    assert shell.asked == ["FDD39AD0-238F-46AF-ADB4-6C85480369C7"]  # FOLDERID_Documents


def test_windows_onedrive_not_known_to_the_shell_falls_back_to_its_variable(monkeypatch):
    monkeypatch.setenv("ONEDRIVE", r"C:\Users\alice\OneDrive")
    assert resolve("{OneDrive}", PLAIN) == [r"C:\Users\alice\OneDrive"]
    monkeypatch.delenv("ONEDRIVE")
    assert resolve("{OneDrive}", PLAIN) == []


def test_every_windows_token_has_a_folderid():
    shell = Recorded({name: rf"C:\{name}" for name in kf.FOLDERID})
    for token in KNOWN_FOLDERS["windows"]:
        assert kf.resolve_token(token, "windows", shell), token


def test_unknown_tokens_resolve_to_nothing():
    assert kf.resolve_token("{Movies}", "windows", Recorded(PLAIN)) == []
    assert kf.resolve_token("{OutlookData}", "linux") == []


def test_macos_conventions(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kf.resolve_token("{Documents}", "macos") == [str(tmp_path / "Documents")]
    assert kf.resolve_token("{Home}", "macos") == [str(tmp_path)]
    assert kf.resolve_token("{OutlookData}", "macos") == [
        str(tmp_path / "Library/Group Containers/UBF8T346G9.Office/Outlook")
    ]


@pytest.mark.skipif(sys.platform != "linux", reason="XDG user dirs are read on Linux")
def test_linux_xdg_user_dirs_are_honoured(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("XDG_CONFIG_HOME", "XDG_DOCUMENTS_DIR", "XDG_DESKTOP_DIR", "XDG_PICTURES_DIR"):
        monkeypatch.delenv(var, raising=False)
    assert kf.resolve_token("{Documents}", "linux") == [str(tmp_path / "Documents")]
    config = tmp_path / ".config"
    config.mkdir()
    (config / "user-dirs.dirs").write_text(
        '# written by xdg-user-dirs-update\nXDG_DOCUMENTS_DIR="$HOME/Dokumente"\n'
        'XDG_DESKTOP_DIR="$HOME/Schreibtisch"\n'
    )
    os.chmod(config / "user-dirs.dirs", 0o600)
    assert kf.resolve_token("{Documents}", "linux") == [str(tmp_path / "Dokumente")]
    assert kf.resolve_token("{Desktop}", "linux") == [str(tmp_path / "Schreibtisch")]
    assert kf.resolve_token("{Pictures}", "linux") == [str(tmp_path / "Pictures")]
    assert kf.resolve_token("{Home}", "linux") == [str(tmp_path)]


def test_entries_keep_their_sub_path():
    assert kf.resolve_entry(r"{Documents}\Projects", "windows", Recorded(REDIRECTED)) == [
        r"\\files.contoso.local\home$\alice\Documents\Projects"
    ]
    assert kf.resolve_entry("/srv/data", "linux") == ["/srv/data"]
