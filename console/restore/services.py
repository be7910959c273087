"""Restore without the device (issue 11): browse, compare, search and
download a device's snapshots on the console's own processes.

The console opens the device repository with its full-rights storage
credentials (``targets.admin_store``) and the organisation key, like
maintenance does, so a device that is offline or revoked is browsed the same
as an online one. Nothing here writes plaintext to disk:

* **Cache.** Repositories are opened with the engine's object cache under
  ``VAR_DIR/restore-cache/<repository id>/`` (directories 0700, files 0600):
  index objects and tree packs as stored, i.e. *ciphertext* named by their
  BLAKE3 (a read is re-hashed, so the cache can never serve a damaged or
  stale object), and ``counts.sqlite`` (tree id -> entries; ids and numbers
  only). Its size is the repository's index plus its tree packs (measured in
  docs/performance.md). Decrypted trees live only in memory: an opened
  repository (index + a bounded LRU of tree packs) is kept per process for
  ``REPO_TTL`` seconds, then reopened (new backups appear).
* **Names.** Every stored name becomes a path component or a zip entry name
  only through ``agent.engine.paths.safe_name`` (a compromised PC writes
  hostile names): a name it refuses is skipped and reported, never joined.
* **Downloads** stream chunk by chunk, decrypting as they go (a small
  read-ahead), so memory stays bounded whatever the size; a file honours one
  HTTP byte range (resumable), a folder is a ZIP64 zip written to a
  non-seekable sink.

The work is split by concept, each in its module of ``console/restore/``:
``errors`` (refusals and their HTTP status), ``repositories`` (opening, the
cache, tree counts), ``snapshots`` (a snapshot reference, a path, the walk to
its node), ``listing`` (a folder page), ``compare``, ``search``,
``streaming`` (a file's bytes, byte ranges), ``zipping`` (a folder as a zip)
and ``downloads``. This module re-exports the names callers use, so views,
tests and the bench keep importing ``console.restore.services``.
"""

from __future__ import annotations

from console.restore.compare import MAX_DIFFS, Comparison, compare
from console.restore.downloads import Download, download, prepare_download
from console.restore.errors import NotFound, RangeNotSatisfiable, RestoreError, Unavailable
from console.restore.listing import MAX_PAGE, PAGE, Listing, folder_page, list_folder
from console.restore.repositories import (
    REPO_TTL,
    REPOS_KEPT,
    PrivateCache,
    TreeCounts,
    cache_dir,
    child_counts,
    forget_cached,
    open_cached,
    open_repository,
)
from console.restore.search import (
    MAX_PATTERN,
    MAX_SEARCH_LIMIT,
    PATTERN_PATTERN,
    SEARCH_DEVICES,
    SEARCH_LIMIT,
    SEARCH_SECONDS,
    SEARCH_SNAPSHOTS,
    SearchResult,
    matcher,
    search,
)
from console.restore.snapshots import (
    MAX_PATH,
    PATH_PATTERN,
    checked_name,
    find_snapshot,
    locate,
    parse_path,
)
from console.restore.streaming import READ_AHEAD, file_bytes, parse_range
from console.restore.zipping import zip_name

__all__ = [
    "MAX_DIFFS",
    "MAX_PAGE",
    "MAX_PATH",
    "MAX_PATTERN",
    "MAX_SEARCH_LIMIT",
    "PAGE",
    "PATH_PATTERN",
    "PATTERN_PATTERN",
    "READ_AHEAD",
    "REPO_TTL",
    "REPOS_KEPT",
    "SEARCH_DEVICES",
    "SEARCH_LIMIT",
    "SEARCH_SECONDS",
    "SEARCH_SNAPSHOTS",
    "Comparison",
    "Download",
    "Listing",
    "NotFound",
    "PrivateCache",
    "RangeNotSatisfiable",
    "RestoreError",
    "SearchResult",
    "TreeCounts",
    "Unavailable",
    "cache_dir",
    "checked_name",
    "child_counts",
    "compare",
    "download",
    "file_bytes",
    "find_snapshot",
    "folder_page",
    "forget_cached",
    "list_folder",
    "locate",
    "matcher",
    "open_cached",
    "open_repository",
    "parse_path",
    "parse_range",
    "prepare_download",
    "search",
    "zip_name",
]
