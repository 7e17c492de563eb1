"""cffi (ABI mode) binding of the host shared library built from firmware/.

The kernels-only library is built on first use (tools/host/build.py) into
``build/host/`` of the project root, or of ``BNNKWS_BUILD_DIR`` when set. A library with
a generated model (generator/codegen/emit_c.py) gets its own variant folder,
``build/host-models/<model folder name>/``, so several models load in one process.

Python API over the BNN kernels (firmware/bnn.h), numpy in and out, layouts as in
generator/integer/intmodel.py ([T][C], bits as 0/1 uint8, int32 scores):

* :class:`CNet` runs an :class:`~bnnkws.generator.integer.intmodel.IntegerModel` through the C
  kernels, whole network (``scores``) or layer by layer (``layer_forward``,
  ``layer_accumulate``, ``forward_all``). Built from a generated-model library
  (:meth:`CNet.from_model_dir`, :meth:`CNet.build`: the generated C, compiled) or from
  a layer table made here in Python over the kernels-only library (:meth:`CNet.from_model`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from cffi import FFI

from bnnkws.generator.base.errors import BuildError
from bnnkws.generator.codegen.emit_c import emit_c, layer_entries
from bnnkws.generator.export.detector_config import DetectorConfig
from bnnkws.generator.export.layer_codes import INPUT_CODES, KIND_CODES, OUTPUT_CODES
from bnnkws.generator.integer.intmodel import pack_bits, unpack_bits
from bnnkws.tools.host import build

# firmware/frontend.h (keep in step with it; tests/host/test_c_headers.py checks the layouts)
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

# firmware/bnn.h (keep in step with it; tests/host/test_c_headers.py checks every struct's
# size and field offsets against the header)
BNN_CDEF = """
typedef struct {
    uint8_t kind; uint8_t input; uint8_t output; uint8_t out_act;
    uint8_t acc_bits; uint8_t acc_mode; uint16_t tile;
    uint16_t c_in, c_out, kernel, stride, groups;
    uint16_t t_in, t_out;
    const uint32_t *weights; const int32_t *thr; const uint8_t *flip;
    const int32_t *mu; const int32_t *beta; const int8_t *shift; const int8_t *sign;
} bk_layer_t;
typedef struct {
    uint16_t n_layers; uint16_t n_frames; uint16_t n_mels; uint16_t n_classes;
    uint32_t work_words;
    const bk_layer_t *layers;
    const bk_fe_params_t *frontend;
    const char *const *labels;
    const char *hash;
} bk_model_t;
void bk_pack_bits(const uint8_t *bits, uint32_t n, uint32_t *words);
void bk_unpack_bits(const uint32_t *words, uint32_t n, uint8_t *bits);
void bk_bits_copy(uint32_t *dst, uint32_t dst_off, const uint32_t *src, uint32_t src_off,
                  uint32_t n);
uint32_t bk_popcount_words(const uint32_t *words, uint32_t n);
uint32_t bk_popcount32_portable(uint32_t x);
uint32_t bk_popcount32_instruction(uint32_t x);
int32_t bk_accumulate(const int32_t *partials, uint32_t n, unsigned bits, unsigned mode);
void bk_bconv_int8_step(const bk_layer_t *L, const int8_t *x, uint32_t t, int32_t *acc,
                        uint32_t *scratch);
uint32_t bk_bconv_int8_scratch_words(const bk_layer_t *L);
void bk_bconv_bin_step(const bk_layer_t *L, const uint32_t *x, uint32_t t, int32_t *acc,
                       uint32_t *scratch);
uint32_t bk_bconv_bin_scratch_words(const bk_layer_t *L);
int bk_weights_by_column(const bk_layer_t *L);
int bk_threshold(int32_t acc, int32_t thr, uint8_t flip);
int32_t bk_shiftbn(int32_t acc, int32_t mu, int8_t shift, int8_t sign, int32_t beta);
void bk_threshold_row(const bk_layer_t *L, const int32_t *acc, uint32_t *bits);
void bk_shiftbn_row(const bk_layer_t *L, const int32_t *acc, int32_t *out);
void bk_pool_or(const uint32_t *x, uint32_t t_in, uint32_t words, uint32_t kernel,
                uint32_t *y);
