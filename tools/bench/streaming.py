"""Streaming accuracy: long streams through the bit-exact pipeline, scored as TensorFlow's
speech_commands ``test_streaming_accuracy.py`` scores them; DET curve; calibration.

Pipeline (host): the C streaming front-end (firmware/frontend.c through cffi) makes one
int8 feature row per hop; once n_frames rows are held, the generated network (the model's
host library, firmware/bnn_model.c) runs on the last window every ``stride`` hops, as
firmware/app/kws.c does; the integer detector (tools/device/detector.py, the twin of
firmware/detector.c) turns the scores into detections. ``--device emulated`` streams the
same audio to the firmware on QEMU and must report the same scores and detections.

Scoring (accuracy_utils.StreamingAccuracyStats of TensorFlow's speech_commands example):
a detection's time is the start of the window that fired (TensorFlow's
``current_time_ms`` is the start of the clip window it classifies), i.e. its end minus
the window length. It is matched with the first keyword clip (in time) whose start lies
within ``TOLERANCE_S`` (750 ms, TensorFlow's ``time_tolerance_ms`` default) of it: the
detection is *correct* when it names that clip's keyword and the clip was not matched
before, *wrong* when it names another keyword (the clip is then matched), and a *false
alarm* when no keyword clip is in reach (other words, noise) or the clip was already
matched. With 1 s windows this puts a correct detection's window end between 0.25 s and
1.75 s after the clip start. Recall is correct / keyword clips.

The scores do not depend on the detector settings, so a DET curve (miss rate against
false alarms per hour as the keyword threshold moves) and calibration re-run only the
detector over the stored integer scores (their posteriors, computed once).
"""

from __future__ import annotations

import io
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bnnkws.generator.base.errors import BnnkwsError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.generator.codegen.emit_c import emit_c
from bnnkws.generator.data.streams import Placed, Stream, make_stream
from bnnkws.generator.export import blob as blobmod
from bnnkws.generator.export.detector_config import (
    MAX_SMOOTH,
    Q15_ONE,
    DetectorConfig,
    refractory_frames,
)
from bnnkws.generator.export.loading import load_any
from bnnkws.tools.bench.machine import machine
from bnnkws.tools.device import protocol as P
from bnnkws.tools.device.detector import EXP2_NEG_Q15, Detection, Detector
from bnnkws.tools.device.firmware import build_firmware
from bnnkws.tools.device.qemu import Emulator
from bnnkws.tools.device.serial_link import open_link
from bnnkws.tools.device.session import run_stream
from bnnkws.tools.host.hostlib import CDetector, CFrontend, CNet

TOLERANCE_S = 0.75
DEFAULT_STRIDE = 5  # hops between inferences: firmware/app/app.h BK_APP_STRIDE
CHUNK = 256  # samples per front-end push, as the serial link sends them
# keyword thresholds (posterior) swept for the DET curve and tried by calibration
# (posteriors crowd near 1, so the grid is fine there: 1 - 0.1 * 2^(-k/2))
THRESHOLD_GRID = tuple(
    sorted(
        {round(float(x), 5) for x in np.arange(0.05, 0.9, 0.05)}
        | {round(1 - 0.1 * 2 ** (-k / 2), 5) for k in range(21)}
        | {1.0}
    )
)


class CalibrationError(BnnkwsError):
    """The false-alarm target cannot be met."""


# --------------------------------------------------------------------------------------
# Running a stream
# --------------------------------------------------------------------------------------
@dataclass
class ScoreTrack:
    """The network's outputs over one stream: frame (last row of the window) and scores."""

    frames: np.ndarray  # int64 [N]
    scores: np.ndarray  # int32 [N, C]
    hop: int
    frame_len: int
    n_frames: int
    sample_rate: int
    _post: dict = field(default_factory=dict, repr=False)

    def end_s(self, frame: int) -> float:
        return (frame * self.hop + self.frame_len) / self.sample_rate

    @property
    def window_s(self) -> float:
        return ((self.n_frames - 1) * self.hop + self.frame_len) / self.sample_rate

    def posteriors(self, temp_shift: int) -> list[list[int]]:
        """Q15 posteriors per window (cached per temp_shift)."""
        if temp_shift not in self._post:
            self._post[temp_shift] = posteriors_array(self.scores, temp_shift).tolist()
        return self._post[temp_shift]


def posteriors_array(scores: np.ndarray, temp_shift: int) -> np.ndarray:
    """tools/device/detector.py ``posteriors`` over many windows at once (int64 [N, C]);
    tests check it against the per-window rule."""
    s = np.asarray(scores, dtype=np.int64)
    if s.size == 0:
        return s.copy()
    v = s.max(axis=1, keepdims=True) - s
    ipart = v >> temp_shift
    frac6 = ((v & ((1 << temp_shift) - 1)) << 6) >> temp_shift
    table = np.asarray(EXP2_NEG_Q15, dtype=np.int64)
    w = np.where(ipart >= 16, 0, table[frac6] >> np.minimum(ipart, 15))
    return (w << 15) // w.sum(axis=1, keepdims=True)


