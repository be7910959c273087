"""Fake COM objects for tests: a real vtable in memory whose entries call
Python functions, built from the same interface tables the agent uses
(agent/platform/com.py), so the agent's ctypes calls are marshalled exactly
as they would be against Windows."""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from agent.platform.com import Interface

E_NOTIMPL = 0x80004001 - (1 << 32)


class FakeComObject:
    def __init__(self, iface: Interface, impl: dict[str, Callable], log: list | None = None):
        self.iface = iface
        self.impl = impl
        self.log = log if log is not None else []
        self.refs = 1
        size = max(index for index, _ in iface.methods.values()) + 1
        slots: list[int] = [0] * size
        self._callbacks = []
        for name, (index, _) in iface.methods.items():
            cb = iface.prototype(name)(self._dispatcher(name))
            self._callbacks.append(cb)
            slots[index] = ctypes.cast(cb, ctypes.c_void_p).value
        self._vtable = (ctypes.c_void_p * size)(*slots)
        self._object = (ctypes.c_void_p * 1)(ctypes.addressof(self._vtable))
        self.ptr = ctypes.addressof(self._object)

    def _dispatcher(self, name: str):
        def call(this, *args):
            assert this == self.ptr, f"{name} called on the wrong object"
            if name == "AddRef":
                self.refs += 1
                return self.refs
            if name == "Release":
                self.refs -= 1
                self.log.append((self.iface.name, "Release"))
                return self.refs
            fn = self.impl.get(name)
            self.log.append((self.iface.name, name))
            if fn is None:
                return E_NOTIMPL
            result = fn(*args)
            return 0 if result is None else result

        return call


def out_pointer(arg, obj: FakeComObject) -> None:
    """Write an interface pointer into an ``IFoo**`` out-parameter."""
    arg[0] = obj.ptr
