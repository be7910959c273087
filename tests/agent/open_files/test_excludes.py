"""The policy's default excludes (agent/policy/sources.py), as the engine's
ExcludeMatcher applies them: the one exclude language (a second, unused one
lived in agent/excludes.py and was removed, issue 18)."""

import ntpath
import posixpath

import pytest

from agent.engine.paths import POSIX, WINDOWS, to_repo
from agent.engine.walker import ExcludeMatcher
from agent.policy.sources import DEFAULT_EXCLUDES, DEFAULT_PATTERNS


def excluded_by_default(native: str) -> bool:
    """As the walker decides: it tests each entry on its way down and skips
    excluded folders, so a path is excluded if it or any folder above matches."""
    flavour = WINDOWS if ntpath.splitdrive(native)[0] else POSIX
    matcher = ExcludeMatcher(DEFAULT_PATTERNS, flavour)
    repo = to_repo(native, flavour).decode()
    parts = repo.strip("/").split("/")
    prefixes = ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(matcher.excluded(p.encode(), posixpath.basename(p).encode()) for p in prefixes)


@pytest.mark.parametrize(
    "path",
    [
        r"C:\Users\ana\Documents\~$budget.xlsx",
        r"C:\Users\ana\AppData\Local\Microsoft\Outlook\ana@example.com.ost",
        r"C:\Users\ana\AppData\Local\Temp\x\y.dat",
        r"C:\Users\ana\AppData\Local\Google\Chrome\User Data\Default\Cache\Cache_Data\f_0001",
        r"C:\Users\ana\AppData\Local\Microsoft\Edge\User Data\Profile 1\Code Cache\js\index",
        r"C:\Users\ana\AppData\Roaming\Mozilla\Firefox\Profiles\ab.default\cache2\entries\X",
        r"C:\pagefile.sys",
        "/Users/ana/Library/Caches/com.apple.Safari/Cache.db",
        "/Users/ana/Library/Containers/com.microsoft.Outlook/Data/Library/Caches/x",
        "/home/ana/.cache/pip/http/a",
        "/home/ana/.local/share/Trash/files/x",
        "/home/ana/Documents/.~lock.report.odt#",
        "/home/ana/Downloads/movie.mkv.part",
        "/home/ana/.cairn-snapshots/0a1b2c/file",
        "/home/ana/snap/Cache",
    ],
)
def test_excluded_by_default(path):
    assert excluded_by_default(path)


@pytest.mark.parametrize(
    "path",
    [
        r"C:\Users\ana\Documents\Outlook Files\archive 2024.pst",
        r"C:\Users\ana\Documents\budget.xlsx",
        r"C:\Users\ana\Documents\templates.docx",
        "/Users/ana/Documents/Caches of letters/letter.docx",  # "Caches of letters" is not "Cache"
        "/home/ana/projects/cachetools/README.md",
        "/home/ana/notes/tmp-ideas.txt",
        "/home/ana/Documents/archive.pst",
    ],
)
def test_kept_by_default(path):
    assert not excluded_by_default(path)


def test_patterns_are_unique_and_explained():
    assert len(DEFAULT_PATTERNS) == len(set(DEFAULT_PATTERNS))
    assert all(why for _, why in DEFAULT_EXCLUDES)
