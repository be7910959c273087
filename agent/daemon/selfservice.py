"""Self-service restore: what the person at the PC may see and get back.

The daemon runs as root (SYSTEM) and holds the repository key; an
unprivileged OS user never gets it. This module decides, for one OS user
(:class:`Peer`, identified by the local API's peer credentials), which
snapshots and folders they may list and restore:

* root may list and restore everything, to any folder;
* any other user only the paths inside their own home directory (the
  snapshot's paths that map to it), to a new folder inside their home or
  inside a folder they own. Restored files are written by the engine
  (``run_restore``: names through ``paths.safe_name``, links owned by another
  user never followed) into a fresh directory only root can enter while the
  restore runs, then handed to the user (``lchown``, never following a link)
  and only then made reachable.

Plain functions on an open ``Repository``; the sockets and the web page are in
``agent/daemon/localapi.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat as statmod
import time

from agent.engine import paths as pathmap

try:
    import pwd
except ImportError:  # Windows: users come from the named pipe's client token (not built)
    pwd = None
from agent.engine.repository import Repository
from agent.engine.restore import run_restore
from agent.engine.snapshot import Snapshot
from agent.engine.tree import DIR

#: at most this many entries in one folder listing (the rest: ``truncated``)
MAX_ENTRIES = 5000
#: longest path accepted from a client
MAX_PATH = 4096


class Refused(Exception):
    """The user may not do this (or asked for something that is not there):
    the message is shown to them as it is."""


@dataclasses.dataclass(frozen=True)
class Peer:
    uid: int
    gid: int
    name: str
    home: str  # real path of the home directory, no trailing slash

    @property
    def admin(self) -> bool:
        return self.uid == 0

    @classmethod
    def from_uid(cls, uid: int) -> Peer:
        if pwd is None:
            raise Refused("self-service restore is not available on this platform yet")
        try:
            pw = pwd.getpwuid(uid)
        except KeyError:
            raise Refused(f"uid {uid} has no account on this computer") from None
        home = os.path.realpath(pw.pw_dir) if pw.pw_dir else ""
        if uid != 0 and (not home or home == "/"):
            raise Refused(f"user {pw.pw_name} has no home directory")
        return cls(uid=uid, gid=pw.pw_gid, name=pw.pw_name, home=home.rstrip("/") or "/")


def _clean_path(path: str | None) -> str:
    if path is None or path == "":
        return ""
    if not isinstance(path, str) or len(path) > MAX_PATH or "\x00" in path:
        raise Refused("invalid path")
    if not path.startswith("/"):
        raise Refused("give an absolute path (e.g. /home/you/Documents)")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Refused("a path may not contain '..'")
    return "/" + "/".join(parts)


def _inside(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def may_read(peer: Peer, path: str) -> bool:
    return peer.admin or _inside(path, peer.home)


def _check_posix(snap: Snapshot) -> None:
    if pathmap.flavour_named(snap.path_flavour).windows:
        raise Refused(f"snapshot {snap.short_id} was taken on Windows")


def _visible_paths(peer: Peer, snap: Snapshot) -> list[str]:
    """The snapshot's backed-up paths this user may see: their home, or the
    parts of the snapshot inside it."""
    if peer.admin:
        return list(snap.paths)
    out = []
    for p in snap.paths:
        if _inside(p, peer.home):
            out.append(p)
        elif _inside(peer.home, p.rstrip("/") or "/"):
            out.append(peer.home)
    return out


def list_snapshots(repo: Repository, peer: Peer) -> list[dict]:
    """Snapshots holding something of this user's, newest first."""
    out = []
    for snap in repo.snapshots():
        if pathmap.flavour_named(snap.path_flavour).windows:
            continue
        visible = _visible_paths(peer, snap)
        if not visible:
            continue
        out.append(
            {
                "id": snap.id,
                "short_id": snap.short_id,
                "time": snap.time,
                "hostname": snap.hostname,
                "paths": visible,
            }
        )
    out.sort(key=lambda s: s["time"], reverse=True)
    return out


def find_snapshot(repo: Repository, peer: Peer, ref: str | None) -> Snapshot:
    ref = ref or "latest"
    if not isinstance(ref, str) or len(ref) > 128:
        raise Refused("invalid snapshot id")
    if ref == "latest":
        mine = list_snapshots(repo, peer)
        if not mine:
            raise Refused("no snapshot holds your files")
        ref = mine[0]["id"]
    try:
        snap = repo.find_snapshot(ref)
    except Exception as exc:
        raise Refused(f"snapshot {ref}: {exc}") from None
    _check_posix(snap)
    if not _visible_paths(peer, snap):
        raise Refused(f"snapshot {snap.short_id} holds none of your files")
    return snap


def _lookup_dir(repo: Repository, snap: Snapshot, path: str):
    """The nodes of the folder at ``path`` in the snapshot."""
    nodes = repo.load_nodes(snap.tree)
    for part in [p for p in path.split("/") if p]:
        name = os.fsencode(part)
        match = next((n for n in nodes if n.name == name), None)
        if match is None:
            raise Refused(f"{path} is not in snapshot {snap.short_id}")
        if match.type != DIR or match.subtree is None:
            raise Refused(f"{path} is not a folder")
        nodes = repo.load_nodes(match.subtree)
    return nodes