class HostPipeline:
    """A model's host library: streaming front-end, network, scores per window."""

    def __init__(self, model, stride: int = DEFAULT_STRIDE) -> None:
        if stride < 1:
            raise BnnkwsError(f"stride {stride}: expected >= 1")
        self.model = model
        self.net = CNet.build(model)
        self.fe = CFrontend(model.frontend, self.net.lib)
        self.stride = stride

    @property
    def default_config(self) -> DetectorConfig:
        """bk_model_detector of the generated C (the model's own, or the defaults)."""
        return self.net.detector_config()

    def run(self, audio: np.ndarray) -> ScoreTrack:
        x = np.ascontiguousarray(audio, dtype=np.int16)
        rows = self.fe.stream([x[i : i + CHUNK] for i in range(0, x.size, CHUNK)])
        n = self.net.n_frames
        ends = np.arange(n - 1, rows.shape[0], self.stride, dtype=np.int64)
        scores = np.zeros((ends.size, self.net.n_classes), dtype=np.int32)
        if ends.size:
            win = np.lib.stride_tricks.sliding_window_view(rows, n, axis=0)  # [R-n+1, F, n]
            for a in range(0, ends.size, 512):
                e = ends[a : a + 512]
                batch = np.ascontiguousarray(win[e - (n - 1)].transpose(0, 2, 1))
                scores[a : a + 512], _ = self.net.scores(batch)
        fe = self.model.frontend
        return ScoreTrack(ends, scores, fe.hop, fe.frame_len, n, fe.sample_rate)


# A float baseline's logits as the detector's int32 scores: 8 units per factor 2 in odds,
# so temp_shift 3 gives the model's own softmax (calibration tries 0..3, as for a BNN)
FLOAT_UNITS_PER_OCTAVE = 8


@dataclass
class FloatModel:
    """A float baseline checkpoint (DS-CNN, TC-ResNet8: generator/training/kws_zoo.py)."""

    torch_model: object
    labels: list[str]
    frontend: object  # FrontendParams
    n_frames: int
    source: Path
    hash: str  # sha256 of the weights (unchanged when a calibration is written)
    kind: str
    detector: dict | None = None  # the checkpoint's calibrated detector, if any

    @property
    def meta(self) -> dict:
        det = dict(self.detector or {})
        return {"calibration": det.get("calibration", {}), "kind": self.kind}


