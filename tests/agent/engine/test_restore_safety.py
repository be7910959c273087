"""A repository written by a modified agent cannot make restore write outside
its target (issue 10, "Never trust what a PC wrote").

The hostile trees are built the way such an agent would: with the engine's
own pack writer and the repository key, around file content from a real
backup. Every test restores into ``box/target`` and proves that nothing
appears anywhere else under ``box`` (``box/outside`` is where the planted
links point)."""

from __future__ import annotations

import os
import stat

import pytest

from agent.engine import compress, paths
from agent.engine.backup import run_backup
from agent.engine.check import run_check
from agent.engine.errors import UnsafeName
from agent.engine.pack import TREE, PackWriter, pack_key
from agent.engine.paths import POSIX, WINDOWS
from agent.engine.restore import run_restore
from agent.engine.snapshot import Snapshot, utcnow_iso
from agent.engine.tree import encode_name, encode_tree
from tests.agent.conftest import cli_env, run_cli

PAYLOAD = b"written by a hostile agent\n"
GOOD = b"an honest file\n"


# --- building hostile repositories ------------------------------------------------------
def store_tree(repo, nodes: list[dict]) -> str:
    """Seal one tree blob into a pack of its own and index it, as backup does."""
    data = encode_tree(nodes)
    blob_id = repo.blob_id(data)
    done = []
    writer = PackWriter(repo.cipher, 64 * 1024, len(data) + 1024, done.append, buffers=1)
    writer.add(blob_id, TREE, compress.NONE, len(data), data)
    writer.flush()
    packs = {}
    for pack in done:
        repo.store.put(pack_key(pack.id), bytes(pack.data))
        repo.index.add_pack(pack.id, pack.entries)
        packs[pack.id] = pack.entries
        pack.release()
    repo.save_index(packs)
    return blob_id.hex()


def entry(name: bytes, kind: str, **fields) -> dict:
    node = {"type": kind, "mode": 0o644 if kind == "file" else 0o755, **fields}
    encode_name(name, node)
    return node


def file_node(name: bytes, template: dict) -> dict:
    """A file entry with real, stored content (the chunks of ``template``)."""
    return entry(name, "file", size=template["size"], content=template["content"])


def dir_node(repo, name: bytes, children: list[dict], **fields) -> dict:
    return entry(name, "dir", subtree=store_tree(repo, children), **fields)


def link_node(name: bytes, target) -> dict:
    node = entry(name, "symlink", mode=0o777)
    encode_name(os.fsencode(target), node, "target")
    return node


def save_snapshot(repo, root: list[dict], flavour: str = "posix") -> Snapshot:
    snap = Snapshot(
        tree=store_tree(repo, root),
        paths=["/"],
        hostname="hostile",
        time=utcnow_iso(),
        path_flavour=flavour,
    )
    repo.save_snapshot(snap)
    return snap


@pytest.fixture
def contents(repo, tmp_path) -> dict[str, dict]:
    """File nodes of a real backup: their chunks are in the repository."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "payload").write_bytes(PAYLOAD)
    (src / "good.txt").write_bytes(GOOD)
    run_backup(repo, [str(src)])
    return {
        os.path.basename(p).decode(): n.to_dict()
        for p, n in repo.walk(repo.find_snapshot("latest").tree)
        if n.type == "file"
    }


@pytest.fixture
def box(tmp_path):
    box = tmp_path / "box"
    (box / "outside").mkdir(parents=True)
    os.chmod(box / "outside", 0o755)
    return box


def escaped(box) -> list[str]:
    """Everything under ``box`` but outside ``box/target`` (and the empty
    ``box/outside`` itself)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(box):
        rel = os.path.relpath(dirpath, box)
        if rel == "target" or rel.startswith("target" + os.sep):
            continue
        found += [os.path.join(rel, n) for n in filenames]
        found += [
            os.path.join(rel, n)
            for n in dirnames
            if (rel, n) not in ((".", "target"), (".", "outside"))
        ]
    return found


HOSTILE = [b"../evil", b"a/b", b"..", b".", b"", b"x\x00y"]


def hostile_root(repo, contents) -> list[dict]:
    payload = contents["payload"]
    return [
        file_node(b"../evil", payload),
        file_node(b"a/b", payload),
        dir_node(repo, b"..", [file_node(b"evil-in-dotdot", payload)]),
        dir_node(repo, b".", [file_node(b"evil-in-dot", payload)]),
        file_node(b"", payload),
        file_node(b"x\x00y", payload),
        dir_node(repo, b"a", [file_node(b"c", contents["good.txt"])]),
        file_node(b"good.txt", contents["good.txt"]),
    ]