uint32_t bk_argmax_i32(const int32_t *v, uint32_t n);
uint32_t bk_layer_out_len(const bk_layer_t *L, uint32_t t_in);
uint32_t bk_layer_row_words(const bk_layer_t *L);
uint32_t bk_layer_scratch_words(const bk_layer_t *L);
void bk_conv_accumulate(const bk_layer_t *L, const void *x, uint32_t t_in, int32_t *acc,
                        uint32_t *scratch);
void bk_layer_forward(const bk_layer_t *L, const void *x, uint32_t t_in, void *y,
                      uint32_t *scratch);
uint32_t bk_model_work_words_needed(const bk_model_t *m);
uint32_t bk_model_run(const bk_model_t *m, const int8_t *feats, int32_t *scores,
                      uint32_t *work);
int bk_layer_begin(const bk_layer_t *L, uint32_t *scratch);
void bk_layer_step(const bk_layer_t *L, int path, const void *x, uint32_t t, void *y,
                   uint32_t *scratch);
typedef struct {
    const bk_model_t *model; uint32_t *state; uint16_t stride; uint32_t steps;
} bk_stream_t;
uint32_t bk_stream_state_words(const bk_model_t *m, uint32_t stride);
uint32_t bk_stream_work_words(const bk_model_t *m);
void bk_stream_init(bk_stream_t *s, const bk_model_t *m, uint32_t stride, uint32_t *state);
void bk_stream_reset(bk_stream_t *s);
uint32_t bk_stream_run(bk_stream_t *s, const int8_t *feats, uint32_t start, int32_t *scores,
                       uint32_t *work, void *after_layer, void *ctx);
"""

# firmware/detector.h (keep in step with it; tests/host/test_c_headers.py checks the layouts)
DET_CDEF = """
typedef struct { uint8_t n_classes; uint8_t smooth; uint8_t temp_shift; uint8_t pad;
                 uint16_t refractory; uint16_t thr[16]; } bk_det_config_t;
typedef struct { uint32_t frame; uint8_t label; uint16_t posterior; } bk_detection_t;
typedef struct { bk_det_config_t cfg; uint16_t hist[8][16]; uint32_t sums[16];
                 uint8_t pos; uint8_t held; uint8_t have_last; uint32_t last_frame; } bk_det_t;