def load_float(path) -> FloatModel | None:
    """The float baseline in checkpoint `path`, or None for a BNN checkpoint or a blob."""
    import hashlib

    from bnnkws.generator.export.loading import is_blob
    from bnnkws.generator.frontend import FrontendParams
    from bnnkws.generator.training.checkpoint import load_checkpoint
    from bnnkws.generator.training.model import BnnKws

    p = Path(path)
    if not p.is_file() or is_blob(p):
        return None
    torch_model, ckpt = load_checkpoint(p)
    if isinstance(torch_model, BnnKws):
        return None
    h = hashlib.sha256()
    for name, t in sorted(torch_model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    cfg = dict(getattr(torch_model, "config", {}) or {})
    return FloatModel(
        torch_model,
        list(ckpt["labels"]),
        FrontendParams.from_bytes(ckpt["frontend"], where=f"{p}: front-end section"),
        int(cfg.get("n_frames", 49)),
        p,
        h.hexdigest(),
        str(cfg.get("kind", type(torch_model).__name__)),
        ckpt.get("detector"),
    )


class FloatPipeline:
    """A float baseline on the same stream: the host C front-end's rows, the float model on
    the last window every `stride` hops, its logits in fixed point as the scores
    (FLOAT_UNITS_PER_OCTAVE), the same integer detector after it."""

    def __init__(self, fm: FloatModel, stride: int = DEFAULT_STRIDE) -> None:
        if stride < 1:
            raise BnnkwsError(f"stride {stride}: expected >= 1")
        from bnnkws.tools.host.hostlib import load

        self.fm = fm
        lib = load()
        self.lib = lib
        self.fe = CFrontend(fm.frontend, lib)
        self.stride = stride

    @property
    def default_config(self) -> DetectorConfig:
        fe = self.fm.frontend
        if self.fm.detector:
            return DetectorConfig.from_dict(self.fm.detector)
        return DetectorConfig.default_for(self.fm.labels, fe.hop, fe.sample_rate)

    def run(self, audio: np.ndarray) -> ScoreTrack:
        import math

        import torch

        x = np.ascontiguousarray(audio, dtype=np.int16)
        rows = self.fe.stream([x[i : i + CHUNK] for i in range(0, x.size, CHUNK)])
        n = self.fm.n_frames
        ends = np.arange(n - 1, rows.shape[0], self.stride, dtype=np.int64)
        scores = np.zeros((ends.size, len(self.fm.labels)), dtype=np.int32)
        model = self.fm.torch_model
        model.eval()
        scale = FLOAT_UNITS_PER_OCTAVE / math.log(2.0)
        if ends.size:
            win = np.lib.stride_tricks.sliding_window_view(rows, n, axis=0)  # [R-n+1, F, n]
            with torch.no_grad():
                for a in range(0, ends.size, 512):
                    e = ends[a : a + 512]
                    batch = np.ascontiguousarray(win[e - (n - 1)].transpose(0, 2, 1))
                    logits = model(torch.from_numpy(batch)).float().numpy().astype(np.float64)
                    scores[a : a + 512] = np.clip(
                        np.rint(logits * scale), -(2**31), 2**31 - 1
                    ).astype(np.int32)
        fe = self.fm.frontend
        return ScoreTrack(ends, scores, fe.hop, fe.frame_len, n, fe.sample_rate)


def detect(config: DetectorConfig, track: ScoreTrack) -> list[Detection]:
    """The integer detector over a stored track (posteriors computed once per temp_shift)."""
    det = Detector(config)
    out = []
    for post, frame in zip(track.posteriors(config.temp_shift), track.frames.tolist(), strict=True):
        d = det.push_posteriors(post, frame)
        if d is not None:
            out.append(d)
    return out


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------
@dataclass
class Score:
    keywords: int  # keyword clips in the stream
    correct: int
    wrong: int
    false_alarms: int
    hours: float
    per_keyword: dict[str, tuple[int, int]] = field(default_factory=dict)  # word: (hit, said)
    wrong_pairs: list[tuple[str, str]] = field(default_factory=list)  # (said, heard)

    @property
    def recall(self) -> float:
        return self.correct / self.keywords if self.keywords else 0.0

    @property
    def miss_rate(self) -> float:
        return 1.0 - self.recall

    @property
    def fa_per_hour(self) -> float:
        return self.false_alarms / self.hours if self.hours else 0.0

    def fa_interval(self, level: float = 0.95) -> tuple[float, float]:
        """Exact (Garwood) Poisson interval of the false-alarm rate per hour: a few false
        alarms in a short stream say little about the rate."""
        return poisson_interval(self.false_alarms, self.hours, level)

    def recall_interval(self, level: float = 0.95) -> tuple[float, float]:
        """Exact (Clopper-Pearson) interval of the recall."""
        return binomial_interval(self.correct, self.keywords, level)


def poisson_interval(events: int, hours: float, level: float = 0.95) -> tuple[float, float]:
    """Garwood's exact interval for a Poisson rate (events per hour)."""
    from scipy.stats import chi2

    if hours <= 0:
        return (0.0, float("inf"))
    a = (1.0 - level) / 2
    lo = 0.0 if events == 0 else chi2.ppf(a, 2 * events) / 2
    hi = chi2.ppf(1 - a, 2 * events + 2) / 2
    return (float(lo) / hours, float(hi) / hours)


def binomial_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson exact interval of a proportion k/n."""
    from scipy.stats import beta

    if n <= 0:
        return (0.0, 1.0)
    a = (1.0 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return (lo, hi)


def score(
    placed: Sequence[Placed],
    detections: Sequence[Detection],
    labels: Sequence[str],
    track: ScoreTrack,
    seconds: float,
    tolerance_s: float = TOLERANCE_S,
) -> Score:
    """TensorFlow's streaming scoring (module docstring)."""
    gts = sorted((p for p in placed if not p.label.startswith("_")), key=lambda p: p.start_s)
    starts = np.array([p.start_s for p in gts])
    matched = [False] * len(gts)
    correct = wrong = fa = 0
    per = {w: [0, 0] for w in labels if not w.startswith("_")}
    for p in gts:
        per.setdefault(p.label, [0, 0])[1] += 1
    pairs = []
    win = track.window_s
    for d in detections:
        t = track.end_s(d.frame) - win
        i = int(np.searchsorted(starts, t - tolerance_s - 1e-9))
        if i >= len(gts) or gts[i].start_s > t + tolerance_s + 1e-9 or matched[i]:
            fa += 1
            continue
        matched[i] = True
        heard = labels[d.label]
        if heard == gts[i].label:
            correct += 1
            per[heard][0] += 1
        else:
            wrong += 1
            pairs.append((gts[i].label, heard))
    return Score(
        len(gts), correct, wrong, fa, seconds / 3600.0, {k: tuple(v) for k, v in per.items()}, pairs
    )


def with_thresholds(
    config: DetectorConfig, labels: Sequence[str], thr: float | Sequence[int]
) -> DetectorConfig:
    """config with every keyword at posterior `thr` (or the given Q15 per keyword)."""
    kw = [i for i, w in enumerate(labels) if not w.startswith("_")]
    new = list(config.thr)
    for j, i in enumerate(kw):
        new[i] = round(thr * Q15_ONE) if isinstance(thr, float) else int(thr[j])
    return DetectorConfig(tuple(new), config.smooth, config.temp_shift, config.refractory)


@dataclass(frozen=True)
class DetPoint:
    offset: float  # log2 odds added to every keyword's threshold (0: the configuration)
    miss_rate: float
    fa_per_hour: float
    wrong: int


# offsets (log2 odds) swept by the DET curve
DET_OFFSETS = tuple(float(x) for x in np.arange(-12.0, 16.01, 0.5))


def shifted(config: DetectorConfig, labels: Sequence[str], offset: float) -> DetectorConfig:
    """Every keyword threshold moved by `offset` in log2 odds: p -> 1 / (1 + 2^-(L(p) + offset)),
    L(p) = log2(p / (1 - p)); a threshold of 1 (or never) stays, 0 stays 0."""
    if offset == 0:
        return config
    thr = list(config.thr)
    for i, w in enumerate(labels):
        q = thr[i]
        if w.startswith("_") or q >= Q15_ONE or q <= 0:
            continue
        p = q / Q15_ONE
        logit = np.log2(p / (1 - p)) + offset
        thr[i] = min(Q15_ONE, max(1, round(Q15_ONE / (1 + 2.0**-logit))))
    return DetectorConfig(tuple(thr), config.smooth, config.temp_shift, config.refractory)


def det_curve(
    config: DetectorConfig,
    labels: Sequence[str],
    runs: Sequence[tuple[Stream, ScoreTrack]],
    offsets: Sequence[float] = DET_OFFSETS,
) -> list[DetPoint]:
    """Miss rate and false alarms per hour as every keyword threshold moves by the same
    log2 odds from the configuration's (which is the offset-0 point); smoothing,
    temperature and refractory time as in `config`."""
    out = []
    for o in offsets:
        s = total_score(shifted(config, labels, o), labels, runs)
        out.append(DetPoint(o, s.miss_rate, s.fa_per_hour, s.wrong))
    return out


def total_score(
    config: DetectorConfig, labels: Sequence[str], runs: Sequence[tuple[Stream, ScoreTrack]]
) -> Score:
    parts = [score(st.placed, detect(config, tr), labels, tr, st.seconds) for st, tr in runs]
    per: dict[str, list[int]] = {}
    for p in parts:
        for k, (h, n) in p.per_keyword.items():
            a = per.setdefault(k, [0, 0])
            a[0] += h
            a[1] += n
    return Score(
        sum(p.keywords for p in parts),
        sum(p.correct for p in parts),
        sum(p.wrong for p in parts),
        sum(p.false_alarms for p in parts),
        sum(p.hours for p in parts),
        {k: tuple(v) for k, v in per.items()},
        [x for p in parts for x in p.wrong_pairs],
    )


# --------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------
@dataclass
class Calibration:
    config: DetectorConfig
    score: Score
    target_fa_per_hour: float
    seconds: float

    def summary(self, labels: Sequence[str]) -> dict:
        return {
            "target_fa_per_hour": self.target_fa_per_hour,
            "validation_seconds": round(self.seconds, 1),
            "validation_recall": round(self.score.recall, 4),
            "validation_fa_per_hour": round(self.score.fa_per_hour, 3),
            "thresholds": {
                w: round(t / Q15_ONE, 4)
                for w, t in zip(labels, self.config.thr, strict=True)
                if not w.startswith("_")
            },
        }


def calibrate(
    base: DetectorConfig,
    labels: Sequence[str],
    runs: Sequence[tuple[Stream, ScoreTrack]],
    target_fa_per_hour: float,
    smooths: Sequence[int] = tuple(range(1, MAX_SMOOTH + 1)),
    temp_shifts: Sequence[int] = (0, 1, 2, 3),
    grid: Sequence[float] = THRESHOLD_GRID,
    progress: Callable[[str], None] | None = None,
    refractories: Sequence[int] | None = None,
) -> Calibration:
    """The calibration below (``_calibrate_one``) for each refractory time in
    ``refractories`` (frames; default the base's), the whole search each time; the one with
    the most correct detections within the target wins (ties: fewer false alarms, then the
    longer refractory time). A target no refractory time meets raises the CalibrationError
    of the longest one."""
    best: Calibration | None = None
    error: CalibrationError | None = None
    for rf in sorted(set(refractories)) if refractories is not None else (base.refractory,):
        b = DetectorConfig(base.thr, base.smooth, base.temp_shift, rf)
        try:
            cal = _calibrate_one(b, labels, runs, target_fa_per_hour, smooths, temp_shifts, grid, progress)
        except CalibrationError as exc:
            error = exc  # the longest refractory time tried: the fewest alarms
            continue
        key = (cal.score.correct, -cal.score.false_alarms)
        if best is None or key >= (best.score.correct, -best.score.false_alarms):
            best = cal
    if best is None:
        assert error is not None
        raise error
    return best


def _calibrate_one(
    base: DetectorConfig,
    labels: Sequence[str],
    runs: Sequence[tuple[Stream, ScoreTrack]],
    target_fa_per_hour: float,
    smooths: Sequence[int],
    temp_shifts: Sequence[int],
    grid: Sequence[float],
    progress: Callable[[str], None] | None,
) -> Calibration:
    """Per-keyword thresholds and the smoothing window with the most correct detections
    whose false alarms stay within the target on `runs` (the validation streams), at the
    base's refractory time (`calibrate`'s arguments):

    1. every smoothing window and temperature (temp_shift: scores that differ by a few
       units already give posteriors near 1 at temp_shift 0) with one threshold for all
       keywords (the grid);
    2. from the best of those, each keyword's threshold in turn over the grid, the others
       fixed (two passes), keeping the most correct detections within the target (ties:
       the higher threshold). A target no setting meets raises CalibrationError naming
       the lowest false-alarm rate reached.
    """
    if target_fa_per_hour < 0:
        raise CalibrationError(f"--target-fa-per-hour {target_fa_per_hour}: expected >= 0")
    hours = sum(st.seconds for st, _ in runs) / 3600.0
    budget = target_fa_per_hour * hours  # false alarms allowed on these streams
    kw = [i for i, w in enumerate(labels) if not w.startswith("_")]
    best: tuple | None = None  # (correct, -fa, config, score)
    lowest = None
    rf = base.refractory
    for ts_ in temp_shifts:
        for s in smooths:
            for t in grid:
                cfg = with_thresholds(DetectorConfig(base.thr, s, ts_, rf), labels, float(t))
                sc = total_score(cfg, labels, runs)
                if lowest is None or sc.false_alarms < lowest[0]:
                    lowest = (sc.false_alarms, s, ts_, t)
                key = (sc.correct, -sc.false_alarms)
                if sc.false_alarms <= budget and (best is None or key > best[:2]):
                    best = (*key, cfg, sc)
        if progress:
            progress(
                f"refractory {rf} frames, temp_shift {ts_}: best so far "
                f"{best[3].correct if best else 0} correct"
            )
    if best is None:
        raise CalibrationError(
            f"a false-alarm target of {target_fa_per_hour:g}/h cannot be met: the lowest rate "
            f"reached is {lowest[0] / hours:.2f}/h (smooth {lowest[1]}, temp_shift {lowest[2]}, "
            f"threshold {lowest[3]}) on {hours * 60:.0f} min of validation stream"
        )
    _, _, cfg, sc = best
    qgrid = sorted({round(float(t) * Q15_ONE) for t in grid})
    for _pass in range(2):
        changed = False
        for i in kw:
            for q in qgrid:
                thr = list(cfg.thr)
                thr[i] = q
                trial = DetectorConfig(tuple(thr), cfg.smooth, cfg.temp_shift, cfg.refractory)
                ts = total_score(trial, labels, runs)
                better = (ts.correct, -ts.false_alarms, q) > (
                    sc.correct,
                    -sc.false_alarms,
                    cfg.thr[i],
                )
                if ts.false_alarms <= budget and better:
                    cfg, sc, changed = trial, ts, True
            if progress:
                progress(
                    f"pass {_pass + 1}, {labels[i]}: {sc.correct} correct, {sc.false_alarms} false alarms"
                )
        if not changed:
            break
    return Calibration(cfg, sc, target_fa_per_hour, hours * 3600.0)


def keyword_labels(labels: Sequence[str]) -> list[str]:
    return [w for w in labels if not w.startswith("_")]


# --------------------------------------------------------------------------------------
# The emulated board
# --------------------------------------------------------------------------------------
@dataclass
class DeviceRun:
    frames: list[int]
    scores: list[tuple[int, ...]]
    detections: list[tuple[int, int, float]]  # frame, label, posterior (0..1, 4 decimals)
    host_detector_agrees: bool
    wall_s: float


def emulated_run(
    model,
    audio: np.ndarray,
    config: DetectorConfig,
    stride: int = DEFAULT_STRIDE,
    target: str = "mps2-an386",
    configure: bool = True,
) -> DeviceRun:
    """Stream `audio` to the firmware of `model` on QEMU with this detector configuration
    (configure=False: the firmware's own default, which `config` must then describe);
    what the board reported."""
    fw = build_firmware(emit_c(model), target)
    t0 = time.monotonic()
    with Emulator(fw.elf, machine=target) as emu, open_link(emu.port) as link:
        if configure:
            link.configure(P.Config(stride, config))
        labels = list(link.info.labels)
        report = run_stream(link, np.asarray(audio, dtype=np.int16), "stream", config)
        link.shutdown()
    dets = [(h.frame, labels.index(h.label), h.posterior) for h in report.detections]
    return DeviceRun(
        [r.frame for r in report.results],
        [tuple(r.scores) for r in report.results],
        dets,
        report.detector_agrees,
        time.monotonic() - t0,
    )


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------
def plot_det(
    points: list[DetPoint],
    op: tuple[float, float],
    path,
    title: str,
    default_op: tuple[float, float] | None = None,
) -> None:
    """The DET curve; op (false alarms/h, miss rate): the model's configuration, default_op:
    the default configuration's point when the model is calibrated."""
    import matplotlib  # deferred: heavy, only for the plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    x = [max(p.fa_per_hour, 0.1) for p in points]
    y = [100 * p.miss_rate for p in points]
    ax.plot(x, y, "o-", ms=3, label="thresholds moved together (log2 odds offset)")
    for p, xx, yy in zip(points, x, y, strict=True):
        if p.offset in (-8.0, -4.0, -2.0, 2.0, 4.0, 8.0, 12.0):
            ax.annotate(
                f"{p.offset:+g}", (xx, yy), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
    ax.plot(
        [max(op[0], 0.1)], [100 * op[1]], "r*", ms=12, label="the model's detector configuration"
    )
    if default_op is not None:
        ax.plot(
            [max(default_op[0], 0.1)],
            [100 * default_op[1]],
            "ks",
            ms=7,
            label="default configuration (0.6, 3 windows)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("false alarms per hour (0 drawn at 0.1)")
    ax.set_ylabel("miss rate (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


# --------------------------------------------------------------------------------------
# The whole bench (what `bnnkws bench streaming` runs)
# --------------------------------------------------------------------------------------


@dataclass
class BenchResult:
    model_hash: str
    model_name: str
    labels: list[str]
    config: DetectorConfig
    calibrated: bool
    stream: Stream
    track: ScoreTrack
    score: Score
    det: list[DetPoint]
    stride: int
    host_c_detector_agrees: bool
    device: DeviceRun | None = None
    device_agrees: bool | None = None
    device_seconds: float = 0.0
    device_differences: list[str] = field(default_factory=list)
    baseline: Score | None = None  # the same stream with the default detector configuration
    calibration: Calibration | None = None
    elapsed_s: float = 0.0
    meta: dict = field(default_factory=dict)


def c_detector_agrees(
    config: DetectorConfig, track: ScoreTrack, python: list[Detection], lib
) -> bool:
    """firmware/detector.c (through cffi) on the same scores gives the same detections."""
    c = CDetector(config, lib)
    got = []
    for frame, s in zip(track.frames.tolist(), track.scores.tolist(), strict=True):
        d = c.push(s, frame)
        if d is not None:
            got.append(Detection(*d))
    return got == python


def device_differences(
    dev: DeviceRun, track: ScoreTrack, host: list[Detection], samples: int | None = None
) -> list[str]:
    """Where the board differs from the host (empty: none): scores and detections of all
    windows, or of those inside the first `samples` samples when only those were streamed
    (the detector does not look ahead, so the host's detections up to there are the
    board's). Posteriors as the session reports them (0..1, 4 decimals)."""
    ends = track.frames * track.hop + track.frame_len
    n = int(track.frames.size if samples is None else np.count_nonzero(ends <= samples))
    last = int(track.frames[n - 1]) if n else -1
    out = []
    if len(dev.frames) != n or dev.frames != track.frames[:n].tolist():
        out.append(f"{len(dev.frames)} inferences on the board, {n} on the host")
    else:
        for i, (a, b) in enumerate(zip(dev.scores, track.scores[:n].tolist(), strict=True)):
            if list(a) != b:
                out.append(
                    f"scores of window {i} (frame {dev.frames[i]}): board {list(a)}, host {b}"
                )
                break
    mine = [(d.frame, d.label, round(d.posterior / 32768, 4)) for d in host if d.frame <= last]
    if dev.detections != mine:
        out.append(f"detections: board {dev.detections[:5]}..., host {mine[:5]}...")
    if not dev.host_detector_agrees:
        out.append("the session's host detector disagrees with the board's")
    return out


def compare_device(
    dev: DeviceRun, track: ScoreTrack, host: list[Detection], samples: int | None = None
) -> bool:
    return not device_differences(dev, track, host, samples)


def format_summary(r: BenchResult) -> str:
    s = r.score
    lines = [
        f"model {r.model_name} ({r.model_hash[:16]}), detector "
        f"{'calibrated' if r.calibrated else 'defaults'}: smooth {r.config.smooth}, "
        f"temp_shift {r.config.temp_shift}, refractory {r.config.refractory} frames, thresholds "
        + " ".join(
            f"{w}={t / Q15_ONE:.3f}"
            for w, t in zip(r.labels, r.config.thr, strict=True)
            if not w.startswith("_")
        ),
        f"stream: {r.stream.split} split, {r.stream.seconds / 60:.1f} min, {len(r.stream.placed)} clips "
        f"({s.keywords} keywords), seed {r.stream.seed}, SNR {r.stream.snr_db[0]:g}-{r.stream.snr_db[1]:g} dB",
        f"recall {100 * s.recall:.1f}% ({s.correct}/{s.keywords}), wrong label {s.wrong}, "
        f"false alarms {s.false_alarms} ({s.fa_per_hour:.1f} per hour)",
        f"C detector (firmware/detector.c) == Python detector on these scores: {r.host_c_detector_agrees}",
    ]
    if r.calibrated and r.baseline is not None:
        b = r.baseline
        lines.append(
            f"with the default detector configuration: recall {100 * b.recall:.1f}%, wrong label "
            f"{b.wrong}, {b.fa_per_hour:.1f} false alarms per hour"
        )
    if r.device is not None:
        lines.append(
            f"emulated board: {len(r.device.frames)} inferences over the first "
            f"{r.device_seconds:.0f} s, scores and detections equal the host's: {r.device_agrees} "
            f"({r.device.wall_s:.0f} s)"
        )
        lines += [f"  board != host: {d}" for d in r.device_differences]
    return "\n".join(lines)


DET_LIMITS = (1.0, 6.0, 30.0, 120.0)  # false alarms per hour where the DET summary is read


def det_at(points: list[DetPoint], fa: float) -> DetPoint | None:
    """The DET point of least miss rate with at most `fa` false alarms per hour."""
    ok = [p for p in points if p.fa_per_hour <= fa]
    return min(ok, key=lambda p: (p.miss_rate, p.fa_per_hour)) if ok else None


def result_summary(r: BenchResult) -> dict:
    """The numbers of a run as JSON-ready data (`bench streaming --results`; the model card
    reads them: tools/bench/card.py)."""
    s = r.score
    return {
        "model": r.model_name,
        "model_hash": r.model_hash,
        "kind": r.meta.get("kind", "bnn"),
        "stride": r.stride,
        "stream": {
            "split": r.stream.split,
            "minutes": round(r.stream.seconds / 60, 2),
            "seed": r.stream.seed,
            "snr_db": list(r.stream.snr_db),
            "keywords": s.keywords,
        },
        "detector": {"calibrated": r.calibrated, **r.config.to_dict()},
        # where the detector came from: this run's calibration, or the model's stored one
        "calibration": (
            r.calibration.summary(r.labels)
            if r.calibration is not None
            else r.meta.get("calibration")
        ),
        "recall": round(s.recall, 4),
        "correct": s.correct,
        "wrong": s.wrong,
        "false_alarms": s.false_alarms,
        "fa_per_hour": round(s.fa_per_hour, 3),
        "fa_per_hour_95": [round(v, 3) for v in s.fa_interval()],
        "recall_95": [round(v, 4) for v in s.recall_interval()],
        "per_keyword": {w: list(v) for w, v in s.per_keyword.items()},
        "det": {
            f"{fa:g}": (round(p.miss_rate, 4) if (p := det_at(r.det, fa)) is not None else None)
            for fa in DET_LIMITS
        },
    }


def _det_summary(points: list[DetPoint]) -> list[str]:
    out = []
    for fa in DET_LIMITS:
        p = det_at(points, fa)
        if p is not None:
            out.append(
                f"| <= {fa:g} | {100 * p.miss_rate:.1f}% | {p.fa_per_hour:.1f} | {p.offset:+g} |"
            )
        else:
            out.append(f"| <= {fa:g} | not reached | | |")
    return out


def format_doc(r: BenchResult, command: str, png_name: str, date: str) -> str:
    s = r.score
    kw = [w for w in r.labels if not w.startswith("_")]
    per = " | ".join(
        f"{100 * s.per_keyword[w][0] / max(1, s.per_keyword[w][1]):.0f}% ({s.per_keyword[w][0]}/{s.per_keyword[w][1]})"
        for w in kw
    )
    wrong = Counter(r.score.wrong_pairs).most_common(6)
    cal = ""
    if r.calibration is not None:
        c = r.calibration
        cal = (
            f"\n## Calibration\n\nOn the validation split's stream ({c.seconds / 60:.1f} min: its clips "
            f"placed again in new places, noise and SNRs until that length; the same seed and SNR "
            f"range), for at most {c.target_fa_per_hour:g} false alarms per hour: recall "
            f"{100 * c.score.recall:.1f}%, {c.score.fa_per_hour:.1f} false alarms per hour there. It searches "
            f"the refractory time (`--refractory-ms`), the smoothing window and the temperature with one "
            f"threshold for every keyword, then each keyword's threshold. The result "
            f"(thresholds, smoothing, refractory time) is stored in the checkpoint and the blob's DETC section; the firmware "
            f"uses it as its default configuration. Without `--out`, `--calibrate` rewrites the "
            f"checkpoint given (e.g. models/default.pt) in place.\n"
        )
    elif r.calibrated:
        m = r.meta.get("calibration") or {}
        how = (
            f" for at most {m['target_fa_per_hour']:g} false alarms per hour on "
            f"{m.get('validation_seconds', 0) / 60:.1f} min of validation stream (recall "
            f"{100 * m.get('validation_recall', 0):.1f}%, "
            f"{m.get('validation_fa_per_hour', 0):.1f} false alarms per hour there)"
            if "target_fa_per_hour" in m
            else ""
        )
        cal = (
            "\n## Calibration\n\nThe model carries a calibrated detector configuration (the "
            f"blob's DETC section, the firmware's default), chosen by `bnnkws bench streaming "
            f"--calibrate`{how}.\n"
        )
    base_row = ""
    if r.calibrated and r.baseline is not None:
        b = r.baseline
        base_row = (
            f"\nWith the default detector configuration (keywords at 0.6, 3 windows, 1 s) on the "
            f"same scores: recall {100 * b.recall:.1f}% ({b.correct}/{b.keywords}), {b.wrong} wrong "
            f"labels, {b.false_alarms} false alarms ({b.fa_per_hour:.1f} per hour).\n"
        )
    dev = ""
    if r.device is not None:
        dev = (
            f"\nOn the emulated board (QEMU mps2-an386, the firmware built from this model, the "
            f"first {r.device_seconds:.0f} s of the stream): {len(r.device.frames)} inferences, "
            f"scores and detections equal to the host's: **{r.device_agrees}**."
        )
    return f"""# Streaming accuracy

Produced by `{command}` on {date}. Machine: {machine()}.
Benchmark, not test: the numbers depend on the model, the data and the seed.

## Method

The stream is built from the **{r.stream.split}** split of the dataset the way TensorFlow's
speech_commands `generate_streaming_test_wav.py` builds one (generator/data/streams.py): a
bed of the dataset's real `_background_noise_` recordings (5-15 s stretches at -45..-25 dBFS,
cross-faded), the split's keyword clips and other-word clips (`_unknown_`) placed one every
2-3 s (uniform), each at a random SNR in **{r.stream.snr_db[0]:g}-{r.stream.snr_db[1]:g} dB** against the
bed under it (speech RMS over its 10 ms frames within 30 dB of the loudest). Seed
**{r.stream.seed}**; **{r.stream.seconds / 60:.1f} min**, {len(r.stream.placed)} clips, {s.keywords}
of them keywords ({", ".join(kw)}).

It runs through the bit-exact pipeline on the host C library (tools/bench/streaming.py): the
streaming front-end per 20 ms hop, the network on the last 1 s window every {r.stride} hops
(100 ms), the integer detector (tools/device/detector.py; firmware/detector.c gives the
same detections on these scores: **{r.host_c_detector_agrees}**).{dev}

Scoring follows TensorFlow's `test_streaming_accuracy.py` (accuracy_utils): a detection's
time is the start of the window that fired; it is matched with the first keyword clip whose
start lies within **750 ms** of it (TensorFlow's `time_tolerance_ms` default), so a correct
detection's window ends 0.25-1.75 s after the clip starts. Correct: it names that keyword
(first match of the clip); wrong label: it names another keyword; false alarm: no keyword clip
in reach (noise, other words) or the clip was already matched.

## Result

Detector: {"calibrated" if r.calibrated else "the defaults (the model is not calibrated)"}: smoothing
{r.config.smooth} windows, temp_shift {r.config.temp_shift}, refractory {r.config.refractory} frames,
thresholds {", ".join(f"{w} {t / Q15_ONE:.3f}" for w, t in zip(r.labels, r.config.thr, strict=True) if not w.startswith("_"))}.

| recall (95% interval) | wrong label | false alarms | per hour (95% interval) |
|---|---|---|---|
| **{100 * s.recall:.1f}%** ({s.correct}/{s.keywords}; {100 * s.recall_interval()[0]:.1f}-{100 * s.recall_interval()[1]:.1f}%) | {s.wrong} | {s.false_alarms} | **{s.fa_per_hour:.1f}** ({s.fa_interval()[0]:.1f}-{s.fa_interval()[1]:.1f}) |

Intervals are exact 95% intervals (Clopper-Pearson for the recall, Garwood's Poisson interval
for the false-alarm rate): {s.false_alarms} false alarms in {s.hours * 60:.0f} minutes bound the rate only to
that range, so a longer stream (`--minutes`) is what narrows it.
{base_row}
Recall per keyword:

| {" | ".join(kw)} |
|{"---|" * len(kw)}
| {per} |

Most frequent wrong labels (said -> heard): {", ".join(f"{a} -> {b} ({n})" for (a, b), n in wrong) or "none"}.
{cal}
## DET curve

![DET curve]({png_name})

Every keyword threshold moved together by an offset in log2 odds (p -> 1 / (1 + 2^-(log2(p /
(1 - p)) + offset)); offset 0 is the configuration above, a threshold of 1 stays), from -12
to +16 in steps of 0.5; smoothing, temperature and refractory time as above; the detector
re-run over the stored integer scores (the scores do not change). Lowest miss rate within a
false-alarm budget:

| false alarms per hour | miss rate | false alarms per hour reached | offset (log2 odds) |
|---|---|---|---|
{chr(10).join(_det_summary(r.det))}

Model {r.model_name}, hash `{r.model_hash}`; {r.elapsed_s:.0f} s.
"""


def apply_calibration(loaded, cal: Calibration, out) -> None:
    """Write the calibrated configuration into a checkpoint (generator/training/checkpoint.py
    'detector') or, for a blob, a new blob with a DETC section."""
    labels = loaded.model.labels
    det = {**cal.config.to_dict(), "calibration": cal.summary(labels)}
    if loaded.torch_model is not None:
        # deferred: imports torch, needed only to rewrite a checkpoint
        from bnnkws.generator.training.checkpoint import set_detector

        if Path(out) != Path(loaded.source):
            shutil.copyfile(loaded.source, out)
        set_detector(out, det)
    else:
        m = loaded.model
        m.meta = {**m.meta, "detector": cal.config.to_dict(), "calibration": det["calibration"]}
        blobmod.save(m, out)


def run_bench(
    model_path,
    data,
    split: str = "test",
    minutes: float | None = None,
    seed: int = 0,
    snr: tuple[float, float] = (6.0, 18.0),
    device: str = "host",
    target_fa_per_hour: float | None = None,
    calibration_minutes: float | None = None,
    out=None,
    stride: int = DEFAULT_STRIDE,
    progress: Callable[[str], None] | None = None,
    device_minutes: float | None = None,
    refractory_ms: Sequence[float] = (1000.0, 1500.0),
) -> BenchResult:
    """Optionally calibrate on the validation split's stream (written to `out`, default
    the model file), then measure on `split`'s stream."""
    say = progress or (lambda _m: None)
    t0 = time.monotonic()
    fm = load_float(model_path)
    loaded = None
    if fm is not None:
        if device != "host":
            raise BnnkwsError(
                f"{model_path}: a float baseline ({fm.kind}) has no integer pipeline or "
                "firmware: use --device host"
            )
        labels, fe = list(fm.labels), fm.frontend
    else:
        loaded = load_any(model_path)
        labels, fe = list(loaded.model.labels), loaded.model.frontend

    def pipeline():
        return FloatPipeline(fm, stride) if fm is not None else HostPipeline(loaded.model, stride)

    kws = keyword_labels(labels)
    if not kws:
        raise BnnkwsError(f"{model_path}: the model has no keyword labels ({', '.join(labels)})")
    cal = None
    if target_fa_per_hour is not None:
        say("calibration: building the validation stream")
        vst = make_stream(data, "validation", kws, seed, calibration_minutes, snr)
        say(f"calibration: {vst.seconds / 60:.1f} min through the host pipeline")
        vtr = pipeline().run(vst.audio)
        base = DetectorConfig.default_for(labels, fe.hop, fe.sample_rate)
        refr = sorted({refractory_frames(ms, fe.hop, fe.sample_rate) for ms in refractory_ms})
        cal = calibrate(
            base, labels, [(vst, vtr)], target_fa_per_hour, progress=say, refractories=refr
        )
        dest = Path(out) if out is not None else Path(model_path)
        if fm is not None:
            from bnnkws.generator.training.checkpoint import set_detector

            if dest != Path(model_path):
                shutil.copyfile(model_path, dest)
            set_detector(dest, {**cal.config.to_dict(), "calibration": cal.summary(labels)})
            fm = load_float(dest)
        else:
            if loaded.torch_model is None and out is None:
                raise BnnkwsError(
                    f"{model_path}: a blob is not rewritten in place: give --out NEW.bkim"
                )
            apply_calibration(loaded, cal, dest)
            loaded = load_any(dest)
        say(f"calibration: written to {dest}")
        model_path = dest
    say(f"building the {split} stream")
    st = make_stream(data, split, kws, seed, minutes, snr)
    hp = pipeline()
    say(f"{st.seconds / 60:.1f} min through the host pipeline")
    tr = hp.run(st.audio)
    config = hp.default_config
    dets = detect(config, tr)
    sc = score(st.placed, dets, labels, tr, st.seconds)
    lib = hp.lib if fm is not None else hp.net.lib
    agrees = c_detector_agrees(config, tr, dets, lib)
    defaults = DetectorConfig.default_for(labels, fe.hop, fe.sample_rate)
    baseline = score(st.placed, detect(defaults, tr), labels, tr, st.seconds)
    say("DET curve")
    det = det_curve(config, labels, [(st, tr)])
    res = BenchResult(
        fm.hash if fm is not None else loaded.hash,
        Path(model_path).name,
        labels,
        config,
        fm.detector is not None if fm is not None else "detector" in loaded.model.meta,
        st,
        tr,
        sc,
        det,
        stride,
        agrees,
        calibration=cal,
        meta=fm.meta if fm is not None else dict(loaded.model.meta),
    )
    if device == "emulated":
        n = st.audio.size
        if device_minutes is not None:
            n = min(n, int(device_minutes * 60 * st.audio.shape[0] / st.seconds))
        say(f"streaming {n / 16000 / 60:.1f} min to the emulated board")
        res.device = emulated_run(loaded.model, st.audio[:n], config, stride)
        res.device_differences = device_differences(res.device, tr, dets, n)
        res.device_agrees = not res.device_differences
        res.device_seconds = n / (st.audio.size / st.seconds)
    res.baseline = baseline
    res.elapsed_s = time.monotonic() - t0
    return res
