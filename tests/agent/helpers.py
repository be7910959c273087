"""Comparing trees on disk byte for byte (names, content, metadata)."""

from __future__ import annotations

import os
import stat


def snapshot_of_disk(root: bytes | str, *, mtimes: bool = True) -> dict:
    """{relative path bytes: (kind, mode, size, content or target, mtime)}."""
    root = os.fsencode(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            mt = st.st_mtime_ns if mtimes else 0
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), mt)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    out[rel] = ("file", stat.S_IMODE(st.st_mode), f.read(), mt)
            elif stat.S_ISFIFO(st.st_mode):
                out[rel] = ("fifo", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode))
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    return out


def restored(target, source) -> bytes:
    """Where ``source`` (absolute) lands under a restore ``target``."""
    return os.fsencode(target).rstrip(b"/") + os.fsencode(os.path.abspath(source))


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()
