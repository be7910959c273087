"""Native paths and repository paths: the one place that knows Windows.

Trees record *repository paths*: ``/``-separated, absolute, one tree level
per component (docs/format.md, "Paths"). This module maps a native absolute
path to its repository path and back, per path *flavour*, with pure
functions, so the Windows rules are testable on any OS:

========================  ==================================
native (Windows)          repository path
========================  ==================================
``C:\\Users\\ana\\x``     ``/C/Users/ana/x`` (drive upper-cased)
``c:\\``                  ``/C``
``\\\\srv\\Share\\x``     ``/UNC/srv/share/x`` (server, share lower-cased)
``\\\\?\\C:\\x``          ``/C/x`` (extended prefix stripped)
``\\\\?\\UNC\\srv\\s\\x`` ``/UNC/srv/s/x``
========================  ==================================

POSIX paths are their own repository paths (normalised, absolute).

Going back out, a Windows path of 248 characters or more gets the ``\\\\?\\``
(or ``\\\\?\\UNC\\``) prefix, which lifts the MAX_PATH limit; every native
path the engine builds for I/O goes through :func:`join_native`, which adds
it when a path grows that long.

Restoring a name onto Windows that Windows cannot hold (``a:b``, ``x\\y``,
``CON``, a trailing dot or space, bytes that are not UTF-8) escapes each
offending character or byte ``c`` as the private-use character
``U+F000 + c`` (the mapping Cygwin and WSL use, so those show the original
name again); :func:`unescape_name` reverses it. Onto macOS, whose volumes
refuse names that are not UTF-8, only such bytes are escaped.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
import re
import sys
from dataclasses import dataclass

from agent.engine.errors import UnsafeName


@dataclass(frozen=True)
class Flavour:
    """How native paths look. ``sep`` is the separator of native paths the
    engine builds for I/O (tests of the Windows rules on Linux use ``/``, with
    a temporary directory standing in for the drive)."""

    name: str  # "posix" | "windows"
    case_insensitive: bool
    sep: bytes

    @property
    def windows(self) -> bool:
        return self.name == "windows"


POSIX = Flavour("posix", False, b"/")
WINDOWS = Flavour("windows", True, b"\\")
FLAVOURS = {"posix": POSIX, "windows": WINDOWS}

#: the flavour of this machine; tests monkeypatch it (the engine reads it at
#: the start of each run through :func:`current`)
NATIVE = WINDOWS if os.name == "nt" else POSIX

#: Windows paths at least this long get the ``\\?\`` prefix (CreateDirectoryW
#: refuses 248 and more without it; files 260)
LONG_PATH = 248

_EXTENDED = "\\\\?\\"
_EXTENDED_UNC = "\\\\?\\UNC\\"
_DEVICE = "\\\\.\\"
UNC = b"UNC"


def current() -> Flavour:
    return NATIVE


def flavour_named(name: str | None) -> Flavour:
    """A snapshot's ``path_flavour`` (absent in older snapshots: POSIX)."""
    return FLAVOURS.get(name or "posix", POSIX)


def target_folds_case() -> bool:
    """Whether restored names differing only in case collide (Windows, and
    macOS whose volumes are case-insensitive by default)."""
    return current().case_insensitive or sys.platform == "darwin"


def target_needs_utf8() -> bool:
    """Whether restored names must be UTF-8 (APFS and HFS+ refuse others)."""
    return sys.platform == "darwin"


# --- native -> repository ----------------------------------------------------------------
def strip_extended(path: str) -> str:
    r"""``\\?\C:\x`` -> ``C:\x``; ``\\?\UNC\srv\s`` -> ``\\srv\s``; others unchanged."""
    if path[:8].upper() == _EXTENDED_UNC.upper():
        return "\\\\" + path[8:]
    if path.startswith(_EXTENDED) or path.startswith(_DEVICE):
        rest = path[4:]
        if len(rest) >= 2 and rest[1] == ":":
            return rest
    return path


def strip_extended_bytes(path: bytes) -> bytes:
    if not path.startswith(b"\\\\"):
        return path
    return os.fsencode(strip_extended(os.fsdecode(path)))


def to_repo(path: str | bytes, flavour: Flavour) -> bytes:
    """A native path (absolute; relative ones only on their own OS) as a
    repository path. Raises ValueError for a path with no repository form."""
    if not flavour.windows:
        p = os.fsencode(path)
        if not p.startswith(b"/"):
            p = os.path.abspath(p)
        p = posixpath.normpath(p)
        if p.startswith(b"//"):
            p = b"/" + p.lstrip(b"/")
        return p
    text = strip_extended(os.fsdecode(path).replace("/", "\\"))
    if len(text) == 2 and text[1] == ":":
        text += "\\"  # a bare drive ("D:" in a policy) is the whole drive
    if not ntpath.isabs(text) or not ntpath.splitdrive(text)[0]:
        if current().windows and os.name == "nt":  # pragma: no cover - Windows only
            text = ntpath.abspath(text)
        else:
            raise ValueError(f"not an absolute Windows path (drive or UNC): {text!r}")
    drive, rest = ntpath.splitdrive(ntpath.normpath(text))
    if len(drive) == 2 and drive[1] == ":" and drive[0].isascii() and drive[0].isalpha():
        head = "/" + drive[0].upper()
    elif drive.startswith("\\\\"):
        parts = drive[2:].split("\\")
        if len(parts) != 2 or not all(parts) or parts[0] in ("?", "."):
            raise ValueError(f"not a UNC path \\\\server\\share: {text!r}")
        head = "/UNC/" + parts[0].lower() + "/" + parts[1].lower()
    else:
        raise ValueError(f"no drive letter or UNC share in {text!r}")
    parts = [c for c in rest.split("\\") if c]
    return os.fsencode(head + "".join("/" + c for c in parts))


