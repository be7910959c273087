"""Typed tree nodes (agent/engine/tree.py): the encoding is the format's,
byte for byte, and a malformed node is a CorruptObject, never a TypeError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.engine.errors import CorruptObject, UnsupportedVersion
from agent.engine.repository import Repository
from agent.engine.store import LocalStore
from agent.engine.tree import (
    DIR,
    FILE,
    Node,
    NodeType,
    decode_name,
    decode_nodes,
    decode_tree,
    encode_name,
    encode_tree,
)
from tests.agent.conftest import PASSPHRASE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_trees() -> list[bytes]:
    """The plaintext of every tree of the repository an earlier engine wrote."""
    repo = Repository.open(LocalStore(FIXTURES / "repo-v1", create=False), passphrase=PASSPHRASE)
    out, stack = [], [bytes.fromhex(s.tree) for s in repo.snapshots()]
    while stack:
        data = repo.read_blob(stack.pop())
        out.append(data)
        stack += [n.subtree for n in decode_nodes(data) if n.type == DIR and n.subtree]
    return out


def test_every_tree_of_an_old_repository_reencodes_to_the_same_bytes():
    trees = fixture_trees()
    kinds = set()
    for data in trees:
        nodes = decode_nodes(data)
        assert encode_tree(nodes) == data
        for doc, node in zip(decode_tree(data), nodes, strict=True):
            assert node.to_dict() == doc
            kinds.add(node.type)
    assert len(trees) > 3 and {FILE, DIR, NodeType.SYMLINK} <= kinds


def test_odd_names_xattrs_and_links_round_trip():
    raw = {"type": "file", "mode": 0o644, "size": 3, "content": ["ab" * 32], "flags": ["x"]}
    encode_name(b"caf\xe9", raw)  # not UTF-8: stored as name_b64
    encode_name(b"/home/\xff/first", raw, "link_to")
    raw["xattrs"] = {"user.tag": "dmFsdWU="}
    node = Node.from_dict(raw)
    assert node.name == b"caf\xe9" and node.link_to == b"/home/\xff/first"
    assert node.xattrs == {"user.tag": b"value"} and node.content == [b"\xab" * 32]
    assert node.to_dict() == raw and node.type == "file" and node.flags == ["x"]
    empty = {"name": "e", "type": "file", "size": 0, "content": []}
    assert Node.from_dict(empty).to_dict() == empty  # [] and 0 are not "absent"
    assert json.loads(encode_tree([Node(b"b", NodeType.DIR), {"name": "a", "type": "file"}])) == {
        "v": 1,
        "nodes": [{"name": "a", "type": "file"}, {"name": "b", "type": "dir"}],
    }


@pytest.mark.parametrize(
    "doc",
    [
        "not an object",
        {"name": "x"},  # no type
        {"name": "x", "type": "door"},
        {"type": "file"},  # no name
        {"name": 7, "type": "file"},
        {"name_b64": "%%%", "type": "file"},
        {"name": "x", "type": "file", "size": "12"},
        {"name": "x", "type": "file", "mode": True},
        {"name": "x", "type": "file", "content": ["zz"]},
        {"name": "x", "type": "file", "content": 5},
        {"name": "x", "type": "dir", "subtree": 5},
        {"name": "x", "type": "file", "xattrs": {"user.a": "%%%"}},
        {"name": "x", "type": "file", "user": 0},
    ],
)
def test_a_malformed_node_is_a_corrupt_object(doc):
    with pytest.raises(CorruptObject):
        Node.from_dict(doc)


def test_decode_nodes_raises_or_lists_bad_entries():
    data = encode_tree([{"name": "a", "type": "file"}, {"name": "b", "type": "door"}])
    with pytest.raises(CorruptObject, match="unknown type"):
        decode_nodes(data)
    errors: list[str] = []
    assert [n.name for n in decode_nodes(data, errors=errors)] == [b"a"]
    assert len(errors) == 1 and "door" in errors[0]
    with pytest.raises(UnsupportedVersion):
        decode_nodes(b'{"v": 2, "nodes": []}')
    with pytest.raises(CorruptObject):
        decode_name({"name_b64": 5})


def test_tree_names_roundtrip_bytes():
    for raw in (b"plain", b"caf\xc3\xa9", b"bad\xff\xfename", b"new\nline", b"\x01"):
        node = {}
        encode_name(raw, node)
        assert decode_name(node) == raw
    data = encode_tree([{"name": "b", "type": "file"}, {"name": "a", "type": "dir"}])
    assert [n["name"] for n in decode_tree(data)] == ["a", "b"]
    with pytest.raises(UnsupportedVersion):
        decode_tree(b'{"v": 2, "nodes": []}')