# --- the one gate ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("flavour", [POSIX, WINDOWS])
def test_safe_name_refuses_names_that_are_not_one_component(name, flavour):
    with pytest.raises(UnsafeName) as err:
        paths.safe_name(name, flavour, POSIX)
    assert err.value.name == name
    assert "\x00" not in str(err.value)  # printable in logs and reports


@pytest.mark.parametrize("name", [b"C:evil", b"..\\evil", b"a\\b", b"C:\\Windows"])
def test_windows_snapshots_cannot_hold_drive_or_backslash_names(name):
    for dst in (POSIX, WINDOWS):
        with pytest.raises(UnsafeName):
            paths.safe_name(name, WINDOWS, dst)
    # the same bytes are an ordinary (if odd) Linux name, escaped onto Windows
    assert paths.safe_name(name, POSIX, POSIX) == name
    onto_windows = paths.safe_name(name, POSIX, WINDOWS)
    assert b"\\" not in onto_windows and b":" not in onto_windows
    assert paths.unescape_name(onto_windows) == name


def test_ordinary_names_pass_unchanged():
    for name in (b"...", b"..x", b".hidden", b"caf\xc3\xa9", b"bad\xff", b"new\nline"):
        assert paths.safe_name(name, POSIX, POSIX) == name


# --- restore --------------------------------------------------------------------------------
def test_hostile_names_write_nothing_outside_and_the_rest_is_restored(repo, contents, box):
    save_snapshot(repo, hostile_root(repo, contents))
    target = box / "target"
    res = run_restore(repo, "latest", target)
    assert escaped(box) == []
    assert (target / "good.txt").read_bytes() == GOOD
    assert (target / "a" / "c").read_bytes() == GOOD
    assert sorted(os.listdir(target)) == ["a", "good.txt"]
    assert sorted(os.listdir(target / "a")) == ["c"]
    assert not res.ok
    unsafe = [e for e in res.errors if e.kind == "unsafe-name"]
    assert len(unsafe) == len(HOSTILE) == len(res.errors)
    assert {e.path for e in unsafe} == {"/../evil", "/a/b", "/..", "/.", "/", "/x\\x00y"}
    assert all("not restored: unsafe name" in e.message for e in unsafe)
    assert res.stats.files == 2


def test_cli_restore_of_hostile_names_fails_loudly_and_writes_nothing_outside(repo, contents, box):
    save_snapshot(repo, hostile_root(repo, contents))
    target = box / "target"
    proc = run_cli(
        "restore", "--repo", repo.store.root, "latest", "--target", target, env=cli_env()
    )
    assert proc.returncode != 0
    assert b"unsafe name '../evil'" in proc.stderr
    assert b"6 item(s) not restored" in proc.stderr
    assert escaped(box) == []
    assert (target / "good.txt").read_bytes() == GOOD


@pytest.mark.parametrize("read_data", [False, True])
def test_check_reports_each_unsafe_name_as_damage(repo, contents, read_data):
    assert run_check(repo, read_data=read_data).ok
    snap = save_snapshot(repo, hostile_root(repo, contents))
    report = run_check(repo, read_data=read_data)
    assert not report.ok
    bad = [e for e in report.errors if e.kind == "unsafe-name"]
    assert {e.path for e in bad} == {"/../evil", "/a/b", "/..", "/.", "/", "/x\\x00y"}
    assert {e.snapshot for e in bad} == {snap.id}
    assert len(report.errors) == len(bad)


def test_a_link_restored_earlier_does_not_carry_a_later_restore_out(repo, contents, box):
    """The classic second step: restore `link -> outside`, then `link/file`."""
    outside = box / "outside"
    first = save_snapshot(repo, [link_node(b"link", outside)])
    second = save_snapshot(
        repo,
        [
            dir_node(repo, b"link", [file_node(b"file", contents["payload"])], mode=0o700),
            file_node(b"good.txt", contents["good.txt"]),
        ],
    )
    target = box / "target"
    assert run_restore(repo, first, target).ok
    assert os.readlink(target / "link") == str(outside)
    for overwrite in ("never", "always"):
        res = run_restore(repo, second, target, overwrite=overwrite)
        assert os.listdir(outside) == [] and escaped(box) == []
        assert stat.S_IMODE(os.stat(outside).st_mode) == 0o755  # no chmod through it
        assert any("leading out of the target" in e.message for e in res.errors), res.errors
        assert (target / "good.txt").read_bytes() == GOOD


