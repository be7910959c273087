"""A local directory as an object store (see base.py for the semantics)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from agent.engine.store.base import (
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    StoreError,
    validate_key,
)

__all__ = ["LocalStore"]


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
