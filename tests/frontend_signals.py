"""Deterministic test signals for the front-end (no numpy RNG: stable across versions)."""

import numpy as np


def lcg_noise(n: int, seed: int, amplitude: int = 32767) -> np.ndarray:
    """Uniform int16 noise in [-amplitude, amplitude] from a 32-bit LCG (Numerical Recipes)."""
    out = np.empty(n, dtype=np.int16)
    state = seed & 0xFFFFFFFF
    span = 2 * amplitude + 1
    for i in range(n):
        state = (1664525 * state + 1013904223) & 0xFFFFFFFF
        out[i] = (state >> 8) % span - amplitude
    return out


def square_wave(n: int, period: int, high: int = 32767, low: int = -32768) -> np.ndarray:
    t = np.arange(n)
    return np.where((t // (period // 2)) % 2 == 0, high, low).astype(np.int16)


def clipped_sine(n: int, freq: float, gain: float, rate: int = 16000) -> np.ndarray:
    """A sine `gain` times full scale, hard-clipped to int16."""
    x = gain * 32767.0 * np.sin(2 * np.pi * freq * np.arange(n) / rate)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def golden_inputs() -> dict[str, np.ndarray]:
    """The inputs whose features are frozen in tests/golden/frontend_golden.npz."""
    return {
        "noise_full": lcg_noise(16000, 1),
        "noise_quiet": lcg_noise(16000, 2, amplitude=40),
        "square_440": square_wave(16000, 36),
        "clipped_sine": clipped_sine(16000, 1000.0, 3.0),
        "silence": np.zeros(16000, dtype=np.int16),
        "impulse": np.eye(1, 16000, 8000, dtype=np.int16)[0] * 32767,
    }