# --- repository -> native ----------------------------------------------------------------
def to_native(repo_path: bytes, flavour: Flavour) -> str | None:
    """The native path of a repository path (in-place restore, display);
    None where there is none (Windows: ``/``, ``/UNC``, ``/UNC/server``, or a
    path not starting with a drive letter or ``UNC``)."""
    if not flavour.windows:
        return os.fsdecode(repo_path or b"/")
    return _windows_path([os.fsdecode(p) for p in repo_path.split(b"/") if p])


def _windows_path(parts: list[str]) -> str | None:
    if not parts:
        return None
    first = parts[0]
    if len(first) == 1 and first.isascii() and first.isalpha():
        head, rest = first.upper() + ":\\", parts[1:]
    elif first == "UNC" and len(parts) >= 3:
        head, rest = "\\\\" + parts[1] + "\\" + parts[2] + "\\", parts[3:]
    else:
        return None
    return head + "\\".join(rest)


def long_path(path: bytes, flavour: Flavour) -> bytes:
    r"""``\\?\`` in front of a long absolute Windows path (others unchanged)."""
    if flavour.sep != b"\\" or len(path) < LONG_PATH or path.startswith(b"\\\\?\\"):
        return path
    if path.startswith(b"\\\\.\\"):
        return path
    if path.startswith(b"\\\\"):
        return b"\\\\?\\UNC\\" + path[2:]
    if len(path) >= 3 and path[1:3] == b":\\":
        return b"\\\\?\\" + path
    return path


def join_native(parent: bytes, name: bytes, flavour: Flavour) -> bytes:
    """``parent`` + separator + ``name`` for I/O (long Windows paths prefixed)."""
    sep = flavour.sep
    base = parent.rstrip(sep)
    if sep != b"/":
        base = base.rstrip(b"/")
    if flavour.windows and sep == b"\\":
        return long_path(base + sep + name, flavour)
    return base + sep + name


def native_target(target: str | bytes, flavour: Flavour) -> bytes:
    """A restore target as an absolute native path, no trailing separator
    (but ``D:\\``)."""
    if flavour.sep != b"\\":
        return os.fsencode(os.path.abspath(target)).rstrip(b"/")
    text = strip_extended(os.fsdecode(target).replace("/", "\\"))
    text = ntpath.abspath(text) if os.name == "nt" else ntpath.normpath(text)
    if len(text) == 3 and text[1:] == ":\\":
        return os.fsencode(text)  # a drive's root keeps its backslash ("D:" is a directory on D)
    return os.fsencode(text).rstrip(b"\\")


def dirname_native(path: bytes, flavour: Flavour) -> bytes:
    i = path.rstrip(flavour.sep).rfind(flavour.sep)
    return path[:i] if i > 0 else path[: i + 1]


def drive_root(path: bytes, flavour: Flavour) -> bytes:
    r"""The volume part of a native Windows path, without a trailing
    separator: ``\\?\C:``, ``C:``, ``\\srv\share``, ``\\?\UNC\srv\share``."""
    text = os.fsdecode(path)
    prefix = ""
    if text[:8].upper() == _EXTENDED_UNC.upper():
        prefix, text = text[:8], "\\\\" + text[8:]
        drive = ntpath.splitdrive(text)[0]
        return os.fsencode(prefix + drive[2:])
    if text.startswith(_EXTENDED):
        prefix, text = text[:4], text[4:]
    return os.fsencode(prefix + ntpath.splitdrive(text)[0])


def native_display(repo_path: bytes, flavour: Flavour) -> str:
    """For messages and listings: the native path, else the repository path."""
    text = repo_path.decode("utf-8", "backslashreplace") or "/"
    if not flavour.windows:
        return text
    native = _windows_path([p for p in text.split("/") if p])
    return text if native is None else native


# --- names --------------------------------------------------------------------------------
_WIN_ILLEGAL = frozenset('"*:<>?\\|') | {chr(c) for c in range(32)}
_RESERVED = re.compile(r"(?i)(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?\Z")
_ESC = 0xF000