def test_a_link_and_a_directory_of_the_same_name_in_one_tree(repo, contents, box):
    outside = box / "outside"
    save_snapshot(
        repo,
        [
            link_node(b"link", outside),
            dir_node(repo, b"link", [file_node(b"file", contents["payload"])]),
            file_node(b"good.txt", contents["good.txt"]),
        ],
    )
    target = box / "target"
    res = run_restore(repo, "latest", target, overwrite="always")
    assert os.listdir(outside) == [] and escaped(box) == []
    assert [(e.kind, e.path) for e in res.errors] == [("unsafe-name", "/link")]
    assert "a second entry with this name" in res.errors[0].message
    assert (target / "good.txt").read_bytes() == GOOD
    bad = [e for e in run_check(repo).errors if e.kind == "unsafe-name"]
    assert [e.path for e in bad] == ["/link"]


def test_a_link_already_in_the_target_is_not_followed_out_of_it(repo, contents, box):
    target = box / "target"
    target.mkdir()
    os.symlink(box / "outside", target / "sub")  # ours (root's), so the owner rule allows it
    (target / "real").mkdir()
    os.symlink("real", target / "inner")  # resolves inside the target: fine
    save_snapshot(
        repo,
        [
            dir_node(repo, b"sub", [file_node(b"file", contents["payload"])], mode=0o700),
            dir_node(repo, b"inner", [file_node(b"file", contents["good.txt"])]),
            file_node(b"good.txt", contents["good.txt"]),
        ],
    )
    res = run_restore(repo, "latest", target, overwrite="always")
    assert os.listdir(box / "outside") == [] and escaped(box) == []
    assert stat.S_IMODE(os.stat(box / "outside").st_mode) == 0o755
    assert [e.path for e in res.errors] == ["/sub", "/sub/file"]
    assert all("leading out of the target" in e.message for e in res.errors)
    assert (target / "real" / "file").read_bytes() == GOOD
    assert (target / "good.txt").read_bytes() == GOOD


def test_windows_snapshot_names_with_drive_or_backslash_are_refused(repo, contents, box):
    payload = contents["payload"]
    save_snapshot(
        repo,
        [
            dir_node(
                repo,
                b"C",
                [
                    file_node(b"C:evil", payload),
                    file_node(b"..\\evil", payload),
                    file_node(b"ok.txt", contents["good.txt"]),
                ],
            )
        ],
        flavour="windows",
    )
    target = box / "target"
    res = run_restore(repo, "latest", target)
    assert sorted((e.kind, e.path) for e in res.errors) == [
        ("unsafe-name", "C:\\..\\evil"),
        ("unsafe-name", "C:\\C:evil"),
    ]
    assert os.listdir(target / "C") == ["ok.txt"]
    assert escaped(box) == []
    assert sorted(e.path for e in run_check(repo).errors) == ["/C/..\\evil", "/C/C:evil"]


def test_malformed_entries_are_damage_not_a_crash(repo, contents, box):
    """Entries a modified agent wrote with the wrong types (a size that is
    text, an unknown type, ids that are not hex): check reports each one and
    checks the rest of the directory; restore reports the directory as
    damaged and restores everything else."""
    good = contents["good.txt"]
    bad_entries = [
        {**file_node(b"text-size", good), "size": "12"},
        entry(b"door", "door"),
        {**file_node(b"bad-hex", good), "content": ["zz"]},
    ]
    missing_chunk = {**file_node(b"missing", good), "content": ["ab" * 32]}
    save_snapshot(
        repo,
        [
            dir_node(repo, b"odd", [*bad_entries, missing_chunk]),
            file_node(b"good.txt", good),
        ],
    )
    report = run_check(repo)
    kinds = sorted(e.kind for e in report.errors)
    assert kinds == ["damaged-tree"] * len(bad_entries) + ["missing-data"], report.errors
    assert [e.path for e in report.errors if e.kind == "missing-data"] == ["/odd/missing"]

    target = box / "target"
    res = run_restore(repo, "latest", target)
    assert [(e.kind, e.path) for e in res.errors] == [("damaged", "/odd")]
    assert "cannot read directory listing" in res.errors[0].message
    assert (target / "good.txt").read_bytes() == GOOD and escaped(box) == []