int bk_det_config_check(const bk_det_config_t *cfg);
void bk_det_init(bk_det_t *d, const bk_det_config_t *cfg);
void bk_det_reset(bk_det_t *d);
void bk_det_posteriors(const int32_t *scores, unsigned n, unsigned temp_shift, uint16_t *post);
int bk_det_push(bk_det_t *d, const int32_t *scores, uint32_t frame, bk_detection_t *out);
"""

# what a generated model adds (generated model.h; declared without const: cffi's ABI
# mode reads a const global as a constant)
MODEL_CDEF = """
extern bk_model_t bk_model;
extern bk_fe_params_t bk_model_frontend;
extern bk_det_config_t bk_model_detector;
"""

# operation counters of a count_ops library (firmware/bnn.h, BK_COUNT_OPS)
COUNT_CDEF = """
typedef struct {
    uint64_t elements; uint64_t words; uint64_t sat_adds;
    uint64_t thresholds; uint64_t shiftbns; uint64_t pool_ors;
} bk_op_counts_t;
extern bk_op_counts_t bk_op_counts;
"""
OP_COUNTS = ("elements", "words", "sat_adds", "thresholds", "shiftbns", "pool_ors")

ffi = FFI()
ffi.cdef(CDEF)
ffi.cdef(BNN_CDEF)
ffi.cdef(DET_CDEF)
ffi.cdef(MODEL_CDEF)  # ABI mode resolves globals on access: harmless for the kernels-only library
ffi.cdef(COUNT_CDEF)  # likewise: only a count_ops library defines bk_op_counts


_LIBS: dict[tuple, object] = {}


def load(
    model_dir: str | os.PathLike | None = None, count_ops: bool = False, popcount: str = "swar"
) -> object:
    """Build (if needed, bnnkws.tools.host.build) and dlopen the host library, optionally
    with a generated model.

    Each model folder builds into its own variant folder (build.model_variant_dir), so
    libraries of different models can be loaded side by side. A model folder is named
    by its model hash (generator/codegen/emit_c.py), so a loaded library never goes stale.
    count_ops: the kernels-only library with operation counters (``build/host-count/``,
    read with :func:`op_counts`); popcount="builtin": the kernels-only library with the
    popcount instruction; neither is combined with a model.
    """
    if (count_ops or popcount != "swar") and model_dir:
        raise ValueError("count_ops and popcount build the kernels-only library: give no model_dir")
    key = (str(Path(model_dir).resolve()) if model_dir else "", count_ops, popcount)
    if key not in _LIBS:
        path = build.host_library(model_dir, count_ops=count_ops, popcount=popcount)
        _LIBS[key] = ffi.dlopen(str(path))
    return _LIBS[key]


def op_counts(lib: object, reset: bool = False) -> dict[str, int]:
    """The operation counters of a ``load(count_ops=True)`` library (firmware/bnn.h);
    reset=True zeroes them after reading."""
    try:
        c = ffi.addressof(lib, "bk_op_counts")
    except AttributeError:
        raise BuildError(
            "this host library has no operation counters: load it with count_ops=True"
        ) from None
    out = {name: int(getattr(c, name)) for name in OP_COUNTS}
    if reset:
        for name in OP_COUNTS:
            setattr(c, name, 0)
    return out


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
                self.params_c,
                ffi.cast("int16_t *", ffi.from_buffer(x)),
                x.size,
                ffi.cast("int8_t *", ffi.from_buffer(out)),
                self.work,
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
                    st,
                    self.params_c,
                    ptr,
                    x.size - pos,
                    consumed,
                    ffi.cast("int8_t *", ffi.from_buffer(row)),
                    self.work,
                )
                pos += consumed[0]
                if done:
                    rows.append(row.copy())
        if not rows:
            return np.zeros((0, self.p.n_mels), dtype=np.int8)
        return np.stack(rows)


class CDetector:
    """firmware/detector.c through cffi: push int32 scores, get (frame, label, posterior)."""

    def __init__(self, config, lib: object | None = None) -> None:
        self.lib = lib or load()
        c = ffi.new("bk_det_config_t *")
        c.n_classes, c.smooth = config.n_classes, config.smooth
        c.temp_shift, c.refractory = config.temp_shift, config.refractory
        for i, t in enumerate(config.thr):
            c.thr[i] = t
        if self.lib.bk_det_config_check(c):
            raise ValueError("bk_det_config_check refused the configuration")
        self.d = ffi.new("bk_det_t *")
        self.lib.bk_det_init(self.d, c)
        self._out = ffi.new("bk_detection_t *")
        self._scores = ffi.new("int32_t[]", config.n_classes)

    def push(self, scores, frame: int) -> tuple[int, int, int] | None:
        for i, s in enumerate(scores):
            self._scores[i] = int(s)
        if not self.lib.bk_det_push(self.d, self._scores, frame, self._out):
            return None
        return int(self._out.frame), int(self._out.label), int(self._out.posterior)


# --------------------------------------------------------------------------------------
# BNN kernels
# --------------------------------------------------------------------------------------
def _ptr(ctype: str, arr: np.ndarray):
    """A typed pointer into `arr`. It does not keep `arr` alive: the caller must hold a
    reference to the array for as long as C uses the pointer."""
    return ffi.cast(ctype, ffi.from_buffer(arr))


def layer_struct(fields: dict[str, int]):
    """A bk_layer_t * with these scalar fields (emit_c.layer_fields), the rest 0: enough
    for the C library's plans (bk_weights_by_column, bk_layer_scratch_words)."""
    L = ffi.new("bk_layer_t *")
    for name, value in fields.items():
        setattr(L, name, value)
    return L


def pack_rows(bits: np.ndarray) -> np.ndarray:
    """{0,1} [T, C] -> uint32 [T, ceil(C/32)] (the C activation layout)."""
    return np.ascontiguousarray(pack_bits(bits), dtype=np.uint32)


