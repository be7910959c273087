"""Windows paths in the engine, tested on Linux behind the flavour seam.

``agent.engine.paths`` maps native paths to repository paths and back with
pure functions per flavour. The engine reads the flavour from
``paths.NATIVE`` at the start of each run; the tests below switch it to
Windows. For backups a temporary directory stands in for the drive: the
``translate`` hook (which on Windows maps to the VSS device) maps
``C:\\...`` into it, and the I/O separator is ``/`` (``WINDOWS_HERE``).
Restores with the real ``\\`` separator run in a temporary working
directory, where every Windows path becomes one flat Linux file name."""

from __future__ import annotations

import dataclasses
import ntpath
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import cli
from agent.engine import paths
from agent.engine.backup import run_backup
from agent.engine.errors import EngineError
from agent.engine.paths import POSIX, WINDOWS
from agent.engine.restore import IncludeMatcher, run_restore
from agent.engine.walker import ExcludeMatcher
from tests.agent.conftest import PASSPHRASE
from tests.agent.helpers import read

#: Windows rules, with a Linux directory standing in for the drive
WINDOWS_HERE = dataclasses.replace(WINDOWS, sep=b"/")
OLD = time.time() - 3600


# --- the mapping ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "native, repo",
    [
        ("C:\\Users\\ana\\Doc.txt", b"/C/Users/ana/Doc.txt"),
        ("c:\\users\\ana", b"/C/users/ana"),
        ("C:\\", b"/C"),
        ("d:", b"/D"),
        ("C:/Users/ana/", b"/C/Users/ana"),
        ("C:\\a\\.\\b\\..\\c", b"/C/a/c"),
        ("\\\\?\\C:\\Users\\ana", b"/C/Users/ana"),
        ("\\\\Srv\\Share\\dept\\x.xlsx", b"/UNC/srv/share/dept/x.xlsx"),
        ("\\\\?\\UNC\\srv\\share\\x", b"/UNC/srv/share/x"),
        ("\\\\srv\\share", b"/UNC/srv/share"),
    ],
)
def test_windows_paths_map_to_repository_paths(native, repo):
    assert paths.to_repo(native, WINDOWS) == repo


@pytest.mark.parametrize(
    "bad",
    ["C:foo", "\\foo", "foo\\bar", "\\\\srv", "\\\\?\\GLOBALROOT\\Device\\HarddiskVolume1\\x"],
)
def test_paths_without_a_drive_or_share_are_refused(bad):
    with pytest.raises(ValueError):
        paths.to_repo(bad, WINDOWS)


def test_repository_paths_back_to_windows():
    assert paths.to_native(b"/C/Users/ana/Doc.txt", WINDOWS) == "C:\\Users\\ana\\Doc.txt"
    assert paths.to_native(b"/C", WINDOWS) == "C:\\"
    assert paths.to_native(b"/UNC/srv/share/x", WINDOWS) == "\\\\srv\\share\\x"
    assert paths.to_native(b"/UNC/srv/share", WINDOWS) == "\\\\srv\\share\\"
    for none in (b"", b"/UNC", b"/UNC/srv", b"/home/ana", b"/CC/x"):
        assert paths.to_native(none, WINDOWS) is None
    assert paths.native_display(b"/home/ana", WINDOWS) == "/home/ana"


def test_posix_paths_are_their_own_repository_paths():
    assert paths.to_repo("/home/ana/../ana/Doc.txt", POSIX) == b"/home/ana/Doc.txt"
    assert paths.to_repo("//home//ana/", POSIX) == b"/home/ana"
    assert paths.to_repo(b"/x/\xff", POSIX) == b"/x/\xff"
    assert paths.to_repo("rel", POSIX) == os.fsencode(os.path.abspath("rel"))
    assert paths.to_native(b"/home/ana", POSIX) == "/home/ana"


