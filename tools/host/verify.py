"""`bnnkws verify CKPT [--inputs N]`: torch, C and MicroPython against the integer model.

The integer model read back from the exported blob (generator/integer/intmodel.py semantics) is
the definition. On N random feature windows (plus real clips with --data, front-end
included) every implementation computes every layer:

* torch   ``model.integer_forward(x, all_layers=True)`` (checkpoints only);
* C       the generated model compiled with the kernels (host library via cffi), layer by
          layer (each layer fed the C output of the one before) and whole
          (``bk_model_run`` scores and argmax); for clips also the C front-end;
* micropython  reference/bnn.py under the ``micropython`` binary, reading the blob
          itself; for clips from the raw audio through reference/frontend.py.

Every output must be equal bit for bit. The first difference (implementation, layer,
input, index, values) is reported and the exit code is 1. ``--acc-bits`` and ``--modes``
re-run the check with every listed accumulator width and mode.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bnnkws.generator import frontend
from bnnkws.generator.base.errors import BnnkwsError, FormatError
from bnnkws.generator.export import blob as blobmod
from bnnkws.generator.export.loading import LoadedModel
from bnnkws.generator.integer.intmodel import ConvLayer, IntegerModel
from bnnkws.tools.host import micropython_runner

IMPLS = ("torch", "C", "micropython")


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------
def random_inputs(
    seed: int, n: int, n_frames: int = 49, n_mels: int = 40, model: IntegerModel | None = None
) -> np.ndarray:
    """int8 features [n, T, F] that exercise the arithmetic.

    Input i cycles through: speech-like levels (mean -20, sd 50, 5% at each int8
    extreme); uniform over all of int8; all +127 / all -128 steps; and, when `model` is
    given, the certificate's worst case of first-layer channel i at t = 0 (x = 127 where
    the weight is +1 and -128 where it is -1, or the reverse), which drives that
    accumulator to its extreme exact sum and so across the overflow boundary.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((n, n_frames, n_mels), dtype=np.int8)
    first = (
        model.layers[0] if model is not None and isinstance(model.layers[0], ConvLayer) else None
    )
    for i in range(n):
        kind = i % 4
        if kind == 0:
            x = rng.normal(-20, 50, (n_frames, n_mels))
            x[rng.random(x.shape) < 0.05] = 127
            x[rng.random(x.shape) < 0.05] = -128
        elif kind == 1:
            x = rng.integers(-128, 128, (n_frames, n_mels))
        elif kind == 2:
            x = np.where(rng.random((n_frames, 1)) < 0.5, 127, -128) * np.ones((1, n_mels))
        else:
            x = rng.integers(-128, 128, (n_frames, n_mels))
            if first is not None and first.groups == 1:
                o = (i // 4) % first.c_out
                w = np.asarray(first.weights[o], dtype=np.int64)  # [kernel, c_in]
                hi = (i // 4) % 2 == 0
                x[: first.kernel] = (
                    np.where(w == 1, 127, -128) if hi else np.where(w == 1, -128, 127)
                )
        out[i] = np.clip(np.round(x), -128, 127).astype(np.int8)
    return out


AUDIO_SUFFIXES = (".wav", ".flac")


def find_clips(data_dir: Path, count: int) -> list[Path]:
    """`count` audio files spread over the word folders of a Speech Commands folder."""
    files = sorted(
        p
        for p in data_dir.glob("*/*")
        if p.suffix.lower() in AUDIO_SUFFIXES and not p.parent.name.startswith("_")
    )
    if not files:
        raise BnnkwsError(f"{data_dir}: no */*.wav or */*.flac clips")
    step = max(1, len(files) // max(count, 1))
    return files[::step][:count]


def clip_samples(model: IntegerModel) -> int:
    """Samples of one input window: 16000 when that gives n_frames, else the minimum."""
    fe = model.frontend
    if fe.n_frames(fe.sample_rate) == model.n_frames:
        return fe.sample_rate
    return fe.frame_len + (model.n_frames - 1) * fe.hop


def load_clips(paths: list[Path], model: IntegerModel) -> list[np.ndarray]:
    # soundfile (an optional dependency): only when clips are read
    from bnnkws.generator.data.audio_io import read_audio
    from bnnkws.generator.data.dataset import fit_to_length

    n = clip_samples(model)
    return [fit_to_length(read_audio(p), n).astype(np.int16) for p in paths]


# --------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------
@dataclass
class Difference:
    impl: str
    stage: str  # "front-end", "layer 3 (conv2)", "scores (bk_model_run)"
    input: int
    index: tuple
    got: int | str
    want: int | str

    def message(self) -> str:
        idx = ", ".join(str(int(i)) for i in self.index)
        return (
            f"{self.impl} differs from the integer model at {self.stage}, input {self.input}, "
            f"index [{idx}]: got {self.got}, expected {self.want}"
        )


def first_difference(impl: str, stage: str, got: np.ndarray, want: np.ndarray) -> Difference | None:
    """First differing element of [B, ...] arrays (or a shape mismatch)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return Difference(impl, stage, 0, (), f"shape {got.shape}", f"shape {want.shape}")
    bad = np.argwhere(got.astype(np.int64) != want.astype(np.int64))
    if bad.size == 0:
        return None
    b, *idx = (int(v) for v in bad[0])
    return Difference(impl, stage, b, tuple(idx), int(got[tuple(bad[0])]), int(want[tuple(bad[0])]))


@dataclass
class VerifyResult:
    model_hash: str
    stages: list[str]
    status: dict[str, dict[str, str]] = field(default_factory=dict)  # stage -> impl -> ok/DIFF/-
    differences: list[Difference] = field(default_factory=list)
    n_inputs: int = 0
    n_clips: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def first(self) -> Difference | None:
        order = {s: i for i, s in enumerate(self.stages)}
        if not self.differences:
            return None
        return min(self.differences, key=lambda d: (order.get(d.stage, 1 << 30), d.input))

    def record(self, impl: str, stage: str, diff: Difference | None) -> None:
        self.status.setdefault(stage, {})[impl] = "ok" if diff is None else "DIFF"
        if diff is not None:
            self.differences.append(diff)

    def table(self) -> str:
        width = max(len(s) for s in self.stages) + 2
        head = f"{'stage':<{width}}" + "".join(f"{i:>13s}" for i in IMPLS)
        rows = [head]
        for s in self.stages:
            st = self.status.get(s, {})
            rows.append(f"{s:<{width}}" + "".join(f"{st.get(i, '-'):>13s}" for i in IMPLS))
        return "\n".join(rows)


def _stage_names(model: IntegerModel) -> list[str]:
    names = ["front-end"]
    for i, layer in enumerate(model.layers):
        if isinstance(layer, ConvLayer):
            acc = f"{layer.acc_bits}b {layer.acc_mode}" + (
                f"/{layer.tile}" if layer.acc_mode == "saturate" else ""
            )
            names.append(f"layer {i} ({layer.name}, {layer.input} {acc})")
        else:
            names.append(f"layer {i} ({layer.name}, or-pool {layer.kernel})")
    return names + ["scores (bk_model_run)", "argmax"]


# --------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------
def verify_model(
    loaded,
    n_inputs: int = 8,
    clips: list[np.ndarray] | None = None,
    seed: int = 0,
    micropython: bool = True,
    use_torch: bool = True,
    log: Callable[[str], None] | None = None,
) -> VerifyResult:
    """Run every implementation on the same inputs; see the module docstring.

    loaded: :class:`bnnkws.generator.export.loading.LoadedModel` (model read back from its blob).
    """
    # cffi bindings of the host library: loaded when a check runs, not with the CLI
    from bnnkws.tools.host.hostlib import CFrontend, CNet

    model: IntegerModel = loaded.model
    clips = clips or []
    diffs = blobmod.model_differences(model, blobmod.from_bytes(blobmod.to_bytes(model)))
    if diffs:
        raise FormatError(f"integer model does not survive a blob round trip: {', '.join(diffs)}")
    stages = _stage_names(model)
    res = VerifyResult(loaded.hash, stages, n_inputs=n_inputs, n_clips=len(clips))
    F = model.frontend.n_mels
    feats = [random_inputs(seed, n_inputs, model.n_frames, F, model)]
    if clips:
        t0 = time.perf_counter()
        ref_f = np.stack([frontend.features(c, model.frontend) for c in clips])
        cfe = CFrontend(model.frontend)
        res.record(
            "C",
            "front-end",
            first_difference("C", "front-end", np.stack([cfe.features(c) for c in clips]), ref_f),
        )
        feats.append(ref_f)
        res.seconds["front-end"] = time.perf_counter() - t0
    x = np.concatenate(feats).astype(np.int8)
    ref = model.forward(x, all_layers=True)
    ref_scores = ref[-1][:, 0, :]
    ref_class = np.argmax(ref_scores, axis=1)
    layer_stages = stages[1 : 1 + len(model.layers)]

    def compare_layers(impl: str, outs: list[np.ndarray], rows: slice = slice(None)) -> None:
        for i, stage in enumerate(layer_stages):
            res.record(impl, stage, first_difference(impl, stage, outs[i], ref[i][rows]))

    # torch
    if use_torch and loaded.torch_model is not None:
        import torch  # heavy; only with a checkpoint

        t0 = time.perf_counter()
        outs = loaded.torch_model.integer_forward(torch.from_numpy(x), all_layers=True)
        compare_layers("torch", [o.cpu().numpy() for o in outs])
        res.seconds["torch"] = time.perf_counter() - t0
        if log:
            log(f"  torch: {len(x)} inputs, {res.seconds['torch']:.1f} s")
    # C
    t0 = time.perf_counter()
    net = CNet.build(model)
    if net.hash != loaded.hash:
        raise BnnkwsError(f"generated C names model {net.hash[:16]}, expected {loaded.hash[:16]}")
    per_input = [net.forward_all(x[b]) for b in range(len(x))]
    compare_layers("C", [np.stack([p[i] for p in per_input]) for i in range(len(model.layers))])
    scores, cls = net.scores(x)
    res.record("C", stages[-2], first_difference("C", stages[-2], scores, ref_scores))
    res.record("C", stages[-1], first_difference("C", stages[-1], cls[:, None], ref_class[:, None]))
    res.seconds["C"] = time.perf_counter() - t0
    if log:
        log(f"  C: {len(x)} inputs, {res.seconds['C']:.1f} s (build included)")
    # MicroPython
    if micropython:
        t0 = time.perf_counter()
        got = micropython_runner.run_model(model, loaded.blob, x[:n_inputs]) if n_inputs else []
        if clips:
            audio = micropython_runner.run_model_audio(model, loaded.blob, clips)
            f_mpy = np.stack([f for f, _ in audio])
            res.record(
                "micropython",
                "front-end",
                first_difference("micropython", "front-end", f_mpy, x[n_inputs:]),
            )
            got += [outs for _, outs in audio]
        compare_layers(
            "micropython", [np.stack([g[i] for g in got]) for i in range(len(model.layers))]
        )
        mp_scores = np.stack([g[-1][0] for g in got])
        res.record(
            "micropython",
            stages[-2],
            first_difference("micropython", stages[-2], mp_scores, ref_scores),
        )
        mp_cls = np.argmax(mp_scores, axis=1)  # reference/bnn.py predict: first maximum
        res.record(
            "micropython",
            stages[-1],
            first_difference("micropython", stages[-1], mp_cls[:, None], ref_class[:, None]),
        )
        res.seconds["micropython"] = time.perf_counter() - t0
        if log:
            log(f"  micropython: {len(x)} inputs, {res.seconds['micropython']:.1f} s")
    return res


def with_accumulator(loaded, bits: int, mode: str):
    """The same trained model with every layer's accumulator set to (bits, mode)."""
    if loaded.torch_model is not None:
        from bnnkws.generator.export.to_integer import to_integer_model  # torch

        tm = copy.deepcopy(loaded.torch_model)
        tm.set_accumulator(bits=bits, mode=mode, first_bits=bits)
        im = to_integer_model(tm, meta=dict(loaded.model.meta))
    else:
        tm = None
        layers = [
            replace(la, acc_bits=bits, acc_mode=mode) if isinstance(la, ConvLayer) else la
            for la in loaded.model.layers
        ]
        im = replace(loaded.model, layers=layers)
    data = blobmod.to_bytes(im)
    return LoadedModel(blobmod.from_bytes(data), data, loaded.source, tm)


def parse_bits(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    bad = [b for b in out if not 4 <= b <= 32]
    if bad:
        raise BnnkwsError(f"--acc-bits {text}: widths {bad} outside 4..32")
    return out


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------
