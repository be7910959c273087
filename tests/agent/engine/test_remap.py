"""Restore onto another device: a snapshot's paths mapped onto another
user's profile and OS (agent/engine/remap.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.engine.remap import Entry, Profile, RemapError, default_home, destination, plan
from agent.policy.knownfolders import resolve_token

ANA = Profile("windows", "/C/Users/ana")
BOB_WIN = {
    "{UserProfile}": [r"C:\Users\bob"],
    "{Documents}": [r"D:\Redirected\bob\Docs"],  # folder redirection on the target
    "{Desktop}": [r"C:\Users\bob\Desktop"],
    "{Videos}": [r"C:\Users\bob\Videos"],
    "{AppDataRoaming}": [r"C:\Users\bob\AppData\Roaming"],
}


def win(token):
    return BOB_WIN.get(token, [])


def test_windows_to_windows_under_another_user_and_a_redirected_folder():
    entries = plan(
        [
            "/C/Users/ana/Documents/Taxes/2025.xlsx",
            "/c/users/ANA/desktop",  # case folded on Windows
            "/C/Users/ana/OneDrive/Documents/notes.txt",  # known folder move
            "/C/Users/ana/OneDrive/Shared/x",
            "/C/Users/ana/AppData/Roaming/App/cfg.ini",
            "/C/Users/ana/.ssh/config",
            "/D/Projects/plan.txt",
            "/C/Users/anabel/Documents/not-ana.txt",
        ],
        ANA,
    )
    assert [(e.token, e.rest) for e in entries] == [
        ("{Documents}", "/Taxes/2025.xlsx"),
        ("{Desktop}", ""),
        ("{Documents}", "/notes.txt"),
        ("{OneDrive}", "/Shared/x"),
        ("{AppDataRoaming}", "/App/cfg.ini"),
        ("{UserProfile}", "/.ssh/config"),
        ("", "/D/Projects/plan.txt"),
        ("", "/C/Users/anabel/Documents/not-ana.txt"),
    ]
    out = [destination(e, "windows", "windows", win) for e in entries]
    assert out[:3] == [
        r"D:\Redirected\bob\Docs\Taxes\2025.xlsx",
        r"C:\Users\bob\Desktop",
        r"D:\Redirected\bob\Docs\notes.txt",
    ]
    # the target has no OneDrive: kept under the profile, named, not dropped
    assert out[3] == r"C:\Users\bob\From Windows\OneDrive\Shared\x"
    assert out[4] == r"C:\Users\bob\AppData\Roaming\App\cfg.ini"
    assert out[5] == r"C:\Users\bob\.ssh\config"
    assert out[6] == r"D:\Projects\plan.txt"  # outside the profile: the same path


def test_windows_snapshot_onto_a_mac_maps_known_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "carol"))  # macOS resolves from the home
    entries = plan(
        [
            "/C/Users/ana/Documents/a.docx",
            "/C/Users/ana/Videos/trip.mp4",
            "/C/Users/ana/AppData/Roaming/App/cfg.ini",
            "/C/Users/ana/misc/b.txt",
            "/D/Projects/plan.txt",
        ],
        ANA,
    )

    def mac(token):
        return resolve_token(token, "macos")

    home = str(Path(tmp_path / "carol"))
    got = [destination(e, "windows", "macos", mac) for e in entries[:4]]
    assert got == [
        f"{home}/Documents/a.docx",
        f"{home}/Movies/trip.mp4",
        f"{home}/From Windows/AppDataRoaming/App/cfg.ini",
        f"{home}/misc/b.txt",
    ]
    with pytest.raises(RemapError, match="outside the user's profile"):
        destination(entries[4], "windows", "macos", mac)


def test_mac_to_mac_and_home_names():
    src = Profile("macos", default_home("macos", "ana"))
    (e,) = plan(["/Users/ana/Movies/m.mov"], src)
    assert (e.token, e.rest) == ("{Movies}", "/m.mov")
    dst = {"{Movies}": ["/Users/dave/Movies"], "{Home}": ["/Users/dave"]}
    assert destination(e, "macos", "macos", lambda t: dst.get(t, [])) == "/Users/dave/Movies/m.mov"
    assert default_home("windows", "ACME\\ana") == "/C/Users/ana"
    assert default_home("windows", "ana@acme.example") == "/C/Users/ana"
    for bad in ("", "ACME\\", "..", "x/.."):
        with pytest.raises(RemapError):
            default_home("windows", bad)
    with pytest.raises(RemapError):
        Profile("beos", "/home/x")
    with pytest.raises(RemapError):
        Profile("linux", "relative/home")


def test_hostile_rest_is_refused():
    bad = Entry("/C/Users/ana/Documents/../../x", "{Documents}", "/../../x")
    with pytest.raises(RemapError, match="unsafe"):
        destination(bad, "windows", "windows", win)