def test_long_paths_get_the_extended_prefix_on_the_way_out():
    deep = b"C:\\" + b"\\".join([b"folder"] * 40)
    assert paths.long_path(deep, WINDOWS) == b"\\\\?\\" + deep
    unc = b"\\\\srv\\share\\" + b"x" * 250
    assert paths.long_path(unc, WINDOWS) == b"\\\\?\\UNC\\srv\\share\\" + b"x" * 250
    assert paths.long_path(b"C:\\short", WINDOWS) == b"C:\\short"
    shadow = b"\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy3\\" + b"y" * 250
    assert paths.long_path(shadow, WINDOWS) == shadow
    # join_native adds it when a path grows long, and never twice
    p = b"C:\\base"
    for _ in range(60):
        p = paths.join_native(p, b"folder", WINDOWS)
    assert p.startswith(b"\\\\?\\C:\\base\\folder\\") and p.count(b"\\\\?\\") == 1
    assert paths.strip_extended_bytes(p) == b"C:\\base" + b"\\folder" * 60
    assert paths.join_native(b"C:\\", b"x", WINDOWS) == b"C:\\x"
    assert paths.drive_root(b"\\\\?\\UNC\\srv\\share\\x", WINDOWS) == b"\\\\?\\UNC\\srv\\share"


_WIN_NAME_CHARS = st.characters(
    blacklist_categories=("Cs",), blacklist_characters='\\/:*?"<>|\0', min_codepoint=32
)
_win_name = (
    st.text(_WIN_NAME_CHARS, min_size=1, max_size=12)
    .map(lambda s: s.strip(" ."))
    .filter(lambda s: s and s not in (".", ".."))
)


@settings(max_examples=300, deadline=None)
@given(
    drive=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCZ"),
    parts=st.lists(_win_name, max_size=6),
    extended=st.booleans(),
)
def test_drive_paths_round_trip(drive, parts, extended):
    native = drive + ":\\" + "\\".join(parts)
    repo = paths.to_repo(("\\\\?\\" if extended else "") + native, WINDOWS)
    assert repo.count(b"/") == 1 + len(parts)
    back = paths.to_native(repo, WINDOWS)
    assert back == drive.upper() + native[1:]
    assert paths.to_repo(back, WINDOWS) == repo
    assert paths.strip_extended(os.fsdecode(paths.long_path(os.fsencode(back), WINDOWS))) == back


@settings(max_examples=200, deadline=None)
@given(server=_win_name, share=_win_name, parts=st.lists(_win_name, max_size=5))
def test_unc_paths_round_trip(server, share, parts):
    native = "\\\\" + server + "\\" + share + "\\" + "\\".join(parts)
    repo = paths.to_repo(native, WINDOWS)
    assert repo.startswith(b"/UNC/")
    back = paths.to_native(repo, WINDOWS)
    assert back.lower() == ntpath.normpath(native).lower().rstrip("\\") + ("" if parts else "\\")
    assert paths.to_repo(back, WINDOWS) == repo
    assert paths.to_repo("\\\\?\\UNC\\" + native[2:], WINDOWS) == repo


_posix_name = st.binary(min_size=1, max_size=16).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)


def _escape_free(name: bytes) -> bool:
    text = name.decode("utf-8", "surrogateescape")
    return not any(0xF000 < ord(c) <= 0xF0FF for c in text)


@settings(max_examples=500, deadline=None)
@given(_posix_name.filter(_escape_free))
def test_posix_names_escape_onto_windows_and_back(name):
    escaped = paths.escape_name(name, WINDOWS)
    text = escaped.decode("utf-8")  # valid UTF-8: every Windows API can take it
    assert not set(text) & set('\\/:*?"<>|') and all(ord(c) >= 32 for c in text)
    assert text[-1] not in " ."
    assert not paths._RESERVED.match(text)
    assert paths.unescape_name(escaped) == name
    assert paths.escape_name(name, POSIX) == name


