"""cffi (ABI mode) binding of the host shared library built by SCons from firmware/.

The library is built on first use (``scons target=host``) into ``build/host/`` of the
project root, or of ``BNNKWS_BUILD_DIR`` when set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from bnnkws.errors import BuildError
from cffi import FFI

CDEF = """
typedef struct {
    uint16_t sample_rate; uint16_t frame_len; uint16_t hop; uint16_t n_mels;
    uint8_t log_frac_bits; uint8_t out_shift; int32_t out_offset;
    const uint16_t *window; const int16_t *cos_q15; const int16_t *sin_q15;
    const uint16_t *mel_start; const uint16_t *mel_len; const uint16_t *mel_weights;
} bk_fe_params_t;
typedef struct { int32_t re[1024]; int32_t im[1024]; } bk_fe_work_t;
typedef struct { int16_t buf[1024]; uint16_t fill; } bk_fe_stream_t;
int32_t bk_ilog2_q(uint64_t x, unsigned frac_bits);
void bk_fe_frame(const bk_fe_params_t *p, const int16_t *x, int8_t *out, bk_fe_work_t *w);
size_t bk_fe_batch(const bk_fe_params_t *p, const int16_t *x, size_t n, int8_t *out,
                   bk_fe_work_t *w);
void bk_fe_stream_init(bk_fe_stream_t *s);
int bk_fe_stream_push(bk_fe_stream_t *s, const bk_fe_params_t *p, const int16_t *pcm,
                      size_t n, size_t *consumed, int8_t *out, bk_fe_work_t *w);
"""

ffi = FFI()
ffi.cdef(CDEF)


def project_root() -> Path:
    """The checkout that holds SConstruct (the package is installed in editable mode)."""
    here = Path(__file__).resolve().parent.parent
    if not (here / "SConstruct").exists():
        raise BuildError(f"{here}: no SConstruct; bnnkws must be installed from a checkout (pip install -e)")
    return here


def build_dir() -> Path:
    return Path(os.environ.get("BNNKWS_BUILD_DIR", project_root() / "build"))


def run_scons(args: list[str], quiet: bool = True) -> None:
    """Run SCons (from the venv) in the project root; raise BuildError with its output on failure."""
    cmd = [sys.executable, "-m", "SCons", "-Q", f"build_dir={build_dir()}", *args]
    proc = subprocess.run(cmd, cwd=project_root(), capture_output=quiet, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout or "")[-2000:] + (proc.stderr or "")[-2000:]
        raise BuildError(f"scons {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")


_LIBS: dict[str, object] = {}


def load(model_dir: str | os.PathLike | None = None) -> object:
    """Build (if needed) and dlopen the host library, optionally with a generated model."""
    key = str(model_dir or "")
    if key in _LIBS:
        return _LIBS[key]
    args = ["target=host"]
    if model_dir:
        args.append(f"model={Path(model_dir).resolve()}")
    run_scons(args)
    lib_path = build_dir() / "host" / "libbnnkws.so"
    if not lib_path.exists():
        raise BuildError(f"{lib_path}: SCons finished but the library is missing")
    lib = ffi.dlopen(str(lib_path))
    _LIBS[key] = lib
    return lib


class CFrontend:
    """The C front-end through cffi; arrays in and out are numpy."""

    def __init__(self, params, lib: object | None = None) -> None:
        self.lib = lib or load()
        self.p = params
        # keep the tables alive as long as the struct points at them
        self._keep = [
            np.ascontiguousarray(params.window, dtype=np.uint16),
            np.ascontiguousarray(params.cos_q15, dtype=np.int16),
            np.ascontiguousarray(params.sin_q15, dtype=np.int16),
            np.ascontiguousarray(params.mel_start, dtype=np.uint16),
            np.ascontiguousarray(params.mel_len, dtype=np.uint16),
            np.ascontiguousarray(params.mel_weights, dtype=np.uint16),
        ]
        s = ffi.new("bk_fe_params_t *")
        s.sample_rate = params.sample_rate
        s.frame_len = params.frame_len
        s.hop = params.hop
        s.n_mels = params.n_mels
        s.log_frac_bits = params.log_frac_bits
        s.out_shift = params.out_shift
        s.out_offset = params.out_offset
        types = ["uint16_t *", "int16_t *", "int16_t *", "uint16_t *", "uint16_t *", "uint16_t *"]
        names = ["window", "cos_q15", "sin_q15", "mel_start", "mel_len", "mel_weights"]
        for name, ctype, arr in zip(names, types, self._keep, strict=True):
            setattr(s, name, ffi.cast(ctype, ffi.from_buffer(arr)))
        self.params_c = s
        self.work = ffi.new("bk_fe_work_t *")

    def features(self, audio: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(audio, dtype=np.int16)
        nf = self.p.n_frames(x.size)
        out = np.zeros((nf, self.p.n_mels), dtype=np.int8)
        if nf:
            got = self.lib.bk_fe_batch(
                self.params_c, ffi.cast("int16_t *", ffi.from_buffer(x)), x.size,
                ffi.cast("int8_t *", ffi.from_buffer(out)), self.work,
            )
            assert got == nf
        return out

    def stream(self, chunks: list[np.ndarray]) -> np.ndarray:
        """Push chunks through the C streaming form; return all completed frames."""
        st = ffi.new("bk_fe_stream_t *")
        self.lib.bk_fe_stream_init(st)
        rows = []
        row = np.zeros(self.p.n_mels, dtype=np.int8)
        consumed = ffi.new("size_t *")
        for chunk in chunks:
            x = np.ascontiguousarray(chunk, dtype=np.int16)
            pos = 0
            while pos < x.size:
                ptr = ffi.cast("int16_t *", ffi.from_buffer(x)) + pos
                done = self.lib.bk_fe_stream_push(
                    st, self.params_c, ptr, x.size - pos, consumed,
                    ffi.cast("int8_t *", ffi.from_buffer(row)), self.work,
                )
                pos += consumed[0]
                if done:
                    rows.append(row.copy())
        if not rows:
            return np.zeros((0, self.p.n_mels), dtype=np.int8)
        return np.stack(rows)
