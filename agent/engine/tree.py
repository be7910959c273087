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
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from agent.engine.errors import CorruptObject, UnsupportedVersion

TREE_VERSION = 1


class NodeType(StrEnum):
    """What a tree entry is. A ``str`` subclass, so the JSON encoding is the
    plain word (``"file"``) and comparing with the word still works."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    FIFO = "fifo"
    SOCKET = "socket"
    CHARDEV = "chardev"
    BLOCKDEV = "blockdev"


# Short names for the enum members; as str, they also compare equal to the
# plain words in decoded tree dicts.
FILE = NodeType.FILE
DIR = NodeType.DIR
SYMLINK = NodeType.SYMLINK
FIFO = NodeType.FIFO
SOCKET = NodeType.SOCKET
CHARDEV = NodeType.CHARDEV
BLOCKDEV = NodeType.BLOCKDEV
NODE_TYPES = frozenset(NodeType)
SPECIAL_TYPES = frozenset({FIFO, SOCKET, CHARDEV, BLOCKDEV})

CHANGED_DURING_READ = "changed-during-read"
UNREADABLE = "unreadable"

#: integer fields, in the order of the module docstring
_INT_FIELDS = ("mode", "uid", "gid", "mtime_ns", "ctime_ns", "ino", "size", "rdev")
_TEXT_FIELDS = ("user", "group")
_INT_TYPES = frozenset({int, type(None)})
_TEXT_TYPES = frozenset({str, type(None)})
#: Node's fields after name and type, in order, up to the first converted one
_LEADING_FIELDS = ("mode", "uid", "gid", "user", "group", "mtime_ns", "ctime_ns", "ino", "size")
_RARE_KEYS = frozenset({"target", "target_b64", "xattrs", "link_to", "link_to_b64", "flags"})
_NODE_TYPES = {str(t): t for t in NodeType}


@dataclass(slots=True, eq=True)
class Node:
    """One tree entry, typed. ``None`` means "absent from the encoding" (a
    field that does not apply), so ``Node.from_dict(d).to_dict() == d`` for
    every node the backup writes and a tree re-encodes to the same bytes.

    Ids are raw bytes (``content``: chunk ids in order, ``subtree``: the tree
    blob id); names and link targets are raw bytes as the file system gave
    them; ``xattrs`` values are decoded bytes.
    """

    name: bytes
    type: NodeType
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    user: str | None = None
    group: str | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    ino: int | None = None
    size: int | None = None
    content: list[bytes] | None = None
    subtree: bytes | None = None
    target: bytes | None = None
    rdev: int | None = None
    xattrs: dict[str, bytes] | None = None
    link_to: bytes | None = None
    flags: list[str] | None = None

    # -- reading ------------------------------------------------------------------
    @property
    def display_name(self) -> str:
        """For messages: the name with undecodable bytes escaped."""
        return self.name.decode("utf-8", "backslashreplace")

    @property
    def chunk_ids(self) -> list[bytes]:
        return self.content or []

    @property
    def file_size(self) -> int:
        return self.size or 0

    @property
    def changed_during_read(self) -> bool:
        return bool(self.flags) and CHANGED_DURING_READ in self.flags

    # -- encoding -----------------------------------------------------------------
    # Written out field by field: a backup encodes every node of every
    # directory and decodes its parent's, so a loop over getattr/setattr here
    # cost ~15 % of an unchanged re-run.
    def to_dict(self) -> dict:
        """The node's JSON form (docs/format.md), absent fields left out."""
        out: dict = {"type": str(self.type)}
        encode_name(self.name, out)
        if self.mode is not None:
            out["mode"] = self.mode
        if self.uid is not None:
            out["uid"] = self.uid
        if self.gid is not None:
            out["gid"] = self.gid
        if self.mtime_ns is not None:
            out["mtime_ns"] = self.mtime_ns
        if self.ctime_ns is not None:
            out["ctime_ns"] = self.ctime_ns
        if self.ino is not None:
            out["ino"] = self.ino
        if self.size is not None:
            out["size"] = self.size
        if self.rdev is not None:
            out["rdev"] = self.rdev
        if self.user is not None:
            out["user"] = self.user
        if self.group is not None:
            out["group"] = self.group
        if self.content is not None:
            out["content"] = [c.hex() for c in self.content]
        if self.subtree is not None:
            out["subtree"] = self.subtree.hex()
        if self.target is not None:
            encode_name(self.target, out, "target")
        if self.xattrs is not None:
            out["xattrs"] = {k: base64.b64encode(v).decode("ascii") for k, v in self.xattrs.items()}
        if self.link_to is not None:
            encode_name(self.link_to, out, "link_to")
        if self.flags is not None:
            out["flags"] = list(self.flags)
        return out

    @classmethod
    def from_dict(cls, doc: object) -> Node:
        """A node from its JSON form. Trees are data a compromised PC may have
        written: anything malformed raises CorruptObject, never a TypeError
        deep inside a restore."""
        # The type checks run over map() (C loops): a backup decodes every
        # node of its parent snapshot, and a Python loop per field cost ~10 %
        # of an unchanged re-run.
        if not isinstance(doc, dict):
            raise CorruptObject("tree node is not an object")
        kind = doc.get("type")
        try:
            kind = _NODE_TYPES[kind]
        except (KeyError, TypeError):
            raise CorruptObject(f"tree node of unknown type {kind!r}") from None
        name = decode_name(doc)
        get = doc.get
        if not set(map(type, map(get, _INT_FIELDS))) <= _INT_TYPES:
            field = next(f for f in _INT_FIELDS if type(get(f)) not in _INT_TYPES)
            raise CorruptObject(f"tree node field {field} is not an integer")
        if not set(map(type, map(get, _TEXT_FIELDS))) <= _TEXT_TYPES:
            field = next(f for f in _TEXT_FIELDS if type(get(f)) not in _TEXT_TYPES)
            raise CorruptObject(f"tree node field {field} is not text")
        # positional in field order: mode, uid, gid, user, group, mtime_ns, ctime_ns, ino, size
        node = cls(name, kind, *map(get, _LEADING_FIELDS))
        node.rdev = get("rdev")
        try:
            if (content := get("content")) is not None:
                node.content = [bytes.fromhex(c) for c in content]
            if (subtree := get("subtree")) is not None:
                node.subtree = bytes.fromhex(subtree)
            if not doc.keys() & _RARE_KEYS:
                return node
            if "target" in doc or "target_b64" in doc:
                node.target = decode_name(doc, "target")
            if (xattrs := get("xattrs")) is not None:
                node.xattrs = {
                    str(k): base64.b64decode(v, validate=True) for k, v in xattrs.items()
                }
            if "link_to" in doc or "link_to_b64" in doc:
                node.link_to = decode_name(doc, "link_to")
            if (flags := get("flags")) is not None:
                node.flags = [str(f) for f in flags]
        except (TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise CorruptObject(f"tree node {node.display_name!r} is malformed: {exc}") from None
        return node


def encode_name(raw: bytes, node: dict, field: str = "name") -> None:
    """Set ``node[field]`` (valid UTF-8) or ``node[field + "_b64"]``."""
    try:
        node[field] = raw.decode("utf-8")
    except UnicodeDecodeError:
        node[field + "_b64"] = base64.b64encode(raw).decode("ascii")


def decode_name(node: dict, field: str = "name") -> bytes:
    text = node.get(field)
    if text is not None:
        if not isinstance(text, str):
            raise CorruptObject(f"tree node {field} is not text")
        return text.encode("utf-8")
    b = node.get(field + "_b64")
    if b is None:
        raise CorruptObject(f"tree node without {field}")
    try:
        return base64.b64decode(b, validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise CorruptObject(f"tree node {field}_b64 is not base64") from None


def encode_tree(nodes: Iterable[Node | dict]) -> bytes:
    """The canonical bytes of a tree: :class:`Node` (encoded with
    ``to_dict``, the backup's form) or their dicts, sorted by name bytes."""
    nodes = sorted((n.to_dict() if isinstance(n, Node) else n for n in nodes), key=decode_name)
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


def decode_nodes(data: bytes, *, what: str = "tree", errors: list[str] | None = None) -> list[Node]:
    """The typed nodes of a tree blob. A malformed node raises CorruptObject,
    or, with ``errors``, is left out and its message appended (check reports
    each bad entry and carries on with the rest)."""
    nodes = []
    for doc in decode_tree(data, what=what):
        try:
            nodes.append(Node.from_dict(doc))
        except CorruptObject as exc:
            if errors is None:
                raise CorruptObject(f"{what}: {exc}") from None
            errors.append(str(exc))
    return nodes


def node_display_name(node: dict) -> str:
    """For messages: the name with undecodable bytes escaped."""
    return decode_name(node).decode("utf-8", "backslashreplace")


def join_path(parent: bytes, name: bytes) -> bytes:
    return parent.rstrip(b"/") + b"/" + name


def display_path(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")
