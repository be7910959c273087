"""Object stores: the one small interface the repository is written against.

A repository is a flat namespace of immutable objects named by ``/``-separated
keys (``config``, ``keys/<id>``, ``data/<xx>/<id>``, ``index/<id>``,
``snapshots/<id>``). Everything the engine needs from storage is here, so a
local directory, S3 or MinIO and test doubles are interchangeable.

Semantics every implementation must honour:

* ``put`` is **create-only**. The engine never rewrites an object: every key is
  either random or derived from the object's content, so writing a key twice
  means writing the same bytes twice. Implementations that can detect an
  existing key atomically raise :class:`ObjectExists` (LocalStore does); an
  implementation that cannot (plain S3 PUT) may overwrite, which is harmless
  for the reason above. Callers treat ``ObjectExists`` as "already stored".
  Production buckets grant agents no overwrite/delete rights, so an overwrite
  attempt there surfaces as a :class:`StoreError`.
* An object is either absent or complete: a reader never sees a partial put.
* ``delete`` exists for server-side maintenance (prune, garbage collection)
  only; the backup path never calls it.
* Missing objects raise :class:`ObjectNotFound`; every other storage failure
  (I/O errors, permission, network after retries) raises :class:`StoreError`
  with a message that names the key.
* Implementations are safe to call from several threads at once.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = [
    "LocalStore",
    "ObjectExists",
    "ObjectNotFound",
    "ObjectStore",
    "StoreError",
    "open_store",
    "validate_key",
]


class StoreError(Exception):
    """A storage operation failed (I/O, permission, network, bad key)."""


class ObjectNotFound(StoreError):
    """The object does not exist."""

    def __init__(self, key: str, where: str = ""):
        self.key = key
        super().__init__(f"object not found: {key}" + (f" in {where}" if where else ""))


class ObjectExists(StoreError):
    """``put`` of a key that already exists (create-only stores)."""

    def __init__(self, key: str, where: str = ""):
        self.key = key
        super().__init__(f"object already exists: {key}" + (f" in {where}" if where else ""))


def validate_key(key: str) -> str:
    """Reject keys that could escape the store's root or mean two things."""
    if (
        not key
        or key.startswith("/")
        or key.endswith("/")
        or "\\" in key
        or "\x00" in key
        or any(part in ("", ".", "..") for part in key.split("/"))
    ):
        raise StoreError(f"invalid object key: {key!r}")
    return key


class ObjectStore(abc.ABC):
    """A flat namespace of immutable objects (see module docstring)."""

    #: a short human description (path or URL) for messages
    location: str = ""
    #: The largest ranged read worth one request. Remote stores pay per
    #: request, so they read big ranges; a local disk does not, and smaller
    #: ranges keep a restore's memory down (measured in docs/performance.md).
    max_read_range: int = 16 * 1024 * 1024

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Create object ``key`` with ``data``; create-only (see module docs)."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object. Raises ObjectNotFound."""

    @abc.abstractmethod
    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``. Raises ObjectNotFound; a range past
        the end returns the bytes that exist (callers check the length)."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the object exists."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys that start with ``prefix`` (a plain string prefix, typically
        ending in ``/``), in no particular order."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (maintenance only). Missing objects are not an error."""

    def size(self, key: str) -> int:
        """Size of an object in bytes. Stores should override this cheaply."""
        return len(self.get(key))

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"


