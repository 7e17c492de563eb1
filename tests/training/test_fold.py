"""Batch-norm folding: one integer comparison equals the float rule it replaces."""

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bnnkws.generator.integer.intmodel import fold_scale_threshold, fold_threshold

ACC = np.arange(-300, 301)
finite = st.floats(min_value=-200.0, max_value=200.0, allow_nan=False)


def _apply(thr: int, flip: int) -> np.ndarray:
    return np.where(flip, ACC <= thr, ACC >= thr)


@given(mu=finite, sign=st.sampled_from([1, -1]), s=st.integers(-6, 6), beta=finite)
def test_shift_bn_threshold_equals_the_float_sign(mu, sign, s, beta):
    scale = Fraction(sign) * Fraction(2) ** s
    want = np.array([scale * (int(a) - Fraction(mu)) + Fraction(beta) >= 0 for a in ACC])
    assert np.array_equal(_apply(*fold_threshold(mu, sign, s, beta)), want)


@given(mu=finite, scale=st.floats(min_value=0.01, max_value=50.0), neg=st.booleans(), beta=finite)
def test_any_scale_threshold_equals_the_comparison_it_folds(mu, scale, neg, beta):
    c = -scale if neg else scale
    # the rule, in exact arithmetic: c * (acc - mu) + beta >= 0
    want = np.array([Fraction(c) * (int(a) - Fraction(mu)) + Fraction(beta) >= 0 for a in ACC])
    assert np.array_equal(_apply(*fold_scale_threshold(mu, c, beta)), want)


def test_zero_scale_gives_a_constant_output():
    assert _apply(*fold_scale_threshold(3.0, 0.0, 0.5)).all()
    assert not _apply(*fold_scale_threshold(3.0, 0.0, -0.5)).any()
