import pytest

from agent.excludes import DEFAULT_EXCLUDES, DEFAULT_PATTERNS, is_excluded


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
        "/home/ana/Documents/.~lock.report.odt#",
        "/home/ana/Downloads/movie.mkv.part",
        "/home/ana/.cairn-snapshots/0a1b2c/file",
    ],
)
def test_excluded_by_default(path):
    assert is_excluded(path)


@pytest.mark.parametrize(
    "path",
    [
        r"C:\Users\ana\Documents\Outlook Files\archive 2024.pst",
        r"C:\Users\ana\Documents\budget.xlsx",
        r"C:\Users\ana\Documents\templates.docx",
        "/Users/ana/Documents/Caches of letters/letter.docx",  # "Caches of letters" is not "Cache"
        "/home/ana/projects/cachetools/README.md",
        "/home/ana/notes/tmp-ideas.txt",
    ],
)
def test_kept_by_default(path):
    assert not is_excluded(path)


def test_patterns_are_unique_and_explained():
    assert len(DEFAULT_PATTERNS) == len(set(DEFAULT_PATTERNS))
    assert all(why for _, why in DEFAULT_EXCLUDES)


def test_custom_patterns_and_double_star():
    assert is_excluded("/data/build/out/x.o", ["build/**/*.o"])
    assert not is_excluded("/data/build/x.c", ["build/**/*.o"])
    assert not is_excluded("/anything", [])


def test_the_engine_matcher_agrees_on_posix_paths():
    """The daemon hands these defaults to the engine's ExcludeMatcher: the
    engine must exclude the same things (names, or whole paths for "*/...")."""
    import os

    from agent.engine.walker import ExcludeMatcher

    engine = ExcludeMatcher(DEFAULT_PATTERNS)
    paths = [
        "/Users/ana/Library/Caches/com.apple.Safari/Cache.db",
        "/Users/ana/Library/Caches",
        "/Users/ana/Library/Containers/com.microsoft.Outlook/Data/Library/Caches",
        "/home/ana/.cache",
        "/home/ana/.local/share/Trash",
        "/home/ana/Documents/~$budget.xlsx",
        "/home/ana/Documents/archive.pst",
        "/home/ana/Documents/report.docx",
        "/home/ana/mail/ana.ost",
        "/home/ana/.cairn-snapshots",
        "/home/ana/snap/Cache",
    ]

    def walked_and_excluded(path: str) -> bool:
        # The walker tests each entry on its way down and skips excluded
        # directories, so a path is excluded if it or any parent matches.
        parts = path.strip("/").split("/")
        prefixes = ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(engine.excluded(p.encode(), os.path.basename(p).encode()) for p in prefixes)

    for path in paths:
        assert walked_and_excluded(path) == is_excluded(path), path
