"""Streaming keyword detector, the Python twin of firmware/detector.[ch], bit for bit.

Per inference window of int32 scores (rule derived in firmware/detector.h):

1. Q15 posteriors by a base-2 softmax: 2^temp_shift score units are a factor 2 in odds.
2. The posteriors of the last ``smooth`` windows are summed per class; nothing fires
   until ``smooth`` windows are held (after a start, a reset or a detection).
3. A class whose summed posterior reaches ``thr * smooth`` is a candidate; the largest
   fires unless fewer than ``refractory`` frames passed since the last detection; the
   history is then cleared.

Used host-side by ``bnnkws stream`` (on RESULT scores when the detector runs on the
host), by ``bnnkws bench streaming`` and calibration (tools/bench/streaming.py), and by
the tests, which compare it with the C detector through cffi. The configuration and its
defaults are generator/export/detector_config.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bnnkws.generator.export.detector_config import (  # noqa: F401 (re-exported)
    DEFAULT_REFRACTORY_MS,
    DEFAULT_SMOOTH,
    DEFAULT_TEMP_SHIFT,
    DEFAULT_THRESHOLD,
    MAX_CLASSES,
    MAX_SMOOTH,
    MAX_TEMP_SHIFT,
    NEVER,
    ConfigError,
    DetectorConfig,
    refractory_frames,
)

# round(2^15 * 2^(-k/64)), k = 0..63: identical to EXP2_NEG_Q15 in firmware/detector.c
EXP2_NEG_Q15 = (
    32768,
    32415,
    32066,
    31720,
    31379,
    31041,
    30706,
    30376,
    30048,
    29725,
    29405,
    29088,
    28774,
    28464,
    28158,
    27855,
    27554,
    27258,
    26964,
    26674,
    26386,
    26102,
    25821,
    25543,
    25268,
    24995,
    24726,
    24460,
    24196,
    23936,
    23678,
    23423,
    23170,
    22921,
    22674,
    22430,
    22188,
    21949,
    21713,
    21479,
    21247,
    21019,
    20792,
    20568,
    20347,
    20127,
    19911,
    19696,
    19484,
    19274,
    19066,
    18861,
    18658,
    18457,
    18258,
    18061,
    17867,
    17674,
    17484,
    17296,
    17109,
    16925,
    16743,
    16562,
)


@dataclass(frozen=True)
class Detection:
    frame: int  # last feature frame of the window that fired
    label: int
    posterior: int  # Q15


def posteriors(scores: list[int] | tuple[int, ...], temp_shift: int) -> list[int]:
    """Q15 posteriors (bk_det_posteriors)."""
    smax = max(scores)
    mask = (1 << temp_shift) - 1
    w = []
    for s in scores:
        v = smax - int(s)
        ipart = v >> temp_shift
        frac6 = ((v & mask) << 6) >> temp_shift
        w.append(0 if ipart >= 16 else EXP2_NEG_Q15[frac6] >> ipart)
    total = sum(w)
    return [(x << 15) // total for x in w]


@dataclass
class Detector:
    """bk_det_t: push one window of scores at a time."""

    config: DetectorConfig
    _hist: list[list[int]] = field(default_factory=list)
    _sums: list[int] = field(default_factory=list)
    _pos: int = 0
    _held: int = 0
    _last: int | None = None

    def __post_init__(self) -> None:
        self.config.check()
        self.reset()

    def reset(self) -> None:
        n = self.config.n_classes
        self._hist = [[0] * n for _ in range(self.config.smooth)]
        self._sums = [0] * n
        self._pos = 0
        self._held = 0
        self._last = None

    def push(self, scores: list[int] | tuple[int, ...], frame: int) -> Detection | None:
        cfg = self.config
        if len(scores) != cfg.n_classes:
            raise ValueError(f"{len(scores)} scores, detector configured for {cfg.n_classes}")
        return self.push_posteriors(posteriors(scores, cfg.temp_shift), frame)

    def push_posteriors(self, post: list[int] | tuple[int, ...], frame: int) -> Detection | None:
        """Steps 2 and 3 on one window's Q15 posteriors (step 1 done by the caller, e.g.
        once for many threshold settings: posteriors do not depend on thresholds)."""
        cfg = self.config
        slot = self._hist[self._pos]
        for c, p in enumerate(post):
            self._sums[c] += p - slot[c]
            slot[c] = p
        self._pos = (self._pos + 1) % cfg.smooth
        self._held = min(self._held + 1, cfg.smooth)
        if self._held < cfg.smooth:
            return None
        # frame arithmetic is uint32 in C
        if self._last is not None and ((frame - self._last) & 0xFFFFFFFF) < cfg.refractory:
            return None
        best = -1
        for c in range(cfg.n_classes):
            thr = cfg.thr[c]
            if thr > 32768 or self._sums[c] < thr * self._held:
                continue
            if best < 0 or self._sums[c] > self._sums[best]:
                best = c
        if best < 0:
            return None
        det = Detection(frame, best, self._sums[best] // self._held)
        self.reset()
        self._last = frame
        return det
