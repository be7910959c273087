"""The file writer of a restore: verified chunks into temporary files,
renamed over their destination when complete.

Each file is written to a temporary name in its directory (created at full
size by whichever worker gets there first, so thousands of small files are
created in parallel), chunks land at their offsets (all-zero chunks stay
holes: sparse files stay sparse), and the file is renamed over the
destination only when its last chunk is written: an interrupted restore
never leaves a half-written file under a real name, and an existing file is
replaced atomically or not at all. Metadata (owner, xattrs, mode, mtime) is
set through the open descriptor where the OS allows it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable

from agent.engine.restore_dest import Destinations, IssueSink
from agent.engine.tree import Node

#: Windows: binary mode (no CRLF translation), handles not inherited
_OPEN_FLAGS = (
    os.O_WRONLY
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOINHERIT", 0)
)
#: Windows has no pwrite, and no chmod/utime on a descriptor
_PWRITE = getattr(os, "pwrite", None)
_META_BY_FD = os.chmod in os.supports_fd and os.utime in os.supports_fd


class FileJob:
    """One file being restored: where it goes and how many chunks are still due."""

    __slots__ = ("path", "dest", "temp", "node", "remaining", "failed", "lock", "size", "created")

    def __init__(self, path: bytes, dest: bytes, temp: bytes, node: Node, chunks: int):
        self.path = path  # repository path
        self.dest = dest
        self.temp = temp
        self.node = node
        self.remaining = chunks
        self.failed: str | None = None
        self.lock = threading.Lock()
        self.size = node.file_size
        self.created = False  # the temporary file exists (made by the first writer)

    def open_for_write(self) -> int:
        """An fd on the temporary file; the first call creates it at full size
        (from whichever worker thread gets there first, so creating thousands
        of small files runs in parallel)."""
        with self.lock:
            if self.created:
                return os.open(self.temp, _OPEN_FLAGS)
            fd = os.open(self.temp, _OPEN_FLAGS | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.ftruncate(fd, self.size)
            except BaseException:
                os.close(fd)
                raise
            self.created = True
            return fd


class MetadataWriter:
    """Owner, extended attributes, mode and mtime of restored nodes."""

    def __init__(self, restore_owner: bool, issue: IssueSink):
        self.restore_owner = restore_owner
        self.issue = issue

    def apply(self, dest: bytes | int, node: Node, *, is_link: bool, where=None) -> None:
        """On a path or an open descriptor (``where`` names it in messages)."""
        by_fd = isinstance(dest, int)
        follow = by_fd or not is_link
        try:
            if self.restore_owner and node.uid is not None:
                gid = -1 if node.gid is None else node.gid
                os.chown(dest, node.uid, gid, follow_symlinks=follow)
            if node.xattrs and hasattr(os, "setxattr"):
                self._apply_xattrs(dest, node.xattrs, follow, where)
            if not is_link and node.mode is not None:
                os.chmod(dest, node.mode)
            if node.mtime_ns is not None:
                ns = node.mtime_ns
                if follow or os.utime in os.supports_follow_symlinks:
                    os.utime(dest, ns=(ns, ns), follow_symlinks=follow)
        except OSError as exc:
            shown = where if by_fd else dest
            self.issue("metadata", shown, f"cannot restore metadata: {exc.strerror or exc}")

    def _apply_xattrs(self, dest, xattrs: dict[str, bytes], follow: bool, where) -> None:
        for name, value in xattrs.items():
            try:
                os.setxattr(dest, name, value, follow_symlinks=follow)
            except OSError as exc:
                # Filesystems without xattrs, or namespaces only root may
                # set (security.*, trusted.*): not worth a warning per file.
                if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EACCES):
                    shown = where if isinstance(dest, int) else dest
                    self.issue("metadata", shown, f"cannot restore {name}: {exc.strerror}")


class FilesWriter:
    """Writes chunks into FileJobs from the fetcher's threads and finishes
    each file when its last chunk is in.

    ``done(job, problem)`` is called once per file, from the thread that
    finished it, with None or the (kind, message) of the error (counting and
    progress are the restorer's)."""

    def __init__(
        self, meta: MetadataWriter, done: Callable[[FileJob, tuple[str, str] | None], None]
    ):
        self.meta = meta
        self.done = done

    def create_empty(self, job: FileJob) -> None:
        """A file without chunks: created (raises OSError) and finished."""
        os.close(job.open_for_write())
        self.finish(job)

    def write_chunk(self, job: FileJob, plain: bytes, offset: int, zero: bool) -> None:
        if job.failed:
            self.skip_chunk(job)
            return
        try:
            fd = job.open_for_write()
        except OSError as exc:
            job.failed = f"cannot create file: {exc.strerror or exc}"
            self.skip_chunk(job)
            return
        last = False
        try:
            if not zero:  # zeros stay holes: the file was created at full size
                _write_at(fd, plain, offset)
        except OSError as exc:
            job.failed = f"write failed: {exc.strerror or exc}"
        finally:
            with job.lock:
                job.remaining -= 1
                last = job.remaining == 0
            if last and not job.failed and _META_BY_FD:
                # The last chunk: set metadata through the open descriptor
                # (no path lookups; most files are a single chunk).
                self.meta.apply(fd, job.node, is_link=False, where=job.dest)
            os.close(fd)
        if last:
            self.finish(job, meta_done=_META_BY_FD)

    def fail_chunk(self, jobs: list[tuple[FileJob, int]], reason: str) -> None:
        """A chunk that could not be read or verified fails every file using it."""
        for job, _offset in jobs:
            if not job.failed:
                job.failed = reason
            self.skip_chunk(job)

    def skip_chunk(self, job: FileJob) -> None:
        with job.lock:
            job.remaining -= 1
            last = job.remaining == 0
        if last:
            self.finish(job)

    def finish(self, job: FileJob, meta_done: bool = False) -> None:
        if job.failed:
            if job.created:
                with contextlib.suppress(OSError):
                    os.unlink(job.temp)
            self.done(job, ("damaged", f"not restored: {job.failed}"))
            return
        try:
            if not meta_done:
                self.meta.apply(job.temp, job.node, is_link=False)
            os.replace(job.temp, job.dest)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(job.temp)
            self.done(job, ("error", f"cannot finish file: {exc.strerror or exc}"))
            return
        self.done(job, None)


def _write_at(fd: int, plain: bytes, offset: int) -> None:
    view = memoryview(plain)
    while view:
        if _PWRITE is not None:
            n = _PWRITE(fd, view, offset)
        else:  # the descriptor is this thread's own
            os.lseek(fd, offset, os.SEEK_SET)
            n = os.write(fd, view)
        view = view[n:]
        offset += n


def relink(files: list[tuple[bytes, Node]], dests: Destinations, restored: set[bytes]) -> None:
    """Make restored copies of hard-linked files links again."""
    for path, node in files:
        if node.link_to is None:
            continue
        first, dest = dests.get(node.link_to), dests[path]
        if first not in restored or dest not in restored:
            continue  # not both restored this time: keep the copy
        tmp = dests.temp_beside(dest)
        try:
            os.link(first, tmp)
            os.replace(tmp, dest)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # the copy stays: same content, only not linked


__all__ = ["FileJob", "FilesWriter", "MetadataWriter", "relink"]
