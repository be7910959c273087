"""Point-in-time views of the sources, per OS, behind one interface.

The daemon uses ``point_in_time`` (chooser.py) and calls
``cleanup_stale_snapshots`` once at start; the providers are
windows_vss.py, macos_apfs.py, linux_btrfs.py and linux_lvm.py.
"""

from agent.snapshots.base import (
    Availability,
    OpenFileMode,
    SnapshotError,
    SnapshotProvider,
    SnapshotRequiredError,
    SnapshotView,
)
from agent.snapshots.chooser import (
    PointInTime,
    cleanup_stale_snapshots,
    default_providers,
    own_folders_excludes,
    point_in_time,
)

__all__ = [
    "Availability",
    "OpenFileMode",
    "PointInTime",
    "SnapshotError",
    "SnapshotProvider",
    "SnapshotRequiredError",
    "SnapshotView",
    "cleanup_stale_snapshots",
    "default_providers",
    "own_folders_excludes",
    "point_in_time",
]
