"""A repository: config, keys, the index, blobs, trees and snapshots on a store.

This is the engine's only module that knows the object layout
(docs/format.md). Backup, restore and check work through it.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import blake3

from agent.engine import compress
from agent.engine.cache import ObjectCache
from agent.engine.chunker import ChunkerParams
from agent.engine.crypto import (
    Cipher,
    MasterKeys,
    b64,
    ensure_wrong_key_message,
    unb64,
    unwrap_keys,
    wrap_keys,
)
from agent.engine.errors import (
    AmbiguousSnapshot,
    CorruptObject,
    NotARepository,
    RepositoryExists,
    SnapshotNotFound,
    UnsupportedVersion,
    WrongKey,
)
from agent.engine.index import INDEX_AAD, MasterIndex, decode_index, encode_index
from agent.engine.pack import DATA_PACK_SIZE, TREE, BlobEntry, blob_aad, pack_key
from agent.engine.snapshot import SNAPSHOT_AAD, Snapshot, utcnow_iso
from agent.engine.store import ObjectExists, ObjectNotFound, ObjectStore, StoreError
from agent.engine.tree import DIR, Node, decode_nodes, decode_tree

FORMAT_NAME = "cairn-repository"
FORMAT_VERSION = 1
CONFIG_AAD = b"cairn-config-v1"
PRUNE_AAD = b"cairn-prune-v1"

#: tree packs kept in memory while reading trees (ls, incremental, check)
TREE_PACK_CACHE_BYTES = 64 * 1024 * 1024


class Repository:
    """An open repository. Thread-safe for reading blobs and adding packs."""

    def __init__(self, store: ObjectStore, config: dict, keys: MasterKeys, cache_dir=None):
        self.store = store
        self.config = config
        self.id: str = config["repository_id"]
        self.keys = keys
        self.cipher = Cipher(keys.encryption)
        self.chunker_params = ChunkerParams.from_dict(config["chunker"])
        self.compression_level: int = config["compression"]["level"]
        self.pack_size: int = config.get("pack_size", DATA_PACK_SIZE)
        self.index = MasterIndex()
        #: index objects that failed to load: (key, reason). Their blobs look
        #: missing, so a backup stores them again and check reports them.
        self.damaged_indexes: list[tuple[str, str]] = []
        self._tree_packs: OrderedDict[str, bytes] = OrderedDict()
        self._tree_pack_bytes = 0
        self._cache_lock = threading.Lock()
        #: local copies of index objects and tree packs (remote stores only)
        self.cache = ObjectCache(cache_dir, self.id) if cache_dir is not None else None

    # --- creating and opening ------------------------------------------------
    @classmethod
    def init(
        cls,
        store: ObjectStore,
        *,
        org_key: bytes | None = None,
        passphrase: str | bytes | None = None,
        chunker: ChunkerParams | None = None,
        compression_level: int = compress.DEFAULT_LEVEL,
        pack_size: int = DATA_PACK_SIZE,
        kdf: dict | None = None,
    ) -> Repository:
        """Create a repository with fresh random keys, wrapped by the
        organisation key and/or the passphrase (at least one)."""
        if org_key is None and passphrase is None:
            raise ValueError("a repository needs an organisation key or a passphrase")
        if store.exists("config"):
            raise RepositoryExists(f"a repository already exists at {store.location}")
        keys = MasterKeys.generate()
        repository_id = secrets.token_hex(32)
        if chunker is None:
            # Per-repository secret gear seed (chunker.py explains why).
            chunker = ChunkerParams(seed=secrets.randbits(62) | 1)
        config = {
            "version": FORMAT_VERSION,
            "repository_id": repository_id,
            "created": utcnow_iso(),
            "chunker": chunker.to_dict(),
            "compression": {"algorithm": "zstd", "level": compression_level},
            "cipher": "aes-256-gcm",
            "chunk_id": "blake3-keyed",
            "pack_size": pack_size,
        }
        for kw in ({"org_key": org_key}, {"passphrase": passphrase}):
            if next(iter(kw.values())) is not None:
                doc = wrap_keys(keys, repository_id, kdf=kdf, **kw)
                cls._put_keyfile(store, doc)
        cipher = Cipher(keys.encryption)
        sealed = cipher.seal(_canonical(config), CONFIG_AAD)
        outer = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "repository_id": repository_id,
            "sealed": b64(sealed),
        }
        # config last: a store with keys but no config is not yet a repository.
        store.put("config", json.dumps(outer, indent=1).encode() + b"\n")
        return cls(store, config, keys)

    @staticmethod
    def _put_keyfile(store: ObjectStore, doc: dict) -> str:
        data = json.dumps(doc, indent=1).encode() + b"\n"
        key_id = blake3.blake3(data).hexdigest()
        store.put(f"keys/{key_id}", data)
        return key_id

    @staticmethod
    def read_outer_config(store: ObjectStore) -> dict:
        """The plaintext part of ``config``, with the format version checked."""
        try:
            raw = store.get("config")
        except ObjectNotFound:
            raise NotARepository(f"no Cairn repository at {store.location}") from None
        try:
            outer = json.loads(raw)
            if not isinstance(outer, dict):
                raise ValueError("not an object")
        except ValueError:
            raise NotARepository(
                f"{store.location} holds a 'config' that is not a Cairn repository config"
            ) from None
        if outer.get("format") != FORMAT_NAME:
            raise NotARepository(f"{store.location} is not a Cairn repository")
        version = outer.get("version")
        if version != FORMAT_VERSION:
            raise UnsupportedVersion(
                f"repository format version {version!r} is not supported by this agent "
                f"(it reads version {FORMAT_VERSION}); upgrade cairn-agent"
            )
        return outer

    @classmethod
    def open(
        cls,
        store: ObjectStore,
        *,
        key: bytes | None = None,
        passphrase: str | bytes | None = None,
        load_index: bool = True,
        cache_dir=None,
    ) -> Repository:
        """Open with the organisation ``key`` (32 bytes) or a ``passphrase``.

        ``cache_dir``: keep index objects and tree packs there (worth it for
        S3: later opens and incremental runs fetch only what is new).

        Raises NotARepository, UnsupportedVersion, WrongKey, CorruptObject or
        StoreError, each with a one-line message."""
        if key is None and passphrase is None:
            raise WrongKey("no organisation key or passphrase given")
        outer = cls.read_outer_config(store)
        repository_id = outer.get("repository_id", "")
        keys = None
        kinds: set[str] = set()
        for name in sorted(store.list("keys/")):
            try:
                doc = json.loads(store.get(name))
                kinds.add(str(doc.get("kind")))
            except ValueError:
                continue  # a damaged key file; another may still open
            keys = unwrap_keys(doc, repository_id, org_key=key, passphrase=passphrase)
            if keys is not None:
                break
        if keys is None:
            raise ensure_wrong_key_message(kinds, key is not None, passphrase is not None)
        cipher = Cipher(keys.encryption)
        config = json.loads(
            cipher.open(unb64(outer["sealed"]), CONFIG_AAD, what="repository config")
        )
        if config.get("version") != outer["version"] or config.get("repository_id") != (
            repository_id
        ):
            raise CorruptObject("repository config: plaintext and sealed parts disagree")
        repo = cls(store, config, keys, cache_dir)
        if load_index:
            repo.load_index()
        return repo

    def add_key(
        self, *, org_key: bytes | None = None, passphrase: str | bytes | None = None, kdf=None
    ) -> str:
        """Wrap this repository's keys under one more org key or passphrase."""
        return self._put_keyfile(
            self.store,
            wrap_keys(self.keys, self.id, org_key=org_key, passphrase=passphrase, kdf=kdf),
        )

    # --- sealed objects -----------------------------------------------------------
    def put_sealed(self, prefix: str, plaintext: bytes, aad: bytes) -> str:
        """Store an encrypted object named by the hash of its bytes; its id."""
        sealed = self.cipher.seal(plaintext, aad)
        object_id = blake3.blake3(sealed).hexdigest()
        try:
            self.store.put(f"{prefix}/{object_id}", sealed)
        except ObjectExists:
            pass
        if self.cache is not None and prefix in ("index", "snapshots"):
            self.cache.put(prefix, object_id, sealed)
        return object_id

    def get_sealed(self, key: str, aad: bytes, *, what: str, cache: str | None = None) -> bytes:
        object_id = key.rsplit("/", 1)[-1]
        sealed = None
        if cache is not None and self.cache is not None:
            sealed = self.cache.get(cache, object_id)
        if sealed is None:
            sealed = self.store.get(key)
            if blake3.blake3(sealed).hexdigest() != object_id:
                raise CorruptObject(f"{what} does not match its name (damaged)", key=key)
            if cache is not None and self.cache is not None:
                self.cache.put(cache, object_id, sealed)
        return self.cipher.open(sealed, aad, what=what)

    # --- index ------------------------------------------------------------------
    def index_keys(self) -> list[str]:
        return sorted(self.store.list("index/"))

    def load_index(self) -> None:
        """Read every index object (in parallel: one GET each on S3, none for
        those already in the local cache)."""
        # Packs a prune has condemned (first, so that a blob with a copy in a
        # live pack resolves to it): readable, never deduplicated against.
        for _key, marker in self.prune_markers():
            self.index.condemn(marker.get("packs", ()))
        keys = self.index_keys()
        if self.cache is not None:
            self.cache.keep_only("index", {k.rsplit("/", 1)[-1] for k in keys})

        def load(key: str):
            try:
                plain = self.get_sealed(key, INDEX_AAD, what=f"index object {key}", cache="index")
                return key, decode_index(plain, what=f"index object {key}"), None
            except (CorruptObject, UnsupportedVersion) as exc:
                return key, None, str(exc)

        with ThreadPoolExecutor(max_workers=8) as pool:
            for key, packs, error in pool.map(load, keys):
                if error:
                    self.damaged_indexes.append((key, error))
                else:
                    self.index.merge(packs)

    def prune_markers(self, errors: list | None = None) -> list[tuple[str, dict]]:
        """Every ``prune/<id>`` marker as (key, document); one that does not
        authenticate or parse is skipped (listed in ``errors``)."""
        out = []
        for key in sorted(self.store.list("prune/")):
            try:
                doc = json.loads(self.get_sealed(key, PRUNE_AAD, what=f"prune marker {key}"))
                if not isinstance(doc, dict) or doc.get("v") != 1:
                    raise CorruptObject(f"prune marker {key} has an unknown version")
            except (CorruptObject, ValueError, ObjectNotFound) as exc:
                if errors is not None:
                    errors.append((key, str(exc)))
                continue
            out.append((key, doc))
        return out

    def save_index(self, packs: dict[str, list[BlobEntry]]) -> str:
        return self.put_sealed("index", encode_index(packs), INDEX_AAD)

    # --- blobs ---------------------------------------------------------------------
    def blob_id(self, data) -> bytes:
        return blake3.blake3(data, key=self.keys.chunk_id).digest()

    def open_blob(self, blob_id: bytes, entry, sealed) -> bytes:
        """Decrypt, decompress and verify one blob (raises CorruptObject)."""
        what = f"blob {blob_id.hex()[:16]} in pack {entry.pack_id[:16]}"
        if len(sealed) != entry.length:
            raise CorruptObject(f"{what} is truncated", blob=blob_id)
        try:
            payload = self.cipher.open(
                sealed, blob_aad(entry.type, entry.compression, blob_id), what=what
            )
            data = compress.decompress(entry.compression, payload, entry.raw_length)
        except CorruptObject as exc:
            exc.blob = blob_id
            raise
        if self.blob_id(data) != blob_id:
            raise CorruptObject(f"{what} does not match its id", blob=blob_id)
        return data

    def read_blob(self, blob_id: bytes) -> bytes:
        entry = self.index.get(blob_id)
        if entry is None:
            raise CorruptObject(f"blob {blob_id.hex()[:16]} is not in the index", blob=blob_id)
        if entry.type == TREE:
            pack = self._tree_pack(entry.pack_id)
            sealed = memoryview(pack)[entry.offset : entry.offset + entry.length]
        else:
            sealed = self.store.get_range(pack_key(entry.pack_id), entry.offset, entry.length)
        return self.open_blob(blob_id, entry, sealed)

    def _tree_pack(self, pack_id: str) -> bytes:
        # Tree packs are small and hold many trees: fetch each once.
        with self._cache_lock:
            data = self._tree_packs.get(pack_id)
            if data is not None:
                self._tree_packs.move_to_end(pack_id)
                return data
        data = self.cache.get("trees", pack_id) if self.cache is not None else None
        if data is None:
            data = self.store.get(pack_key(pack_id))
            if self.cache is not None:
                self.cache.put("trees", pack_id, data)
        with self._cache_lock:
            self._tree_packs[pack_id] = data
            self._tree_pack_bytes += len(data)
            while self._tree_pack_bytes > TREE_PACK_CACHE_BYTES and len(self._tree_packs) > 1:
                _, old = self._tree_packs.popitem(last=False)
                self._tree_pack_bytes -= len(old)
        return data

    def load_nodes(self, tree_id: str | bytes, *, errors: list[str] | None = None) -> list[Node]:
        """The typed entries of a tree (see ``tree.decode_nodes`` for ``errors``)."""
        blob_id = bytes.fromhex(tree_id) if isinstance(tree_id, str) else tree_id
        what = f"tree {blob_id.hex()[:16]}"
        return decode_nodes(self.read_blob(blob_id), what=what, errors=errors)

    def load_tree(self, tree_id: str | bytes) -> list[dict]:
        """The entries of a tree as the JSON dicts they are stored as. Only
        the backup reads this form (its parent snapshot's nodes) until it is
        split into units (issue 15); everything else reads ``load_nodes``."""
        blob_id = bytes.fromhex(tree_id) if isinstance(tree_id, str) else tree_id
        return decode_tree(self.read_blob(blob_id), what=f"tree {blob_id.hex()[:16]}")

    # --- snapshots ------------------------------------------------------------------
    def save_snapshot(self, snapshot: Snapshot) -> str:
        snapshot.id = self.put_sealed("snapshots", snapshot.to_json(), SNAPSHOT_AAD)
        return snapshot.id

    def snapshot_ids(self) -> list[str]:
        ids = [k.rsplit("/", 1)[-1] for k in self.store.list("snapshots/")]
        if self.cache is not None:
            self.cache.keep_only("snapshots", set(ids))
        return ids

    def load_snapshot(self, snapshot_id: str) -> Snapshot:
        key = f"snapshots/{snapshot_id}"
        try:
            plain = self.get_sealed(
                key, SNAPSHOT_AAD, what=f"snapshot {snapshot_id[:8]}", cache="snapshots"
            )
        except ObjectNotFound:
            raise SnapshotNotFound(f"no snapshot {snapshot_id}") from None
        return Snapshot.from_json(plain, snapshot_id)

    def snapshots(self, *, errors: list | None = None) -> list[Snapshot]:
        """All snapshots, oldest first. Damaged ones are skipped (and listed
        in ``errors`` as (id, message) if given)."""
        ids = self.snapshot_ids()

        def load(sid):
            try:
                return self.load_snapshot(sid), None
            except (CorruptObject, UnsupportedVersion, StoreError) as exc:
                return None, (sid, str(exc))

        out = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            for snap, err in pool.map(load, ids):
                if snap is not None:
                    out.append(snap)
                elif errors is not None:
                    errors.append(err)
        out.sort(key=lambda s: (s.time, s.id))
        return out

    def find_snapshot(
        self, ref: str, *, hostname: str | None = None, paths: list[str] | None = None
    ) -> Snapshot:
        """By full id, unique id prefix, or ``latest`` (optionally the latest
        of a host / path set)."""
        ref = ref.strip()
        if ref == "latest":
            snaps = self.snapshots()
            if hostname is not None:
                snaps = [s for s in snaps if s.hostname == hostname]
            if paths is not None:
                snaps = [s for s in snaps if sorted(s.paths) == sorted(paths)]
            if not snaps:
                raise SnapshotNotFound("the repository has no snapshots")
            return snaps[-1]
        if not ref or any(c not in "0123456789abcdef" for c in ref.lower()):
            raise SnapshotNotFound(f"invalid snapshot id {ref!r}")
        matches = [sid for sid in self.snapshot_ids() if sid.startswith(ref.lower())]
        if not matches:
            raise SnapshotNotFound(f"no snapshot matches {ref!r}")
        if len(matches) > 1:
            raise AmbiguousSnapshot(
                f"snapshot prefix {ref!r} is ambiguous ({len(matches)} matches): use more characters"
            )
        return self.load_snapshot(matches[0])

    # --- walking ------------------------------------------------------------------
    def walk(self, tree_id: str | bytes, prefix: bytes = b"") -> Iterator[tuple[bytes, Node]]:
        """(path, node) for every node under a tree, depth first, parents first."""
        stack: list[tuple[bytes, str | bytes]] = [(prefix, tree_id)]
        while stack:
            base, tid = stack.pop()
            children = []
            for node in self.load_nodes(tid):
                path = base + b"/" + node.name
                yield path, node
                if node.type == DIR and node.subtree:
                    children.append((path, node.subtree))
            stack.extend(reversed(children))

    def __repr__(self) -> str:
        return f"<Repository {self.id[:8]} at {self.store.location}>"


def _canonical(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def default_hostname() -> str:
    return os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")
