"""Trees: one blob per directory listing its entries with metadata.

A tree blob's plaintext is canonical JSON (sorted keys, no spaces)::

    {"v": 1, "nodes": [node, ...]}      nodes sorted by the bytes of their name

Canonical encoding makes an unchanged directory produce the same bytes, so
its tree blob deduplicates and an unchanged subtree costs nothing.

A node (fields absent when not applicable):

    name / name_b64     the entry's name: a string when the raw bytes are
                        valid UTF-8, else the raw bytes base64-encoded, so
                        every name round-trips byte for byte
    type                file | dir | symlink | fifo | socket | chardev | blockdev
    mode                permission bits (st_mode & 0o7777)
    uid, gid, user, group
    mtime_ns, ctime_ns  nanoseconds since the epoch
    ino                 inode number (incremental change detection)
    size                file size in bytes
    content             files: chunk ids (hex), in order
    subtree             dirs: tree blob id (hex)
    target / target_b64 symlinks: the link target (same encoding as names)
    rdev                device files: device number
    xattrs              extended attributes: {name: base64 value}
    link_to / link_to_b64
                        files with several hard links: the absolute path of
                        the first name seen in this snapshot (restore links
                        them again when it restores both)
    flags               list; "changed-during-read" marks content read while
                        the file kept changing, "unreadable" a directory
                        whose listing failed (stored empty)
"""

from __future__ import annotations

import base64
import json

from agent.engine.errors import CorruptObject, UnsupportedVersion

TREE_VERSION = 1

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
FIFO = "fifo"
SOCKET = "socket"
CHARDEV = "chardev"
BLOCKDEV = "blockdev"
NODE_TYPES = {FILE, DIR, SYMLINK, FIFO, SOCKET, CHARDEV, BLOCKDEV}

CHANGED_DURING_READ = "changed-during-read"
UNREADABLE = "unreadable"


def encode_name(raw: bytes, node: dict, field: str = "name") -> None:
    """Set ``node[field]`` (valid UTF-8) or ``node[field + "_b64"]``."""
    try:
        node[field] = raw.decode("utf-8")
    except UnicodeDecodeError:
        node[field + "_b64"] = base64.b64encode(raw).decode("ascii")


def decode_name(node: dict, field: str = "name") -> bytes:
    text = node.get(field)
    if text is not None:
        return text.encode("utf-8")
    b = node.get(field + "_b64")
    if b is None:
        raise CorruptObject(f"tree node without {field}")
    return base64.b64decode(b)


def encode_tree(nodes: list[dict]) -> bytes:
    nodes = sorted(nodes, key=decode_name)
    return json.dumps(
        {"v": TREE_VERSION, "nodes": nodes}, sort_keys=True, separators=(",", ":")
    ).encode("utf-8")


def decode_tree(data: bytes, *, what: str = "tree") -> list[dict]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CorruptObject(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise CorruptObject(f"{what} has no node list")
    if doc.get("v") != TREE_VERSION:
        raise UnsupportedVersion(f"{what} has unknown tree version {doc.get('v')!r}")
    return doc["nodes"]


def node_display_name(node: dict) -> str:
    """For messages: the name with undecodable bytes escaped."""
    return decode_name(node).decode("utf-8", "backslashreplace")


def join_path(parent: bytes, name: bytes) -> bytes:
    return parent.rstrip(b"/") + b"/" + name


def display_path(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")
