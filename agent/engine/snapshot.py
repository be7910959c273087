"""Snapshots: one object per backup, naming the root tree and describing the run.

``snapshots/<id>``: sealed (AAD ``cairn-snapshot-v1``) canonical JSON; the id
is the BLAKE3 of the sealed bytes. Fields: see :class:`Snapshot` and
docs/format.md, "Snapshots".
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field

from agent.engine.errors import CorruptObject, UnsupportedVersion

SNAPSHOT_VERSION = 1
SNAPSHOT_AAD = b"cairn-snapshot-v1"


def utcnow_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Snapshot:
    tree: str  # root tree blob id (hex)
    paths: list[str]  # the backed-up paths as given (absolute, original namespace)
    hostname: str
    time: str  # start, ISO 8601 UTC
    end_time: str = ""
    username: str = ""
    tags: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    parent: str | None = None
    stats: dict = field(default_factory=dict)
    warnings: list[dict] = field(default_factory=list)  # first MAX_WARNINGS
    warnings_total: int = 0
    program: str = ""
    path_flavour: str = "posix"  # how ``paths`` are written: posix | windows (engine/paths.py)
    id: str = ""  # not stored: the object's name

    MAX_WARNINGS = 1000

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def start(self) -> dt.datetime:
        return parse_time(self.time)

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc.pop("id")
        doc["v"] = SNAPSHOT_VERSION
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes, snapshot_id: str) -> Snapshot:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise CorruptObject(f"snapshot {snapshot_id[:8]} is not valid JSON: {exc}") from None
        if doc.get("v") != SNAPSHOT_VERSION:
            raise UnsupportedVersion(
                f"snapshot {snapshot_id[:8]} has unknown format version {doc.get('v')!r}"
            )
        doc.pop("v")
        known = {f for f in cls.__dataclass_fields__ if f != "id"}
        try:
            return cls(id=snapshot_id, **{k: v for k, v in doc.items() if k in known})
        except TypeError as exc:
            raise CorruptObject(f"snapshot {snapshot_id[:8]} is incomplete: {exc}") from None

    def summary(self) -> dict:
        """What ``snapshots --json`` prints."""
        return {
            "id": self.id,
            "short_id": self.short_id,
            "time": self.time,
            "end_time": self.end_time,
            "hostname": self.hostname,
            "username": self.username,
            "paths": self.paths,
            "path_flavour": self.path_flavour,
            "tags": self.tags,
            "parent": self.parent,
            "tree": self.tree,
            "stats": self.stats,
            "warnings_total": self.warnings_total,
        }