def test_escape_examples():
    esc = paths.escape_name
    assert esc(b"report.docx", WINDOWS) == b"report.docx"
    assert esc(b"a:b", WINDOWS).decode() == "a\uf03ab"
    assert esc(b"CON", WINDOWS).decode() == "CO\uf04e"
    assert esc(b"nul.tar.gz", WINDOWS).decode() == "nu\uf06c.tar.gz"
    assert esc(b"x.", WINDOWS).decode() == "x\uf02e"
    assert esc(b"\xff", WINDOWS).decode() == "\uf0ff"
    # a Windows name with a lone surrogate (as Python encodes it) stays as it is
    lone = "a\udc80".encode("utf-8", "surrogatepass")
    assert esc(lone, WINDOWS) == lone


def test_names_that_are_not_utf8_are_escaped_onto_macos(monkeypatch):
    assert paths.escape_name(b"bad\xff", POSIX) == b"bad\xff"  # Linux holds any bytes
    monkeypatch.setattr(paths, "target_needs_utf8", lambda: True)
    assert paths.escape_name(b"bad\xff", POSIX).decode() == "bad\uf0ff"
    assert paths.escape_name(b"a:b\\c", POSIX) == b"a:b\\c"
    assert paths.unescape_name(paths.escape_name(b"\xfe\xffx", POSIX)) == b"\xfe\xffx"


# --- patterns -------------------------------------------------------------------------------
def test_excludes_are_case_insensitive_and_native_on_windows():
    m = ExcludeMatcher(["*.TMP", "C:\\Users\\*\\AppData\\Local\\Temp", "node_modules"], WINDOWS)
    assert m.excluded(b"/C/Users/ana/x.tmp", b"x.tmp")
    assert m.excluded(b"/C/users/ANA/appdata/local/temp", b"temp")
    assert m.excluded(b"/C/x/Node_Modules", b"Node_Modules")
    assert not m.excluded(b"/C/Users/ana/AppData/Local/Templates", b"Templates")
    assert not m.excluded(b"/D/Users/ana/AppData/Local/Temp", b"Temp")
    posix = ExcludeMatcher(["*.TMP"], POSIX)
    assert not posix.excluded(b"/home/ana/x.tmp", b"x.tmp")
    unc = ExcludeMatcher(["\\\\SRV\\Share\\scratch"], WINDOWS)
    assert unc.excluded(b"/UNC/srv/share/scratch", b"scratch")


def test_default_excludes_on_windows_paths():
    from agent.policy.sources import DEFAULT_PATTERNS

    m = ExcludeMatcher(DEFAULT_PATTERNS, WINDOWS)
    assert m.excluded(b"/C/Users/ana/AppData/Local/Temp", b"Temp")
    assert m.excluded(b"/C/Users/ana/Documents/~$Budget.xlsx", b"~$Budget.xlsx")
    assert not m.excluded(b"/C/Users/ana/Documents/archive.PST", b"archive.PST")


def test_includes_on_windows_snapshots():
    m = IncludeMatcher(["c:\\users\\ana\\documents", "*.DOCX"], WINDOWS)
    assert m.matches(b"/C/Users/Ana/Documents")
    assert m.matches(b"/C/Users/Bob/x.docx")
    assert not m.matches(b"/C/Users/Ana/Pictures")
    assert not IncludeMatcher(["*.DOCX"]).matches(b"/home/ana/x.docx")


# --- backup through the seam ------------------------------------------------------------------
@pytest.fixture
def drive_c(tmp_path, monkeypatch):
    """A Windows machine: C:\\ is tmp/drive_c, \\\\srv\\share is tmp/unc."""
    monkeypatch.setattr(paths, "NATIVE", WINDOWS_HERE)
    root = tmp_path / "drive_c"
    docs = root / "Users" / "Ana" / "Documents"
    (docs / "Sub").mkdir(parents=True)
    (docs / "a.txt").write_bytes(b"alpha\n" * 100)
    (docs / "Sub" / "b.txt").write_bytes(b"beta")
    (docs / "scratch.TMP").write_bytes(b"tmp")
    (docs / "Cache").mkdir()
    (docs / "Cache" / "c").write_bytes(b"cache")
    (tmp_path / "unc" / "dept").mkdir(parents=True)
    (tmp_path / "unc" / "dept" / "q3.xlsx").write_bytes(b"numbers")
    for dirpath, dirnames, filenames in os.walk(tmp_path):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (OLD, OLD))
    calls = []

    def translate(native: str) -> str:
        calls.append(native)
        if native.startswith("\\\\srv\\share\\"):
            return str(tmp_path / "unc" / native[len("\\\\srv\\share\\") :].replace("\\", "/"))
        assert native[:3] == "C:\\", native
        return str(root / native[3:].replace("\\", "/"))

    translate.calls = calls
    return translate