def escape_name(name: bytes, flavour: Flavour) -> bytes:
    """A name from any snapshot as the destination OS can hold it (see the
    module docstring); unchanged when it is already valid there."""
    if not flavour.windows:
        if not target_needs_utf8():
            return name
        try:
            name.decode("utf-8")
            return name
        except UnicodeDecodeError:  # macOS: only the bytes that are not UTF-8
            text = name.decode("utf-8", "surrogateescape")
        return "".join(
            chr(_ESC + ord(c) - 0xDC00) if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text
        ).encode("utf-8")
    try:  # Windows names may hold lone surrogates (encoded like Python does)
        text, raw_bytes = name.decode("utf-8", "surrogatepass"), False
    except UnicodeDecodeError:
        text, raw_bytes = name.decode("utf-8", "surrogateescape"), True
    out = []
    for ch in text:
        code = ord(ch)
        if raw_bytes and 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
            out.append(chr(_ESC + code - 0xDC00))
        elif ch in _WIN_ILLEGAL:
            out.append(chr(_ESC + code))
        else:
            out.append(ch)
    if out and out[-1] in (" ", "."):
        out[-1] = chr(_ESC + ord(out[-1]))
    joined = "".join(out)
    stem = joined.split(".", 1)[0]
    if stem and _RESERVED.match(joined):
        out[len(stem) - 1] = chr(_ESC + ord(stem[-1]))
    return "".join(out).encode("utf-8", "surrogatepass")


#: what no name read from a volume of the flavour can hold: ``/`` and NUL
#: anywhere; on Windows also ``\\`` and ``:`` (``C:evil`` is drive-relative)
_NAME_FORBIDDEN = {"posix": b"/\0", "windows": b"/\0\\:"}


def safe_name(name: bytes, src: Flavour, dst: Flavour) -> bytes:
    """A stored tree entry name as one path component on ``dst``, or
    :class:`UnsafeName`.

    The one gate between a name in a tree (data a compromised PC may have
    written) and a path: restore joins the result to its parent directory,
    and whatever lists or downloads a snapshot's files (browse, search, zip)
    joins these components, so no stored name can climb out of the place it
    is put in. Refused: empty, ``.``, ``..``, and names with a character no
    real ``src`` volume has in a name (``/``, NUL; on Windows ``\\`` and
    ``:``). The name is then escaped for ``dst`` (:func:`escape_name`) and
    checked again against ``dst``'s rules and separator. Symbolic links are
    the caller's business: only it touches the file system."""
    why = _name_problem(name, src)
    if why is None:
        escaped = escape_name(name, dst)
        why = _name_problem(escaped, dst)
        if why is None and dst.sep not in escaped:
            return escaped
        why = why or "contains a path separator"
    shown = printable_name(name)
    raise UnsafeName(f"unsafe name '{shown}' in a directory listing: {why}", name=name)


def _name_problem(name: bytes, flavour: Flavour) -> str | None:
    if name in (b"", b".", b".."):
        return "names a directory itself, not an entry in it" if name else "empty"
    bad = [chr(c) for c in _NAME_FORBIDDEN[flavour.name] if c in name]
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return f"contains {shown} (not possible in a {flavour.name} file name)"
    return None


def printable_name(name: bytes) -> str:
    """A name for messages: undecodable bytes and control characters escaped."""
    text = name.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def unescape_name(name: bytes) -> bytes:
    """Reverse :func:`escape_name` (``U+F001``-``U+F0FF`` back to the
    character or byte they stand for)."""
    text = name.decode("utf-8", "surrogateescape")
    if not any(_ESC < ord(c) <= _ESC + 0xFF for c in text):
        return name
    out = bytearray()
    for ch in text:
        code = ord(ch)
        if _ESC < code < _ESC + 0x80:
            out += chr(code - _ESC).encode()
        elif _ESC + 0x80 <= code <= _ESC + 0xFF:
            out.append(code - _ESC)
        else:
            out += ch.encode("utf-8", "surrogateescape")
    return bytes(out)


def case_key(name: bytes) -> str:
    """Names equal under this key are one name on a case-insensitive volume."""
    return name.decode("utf-8", "surrogateescape").casefold()


# --- patterns -----------------------------------------------------------------------------
_DRIVE_PATTERN = re.compile(r"([A-Za-z]):(/|\Z)")


def repo_pattern(pattern: str, flavour: Flavour) -> str:
    r"""An include/exclude pattern written for ``flavour`` in repository form:
    on Windows ``\`` becomes ``/``, ``C:\Users\*`` ``/C/Users/*`` and
    ``\\srv\share\x`` ``/UNC/srv/share/x``. POSIX patterns are unchanged."""
    if not flavour.windows:
        return pattern
    p = strip_extended(pattern).replace("\\", "/")
    m = _DRIVE_PATTERN.match(p)
    if m:
        return "/" + m.group(1).upper() + p[2:]
    if p.startswith("//") and not p.startswith("///"):
        parts = p[2:].split("/", 2)
        if len(parts) >= 2 and parts[0] and parts[1]:
            return "/UNC/" + "/".join([parts[0].lower(), parts[1].lower(), *parts[2:]])
    return p
