"""OS-specific glue that is not a snapshot provider: a minimal ctypes COM layer
(com.py) and Windows file opening with full sharing (windows_files.py).

Everything here imports on every OS; the Windows-only calls fail only when
used elsewhere.
"""
