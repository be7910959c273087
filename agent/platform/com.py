"""A minimal COM client in ctypes: enough for VSS and the network-cost API.

Why ctypes and not pywin32/comtypes: IVssBackupComponents is not an
automation (IDispatch) interface, so pywin32 has no binding for it, and
comtypes would need its interface declared by hand anyway. Declaring each
interface as a table of (vtable index, argument types) is the same amount of
work, adds no dependency to the agent's Windows installer, and - because the
tables are plain data - lets the tests build fake COM objects with exactly the
same signatures on any OS (tests/agent/open_files/fakecom.py): on 64-bit
Windows there is a single calling convention, which CFUNCTYPE reproduces.
"""

from __future__ import annotations

import ctypes
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# One calling convention on x64 Windows; CFUNCTYPE elsewhere, for the fakes.
FUNCTYPE = getattr(ctypes, "WINFUNCTYPE", ctypes.CFUNCTYPE)
HRESULT = ctypes.c_int32  # raw value: failures are checked by the caller

S_OK = 0
S_FALSE = 1
E_ACCESSDENIED = 0x80070005
E_INVALIDARG = 0x80070057
E_OUTOFMEMORY = 0x8007000E
E_UNEXPECTED = 0x8000FFFF
RPC_E_TOO_LATE = 0x80010119  # CoInitializeSecurity already called: fine
RPC_E_CHANGED_MODE = 0x80010106  # COM already initialised apartment-threaded

CLSCTX_ALL = 0x17
COINIT_MULTITHREADED = 0x0
RPC_C_AUTHN_LEVEL_PKT_PRIVACY = 6
RPC_C_IMP_LEVEL_IDENTIFY = 2
RPC_C_IMP_LEVEL_IMPERSONATE = 3
EOAC_DYNAMIC_CLOAKING = 0x40


class GUID(ctypes.Structure):
    _fields_ = [
        ("Data1", ctypes.c_uint32),
        ("Data2", ctypes.c_uint16),
        ("Data3", ctypes.c_uint16),
        ("Data4", ctypes.c_ubyte * 8),
    ]

    @classmethod
    def parse(cls, text: str | uuid.UUID) -> GUID:
        return cls.from_buffer_copy(uuid.UUID(str(text)).bytes_le)

    def __str__(self) -> str:
        return "{" + str(uuid.UUID(bytes_le=bytes(self))).upper() + "}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GUID) and bytes(self) == bytes(other)

    def __hash__(self) -> int:
        return hash(bytes(self))


GUID_NULL = GUID()


def unsigned(hr: int) -> int:
    return hr & 0xFFFFFFFF


def failed(hr: int) -> bool:
    return unsigned(hr) & 0x80000000 != 0


class ComError(OSError):
    """A COM call returned a failure HRESULT."""

    def __init__(self, what: str, hr: int, meaning: str = ""):
        self.hr = unsigned(hr)
        self.what = what
        super().__init__(f"{what} failed: 0x{self.hr:08X}" + (f" ({meaning})" if meaning else ""))


@dataclass(frozen=True)
class Interface:
    """A COM interface as data: method name -> (vtable index, argument types).

    Argument types exclude the implicit ``this`` pointer; every method returns
    an HRESULT except those listed in ``returns`` (e.g. IUnknown::Release).
    """

    name: str
    methods: dict[str, tuple[int, Sequence[Any]]]
    returns: dict[str, Any] | None = None

    def prototype(self, method: str):
        _, argtypes = self.methods[method]
        restype = (self.returns or {}).get(method, HRESULT)
        return FUNCTYPE(restype, ctypes.c_void_p, *argtypes)


IUNKNOWN_METHODS: dict[str, tuple[int, Sequence[Any]]] = {
    "QueryInterface": (0, [ctypes.POINTER(GUID), ctypes.POINTER(ctypes.c_void_p)]),
    "AddRef": (1, []),
    "Release": (2, []),
}
IUNKNOWN_RETURNS = {"AddRef": ctypes.c_ulong, "Release": ctypes.c_ulong}


def interface(name: str, methods: dict[str, tuple[int, Sequence[Any]]]) -> Interface:
    return Interface(name, IUNKNOWN_METHODS | methods, dict(IUNKNOWN_RETURNS))


class ComObject:
    """An interface pointer; ``obj.Method(args...)`` calls through its vtable
    and returns the raw HRESULT (or the declared return value)."""

    def __init__(self, ptr: int | ctypes.c_void_p, iface: Interface):
        self.ptr = ptr.value if isinstance(ptr, ctypes.c_void_p) else ptr
        if not self.ptr:
            raise ValueError(f"null {iface.name} pointer")
        self.iface = iface

    def __getattr__(self, method: str):
        if method not in self.iface.methods:
            raise AttributeError(f"{self.iface.name} has no method {method}")
        index, _ = self.iface.methods[method]
        vtable = ctypes.cast(self.ptr, ctypes.POINTER(ctypes.POINTER(ctypes.c_void_p)))[0]
        fn = self.iface.prototype(method)(vtable[index])
        return lambda *args: fn(self.ptr, *args)

    def check(self, method: str, *args, meaning=None) -> int:
        """Call and raise ComError on a failure HRESULT; return the HRESULT."""
        hr = getattr(self, method)(*args)
        if failed(hr):
            raise ComError(f"{self.iface.name}::{method}", hr, (meaning or (lambda h: ""))(hr))
        return unsigned(hr)

    def release(self) -> None:
        if self.ptr:
            self.Release()
            self.ptr = 0


def initialise(lib=None) -> None:  # pragma: no cover - Windows only
    """COM for this thread (multithreaded) and process-wide security.

    VSS calls back into the requester: without CoInitializeSecurity at
    packet-privacy / identify level with dynamic cloaking, the VSS service's
    callbacks are refused and DoSnapshotSet fails with E_ACCESSDENIED.
    Called once per process; a second call answers RPC_E_TOO_LATE, which is fine.
    """
    lib = lib or ctypes.WinDLL("ole32")  # type: ignore[attr-defined]
    hr = lib.CoInitializeEx(None, COINIT_MULTITHREADED)
    if failed(hr) and unsigned(hr) != RPC_E_CHANGED_MODE:
        raise ComError("CoInitializeEx", hr)
    hr = lib.CoInitializeSecurity(
        None, -1, None, None, RPC_C_AUTHN_LEVEL_PKT_PRIVACY, RPC_C_IMP_LEVEL_IDENTIFY, None,
        EOAC_DYNAMIC_CLOAKING, None,
    )  # fmt: skip
    if failed(hr) and unsigned(hr) != RPC_E_TOO_LATE:
        raise ComError("CoInitializeSecurity", hr)


def create_instance(
    clsid: str, iface: Interface, iid: str, lib=None
) -> ComObject:  # pragma: no cover
    lib = lib or ctypes.WinDLL("ole32")  # type: ignore[attr-defined]
    out = ctypes.c_void_p()
    hr = lib.CoCreateInstance(
        ctypes.byref(GUID.parse(clsid)), None, CLSCTX_ALL, ctypes.byref(GUID.parse(iid)),
        ctypes.byref(out),
    )  # fmt: skip
    if failed(hr):
        raise ComError(f"CoCreateInstance({iface.name})", hr)
    return ComObject(out, iface)