def list_dir(repo: Repository, peer: Peer, ref: str | None, path: str | None) -> dict:
    """One folder of a snapshot (default: the user's home)."""
    snap = find_snapshot(repo, peer, ref)
    path = _clean_path(path) or (peer.home if not peer.admin else "/")
    if not may_read(peer, path):
        raise Refused(f"{path} is not yours: you may only browse {peer.home}")
    entries = []
    nodes = _lookup_dir(repo, snap, path)
    for node in nodes[:MAX_ENTRIES]:
        try:
            name = os.fsdecode(pathmap.safe_name(node.name, pathmap.POSIX, pathmap.POSIX))
        except Exception:
            continue  # a hostile name is never shown
        entries.append(
            {
                "name": name,
                "type": str(node.type),
                "size": node.file_size,
                "mtime": (node.mtime_ns or 0) / 1e9,
            }
        )
    return {
        "snapshot": snap.id,
        "short_id": snap.short_id,
        "path": path,
        "entries": entries,
        "truncated": len(nodes) > MAX_ENTRIES,
    }


def _target_dir(peer: Peer, target: str | None) -> str:
    """The folder that receives the restore: the user's home by default, or
    a folder inside it or owned by them (never through a symbolic link)."""
    target = _clean_path(target) or peer.home
    try:
        st = os.lstat(target)
    except OSError as exc:
        raise Refused(f"target {target}: {exc.strerror}") from None
    if not statmod.S_ISDIR(st.st_mode):
        raise Refused(f"target {target} is not a folder (or is a symbolic link)")
    if peer.admin:
        return target
    real = os.path.realpath(target)
    if real != target:
        raise Refused(f"target {target} goes through a symbolic link")
    if st.st_uid != peer.uid:
        raise Refused(f"target {target} is not a folder you own")
    return target


def _hand_over(dest_fd: int, peer: Peer) -> None:
    """Everything under the restore folder (open as ``dest_fd``) to the
    user. Walked by file descriptor: links are changed themselves, never
    followed, and renaming a folder on the way cannot send it elsewhere."""
    for _dirpath, dirnames, filenames, dirfd in os.fwalk(
        ".", dir_fd=dest_fd, follow_symlinks=False
    ):
        for name in dirnames + filenames:
            os.chown(name, peer.uid, peer.gid, dir_fd=dirfd, follow_symlinks=False)
    os.fchown(dest_fd, peer.uid, peer.gid)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0)


def restore(
    repo: Repository,
    peer: Peer,
    ref: str | None,
    path: str,
    target: str | None = None,
) -> dict:
    """Restore ``path`` (a file or folder of the snapshot) into a new folder
    ``cairn-restore-<snapshot>-<time>`` under ``target``."""
    snap = find_snapshot(repo, peer, ref)
    path = _clean_path(path)
    if not path:
        raise Refused("say which file or folder to restore")
    if not may_read(peer, path):
        raise Refused(f"{path} is not yours: you may only restore files under {peer.home}")
    parent = _target_dir(peer, target)
    # The folder is opened without following a link and checked again by its
    # descriptor; the restore folder is made in it by that descriptor, by
    # root and private: the user cannot plant links in it while root writes.
    try:
        parent_fd = os.open(parent, _DIR_FLAGS)
    except OSError as exc:
        raise Refused(f"target {parent}: {exc.strerror}") from None
    try:
        if not peer.admin and os.fstat(parent_fd).st_uid != peer.uid:
            raise Refused(f"target {parent} is not a folder you own")
        name = _make_private_dir(parent_fd, f"cairn-restore-{snap.short_id}-")
        dest = os.path.join(parent, name)
        # Glob patterns: the user's path is matched literally.
        include = ["".join(f"[{c}]" if c in "*?[" else c for c in path)]
        try:
            result = run_restore(repo, snap, dest, include=include, restore_owner=peer.admin)
        except Exception:
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=parent_fd)
            raise
        dest_fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            if os.fstat(dest_fd).st_uid != os.geteuid():
                raise Refused("the restore folder was replaced while restoring")
            if not os.path.lexists(os.path.join(dest, path.lstrip("/"))):
                with contextlib.suppress(OSError):
                    shutil.rmtree(name, dir_fd=parent_fd)
                raise Refused(f"{path} is not in snapshot {snap.short_id}")
            if not peer.admin:
                _hand_over(dest_fd, peer)
            os.fchmod(dest_fd, 0o700)
        finally:
            os.close(dest_fd)
    finally:
        os.close(parent_fd)
    st = result.stats
    return {
        "snapshot": snap.id,
        "short_id": snap.short_id,
        "path": path,
        "target": dest,
        "restored": os.path.join(dest, path.lstrip("/")),
        "files": st.files,
        "dirs": st.dirs,
        "bytes": st.bytes_written,
        "errors": [f"{e.path}: {e.message}" for e in result.errors[:50]],
        "state": "failed" if result.errors else "succeeded",
    }


def _make_private_dir(parent_fd: int, prefix: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 101):
        name = f"{prefix}{stamp}" + (f"-{n}" if n > 1 else "")
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
            return name
        except FileExistsError:
            continue
    raise Refused("could not make a restore folder")