def _tree(repo, snap) -> dict[bytes, dict]:
    return dict(repo.walk(snap.tree))


def test_windows_backup_records_drive_paths_with_on_disk_case(repo, drive_c):
    result = run_backup(
        repo,
        ["c:\\users\\ana\\documents"],  # the policy's spelling, not the disk's
        excludes=["*.tmp", "C:\\Users\\*\\Documents\\cache"],
        translate=drive_c,
    )
    snap = result.snapshot
    assert snap.paths == ["C:\\users\\ana\\documents"]
    assert snap.path_flavour == "windows"
    tree = _tree(repo, snap)
    assert set(tree) == {
        b"/C",
        b"/C/Users",
        b"/C/Users/Ana",
        b"/C/Users/Ana/Documents",
        b"/C/Users/Ana/Documents/a.txt",
        b"/C/Users/Ana/Documents/Sub",
        b"/C/Users/Ana/Documents/Sub/b.txt",
    }
    # translate saw native Windows paths only (the sources and the levels above)
    assert "C:\\" in drive_c.calls and "C:\\Users\\Ana\\Documents" in drive_c.calls
    assert all(c[1:3] == ":\\" for c in drive_c.calls)
    # another spelling of the same source is the same snapshot series
    again = run_backup(repo, ["C:\\Users\\Ana\\Documents"], excludes=["*.tmp"], translate=drive_c)
    assert again.parent == result.snapshot_id
    assert again.stats.files_unchanged >= 2 and again.stats.files_read == 1  # Cache/c


def test_windows_backup_of_a_unc_share(repo, drive_c):
    result = run_backup(repo, ["\\\\SRV\\share\\dept", "C:\\Users\\Ana"], translate=drive_c)
    assert result.snapshot.paths == ["\\\\srv\\share\\dept", "C:\\Users\\Ana"]
    tree = _tree(repo, result.snapshot)
    assert tree[b"/UNC"].type == "dir" and tree[b"/UNC"].mtime_ns is None
    assert tree[b"/UNC/srv"].type == "dir"
    assert tree[b"/UNC/srv/share/dept/q3.xlsx"].size == 7
    assert b"/C/Users/Ana/Documents/Sub/b.txt" in tree
    assert not result.warnings


def test_missing_windows_source_is_a_warning_with_its_native_path(repo, drive_c):
    result = run_backup(repo, ["C:\\Users\\Ana\\Gone"], translate=drive_c)
    assert [(w.path, w.kind) for w in result.warnings] == [("C:\\Users\\Ana\\Gone", "vanished")]


def test_relative_or_driveless_source_is_refused_on_windows(repo, drive_c):
    with pytest.raises(EngineError, match="cannot back up"):
        run_backup(repo, ["Users\\Ana"], translate=drive_c)


# --- restore --------------------------------------------------------------------------------
def _windows_snapshot(repo, drive_c):
    return run_backup(repo, ["C:\\Users\\Ana\\Documents"], translate=drive_c).snapshot


def test_windows_snapshot_restored_under_a_target_on_windows(repo, drive_c, tmp_path):
    snap = _windows_snapshot(repo, drive_c)
    target = tmp_path / "D_restore"
    result = run_restore(repo, snap, str(target), include=["c:\\users\\ana\\documents\\SUB"])
    assert result.ok, result.errors
    assert (target / "C/Users/Ana/Documents/Sub/b.txt").read_bytes() == b"beta"
    assert not (target / "C/Users/Ana/Documents/a.txt").exists()


