"""The host library (every firmware/*.c, built by SCons) opened through cffi with the
declarations a test needs, for the tests of the portable firmware modules."""

from __future__ import annotations

from cffi import FFI

from bnnkws.tools.host import build


def dlopen_host(cdef: str) -> tuple[FFI, object]:
    """(ffi, lib) for the kernels-only host library with `cdef` declared."""
    ffi = FFI()
    ffi.cdef(cdef)
    return ffi, ffi.dlopen(str(build.host_library()))