class CNet:
    """An integer model running on the C kernels; numpy in, numpy out.

    Inputs and outputs use generator/integer/intmodel.py's layouts: features int8 [T, F], bits
    uint8 0/1 [T, C], scores int32 [T, C]; a leading batch axis is accepted where noted.
    """

    def __init__(self, lib, model_ptr, keep: list | None = None) -> None:
        self.lib = lib
        self.m = model_ptr  # bk_model_t *
        self._keep = keep or []
        self.n_layers = int(model_ptr.n_layers)
        self.n_frames = int(model_ptr.n_frames)
        self.n_mels = int(model_ptr.n_mels)
        self.n_classes = int(model_ptr.n_classes)
        self.work = np.zeros(
            max(1, int(lib.bk_model_work_words_needed(model_ptr))), dtype=np.uint32
        )

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_model(cls, model, lib: object | None = None) -> CNet:
        """Layer table built here over numpy arrays, kernels-only library (no code generation)."""
        return cls.from_layers(
            model.layers, model.n_frames, model.frontend.n_mels, len(model.labels), lib
        )

    @classmethod
    def from_layers(
        cls, layers: list, n_frames: int, n_mels: int, n_classes: int = 0, lib: object | None = None
    ) -> CNet:
        """A layer table over numpy arrays for any chain of layers (kernel tests: one layer).

        n_frames, n_mels: the input [T, C]; n_classes: the last layer's c_out (scores).
        The table is generator/codegen/emit_c.py's (layer_entries), with the weight layout
        the C library chooses (bk_weights_by_column).
        """
        lib = lib or load()

        def by_column(fields: dict[str, int]) -> bool:
            return bool(lib.bk_weights_by_column(layer_struct(fields)))

        entries = layer_entries(layers, n_frames, n_mels, by_column)
        keep: list = []
        table = ffi.new("bk_layer_t[]", len(entries))
        for e, entry in zip(table, entries, strict=True):
            for name, value in entry.fields.items():
                setattr(e, name, value)
            for name, (ctype, values) in entry.arrays.items():
                keep.append(values)
                setattr(e, name, _ptr(ctype + " *", values))
        m = ffi.new("bk_model_t *")
        m.n_layers, m.n_frames = len(layers), n_frames
        m.n_mels, m.n_classes = n_mels, n_classes
        m.layers = table
        keep.append(table)
        net = cls(lib, m, keep + [m])
        m.work_words = net.work.size
        return net

    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike) -> CNet:
        """The generated model in `model_dir` (model.c), built into its own library."""
        lib = load(model_dir)
        return cls(lib, ffi.addressof(lib, "bk_model"))

    @classmethod
    def build(cls, model, out_dir: str | os.PathLike | None = None) -> CNet:
        """Generate C for `model` (generator/codegen/emit_c.py), build it, load it."""
        return cls.from_model_dir(emit_c(model, out_dir))

    @property
    def hash(self) -> str:
        return ffi.string(self.m.hash).decode() if self.m.hash != ffi.NULL else ""

    def detector_config(self):
        """The generated model's default detector configuration (bk_model_detector) as a
        DetectorConfig; only for a library built from a generated model."""
        try:
            c = ffi.addressof(self.lib, "bk_model_detector")
        except AttributeError:
            raise BuildError("this library has no generated model (bk_model_detector)") from None
        return DetectorConfig(
            tuple(int(c.thr[i]) for i in range(int(c.n_classes))),
            int(c.smooth),
            int(c.temp_shift),
            int(c.refractory),
        )

    @property
    def work_words(self) -> int:
        """bk_model_t.work_words as stored in the table (generated by Python)."""
        return int(self.m.work_words)

    # -- running ---------------------------------------------------------------------------
    def layer(self, i: int):
        """bk_layer_t * of layer i."""
        return self.m.layers + i

    def _input(self, i: int, x: np.ndarray):
        """Input of layer i in C layout, kept alive by the caller."""
        L = self.layer(i)
        if L.kind == KIND_CODES["conv"] and L.input == INPUT_CODES["int8"]:
            return np.ascontiguousarray(x, dtype=np.int8)
        return pack_rows(np.asarray(x, dtype=np.uint8))

    def _scratch(self, i: int) -> np.ndarray:
        return np.zeros(
            max(1, int(self.lib.bk_layer_scratch_words(self.layer(i)))), dtype=np.uint32
        )

    def layer_forward(self, i: int, x: np.ndarray) -> np.ndarray:
        """Output of layer i for input x [T, C] (int8 or bits): bits [T', C'] or int32 [T', C']."""
        L = self.layer(i)
        xin = self._input(i, x)
        t_in = xin.shape[0]
        t_out = int(self.lib.bk_layer_out_len(L, t_in))
        row = int(self.lib.bk_layer_row_words(L))
        y = np.zeros((t_out, row), dtype=np.int32 if self._scores(i) else np.uint32)
        scratch = self._scratch(i)  # held here while C writes into it
        if t_out:
            self.lib.bk_layer_forward(
                L, ffi.from_buffer(xin), t_in, ffi.from_buffer(y), _ptr("uint32_t *", scratch)
            )
        if self._scores(i):
            return y
        return unpack_bits(y, int(L.c_out))

    def _scores(self, i: int) -> bool:
        L = self.layer(i)
        return L.kind == KIND_CODES["conv"] and L.output == OUTPUT_CODES["shiftbn"]

    def layer_accumulate(self, i: int, x: np.ndarray) -> np.ndarray:
        """N-bit accumulators int32 [T', c_out] of conv layer i for input x [T, C]."""
        L = self.layer(i)
        xin = self._input(i, x)
        t_out = int(self.lib.bk_layer_out_len(L, xin.shape[0]))
        acc = np.zeros((t_out, int(L.c_out)), dtype=np.int32)
        scratch = self._scratch(i)  # held here while C writes into it
        if t_out:
            self.lib.bk_conv_accumulate(
                L,
                ffi.from_buffer(xin),
                xin.shape[0],
                _ptr("int32_t *", acc),
                _ptr("uint32_t *", scratch),
            )
        return acc

    def forward_all(self, feats: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for features [T, F], each layer fed the C output before it."""
        outs, x = [], feats
        for i in range(self.n_layers):
            x = self.layer_forward(i, x)
            outs.append(x)
        return outs

    def scores(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """bk_model_run on features [B, T, F] or [T, F]: (int32 scores [B, n_classes], class [B])."""
        x = np.asarray(feats, dtype=np.int8)
        single = x.ndim == 2
        x = np.ascontiguousarray(x[None] if single else x)
        if x.shape[1:] != (self.n_frames, self.n_mels):
            raise ValueError(
                f"features {x.shape[1:]}, the model expects ({self.n_frames}, {self.n_mels})"
            )
        out = np.zeros((x.shape[0], self.n_classes), dtype=np.int32)
        cls = np.zeros(x.shape[0], dtype=np.int64)
        work = _ptr("uint32_t *", self.work)
        for b in range(x.shape[0]):
            cls[b] = self.lib.bk_model_run(
                self.m, _ptr("int8_t *", x[b]), _ptr("int32_t *", out[b]), work
            )
        return (out[0], cls[0]) if single else (out, cls)

    def stream(self, stride: int = 1) -> CStream:
        """Streaming inference over this net (bk_stream_*), rings sized for `stride`."""
        return CStream(self, stride)


class CStream:
    """bk_stream_t of a :class:`CNet`: scores of windows given with their start frame,
    computing only the steps earlier windows did not (firmware/bnn_stream.c)."""

    def __init__(self, net: CNet, stride: int = 1) -> None:
        self.net = net
        lib = net.lib
        self.state = np.zeros(max(1, int(lib.bk_stream_state_words(net.m, stride))), np.uint32)
        self.work = np.zeros(max(1, int(lib.bk_stream_work_words(net.m))), np.uint32)
        self.s = ffi.new("bk_stream_t *")
        lib.bk_stream_init(self.s, net.m, stride, _ptr("uint32_t *", self.state))

    @property
    def steps(self) -> int:
        """Output steps computed since the start or the last reset, all layers."""
        return int(self.s.steps)

    def reset(self) -> None:
        self.net.lib.bk_stream_reset(self.s)

    def run(self, window: np.ndarray, start: int) -> tuple[np.ndarray, int]:
        """(int32 scores [n_classes], class) of features [n_frames, n_mels] = frames
        start .. start + n_frames - 1 of the stream."""
        x = np.ascontiguousarray(window, dtype=np.int8)
        if x.shape != (self.net.n_frames, self.net.n_mels):
            raise ValueError(
                f"window {x.shape}, the model expects ({self.net.n_frames}, {self.net.n_mels})"
            )
        out = np.zeros(self.net.n_classes, dtype=np.int32)
        cls = self.net.lib.bk_stream_run(
            self.s, _ptr("int8_t *", x), int(start), _ptr("int32_t *", out),
            _ptr("uint32_t *", self.work), ffi.NULL, ffi.NULL,
        )
        return out, int(cls)