def test_windows_snapshot_restored_onto_linux(repo, drive_c, tmp_path, monkeypatch):
    snap = _windows_snapshot(repo, drive_c)
    monkeypatch.setattr(paths, "NATIVE", POSIX)
    target = tmp_path / "r"
    result = run_restore(repo, snap.id, str(target))
    assert result.ok, result.errors
    assert (target / "C/Users/Ana/Documents/a.txt").read_bytes() == b"alpha\n" * 100
    for in_place in ("/", None):
        with pytest.raises(EngineError, match="in place"):
            run_restore(repo, snap, in_place)


def test_linux_snapshot_restored_onto_windows_escapes_names(repo, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    names = [b"a:b", b"CON", b"trailing.", b"back\\slash", b"bad\xff", b"Readme", b"README"]
    for n in names:
        with open(os.path.join(os.fsencode(src), n), "wb") as f:
            f.write(n)
    snap = run_backup(repo, [str(src)]).snapshot
    assert snap.path_flavour == "posix"
    monkeypatch.setattr(paths, "NATIVE", WINDOWS_HERE)
    with pytest.raises(EngineError, match="in place"):
        run_restore(repo, snap, "\\")
    target = tmp_path / "D_restore"
    result = run_restore(repo, snap, str(target))
    assert result.ok, result.errors
    restored_dir = os.fsencode(target) + os.fsencode(src)
    got = {n: read(os.path.join(restored_dir, n)) for n in os.listdir(restored_dir)}
    by_content = {v: k.decode("utf-8") for k, v in got.items()}
    assert by_content[b"a:b"] == "a\uf03ab"
    assert by_content[b"CON"] == "CO\uf04e"
    assert by_content[b"trailing."] == "trailing\uf02e"
    assert by_content[b"back\\slash"] == "back\uf05cslash"
    assert by_content[b"bad\xff"] == "bad\uf0ff"
    assert {by_content[b"Readme"], by_content[b"README"]} == {
        "README",
        "Readme~2",
    }  # sorted by bytes: README first
    assert [w.kind for w in result.warnings] == ["renamed"]
    assert all(paths.unescape_name(k) in names for k in got if b"~2" not in k)


def test_in_place_restore_to_the_original_drive_with_backslashes(
    repo, drive_c, tmp_path, monkeypatch
):
    """The real Windows flavour (``\\`` separators, drive letters): run in an
    empty working directory, each Windows path is one flat Linux name."""
    snap = _windows_snapshot(repo, drive_c)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(paths, "NATIVE", WINDOWS)
    result = run_restore(repo, snap, None, include=["*.txt"])  # None: in place (the daemon)
    assert result.ok, result.errors
    assert (work / "C:\\Users\\Ana\\Documents\\a.txt").read_bytes() == b"alpha\n" * 100
    assert (work / "C:\\Users\\Ana\\Documents\\Sub\\b.txt").read_bytes() == b"beta"
    assert not any(n in ("C:", "C:\\") for n in os.listdir(work))  # the drive is not "made"
    result = run_restore(repo, snap, "D:\\restore", include=["b.txt"])
    assert result.ok, result.errors
    assert (work / "D:\\restore\\C\\Users\\Ana\\Documents\\Sub\\b.txt").read_bytes() == b"beta"
    assert result.target == "D:\\restore"
    result = run_restore(repo, snap, "d:\\", include=["a.txt"])
    assert result.ok, result.errors
    assert (work / "d:\\C\\Users\\Ana\\Documents\\a.txt").read_bytes() == b"alpha\n" * 100
    assert result.target == "d:\\"


def test_ls_shows_and_takes_native_paths_of_a_windows_snapshot(
    repo, drive_c, tmp_path, monkeypatch, capsys
):
    _windows_snapshot(repo, drive_c)
    monkeypatch.setattr(paths, "NATIVE", POSIX)  # listing from another OS
    monkeypatch.setenv("CAIRN_PASSWORD", PASSPHRASE)
    repo_dir = str(tmp_path / "repo")
    assert cli.main(["ls", "-r", repo_dir, "latest", "c:\\users\\ana\\documents\\sub"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "C:\\Users\\Ana\\Documents\\Sub",
        "C:\\Users\\Ana\\Documents\\Sub\\b.txt",
    ]
    assert cli.main(["ls", "-r", repo_dir, "latest", "/C/Users/Ana/Documents/Sub"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_restore_without_pwrite_or_descriptor_metadata_as_on_windows(repo, tmp_path, monkeypatch):
    """Windows has no os.pwrite and no chmod/utime on a descriptor: the
    restore writes with lseek + write and sets metadata by path."""
    from agent.engine import restore_write as restore_mod

    monkeypatch.setattr(restore_mod, "_PWRITE", None)
    monkeypatch.setattr(restore_mod, "_META_BY_FD", False)
    src = tmp_path / "src"
    src.mkdir()
    big = os.urandom(200_000) + b"\n\r\n" * 1000  # several chunks; CR/LF bytes kept as is
    (src / "big.bin").write_bytes(big)
    os.utime(src / "big.bin", (OLD, OLD))
    os.chmod(src / "big.bin", 0o640)
    snap = run_backup(repo, [str(src)]).snapshot
    target = tmp_path / "r"
    (target / str(src).lstrip("/")).mkdir(parents=True)
    (target / str(src).lstrip("/") / "big.bin").write_bytes(b"old")  # replaced (os.replace)
    result = run_restore(repo, snap, str(target), overwrite="always")
    assert result.ok, result.errors
    out = target / str(src).lstrip("/") / "big.bin"
    assert out.read_bytes() == big
    assert int(out.stat().st_mtime) == int(OLD) and out.stat().st_mode & 0o777 == 0o640


def test_windows_junctions_are_recorded_like_symlinks_and_not_followed(repo, drive_c, monkeypatch):
    """Profiles hold legacy junctions (``Application Data`` -> ``AppData\\Roaming``,
    some looping); lstat reports them as directories with a reparse tag."""
    docs = drive_c("C:\\Users\\Ana\\Documents")
    junction = os.path.join(docs, "My Music")
    os.mkdir(junction)
    with open(os.path.join(junction, "inside.txt"), "wb") as f:
        f.write(b"seen through the junction")
    real_lstat, real_readlink = os.lstat, os.readlink

    class Tagged:
        def __init__(self, st):
            self._st = st
            self.st_reparse_tag = 0xA0000003

        def __getattr__(self, name):
            return getattr(self._st, name)

    def lstat(p, *a, **kw):
        st = real_lstat(p, *a, **kw)
        return Tagged(st) if os.fsdecode(p) == junction else st

    def readlink(p, *a, **kw):
        if os.fsdecode(p) == junction:
            return os.fsencode("C:\\Users\\Ana\\Music")
        return real_readlink(p, *a, **kw)

    monkeypatch.setattr(os, "lstat", lstat)
    monkeypatch.setattr(os, "readlink", readlink)
    # With a progress callback the totals scanner walks too; its DirEntry
    # carries the reparse tag on Windows only, so that check is stood in for.
    from agent.engine import walker

    monkeypatch.setattr(walker, "junction", lambda e: e.name == b"My Music")
    seen = []
    result = run_backup(repo, ["C:\\Users\\Ana"], translate=drive_c, progress=seen.append)
    assert all((p.files_total or 0) <= 4 for p in seen)  # a.txt, b.txt, scratch.TMP, Cache/c
    tree = _tree(repo, result.snapshot)
    node = tree[b"/C/Users/Ana/Documents/My Music"]
    assert node.type == "symlink" and node.target == b"C:\\Users\\Ana\\Music"
    assert b"/C/Users/Ana/Documents/My Music/inside.txt" not in tree