class LocalStore(ObjectStore):
    """Objects as files under a directory.

    Writes go to a temporary file in the destination directory, are fsynced,
    then hard-linked to the final name (``link`` fails if the name exists,
    which gives create-only semantics atomically), and the directory is
    fsynced so the new name survives a power cut. Readers never see partial
    objects, and a crash leaves at most a ``.tmp-*`` file, which ``list``
    ignores and maintenance can remove.
    """

    TEMP_PREFIX = ".tmp-"
    max_read_range = 4 * 1024 * 1024

    def __init__(self, root: str | bytes | os.PathLike, *, create: bool = True, fsync: bool = True):
        self.root = Path(os.fsdecode(root)).absolute()
        self.location = str(self.root)
        self.fsync = fsync
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create store directory {self.root}: {exc}") from exc
        elif not self.root.is_dir():
            raise StoreError(f"store directory does not exist: {self.root}")
        self._known_dirs: set[Path] = set()

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        created = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        if created and self.fsync:
            self._fsync_dir(directory.parent)
        self._known_dirs.add(directory)

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        except OSError:  # some filesystems refuse fsync on directories
            pass
        finally:
            os.close(fd)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = path.parent / f"{self.TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            self._ensure_dir(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ObjectExists(key, self.location) from None
            except OSError as exc:
                # Filesystems without hard links: rename is still atomic, but
                # create-only is then best-effort (checked just before).
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                if path.exists():
                    raise ObjectExists(key, self.location) from None
                os.replace(tmp, path)
            if self.fsync:
                self._fsync_dir(path.parent)
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot write {key} in {self.location}: {exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ObjectNotFound(key, self.location) from None
        except OSError as exc:
            raise StoreError(f"cannot read {key} in {self.location}: {exc}") from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise StoreError(f"invalid range {offset}+{length} for {key}")
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise ObjectNotFound(key, self.location) from None
        except OSError as exc:
            raise StoreError(f"cannot read {key} in {self.location}: {exc}") from exc
        try:
            parts = []
            while length > 0:
                piece = os.pread(fd, length, offset)
                if not piece:
                    break
                parts.append(piece)
                offset += len(piece)
                length -= len(piece)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        except OSError as exc:
            raise StoreError(f"cannot read {key} in {self.location}: {exc}") from exc
        finally:
            os.close(fd)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(key, self.location) from None
        except OSError as exc:
            raise StoreError(f"cannot stat {key} in {self.location}: {exc}") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        # Walk only the directory the prefix points into, not the whole store.
        base_dir = prefix.rpartition("/")[0]
        start = self.root / base_dir if base_dir else self.root
        if not start.is_dir():
            return
        try:
            for dirpath, dirnames, filenames in os.walk(start, onerror=_raise):
                dirnames.sort()
                rel = os.path.relpath(dirpath, self.root)
                rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
                for name in sorted(filenames):
                    if name.startswith(self.TEMP_PREFIX):
                        continue
                    key = rel + name
                    if key.startswith(prefix):
                        yield key
        except OSError as exc:
            raise StoreError(f"cannot list {prefix!r} in {self.location}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete {key} in {self.location}: {exc}") from exc


def _raise(exc: OSError) -> None:
    raise exc


def open_store(url: str, **opts) -> ObjectStore:
    """The store a repository URL names.

    * a local path, or ``file:///path``: :class:`LocalStore`
    * ``s3://BUCKET/PREFIX``: ``agent.engine.s3store.S3Store`` (imported
      lazily, so local use needs no S3 SDK). Options, each falling back to the
      environment: ``endpoint`` (``CAIRN_S3_ENDPOINT``, a URL such as
      ``http://127.0.0.1:9000``; default ``https://s3.amazonaws.com``),
      ``access_key`` (``AWS_ACCESS_KEY_ID``), ``secret_key``
      (``AWS_SECRET_ACCESS_KEY``), ``region`` (``AWS_REGION`` /
      ``AWS_DEFAULT_REGION``), ``secure`` (from the endpoint's scheme).
      S3Store receives ``endpoint`` as ``host[:port]`` without scheme, and
      ``secure`` as a bool, which is what the minio SDK takes.

    Other options are passed through to the store's constructor.
    """
    if url.startswith("s3://"):
        parsed = urlparse(url)
        bucket = parsed.netloc
        prefix = parsed.path.strip("/")
        if not bucket:
            raise StoreError(f"no bucket in repository URL {url!r} (expected s3://BUCKET/PREFIX)")
        env = os.environ
        endpoint = (
            opts.pop("endpoint", None) or env.get("CAIRN_S3_ENDPOINT") or "https://s3.amazonaws.com"
        )
        secure = opts.pop("secure", None)
        if "://" in endpoint:
            scheme, _, endpoint = endpoint.partition("://")
            if secure is None:
                secure = scheme.lower() == "https"
        endpoint = endpoint.rstrip("/")
        if secure is None:
            secure = True
        access_key = opts.pop("access_key", None) or env.get("AWS_ACCESS_KEY_ID")
        secret_key = opts.pop("secret_key", None) or env.get("AWS_SECRET_ACCESS_KEY")
        region = (
            opts.pop("region", None)
            or env.get("AWS_REGION")
            or env.get("AWS_DEFAULT_REGION")
            or None
        )
        try:
            from agent.engine.s3store import S3Store
        except ImportError as exc:
            raise StoreError(f"S3 repositories are not available: {exc}") from exc
        return S3Store(
            bucket=bucket,
            prefix=prefix,
            endpoint=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            secure=secure,
            **opts,
        )
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"file:// URL with a remote host is not supported: {url!r}")
        url = unquote(parsed.path)
    elif "://" in url:
        raise StoreError(f"unsupported repository URL {url!r} (use a path or s3://BUCKET/PREFIX)")
    return LocalStore(url, **opts)
