"""The streaming detector's configuration (firmware/detector.h bk_det_config_t) and its
defaults, in one place.

Everything that needs a detector setting reads it from here: the blob's optional DETC
section (generator/export/blob.py, docs/FORMAT.md), the generated C (the firmware's
default configuration, generator/codegen/emit_c.py), the Python twin of the detector
(tools/device/detector.py), the command-line defaults of `stream`, `demo` and
`bench streaming`, and calibration (tools/bench/streaming.py).

A model's detector configuration is ``IntegerModel.meta["detector"]``, a plain dict
``{"thr": [...], "smooth": s, "temp_shift": t, "refractory": r}`` (:meth:`DetectorConfig.to_dict`);
a model without one uses :meth:`DetectorConfig.default_for`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from bnnkws.generator.base.errors import BnnkwsError
from bnnkws.generator.frontend import FrontendConfig

MAX_CLASSES = 16
MAX_SMOOTH = 8
MAX_TEMP_SHIFT = 16
Q15_ONE = 32768
NEVER = 0xFFFF  # threshold that never fires (silence, unknown)

# The defaults of a model that was not calibrated (and of the command-line options).
DEFAULT_THRESHOLD = 0.6  # smoothed keyword posterior
DEFAULT_SMOOTH = 3  # windows averaged
DEFAULT_TEMP_SHIFT = 0  # 2^t score units are a factor 2 in odds
DEFAULT_REFRACTORY_MS = 1000.0  # quiet time after a detection

# DETC payload: n_classes, smooth, temp_shift, reserved (0), refractory, then thr[n_classes]
DETC_HEAD = struct.Struct("<BBBBH")


def refractory_frames(ms: float, hop: int, sample_rate: int) -> int:
    """Milliseconds -> whole hops (frames), rounded."""
    return max(0, round(ms * sample_rate / (1000.0 * hop)))


# in hops of the default front-end (50 of 20 ms)
DEFAULT_REFRACTORY = refractory_frames(
    DEFAULT_REFRACTORY_MS, FrontendConfig.hop, FrontendConfig.sample_rate
)


class ConfigError(BnnkwsError):
    """A detector setting is out of range."""


def threshold_q15(p: float) -> int:
    """A posterior 0..1 as a Q15 threshold (clipped to 0..32768)."""
    return min(Q15_ONE, max(0, round(p * Q15_ONE)))


@dataclass(frozen=True)
class DetectorConfig:
    """bk_det_config_t. thr: Q15 per class (NEVER for silence/unknown)."""

    thr: tuple[int, ...]
    smooth: int = DEFAULT_SMOOTH
    temp_shift: int = DEFAULT_TEMP_SHIFT
    refractory: int = DEFAULT_REFRACTORY  # frames

    @property
    def n_classes(self) -> int:
        return len(self.thr)

    def check(self) -> None:
        """Raise ConfigError naming the field, as bk_det_config_check refuses it."""
        if not 1 <= self.n_classes <= MAX_CLASSES:
            raise ConfigError(f"detector: {self.n_classes} classes, expected 1..{MAX_CLASSES}")
        if not 1 <= self.smooth <= MAX_SMOOTH:
            raise ConfigError(f"detector: smooth {self.smooth}, expected 1..{MAX_SMOOTH}")
        if not 0 <= self.temp_shift <= MAX_TEMP_SHIFT:
            raise ConfigError(
                f"detector: temp_shift {self.temp_shift}, expected 0..{MAX_TEMP_SHIFT}"
            )
        if not 0 <= self.refractory <= 0xFFFF:
            raise ConfigError(f"detector: refractory {self.refractory} frames, expected 0..65535")
        for c, t in enumerate(self.thr):
            if not 0 <= t <= 0xFFFF:
                raise ConfigError(f"detector: threshold {t} for class {c}, expected 0..65535 (Q15)")

    @classmethod
    def for_labels(
        cls,
        labels: Sequence[str],
        threshold: float = DEFAULT_THRESHOLD,
        smooth: int = DEFAULT_SMOOTH,
        temp_shift: int = DEFAULT_TEMP_SHIFT,
        refractory: int = DEFAULT_REFRACTORY,
    ) -> DetectorConfig:
        """Same threshold for every keyword; labels starting with '_' (silence, unknown) never fire."""
        q = threshold_q15(threshold)
        thr = tuple(NEVER if lab.startswith("_") else q for lab in labels)
        return cls(thr, smooth, temp_shift, refractory)

    @classmethod
    def default_for(cls, labels: Sequence[str], hop: int, sample_rate: int) -> DetectorConfig:
        """The configuration of an uncalibrated model: the defaults above, the refractory
        time in the model's hops."""
        return cls.for_labels(
            labels, refractory=refractory_frames(DEFAULT_REFRACTORY_MS, hop, sample_rate)
        )

    @classmethod
    def of_model(cls, model) -> DetectorConfig:
        """An IntegerModel's configuration: its calibrated one, else the defaults."""
        d = model.meta.get("detector")
        if d is not None:
            return cls.from_dict(d)
        fe = model.frontend
        return cls.default_for(model.labels, fe.hop, fe.sample_rate)

    # -- plain forms -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "thr": list(self.thr),
            "smooth": self.smooth,
            "temp_shift": self.temp_shift,
            "refractory": self.refractory,
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "detector") -> DetectorConfig:
        try:
            cfg = cls(
                tuple(int(t) for t in d["thr"]),
                int(d["smooth"]),
                int(d["temp_shift"]),
                int(d["refractory"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: not a detector configuration ({exc})") from None
        cfg.check()
        return cfg

    def to_payload(self) -> bytes:
        """The DETC section payload (docs/FORMAT.md)."""
        self.check()
        head = DETC_HEAD.pack(self.n_classes, self.smooth, self.temp_shift, 0, self.refractory)
        return head + struct.pack(f"<{self.n_classes}H", *self.thr)

    @classmethod
    def from_payload(cls, data: bytes, where: str = "DETC") -> DetectorConfig:
        if len(data) < DETC_HEAD.size:
            raise ConfigError(f"{where}: {len(data)} bytes, too short")
        n, smooth, temp_shift, reserved, refractory = DETC_HEAD.unpack_from(data)
        if reserved != 0:
            raise ConfigError(f"{where}: reserved byte {reserved}, expected 0")
        if len(data) != DETC_HEAD.size + 2 * n:
            raise ConfigError(
                f"{where}: {len(data)} bytes, {n} thresholds need {DETC_HEAD.size + 2 * n}"
            )
        thr = struct.unpack_from(f"<{n}H", data, DETC_HEAD.size)
        cfg = cls(tuple(thr), smooth, temp_shift, refractory)
        try:
            cfg.check()
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return cfg
